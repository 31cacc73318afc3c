"""Scans a whole byte stream for OpenAI errors, fast and in bounded memory (`oai400d classify`).

The stream is read in large chunks; only the lines around a prefilter hit (found in the raw
bytes by one compiled automaton, see classify/prefilter.py) are decoded and joined into events,
by walking back to the start of their traceback or body and then letting the same
Assembler the daemon uses decide where the event ends.

A stream that a container runtime or syslog wrapped (unwrap.py: told from its first bytes, or
named by `wrapper`) is unwrapped first, one byte stream per wrapped stream (stdout and stderr,
compose services, syslog programs), each scanned as above; a sparse map turns each stream's
line numbers back into physical ones (those of a line's first piece), and the findings of all
streams come out in file order.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import multiprocessing
import os
import pickle
import tempfile
from bisect import bisect_right
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from oai400d.assemble import (
    Assembler,
    is_chain_marker,
    is_indented,
    is_traceback_start,
    opens_content,
    starts_record,
    wrapped_piece,
)
from oai400d.classify import Classifier
from oai400d.model import Event, EventLimits, Finding, Line
from oai400d.unwrap import (
    DETECT_BYTES,
    DETECT_LINES,
    WRAPPER_OVERHEAD,
    WRAPPERS,
    Unwrapper,
    detect,
    unwrap_block,
)

CHUNK_SIZE = 4 * 1024 * 1024
PARALLEL_MIN_BYTES = 64 * 1024 * 1024  # below this a second process costs more than it saves
SPLIT_SEARCH_BYTES = 1024 * 1024
LOOKBACK_BYTES = 64 * 1024  # how far back a traceback or body may start before its marker
DEFAULT_MAX_LINE = 1024 * 1024
MAX_STREAMS = 64  # the most wrapped streams scanned at once (syslog: one per program)
MAX_HELD_FINDINGS = 10_000  # findings held back to put the streams' findings in file order


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def decode_line(raw: bytes, max_line: int) -> str:
    """Bytes of one line → text: cut at max_line, CR dropped, invalid UTF-8 replaced."""
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    return raw[:max_line].decode("utf-8", "replace")


@dataclass
class ScanStats:
    bytes_read: int = 0
    lines: int = 0
    cut_lines: int = 0
    events: int = 0


@dataclass
class _Window:
    """The part of the stream held in memory; buf[0] starts line `base_line`."""

    buf: bytes = b""
    base_line: int = 1
    cursor: int = 0  # an offset whose line number is known …
    cursor_line: int = 1  # … and that number
    searched: int = 0  # markers were looked for in buf[:searched]
    emitted_end: int = 0  # buf[:emitted_end] belongs to events already classified
    emitted_through: int = 0  # the last line number of those events

    def line_no(self, offset: int) -> int:
        if offset >= self.cursor:
            self.cursor_line += self.buf.count(b"\n", self.cursor, offset)
        else:
            self.cursor_line -= self.buf.count(b"\n", offset, self.cursor)
        self.cursor = offset
        return self.cursor_line

    def line_start(self, offset: int) -> int:
        return self.buf.rfind(b"\n", 0, offset) + 1

    def drop(self, upto: int) -> None:
        """Forget buf[:upto] (upto is a line start)."""
        self.base_line = self.line_no(upto)
        self.buf = self.buf[upto:]
        self.cursor -= upto
        self.searched = max(0, self.searched - upto)
        self.emitted_end = max(0, self.emitted_end - upto)


@dataclass
class _Feed:
    """One byte stream being scanned: its window, and an over-long line being dropped."""

    window: _Window = field(default_factory=_Window)
    skipping: bool = False  # inside the dropped rest of an over-long line
    ends_with_newline: bool = True

    def lines(self) -> int:
        window = self.window
        lines = window.base_line - 1 + window.buf.count(b"\n")
        return lines + 1 if window.buf and not self.ends_with_newline else lines


class _LineMap:
    """A wrapped stream's line numbers → the physical line of each line's first piece.

    Runs of lines that follow each other in the file too are one entry; an entry starts where
    pieces were joined, a record split (`#012`), or another stream's lines came between."""

    def __init__(self) -> None:
        self.starts: list[int] = []  # a stream line number that starts a run …
        self.physical: list[int] = []  # … and the physical line of it
        self.count = 0  # stream lines so far

    def add(self, physical: int, count: int = 1) -> None:
        """The next `count` stream lines are the physical lines from `physical` on."""
        first = self.count + 1
        if not self.starts or self.physical[-1] + (first - self.starts[-1]) != physical:
            self.starts.append(first)
            self.physical.append(physical)
        self.count += count

    def __call__(self, line: int) -> int:
        index = bisect_right(self.starts, line) - 1
        if index < 0:
            return line
        return self.physical[index] + (line - self.starts[index])

    def forget_before(self, line: int) -> None:
        """Drop the runs wholly before `line` (nothing can be asked about them any more)."""
        index = bisect_right(self.starts, line) - 1
        if index > 0:
            del self.starts[:index]
            del self.physical[:index]


