"""The daemon's fast path for one plain followed file: its new bytes in, the events around
each prefilter hit out, as `classify` finds them (stream.HitEvents), nothing decoded elsewhere.

The lines read while no event with a hit is pending are searched by the prefilter where they
lie; without a hit they are only counted, and their last LOOKBACK_BYTES kept for a walk back.
Around a hit a Window is made of what is kept and the new bytes, and the hit walked back to
its record's start; an event that runs past the bytes read keeps the Window (from its start)
until more bytes, the multi-line timeout or the file's end complete it. Then the lines go back
to the fast path.

What the daemon's Assembler fed every line would do, this does in the terms of the stream:
its multi-line timeout and the end of a file end any event being gathered (`flush`: nothing
before that point can belong to a later event), and the position saved for a restart is the
start of the record the last line read may still belong to (`safe_position`), so that a
restart from there reads again all that a later event may hold and nothing already handed out.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

from oai400d.model import Event, RawLines
from oai400d.scan.stream import LOOKBACK_BYTES, HitEvents, Window

# safe_position walks back from the last line over only the last lines kept, this much at
# least: a commit asks it of every file twice a second, and the whole LOOKBACK_BYTES joined and
# counted each time cost a third of the daemon's main thread with 500 busy files.
SAFE_TAIL_BYTES = 4096
# ... and trusts that walk when it stopped this many lines or more below the tail's first line
# (a walk back reads at most 4 lines above where it stops: the chain marker before a
# `Traceback`); nearer, the whole kept lookback decides.
SAFE_TAIL_MARGIN = 8


@dataclass(frozen=True, slots=True)
class Position:
    """A line start of the file: its offset, and the number of lines before it."""

    offset: int
    line_no: int


class LiveFile:
    """One plain file's RawLines in order (`feed`); the events around hits out.

    Positions inside are logical: bytes of RawLines since the last reset (a cut line is
    shorter than in the file); `anchors` map them back to file offsets.
    """

    def __init__(
        self, path: str, hits: HitEvents, start: Position, tail_bytes: int = SAFE_TAIL_BYTES
    ) -> None:
        self.path = path
        self.hits = hits
        self.lines_read = 0  # lines in the RawLines fed so far (for metrics)
        self._tail_bytes = tail_bytes
        self._reset(start)

    def _reset(self, start: Position) -> None:
        self._kept: list[bytes] = []  # the last complete lines read, at least LOOKBACK_BYTES
        self._kept_len = 0
        self._kept_lines = 0  # the newlines in _kept
        self._safe: Position | None = None  # safe_position, until the next feed or flush
        self._start = 0  # logical position of _kept[0] (or of the window's first byte)
        self._start_line = start.line_no  # lines before _start
        self._end = 0  # logical position after the last line read
        self._end_at = start  # the same, in the file
        self._anchors: list[tuple[int, int]] = [(0, start.offset)]  # (logical, file offset)
        self._floor = 0  # logical: no event still to come can start before it
        self._emitted_through = 0  # the last line of the last event handed out
        self._window: Window | None = None  # while an event with a hit runs past _end

    @property
    def pending(self) -> bool:
        """Lines are read that a later line may still join into an event (the Assembler would
        hold them): the multi-line timeout applies."""
        return self._window is not None or self._end > self._floor

    def feed(self, raw: RawLines) -> list[Event]:
        """The events completed by these lines (those with a prefilter hit only)."""
        events: list[Event] = []
        self._safe = None
        if (raw.offset, raw.line_no) != (self._end_at.offset, self._end_at.line_no):
            # Read again from another place (the file was truncated or rewritten): what was
            # being gathered ends here, as at the end of a file.
            events = self.flush()
            self._reset(Position(raw.offset, raw.line_no))
        data = raw.data
        lines = data.count(b"\n")
        self.lines_read += lines
        for at, offset in raw.anchors:
            self._anchors.append((self._end + at, offset))
        self._end_at = Position(raw.offset + len(data), raw.line_no + lines)
        if raw.anchors:
            self._end_at = Position(self._offset_of(self._end + len(data)), raw.line_no + lines)
        if self._window is None:
            found = self.hits.prefilter.hit_lines(data)
            if not found:  # most reads: nothing to decode
                self._keep(data, lines)
                return events
            window = self._make_window(data)
            base = len(window.buf) - len(data)
            hits = [base + hit for hit in found]
        else:
            window = self._window
            window.buf += data
            hits = self.hits.prefilter.hit_lines(window.buf, window.searched, len(window.buf))
        self._end += len(data)
        events.extend(self._events(window, hits, eof=False))
        return events

    def flush(self) -> list[Event]:
        """The multi-line timeout, or the end of the file: the event being gathered is
        complete; nothing read so far can belong to an event still to come."""
        events: list[Event] = []
        self._safe = None
        window = self._window
        if window is not None:
            end = len(window.buf)
            hits = self.hits.prefilter.hit_lines(window.buf, window.searched, end)
            events = self._events(window, hits, eof=True)
        self._floor = self._end
        return events

    def safe_position(self) -> Position:
        """Where a restart must read again from: the start of the event with a hit being
        gathered, or of the record the last line read may belong to (nothing before it can
        join a later event, nothing after it was handed out), or the end."""
        if self._window is not None:
            return Position(self._offset_of(self._start), self._window.base_line - 1)
        if self._end <= self._floor:
            return self._end_at
        if self._safe is None:
            self._safe = self._walk_back_tail() or self._walk_back_kept()
        return self._safe

    def _walk_back_kept(self) -> Position:
        """safe_position's walk back from the last line, over all the lines kept."""
        window = self._make_window(b"")
        last = window.line_start(len(window.buf) - 1)
        begin = self.hits.walk_back(window, last)
        return Position(self._offset_of(self._start + begin), window.line_no(begin) - 1)

    def _walk_back_tail(self) -> Position | None:
        """The same over the last kept lines only (SAFE_TAIL_MARGIN lines and one, or at most
        about `tail_bytes`, in whole blocks as read), when the
        walk stops far enough below their first line that the lines above could not change
        it (SAFE_TAIL_MARGIN); None: ask _walk_back_kept."""
        size, count, lines = 0, 0, 0
        for chunk in reversed(self._kept):  # (each chunk is whole lines)
            size += len(chunk)
            count += 1
            lines += chunk.count(b"\n")
            if lines > SAFE_TAIL_MARGIN or size > self._tail_bytes:
                break
        buf = b"".join(self._kept[-count:])
        buf = buf[buf.rfind(b"\n", 0, len(buf) - self._tail_bytes) + 1 :]  # from a line start
        size = len(buf)
        if size == self._kept_len:
            return None  # the tail is all there is: no cheaper than the whole
        begin_at = self._start + self._kept_len - size  # logical position of buf[0]
        line = self._start_line + self._kept_lines - buf.count(b"\n") + 1
        window = Window(buf=buf, base_line=line, cursor=0, cursor_line=line, searched=size)
        window.emitted_end = max(0, self._floor - begin_at)
        window.emitted_through = self._emitted_through
        begin = self.hits.walk_back(window, window.line_start(size - 1))
        line_no = window.line_no(begin)
        if line_no - line < SAFE_TAIL_MARGIN:
            return None
        return Position(self._offset_of(begin_at + begin), line_no - 1)

    # --- helpers --------------------------------------------------------------------------------

    def _keep(self, data: bytes, lines: int) -> None:
        """Lines with no hit: keep only what a walk back from a later hit may need."""
        self._end += len(data)
        self._kept.append(data)
        self._kept_len += len(data)
        self._kept_lines += lines
        while len(self._kept) > 1 and self._kept_len - len(self._kept[0]) >= LOOKBACK_BYTES:
            dropped = self._kept.pop(0)
            dropped_lines = dropped.count(b"\n")
            self._kept_len -= len(dropped)
            self._kept_lines -= dropped_lines
            self._start += len(dropped)
            self._start_line += dropped_lines
        self._forget_anchors()

    def _make_window(self, data: bytes) -> Window:
        """A Window of the kept lines and `data` (new lines, searched from where they begin)."""
        kept = b"".join(self._kept)
        buf = kept + data if data else kept
        line = self._start_line + 1
        window = Window(buf=buf, base_line=line, cursor=0, cursor_line=line, searched=len(kept))
        window.emitted_end = max(0, self._floor - self._start)
        window.emitted_through = self._emitted_through
        return window

    def _events(self, window: Window, hits: list[int], eof: bool) -> list[Event]:
        end = len(window.buf)
        run = self.hits.events_at(window, hits, end, eof, self.path)
        events: list[Event] = []
        while True:
            try:
                events.append(next(run))
            except StopIteration as stop:
                deferred: tuple[int, int] | None = stop.value
                break
        self._emitted_through = window.emitted_through
        self._floor = max(self._floor, self._start + window.emitted_end)
        if deferred is not None:  # an event runs past what was read: keep it from its start
            region, hit = deferred
            window.drop(region)
            window.searched = hit - region
            self._start += region
            self._window = window
            self._kept, self._kept_len, self._kept_lines = [], 0, 0
            return events
        keep = window.line_start(max(0, end - LOOKBACK_BYTES))
        self._start_line = window.line_no(keep) - 1
        self._start += keep
        rest = window.buf[keep:]
        self._kept, self._kept_len = ([rest], len(rest)) if rest else ([], 0)
        self._kept_lines = rest.count(b"\n")
        self._window = None
        self._forget_anchors()
        return events

    def _offset_of(self, logical: int) -> int:
        at, offset = self._anchors[bisect_right(self._anchors, (logical, 1 << 62)) - 1]
        return offset + (logical - at)

    def _forget_anchors(self) -> None:
        """Drop the anchors before the first one still needed (at or before _start)."""
        index = bisect_right(self._anchors, (self._start, 1 << 62)) - 1
        if index > 0:
            del self._anchors[:index]
