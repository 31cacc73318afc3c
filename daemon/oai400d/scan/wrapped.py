"""A file a container runtime or syslog wrapped: unwrapped into one byte stream per wrapped
stream (stdout and stderr, compose services, syslog programs), each scanned by a StreamScan.

A sparse map turns each stream's line numbers back into physical ones (those of a line's first
piece). Findings are held in a heap until no stream can still yield one above them, so that
all streams' findings come out in file order.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from oai400d.model import Finding
from oai400d.scan.stream import Feed, ScanStats, StreamScan
from oai400d.unwrap import WRAPPER_OVERHEAD, Unwrapper, unwrap_block

MAX_STREAMS = 64  # the most wrapped streams scanned at once (syslog: one per program)
MAX_HELD_FINDINGS = 10_000  # findings held back to put the streams' findings in file order


class LineMap:
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

    feed: Feed = field(default_factory=Feed)
    map: LineMap = field(default_factory=LineMap)
    texts: list[bytes] = field(default_factory=list)  # lines not yet handed to the scanner

    def floor(self) -> int | None:
        """The physical line below which this stream can yield no more findings (None: any
        line still to come)."""
        base = self.feed.window.base_line
        return self.map(base) if base <= self.map.count else None


class WrappedScan:
    """One scan of one wrapped file of wrapper `kind`, whose first bytes are `head`."""

    def __init__(
        self,
        kind: str,
        head: bytes,
        streams: StreamScan,
        stats: ScanStats,
        max_line: int,
        path: str,
    ) -> None:
        self._kind = kind
        self._unwrapper = Unwrapper(kind, max_line, head)
        self._scan = streams
        self._stats = stats
        self._path = path
        self._bound = max_line + WRAPPER_OVERHEAD  # the longest physical line kept
        self._streams: dict[str | None, _Wrapped] = {}  # least recently used first
        self._held: list[tuple[int, int, int, Finding]] = []  # a heap: (line, end, seq, finding)
        self._order = itertools.count()
        self._pending = b""  # the start of a physical line whose newline has not come yet
        self._skipping = False  # inside the dropped rest of an over-long physical line
        self._line_no = 0  # physical lines taken so far …
        self._offset = 0  # … and the offset after them

    def scan(self, data: bytes, eof: bool, read: Callable[[], bytes]) -> Iterator[Finding]:
        """Yield the findings of `data` and of what `read` returns after it (b"": the end), in
        file order, each line number the physical one."""
        while True:
            if data:
                yield from self._add(data)
            if eof:
                break
            data = read()
            eof = not data
        if self._pending:
            self._take([self._pending])
        for piece in self._unwrapper.flush():
            state = self._streams.setdefault(piece.stream, _Wrapped())
            state.texts.append(piece.text)
            state.map.add(piece.line_no)
        self._stats.cut_lines += self._unwrapper.cut
        for state in self._streams.values():
            self._feed(state, True)
        while self._held:
            yield heapq.heappop(self._held)[3]
        self._stats.lines = self._line_no

    def _add(self, data: bytes) -> Iterator[Finding]:
        """Take the next bytes of the file; yield the findings no stream can precede now."""
        if self._skipping:
            newline = data.find(b"\n")
            data = b"" if newline < 0 else data[newline + 1 :]
            self._skipping = newline < 0
        whole = self._pending + data if self._pending else data
        cut = whole.rfind(b"\n") + 1
        block, self._pending = whole[:cut], whole[cut:]
        if block and not self._take_block(block):
            self._take(block.split(b"\n")[:-1])
        if len(self._pending) > self._bound:  # an over-long line: its head now, the rest dropped
            self._take([self._pending])
            self._pending, self._skipping = b"", True
        for state in list(self._streams.values()):
            self._feed(state, False)
        # No stream can still yield a finding above its floor, nor can a line whose first
        # pieces the unwrapper holds: what lies above all of them goes out.
        floors = [f for f in (state.floor() for state in self._streams.values()) if f]
        if self._unwrapper.held is not None:
            floors.append(self._unwrapper.held[0])
        floor = min(floors, default=self._line_no + 1)
        held = self._held
        while held and (held[0][0] < floor or len(held) > MAX_HELD_FINDINGS):
            yield heapq.heappop(held)[3]

    def _take(self, lines: list[bytes]) -> None:
        """Physical lines, one by one through the unwrapper, into their streams' texts."""
        unwrapper, bound = self._unwrapper, self._bound
        line_no, offset = self._line_no, self._offset
        for raw in lines:
            line_no += 1
            size = len(raw) + 1
            if len(raw) > bound:
                raw = raw[:bound]
                self._stats.cut_lines += 1
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            for piece in unwrapper.feed(raw, line_no, offset):
                state = self._stream_of(piece.stream)
                state.texts.append(piece.text)
                state.map.add(piece.line_no)
            offset += size
        self._line_no, self._offset = line_no, offset

    def _take_block(self, block: bytes) -> bool:
        """The fast path: a block of one stream's plain lines, unwrapped in one pass."""
        unwrapped = unwrap_block(self._kind, block) if self._unwrapper.held is None else None
        if unwrapped is None:
            return False
        state = self._stream_of(unwrapped[0])
        count = block.count(b"\n")
        state.texts.append(unwrapped[1][:-1])
        state.map.add(self._line_no + 1, count)
        self._line_no += count
        self._offset += len(block)
        return True

    def _stream_of(self, key: str | None) -> _Wrapped:
        """The stream named `key`, now the most recently used; a new one ends the stream
        unused longest when MAX_STREAMS are open."""
        state = self._streams.pop(key, None)
        if state is None:
            state = _Wrapped()
            if len(self._streams) >= MAX_STREAMS:
                self._feed(self._streams.pop(next(iter(self._streams))), True)
        self._streams[key] = state
        return state

    def _feed(self, state: _Wrapped, end: bool) -> None:
        """Scan a stream's lines taken so far (end: and the end of that stream)."""
        if state.texts:
            chunk = b"\n".join(state.texts) + b"\n"
            state.texts = []
            self._hold(state, self._scan.push(state.feed, chunk, False, self._path))
        if end:
            self._hold(state, self._scan.push(state.feed, b"", True, self._path))
        else:
            state.map.forget_before(state.feed.window.base_line)

    def _hold(self, state: _Wrapped, findings: Iterator[Finding]) -> None:
        """Keep a stream's findings, numbered by physical line, until their turn comes."""
        for finding in findings:
            line, end = state.map(finding.line), state.map(finding.end_line)
            item = dataclasses.replace(finding, line=line, end_line=end)
            heapq.heappush(self._held, (line, end, next(self._order), item))
