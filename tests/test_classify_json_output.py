"""`classify --json` writes each finding as json.dumps of its to_json() (path masked) would: the
hand-built line, with each rule's fixed part encoded once, gives the same text."""

from __future__ import annotations

import json
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from oai400d.cli import _finding_json
from oai400d.masking import redact
from oai400d.model import Finding

# Text that JSON escapes or keeps as it is under ensure_ascii=False: quotes, backslashes, control
# characters, non-ASCII and non-BMP characters, a lone surrogate (from surrogateescape), and a
# key the path masking replaces.
PIECES = [
    "a", " ", '"', "\\", "\n", "\t", "\x00", "\x1f", "\x7f", "é", "\u2028", "😀", "\udc80", "/",
    "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD", "{", "}", ",", ":", "null",
]  # fmt: skip
texts = st.lists(st.sampled_from(PIECES), max_size=12).map("".join)
optional_texts = st.none() | texts
advice = st.lists(texts, max_size=3).map(tuple)
findings = st.builds(
    Finding,
    path=texts,
    line=st.integers(0, 10**9),
    end_line=st.integers(0, 10**9),
    category=texts,
    rule=texts,
    severity=texts,
    title=texts,
    status=st.none() | st.integers(-(10**6), 10**6),
    error_type=optional_texts,
    error_code=optional_texts,
    param=optional_texts,
    model=optional_texts,
    request_id=optional_texts,
    message=texts,
    fingerprint=texts,
    fixes=advice,
    docs=advice,
    excerpt=texts,
    facts=advice,
)


def _through_json_dumps(finding: Finding) -> str:
    """What `classify --json` wrote before the fixed parts were cached."""
    document = finding.to_json()
    document["path"] = redact(finding.path)
    return json.dumps(document, ensure_ascii=False) + "\n"


@given(st.lists(findings, min_size=1, max_size=4))
@settings(max_examples=300)
def test_finding_json_is_what_json_dumps_writes(batch: list[Finding]) -> None:
    # Several at once, so that a cached rule part or path is reused by the next finding.
    for finding in batch + batch:
        assert _finding_json(finding) == _through_json_dumps(finding)


def test_same_rule_with_other_advice_gets_its_own() -> None:
    first = Finding(
        path="/var/log/app.log", line=1, end_line=1, category="quota", rule="r", severity="error",
        title="t", status=429, error_type=None, error_code=None, param=None, model=None,
        request_id=None, message="m", fingerprint="f", fixes=("one",), docs=("https://a",),
        excerpt="e",
    )  # fmt: skip
    second = replace(first, fixes=("two",), docs=())
    checked = replace(first, facts=("The refused key ends in …ab34.",))
    for finding in (first, second, first, checked, first):
        assert _finding_json(finding) == _through_json_dumps(finding)
