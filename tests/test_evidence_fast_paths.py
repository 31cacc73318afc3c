"""The shortcuts that skip a slow regex where it cannot match give the answers the regex gives:
the request-id, model and status readers (evidence.py) and the `re`-searched attribution patterns
(PatternSet)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from oai400d.classify import load_rules
from oai400d.classify.evidence import (
    _MODEL_PATTERNS,
    _REASON_ONLY,
    _REASON_STATUS,
    _REQUEST_ID_PATTERNS,
    _STATUS_FORMS,
    _STATUS_SHORTCUTS,
    _first,
    _first_message,
    _message_any_pattern,
    _status,
    add_details,
)
from oai400d.classify.prefilter import PatternSet
from oai400d.model import Evidence

# Pieces that make request ids, models and messages appear, overlap and fail to (`ſ` is read as
# `s` by a case-insensitive pattern; `undefined` is a value the readers skip).
PIECES = [
    "request", "Request", "REQUEST", "x-", "X-", "apim-", "_id", "-id", "Id", "ID", "id", '"',
    "'", "\\", ":", "=", " ", "abcdefgh1234", "undefined", "null", "req_", "reqXYZ123456", "ſ",
    "é", "request_id=request_id=abcdefghi", "-", "_", "\n", "Model ", "model", "odel ",
    "gpt-4o", "`", "message", "Message", "error_message=", "/deployments/", "Rate limit reached for ",
    " in ",
]  # fmt: skip
texts = st.lists(st.sampled_from(PIECES), max_size=16).map("".join)




@given(texts)
@settings(max_examples=600)
def test_detail_readers_find_what_every_pattern_finds(text: str) -> None:
    details = add_details(Evidence(), text, text.lower(), None)
    assert details.request_id == _first(_REQUEST_ID_PATTERNS, text, None)
    assert details.model == _first(_MODEL_PATTERNS, text, None)
    assert _first_message(text) == _message_any_pattern(text)


def test_request_id_after_a_skipped_value_and_with_prefixes() -> None:
    text = 'x-request-id: undefined, apim-request-id="abcdef123456", request_id=zzzzzzzz9'
    assert add_details(Evidence(), text, text.lower(), None).request_id == "abcdef123456"
    text = "REQUESTID=ABCDEFGH1 and req_short"
    assert add_details(Evidence(), text, text.lower(), None).request_id == "ABCDEFGH1"


TABLE = load_rules()
ATTRIBUTION = [p.regex for p in (*TABLE.openai, *TABLE.signatures, *TABLE.other_providers)]
# Patterns Hyperscan refuses (a lookahead), searched with `re`; one verbose, whose literals are
# not read from its text.
SLOW_ONES = [
    re.compile(r"""["']provider_name["']\s*:\s*["'](?!OpenAI|Azure)"""),
    re.compile(r"(?i)(?<!x)pro vider(?=\d)"),
    re.compile(r"(?x) p r o  vider (?=\d)"),
]
PATTERNS = [*ATTRIBUTION, *SLOW_ONES]
PATTERN_SET = PatternSet(PATTERNS)


@given(st.lists(st.sampled_from([*PIECES, "provider_name", "'", "OpenAI", "Stripe", "pro vider",
                                 "PRO VIDER", "provider", "1", "openai", "Error"]), max_size=16)
       .map("".join))  # fmt: skip
@settings(max_examples=400)
def test_pattern_set_finds_what_each_pattern_finds(text: str) -> None:
    found = PATTERN_SET.matching(text)
    assert found == {i for i, pattern in enumerate(PATTERNS) if pattern.search(text)}


# Pieces that make the status forms read through a shortcut appear, overlap and fail to.
STATUS_PIECES = [
    "Error: ", "Exception: ", "RateLimit", "Error", "Exception", "error: ", "429", "404", "042",
    "999", "12", "status", "Status", "_code", "Code", "http_", "http", "_", "\\", '"', "'", ":",
    "=", " ", "  ", "\n", ",", "(", "x", "Bad Request", "bad request", "BAD ", "Request",
    "Unauthorized", "Not Found", "Page ", "Gateway Time-out", "Gateway Timeout", "Too Large",
    "Too Many Requests", "ſervice Unavailable", "Service Unavailable", "é", "K",
    "[AI_APICallError]: ",
]  # fmt: skip
status_texts = st.lists(st.sampled_from(STATUS_PIECES), max_size=16).map("".join)


def _status_everywhere(text: str, lowered: str) -> int | None:
    """The status reader without its shortcuts: each form's pattern searched in turn."""
    for literal, pattern in _STATUS_FORMS:
        if literal in lowered:
            for match in pattern.finditer(text):
                if 100 <= int(match.group(1)) <= 599:
                    return int(match.group(1))
    if "ai_apicallerror]: " in lowered:
        for match in _REASON_ONLY.finditer(text):
            if match.group(1) in _REASON_STATUS:
                return _REASON_STATUS[match.group(1)]
    return None


@given(status_texts)
@settings(max_examples=800)
def test_status_shortcuts_read_what_their_forms_read(text: str) -> None:
    lowered = text.lower()
    for pattern, shortcut in _STATUS_SHORTCUTS.items():
        expected = [match.group(1) for match in pattern.finditer(text)]
        assert [match.group(1) for match in shortcut(text, lowered)] == expected, pattern.pattern
    assert _status(text, lowered) == _status_everywhere(text, lowered)


def test_status_shortcuts_on_known_forms() -> None:
    for text, status in [
        ("openai.RateLimitError: Error: 429 too many", 429),
        ('{"http_status": "503"} and status=404', 503),
        ('\\"statusCode\\": 401', 401),
        ("upstream said 502 Bad Gateway", 502),
        ("upstream said 503 Service Unavailable", 503),
        ("upstream said 504 gateway time-out", 504),
        ("statusstatus 1 status: 404", 404),
        ("upstream said 503 ſervice unavailable", 503),
        ("status 600, then status: 404", 404),
    ]:
        assert _status(text, text.lower()) == status, text