@dataclass
class _Wrapped:
    """One stream of a wrapped file, unwrapped into bytes and scanned."""

    feed: _Feed = field(default_factory=_Feed)
    map: _LineMap = field(default_factory=_LineMap)
    texts: list[bytes] = field(default_factory=list)  # lines not yet handed to the scanner

    def floor(self) -> int | None:
        """The physical line below which this stream can yield no more findings (None: any
        line still to come)."""
        base = self.feed.window.base_line
        return self.map(base) if base <= self.map.count else None


@dataclass
class Scanner:
    """Finds every OpenAI error in one stream; `stats` holds what was read."""

    classifier: Classifier
    max_line: int = DEFAULT_MAX_LINE
    chunk_size: int = CHUNK_SIZE
    progress: Callable[[int], None] | None = None
    stats: ScanStats = field(default_factory=ScanStats)
    limits: EventLimits = field(default_factory=EventLimits)
    wrapper: str = "auto"  # "auto" (told from the first bytes), "none", or an unwrap.WRAPPERS

    def __post_init__(self) -> None:
        self._prefilter = self.classifier.prefilter

    def scan(self, stream: Readable, path: str) -> Iterator[Finding]:
        """Yield findings in file order."""
        data, eof = b"", False
        if self.wrapper != "none":
            data, eof = self._read_head(stream)
            kind = detect(data) if self.wrapper == "auto" else self.wrapper
            if kind in WRAPPERS:
                yield from self._scan_wrapped(kind, data, eof, stream, path)
                return
        feed = _Feed()
        while True:
            if data:
                yield from self._push(feed, data, False, path)
            if eof:
                break
            data = self._read(stream)
            eof = not data
        yield from self._push(feed, b"", True, path)
        self.stats.lines = feed.lines()

    def _read(self, stream: Readable) -> bytes:
        data = stream.read(self.chunk_size)
        self.stats.bytes_read += len(data)
        if self.progress is not None and data:
            self.progress(len(data))
        return data

    def _read_head(self, stream: Readable) -> tuple[bytes, bool]:
        """The first bytes, enough to tell a wrapper (DETECT_LINES lines or DETECT_BYTES); and
        whether the stream ended there."""
        chunks: list[bytes] = []
        size = newlines = 0
        while size < DETECT_BYTES and newlines <= DETECT_LINES:
            data = self._read(stream)
            if not data:
                return b"".join(chunks), True
            chunks.append(data)
            size += len(data)
            newlines += data.count(b"\n")
        return b"".join(chunks), False

    def _push(
        self, feed: _Feed, data: bytes, eof: bool, path: str
    ) -> Generator[Finding, None, None]:
        """Scan the next bytes of one stream (eof: there are no more)."""
        window = feed.window
        if data:
            feed.ends_with_newline = data.endswith(b"\n")
        if feed.skipping and data:
            newline = data.find(b"\n")
            if newline < 0:
                return
            data = data[newline + 1 :]
            feed.skipping = False
        window.buf += data
        end = len(window.buf) if eof else window.buf.rfind(b"\n") + 1
        if not eof and len(window.buf) - end > self.max_line:
            window.buf = window.buf[: end + self.max_line] + b"\n"
            end = len(window.buf)
            feed.skipping = True
            self.stats.cut_lines += 1
        deferred = yield from self._scan_window(window, end, eof, path)
        if deferred is not None:
            window.drop(deferred[0])
            window.searched = deferred[1] - deferred[0]
        else:
            window.searched = end
            window.drop(window.line_start(max(0, end - LOOKBACK_BYTES)))

    def _scan_wrapped(
        self, kind: str, data: bytes, eof: bool, stream: Readable, path: str
    ) -> Iterator[Finding]:
        """Unwrap the physical lines into one byte stream per wrapped stream, scan each, and
        yield their findings in file order (each line number the physical one)."""
        unwrapper = Unwrapper(kind, self.max_line, data)
        streams: dict[str | None, _Wrapped] = {}  # least recently used first
        held: list[tuple[int, int, int, Finding]] = []  # a heap: (line, end, seq, finding)
        order = itertools.count()
        bound = self.max_line + WRAPPER_OVERHEAD  # the longest physical line kept
        pending = b""  # the start of a physical line whose newline has not come yet
        skipping = False  # inside the dropped rest of an over-long physical line
        line_no = offset = 0

        def mapped(state: _Wrapped, findings: Iterator[Finding]) -> None:
            for finding in findings:
                line, end = state.map(finding.line), state.map(finding.end_line)
                item = dataclasses.replace(finding, line=line, end_line=end)
                heapq.heappush(held, (line, end, next(order), item))

        def feed(state: _Wrapped, end: bool) -> None:
            if state.texts:
                chunk = b"\n".join(state.texts) + b"\n"
                state.texts = []
                mapped(state, self._push(state.feed, chunk, False, path))
            if end:
                mapped(state, self._push(state.feed, b"", True, path))
            else:
                state.map.forget_before(state.feed.window.base_line)

        def stream_of(key: str | None) -> _Wrapped:
            state = streams.pop(key, None)
            if state is None:
                state = _Wrapped()
                if len(streams) >= MAX_STREAMS:  # the stream unused longest ends
                    feed(streams.pop(next(iter(streams))), True)
            streams[key] = state
            return state

        def take(lines: list[bytes]) -> None:
            nonlocal line_no, offset
            for raw in lines:
                line_no += 1
                size = len(raw) + 1
                if len(raw) > bound:
                    raw = raw[:bound]
                    self.stats.cut_lines += 1
                if raw.endswith(b"\r"):
                    raw = raw[:-1]
                for piece in unwrapper.feed(raw, line_no, offset):
                    state = stream_of(piece.stream)
                    state.texts.append(piece.text)
                    state.map.add(piece.line_no)
                offset += size

        def take_block(block: bytes) -> bool:
            """The fast path: a block of one stream's plain lines, unwrapped in one pass."""
            nonlocal line_no, offset
            unwrapped = unwrap_block(kind, block) if unwrapper.held is None else None
            if unwrapped is None:
                return False
            state = stream_of(unwrapped[0])
            count = block.count(b"\n")
            state.texts.append(unwrapped[1][:-1])
            state.map.add(line_no + 1, count)
            line_no += count
            offset += len(block)
            return True

        while True:
            if data:
                if skipping:
                    newline = data.find(b"\n")
                    data = b"" if newline < 0 else data[newline + 1 :]
                    skipping = newline < 0
                whole = pending + data if pending else data
                cut = whole.rfind(b"\n") + 1
                block, pending = whole[:cut], whole[cut:]
                if block and not take_block(block):
                    take(block.split(b"\n")[:-1])
                if len(pending) > bound:  # an over-long line: its head now, the rest dropped
                    take([pending])
                    pending, skipping = b"", True
                for state in list(streams.values()):
                    feed(state, False)
                # No stream can still yield a finding above its floor, nor can a line whose
                # first pieces the unwrapper holds: what lies above all of them goes out.
                floors = [f for f in (state.floor() for state in streams.values()) if f]
                if unwrapper.held is not None:
                    floors.append(unwrapper.held[0])
                floor = min(floors, default=line_no + 1)
                while held and (held[0][0] < floor or len(held) > MAX_HELD_FINDINGS):
                    yield heapq.heappop(held)[3]
            if eof:
                break
            data = self._read(stream)
            eof = not data
        if pending:
            take([pending])
        for piece in unwrapper.flush():
            state = streams.setdefault(piece.stream, _Wrapped())
            state.texts.append(piece.text)
            state.map.add(piece.line_no)
        self.stats.cut_lines += unwrapper.cut
        for state in streams.values():
            feed(state, True)
        while held:
            yield heapq.heappop(held)[3]
        self.stats.lines = line_no

    def _scan_window(
        self, window: _Window, end: int, eof: bool, path: str
    ) -> Generator[Finding, None, tuple[int, int] | None]:
        """Classify the events around each marker in buf[searched:end]. Returns (region start,
        hit line start) when an event runs past `end` and must wait for more data."""
        start = window.searched
        if start >= end:
            return None
        for hit in self._prefilter.hit_lines(window.buf, start, end):
            if hit < window.emitted_end:
                continue
            lone = self._lone_record(window, hit, end, path)
            if lone is not None:  # most hits: one record line between two others
                self.stats.events += 1
                finding = self.classifier.classify(lone)
                if finding is not None:
                    yield finding
                window.emitted_through = lone.last_line
                window.emitted_end = window.buf.find(b"\n", hit, end) + 1
                continue
            region = self._walk_back(window, hit)
            events, complete = self._assemble(window, region, end, eof, window.line_no(hit), path)
            if not complete:
                return region, hit
            for event in events:
                if event.last_line <= window.emitted_through:
                    continue
                self.stats.events += 1
                finding = self.classifier.classify(event)
                if finding is not None:
                    yield finding
                window.emitted_through = event.last_line
            window.emitted_end = self._offset_after(window, region, events[-1].last_line)
        return None

    def _lone_record(self, window: _Window, hit: int, end: int, path: str) -> Event | None:
        """The event of the hit line when it is a whole record by itself: it starts a record,
        does not follow .NET's `Content:`, and the next line (already read) starts another one.
        What the Assembler would decide, without building one (None: ask it)."""
        newline = window.buf.find(b"\n", hit, end)
        if newline < 0 or newline + 1 >= end:
            return None
        text = self._line_text(window, hit)
        if not starts_record(text) or opens_content(text):
            return None
        following = self._line_text(window, newline + 1)
        if not starts_record(following) or wrapped_piece(text, following) is not None:
            return None
        if hit > 0:
            before = self._line_text(window, window.line_start(hit - 1))
            if opens_content(before) or wrapped_piece(before, text) is not None:
                return None
        line_no = window.line_no(hit)
        return Event(path, line_no, line_no, text)

    def _line_text(self, window: _Window, start: int) -> str:
        newline = window.buf.find(b"\n", start)
        stop = len(window.buf) if newline < 0 else newline
        return decode_line(window.buf[start : min(stop, start + self.max_line)], self.max_line)

    def _walk_back(self, window: _Window, hit: int) -> int:
        """Where the event holding the line at `hit` may start: the start of its traceback,
        dump or body, found by walking back over frames, continuation lines and chain markers."""
        floor = max(window.emitted_end, hit - LOOKBACK_BYTES, 0)
        current = hit
        for _ in range(self.limits.lines):
            if current <= floor:
                return max(current, floor)
            text = self._line_text(window, current)
            previous = window.line_start(current - 1)
            before = self._line_text(window, previous)
            if opens_content(before):
                current = previous  # a .NET response body belongs to its exception
                continue
            if starts_record(text) and wrapped_piece(before, text) is None:
                return current  # nothing before a new record can belong to its event
            if is_traceback_start(text):
                marker_at = self._chain_marker_before(window, previous, floor)
                if marker_at is not None:
                    current = marker_at
                    continue
                if before.strip() and not is_indented(before):
                    current = previous  # a header line (logger.exception), or what it continues
                    continue
                return current
            current = previous  # any other line may continue an event begun above it
        return current

    def _chain_marker_before(self, window: _Window, offset: int, floor: int) -> int | None:
        """The chain marker line just above a `Traceback` line (blank lines between), if any."""
        for _ in range(3):
            text = self._line_text(window, offset)
            if is_chain_marker(text):
                return offset
            if text.strip() or offset <= floor:
                return None
            offset = window.line_start(offset - 1)
        return None

    def _assemble(
        self, window: _Window, region: int, end: int, eof: bool, hit_line: int, path: str
    ) -> tuple[list[Event], bool]:
        """Events from `region` through the one holding `hit_line`; False if it runs past end."""
        assembler = Assembler(path, self.limits)
        line_no = window.line_no(region)
        position = region
        events: list[Event] = []
        while position < end:
            newline = window.buf.find(b"\n", position, end)
            stop = end if newline < 0 else newline
            text = decode_line(
                window.buf[position : min(stop, position + self.max_line)], self.max_line
            )
            for event in assembler.feed(Line(path, line_no, position, text)):
                events.append(event)
                if event.last_line >= hit_line:
                    return events, True
            position = stop + 1
            line_no += 1
        if eof:
            events.extend(assembler.flush())
            return events, True
        return events, False

    def _offset_after(self, window: _Window, region: int, last_line: int) -> int:
        """The offset of the line after `last_line`, counting from `region`."""
        offset = region
        line_no = window.line_no(region)
        while line_no <= last_line:
            newline = window.buf.find(b"\n", offset)
            if newline < 0:
                return len(window.buf)
            offset = newline + 1
            line_no += 1
        return offset


