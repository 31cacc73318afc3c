"""One open log file: its identity, where reading stands, and the partial line held back.

A file that a container runtime or syslog wrapped (unwrap.py; named by `logs.wrapper` /
`logs.wrappers`, or detected from its first lines) comes out unwrapped: each Line as the
application wrote it, with the physical line number and offset of its first piece.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat

from oai400d.errors import InputError
from oai400d.model import FileState, Line, RawLines
from oai400d.unwrap import DETECT_BYTES, WRAPPER_OVERHEAD, WRAPPERS, Unwrapped, Unwrapper, detect

HEAD_BYTES = 1024  # the identity digest covers at most this many first bytes
CHUNK = 1024 * 1024  # one pread; with max_line this bounds what one file holds in memory


def digest(data: bytes) -> str:
    """The head digest of a file's first bytes."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def open_log(path: str) -> tuple[int, os.stat_result]:
    """Open a regular file to read; FileNotFoundError if it is gone, InputError if unreadable,
    OSError EMFILE/ENFILE when no descriptor is left (the file is fine: close another)."""
    try:
        # O_NONBLOCK: opening a FIFO that matches a glob must not hang the daemon.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        raise
    except OSError as error:
        if error.errno in (errno.EMFILE, errno.ENFILE):
            raise
        raise InputError(unreadable(path, error)) from error
    info = os.fstat(fd)
    if stat.S_ISREG(info.st_mode):
        return fd, info
    os.close(fd)
    if stat.S_ISDIR(info.st_mode):
        raise InputError(
            unreadable(path, IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR)))
        )
    raise InputError(
        f"cannot read {path}: not a regular file (a FIFO, socket or device); "
        "narrow logs.paths so that it matches log files only"
    )


def unreadable(path: str, error: OSError) -> str:
    """What an on-call engineer needs to know about a log file that cannot be read."""
    reason = error.strerror or str(error)
    if error.errno in (errno.EACCES, errno.EPERM):
        return (
            f"cannot read {path}: {reason}; give the oai400d user read access to the file and "
            "search (x) access to its directories (group adm, or an ACL: "
            f"setfacl -m u:oai400d:r {path})"
        )
    if error.errno == errno.EISDIR:
        return f"cannot read {path}: {reason}; narrow logs.paths so that it matches log files only"
    return f"cannot read {path}: {reason}; check the file and the disk it is on"


def find_line_end(fd: int, size: int) -> tuple[int, int]:
    """(offset after the last newline, number of newlines before it) in the first `size` bytes."""
    position, count, after_last = 0, 0, 0
    while position < size:
        data = os.pread(fd, min(CHUNK, size - position), position)
        if not data:
            break
        count += data.count(b"\n")
        last = data.rfind(b"\n")
        if last >= 0:
            after_last = position + last + 1
        position += len(data)
    return after_last, count


def _first_line_length(data: bytes) -> int:
    """The bytes before the first newline (all of them, if there is none)."""
    newline = data.find(b"\n")
    return len(data) if newline < 0 else newline


