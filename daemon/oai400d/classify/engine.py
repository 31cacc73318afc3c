"""The classifier: an Event in, a Finding (or nothing) out. Pure: no files, no clock, no I/O."""

from __future__ import annotations

import hashlib
import re

from oai400d.classify.attribution import UnattributedLoneLines
from oai400d.classify.evidence import (
    STATUS_TRIGGERS,
    add_details,
    read_key,
    without_reasons,
)
from oai400d.classify.prefilter import LineMatcher, PatternSet, Prefilter
from oai400d.classify.rules import Rule, RuleTable, load_rules
from oai400d.levels import below_error
from oai400d.masking import redact
from oai400d.model import WRAPPED_PIECE, Event, Evidence, Finding

MAX_MESSAGE = 1000
# Pieces of a wrapped message are re-flowed into one text that the prefilter must not miss.
WRAPPED_TRIGGER = WRAPPED_PIECE.replace("(?=\\S)", "\\S")
MAX_EXCERPT = 4000
_STATUS_NAME_NOISE = re.compile(r"[\s_-]+")
# openai-python's and openai-node's messages for a failed connection or a timeout, ending an
# application's own line: the same failure as the exception the SDK raised, told with less.
# (Not after the exception's class, `APIConnectionError: Connection error.`, which is the error.)
_BARE_SDK_MESSAGE = re.compile(
    r"(?<!Error)(?<!Exception)(?<!Message): (?:Connection error|Request timed out)\.\s*$"
)

# What differs between two occurrences of the same problem; replaced before fingerprinting.
_VOLATILE: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"https?://\S+"), "<url>"),
    (
        re.compile(
            r"\b(?:req|chatcmpl|run|thread|msg|call|file|batch|resp|asst)[_-][A-Za-z0-9]{6,}\b"
        ),
        "<id>",
    ),
    (re.compile(r"\borg-[A-Za-z0-9]{6,}\b"), "<org>"),
    (re.compile(r"\bproj_[A-Za-z0-9]{6,}\b"), "<project>"),
    (re.compile(r"\bsk-…\w*|\bsk-[\w*-]+"), "<key>"),
    (
        re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I),
        "<uuid>",
    ),
    (re.compile(r"\b[0-9a-f]{16,}\b", re.I), "<hex>"),
    (re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?"), "<time>"),
    (re.compile(r"(?<![\w.-])\d+(?:\.\d+)?(?:ms|s|m|h)?(?![\w-])"), "<n>"),
    (re.compile(r"\s+"), " "),
)


def normalise(message: str) -> str:
    """The message with ids, URLs, numbers, durations and timestamps replaced by placeholders."""
    for pattern, placeholder in _VOLATILE:
        message = pattern.sub(placeholder, message)
    return message.strip().lower()


def fingerprint_of(rule: Rule, evidence: Evidence, message: str) -> str:
    """Same problem → same 12 hex digits, whatever ids, counts and times differ."""
    parts = (
        rule.category,
        rule.id,
        str(evidence.status or ""),
        evidence.error_code or "",
        evidence.param or "",
        evidence.model or "",
        normalise(message),
    )
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:12]


