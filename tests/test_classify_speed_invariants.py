"""What `classify` does to go fast must change no finding.

The weak-hit rule (classify/attribution.py) drops, in the raw bytes, the hit lines that are a
whole record by themselves and say nothing of OpenAI (an application's own `HTTP/1.1 404`
lines). Here: examples both ways, and the whole corpus scanned with and without the rule, one
case after another in one file, giving the same findings.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

from oai400d.assemble import Assembler
from oai400d.classify import Classifier
from oai400d.classify.engine import DecisionCache
from oai400d.classify.evidence import read_key
from oai400d.classify.prefilter import hyperscan
from oai400d.model import EventLimits, Finding, Line
from oai400d.scan import Scanner

from .support import load_corpus

BENCH = Path(__file__).resolve().parent.parent / "bench"

pytestmark = pytest.mark.skipif(hyperscan is None, reason="the weak-hit rule needs Hyperscan")

CLASSIFIER = Classifier()
# The same classifier with the rule off: every prefilter hit goes on to the events.
WITHOUT_RULE = Classifier(CLASSIFIER.table)
WITHOUT_RULE.prefilter.hit_filter = None

BEFORE = "2024-05-01 12:00:00,100 INFO app.web: GET /healthz 200 in 2 ms\n"
AFTER = "2024-05-01 12:00:00,300 INFO app.web: GET /healthz 200 in 3 ms\n"


def _hits(text: str) -> list[int]:
    """The line numbers (from 1) of the hit lines the prefilter hands on."""
    data = text.encode("utf-8")
    return [data.count(b"\n", 0, start) + 1 for start in CLASSIFIER.prefilter.hit_lines(data)]


def _findings(classifier: Classifier, text: str, chunk_size: int = 1 << 20) -> list[tuple]:
    scanner = Scanner(classifier, chunk_size=chunk_size, wrapper="none")
    return [
        (f.line, f.end_line, f.rule, f.fingerprint, f.message, f.excerpt)
        for f in scanner.scan(io.BytesIO(text.encode("utf-8")), "t.log")
    ]


@pytest.mark.parametrize(
    "line",
    [
        'INFO:     10.0.0.7:51234 - "GET /api/orders/7 HTTP/1.1" 404 Not Found',
        '{"ts": "2024-05-01T12:00:00Z", "level": "error", "msg": "request failed", "status": 503}',
        "2024-05-01 12:00:00,200 WARNING app.client: inventory call failed: status code 502",
        "2024-05-01 12:00:00,200 ERROR app.jobs: fetch failed: httpx.ReadTimeout: timed out",
    ],
)
def test_an_apps_own_failing_request_line_is_dropped_before_decoding(line: str) -> None:
    assert WITHOUT_RULE.prefilter.hit_lines((BEFORE + line + "\n" + AFTER).encode()) != []
    assert _hits(BEFORE + line + "\n" + AFTER) == []


@pytest.mark.parametrize(
    ("text", "hit"),
    [
        # the line itself names OpenAI
        (
            "2024-05-01 12:00:00,200 INFO httpx: HTTP Request: POST "
            'https://api.openai.com/v1/chat/completions "HTTP/1.1 429 Too Many Requests"\n',
            2,
        ),
        # the attribution is in a frame of the traceback above the weak line
        (
            "Traceback (most recent call last):\n"
            '  File "/app/.venv/lib/python3.11/site-packages/openai/_base_client.py", line 9\n'
            "httpx.ReadTimeout: timed out\n",
            4,
        ),
        # the body under a status line: one event, whose second line may say more
        (
            "2024-05-01 12:00:00,200 ERROR app.llm: upstream answered status=500\n"
            '  {"error": {"message": "The server had an error", "type": "server_error"}}\n',
            2,
        ),
    ],
)
def test_a_weak_hit_that_may_belong_to_openai_is_kept(text: str, hit: int) -> None:
    assert hit in _hits(BEFORE + text + AFTER)


def test_a_weak_line_whose_next_line_is_not_read_yet_is_kept() -> None:
    """The next line might continue it (a body): the scanner must wait and see."""
    line = 'INFO:     10.0.0.7:51234 - "GET /api/orders/7 HTTP/1.1" 404 Not Found\n'
    assert _hits(BEFORE + line) == [2]


def test_a_non_ascii_weak_line_is_kept() -> None:
    """`re` reads `\\b` and `\\w` of non-ASCII text as Unicode: no guessing from the bytes."""
    line = 'INFO:     10.0.0.7:51234 - "GET /api/café HTTP/1.1" 404 Not Found\n'
    assert _hits(BEFORE + line + AFTER) == [2]


def test_the_corpus_gives_the_same_findings_with_and_without_the_weak_hit_rule() -> None:
    """Every case between ordinary lines and an app's own failing requests, in one file, read
    in small chunks (so that hits fall at chunk ends) and in one."""
    own = 'INFO:     10.0.0.7:51234 - "GET /api/orders/7 HTTP/1.1" 404 Not Found\n'
    parts = []
    for case in load_corpus():
        parts += [BEFORE, own, case.file.read_text(encoding="utf-8", errors="replace"), "\n"]
        parts += [own, AFTER]
    text = "".join(parts)
    expected = _findings(WITHOUT_RULE, text)
    assert expected  # (the corpus yields findings at all)
    assert _findings(CLASSIFIER, text) == expected
    assert _findings(CLASSIFIER, text, chunk_size=4093) == expected


# --- the rules tried per event, and the decisions kept for repeated texts ----------------------


def _texts_of_the_corpus() -> list[str]:
    """Every event of every case as the daemon's Assembler makes it, and every line alone."""
    texts: list[str] = []
    for case in load_corpus():
        lines = case.file.read_text(encoding="utf-8", errors="replace").splitlines()
        assembler = Assembler("t.log", EventLimits())
        for number, text in enumerate(lines, start=1):
            texts += [event.text for event in assembler.feed(Line("t.log", number, 0, text))]
        texts += [event.text for event in assembler.flush()]
        texts += lines
    return texts


