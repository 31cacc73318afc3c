"""The classifier: an Event in, a Finding (or nothing) out. Pure: no files, no clock, no I/O."""

from __future__ import annotations

import hashlib
import re

from oai400d.classify.evidence import STATUS_TRIGGERS, add_details, read_key
from oai400d.classify.prefilter import PatternSet, Prefilter
from oai400d.classify.redact import redact
from oai400d.classify.rules import Rule, RuleTable, load_rules
from oai400d.model import WRAPPED_PIECE, Event, Evidence, Finding

MAX_MESSAGE = 1000
# Pieces of a wrapped message are re-flowed into one text that the prefilter must not miss.
WRAPPED_TRIGGER = WRAPPED_PIECE.replace("(?=\\S)", "\\S")
MAX_EXCERPT = 4000

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
        self.prefilter = Prefilter(self.table.prefilter, triggers, engine=engine)
        # Who sent the error, in one pass: OpenAI (its attribution patterns or its own message
        # texts) and the other providers and services whose errors look like OpenAI's.
        said_openai = [p.regex for p in (*self.table.openai, *self.table.signatures)]
        other = [p.regex for p in self.table.other_providers]
        self._attribution = PatternSet([*said_openai, *other], engine=engine)
        self._openai_ids = frozenset(range(len(said_openai)))
        self._other_ids = frozenset(range(len(said_openai), len(said_openai) + len(other)))
        rules = self.table.rules
        self._status_only = frozenset(r.id for r in rules if not r.codes and not r.patterns)

    def status_only(self, finding: Finding) -> bool:
        """Whether the finding rests on an HTTP status alone (a status fallback rule): the
        weakest evidence, e.g. an httpx request line logged just before the real exception."""
        return finding.rule in self._status_only

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
        if rule is None:
            return None
        evidence = add_details(key, text, lowered, body)
        message = _trim(redact(evidence.message or ""), MAX_MESSAGE)
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
            param=evidence.param,
            model=evidence.model,
            request_id=evidence.request_id,
            message=message,
            fingerprint=fingerprint_of(rule, evidence, message),
            fixes=rule.fixes,
            docs=rule.docs,
            excerpt=_trim(redact(text), MAX_EXCERPT),
        )
