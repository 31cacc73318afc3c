"""Watchdog on the directories of the globs: it only marks paths dirty and wakes the reader.

Each glob's directory is watched, and so is its parent (for directories only), so that a log
directory removed and created again is watched again at once, and a directory that does not
exist yet is noticed through its nearest existing ancestor. A directory on a network file
system is watched too, but counted among the `unwatched` ones: other hosts' writes there send
no event, so reconcile re-lists it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    EventsLostEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

# Opened/closed-without-write and access events are left out: our own reading would wake us.
# DirModifiedEvent is left out too: it accompanies every create, move, delete and
# close-after-write of a child, each of which comes with its own event naming the file.
EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileClosedEvent,  # the last write before a writer closes the file
    FileAttribEvent,  # chmod: an unreadable file may have become readable
    FileMovedEvent,
    FileDeletedEvent,
    DirMovedEvent,
    DirDeletedEvent,
    DirCreatedEvent,  # a log directory that did not exist yet may be this one
    EventsLostEvent,  # the kernel's queue overflowed: every file must be re-checked
]
# On a parent or an ancestor of a log directory: only that directory's coming and going.
DIRECTORY_EVENTS: list[type[FileSystemEvent]] = [DirCreatedEvent, DirMovedEvent, DirDeletedEvent]
# File systems where a change made by another host sends no inotify event (/proc/mounts names).
NETWORK_FILE_SYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "lustre", "gpfs", "afs", "9p"}
    | {"fuse.glusterfs", "fuse.sshfs", "fuse.s3fs", "fuse.rclone", "fuse.gcsfuse", "virtiofs"}
)
STOP_TIMEOUT = 2.0  # the daemon must stop within 5 s of SIGTERM, all threads included
# A write wakes the reader this long after the first event, so that the events of a burst over
# many files (each its own inotify event) are read in one pass, not one pass each. Bounded: the
# detection latency is this plus logs.multiline_timeout (bench/daemon_latency.py: p99 < 250 ms).
COALESCE_SECONDS = 0.04


class _QuietStopRace(logging.Filter):
    """Drops watchdog's ERROR for an event that raced its own shutdown: nothing is wrong."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "called when the thread is inactive" not in record.getMessage()


logging.getLogger("watchdog.observers.inotify").addFilter(_QuietStopRace())


class Inbox(FileSystemEventHandler):
    """What the watchdog thread tells the reader: which paths changed, and a wake-up."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._lock = threading.Lock()
        self._dirty: set[str] = set()
        self._rewatch = False
        self._lost = False  # events were dropped (inotify's queue overflowed)
        # Directories deleted or moved away: their watch ended, even if a directory created
        # at the same path got the same inode number back (as ext4 often gives it).
        self._gone: set[str] = set()
        self._woken = False  # no lock: wake() may run in a signal handler
        self._first_marked: float | None = None  # when the first path was marked since a take
        self._urgent = threading.Event()  # wake() during the coalescing delay

    def wake(self) -> None:
        """Make the current or the next wait() return at once."""
        self._woken = True
        self._urgent.set()
        self.event.set()

    def dispatch(self, event: FileSystemEvent) -> None:
        """Mark the event's paths dirty and wake the reader; nothing slower runs here."""
        paths = [os.fsdecode(path) for path in (event.src_path, event.dest_path) if path]
        with self._lock:
            self._dirty.update(paths)
            # A watched directory that goes away ends its inotify watch: watch it again.
            # A directory that appears may be a missing log directory (or on its way to one).
            self._rewatch = self._rewatch or isinstance(
                event, DirDeletedEvent | DirMovedEvent | DirCreatedEvent
            )
            self._lost = self._lost or isinstance(event, EventsLostEvent)
            if isinstance(event, DirDeletedEvent | DirMovedEvent):
                self._gone.add(os.fsdecode(event.src_path))
            if self._first_marked is None:
                self._first_marked = time.monotonic()
        self.event.set()

    def take(self) -> tuple[set[str], bool, bool]:
        """The paths marked since the last take, whether a directory came or went, and whether
        events were lost."""
        with self._lock:
            dirty, rewatch, lost = self._dirty, self._rewatch, self._lost
            self._dirty, self._rewatch, self._lost = set(), False, False
            self._first_marked = None
            # What woke us is taken now; a later event sets it again.
            self.event.clear()
        return dirty, rewatch, lost

    def take_gone(self) -> set[str]:
        """The directories deleted or moved away since the last call."""
        with self._lock:
            gone, self._gone = self._gone, set()
        return gone

    def wait(self, timeout: float) -> None:
        """Block until something is marked (and COALESCE_SECONDS after the first mark, for the
        rest of its burst), wake() is called, or `timeout` passes."""
        timeout = min(max(0.0, timeout), threading.TIMEOUT_MAX)
        deadline = time.monotonic() + timeout
        with self._lock:
            marked = bool(self._dirty or self._rewatch or self._lost)
        if not (marked or self._woken):
            self.event.wait(timeout)
        with self._lock:
            # (a directory that came or went, or lost events, are looked at at once)
            first = None if self._rewatch or self._lost else self._first_marked
        if first is not None and not self._woken:
            delay = min(first + COALESCE_SECONDS, deadline) - time.monotonic()
            if delay > 0:
                self._urgent.wait(delay)
        self._urgent.clear()
        # A wake() during a poll (whose take() clears the event) still ends the next wait.
        self._woken = False
        # Clearing after waking is safe: the dirty set, not the event, is what poll reads.
        self.event.clear()


