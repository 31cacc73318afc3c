"""Scans a whole byte stream for OpenAI errors, fast and in bounded memory (`oai400d classify`).

The stream is read in large chunks; only the lines around a prefilter hit (found in the raw
bytes by one compiled automaton, see classify/prefilter.py) are decoded and joined into events,
by walking back to the start of their traceback or body and then letting the same
Assembler the daemon uses decide where the event ends.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import pickle
import tempfile
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

CHUNK_SIZE = 4 * 1024 * 1024
PARALLEL_MIN_BYTES = 64 * 1024 * 1024  # below this a second process costs more than it saves
SPLIT_SEARCH_BYTES = 1024 * 1024
LOOKBACK_BYTES = 64 * 1024  # how far back a traceback or body may start before its marker
DEFAULT_MAX_LINE = 1024 * 1024


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
class Scanner:
    """Finds every OpenAI error in one stream; `stats` holds what was read."""

    classifier: Classifier
    max_line: int = DEFAULT_MAX_LINE
    chunk_size: int = CHUNK_SIZE
    progress: Callable[[int], None] | None = None
    stats: ScanStats = field(default_factory=ScanStats)
    limits: EventLimits = field(default_factory=EventLimits)

    def __post_init__(self) -> None:
        self._prefilter = self.classifier.prefilter

    def scan(self, stream: Readable, path: str) -> Iterator[Finding]:
        """Yield findings in file order."""
        window = _Window()
        skipping = False  # inside the dropped rest of an over-long line
        ends_with_newline = True
        eof = False
        while not eof:
            data = stream.read(self.chunk_size)
            eof = not data
            self.stats.bytes_read += len(data)
            if self.progress is not None and data:
                self.progress(len(data))
            if data:
                ends_with_newline = data.endswith(b"\n")
            if skipping and data:
                newline = data.find(b"\n")
                if newline < 0:
                    continue
                data = data[newline + 1 :]
                skipping = False
            window.buf += data
            end = len(window.buf) if eof else window.buf.rfind(b"\n") + 1
            if not eof and len(window.buf) - end > self.max_line:
                window.buf = window.buf[: end + self.max_line] + b"\n"
                end = len(window.buf)
                skipping = True
                self.stats.cut_lines += 1
            deferred = yield from self._scan_window(window, end, eof, path)
            if deferred is not None:
                window.drop(deferred[0])
                window.searched = deferred[1] - deferred[0]
            else:
                window.searched = end
                window.drop(window.line_start(max(0, end - LOOKBACK_BYTES)))
        self.stats.lines = window.base_line - 1 + window.buf.count(b"\n")
        if window.buf and not ends_with_newline:
            self.stats.lines += 1

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


def split_point(path: str, size: int) -> int | None:
    """A line start near the middle of the file where an event begins whatever came before: a
    line that starts a new record (as the Assembler decides). None if there is none near."""
    middle = size // 2
    with open(path, "rb") as handle:
        handle.seek(middle)
        window = handle.read(SPLIT_SEARCH_BYTES)
    first = window.find(b"\n") + 1
    if first <= 0:
        return None
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
    both halves can be cut apart cleanly. Findings come out in file order either way."""
    split = split_point(path, size) if size >= parallel_min and (os.cpu_count() or 1) > 1 else None
    if split is None or "fork" not in multiprocessing.get_all_start_methods():
        with open(path, "rb") as handle:
            yield from scanner.scan(handle, path)
        return
    helper = Scanner(
        scanner.classifier, scanner.max_line, scanner.chunk_size, limits=scanner.limits
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
