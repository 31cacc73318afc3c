"""The files being followed, as Tails, and the Reads they have to hand out.

Each poll reads the files that may have grown (rotated ones first, then the others in turn, a
file with a backlog going to the back so that it cannot starve the others), within a budget.
A file no longer at its path was rotated: it is looked for by inode in its directory, read to
its end and finished once deleted or idle for the rotated grace. A read error is reported once
and retried at every poll; a rotated file that fails is given up.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection

from oai400d.model import FileState, Read
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
    ) -> None:
        self.tails: list[Tail] = []
        self.more = False  # the last read stopped at its budget with data left to read
        self._clock = clock
        self._grace = rotated_grace
        self._report = report
        self._count_error = count_error  # told the path of each file that becomes unreadable
        self._matches = matches  # whether the globs match a path
        self._out: list[Read] = []  # Reads made but not yet returned by read()

    def add(self, tail: Tail) -> None:
        self.tails.append(tail)

    def forget(self, state: FileState) -> None:
        """The file saved as `state` is no longer followed under that name."""
        self._out.append(Read(state, (), True))

    def same_file(self, dev: int, ino: int) -> Tail | None:
        """The Tail of the file with this device and inode, if it is followed."""
        for tail in self.tails:
            if (tail.dev, tail.ino) == (dev, ino):
                return tail
        return None

    def active_paths(self) -> set[str]:
        return {tail.path for tail in self.tails if not tail.rotated}

    def files(self) -> list[FileState]:
        """The current position of every followed file."""
        return sorted((tail.state() for tail in self.tails), key=lambda s: (s.path, s.ino))

    def close(self) -> None:
        for tail in self.tails:
            tail.close()

    def wait_limit(self, timeout: float) -> float:
        """`timeout`, or less: a rotated file must be finished when its grace ends, even if
        nothing else happens."""
        now = self._clock()
        for tail in self.tails:
            if tail.rotated and tail.error is None:
                timeout = min(timeout, tail.last_growth + self._grace - now)
        return timeout

    def check(self, dirty: Collection[str]) -> list[str]:
        """Mark the files at (or through a link to) the `dirty` paths, check every file that
        may have moved; the paths the files left."""
        for tail in self.tails:
            if tail.path in dirty or tail.target in dirty:
                tail.dirty = True
        vacated = []
        for tail in list(self.tails):
            if tail.dirty or tail.rotated:
                left = self._check(tail)
                if left is not None:
                    vacated.append(left)
        return vacated

    def read(self, budget: int) -> list[Read]:
        """Read what is new (about `budget` bytes at most); Reads in the order to apply them."""
        self._read_all(budget)
        for tail in self.tails:
            # Even past the budget, every file's identity and position go out (no reading
            # needed), so a file followed but not read yet is known after a restart.
            self._hand_out(tail)
        reads, self._out = self._out, []
        return self._settle(reads)

    def rename(self, tail: Tail, path: str) -> None:
        """The file is now called `path`; the caller forgets the old name first."""
        if path != tail.path:
            self._hand_out(tail)
            self._out.append(Read(tail.state(), (), True))
            tail.path = path
            tail.target = target(path)
        tail.lost = False
        tail.rotated = not self._matches(path)
        tail.dirty = True

    def _read_all(self, budget: int) -> None:
        """Read the files that may have grown: rotated ones first, then the others in turn."""
        now = self._clock()
        left = max(budget, 1)
        self.more = False
        for tail in sorted(self.tails, key=lambda t: not t.rotated):
            if not (tail.dirty or tail.backlog or tail.rotated or tail.out):
                continue
            if left <= 0:
                self.more = True
                break
            try:
                used, at_end = tail.read(left)
            except OSError as error:
                self._read_failed(tail, error)
                continue
            self._read_recovered(tail)
            left -= used
            tail.dirty, tail.backlog = False, not at_end
            if used:
                tail.last_growth = now
            gone = tail.rotated or tail.deleted
            finished = gone and at_end and (tail.deleted or now - tail.last_growth >= self._grace)
            if finished:
                tail.finish()
                self.tails.remove(tail)
            self._hand_out(tail, finished)
            if tail.backlog:
                # Round robin: a file with a big backlog must not starve the others.
                self.tails.remove(tail)
                self.tails.append(tail)
                self.more = True

    def _hand_out(self, tail: Tail, finished: bool = False) -> None:
        state = tail.state()
        if tail.out or finished or state != tail.emitted:
            self._out.append(Read(state, tuple(tail.out), finished))
            tail.out = []
            tail.emitted = state

    def _settle(self, reads: list[Read]) -> list[Read]:
        """Make the last Read of each path the file being followed there now."""
        active = {tail.path: tail for tail in self.tails if not tail.rotated}
        last: dict[str, FileState] = {}
        for read in reads:
            last[read.file.path] = read.file
        for path, state in last.items():
            tail = active.get(path)
            if tail is not None and state != tail.state():
                reads.append(Read(tail.state(), ()))
                tail.emitted = tail.state()
        return reads

    def _check(self, tail: Tail) -> str | None:
        """Notice rotation and truncation; returns the path the file left, if it left one."""
        vacated = None
        if not tail.lost and not holds(tail.path, tail):
            vacated = tail.path
            self._relocate(tail)
        try:
            tail.check()
        except OSError as error:
            self._read_failed(tail, error)
        return vacated

    def _relocate(self, tail: Tail) -> None:
        """The file left its path: find its new name in the same directory, or lose track."""
        new_path = find_inode(os.path.dirname(tail.path), tail.dev, tail.ino)
        if new_path is None:
            tail.lost = True
            tail.rotated = True
        else:
            self.rename(tail, new_path)
        tail.last_growth = self._clock()

    def _read_failed(self, tail: Tail, error: OSError) -> None:
        reason = f"cannot read {tail.path}: {error.strerror or error}"
        if tail.rotated or tail.error is None:
            self._count_error(tail.path)
        if tail.rotated:
            # Not worth retrying a file on its way out (and wait() must not spin on it).
            self._report(f"{reason}; the rest of this rotated file is skipped")
            tail.close()
            self.tails.remove(tail)
            self._hand_out(tail, finished=True)
            return
        if tail.error is None:
            tail.error = f"{reason}; retrying at every poll"
            self._report(tail.error)
        tail.dirty = True

    def _read_recovered(self, tail: Tail) -> None:
        if tail.error is not None:
            tail.error = None
            self._report(f"{tail.path} can be read again")


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
