"""Sources: follows every file the globs match, through rotation, truncation and restarts.

A file is known by device + inode + a digest of its first bytes (see tail.py). Each poll
first checks the files marked dirty (by watchdog, or all of them by reconcile): a file no
longer at its path was rotated (renamed or deleted); it keeps its open descriptor, is looked
for by inode in its directory to learn its new name, is read to its end and finished once
deleted or idle for `rotated_grace` seconds. Whatever is at the path now is a new file, read
from its beginning.

A followed file's FileState.path is its current name. When that name changes (renamed, or
found elsewhere after a restart) a Read of the old state with finished=True comes first, so
a store keyed by path forgets the old name; and after any Read for a path that also has a
file being followed there now, that file's state comes last, so the store ends with it.

Where reading starts: a saved file resumes at its saved offset; a file new while running,
or new at start-up in a directory that already had saved files (it appeared while we were
stopped), from its beginning; any other file at start-up as `read_from` says ("end": after
its last complete line, its lines counted once so that numbers stay true).

A line longer than max_line bytes is handed out cut to its first max_line bytes when its
newline arrives (or its file is finished); the rest is read and dropped, never held.

A file in a container runtime's or syslog's wrapper is unwrapped by its Tail (`wrapper`, or the
first of `wrappers`, (glob, kind), whose glob matches its path). A path that is a symlink (the
/var/log/containers/*.log links into /var/log/pods/) is watched at its target's directory too:
writes to the target are seen there, not in the link's directory.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from types import TracebackType

from oai400d.errors import InputError
from oai400d.model import FileState, Read
from oai400d.sources import globs
from oai400d.sources.tail import HEAD_BYTES, Tail, digest, find_line_end, open_log
from oai400d.sources.watch import Watcher

DEFAULT_BUDGET = 4 * 1024 * 1024


class Sources:
    """The tailing stage: poll() returns the new lines of every followed file.

    One thread calls start, wait, poll, reconcile, files and stop; wake may come from any.
    """

    def __init__(
        self,
        patterns: Sequence[str],
        saved: Sequence[FileState],
        read_from: str,
        max_line: int,
        report: Callable[[str], None],
        rotated_grace: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        on_error: Callable[[str], None] | None = None,
        wrapper: str = "none",
        wrappers: Sequence[tuple[str, str]] = (),
    ) -> None:
        if read_from not in ("end", "beginning"):
            raise ValueError(f"read_from must be 'end' or 'beginning', not {read_from!r}")
        if max_line < 1:
            raise ValueError("max_line must be at least 1")
        self._patterns = [globs.normalize(pattern) for pattern in patterns]
        self._saved = list(saved)
        self._at_end = read_from == "end"
        self._max_line = max_line
        self._report = report
        self._on_error = on_error  # told the path of each file that becomes unreadable (metrics)
        self._grace = rotated_grace
        self._clock = clock
        self._wrapper = wrapper
        self._wrappers = [(globs.normalize(pattern), kind) for pattern, kind in wrappers]
        self._watcher = Watcher(globs.watch_roots(self._patterns), report)
        self._tails: list[Tail] = []
        self._broken: dict[str, bool] = {}  # unreadable path → read it from its start once readable
        self._waiting: dict[str, FileState] = {}  # saved files that exist but cannot be read now
        self._out: list[Read] = []  # Reads made but not yet returned by poll()
        self._more = False
        self._stopped = False

    def __enter__(self) -> Sources:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Watch the globs' directories, resume the saved files and follow every match."""
        self._watcher.start()  # first, so that a file created during the listing is not missed
        # A file new in a directory we were already following appeared while we were stopped
        # (logrotate's new file, another app log): all of it is new. read_from is for the rest.
        known_dirs = {os.path.dirname(state.path) for state in self._saved}
        # For one identity saved twice, the furthest position is the latest.
        for state in sorted(self._saved, key=lambda s: -s.offset):
            self._resume(state)
        self._saved = []
        active = self._active_paths()
        for path in globs.expand(self._patterns):
            if path not in active:
                known = os.path.dirname(path) in known_dirs
                self._follow(path, from_start=known or not self._at_end)
        self._watch_targets()

    def stop(self) -> None:
        """Stop watching and close every file; files() still tells where each one stood."""
        self._stopped = True
        self._watcher.stop()
        for tail in self._tails:
            tail.close()

    def wait(self, timeout: float) -> None:
        """Block until a followed file may have changed, `timeout` passes, or wake() is called."""
        if self._more:
            return
        # A rotated file must be finished when its grace ends, even if nothing else happens.
        now = self._clock()
        for tail in self._tails:
            if tail.rotated and tail.error is None:
                timeout = min(timeout, tail.last_growth + self._grace - now)
        self._watcher.inbox.wait(timeout)

    def wake(self) -> None:
        """Make a wait() in another thread return now (or the next one, if none is waiting)."""
        self._watcher.inbox.wake()

    @property
    def more(self) -> bool:
        """True when the last poll stopped at its budget with data left to read."""
        return self._more

    def files(self) -> list[FileState]:
        """The current position of every followed file."""
        return sorted((tail.state() for tail in self._tails), key=lambda s: (s.path, s.ino))

    def reconcile(self) -> None:
        """Re-list the globs, retry unreadable files, and have the next poll re-check every file.

        This is what covers an inotify queue overflow, a lost event, a directory that appeared,
        or a file system that sends no events (NFS).
        """
        self._watcher.rewatch()
        for tail in self._tails:
            tail.dirty = True
        matched = set(globs.expand(self._patterns))
        for path in list(self._broken):
            if path not in matched:
                del self._broken[path]  # gone, or no longer matched: nothing left to retry
        for path in sorted(matched - self._active_paths()):
            self._follow(path, from_start=True)
        self._watch_targets()
        self._watcher.inbox.event.set()

    def poll(self, budget: int = DEFAULT_BUDGET) -> list[Read]:
        """Read what is new (about `budget` bytes at most); Reads in the order to apply them."""
        if self._stopped:
            raise RuntimeError("Sources.poll() after stop()")
        dirty, rewatch = self._watcher.inbox.take()
        candidates = {path for path in dirty if self._matches(path)}
        if rewatch and self._watcher.rewatch():
            # A directory watched from now on may already hold matching files.
            candidates.update(globs.expand(self._patterns))
        for tail in self._tails:
            if tail.path in dirty or tail.target in dirty:
                tail.dirty = True
        for tail in list(self._tails):
            if tail.dirty or tail.rotated:
                vacated = self._check(tail)
                if vacated is not None and self._matches(vacated):
                    candidates.add(vacated)
        for path in sorted(candidates - self._active_paths()):
            self._follow(path, from_start=True)
        self._watch_targets()
        self._read_all(budget)
        for tail in self._tails:
            # Even past the budget, every file's identity and position go out (no reading
            # needed), so a file followed but not read yet is known after a restart.
            self._hand_out(tail)
        reads, self._out = self._out, []
        return self._settle(reads)

    def _read_all(self, budget: int) -> None:
        """Read the files that may have grown: rotated ones first, then the others in turn."""
        now = self._clock()
        left = max(budget, 1)
        self._more = False
        for tail in sorted(self._tails, key=lambda t: not t.rotated):
            if not (tail.dirty or tail.backlog or tail.rotated or tail.out):
                continue
            if left <= 0:
                self._more = True
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
                self._tails.remove(tail)
            self._hand_out(tail, finished)
            if tail.backlog:
                # Round robin: a file with a big backlog must not starve the others.
                self._tails.remove(tail)
                self._tails.append(tail)
                self._more = True

    def _hand_out(self, tail: Tail, finished: bool = False) -> None:
        state = tail.state()
        if tail.out or finished or state != tail.emitted:
            self._out.append(Read(state, tuple(tail.out), finished))
            tail.out = []
            tail.emitted = state

    def _settle(self, reads: list[Read]) -> list[Read]:
        """Make the last Read of each path the file being followed there now."""
        active = {tail.path: tail for tail in self._tails if not tail.rotated}
        last: dict[str, FileState] = {}
        for read in reads:
            last[read.file.path] = read.file
        for path, state in last.items():
            tail = active.get(path)
            if tail is not None and state != tail.state():
                reads.append(Read(tail.state(), ()))
                tail.emitted = tail.state()
        return reads

    # Following, checking and resuming files

    def _active_paths(self) -> set[str]:
        return {tail.path for tail in self._tails if not tail.rotated}

    def _matches(self, path: str) -> bool:
        return any(globs.matches(pattern, path) for pattern in self._patterns)

    def _wrapper_for(self, path: str) -> str:
        return globs.choose(self._wrappers, self._wrapper, path)

    def _watch_targets(self) -> None:
        """Watch the directories of symlinked files' targets (only the links' are watched)."""
        self._watcher.watch_extra(
            {os.path.dirname(tail.target) for tail in self._tails if tail.target != tail.path}
        )

    def _follow(self, path: str, from_start: bool) -> None:
        """Start following the file at `path` (from its start, or its last complete line)."""
        was_broken = path in self._broken
        if was_broken:
            from_start = self._broken[path]
        try:
            fd, info = open_log(path)
        except FileNotFoundError:
            return  # gone again; an unreadable path stays reported until reconcile drops it
        except InputError as error:
            if not was_broken:
                self._report(str(error))
                self._count_error(path)
            self._broken[path] = from_start
            return
        if was_broken:
            del self._broken[path]
        for tail in self._tails:
            if (tail.dev, tail.ino) == (info.st_dev, info.st_ino):
                os.close(fd)
                if not tail.lost and _holds(tail.path, tail):
                    return  # a second name (hard link) of a file already followed
                self._rename(tail, path)
                return
        tail = Tail(
            path,
            fd,
            info,
            os.pread(fd, min(info.st_size, HEAD_BYTES), 0),
            self._max_line,
            self._clock(),
            self._wrapper_for(path),
        )
        tail.target = _target(path)
        saved = self._waiting.pop(path, None)
        if saved is not None and _is_saved(fd, info, saved):
            tail.head, tail.head_len = saved.head, saved.head_len
            if info.st_size >= saved.offset:
                tail.seek(saved.offset, saved.line_no)
            where = f"line {saved.line_no + 1}, where it stopped"
        elif from_start:
            where = "its beginning"
        else:
            tail.seek(*find_line_end(fd, info.st_size))
            where = f"its end (line {tail.line_no + 1})"
        if was_broken:
            self._report(f"{path} can be read now; reading it from {where}")
        self._tails.append(tail)

    def _check(self, tail: Tail) -> str | None:
        """Notice rotation and truncation; returns the path the file left, if it left one."""
        vacated = None
        if not tail.lost and not _holds(tail.path, tail):
            vacated = tail.path
            self._relocate(tail)
        try:
            tail.check()
        except OSError as error:
            self._read_failed(tail, error)
        return vacated

    def _relocate(self, tail: Tail) -> None:
        """The file left its path: find its new name in the same directory, or lose track."""
        new_path = _find_inode(os.path.dirname(tail.path), tail.dev, tail.ino)
        if new_path is None:
            tail.lost = True
            tail.rotated = True
        else:
            self._rename(tail, new_path)
        tail.last_growth = self._clock()

    def _rename(self, tail: Tail, path: str) -> None:
        """The file is now called `path`; the caller forgets the old name first."""
        if path != tail.path:
            self._hand_out(tail)
            self._out.append(Read(tail.state(), (), True))
            tail.path = path
            tail.target = _target(path)
        tail.lost = False
        tail.rotated = not self._matches(path)
        tail.dirty = True

    def _resume(self, state: FileState) -> None:
        """Continue a file saved before a restart, wherever it is now in its directory."""
        if any((tail.dev, tail.ino) == (state.dev, state.ino) for tail in self._tails):
            self._out.append(Read(state, (), True))  # an older duplicate of the same file
            return
        if _unreadable_there(state):
            # Still there but unreadable: reported by _follow, resumed when it can be read.
            self._waiting[state.path] = state
            return
        for path in (state.path, *_same_dir_candidates(state)):
            opened = _open_saved(path, state)
            if opened is None:
                continue
            fd, info = opened
            tail = Tail(path, fd, info, b"", self._max_line, self._clock(), self._wrapper_for(path))
            tail.target = _target(path)
            tail.head, tail.head_len = state.head, state.head_len
            if info.st_size >= state.offset:
                tail.seek(state.offset, state.line_no)
            # else: truncated while we were stopped, read it again from the start
            tail.rotated = not self._matches(path)
            if path != state.path:
                self._out.append(Read(state, (), True))
            else:
                tail.emitted = state
            self._tails.append(tail)
            return
        self._out.append(Read(state, (), True))
        self._report(
            f"{state.path}: the file read up to line {state.line_no} is gone (rotated away and "
            "compressed, or deleted, while oai400d was stopped); any lines written to it after "
            "the stop could not be read. The file now at that path is read from its beginning."
        )

    def _read_failed(self, tail: Tail, error: OSError) -> None:
        reason = f"cannot read {tail.path}: {error.strerror or error}"
        if tail.rotated or tail.error is None:
            self._count_error(tail.path)
        if tail.rotated:
            # Not worth retrying a file on its way out (and wait() must not spin on it).
            self._report(f"{reason}; the rest of this rotated file is skipped")
            tail.close()
            self._tails.remove(tail)
            self._hand_out(tail, finished=True)
            return
        if tail.error is None:
            tail.error = f"{reason}; retrying at every poll"
            self._report(tail.error)
        tail.dirty = True

    def _count_error(self, path: str) -> None:
        if self._on_error is not None:
            self._on_error(path)

    def _read_recovered(self, tail: Tail) -> None:
        if tail.error is not None:
            tail.error = None
            self._report(f"{tail.path} can be read again")