class _Range:
    """A file read from `start` up to (not including) `end`."""

    def __init__(self, handle: Readable, remaining: int) -> None:
        self._handle = handle
        self._remaining = remaining

    def read(self, size: int = -1, /) -> bytes:
        if self._remaining <= 0:
            return b""
        data = self._handle.read(self._remaining if size < 0 else min(size, self._remaining))
        self._remaining -= len(data)
        return data


def split_point(
    path: str, size: int, wrapper: str = "none", max_line: int = DEFAULT_MAX_LINE
) -> int | None:
    """A line start near the middle of the file where an event begins whatever came before: a
    line that starts a new record (as the Assembler decides). None if there is none near."""
    middle = size // 2
    with open(path, "rb") as handle:
        handle.seek(middle)
        window = handle.read(SPLIT_SEARCH_BYTES)
    first = window.find(b"\n") + 1
    if first <= 0:
        return None
    if wrapper in WRAPPERS:
        return _wrapped_split_point(window[first:], middle + first, wrapper, max_line)
    lines = window[first:].split(b"\n")[:-1]
    texts = [line.decode("utf-8", "replace") for line in lines]
    offset = middle + first + len(lines[0]) + 1 if lines else middle + first
    for before, text, line in zip(texts, texts[1:], lines[1:], strict=False):
        if (
            starts_record(text)
            and not opens_content(before)
            and wrapped_piece(before, text) is None
        ):
            return offset
        offset += len(line) + 1
    return None


