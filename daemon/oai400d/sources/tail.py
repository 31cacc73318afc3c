"""One open log file: its identity, where reading stands, and the partial line held back."""

from __future__ import annotations

import errno
import hashlib
import os
import stat

from oai400d.errors import InputError
from oai400d.model import FileState, Line

HEAD_BYTES = 1024  # the identity digest covers at most this many first bytes
CHUNK = 1024 * 1024  # one pread; with max_line this bounds what one file holds in memory


def digest(data: bytes) -> str:
    """The head digest of a file's first bytes."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def open_log(path: str) -> tuple[int, os.stat_result]:
    """Open a regular file to read; FileNotFoundError if it is gone, InputError if unreadable."""
    try:
        # O_NONBLOCK: opening a FIFO that matches a glob must not hang the daemon.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        raise
    except OSError as error:
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


class Tail:
    """Reads one open file forward in bounded memory and turns its bytes into Lines.

    `offset`/`line_no` are the position after the last line handed out; `pos` is the next
    byte to read. Between them lies the partial last line, held in `pending` (at most
    max_line bytes); an over-long line keeps its first max_line bytes and `skipping` drops the
    rest until its newline, when the cut line is handed out.
    """

    def __init__(
        self, path: str, fd: int, info: os.stat_result, head: bytes, max_line: int, now: float
    ) -> None:
        self.path = path
        self.fd = fd
        self.dev, self.ino = info.st_dev, info.st_ino
        self.head, self.head_len = digest(head), len(head)
        self.max_line = max_line
        self.offset = self.line_no = self.pos = 0
        self.pending = bytearray()
        self.skipping = False
        self.out: list[Line] = []  # lines made but not yet returned by a poll
        self.dirty = True  # may have changed: check it and read it at the next poll
        self.backlog = False  # the last read stopped at the budget, not at the end
        self.rotated = False  # no longer at a path the globs match: finish it when idle
        self.lost = False  # rotated to a name we cannot see (deleted or another directory)
        self.deleted = False
        self.last_growth = now  # when data last arrived (the rotated grace counts from here)
        self.emitted: FileState | None = None  # the state the caller last saw
        self.error: str | None = None  # a read error already reported

    def state(self) -> FileState:
        """Where reading stands, as the caller persists it."""
        return FileState(
            self.path, self.dev, self.ino, self.head, self.head_len, self.offset, self.line_no
        )

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
        """The content was replaced: the held partial line ends here; read again from byte 0."""
        self._flush_partial()
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

    def finish(self) -> None:
        """The file will not grow any more: hand out its partial last line too."""
        self._flush_partial()
        self.close()

    def close(self) -> None:
        """Close the file descriptor (the state stays readable)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _flush_partial(self) -> None:
        if self.pending or self.skipping:
            self._emit(bytes(self.pending), self.pos)

    def _consume(self, data: bytes) -> None:
        base = self.pos  # file offset of data[0]
        self.pos += len(data)
        start = 0
        if self.skipping:
            newline = data.find(b"\n")
            if newline < 0:
                return
            self._emit(bytes(self.pending), base + newline + 1)
            start = newline + 1
        while (newline := data.find(b"\n", start)) >= 0:
            room = self.max_line - len(self.pending)
            piece = data[start : min(newline, start + room)]
            self._emit(bytes(self.pending) + piece if self.pending else piece, base + newline + 1)
            start = newline + 1
        rest = len(data) - start
        room = self.max_line - len(self.pending)
        self.pending += data[start : start + room]
        self.skipping = rest > room

    def _emit(self, raw: bytes, end: int) -> None:
        """One line, from the current offset up to `end` (just past its newline, if any)."""
        self.line_no += 1
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        self.out.append(Line(self.path, self.line_no, self.offset, raw.decode("utf-8", "replace")))
        self.offset = end
        self.pending.clear()
        self.skipping = False
