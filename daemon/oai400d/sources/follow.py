"""Sources: follows every file the globs match, through rotation, truncation and restarts.

A file is known by device + inode + a digest of its first bytes (see tail.py). Each poll
first checks the files marked dirty (by watch.py's inotify watches, or by reconcile; see
Rescans): a file no longer at its path was rotated (renamed or deleted); it keeps its open
descriptor, is looked for by inode in its directory to learn its new name, is read to its end
and finished once
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

Sources holds the globs and the watches and decides which paths to follow, and when; the files
followed are a FollowedFiles (followed.py: reading them, rotation, read errors, the descriptors'
budget), opened by a FileOpener (opening.py: where reading starts, saved files found again,
unreadable paths).

Rescans: inotify tells of every change in a watched directory, and of a watched directory that
goes away or comes back (its parent is watched too), so reconcile re-lists and re-checks only
what inotify cannot see: a directory that could not be watched, or one on a network file
system (NFS, SMB: other hosts' writes send no event). Everything is re-listed and re-checked
after the kernel dropped events (its queue overflowed), after a directory is newly watched,
and at most every FULL_RECHECK_INTERVAL as a last resort: with 5,000 files a full pass costs
about 50 ms, which every second would be 5 % of a core.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from types import TracebackType

from oai400d.model import FileState, Read
from oai400d.sources import globs
from oai400d.sources.followed import FollowedFiles
from oai400d.sources.opening import FileOpener
from oai400d.sources.watch import Watcher

DEFAULT_BUDGET = 4 * 1024 * 1024
FULL_RECHECK_INTERVAL = 300.0  # seconds between full passes while every directory is watched


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
        max_open: int | None = None,
        raw: bool = False,
        exclude: Sequence[str] = (),
    ) -> None:
        """`max_open`: how many followed files may be open at once (default: what the open
        files limit leaves, descriptors.budget()); `raw`: plain files' lines go out undecoded,
        as Read.raw (Tail.raw); `exclude`: globs of paths (or directories above them) never
        followed although `patterns` match them (logs.exclude)."""
        if read_from not in ("end", "beginning"):
            raise ValueError(f"read_from must be 'end' or 'beginning', not {read_from!r}")
        if max_line < 1:
            raise ValueError("max_line must be at least 1")
        self._patterns = [globs.normalize(pattern) for pattern in patterns]
        self._exclude = [globs.normalize(pattern) for pattern in exclude]
        self._saved = list(saved)
        self._at_end = read_from == "end"
        self._on_error = on_error  # told the path of each file that becomes unreadable (metrics)
        self._watcher = Watcher(globs.watch_roots(self._patterns), report)
        self._clock = clock
        self._followed = FollowedFiles(
            clock, rotated_grace, report, self._count_error, self._matches, max_open
        )
        self._opener = FileOpener(
            self._followed,
            max_line,
            clock,
            report,
            self._count_error,
            self._matches,
            wrapper,
            wrappers,
            raw,
        )
        self._stopped = False
        self._next_full = clock() + FULL_RECHECK_INTERVAL
        self._targets_generation = -1  # the FollowedFiles.generation the target watches match

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
            self._opener.resume(state)
        self._saved = []
        active = self._followed.active_paths()
        for path in globs.expand(self._patterns, self._exclude):
            if path not in active:
                known = os.path.dirname(path) in known_dirs
                self._opener.follow(path, from_start=known or not self._at_end)
        self._watch_targets()

    def stop(self) -> None:
        """Stop watching and close every file; files() still tells where each one stood."""
        self._stopped = True
        self._watcher.stop()
        self._followed.close()

    def wait(self, timeout: float) -> None:
        """Block until a followed file may have changed, `timeout` passes, or wake() is called."""
        if self._followed.more:
            return
        self._watcher.inbox.wait(self._followed.wait_limit(timeout))

    def wake(self) -> None:
        """Make a wait() in another thread return now (or the next one, if none is waiting)."""
        self._watcher.inbox.wake()

    @property
    def more(self) -> bool:
        """True when the last poll stopped at its budget with data left to read."""
        return self._followed.more

    def files(self) -> list[FileState]:
        """The current position of every followed file."""
        return self._followed.files()

    def read_at(self, dev: int, ino: int, offset: int, size: int) -> bytes:
        """Bytes of a followed file read again (the fast path's walk back): Tail.read_at."""
        return self._followed.read_at(dev, ino, offset, size)

    def reconcile(self, full: bool = False) -> None:
        """Re-watch directories that came back, retry unreadable files, and re-list and
        re-check what inotify does not cover (or everything: `full`, or when one is due).

        This is what covers a directory that could not be watched, a file system that sends no
        events (NFS), and, with the full pass, a lost event.
        """
        full = self._watcher.rewatch() or full or self._clock() >= self._next_full
        if full:
            self._next_full = self._clock() + FULL_RECHECK_INTERVAL
            self._followed.mark_all()
            patterns = self._patterns
        else:
            blind = self._watcher.unwatched()
            patterns = [p for p in self._patterns if _under_any(globs.watch_root(p)[0], blind)]
            for tail in self._followed.tails if blind else ():
                if _under_any(os.path.dirname(tail.path), blind):
                    self._followed.mark(tail)
        # An unreadable path: once gone or no longer matched, nothing to retry.
        self._opener.retry_broken(lambda path: os.path.lexists(path) and self._matches(path))
        for path in globs.expand(patterns, self._exclude):
            if self._followed.active_at(path) is None:
                self._opener.follow(path, from_start=True)
        self._watch_targets()
        self._watcher.inbox.event.set()

    def poll(self, budget: int = DEFAULT_BUDGET) -> list[Read]:
        """Read what is new (about `budget` bytes at most); Reads in the order to apply them."""
        if self._stopped:
            raise RuntimeError("Sources.poll() after stop()")
        dirty, renamed, rewatch, lost = self._watcher.inbox.take_all()
        if lost:
            # The kernel dropped events: any file may have changed, appeared or gone.
            self.reconcile(full=True)
        # A path already followed is the common case (a write): no glob to try on it.
        active = self._followed.active_at
        candidates = {path for path in dirty if active(path) is None and self._matches(path)}
        if rewatch and self._watcher.rewatch():
            # A directory watched from now on may already hold matching files, some at the
            # paths of files followed before it went (created before the watch: no event).
            # Those are checked like any file an event names: a new file there is followed.
            candidates.update(globs.expand(self._patterns, self._exclude))
            dirty = dirty | candidates
            renamed = renamed | candidates
        vacated = self._followed.check(dirty, renamed)
        candidates.update(path for path in vacated if self._matches(path))
        for path in sorted(candidates):
            if self._followed.active_at(path) is None:
                self._opener.follow(path, from_start=True)
        self._watch_targets()
        return self._followed.read(budget)

    def _matches(self, path: str) -> bool:
        return any(globs.matches(pattern, path) for pattern in self._patterns) and not (
            self._exclude and globs.excluded(self._exclude, path)
        )

    def _watch_targets(self) -> None:
        """Watch the directories of symlinked files' targets (only the links' are watched)."""
        if self._followed.generation != self._targets_generation:
            self._targets_generation = self._followed.generation
            self._watcher.watch_extra(self._followed.target_dirs())

    def _count_error(self, path: str) -> None:
        if self._on_error is not None:
            self._on_error(path)


def _under_any(directory: str, roots: Sequence[tuple[str, bool]]) -> bool:
    """Whether `directory` is one of the (root, recursive) or, for a recursive one, below it."""
    return any(
        directory == root or (recursive and directory.startswith(root.rstrip(os.sep) + os.sep))
        for root, recursive in roots
    )
