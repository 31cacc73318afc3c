"""The classifier: an Event in, a Finding (or nothing) out. Pure: no files, no clock, no I/O."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from oai400d.classify.attribution import UnattributedLoneLines
from oai400d.classify.evidence import (
    STATUS_TRIGGERS,
    add_details,
    find_error_body,
    read_key,
    without_reasons,
)
from oai400d.classify.prefilter import LineMatcher, LiteralSet, PatternSet, Prefilter
from oai400d.classify.rules import Rule, RuleIndex, RuleTable, load_rules
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


def fingerprint_of(
    rule: Rule, evidence: Evidence, message: str, normaliser: Callable[[str], str] = normalise
) -> str:
    """Same problem → same 12 hex digits, whatever ids, counts and times differ."""
    parts = (
        rule.category,
        rule.id,
        str(evidence.status or ""),
        evidence.error_code or "",
        evidence.param or "",
        evidence.model or "",
        normaliser(message),
    )
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:12]


def _trim(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = (limit - 20) // 2
    return f"{text[:half]}\n… [{len(text) - 2 * half} characters cut] …\n{text[-half:]}"


@dataclass(frozen=True, slots=True)
class Decision:
    """What the classifier decided about a text that is an OpenAI API error: the rule, what the
    rules matched on (status, type, code), and how much the text tells (sameerror.py)."""

    rule: Rule
    key: Evidence
    status_only: bool
    quiet: bool


class _Unknown:
    """The cache has no decision for a key (None is a decision: no finding)."""


_UNKNOWN: Final = _Unknown()

# What differs between the repetitions of one error in a storm and that no decision reads: the
# digits of timestamps and the characters of OpenAI's request ids. A decision is kept under its
# text with those blanked, each digit to one character and each letter to one of its case (so
# that every position, every bounded gap such as `^[^\n]{0,80}`, every class such as `\d` or
# `\w`, and the separators read the same), and reused for a text that differs only there.
# Digits of a timestamp are never a status, except a fraction followed by a reason phrase
# (`…:26,429 Too Many Requests`) or by aiohttp's `, message=`: such a timestamp is kept as it is.
# (Each found from a literal, `-` or `req_`, which `re` looks for fast: a pattern that starts
# with a class tries every position, ~100 µs on a traceback.)
_TIMESTAMP_TAIL = re.compile(  # a timestamp after its year
    r"-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?(?![\w:.,+-])"
)
_REQUEST_ID = re.compile(r"req_[A-Za-z0-9]{6,}\b")
_STATUS_AFTER = re.compile(
    r"""(?i),? ?["(]?(?:bad|unauthorized|forbidden|not|page|conflict|request|payload"""
    r"""|unprocessable|too|internal|service|gateway)\b|, message="""
)
_ASCII_DIGITS = frozenset("0123456789")
_BLANKS = "\x00\x01\x02"  # a blanked digit, lower-case and upper-case letter
_DIGITS = str.maketrans(dict.fromkeys("0123456789", "\x00"))
_ALNUM = str.maketrans(
    {
        **dict.fromkeys("0123456789", "\x00"),
        **dict.fromkeys("abcdefghijklmnopqrstuvwxyz", "\x01"),
        **dict.fromkeys("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "\x02"),
    }
)


def blanked(text: str) -> str:
    """The text with the digits of its timestamps and the characters of its request ids
    blanked (see above)."""
    if "-" in text:
        pieces: list[str] = []
        done = 0
        for match in _TIMESTAMP_TAIL.finditer(text):
            begin, end = match.start() - 4, match.end()
            if (
                begin < done
                or not _ASCII_DIGITS.issuperset(text[begin : match.start()])
                or (begin > 0 and text[begin - 1] in _ASCII_DIGITS)
                or _STATUS_AFTER.match(text, end) is not None
            ):
                continue
            pieces += [text[done:begin], text[begin:end].translate(_DIGITS)]
            done = end
        if pieces:
            text = "".join([*pieces, text[done:]])
    if "req_" in text:
        pieces = []
        done = 0
        for match in _REQUEST_ID.finditer(text):
            begin = match.start()
            if begin > 0 and (text[begin - 1].isalnum() or text[begin - 1] == "_"):
                continue  # (not a word of its own: `\breq_`)
            pieces += [text[done:begin], "req_", match.group(0)[4:].translate(_ALNUM)]
            done = match.end()
        if pieces:
            text = "".join([*pieces, text[done:]])
    return text


def _has_blank(text: str) -> bool:
    return any(blank in text for blank in _BLANKS)


class DecisionCache:
    """The last decisions, by their text with timestamps and request ids blanked (bounded)."""

    MAX_TEXT = 8 * 1024  # longer events are decided afresh (a body may be cut by its length)
    ENTRIES = 512  # at most ENTRIES × MAX_TEXT characters of keys: 4 MiB

    def __init__(self, entries: int = ENTRIES) -> None:
        self.entries = entries
        self._decisions: dict[str, Decision | None] = {}

    def key(self, text: str) -> str | None:
        """The key of the text, or None when its decision is not to be kept."""
        if not self.entries or len(text) > self.MAX_TEXT or _has_blank(text):
            return None
        return blanked(text)

    def get(self, key: str) -> Decision | _Unknown | None:
        return self._decisions.get(key, _UNKNOWN)

    def put(self, key: str, decision: Decision | None) -> None:
        if decision is not None and _has_blank(
            blanked(f"{decision.key.error_type} {decision.key.error_code}")
        ):
            return  # a type or code read from a blanked part: it differs from text to text
        decisions = self._decisions
        if len(decisions) >= self.entries:
            decisions.pop(next(iter(decisions), key), None)  # the oldest
        decisions[key] = decision


class _Memo:
    """A pure function of short strings, remembered for the last ENTRIES arguments (an error
    storm repeats the same messages, models and params)."""

    ENTRIES = 1024
    MAX_TEXT = 2 * 1024

    def __init__(self, function: Callable[[str], str]) -> None:
        self._function = function
        self._results: dict[str, str] = {}

    def __call__(self, text: str) -> str:
        results = self._results
        result = results.get(text)
        if result is None:
            result = self._function(text)
            if len(text) <= self.MAX_TEXT:
                if len(results) >= self.ENTRIES:
                    results.pop(next(iter(results), text), None)  # the oldest
                results[text] = result
        return result


class Classifier:
    """Decides whether an event is an OpenAI API error and, if so, which one."""

    def __init__(
        self, table: RuleTable | None = None, engine: str = "auto", remember: bool = True
    ) -> None:
        """`engine`: "auto" (Hyperscan where installed), or "re" (what other platforms get).
        `remember`: keep the decisions of repeated texts (False: decide every text afresh)."""
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
        # The rules worth trying on an event, from the literals one pass finds in it.
        self.rule_index = RuleIndex.of(self.table)
        self.triggers = LiteralSet(self.rule_index.by_literal, engine=engine)
        # Repeated texts (an error storm): their decisions, redactions and normal forms kept.
        self._decisions = DecisionCache(DecisionCache.ENTRIES if remember else 0)
        self._redacted = _Memo(redact) if remember else redact
        self._normalised = _Memo(normalise) if remember else normalise

    def classify(self, event: Event) -> Finding | None:
        """The finding for this event, or None when it is not an OpenAI API error."""
        text = event.text
        if not self._said_openai(text):
            return None  # (most candidate events: decided before a key is worth making)
        key = self._decisions.key(text)
        if key is not None:
            decided = self._decisions.get(key)
            if decided is None:
                return None
            if isinstance(decided, Decision):
                body = find_error_body(text) if "{" in text else None
                return self._finding(event, decided, body)
        decision, body = self._decide(text)
        if key is not None:
            self._decisions.put(key, decision)
        return None if decision is None else self._finding(event, decision, body)

    def _decide(self, text: str) -> tuple[Decision | None, dict[str, Any] | None]:
        """Whether a text that said OpenAI (_said_openai) is an OpenAI API error and which
        rule tells it (None: it is not), with the error body read on the way."""
        lowered = text.lower()
        key, body = read_key(text, lowered, self.table.class_status)
        if key.status is not None and key.status < 400:
            return None, None
        rule = self.rule_index.find(
            self.triggers.present(text, lowered),
            text,
            lowered,
            key.status,
            key.error_type,
            key.error_code,
        )
        if rule is None or (rule.id in self._fallbacks and self._unknown_code(key.error_code)):
            # OpenAI's error, but no rule knows its cause: shown as such, never guessed (a code
            # no rule knows gets no status fallback's cause either).
            if rule is None and not self._shows_error(key, text, lowered):
                return None, body
            rule = self.table.unclassified
        status_only = self._status_only(rule, key, body, text, lowered)
        return Decision(rule, key, status_only, below_error(text)), body

    def _said_openai(self, text: str) -> bool:
        """Whether the text holds a prefilter hit and says OpenAI, and no other provider."""
        if not self.prefilter.any_in(text):
            return False
        matched = self._attribution.matching(text)
        return not matched.isdisjoint(self._openai_ids) and matched.isdisjoint(self._other_ids)

    def _finding(self, event: Event, decision: Decision, body: dict[str, Any] | None) -> Finding:
        """The finding of an event the decision was made for: what the event shows besides
        (message, model, param, request id, excerpt) read from this event's own text."""
        text = event.text
        rule = decision.rule
        evidence = add_details(decision.key, text, text.lower(), body)
        redacted = self._redacted
        message = _trim(redacted(evidence.message or ""), MAX_MESSAGE)
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
            param=evidence.param and redacted(evidence.param),
            model=evidence.model and redacted(evidence.model),
            request_id=evidence.request_id and redacted(evidence.request_id),
            message=message,
            fingerprint=fingerprint_of(rule, evidence, message, self._normalised),
            fixes=rule.fixes,
            docs=rule.docs,
            excerpt=_trim(redact(text), MAX_EXCERPT),
            status_only=decision.status_only,
            quiet=decision.quiet,
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
