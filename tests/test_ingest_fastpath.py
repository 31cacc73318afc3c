"""The daemon's fast path (scan/live.py, Tail.raw): decoding and assembling only around the
prefilter's hits gives the same findings as feeding every line to the Assembler, the way the
daemon did before; and the positions it saves let a restart repeat and lose nothing."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oai400d.assemble import Assembler
from oai400d.classify import Classifier
from oai400d.config import parse_settings
from oai400d.ingest import POSITIONS_EVERY, Ingest, Ingested
from oai400d.model import Event, EventLimits, RawLines
from oai400d.scan.live import KEEP_BYTES, SAFE_TAIL_BYTES, LiveFile, Position
from oai400d.scan.stream import HitEvents
from oai400d.sources.tail import Tail

from .support import NothingSaved, load_corpus, read_until

CLASSIFIER = Classifier()
LIMITS = EventLimits()
ERROR_LINE = (
    "2024-05-01 12:00:00,200 ERROR app.llm: openai.NotFoundError: Error code: 404 - {'error': "
    "{'message': 'The model `gpt-x` does not exist or you do not have access to it.', "
    "'type': 'invalid_request_error', 'param': None, 'code': 'model_not_found'}}"
)
# Plain corpus cases, each a block of lines kept together (a traceback stays a traceback).
CASE_BLOCKS = [
    case.file.read_bytes().decode("utf-8", "replace").rstrip("\n").split("\n")
    for case in load_corpus()[::7]
    if not case.file.read_bytes().lstrip().startswith(b'{"log"')
]
# Lines that start, go on or end events in every way the Assembler knows, and ordinary ones.
LINES = (
    "2024-05-01 12:00:00,101 INFO app.web: GET /healthz 200 in 2 ms",
    'level=info ts=2024-05-01T12:00:00Z msg="request served" path=/v1/summary status=200',
    "2024-05-01 12:00:00,000 ERROR app: call failed",
    "ERROR:root:openai.RateLimitError: Error code: 429 - {'error': {'code': 'rate_limit_exceeded'",
    "Traceback (most recent call last):",
    '  File "/app/openai/_base_client.py", line 1, in request',
    "openai.AuthenticationError: Error code: 401 - {'error': {'code': 'invalid_api_key'}}",
    "During handling of the above exception, another exception occurred:",
    "",
    "{",
    '    "message": "You exceeded your current quota", "code": "insufficient_quota"',
    "}",
    "Error: 429 You exceeded your current quota, please check your plan and billing details.",
    "    at OpenAI.makeStatusError (node_modules/openai/core.js:1:1)",
    "plain words",
    "Status: 404 (Not Found)",
    "Content:",
    "2024-01-17 11:55:21                    RateLimitError: Error code: 429 -",
    "2024-01-17 11:55:21                    {'error': {'message': 'You exceeded",
    "x" * 300,  # over max_line when it is 120
)
PIECES = [[line] for line in LINES] + CASE_BLOCKS


@dataclass
class Reader:
    """One file read as the daemon reads it: a Tail, and the Assembler (every line) or the
    fast path (raw) after it."""

    path: Path
    raw: bool
    max_line: int
    start: Position = field(default_factory=lambda: Position(0, 0))
    events: list[Event] = field(default_factory=list)
    tail_bytes: int = SAFE_TAIL_BYTES
    # The lines kept in memory, the earlier ones read again from the file when a walk back
    # reaches their start; None: the whole lookback kept in memory, nothing read again.
    keep_bytes: int | None = KEEP_BYTES
    last_line_first: bool = True  # LiveFile's: safe_position tries the last two lines first

    def __post_init__(self) -> None:
        fd = os.open(self.path, os.O_RDONLY)
        info = os.fstat(fd)
        self.tail = Tail(str(self.path), fd, info, b"", self.max_line, 0.0, "none", self.raw)
        self.tail.seek(self.start.offset, self.start.line_no)
        self.assembler = Assembler(str(self.path), LIMITS)
        hits = HitEvents(CLASSIFIER.prefilter, self.max_line, LIMITS)
        if self.keep_bytes is None:
            self.live = LiveFile(
                str(self.path),
                hits,
                self.start,
                self.tail_bytes,
                last_line_first=self.last_line_first,
            )
        else:
            self.live = LiveFile(
                str(self.path),
                hits,
                self.start,
                self.tail_bytes,
                reread=self.tail.read_at,
                keep_bytes=self.keep_bytes,
                last_line_first=self.last_line_first,
            )

    def read(self) -> None:
        self.tail.read(1 << 30)
        self._take()

    def timeout(self) -> None:
        """The multi-line timeout: whatever is being gathered is complete."""
        self.events += self.live.flush() if self.raw else self.assembler.flush()

    def finish(self) -> None:
        self.read()  # (a reader made at the last write has read nothing yet)
        self.tail.finish()
        self._take()
        self.timeout()

    def _take(self) -> None:
        self.tail.end_block()
        for block in self.tail.raw_out:
            self.events += self.live.feed(block)
        for line in self.tail.out:
            self.events += self.assembler.feed(line)
        self.tail.raw_out, self.tail.out = [], []

    def findings(self) -> list[tuple[int, int, str, str]]:
        found = (CLASSIFIER.classify(event) for event in self.events)
        return [(f.line, f.end_line, f.category, f.rule) for f in found if f is not None]


@st.composite
def writes(draw: st.DrawFn) -> tuple[bytes, list[int], list[bool]]:
    """A log of corpus cases and ordinary lines, the sizes of the writes that make it (cutting
    lines anywhere), and after which writes the multi-line timeout passes."""
    pieces = draw(st.lists(st.sampled_from(PIECES), max_size=30))
    data = "".join(line + "\n" for piece in pieces for line in piece).encode()
    sizes: list[int] = []
    while sum(sizes) < len(data):
        sizes.append(draw(st.integers(1, max(1, len(data) // 3))))
    timeouts = draw(st.lists(st.booleans(), min_size=len(sizes), max_size=len(sizes)))
    return data, sizes, timeouts


@given(writes(), st.sampled_from([1024 * 1024, 120]), st.integers(0, 40), st.sampled_from([1, 200]))
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_the_fast_path_finds_what_feeding_every_line_finds(
    tmp_path: Path,
    log: tuple[bytes, list[int], list[bool]],
    max_line: int,
    restart: int,
    tiny_keep: int,
) -> None:
    """Random mixes of corpus cases and ordinary lines, written in random pieces, with and
    without the multi-line timeout between them: the same findings and the same events with a
    hit either way; after each read the saved position is a line start with its true line
    number, and a restart there (the pending state lost) repeats and loses nothing. The saved
    position is the same whether the walk back to it starts over the last few lines kept
    (tail_bytes) or over all of them. And it is the same, as are the events, when only a tiny
    tail of lines is kept in memory (tracebacks and bodies run past it: the walk back reads
    the earlier bytes again from the file) as when the whole lookback is."""
    data, sizes, timeouts = log
    path = tmp_path / f"app-{os.urandom(4).hex()}.log"
    path.write_bytes(b"")
    every_line = Reader(path, raw=False, max_line=max_line)
    fast = Reader(path, raw=True, max_line=max_line)
    small_tail = Reader(path, raw=True, max_line=max_line, tail_bytes=300)
    whole = Reader(path, raw=True, max_line=max_line, tail_bytes=1 << 62)
    in_memory = Reader(path, raw=True, max_line=max_line, keep_bytes=None)
    tiny = Reader(path, raw=True, max_line=max_line, keep_bytes=tiny_keep)
    before_restart: list[tuple[int, int, str, str]] | None = None
    restarted: Reader | None = None
    written = 0
    for index, (size, timeout) in enumerate(zip(sizes, timeouts, strict=True)):
        with path.open("ab") as handle:
            handle.write(data[written : written + size])
        written += size
        for reader in (every_line, fast, restarted, small_tail, whole, in_memory, tiny):
            if reader is not None:
                reader.read()
                if timeout:
                    reader.timeout()
        at = fast.live.safe_position()
        assert small_tail.live.safe_position() == at == whole.live.safe_position()
        assert in_memory.live.safe_position() == at == tiny.live.safe_position()
        assert at.offset == 0 or data[at.offset - 1 : at.offset] == b"\n"
        assert at.line_no == data.count(b"\n", 0, at.offset)
        if index == restart:  # a crash: what was pending is lost, reading resumes at `at`
            before_restart = fast.findings()
            restarted = Reader(path, raw=True, max_line=max_line, start=at)
    for reader in (every_line, fast, restarted, in_memory, tiny):
        if reader is not None:
            reader.finish()
    expected = every_line.findings()
    assert fast.findings() == expected
    assert tiny.events == in_memory.events == fast.events
    # Each event the fast path makes is one the line-by-line path makes too; it may make fewer
    # (a lone line that nothing attributes to OpenAI is dropped in the raw bytes: no finding).
    hit_events = [e for e in every_line.events if CLASSIFIER.prefilter.any_in(e.text)]
    fast_events = [e for e in fast.events if CLASSIFIER.prefilter.any_in(e.text)]
    assert [e for e in fast_events if e not in hit_events] == []
    if restarted is not None and before_restart is not None:
        assert before_restart + restarted.findings() == expected


@st.composite
def long_writes(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    """A longer log of the same pieces, written in pieces of a few lines (so that many blocks
    are kept), for the saved position's walk back over the last of them."""
    pieces = draw(st.lists(st.sampled_from(PIECES), min_size=20, max_size=200))
    data = "".join(line + "\n" for piece in pieces for line in piece).encode()
    sizes: list[int] = []
    while sum(sizes) < len(data):
        sizes.append(draw(st.integers(1, 600)))
    return data, sizes