def test_the_rules_tried_give_the_first_rule_that_trying_every_rule_gives() -> None:
    """RuleIndex tries only the rules the literals found can let match; the first that matches
    must be the one RuleTable.find gives by trying them all in order, on every text of the
    corpus (and with no status, no code, another code)."""
    table = CLASSIFIER.table
    found = 0
    for text in _texts_of_the_corpus():
        lowered = text.lower()
        key, _ = read_key(text, lowered, table.class_status)
        present = CLASSIFIER.triggers.present(text, lowered)
        assert present == {literal for literal in CLASSIFIER.triggers.literals if literal in lowered}
        for status, code in (
            (key.status, key.error_code),
            (None, key.error_code),
            (key.status, None),
            (key.status, "model_not_found"),
        ):
            expected = table.find(text, lowered, status, key.error_type, code)
            chosen = CLASSIFIER.rule_index.find(
                present, text, lowered, status, key.error_type, code
            )
            assert chosen is expected, text
            found += expected is not None
    assert found > 1000  # (the corpus matches rules at all)


def _shifted(text: str, step: int) -> str:
    """The text with the digits of its timestamps and the characters of its request ids
    changed, as the repetitions of one error in a storm are."""
    def timestamp(match: re.Match[str]) -> str:
        return "".join(
            str((int(ch) + step) % 10) if ch.isdigit() else ch for ch in match.group(0)
        )

    text = re.sub(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?", timestamp, text)
    return re.sub(
        r"req_[A-Za-z0-9]{6,}",
        lambda m: "req_" + "".join(chr(ord("a") + (ord(c) + step) % 26) for c in m.group(0)[4:]),
        text,
    )


def _every_field(classifier: Classifier, text: str) -> list[Finding]:
    scanner = Scanner(classifier, chunk_size=1 << 16, wrapper="none")
    return list(scanner.scan(io.BytesIO(text.encode("utf-8")), "t.log"))


def test_the_corpus_repeated_gives_the_same_findings_with_and_without_the_decisions_kept() -> None:
    """Each case three times, its timestamps and request ids changed each time: every field of
    every finding (line numbers, message, request id, excerpt, fingerprint) is what deciding
    every text afresh gives."""
    parts = []
    for case in load_corpus():
        text = case.file.read_text(encoding="utf-8", errors="replace")
        parts += [BEFORE, *(_shifted(text, step) + "\n" for step in range(3)), AFTER]
    text = "".join(parts)
    expected = _every_field(Classifier(CLASSIFIER.table, remember=False), text)
    assert len(expected) > 3000
    assert _every_field(Classifier(CLASSIFIER.table), text) == expected


def test_an_error_storm_gives_the_same_findings_with_and_without_the_decisions_kept(
    tmp_path: Path,
) -> None:
    out = tmp_path / "storm.log"
    generate = [sys.executable, str(BENCH / "gen_log.py"), "--shape", "storm", "--size", "1M"]
    subprocess.run([*generate, "--out", str(out)], check=True, capture_output=True, timeout=60)
    text = out.read_text(encoding="utf-8")
    expected = _every_field(Classifier(CLASSIFIER.table, remember=False), text)
    assert len(expected) > 1000
    assert _every_field(Classifier(CLASSIFIER.table), text) == expected


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        # only a timestamp's digits, or a request id, differ: one decision
        (
            "2024-05-01 12:00:00,123 ERROR app: openai.RateLimitError: Error code: 429 req_abc123",
            "2025-06-02 13:01:09,987 ERROR app: openai.RateLimitError: Error code: 429 req_xyz789",
            True,
        ),
        # a fraction that reads as a status: kept as it is
        (
            "2024-05-01 12:00:00,429 Too Many Requests from api.openai.com",
            "2024-05-01 12:00:00,503 Too Many Requests from api.openai.com",
            False,
        ),
        # a timestamp of another length (a bounded gap may then reach elsewhere): another key
        (
            "2024-05-01 12:00:00,1 ERROR app: API key required",
            "2024-05-01 12:00:00,123 ERROR app: API key required",
            False,
        ),
        # any other number, or a letter's case in an id: another key
        ("openai: Error code: 429 at 2024-05-01", "openai: Error code: 503 at 2024-05-01", False),
        ("req_abcdef", "req_Abcdef", False),
    ],
)
def test_decisions_are_kept_under_what_no_decision_reads(first: str, second: str, same: bool) -> None:
    cache = DecisionCache()
    assert (cache.key(first) == cache.key(second)) is same
    assert len(cache.key(first) or "") == len(first)


def test_a_text_holding_a_blank_is_never_kept() -> None:
    assert DecisionCache().key("2024-05-01 12:00:00 \x00 openai") is None
