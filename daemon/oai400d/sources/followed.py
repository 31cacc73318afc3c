"""The files being followed, as Tails, and the Reads they have to hand out.

Each poll reads the files that may have grown (rotated ones first, then the others in turn, a
file with a backlog going to the back so that it cannot starve the others), within a budget.
A file no longer at its path was rotated: it is looked for by inode in its directory, read to
its end and finished once deleted or idle for the rotated grace. A read error is reported once
and retried at every poll; a rotated file that fails is given up.

A poll costs what changed, not what is followed: the files to look at (`_due`: marked dirty, a
backlog, rotated, in error) and those whose position may have moved (`_touched`) are kept
apart, and files are found by path and by inode through indexes, so that 5,000 idle files cost
nothing between events.

Descriptors (descriptors.py): at most `max_open` followed files are open at once. Opening one
more closes the least recently active (a rotated file last: it must be read to its end); a
closed file is reopened by its path when it is to be checked or read, and taken back only if
the path still leads to its device and inode (else it is looked for in its directory, as a
rotated file is). Its head digest and size are then checked as for any file (Tail.check), so a
file truncated or rewritten meanwhile is read again from its start, never misread.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection

from oai400d.errors import InputError
from oai400d.model import FileState, Read
from oai400d.sources import descriptors
from oai400d.sources.tail import Tail


class FollowedFiles:
    """The Tails of the followed files; what changed in them goes out as Reads, in the order
    to apply them."""

    def __init__(
        self,
        clock: Callable[[], float],
        rotated_grace: float,
        report: Callable[[str], None],
        count_error: Callable[[str], None],
        matches: Callable[[str], bool],
        max_open: int | None = None,
    ) -> None:
        self.more = False  # the last read stopped at its budget with data left to read
        # Bumped when a file is added, renamed or dropped: the symlink targets to watch may differ.
        self.generation = 0
        self._clock = clock
        self._grace = rotated_grace
        self._report = report
        self._count_error = count_error  # told the path of each file that becomes unreadable
        self._matches = matches  # whether the globs match a path
        self._out: list[Read] = []  # Reads made but not yet returned by read()
        self._tails: dict[Tail, None] = {}  # dicts used as ordered sets
        self._index = TailIndex()
        self._due: dict[Tail, None] = {}  # to check or read at the next poll, in turn
        self._touched: dict[Tail, None] = {}  # position may have moved: hand it out
        self._open = descriptors.OpenFiles(report, max_open)  # those holding a descriptor
        # While a check pass runs: each directory's listing, inode → names, taken once, so
        # that 5,000 files deleted at once cost one listing, not 5,000.
        self._listings: dict[str, dict[int, list[str]]] | None = None

    @property
    def tails(self) -> list[Tail]:
        return list(self._tails)

    def add(self, tail: Tail) -> None:
        self._tails[tail] = None
        self._index.add(tail)
        if tail.fd >= 0:
            self._open.used(tail)
        self.mark(tail)
        self.generation += 1

    def mark(self, tail: Tail, written: bool = False) -> None:
        """The file may have changed: check it and read it at the next poll. `written`: only
        written to, as inotify tells (its path still leads to it: no stat of the path)."""
        tail.dirty = True
        if not written:
            tail.moved = True
        self._due[tail] = None
        self._touched[tail] = None

    def mark_all(self) -> None:
        """Every file may have changed (a full re-check)."""
        for tail in self._tails:
            self.mark(tail)

    def forget(self, state: FileState) -> None:
        """The file saved as `state` is no longer followed under that name."""
        self._out.append(Read(state, (), True))

    def same_file(self, dev: int, ino: int) -> Tail | None:
        """The Tail of the file with this device and inode, if it is followed."""
        return self._index.of(dev, ino)

    def read_at(self, dev: int, ino: int, offset: int, size: int) -> bytes:
        """Bytes of a followed file read again (Tail.read_at); none when it is not followed."""
        tail = self._index.of(dev, ino)
        return tail.read_at(offset, size) if tail is not None else b""

    def active_at(self, path: str) -> Tail | None:
        """The file being followed at `path` now (not a rotated file that left it)."""
        found = None
        for tail in self._index.at(path):
            if tail.path == path and not tail.rotated:
                found = tail
        return found

    def active_paths(self) -> set[str]:
        return {tail.path for tail in self._tails if not tail.rotated}

    def target_dirs(self) -> set[str]:
        """The directories of symlinked files' targets (where their writes are seen)."""
        return {os.path.dirname(t.target) for t in self._tails if t.target != t.path}

    def files(self) -> list[FileState]:
        """The current position of every followed file."""
        return sorted((tail.state() for tail in self._tails), key=lambda s: (s.path, s.ino))

    def close(self) -> None:
        for tail in self._tails:
            tail.close()
        self._open.clear()

    def open_file(self, path: str) -> tuple[int, os.stat_result]:
        """open_log within the descriptors' budget (descriptors.OpenFiles.open)."""
        return self._open.open(path)

    def wait_limit(self, timeout: float) -> float:
        """`timeout`, or less: a rotated file must be finished when its grace ends, even if
        nothing else happens."""
        now = self._clock()
        for tail in self._due:  # a rotated file is always due
            if tail.rotated and tail.error is None:
                timeout = min(timeout, tail.last_growth + self._grace - now)
        return timeout

    def check(self, dirty: Collection[str], renamed: Collection[str] | None = None) -> list[str]:
        """Mark the files at (or through a link to) the `dirty` paths, check every file that
        may have moved; the paths the files left. `renamed`: of the dirty paths, those that may
        lead to another file now (None: all of them); the others were only written to."""
        for path in dirty:
            written = renamed is not None and path not in renamed
            for tail in list(self._index.at(path)):
                self.mark(tail, written)
        vacated = []
        self._listings = {}
        try:
            for tail in list(self._due):
                if tail in self._tails and (tail.dirty or tail.rotated):
                    left = self._check(tail)
                    if left is not None:
                        vacated.append(left)
        finally:
            self._listings = None
        return vacated

    def read(self, budget: int) -> list[Read]:
        """Read what is new (about `budget` bytes at most); Reads in the order to apply them."""
        self._read_all(budget)
        touched, self._touched = self._touched, {}
        for tail in touched:
            if tail in self._tails:
                # Even past the budget, every new or moved file's identity and position go out
                # (no reading needed), so a file followed but not read yet is known after a
                # restart.
                self._hand_out(tail)
        reads, self._out = self._out, []
        return self._settle(reads)

    def rename(self, tail: Tail, path: str) -> None:
        """The file is now called `path`; the caller forgets the old name first."""
        if path != tail.path:
            self._hand_out(tail)
            self._out.append(Read(tail.state(), (), True))
            self._index.remove(tail)
            tail.path = path
            tail.target = target(path)
            self._index.add(tail)
            self.generation += 1
        tail.lost = False
        tail.rotated = not self._matches(path)
        self.mark(tail)

    def _read_all(self, budget: int) -> None:
        """Read the files that may have grown: rotated ones first, then the others in turn."""
        now = self._clock()
        left = max(budget, 1)
        self.more = False
        for tail in sorted(self._due, key=lambda t: not t.rotated):
            if tail not in self._tails:
                continue
            if not (tail.dirty or tail.backlog or tail.rotated or tail.out):
                self._due.pop(tail, None)
                continue
            if left <= 0:
                self.more = True
                break
            if tail.fd < 0 and not self._reopen(tail):
                continue
            self._touched[tail] = None
            try:
                used, at_end = tail.read(left)
            except OSError as error:
                self._read_failed(tail, f"cannot read {tail.path}: {error.strerror or error}")
                continue
            self._read_recovered(tail)
            left -= used
            tail.dirty, tail.backlog = False, not at_end
            if used:
                tail.last_growth = now
                self._open.used(tail)  # the most recently active: the last to be closed
            gone = tail.rotated or tail.deleted
            finished = gone and at_end and (tail.deleted or now - tail.last_growth >= self._grace)
            if finished:
                tail.finish()
                self._drop(tail)
            self._hand_out(tail, finished)
            # Handed out: read() need not build its state again (it cannot move before then).
            self._touched.pop(tail, None)
            if tail.backlog:
                # Round robin: a file with a big backlog must not starve the others.
                self._due.pop(tail, None)
                self._due[tail] = None
                self.more = True
            elif not (finished or tail.rotated or tail.out):
                self._due.pop(tail, None)

    def _hand_out(self, tail: Tail, finished: bool = False) -> None:
        tail.end_block()
        state = tail.state()
        if tail.out or tail.raw_out or finished or state != tail.emitted:
            self._out.append(Read(state, tuple(tail.out), finished, tuple(tail.raw_out)))
            tail.out = []
            tail.raw_out = []
            tail.emitted = state

    def _settle(self, reads: list[Read]) -> list[Read]:
        """Make the last Read of each path the file being followed there now."""
        last: dict[str, FileState] = {}
        for read in reads:
            last[read.file.path] = read.file
        for path, state in last.items():
            tail = self.active_at(path)
            # (`is`: the state it was handed out with, unchanged since: no state to build)
            if tail is not None and state is not tail.emitted and state != tail.state():
                reads.append(Read(tail.state(), ()))
                tail.emitted = tail.state()
        return reads

    def _check(self, tail: Tail) -> str | None:
        """Notice rotation and truncation; returns the path the file left, if it left one."""
        vacated = None
        moved, tail.moved = tail.moved, False
        if moved and not tail.lost and not holds(tail.path, tail):
            vacated = tail.path
            self._relocate(tail)
        if tail.fd < 0 and not self._reopen(tail):
            return vacated
        self._touched[tail] = None
        try:
            tail.check()
        except OSError as error:
            self._read_failed(tail, f"cannot read {tail.path}: {error.strerror or error}")
        return vacated

    def _relocate(self, tail: Tail) -> None:
        """The file left its path: find its new name in the same directory, or lose track."""
        new_path = self._find(os.path.dirname(tail.path), tail.dev, tail.ino)
        if new_path is None:
            tail.lost = True
            tail.rotated = True
        else:
            self.rename(tail, new_path)
        tail.last_growth = self._clock()

    def _relocated(self, tail: Tail) -> bool:
        """_relocate; whether the file was found (under a new name)."""
        self._relocate(tail)
        return not tail.lost

    def _find(self, directory: str, dev: int, ino: int) -> str | None:
        if self._listings is None:
            return find_inode(directory, dev, ino)
        names = self._listings.get(directory)
        if names is None:
            names = self._listings[directory] = inode_names(directory)
        for path in names.get(ino, ()):
            if same_inode(path, dev, ino):
                return path
        return None

    def _reopen(self, tail: Tail) -> bool:
        """Open again a file closed to stay within the budget, if its path (or its directory,
        after a rename) still leads to it; else the rest of it is given up."""
        for _ in range(2):
            try:
                fd, info = self.open_file(tail.path)
            except FileNotFoundError:
                fd = -1
            except InputError as error:
                self._read_failed(tail, str(error))
                return False
            if fd >= 0 and (info.st_dev, info.st_ino) == (tail.dev, tail.ino):
                tail.fd = fd
                self._open.used(tail)
                return True
            if fd >= 0:
                os.close(fd)  # another file took its name: ours was rotated meanwhile
            if tail.lost or not self._relocated(tail):
                break
        self._open.gone_while_closed(tail)
        self._drop(tail)
        tail.finish()
        self._hand_out(tail, finished=True)
        return False

    def _drop(self, tail: Tail) -> None:
        """The tail is followed no more (its last Read is the caller's to hand out)."""
        self._tails.pop(tail, None)
        self._index.remove(tail)
        self._due.pop(tail, None)
        self._open.forget(tail)
        self.generation += 1

    def _read_failed(self, tail: Tail, reason: str) -> None:
        if tail.rotated or tail.error is None:
            self._count_error(tail.path)
        if tail.rotated:
            # Not worth retrying a file on its way out (and wait() must not spin on it).
            self._report(f"{reason}; the rest of this rotated file is skipped")
            tail.close()
            self._drop(tail)
            self._hand_out(tail, finished=True)
            return
        if tail.error is None:
            tail.error = f"{reason}; retrying at every poll"
            self._report(tail.error)
        self.mark(tail)

    def _read_recovered(self, tail: Tail) -> None:
        if tail.error is not None:
            tail.error = None
            self._report(f"{tail.path} can be read again")