def _target(path: str) -> str:
    """Where a path leads through symlinks (of the file or of a directory on its way)."""
    try:
        return os.path.realpath(path)
    except OSError:
        return path


def _holds(path: str, tail: Tail) -> bool:
    """Whether `path` still names the tail's file (an unreadable path is given the benefit)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return (info.st_dev, info.st_ino) == (tail.dev, tail.ino)


def _find_inode(directory: str, dev: int, ino: int) -> str | None:
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


def _same_dir_candidates(state: FileState) -> list[str]:
    found = _find_inode(os.path.dirname(state.path), state.dev, state.ino)
    return [found] if found is not None and found != state.path else []


def _open_saved(path: str, state: FileState) -> tuple[int, os.stat_result] | None:
    """Open `path` if it is the saved file: same device, inode and first bytes."""
    try:
        fd, info = open_log(path)
    except (OSError, InputError):
        return None
    if _is_saved(fd, info, state):
        return fd, info
    os.close(fd)
    return None


def _is_saved(fd: int, info: os.stat_result, state: FileState) -> bool:
    if (info.st_dev, info.st_ino) != (state.dev, state.ino):
        return False
    head = os.pread(fd, state.head_len, 0)
    return len(head) == state.head_len and digest(head) == state.head


def _unreadable_there(state: FileState) -> bool:
    """Whether the saved file is still at its path (same inode) but cannot be opened."""
    try:
        info = os.stat(state.path)
    except OSError:
        return False
    if (info.st_dev, info.st_ino) != (state.dev, state.ino):
        return False
    try:
        os.close(open_log(state.path)[0])
    except (OSError, InputError):
        return True
    return False
