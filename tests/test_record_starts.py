"""Ruby's Logger lines and nginx/Apache access lines start a record (model.RECORD_START): each is
an event by itself, while what follows a Logger line without a start of its own (a Ruby
backtrace) still joins it."""

from __future__ import annotations

import time

import pytest

from oai400d.assemble import Assembler, starts_record
from oai400d.classify.attribution import _RECORD_START as RECORD_START_BYTES
from oai400d.model import Line

STARTS = [
    "I, [2024-05-01T12:00:01.123456 #4242]  INFO -- : Completed 429 Too Many Requests in 12ms",
    "E, [2024-05-01T12:00:01.1 #1] ERROR -- : Faraday::TooManyRequestsError",
    "D, [2024-05-01T12:00:01 #1] DEBUG -- openai: request",
    '10.1.2.3 - - [01/May/2024:12:00:03 +0000] "POST /v1/chat HTTP/1.1" 429 12 "-" "curl"',
    '::1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326',
    'web_1  | 172.18.0.1 - - [01/May/2024:12:00:03 +0000] "GET / HTTP/1.1" 502 157',
    'proxy.example.com:443 - - [01/May/2024:12:00:03 +0000] "GET / HTTP/1.1" 504 0',
]
NOT_STARTS = [
    "/usr/lib/ruby/gems/3.2.0/gems/faraday-2.9.0/lib/faraday/response.rb:12:in `on_complete'",
    "    from app/services/chat.rb:31:in `call'",
    "openai.RateLimitError: Error code: 429 - {'at': '[01/May/2024:12:00:00'}",
    "I, the app, [2024-05-01T12:00:01] said",
    "a b c d [01/May/2024:12:00:00 +0000]",
]


@pytest.mark.parametrize("text", STARTS)
def test_logger_and_access_lines_start_a_record(text: str) -> None:
    assert starts_record(text)
    assert RECORD_START_BYTES.match(text.encode()) is not None  # the prefilter reads the same


@pytest.mark.parametrize("text", NOT_STARTS)
def test_continuations_do_not(text: str) -> None:
    assert not starts_record(text)
    assert RECORD_START_BYTES.match(text.encode()) is None


def _events(lines: list[str]) -> list[tuple[int, int]]:
    assembler = Assembler("t.log")
    events = []
    for number, text in enumerate(lines, 1):
        events.extend(assembler.feed(Line("t.log", number, 0, text)))
    events.extend(assembler.flush())
    return [(event.first_line, event.last_line) for event in events]


def test_a_backtrace_joins_its_logger_line_and_access_lines_stand_alone() -> None:
    lines = [
        STARTS[3],
        "E, [2024-05-01T12:00:01.1 #1] ERROR -- : the server responded with status 429",
        "    /usr/lib/ruby/gems/3.2.0/gems/faraday-2.9.0/lib/faraday/response.rb:12:in `on_complete'",
        "\tfrom app/services/chat.rb:31:in `call'",
        STARTS[0],
        STARTS[4],
        STARTS[3],
    ]
    assert _events(lines) == [(1, 1), (2, 4), (5, 5), (6, 6), (7, 7)]


def test_the_access_form_backtracks_little() -> None:
    # Long runs of words and spaces before no `[date`: bounded quantifiers, no blow-up.
    started = time.perf_counter()
    for _ in range(100):
        assert not starts_record("a " * 5000 + "[01/May")
        assert not starts_record("a" * 5000 + " b c [01/May/20")
    assert time.perf_counter() - started < 2.0
