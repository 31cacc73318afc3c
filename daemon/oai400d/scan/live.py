"""The daemon's fast path for one plain followed file: its new bytes in, the events around
each prefilter hit out, as `classify` finds them (stream.HitEvents), nothing decoded elsewhere.

The lines read while no event with a hit is pending are searched by the prefilter where they
lie; without a hit they are only counted, and their last KEEP_BYTES kept for a walk back.
Around a hit a Window is made of what is kept and the new bytes, and the hit walked back to
its record's start (a walk that reaches the start of what is kept reads the earlier bytes
again from the file, `reread`, up to LOOKBACK_BYTES as `classify` looks); an event that runs
past the bytes read keeps the Window (from its start) until more bytes, the multi-line timeout
or the file's end complete it. Then the lines go back to the fast path.

What the daemon's Assembler fed every line would do, this does in the terms of the stream:
its multi-line timeout and the end of a file end any event being gathered (`flush`: nothing
before that point can belong to a later event), and the position saved for a restart is the
start of the record the last line read may still belong to (`safe_position`), so that a
restart from there reads again all that a later event may hold and nothing already handed out.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass

from oai400d.model import Event, RawLines
from oai400d.scan.stream import LOOKBACK_BYTES, HitEvents, Window, decode_line

# safe_position walks back from the last line over only the last lines kept, this much at
# least: a commit asks it of every file twice a second, and the whole LOOKBACK_BYTES joined and
# counted each time cost a third of the daemon's main thread with 500 busy files.
SAFE_TAIL_BYTES = 4096
# ... and trusts that walk when it stopped this many lines or more below the tail's first line
# (a walk back reads at most 4 lines above where it stops: the chain marker before a
# `Traceback`); nearer, the whole kept lookback decides.
SAFE_TAIL_MARGIN = 8
# The lines kept in memory per file for a walk back: the usual one (a traceback's header and
# frames, a body) fits; a longer one reads the earlier bytes again from the file. Keeping the
# whole LOOKBACK_BYTES was 32 MiB of RSS with 500 files.
KEEP_BYTES = 8192
# A walk back that needs the earlier bytes gets this much above its LOOKBACK_BYTES floor too
# (it reads the line across the floor, and a chain marker up to 3 lines above a `Traceback`).
REREAD_SLACK = 4096
# The first bytes of what is kept, read again with the earlier bytes: the same bytes, or the
# file was truncated or rewritten since (Tail.check sees it at the next poll): then the walk
# back goes over what is kept only, as a file's first read does.
REREAD_CHECK = 256


@dataclass(frozen=True, slots=True)
class Position:
    """A line start of the file: its offset, and the number of lines before it."""

    offset: int
    line_no: int


class LiveFile:
    """One plain file's RawLines in order (`feed`); the events around hits out.

    Positions inside are logical: bytes of RawLines since the last reset (a cut line is
    shorter than in the file); `anchors` map them back to file offsets.

    `reread(offset, size)`: bytes of the file read again (the Tail's open descriptor; fewer
    or none when they are gone); without it the whole LOOKBACK_BYTES is kept in memory.
    """

    def __init__(
        self,
        path: str,
        hits: HitEvents,
        start: Position,
        tail_bytes: int = SAFE_TAIL_BYTES,
        reread: Callable[[int, int], bytes] | None = None,
        keep_bytes: int = KEEP_BYTES,
        last_line_first: bool = True,
    ) -> None:
        """`last_line_first`: safe_position tries the last two lines alone first
        (_walk_back_last; False only to check it against the longer walks)."""
        self.path = path
        self._last_line_first = last_line_first
        self.hits = hits
        self.lines_read = 0  # lines in the RawLines fed so far (for metrics)
        self._tail_bytes = tail_bytes
        self._reread = reread
        self._keep_bytes = keep_bytes if reread is not None else LOOKBACK_BYTES
        self._reset(start)

    def _reset(self, start: Position) -> None:
        self._kept: list[bytes] = []  # the last complete lines read, about _keep_bytes
        self._kept_len = 0
        self._kept_lines = 0  # the newlines in _kept
        self._safe: Position | None = None  # safe_position, until the next feed or flush
        self._start = 0  # logical position of _kept[0] (or of the window's first byte)
        self._start_line = start.line_no  # lines before _start
        self._end = 0  # logical position after the last line read
        self._end_at = start  # the same, in the file
        self._anchors: list[tuple[int, int]] = [(0, start.offset)]  # (logical, file offset)
        self._cut_at: int | None = None  # logical: just after the last cut line read
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
            self._cut_at = self._end + at
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
            grown = self._grow(window, hits)
            hits = [grown + hit for hit in hits]
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
            quick = self._walk_back_last() if self._last_line_first else None
            self._safe = quick or self._walk_back_tail() or self._walk_back_kept()
        return self._safe

    def _walk_back_last(self) -> Position | None:
        """The common case, cheaply: the last line starts a record of its own. The walk back
        from it stops there at once having looked at it and the line above only, when that
        line is not blank (a blank one lets a `Traceback` line look further up, for a chain
        marker); None: ask the longer walks. A commit asks this of every file that moved (500
        busy files: the walk over the last 9 lines was a fifth of the main loop)."""
        if not self._kept or self._start + self._kept_len != self._end:
            return None
        chunk = self._kept[-1]  # (whole lines)
        last_newline = len(chunk) - 1
        above_end = chunk.rfind(b"\n", 0, last_newline)  # the newline ending the line above
        if above_end < 0:
            return None
        above = chunk.rfind(b"\n", 0, above_end) + 1
        buf = chunk[above:]
        last = above_end + 1 - above  # where the last line starts in buf
        begin_at = self._start + self._kept_len - len(buf)  # logical position of buf[0]
        line = self._start_line + self._kept_lines - 1  # the number of the line above
        window = Window(buf=buf, base_line=line, cursor=0, cursor_line=line, searched=len(buf))
        window.emitted_end = max(0, self._floor - begin_at)
        window.emitted_through = self._emitted_through
        if self.hits.walk_back(window, last) != last:
            return None
        if not decode_line(buf[: last - 1], self.hits.max_line).strip():
            return None
        return Position(self._offset_of(begin_at + last), line)

    def _walk_back_kept(self) -> Position:
        """safe_position's walk back from the last line, over all the lines kept (and the
        earlier ones read again, when it reaches their start)."""
        window = self._make_window(b"")
        last = window.line_start(len(window.buf) - 1)
        begin = self.hits.walk_back(window, last)
        begin_at = self._start
        if window.line_no(begin) - window.base_line < SAFE_TAIL_MARGIN:
            earlier = self._history(self._start + last - LOOKBACK_BYTES - REREAD_SLACK, window)
            if earlier:  # a window of its own: safe_position changes nothing kept
                begin_at -= len(earlier)
                line = window.base_line - earlier.count(b"\n")
                buf = earlier + window.buf
                window = Window(buf=buf, base_line=line, cursor=0, cursor_line=line)
                window.searched = len(buf)
                window.emitted_end = max(0, self._floor - begin_at)
                window.emitted_through = self._emitted_through
                begin = self.hits.walk_back(window, len(earlier) + last)
        return Position(self._offset_of(begin_at + begin), window.line_no(begin) - 1)

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
        """Lines with no hit: keep only what a walk back from a later hit may need in memory."""
        self._end += len(data)
        self._kept.append(data)
        self._kept_len += len(data)
        self._kept_lines += lines
        limit = self._keep_limit()
        while len(self._kept) > 1 and self._kept_len - len(self._kept[0]) >= limit:
            self._drop_kept(len(self._kept[0]))
        first = self._kept[0]
        if self._kept_len > 2 * limit and len(first) > self._kept_len - limit:
            # One large block (a catch-up read): keep its last lines only.
            cut = first.find(b"\n", self._kept_len - limit - 1) + 1
            if 0 < cut < len(first):
                self._drop_kept(cut)
        self._forget_anchors()

    def _drop_kept(self, size: int) -> None:
        """Forget the first `size` bytes kept (a line start)."""
        first = self._kept[0]
        dropped_lines = first.count(b"\n", 0, size)
        if size == len(first):
            self._kept.pop(0)
        else:
            self._kept[0] = first[size:]
        self._kept_len -= size
        self._kept_lines -= dropped_lines
        self._start += size
        self._start_line += dropped_lines

    def _keep_limit(self) -> int:
        """How much to keep: the whole LOOKBACK_BYTES while a cut line lies within it (its bytes
        in the file are longer than those read: they cannot be read again as they were), else
        _keep_bytes (the rest is read again when needed, `_history`)."""
        cut = self._cut_at
        if cut is not None and cut > self._end - LOOKBACK_BYTES:
            return LOOKBACK_BYTES
        return self._keep_bytes

    def _grow(self, window: Window, hits: list[int]) -> int:
        """Before the events around `hits`: when the walk back from the first of them reaches
        the first lines of the window, put the earlier bytes (read again) in front of it, as
        they were kept before; returns how many."""
        first = next((hit for hit in hits if hit >= window.emitted_end), None)
        if first is None or self._reread is None or self._start <= self._anchor_before()[0]:
            return 0  # nothing to walk back to, or nothing before _start read since the reset
        begin = self.hits.walk_back(window, first)
        if window.line_no(begin) - window.base_line >= SAFE_TAIL_MARGIN:
            return 0  # stopped far enough below the first line: the lines above change nothing
        earlier = self._history(self._start + first - LOOKBACK_BYTES - REREAD_SLACK, window)
        if not earlier:
            return 0
        lines = earlier.count(b"\n")
        window.buf = earlier + window.buf
        window.base_line -= lines
        window.cursor, window.cursor_line = 0, window.base_line
        window.searched += len(earlier)
        self._start -= len(earlier)
        self._start_line -= lines
        window.emitted_end = max(0, self._floor - self._start)
        return len(earlier)

    def _history(self, want: int, window: Window) -> bytes:
        """The lines before _start (whole ones, from logical `want` or above) read again from
        the file; b"" when there are none, or the file is no longer what was read (truncated
        or rewritten: the walk back goes over what is kept only). Never across a cut line:
        from the last anchor at or before _start, whose bytes map one to one."""
        if self._reread is None:
            return b""
        at, offset = self._anchor_before()
        low = max(want, at)
        if low >= self._start:
            return b""
        check = window.buf[:REREAD_CHECK]
        index = bisect_right(self._anchors, (self._start, 1 << 62))
        if index < len(self._anchors):  # a cut line in the bytes checked: only those before it
            check = check[: max(0, self._anchors[index][0] - 1 - self._start)]
        if not check:
            return b""
        read_from = low - 1 if low > at else low  # from a newline before low: a line start
        first = offset + (read_from - at)
        size = self._start - read_from
        data = self._reread(first, size + len(check))
        if len(data) != size + len(check) or data[size:] != check:
            return b""
        earlier = data[:size]
        if low > at:
            earlier = earlier[earlier.find(b"\n") + 1 :] if b"\n" in earlier else b""
        return earlier

    def _anchor_before(self) -> tuple[int, int]:
        """The last anchor at or before _start: (logical, file offset)."""
        return self._anchors[bisect_right(self._anchors, (self._start, 1 << 62)) - 1]

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
        keep = window.line_start(max(0, end - self._keep_limit()))
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