def _wrapped_split_point(window: bytes, base: int, kind: str, max_line: int) -> int | None:
    """split_point in a wrapped file (`window` starts at a physical line, at offset `base`): a
    physical line that holds a whole line starting a record, no stream in the middle of a split
    line, and the next line of every other stream seen starting a record too, so that no
    stream's event can run across it."""
    unwrapper = Unwrapper(kind, max_line, window)
    rows: list[tuple[int, str | None, str, bool, str]] = []  # offset, stream, first, ok, last
    complete: set[str | None] = set()  # streams whose lines before were seen whole
    offset = base
    for raw in window.split(b"\n")[:-1]:
        free = unwrapper.held is None
        pieces = unwrapper.feed(raw.removesuffix(b"\r"), 0, offset)
        if pieces:  # a line joined from pieces is a row at its first piece, never a cut
            stream = pieces[0].stream
            texts = [piece.text.decode("utf-8", "replace") for piece in (pieces[0], pieces[-1])]
            whole = free and pieces[0].offset == offset and stream in complete
            rows.append((pieces[0].offset, stream, texts[0], whole, texts[1]))
            complete.add(stream)
        offset += len(raw) + 1
    rows.sort(key=lambda row: row[0])
    following: dict[str | None, list[int]] = {}  # stream → its rows' indexes
    for index, row in enumerate(rows):
        following.setdefault(row[1], []).append(index)

    def starts(before: str, text: str) -> bool:
        return (
            starts_record(text)
            and not opens_content(before)
            and wrapped_piece(before, text) is None
        )

    last: dict[str | None, str] = {}  # each stream's last line so far
    for index, (at, stream, text, ok, end) in enumerate(rows):
        if ok and stream in last and starts(last[stream], text):
            others = []
            for other, before in last.items():
                if other == stream:
                    continue
                later = following[other]
                after = bisect_right(later, index)
                others.append(after < len(later) and starts(before, rows[later[after]][2]))
            if all(others):
                return at
        last[stream] = end
    return None