class Watcher:
    """The watchdog observer and one watch per directory; problems go to `report`, once."""

    def __init__(self, roots: list[tuple[str, bool]], report: Callable[[str], None]) -> None:
        self.inbox = Inbox()
        self._roots = roots
        self._report = report
        self._observer: BaseObserver | None = None
        self._watches: dict[str, tuple[ObservedWatch, tuple[int, int]]] = {}
        # For a log directory that does not exist yet: a watch on its nearest existing
        # ancestor, so that its creation is noticed at once rather than at the next reconcile.
        self._ancestors: dict[str, ObservedWatch] = {}
        # Directories of symlinked files' targets (watch_extra): watched like a root, not
        # recursively, and nothing reported when one is missing (the link is dangling then).
        self._extra: set[str] = set()
        self._remote: set[str] = set()  # roots on a network file system
        self._reported: set[str] = set()

    def start(self) -> None:
        """Start the observer thread and watch every directory that exists."""
        self._observer = Observer()
        self._observer.start()
        self.rewatch()

    def stop(self) -> None:
        """Stop the observer thread."""
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(STOP_TIMEOUT)
        self._watches.clear()
        self._ancestors.clear()
        self.inbox.event.set()

    def watch_extra(self, directories: set[str]) -> None:
        """Also watch these directories (not recursively), unless a root covers them already;
        stop watching the ones given before and not now."""
        wanted = {d for d in directories if not self._covered(d)}
        if wanted == self._extra:
            return
        self._extra = wanted
        if self._observer is None:
            return
        roots = {root for root, _ in self._roots}
        for directory in list(self._watches):
            if directory not in roots and directory not in wanted:
                self._unwatch(directory, self._watches[directory][0])
        self.rewatch()

    def _covered(self, directory: str) -> bool:
        return any(
            directory == root or (recursive and directory.startswith(root.rstrip(os.sep) + os.sep))
            for root, recursive in self._roots
        )

    def unwatched(self) -> list[tuple[str, bool]]:
        """The (root, recursive) whose changes inotify does not tell: not watched (missing,
        unreadable, the inotify limit reached) or on a network file system."""
        return [
            (root, recursive)
            for root, recursive in self._roots
            if root not in self._watches or root in self._remote
        ]

    def rewatch(self) -> bool:
        """Watch directories that appeared or were replaced since they were last watched;
        True when a directory is newly watched (files may already be in it)."""
        if self._observer is None:
            return False
        newly = False
        gone = self.inbox.take_gone()
        for _ in range(3):
            once, waiting = self._rewatch_once(gone)
            newly = newly or once
            # A directory created between our look and the watch on its parent sent us no
            # event: look again, now that the watch is there.
            if not any(
                os.path.isdir(root) or _nearest_existing(root) != ancestor
                for root, ancestor in waiting.items()
            ):
                break
        return newly

    def _rewatch_once(self, gone: set[str]) -> tuple[bool, dict[str, str]]:
        """One pass of rewatch (`gone`: directories whose watch ended); also, each missing
        root with the ancestor watched for it."""
        waiting: dict[str, str] = {}
        parents: set[str] = set()
        newly = False
        extra = [(directory, False) for directory in sorted(self._extra)]
        for root, recursive in [*self._roots, *extra]:
            if (root, recursive) not in extra and os.path.dirname(root) != root:
                parents.add(os.path.dirname(root))
            try:
                info = os.stat(root)
            except OSError:
                identity = None
            else:
                identity = (info.st_dev, info.st_ino)
            current = self._watches.get(root)
            if current is not None and current[1] == identity and root not in gone:
                continue
            if current is not None:
                self._unwatch(root, current[0])
            if identity is None and (root, recursive) in extra:
                continue  # a dangling link's directory: reconcile looks again
            if identity is None:
                self._report_once(
                    root,
                    f"{root} does not exist (yet); files there matching logs.paths are picked "
                    "up once it appears",
                )
                waiting[root] = _nearest_existing(root)
                continue
            self._watch(root, recursive, identity)
            gone.discard(root)
            newly = newly or root in self._watches
        for path in gone & set(self._ancestors):
            assert self._observer is not None
            with contextlib.suppress(KeyError, OSError):
                self._observer.unschedule(self._ancestors.pop(path))
        self._watch_ancestors(parents | set(waiting.values()))
        return newly, waiting

    def _watch_ancestors(self, wanted: set[str]) -> None:
        assert self._observer is not None
        for path in set(self._ancestors) - wanted:
            with contextlib.suppress(KeyError, OSError):
                self._observer.unschedule(self._ancestors.pop(path))
        for path in wanted - set(self._ancestors):
            if self._covered(path) or not os.path.isdir(path):
                continue  # a root's own watch tells its subdirectories' coming and going
            with contextlib.suppress(OSError):
                self._ancestors[path] = self._observer.schedule(
                    self.inbox, path, recursive=False, event_filter=DIRECTORY_EVENTS
                )

    def _watch(self, root: str, recursive: bool, identity: tuple[int, int]) -> None:
        assert self._observer is not None
        if not os.access(root, os.R_OK | os.X_OK):
            # inotify silently refuses a directory we cannot read; glob sees nothing in it.
            self._report_once(
                root,
                f"cannot list {root}: Permission denied; give the oai400d user read and "
                "search (x) access to it",
            )
            return
        try:
            watch = self._observer.schedule(
                self.inbox,
                root,
                recursive=recursive,
                event_filter=EVENTS,
                # Following the root itself lets a symlinked log directory work; below a
                # recursive root a symlink loop would make watchdog walk forever.
                follow_symlink=not recursive or os.path.islink(root),
            )
        except OSError as error:
            self._report_once(
                root,
                f"cannot watch {root}: {error.strerror or error}; new lines there are only "
                "noticed at each reconcile (raise fs.inotify.max_user_watches / "
                "max_user_instances if the limit was reached)",
            )
            return
        self._watches[root] = (watch, identity)
        if _on_network_file_system(root):
            self._remote.add(root)
        else:
            self._remote.discard(root)
        if root in self._reported:
            self._reported.discard(root)
            self._report(f"watching {root} again")

    def _unwatch(self, root: str, watch: ObservedWatch) -> None:
        assert self._observer is not None
        del self._watches[root]
        # Its emitter may have stopped already, when the directory went away.
        with contextlib.suppress(KeyError, OSError):
            self._observer.unschedule(watch)

    def _report_once(self, root: str, message: str) -> None:
        if root not in self._reported:
            self._reported.add(root)
            self._report(message)


def _nearest_existing(path: str) -> str:
    """The closest ancestor of `path` that exists (at worst the root directory)."""
    parent = os.path.dirname(path)
    while parent and not os.path.isdir(parent) and parent != os.path.dirname(parent):
        parent = os.path.dirname(parent)
    return parent or os.sep


def _on_network_file_system(path: str) -> bool:
    """Whether `path` is on a file system that other hosts write to (no inotify for them)."""
    real = os.path.realpath(path)
    best, kind = "", ""
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) < 3:
                    continue
                # /proc/mounts escapes spaces and the like as octal (\040).
                point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[1])
                inside = real == point or real.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= len(best):
                    best, kind = point, fields[2]
    except OSError:
        return False
    return kind in NETWORK_FILE_SYSTEMS