@given(long_writes(), st.sampled_from([300, 800, 2000]), st.sampled_from([1024 * 1024, 120]))
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_the_saved_position_from_the_last_lines_is_the_one_from_all_kept(
    tmp_path: Path, log: tuple[bytes, list[int]], tail_bytes: int, max_line: int
) -> None:
    """After every read, the position a commit saves is the same whether its walk back starts
    over the last lines kept (as few as `tail_bytes`) or over the whole lookback."""
    data, sizes = log
    path = tmp_path / f"app-{os.urandom(4).hex()}.log"
    path.write_bytes(b"")
    tail = Reader(path, raw=True, max_line=max_line, tail_bytes=tail_bytes)
    whole = Reader(path, raw=True, max_line=max_line, tail_bytes=1 << 62, keep_bytes=None)
    tiny = Reader(path, raw=True, max_line=max_line, keep_bytes=tail_bytes // 4)
    written = 0
    for size in sizes:
        with path.open("ab") as handle:
            handle.write(data[written : written + size])
        written += size
        for reader in (tail, whole, tiny):
            reader.read()
        at = whole.live.safe_position()
        assert tail.live.safe_position() == at == tiny.live.safe_position()
    for reader in (tail, whole, tiny):
        reader.finish()
    assert tail.events == whole.events == tiny.events


@given(writes(), st.sampled_from([1024 * 1024, 120]))
@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_the_saved_position_from_the_last_two_lines_is_the_one_from_the_longer_walks(
    tmp_path: Path, log: tuple[bytes, list[int], list[bool]], max_line: int
) -> None:
    """After every read and every multi-line timeout, the position a commit saves is the same
    whether it first tries the last two lines alone (a last line that starts a record) or
    always walks back over the last lines kept and, when needed, all of them."""
    data, sizes, timeouts = log
    path = tmp_path / f"app-{os.urandom(4).hex()}.log"
    path.write_bytes(b"")
    quick = Reader(path, raw=True, max_line=max_line)
    longer = Reader(path, raw=True, max_line=max_line, last_line_first=False)
    written = 0
    for size, timeout in zip(sizes, timeouts, strict=True):
        with path.open("ab") as handle:
            handle.write(data[written : written + size])
        written += size
        for reader in (quick, longer):
            reader.read()
        assert quick.live.safe_position() == longer.live.safe_position()
        if timeout:
            for reader in (quick, longer):
                reader.timeout()
            assert quick.live.safe_position() == longer.live.safe_position()
    for reader in (quick, longer):
        reader.finish()
    assert quick.events == longer.events


def test_a_file_rewritten_since_is_walked_back_over_what_is_kept_only() -> None:
    """The earlier bytes read again must end with the first bytes kept: when the file was
    truncated (fewer bytes) or rewritten (other bytes) since, the walk back goes over what is
    kept, as if nothing could be read again: the same events and positions as with no file."""
    frames = "".join(f'  File "/app/x{i}.py", line {i}, in f\n' for i in range(40))
    log = (
        "2024-05-01 12:00:00,000 ERROR app: call failed\nTraceback (most recent call last):\n"
        + frames
        + "openai.RateLimitError: Error code: 429 - {'error': {'code': 'rate_limit_exceeded'}}\n"
        + "2024-05-01 12:00:01,000 INFO app: next\n"
    ).encode()
    head, tail = log[: log.index(b"openai.")], log[log.index(b"openai.") :]
    hits = HitEvents(CLASSIFIER.prefilter, 1024 * 1024, LIMITS)

    def run(reread: Callable[[int, int], bytes]) -> tuple[list[Event], Position]:
        live = LiveFile("app.log", hits, Position(0, 0), reread=reread, keep_bytes=100)
        events = live.feed(RawLines(head, 0, 0, ()))
        events += live.feed(RawLines(tail, len(head), head.count(b"\n"), ()))
        return events + live.flush(), live.safe_position()

    nothing = run(lambda offset, size: b"")
    assert nothing == run(lambda offset, size: log[offset : offset + size][: size // 2])
    assert nothing == run(lambda offset, size: b"x" * size)
    assert nothing[0][-1].first_line > 1  # (what was not kept could not be walked back over)
    ((whole,), end) = run(lambda offset, size: log[offset : offset + size])
    assert (whole.first_line, whole.last_line) == (1, 43) and end == Position(len(log), 44)




def test_a_commit_for_findings_leaves_the_quiet_files_positions_for_a_later_one(
    tmp_path: Path,
) -> None:
    """With findings in most passes, a commit writes the positions of the files that handed
    out events at once, the others' at the next commit without one or after POSITIONS_EVERY
    (read again after a crash, their lines repeat no finding: none came from them since); a
    stop or a reload (all_positions_due) writes every one."""
    one, two = tmp_path / "one.log", tmp_path / "two.log"
    one.write_text("a line\n")
    two.write_text("another line\n")
    settings = parse_settings(
        {
            "logs": {
                "paths": [str(tmp_path / "*.log")],
                "read_from": "beginning",
                "multiline_timeout": "2s",
            },
            "state": {"path": str(tmp_path / "state.db")},
        }
    )
    ingest = Ingest(
        settings,
        NothingSaved(),
        report=lambda message: None,
        wake=lambda: None,
        on_read=lambda path, lines, size: None,
        on_error=lambda path: None,
        prefilter=CLASSIFIER.prefilter,
    )
    ingest.start()

    def write_both_and_read(now: float) -> None:
        with two.open("a") as handle:
            handle.write("2024-05-01 12:00:00,100 INFO app: quiet\n")
        with one.open("a") as handle:
            handle.write(ERROR_LINE + "\n2024-05-01 12:00:01,000 INFO app: next\n")
        sizes = {str(one): one.stat().st_size, str(two): two.stat().st_size}

        def all_read(got: list[Ingested]) -> bool:
            return bool(got) and all(
                sizes[state.path] == state.offset for state in ingest.sources.files()
            )

        got = read_until(ingest, now, all_read, deadline=5.0)
        assert [i.event.path for i in got] == [str(one)]

    try:
        read_until(ingest, 100.0, lambda g: not ingest.catching_up, deadline=5.0)
        ingest.read(103.0)  # (the timeout: nothing is pending any more)
        assert sorted(p.path for p in ingest.file_positions()) == [str(one), str(two)]
        ingest.committed()
        write_both_and_read(103.1)
        (urgent,) = ingest.file_positions()  # 0.1 s after every position was written
        assert urgent.path == str(one)
        assert ingest.file_positions() == [urgent]  # (that commit failed: the same again)
        ingest.committed()
        assert ingest.dirty  # two's position is still to be written
        ingest.read(103.2)
        assert [p.path for p in ingest.file_positions()] == [str(two)]  # no finding since
        ingest.committed()
        assert ingest.file_positions() == [] and not ingest.dirty

        write_both_and_read(103.3)
        ingest.all_positions_due()  # a stop or a reload: every moved position
        assert sorted(p.path for p in ingest.file_positions()) == [str(one), str(two)]
        ingest.committed()

        write_both_and_read(103.4)
        assert [p.path for p in ingest.file_positions()] == [str(one)]
        ingest.read(103.31 + POSITIONS_EVERY)  # (with a finding or not: all are due by now)
        assert sorted(p.path for p in ingest.file_positions()) == [str(one), str(two)]
    finally:
        ingest.stop()
