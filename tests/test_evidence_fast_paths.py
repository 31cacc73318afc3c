"""The shortcuts that skip a slow regex where it cannot match give the answers the regex gives:
the request-id and model readers (evidence.py) and the `re`-searched attribution patterns
(PatternSet)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from oai400d.classify import load_rules
from oai400d.classify.evidence import (
    _MESSAGE_PATTERNS,
    _MODEL_PATTERNS,
    _REQUEST_ID_PATTERNS,
    _first,
    _first_message,
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


def _first_message_everywhere(text: str) -> str | None:
    """The message reader without its shortcut: each pattern searched in turn."""
    for pattern in _MESSAGE_PATTERNS:
        match = pattern.search(text)
        if match:
            value = next((g for g in match.groups() if g is not None), "")
            value = value.replace('\\"', '"').replace("\\'", "'").strip()
            if value:
                return value
    return None


@given(texts)
@settings(max_examples=600)
def test_detail_readers_find_what_every_pattern_finds(text: str) -> None:
    details = add_details(Evidence(), text, text.lower(), None)
    assert details.request_id == _first(_REQUEST_ID_PATTERNS, text, None)
    assert details.model == _first(_MODEL_PATTERNS, text, None)
    assert _first_message(text) == _first_message_everywhere(text)


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