class TailIndex:
    """The followed Tails by device and inode, and by path and symlink target, so that an
    event finds its file without a walk over all of them."""

    def __init__(self) -> None:
        self._by_id: dict[tuple[int, int], Tail] = {}
        self._by_path: dict[str, dict[Tail, None]] = {}

    def of(self, dev: int, ino: int) -> Tail | None:
        return self._by_id.get((dev, ino))

    def at(self, path: str) -> Collection[Tail]:
        """The tails whose path or target is `path`."""
        return self._by_path.get(path, {}).keys()

    def add(self, tail: Tail) -> None:
        """Index the tail (again, after its path changed: remove it first)."""
        self._by_id[(tail.dev, tail.ino)] = tail
        for key in {tail.path, tail.target}:
            self._by_path.setdefault(key, {})[tail] = None

    def remove(self, tail: Tail) -> None:
        if self._by_id.get((tail.dev, tail.ino)) is tail:
            del self._by_id[(tail.dev, tail.ino)]
        for key in {tail.path, tail.target}:
            tails = self._by_path.get(key)
            if tails is not None:
                tails.pop(tail, None)
                if not tails:
                    del self._by_path[key]


def target(path: str) -> str:
    """Where a path leads through symlinks (of the file or of a directory on its way)."""
    try:
        return os.path.realpath(path)
    except OSError:
        return path


def holds(path: str, tail: Tail) -> bool:
    """Whether `path` still names the tail's file (an unreadable path is given the benefit)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return (info.st_dev, info.st_ino) == (tail.dev, tail.ino)


def same_inode(path: str, dev: int, ino: int) -> bool:
    try:
        info = os.stat(path)
    except OSError:
        return False
    return (info.st_dev, info.st_ino) == (dev, ino)


def inode_names(directory: str) -> dict[int, list[str]]:
    """Every name in `directory` by inode number (from the listing: no stat per name)."""
    names: dict[int, list[str]] = {}
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                names.setdefault(entry.inode(), []).append(entry.path)
    except OSError:
        return {}
    return names


def find_inode(directory: str, dev: int, ino: int) -> str | None:
    """The name of inode `ino` in `directory`, if it has one there."""
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                # d_ino comes with the listing: only a likely match costs a stat.
                if entry.inode() == ino:
                    info = os.stat(entry.path)
                    if (info.st_dev, info.st_ino) == (dev, ino):
                        return entry.path
    except OSError:
        return None
    return None
