"""The Scanner: reads one stream in large chunks, tells whether a wrapper is around its lines,
and hands the bytes to a StreamScan (plain) or a WrappedScan (wrapped)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

from oai400d.classify import Classifier
from oai400d.model import EventLimits, Finding
from oai400d.scan.stream import DEFAULT_MAX_LINE, Feed, ScanStats, StreamScan
from oai400d.scan.wrapped import WrappedScan
from oai400d.unwrap import DETECT_BYTES, DETECT_LINES, WRAPPERS, detect

CHUNK_SIZE = 4 * 1024 * 1024


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


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
        self._streams = StreamScan(self.classifier, self.max_line, self.limits, self.stats)

    def scan(self, stream: Readable, path: str) -> Iterator[Finding]:
        """Yield findings in file order."""
        data, eof = b"", False
        if self.wrapper != "none":
            data, eof = self._read_head(stream)
            kind = detect(data) if self.wrapper == "auto" else self.wrapper
            if kind in WRAPPERS:
                wrapped = WrappedScan(kind, data, self._streams, self.stats, self.max_line, path)
                yield from wrapped.scan(data, eof, partial(self._read, stream))
                return
        feed = Feed()
        while True:
            if data:
                yield from self._streams.push(feed, data, False, path)
            if eof:
                break
            data = self._read(stream)
            eof = not data
        yield from self._streams.push(feed, b"", True, path)
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
