"""A big regular file scanned by two processes: where to cut it, and the findings of both
halves put back together in file order (`scan_file`)."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import pickle
import tempfile
from bisect import bisect_right
from collections.abc import Iterator

from oai400d.assemble import opens_content, starts_record, wrapped_piece
from oai400d.model import Finding
from oai400d.scan.scanner import Readable, Scanner
from oai400d.scan.stream import DEFAULT_MAX_LINE, ScanStats
from oai400d.unwrap import DETECT_BYTES, WRAPPERS, Unwrapper, detect

# Below this a second process costs more than it saves (fork, the cut, the findings pickled
# back): measured on a 2-core machine shared with other benchmarks, alternating one and two
# processes over prefixes of the mixed and jsonl shapes, two broke even between 16 and 32 MB
# and saved ~20 % at 64 MB.
PARALLEL_MIN_BYTES = 32 * 1024 * 1024
SPLIT_SEARCH_BYTES = 1024 * 1024


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


# Findings are pickled in lists of this many: an error storm's second half is ~40k findings,
# which this process loads after its own half; one by one that cost ~14 us each, in lists ~10
# (the rule's fixes and docs pickled once a list).
PICKLE_BATCH = 256


def _scan_second_half(scanner: Scanner, path: str, start: int, size: int, out: str) -> None:
    """Worker: scan path[start:], pickling its findings (lists of at most PICKLE_BATCH, in
    order), then the stats, into `out`."""
    with open(path, "rb") as handle, open(out, "wb") as sink:
        handle.seek(start)
        batch: list[Finding] = []
        for finding in scanner.scan(_Range(handle, size - start), path):
            batch.append(finding)
            if len(batch) >= PICKLE_BATCH:
                pickle.dump(batch, sink, protocol=pickle.HIGHEST_PROTOCOL)
                batch = []
        if batch:
            pickle.dump(batch, sink, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.dump(scanner.stats, sink, protocol=pickle.HIGHEST_PROTOCOL)


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
                    for finding in item:
                        yield dataclasses.replace(
                            finding, line=finding.line + offset, end_line=finding.end_line + offset
                        )
                    item = pickle.load(source)
        finally:
            if worker.is_alive():
                worker.kill()
                worker.join()
    for name in ("bytes_read", "lines", "cut_lines", "events"):
        setattr(scanner.stats, name, getattr(scanner.stats, name) + getattr(item, name))