def _trim(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = (limit - 20) // 2
    return f"{text[:half]}\n… [{len(text) - 2 * half} characters cut] …\n{text[-half:]}"


class Classifier:
    """Decides whether an event is an OpenAI API error and, if so, which one."""

    def __init__(self, table: RuleTable | None = None, engine: str = "auto") -> None:
        """`engine`: "auto" (Hyperscan where installed), or "re" (what other platforms get)."""
        self.table = table if table is not None else load_rules()
        triggers = (*STATUS_TRIGGERS, WRAPPED_TRIGGER)
        # Who sent the error, in one pass: OpenAI (its attribution patterns or its own message
        # texts) and the other providers and services whose errors look like OpenAI's.
        said_openai = [p.regex for p in (*self.table.openai, *self.table.signatures)]
        # A hit line that is its own event and says nothing of OpenAI can make no finding (the
        # weak-hit rule: an app's own `HTTP/1.1 404` lines): dropped in the raw bytes.
        weak_hits = UnattributedLoneLines(LineMatcher(said_openai, engine=engine))
        self.prefilter = Prefilter(
            self.table.prefilter, triggers, engine=engine, hit_filter=weak_hits
        )
        other = [p.regex for p in self.table.other_providers]
        self._attribution = PatternSet([*said_openai, *other], engine=engine)
        self._openai_ids = frozenset(range(len(said_openai)))
        self._other_ids = frozenset(range(len(said_openai), len(said_openai) + len(other)))
        rules = self.table.rules
        self._fallbacks = frozenset(r.id for r in rules if not r.codes and not r.patterns)

    def classify(self, event: Event) -> Finding | None:
        """The finding for this event, or None when it is not an OpenAI API error."""
        text = event.text
        if not self.prefilter.any_in(text):
            return None
        matched = self._attribution.matching(text)
        if matched.isdisjoint(self._openai_ids) or not matched.isdisjoint(self._other_ids):
            return None  # nothing says OpenAI, or something names another provider or service
        lowered = text.lower()
        key, body = read_key(text, lowered, self.table.class_status)
        if key.status is not None and key.status < 400:
            return None
        rule = self.table.find(text, lowered, key.status, key.error_type, key.error_code)
        if rule is None or (rule.id in self._fallbacks and self._unknown_code(key.error_code)):
            # OpenAI's error, but no rule knows its cause: shown as such, never guessed (a code
            # no rule knows gets no status fallback's cause either).
            if rule is None and not self._shows_error(key, text, lowered):
                return None
            rule = self.table.unclassified
        evidence = add_details(key, text, lowered, body)
        message = _trim(redact(evidence.message or ""), MAX_MESSAGE)
        status_only = self._status_only(rule, evidence, body, text, lowered)
        quiet = below_error(text)
        return Finding(
            path=event.path,
            line=event.first_line,
            end_line=event.last_line,
            category=rule.category,
            rule=rule.id,
            severity=rule.severity,
            title=rule.title,
            status=evidence.status,
            error_type=evidence.error_type,
            error_code=evidence.error_code,
            # (read from the log like the message: a key can sit where a model name should)
            param=evidence.param and redact(evidence.param),
            model=evidence.model and redact(evidence.model),
            request_id=evidence.request_id and redact(evidence.request_id),
            message=message,
            fingerprint=fingerprint_of(rule, evidence, message),
            fixes=rule.fixes,
            docs=rule.docs,
            excerpt=_trim(redact(text), MAX_EXCERPT),
            status_only=status_only,
            quiet=quiet,
        )

    def _unknown_code(self, code: str | None) -> bool:
        """A code that some cause could hang on but that no rule knows (not one that merely
        restates the status, such as a gateway's `RATE_LIMITED`)."""
        if code is None or code in self.table.known_codes:
            return False
        return _STATUS_NAME_NOISE.sub("", code.lower()) not in self.table.status_names

    def _shows_error(self, key: Evidence, text: str, lowered: str) -> bool:
        """Whether an event that no rule matched still shows an (OpenAI) error: a failing
        status, an error code or type, or an exception class of an OpenAI client."""
        if key.status is not None or key.error_code is not None:
            return True  # (statuses under 400 were turned away before)
        if key.error_type is not None and key.error_type in self.table.error_types:
            return True
        return any(sign.search(text, lowered) for sign in self.table.error_signs)

    def _status_only(
        self, rule: Rule, evidence: Evidence, body: object, text: str, lowered: str
    ) -> bool:
        """Whether the event shows nothing but an HTTP status and its reason phrase (an httpx
        request line, `Request failed with status code 429`), or nothing but the SDK's message
        in an application's own line (`Error in quick call: Connection error.`): no code, no
        type, no error body, and the rule matched on the status, the reason phrase or that
        message alone."""
        if evidence.error_code or evidence.error_type or body:
            return False
        if evidence.status is None:
            return "\n" not in text.strip() and _BARE_SDK_MESSAGE.search(text) is not None
        if rule.id in self._fallbacks:
            return True
        bare = without_reasons(text)  # (`patterns` holds the rule's `messages` too)
        return not any(pattern.search(bare, bare.lower()) for pattern in rule.patterns)
