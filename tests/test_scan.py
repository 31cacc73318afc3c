"""The streaming scanner: any bytes in, bounded memory, correct line numbers across chunks."""

from __future__ import annotations

import io
import json
import os
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oai400d.classify import Classifier
from oai400d.model import EventLimits
from oai400d.scan import DEFAULT_MAX_LINE, Scanner, ScanStats, scan_file, split_point
from oai400d.scan.stream import Feed, StreamScan
from oai400d.scan.wrapped import LineMap, WrappedScan

CLASSIFIER = Classifier()
ERROR_LINE = (
    "openai.RateLimitError: Error code: 429 - {'error': {'message': 'Rate limit reached for gpt-4o "
    "in organization org-abcdef123456 on tokens per min (TPM): Limit 30000, Used 29500, Requested "
    "900. Please try again in 1.2s.', 'type': 'tokens', 'param': None, 'code': 'rate_limit_exceeded'}}"
)


def scan(data: bytes, **options: int) -> list[tuple[int, int, str]]:
    scanner = Scanner(CLASSIFIER, **options)
    return [(f.line, f.end_line, f.category) for f in scanner.scan(io.BytesIO(data), "t.log")]


@given(st.binary(max_size=4096))
@settings(max_examples=300)
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    """Any bytes at all (binary, invalid UTF-8, NULs) are scanned without an exception."""
    scan(data)
    scan(data + b"\n" + ERROR_LINE.encode() + b"\n", chunk_size=64)


@given(
    st.lists(
        st.sampled_from(
            [
                b"noise line",
                b"",
                b"  indented",
                b"{",
                b"}",
                b"Traceback (most recent call last):",
                ERROR_LINE.encode(),
                b"\xff\xfe openai \x00",
            ]
        ),
        max_size=60,
    ),
    st.integers(16, 512),
)
@settings(max_examples=200)
def test_chunk_size_does_not_change_findings(lines: list[bytes], chunk: int) -> None:
    """Where the chunk boundaries fall never changes what is found or its line numbers."""
    data = b"\n".join(lines) + b"\n"
    assert scan(data, chunk_size=chunk) == scan(data)


def test_line_numbers_are_exact_far_into_a_stream() -> None:
    """Findings after many chunks carry their true 1-based line numbers."""
    noise = b"2026-11-25T10:00:00Z INFO GET /health 200 1ms\n"
    data = noise * 100_000 + ERROR_LINE.encode() + b"\n" + noise * 10 + ERROR_LINE.encode() + b"\n"
    assert scan(data, chunk_size=65536) == [
        (100_001, 100_001, "rate_limit"),
        (100_012, 100_012, "rate_limit"),
    ]


@pytest.mark.parametrize("seed", [94, 250, None])
def test_invalid_utf8_and_binary_do_not_hide_later_errors(seed: int | None) -> None:
    """Garbage before an error line is skipped over, the error still found. Seeds 94 and 250
    once hid it: a random line that left a bracket open swallowed the lines after it."""
    garbage = os.urandom(200_000) if seed is None else random.Random(seed).randbytes(200_000)
    data = garbage + b"\n\xff\xfe\xfa invalid \xc3\x28\n" + ERROR_LINE.encode() + b"\n"
    found = scan(data)
    assert found and found[-1][2] == "rate_limit"


def test_over_long_line_is_cut_and_the_scan_goes_on() -> None:
    """A 5 MB line without newline is cut at max_line; the next line is still classified."""
    data = b"x" * 5_000_000 + b"\n" + ERROR_LINE.encode() + b"\n"
    scanner = Scanner(CLASSIFIER, max_line=65536, chunk_size=1 << 20)
    found = [(f.line, f.category) for f in scanner.scan(io.BytesIO(data), "t.log")]
    assert found == [(2, "rate_limit")]
    assert scanner.stats.cut_lines == 1
    assert scanner.stats.lines == 2


def test_error_inside_an_over_long_line_is_found_in_its_kept_head() -> None:
    """An error at the start of a huge line is classified from the part that is kept."""
    data = ERROR_LINE.encode() + b" " + b"y" * 3_000_000 + b"\nnext\n"
    assert scan(data, max_line=65536, chunk_size=1 << 20) == [(1, 1, "rate_limit")]


def test_last_line_without_newline_is_classified() -> None:
    """A file whose last line has no newline still yields that line's finding."""
    assert scan(b"hello\n" + ERROR_LINE.encode()) == [(2, 2, "rate_limit")]


