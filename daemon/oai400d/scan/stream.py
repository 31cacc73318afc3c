"""One byte stream, fed piece by piece: the lines around each prefilter hit become events.

Only a window of the stream is held: what may still belong to an event not yet complete, and
LOOKBACK_BYTES before the next bytes to search (a traceback or body may start that far above
its marker). A hit is walked back to the start of its traceback, dump or body; from there the
same Assembler the daemon uses decides where the event ends. An event that runs past the bytes
read so far waits, with the window kept from its start, until more come.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field

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
from oai400d.classify.prefilter import Prefilter
from oai400d.model import Event, EventLimits, Finding, Line

LOOKBACK_BYTES = 64 * 1024  # how far back a traceback or body may start before its marker
DEFAULT_MAX_LINE = 1024 * 1024


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
class Window:
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
class Feed:
    """One byte stream being scanned: its window, and an over-long line being dropped."""

    window: Window = field(default_factory=Window)
    skipping: bool = False  # inside the dropped rest of an over-long line
    ends_with_newline: bool = True

    def lines(self) -> int:
        window = self.window
        lines = window.base_line - 1 + window.buf.count(b"\n")
        return lines + 1 if window.buf and not self.ends_with_newline else lines


class StreamScan:
    """Finds and classifies the events of byte streams, each fed to `push` in pieces with its
    own Feed; counts cut lines and candidate events into `stats`."""

    def __init__(
        self, classifier: Classifier, max_line: int, limits: EventLimits, stats: ScanStats
    ) -> None:
        self.classifier = classifier
        self.max_line = max_line
        self.limits = limits
        self.stats = stats
        self.hits = HitEvents(classifier.prefilter, max_line, limits)

    def push(self, feed: Feed, data: bytes, eof: bool, path: str) -> Generator[Finding, None, None]:
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
        deferred = yield from self._classify(self.hits.events(window, end, eof, path))
        if deferred is not None:
            window.drop(deferred[0])
            window.searched = deferred[1] - deferred[0]
        else:
            window.searched = end
            window.drop(window.line_start(max(0, end - LOOKBACK_BYTES)))

    def _classify(
        self, events: Generator[Event, None, tuple[int, int] | None]
    ) -> Generator[Finding, None, tuple[int, int] | None]:
        """The findings of the events; returns what the events' generator returns."""
        classify = self.classifier.classify
        while True:
            try:
                event = next(events)
            except StopIteration as stop:
                deferred: tuple[int, int] | None = stop.value
                return deferred
            self.stats.events += 1
            finding = classify(event)
            if finding is not None:
                yield finding


class HitEvents:
    """The events around each prefilter hit in a Window: the walk back from a hit to where its
    event may start, and the Assembler from there. Used by `classify` (StreamScan) and by the
    daemon (scan/live.py), so that both find the same events."""

    def __init__(self, prefilter: Prefilter, max_line: int, limits: EventLimits) -> None:
        self.max_line = max_line
        self.limits = limits
        self.prefilter = prefilter

    def events(
        self, window: Window, end: int, eof: bool, path: str
    ) -> Generator[Event, None, tuple[int, int] | None]:
        """The events around each marker in buf[searched:end], each at most once (the window
        remembers what it handed out). Returns (region start, hit line start) when an event
        runs past `end` and must wait for more data."""
        start = window.searched
        if start >= end:
            return None
        return (
            yield from self.events_at(
                window, self.prefilter.hit_lines(window.buf, start, end), end, eof, path
            )
        )

    def events_at(
        self, window: Window, hits: list[int], end: int, eof: bool, path: str
    ) -> Generator[Event, None, tuple[int, int] | None]:
        """`events` for hits already found (line starts in buf[searched:end], in order)."""
        for hit in hits:
            if hit < window.emitted_end:
                continue
            lone = self._lone_record(window, hit, end, path)
            if lone is not None:  # most hits: one record line between two others
                yield lone
                window.emitted_through = lone.last_line
                window.emitted_end = window.buf.find(b"\n", hit, end) + 1
                continue
            region = self.walk_back(window, hit)
            events, complete = self._assemble(window, region, end, eof, window.line_no(hit), path)
            if not complete:
                return region, hit
            for event in events:
                if event.last_line <= window.emitted_through:
                    continue
                yield event
                window.emitted_through = event.last_line
            window.emitted_end = self._offset_after(window, region, events[-1].last_line)
        return None

    def _lone_record(self, window: Window, hit: int, end: int, path: str) -> Event | None:
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

    def _line_text(self, window: Window, start: int) -> str:
        newline = window.buf.find(b"\n", start)
        stop = len(window.buf) if newline < 0 else newline
        return decode_line(window.buf[start : min(stop, start + self.max_line)], self.max_line)

    def walk_back(self, window: Window, hit: int) -> int:
        """Where the event holding the line at `hit` may start: the start of its traceback,
        dump or body, found by walking back over frames, continuation lines and chain markers."""
        floor = max(window.emitted_end, hit - LOOKBACK_BYTES, 0)
        current = hit
        text: str | None = None  # the line at `current`, when the step before decoded it
        for _ in range(self.limits.lines):
            if current <= floor:
                return max(current, floor)
            if text is None:
                text = self._line_text(window, current)
            previous = window.line_start(current - 1)
            before = self._line_text(window, previous)
            if opens_content(before):
                current, text = previous, before  # a .NET response body belongs to its exception
                continue
            if starts_record(text) and wrapped_piece(before, text) is None:
                return current  # nothing before a new record can belong to its event
            if is_traceback_start(text):
                marker_at = self._chain_marker_before(window, previous, floor)
                if marker_at is not None:
                    current, text = marker_at, None
                    continue
                if before.strip() and not is_indented(before):
                    # a header line (logger.exception), or what it continues
                    current, text = previous, before
                    continue
                return current
            current, text = previous, before  # any other line may continue an event above it
        return current

    def _chain_marker_before(self, window: Window, offset: int, floor: int) -> int | None:
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
        self, window: Window, region: int, end: int, eof: bool, hit_line: int, path: str
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

    def _offset_after(self, window: Window, region: int, last_line: int) -> int:
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