class Tail:
    """Reads one open file forward in bounded memory and turns its bytes into Lines.

    `offset`/`line_no` are the position after the last line handed out; `pos` is the next
    byte to read. Between them lies the partial last line, held in `pending` (at most
    max_line bytes); an over-long line keeps its first max_line bytes and `skipping` drops the
    rest until its newline, when the cut line is handed out.

    `wrapper`: "none", "auto" (detected from the file's first lines when its first line is
    read) or one of unwrap.WRAPPERS. While the Unwrapper holds the first pieces of a line that
    the runtime split, state() stays at the first of them, so a restart reads them again.

    `raw`: a plain file's complete lines go out undecoded, as RawLines in `raw_out` (the
    daemon's fast path decodes only the lines around a prefilter hit); a wrapped file's are
    Lines in `out` either way.
    """

    def __init__(
        self,
        path: str,
        fd: int,
        info: os.stat_result,
        head: bytes,
        max_line: int,
        now: float,
        wrapper: str = "none",
        raw: bool = False,
    ) -> None:
        self.path = path
        self.fd = fd
        self.dev, self.ino = info.st_dev, info.st_ino
        self.head, self.head_len = digest(head), len(head)
        self.target = path  # where the path leads, when it is a symlink (Sources sets it)
        self.wrapper = wrapper
        self.unwrapper: Unwrapper | None = None
        self.decided = wrapper == "none"  # whether the wrapper is known (auto: detected)
        self.max_line = max_line
        # The physical bound: a wrapped line may be longer (a plain one is cut at max_line).
        self.line_max = max_line if wrapper == "none" else max_line + WRAPPER_OVERHEAD
        self.offset = self.line_no = self.pos = 0
        self.pending = bytearray()
        self.skipping = False
        self.out: list[Line] = []  # lines made but not yet returned by a poll
        self.raw = raw
        self.raw_out: list[RawLines] = []  # raw blocks made but not yet returned by a poll
        self._block = bytearray()  # the raw block being made: complete lines, cut at max_line
        self._block_at = (0, 0)  # (file offset, lines before) of the block's first byte
        self._anchors: list[tuple[int, int]] = []  # after each cut line: (block pos, offset)
        self.dirty = True  # may have changed: check it and read it at the next poll
        # Its path may lead to another file now (not only written to, as inotify told): the
        # next check stats the path (FollowedFiles.mark).
        self.moved = True
        self.backlog = False  # the last read stopped at the budget, not at the end
        self.rotated = False  # no longer at a path the globs match: finish it when idle
        self.lost = False  # rotated to a name we cannot see (deleted or another directory)
        self.deleted = False
        self.last_growth = now  # when data last arrived (the rotated grace counts from here)
        self.emitted: FileState | None = None  # the state the caller last saw
        self.error: str | None = None  # a read error already reported

    def state(self) -> FileState:
        """Where reading stands, as the caller persists it."""
        held = self.unwrapper.held if self.unwrapper is not None else None
        offset, line_no = (
            (held[1], held[0] - 1) if held is not None else (self.offset, self.line_no)
        )
        return FileState(self.path, self.dev, self.ino, self.head, self.head_len, offset, line_no)

    def seek(self, offset: int, line_no: int) -> None:
        """Resume at a line start whose line number is known."""
        self.offset = self.pos = offset
        self.line_no = line_no

    def check(self) -> None:
        """Notice truncation or rewritten content (copytruncate), and grow the head digest."""
        info = os.fstat(self.fd)
        self.deleted = info.st_nlink == 0
        head = os.pread(self.fd, min(info.st_size, HEAD_BYTES), 0)
        prefix = head[: self.head_len]
        replaced = len(prefix) < self.head_len or digest(prefix) != self.head
        if info.st_size < self.pos or replaced:
            self._restart()
        if replaced or len(head) > self.head_len:
            self.head, self.head_len = digest(head), len(head)

    def _restart(self) -> None:
        """The content was replaced: the held partial line ends here; read again from byte 0
        (and tell its wrapper again from its new first lines)."""
        self._flush_partial()
        self._flush_unwrapper()
        self.end_block()  # what follows starts again at offset 0: a block of its own
        self.unwrapper = None
        self.decided = self.wrapper == "none"
        self.seek(0, 0)

    def read(self, budget: int) -> tuple[int, bool]:
        """Read up to `budget` bytes into `out`; returns (bytes read, reached the end)."""
        used = 0
        while used < budget:
            want = min(CHUNK, budget - used)
            data = os.pread(self.fd, want, self.pos)
            used += len(data)
            self._consume(data)
            if len(data) < want:
                return used, True
        return used, os.fstat(self.fd).st_size <= self.pos

    def read_at(self, offset: int, size: int) -> bytes:
        """Bytes already read, read again (the fast path's walk back past the lines it keeps):
        fewer when the file is shorter now, none when its descriptor is closed (the budget) or
        the read fails."""
        if self.fd < 0:
            return b""
        try:
            return os.pread(self.fd, size, offset)
        except OSError:
            return b""

    def finish(self) -> None:
        """The file will not grow any more: hand out its partial last line too."""
        self._flush_partial()
        self._flush_unwrapper()
        self.close()

    def close(self) -> None:
        """Close the file descriptor (the state stays readable)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _flush_partial(self) -> None:
        if self.pending or self.skipping:
            self._emit(bytes(self.pending), self.pos)

    def _flush_unwrapper(self) -> None:
        if self.unwrapper is not None:
            self.out.extend(self._line(piece) for piece in self.unwrapper.flush())

    def _decide(self) -> None:
        """Which wrapper the file has: the configured one, or detected from its first lines."""
        self.decided = True
        kind = self.wrapper
        head = b""
        if kind == "auto" or kind == "compose":
            try:
                head = os.pread(self.fd, DETECT_BYTES, 0)
            except OSError:
                head = b""
            if kind == "auto":
                kind = detect(head)
        if kind in WRAPPERS:
            self.unwrapper = Unwrapper(kind, self.max_line, head)

    def _line(self, piece: Unwrapped) -> Line:
        return Line(
            self.path,
            piece.line_no,
            piece.offset,
            piece.text.decode("utf-8", "replace"),
            piece.stream,
            piece.time,
        )

    def end_block(self) -> None:
        """Move the raw block being made to `raw_out`."""
        if self._block:
            offset, line_no = self._block_at
            self.raw_out.append(RawLines(bytes(self._block), offset, line_no, tuple(self._anchors)))
            self._block.clear()
            self._anchors.clear()

    def _consume(self, data: bytes) -> None:
        base = self.pos  # file offset of data[0]
        if (
            self.raw
            and self.decided
            and self.unwrapper is None
            and not self.skipping
            and len(data) <= self.line_max
            and len(self.pending) + _first_line_length(data) <= self.line_max
        ):
            # No line here is over-long (the first, with what is held, is not; the others are
            # shorter than the data): the complete lines go out as they are, at once.
            self.pos += len(data)
            last = data.rfind(b"\n")
            if last < 0:
                self.pending += data
                return
            if not self._block:
                self._block_at = (self.offset, self.line_no)
            self._block += self.pending
            self._block += data[: last + 1] if last + 1 < len(data) else data
            self.line_no += data.count(b"\n", 0, last + 1)
            self.offset = base + last + 1
            self.pending.clear()
            self.pending += data[last + 1 :]
            return
        self.pos += len(data)
        start = 0
        if self.skipping:
            newline = data.find(b"\n")
            if newline < 0:
                return
            self._emit(bytes(self.pending), base + newline + 1)
            start = newline + 1
        while (newline := data.find(b"\n", start)) >= 0:
            room = self.line_max - len(self.pending)
            piece = data[start : min(newline, start + room)]
            self._emit(bytes(self.pending) + piece if self.pending else piece, base + newline + 1)
            start = newline + 1
        rest = len(data) - start
        room = self.line_max - len(self.pending)
        self.pending += data[start : start + room]
        self.skipping = rest > room

    def _emit(self, raw: bytes, end: int) -> None:
        """One line, from the current offset up to `end` (just past its newline, if any)."""
        self.line_no += 1
        if not self.decided:
            self._decide()
        if self.raw and self.unwrapper is None:
            # As read, CR and all (the fast path's decode_line drops it, as _line does).
            if not self._block:
                self._block_at = (self.offset, self.line_no - 1)
            self._block += raw
            self._block += b"\n"
            if self.offset + len(raw) + 1 != end:  # cut, or the unfinished last line
                self._anchors.append((len(self._block), end))
            self.offset = end
            self.pending.clear()
            self.skipping = False
            return
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if self.unwrapper is None:
            text = raw[: self.max_line] if len(raw) > self.max_line else raw
            line = Line(self.path, self.line_no, self.offset, text.decode("utf-8", "replace"))
            self.out.append(line)
        else:
            for piece in self.unwrapper.feed(raw, self.line_no, self.offset):
                self.out.append(self._line(piece))
        self.offset = end
        self.pending.clear()
        self.skipping = False