def _scan_second_half(scanner: Scanner, path: str, start: int, size: int, out: str) -> None:
    """Worker: scan path[start:], pickling each finding (then the stats) into `out`."""
    with open(path, "rb") as handle, open(out, "wb") as sink:
        handle.seek(start)
        for finding in scanner.scan(_Range(handle, size - start), path):
            pickle.dump(finding, sink)
        pickle.dump(scanner.stats, sink)


def scan_file(
    scanner: Scanner, path: str, size: int, parallel_min: int = PARALLEL_MIN_BYTES
) -> Iterator[Finding]:
    """Scan a regular file, using a second process for its second half when it is big and
    both halves can be cut apart cleanly. Findings come out in file order either way.
    The scanner's wrapper is told once, from the file's first bytes."""
    if scanner.wrapper == "auto":
        with open(path, "rb") as handle:
            scanner.wrapper = detect(handle.read(DETECT_BYTES))
    parallel = size >= parallel_min and (os.cpu_count() or 1) > 1
    split = split_point(path, size, scanner.wrapper, scanner.max_line) if parallel else None
    if split is None or "fork" not in multiprocessing.get_all_start_methods():
        with open(path, "rb") as handle:
            yield from scanner.scan(handle, path)
        return
    helper = Scanner(
        scanner.classifier,
        scanner.max_line,
        scanner.chunk_size,
        limits=scanner.limits,
        wrapper=scanner.wrapper,
    )
    report = scanner.progress
    if report is not None:  # this process reads the first part only; show the whole file's pace
        scanner.progress = lambda count: report(count * size // split)
    with tempfile.TemporaryDirectory(prefix="oai400d-scan-") as tmp:
        out = os.path.join(tmp, "second-half.pickle")
        worker = multiprocessing.get_context("fork").Process(
            target=_scan_second_half, args=(helper, path, split, size, out), daemon=True
        )
        worker.start()
        try:
            with open(path, "rb") as handle:
                yield from scanner.scan(_Range(handle, split), path)
            worker.join()
            if worker.exitcode != 0:
                raise OSError(
                    f"the scanning process for the second half failed ({worker.exitcode})"
                )
            offset = scanner.stats.lines
            with open(out, "rb") as source:
                item = pickle.load(source)
                while not isinstance(item, ScanStats):
                    yield dataclasses.replace(
                        item, line=item.line + offset, end_line=item.end_line + offset
                    )
                    item = pickle.load(source)
        finally:
            if worker.is_alive():
                worker.kill()
                worker.join()
    for name in ("bytes_read", "lines", "cut_lines", "events"):
        setattr(scanner.stats, name, getattr(scanner.stats, name) + getattr(item, name))
