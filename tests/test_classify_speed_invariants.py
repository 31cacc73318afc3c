"""What `classify` does to go fast must change no finding.

The weak-hit rule (classify/attribution.py) drops, in the raw bytes, the hit lines that are a
whole record by themselves and say nothing of OpenAI (an application's own `HTTP/1.1 404`
lines). Here: examples both ways, and the whole corpus scanned with and without the rule, one
case after another in one file, giving the same findings.
"""

from __future__ import annotations

import io

import pytest

from oai400d.classify import Classifier
from oai400d.classify.prefilter import hyperscan
from oai400d.scan import Scanner

from .support import load_corpus

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
