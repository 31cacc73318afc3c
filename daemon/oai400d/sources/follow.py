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

Sources holds the globs and the watches and decides which paths to follow, and when; the files
followed are a FollowedFiles (followed.py: reading them, rotation, read errors), opened by a
FileOpener (opening.py: where reading starts, saved files found again, unreadable paths).
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
        self._on_error = on_error  # told the path of each file that becomes unreadable (metrics)
        self._watcher = Watcher(globs.watch_roots(self._patterns), report)
        self._followed = FollowedFiles(
            clock, rotated_grace, report, self._count_error, self._matches
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
        )
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
            self._opener.resume(state)
        self._saved = []
        active = self._followed.active_paths()
        for path in globs.expand(self._patterns):
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

    def reconcile(self) -> None:
        """Re-list the globs, retry unreadable files, and have the next poll re-check every file.

        This is what covers an inotify queue overflow, a lost event, a directory that appeared,
        or a file system that sends no events (NFS).
        """
        self._watcher.rewatch()
        for tail in self._followed.tails:
            tail.dirty = True
        matched = set(globs.expand(self._patterns))
        self._opener.forget_unmatched(matched)  # gone, or no longer matched: nothing to retry
        for path in sorted(matched - self._followed.active_paths()):
            self._opener.follow(path, from_start=True)
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
        candidates.update(path for path in self._followed.check(dirty) if self._matches(path))
        for path in sorted(candidates - self._followed.active_paths()):
            self._opener.follow(path, from_start=True)
        self._watch_targets()
        return self._followed.read(budget)

    def _matches(self, path: str) -> bool:
        return any(globs.matches(pattern, path) for pattern in self._patterns)

    def _watch_targets(self) -> None:
        """Watch the directories of symlinked files' targets (only the links' are watched)."""
        self._watcher.watch_extra(
            {
                os.path.dirname(tail.target)
                for tail in self._followed.tails
                if tail.target != tail.path
            }
        )

    def _count_error(self, path: str) -> None:
        if self._on_error is not None:
            self._on_error(path)