def test_two_process_scan_equals_one_process_scan(tmp_path: Path) -> None:
    """Splitting a big file between two processes changes neither findings nor line numbers."""
    traceback = (
        "2026-11-25 10:00:03 ERROR worker: call failed\nTraceback (most recent call last):\n"
        '  File "/app/w.py", line 9, in run\n    client.chat.completions.create()\n'
        + ERROR_LINE
        + "\n"
    )
    noise = "2026-11-25T10:00:00Z INFO GET /health 200 1ms\n"
    log = tmp_path / "big.log"
    log.write_text((noise * 700 + traceback) * 60)
    size = log.stat().st_size
    sequential = Scanner(CLASSIFIER)
    with log.open("rb") as handle:
        one = [(f.line, f.end_line, f.fingerprint) for f in sequential.scan(handle, str(log))]
    parallel = Scanner(CLASSIFIER, chunk_size=65536)
    two = [
        (f.line, f.end_line, f.fingerprint)
        for f in scan_file(parallel, str(log), size, parallel_min=1)
    ]
    assert split_point(str(log), size) is not None
    assert len(one) == 60
    assert two == one
    assert parallel.stats.lines == sequential.stats.lines == 60 * 705


# --- the parts of a scan: one stream's events, a wrapped file's streams -------------------------

TRACEBACK = (
    b"2026-11-25 10:00:03 ERROR worker: call failed\n"
    b"Traceback (most recent call last):\n"
    b'  File "/app/w.py", line 9, in run\n'
    b"    client.chat.completions.create()\n" + ERROR_LINE.encode() + b"\n"
)
NEXT_RECORD = b"2026-11-25T10:00:04Z INFO GET /health 200 1ms\n"


def test_a_stream_scan_holds_an_event_until_the_line_after_it_is_read() -> None:
    """A traceback that ends the bytes read so far may go on: nothing comes out until the next
    record arrives, then one finding over all its lines."""
    stats = ScanStats()
    streams = StreamScan(CLASSIFIER, DEFAULT_MAX_LINE, EventLimits(), stats)
    feed = Feed()
    assert list(streams.push(feed, NEXT_RECORD * 3 + TRACEBACK, False, "t.log")) == []
    found = list(streams.push(feed, NEXT_RECORD, False, "t.log"))
    assert [(f.line, f.end_line, f.category) for f in found] == [(4, 8, "rate_limit")]
    assert list(streams.push(feed, b"", True, "t.log")) == []
    assert (feed.lines(), stats.events) == (9, 1)


def test_a_stream_scan_counts_the_lines_of_a_stream_without_a_last_newline() -> None:
    """The last line without a newline is a line, and is classified at the end."""
    streams = StreamScan(CLASSIFIER, DEFAULT_MAX_LINE, EventLimits(), ScanStats())
    feed = Feed()
    assert list(streams.push(feed, NEXT_RECORD + ERROR_LINE.encode(), False, "t.log")) == []
    found = list(streams.push(feed, b"", True, "t.log"))
    assert [(f.line, f.category) for f in found] == [(2, "rate_limit")] and feed.lines() == 2


def test_a_line_map_keeps_runs_and_forgets_what_is_behind() -> None:
    """Stream lines that follow each other in the file are one run; a gap starts another; the
    runs wholly behind a line can be dropped without changing what later lines map to."""
    lines = LineMap()
    lines.add(3)
    lines.add(4)  # the same run: stream line 2 is physical line 4
    lines.add(9, count=3)  # stream lines 3-5 are physical lines 9-11
    lines.add(20)
    assert (lines.starts, lines.physical) == ([1, 3, 6], [3, 9, 20])
    assert [lines(n) for n in range(1, 7)] == [3, 4, 9, 10, 11, 20]
    lines.forget_before(4)
    assert (lines.starts, lines.physical) == ([3, 6], [9, 20])
    assert [lines(n) for n in range(3, 7)] == [9, 10, 11, 20]


def test_a_wrapped_scan_gives_each_stream_s_findings_in_file_order() -> None:
    """Two docker streams interleaved: a traceback on stdout whose lines are spread among
    stderr's, an error line on stderr in the middle of it; both come out with physical line
    numbers (a traceback at its first line), in file order."""

    def docker(text: bytes, stream: str) -> bytes:
        record = {"log": text.decode() + "\n", "stream": stream, "time": "2026-11-25T10:00:00Z"}
        return json.dumps(record).encode() + b"\n"

    stdout = TRACEBACK.splitlines() + NEXT_RECORD.splitlines()
    physical = [docker(stdout[0], "stdout"), docker(stdout[1], "stdout")]
    physical += [docker(NEXT_RECORD.rstrip(), "stderr"), docker(ERROR_LINE.encode(), "stderr")]
    physical += [docker(NEXT_RECORD.rstrip(), "stderr")]
    physical += [docker(line, "stdout") for line in stdout[2:]]
    data = b"".join(physical)
    stats = ScanStats()
    streams = StreamScan(CLASSIFIER, DEFAULT_MAX_LINE, EventLimits(), stats)
    wrapped = WrappedScan("docker", data, streams, stats, DEFAULT_MAX_LINE, "w.log")
    found = list(wrapped.scan(data[:200], False, iter([data[200:], b""]).__next__))
    assert [(f.line, f.end_line, f.category) for f in found] == [
        (1, 8, "rate_limit"),
        (4, 4, "rate_limit"),
    ]
    assert stats.lines == 9
