"""inotify on the directories of the globs, read in the reader's own thread: it only marks
paths dirty and wakes the reader.

Each glob's directory is watched, and so is its parent (for directories only), so that a log
directory removed and created again is watched again at once, and a directory that does not
exist yet is noticed through its nearest existing ancestor. A directory on a network file
system is watched too, but counted among the `unwatched` ones: other hosts' writes there send
no event, so reconcile re-lists it.

The inotify descriptor is read by Inbox.wait and Inbox.take, in the thread that polls, not by
watchdog's observer threads: at 10,000 lines/s into 500 files the chain of four threads and two
queues each event went through cost a quarter of a core, and at 50,000 lines/s the daemon's
memory grew with it (BENCHMARKS.md, issue 18). Events wait in the kernel's queue meanwhile,
which is bounded: when it overflows, IN_Q_OVERFLOW has every file re-checked.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import math
import os
import re
import select
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from watchdog.observers.inotify_c import (
    InotifyConstants as IN,
)
from watchdog.observers.inotify_c import (
    WatchDescriptor,
    inotify_add_watch,
    inotify_init,
    inotify_rm_watch,
)

# Opened/closed-without-write and access events are left out: our own reading would wake us.
# A directory's own modification is left out too: it accompanies every create, move, delete
# and close-after-write of a child, each of which comes with its own event naming the file.
FILE_MASK = (
    IN.IN_CREATE
    | IN.IN_MODIFY
    | IN.IN_CLOSE_WRITE  # the last write before a writer closes the file
    | IN.IN_ATTRIB  # chmod: an unreadable file may have become readable
    | IN.IN_MOVED_FROM
    | IN.IN_MOVED_TO
    | IN.IN_DELETE
    | IN.IN_DELETE_SELF
    | IN.IN_MOVE_SELF
)
# On a parent or an ancestor of a log directory: only that directory's coming and going (the
# kernel still sends a file's creation there; it is dropped).
DIRECTORY_MASK = (
    IN.IN_CREATE
    | IN.IN_MOVED_FROM
    | IN.IN_MOVED_TO
    | IN.IN_DELETE
    | IN.IN_DELETE_SELF
    | IN.IN_MOVE_SELF
)
# The watched directory itself went away or its watch ended: it must be watched again.
SELF_GONE = IN.IN_DELETE_SELF | IN.IN_MOVE_SELF | IN.IN_IGNORED | IN.IN_UNMOUNT
# A child directory came or went (with IN_ISDIR).
CHILD_DIRECTORY = IN.IN_CREATE | IN.IN_MOVED_FROM | IN.IN_MOVED_TO | IN.IN_DELETE
CHILD_DIRECTORY_GONE = IN.IN_MOVED_FROM | IN.IN_DELETE
# A file written to (or closed after writing): its name still leads to it. Any other event on a
# name (created, moved, deleted, chmod) may mean another file there now.
WRITTEN = IN.IN_MODIFY | IN.IN_CLOSE_WRITE
EVENT_HEADER = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (name follows)
READ_SIZE = 65536  # bytes per read() of the inotify descriptor (about 2000 events)
# File systems where a change made by another host sends no inotify event (/proc/mounts names).
NETWORK_FILE_SYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "lustre", "gpfs", "afs", "9p"}
    | {"fuse.glusterfs", "fuse.sshfs", "fuse.s3fs", "fuse.rclone", "fuse.gcsfuse", "virtiofs"}
)
# A write wakes the reader this long after the first event, so that the events of a burst over
# many files (each its own inotify event) are read in one pass, not one pass each. Bounded: the
# detection latency is this plus logs.multiline_timeout (bench/daemon_latency.py: p99 < 250 ms).
COALESCE_SECONDS = 0.04
# ... and this long when BUSY_FILES files or more are marked by then (bench/daemon_sustained.py
# --files 500: passes cost per file, so fewer passes with more lines each is less CPU). With the
# 150 ms multi-line timeout that is 230 ms before the pass's own time, only under such a load
# (daemon_latency.py's one quiet file waits COALESCE_SECONDS).
COALESCE_BUSY_SECONDS = 0.08
BUSY_FILES = 32
NAMES_KEPT = 16384  # (wd, name) pairs whose paths are remembered (Inbox._file_paths)


@dataclass(frozen=True)
class Owner:
    """Why a directory is watched: for a root (or a symlink target's directory), which owns
    the watches of its subdirectories too when it is recursive, or for an ancestor (only its
    subdirectories' coming and going)."""

    key: str  # the root, or the ancestor's path
    files: bool  # its files' changes matter (not only its subdirectories' coming and going)
    recursive: bool  # new subdirectories are watched too


@dataclass
class _Watch:
    """One inotify watch (one inode, one wd): whoever asked for it, each with the path it
    names the directory by (a root may also be a symlink target's directory, by another name).
    """

    owners: dict[Owner, str] = field(default_factory=dict)
    paths: tuple[str, ...] = ()  # the distinct paths of `owners`
    files: bool = False  # any owner's files' changes matter

    def changed(self) -> None:
        """Recompute what is derived from `owners` (read on every event)."""
        self.paths = tuple(sorted(set(self.owners.values())))
        self.files = any(owner.files for owner in self.owners)


class Inbox:
    """The inotify descriptor and what it told: which paths changed, and a wake-up."""

    def __init__(self) -> None:
        self.event = _WakeEvent(self)  # set(): the next wait returns at once
        self._lock = threading.Lock()
        self._dirty: set[str] = set()
        # Of _dirty, the paths marked by something else than a write (Inbox.take_all).
        self._renamed: set[str] = set()
        self._rewatch = False
        self._lost = False  # events were dropped (inotify's queue overflowed)
        # Directories deleted or moved away: their watch ended, even if a directory created
        # at the same path got the same inode number back (as ext4 often gives it).
        self._gone: set[str] = set()
        self._woken = False  # no lock: wake() may run in a signal handler
        self._set = False  # event.set(): the next wait returns at once, unless a take comes first
        self._first_marked: float | None = None  # when the first path was marked since a take
        # wake() writes a byte here, so that a wait blocked in poll() returns at once.
        self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._fd = -1  # the inotify descriptor, once open()ed
        # poll(), not select(): the daemon may hold more than 1024 descriptors (its files).
        self._woken_up = select.poll()  # the wake pipe
        self._woken_up.register(self._wake_read, select.POLLIN)
        self._readable = select.poll()  # the wake pipe and the inotify descriptor
        self._readable.register(self._wake_read, select.POLLIN)
        self._watches: dict[int, _Watch] = {}
        # (wd, name) → (the watch's paths it was joined with, the file's paths): _file_paths.
        self._names: dict[tuple[int, bytes], tuple[tuple[str, ...], tuple[str, ...]]] = {}

    # -- the descriptor and its watches (Watcher's side) --

    def open(self) -> None:
        """Create the inotify descriptor (non-blocking: it is only read when poll() says so)."""
        if self._fd >= 0:
            return
        fd = inotify_init()
        if fd < 0:
            code = ctypes.get_errno()
            if code == errno.EMFILE:
                raise OSError(code, "inotify instance limit reached")
            raise OSError(code, os.strerror(code))
        os.set_blocking(fd, False)
        os.set_inheritable(fd, False)
        self._readable.register(fd, select.POLLIN)
        self._fd = fd

    def close(self) -> None:
        """Close the inotify descriptor (every watch ends with it) and wake a waiting reader."""
        fd, self._fd = self._fd, -1
        self._watches.clear()
        self._names.clear()
        if fd >= 0:
            self._readable.unregister(fd)
            os.close(fd)
        self.wake()

    def add(self, path: str, owner: Owner, follow: bool) -> int:
        """Watch the directory `path` for `owner`; its watch descriptor. OSError when the
        kernel refuses (the watch or instance limit, a directory gone)."""
        if self._fd < 0:
            self.open()  # it failed at start (max_user_instances): try again
        mask = (FILE_MASK if owner.files else DIRECTORY_MASK) | IN.IN_ONLYDIR | IN.IN_MASK_ADD
        if not follow:
            mask |= IN.IN_DONT_FOLLOW
        wd = inotify_add_watch(self._fd, os.fsencode(path), mask)
        if wd < 0:
            code = ctypes.get_errno()
            if code == errno.ENOSPC:
                raise OSError(code, "inotify watch limit reached")
            raise OSError(code, os.strerror(code))
        with self._lock:
            watch = self._watches.setdefault(wd, _Watch())
            watch.owners[owner] = path
            watch.changed()
        return wd

    def remove(self, wd: int, owner: Owner) -> None:
        """`owner` no longer needs watch `wd`; the watch ends when nobody does."""
        with self._lock:
            watch = self._watches.get(wd)
            if watch is None:
                return
            watch.owners.pop(owner, None)
            watch.changed()
            if watch.owners:
                return
            del self._watches[wd]
        if self._fd >= 0:
            inotify_rm_watch(self._fd, WatchDescriptor(wd))  # EINVAL: it ended already

    def watched_under(self, owner: Owner) -> list[int]:
        """The watch descriptors `owner` holds."""
        with self._lock:
            return [wd for wd, watch in self._watches.items() if owner in watch.owners]

    # -- the reader's side --

    def wake(self) -> None:
        """Make the current or the next wait() return at once."""
        self._woken = True
        with contextlib.suppress(OSError):  # full: a wake-up is pending already
            os.write(self._wake_write, b"\0")

    def set_event(self) -> None:
        """Make the next wait() return at once, unless a take() comes first (Inbox.event.set)."""
        self._set = True
        with contextlib.suppress(OSError):  # full: a wake-up is pending already
            os.write(self._wake_write, b"\0")

    def take(self) -> tuple[set[str], bool, bool]:
        """The paths marked since the last take, whether a directory came or went, and whether
        events were lost."""
        dirty, _, rewatch, lost = self.take_all()
        return dirty, rewatch, lost

    def take_all(self) -> tuple[set[str], set[str], bool, bool]:
        """take(), and of the paths marked, those marked by something else than a write to
        the file there (created, moved, deleted, its attributes, a directory event): the others
        still lead to the file they led to."""
        self._read_events()
        with self._lock:
            dirty, renamed, rewatch, lost = self._dirty, self._renamed, self._rewatch, self._lost
            self._dirty, self._renamed, self._rewatch, self._lost = set(), set(), False, False
            self._first_marked = None
            # What woke us is taken now (as Inbox.event was cleared); a wake() is not.
            self._set = False
        return dirty, renamed, rewatch, lost

    def take_gone(self) -> set[str]:
        """The directories deleted or moved away since the last call."""
        with self._lock:
            gone, self._gone = self._gone, set()
        return gone

    def wait(self, timeout: float) -> None:
        """Block until something is marked (and COALESCE_SECONDS after the first mark, for the
        rest of its burst), wake() is called, or `timeout` passes."""
        deadline = time.monotonic() + max(0.0, timeout)
        self._read_events()
        while not (self._marked() or self._woken or self._set):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._readable.poll(_milliseconds(remaining))
            # (a byte left by an event.set() that a take cleared since wakes nobody)
            self._drain_wake()
            self._read_events()
        with self._lock:
            # (a directory that came or went, or lost events, are looked at at once)
            first = None if self._rewatch or self._lost else self._first_marked
        self._drain_wake()
        if first is not None and not self._woken:
            self._pause(min(first + COALESCE_SECONDS, deadline))
            if not self._woken and self._busy():
                # Many files written at once: each pass costs per file, so waiting a little
                # longer gathers more of each file's lines into one read (bounded: see
                # COALESCE_BUSY_SECONDS).
                self._read_events()
                self._pause(min(first + COALESCE_BUSY_SECONDS, deadline))
        # A wake() during a poll still ends the next wait: it is cleared only here.
        self._woken = False
        self._set = False
        self._drain_wake()

    def _pause(self, until: float) -> None:
        """Wait until `until` (monotonic) unless a wake() comes: the burst's events wait in
        the kernel meanwhile."""
        delay = until - time.monotonic()
        if delay > 0:
            self._woken_up.poll(_milliseconds(delay))

    def _busy(self) -> bool:
        """Whether as many files are marked as make a pass worth delaying (BUSY_FILES)."""
        with self._lock:
            return len(self._dirty) >= BUSY_FILES

    def _drain_wake(self) -> None:
        with contextlib.suppress(OSError):
            while os.read(self._wake_read, 512):
                pass

    def _marked(self) -> bool:
        with self._lock:
            return bool(self._dirty or self._rewatch or self._lost)

    def _read_events(self) -> None:
        """Read every event waiting on the descriptor and mark what it names."""
        while self._fd >= 0:
            try:
                buffer = os.read(self._fd, READ_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # closed by stop() meanwhile
            if not buffer:
                return
            self._mark(buffer)
            if len(buffer) < READ_SIZE // 2:
                return  # the queue is drained (a full read may have left more)

    def _mark(self, buffer: bytes) -> None:
        # Writes are nearly all of the events: the same (wd, name) is only joined once.
        files: dict[tuple[int, bytes], _Watch] = {}
        renamed: dict[tuple[int, bytes], _Watch] = {}  # of those, the ones not only written
        # Subdirectories of recursive roots that came (True) or went (False), in order.
        moves: list[tuple[str, Owner, bool]] = []
        unpack = EVENT_HEADER.unpack_from
        end = len(buffer)
        offset = 0
        with self._lock:
            watches = self._watches
            while offset + 16 <= end:
                wd, mask, _cookie, length = unpack(buffer, offset)
                name = buffer[offset + 16 : offset + 16 + length].rstrip(b"\0")
                offset += 16 + length
                if mask & IN.IN_Q_OVERFLOW:
                    self._lost = True
                    continue
                watch = watches.get(wd)
                if watch is None:
                    continue  # a watch we ended; its last events are of no use
                if not name:
                    if mask & SELF_GONE:
                        # The directory itself was deleted, moved or unmounted: watch it again.
                        self._gone.update(watch.paths)
                        self._dirty.update(watch.paths)
                        self._renamed.update(watch.paths)
                        self._rewatch = True
                        if mask & IN.IN_IGNORED:
                            del watches[wd]
                    continue
                if mask & IN.IN_ISDIR:
                    if not mask & CHILD_DIRECTORY:
                        continue
                    decoded = os.fsdecode(name)
                    paths = [os.path.join(directory, decoded) for directory in watch.paths]
                    self._dirty.update(paths)
                    self._renamed.update(paths)
                    # A directory that appears may be a missing log directory (or on its way
                    # to one); one that goes away ends its watch.
                    self._rewatch = True
                    came = not mask & CHILD_DIRECTORY_GONE
                    if not came:
                        self._gone.update(paths)
                    moves.extend(
                        (os.path.join(directory, decoded), owner, came)
                        for owner, directory in watch.owners.items()
                        if owner.recursive
                    )
                elif watch.files:
                    files[wd, name] = watch
                    if mask & ~WRITTEN:
                        renamed[wd, name] = watch
            for key, watch in files.items():
                self._dirty.update(self._file_paths(key, watch))
            for key, watch in renamed.items():
                self._renamed.update(self._file_paths(key, watch))
            if self._first_marked is None and (files or self._rewatch or self._lost):
                self._first_marked = time.monotonic()
        for path, owner, came in moves:
            if came:
                self._watch_new_directory(path, owner)
            else:
                self._unwatch_tree(path, owner)

    def _file_paths(self, key: tuple[int, bytes], watch: _Watch) -> tuple[str, ...]:
        """The paths that (wd, name) names: joined once per file and remembered, since the
        same few files are written again and again (500 busy files: a join per event was a
        tenth of the main loop)."""
        known = self._names.get(key)
        if known is not None and known[0] is watch.paths:
            return known[1]
        decoded = os.fsdecode(key[1])
        paths = tuple(os.path.join(directory, decoded) for directory in watch.paths)
        if len(self._names) >= NAMES_KEPT:
            self._names.clear()  # (bounded: a directory of ever new names must not grow it)
        self._names[key] = (watch.paths, paths)
        return paths

    def _unwatch_tree(self, top: str, owner: Owner) -> None:
        """A directory left a recursive root (deleted or moved away): end `owner`'s watches on
        it and below, which would name its files by their old paths."""
        prefix = top.rstrip(os.sep) + os.sep
        with self._lock:
            below = [
                wd
                for wd, watch in self._watches.items()
                if (path := watch.owners.get(owner)) is not None
                and (path == top or path.startswith(prefix))
            ]
        for wd in below:
            self.remove(wd, owner)

    def _watch_new_directory(self, top: str, owner: Owner) -> None:
        """A directory appeared under a recursive root: watch it and what is below it, and mark
        what it holds already (created before its watch: no event tells it)."""
        for directory, subdirectories, names in os.walk(top):
            try:
                self.add(directory, owner, follow=False)
            except OSError:
                subdirectories.clear()  # gone already, or the limit: reconcile covers it
                continue
            # Symlinked subdirectories are not followed (a loop would walk forever).
            subdirectories[:] = [
                name for name in subdirectories if not os.path.islink(os.path.join(directory, name))
            ]
            with self._lock:
                for name in (*names, *subdirectories):
                    path = os.path.join(directory, name)
                    self._dirty.add(path)
                    self._renamed.add(path)

    def __del__(self) -> None:
        for fd in (self._wake_read, self._wake_write, self._fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)


class _WakeEvent:
    """Inbox.event, as it was when a thread delivered the events: set() makes the next wait
    return at once (Sources.reconcile and stop use it)."""

    def __init__(self, inbox: Inbox) -> None:
        self._inbox = inbox

    def set(self) -> None:
        self._inbox.set_event()


class Watcher:
    """One inotify watch per directory, read by the Inbox; problems go to `report`, once."""

    def __init__(self, roots: list[tuple[str, bool]], report: Callable[[str], None]) -> None:
        self.inbox = Inbox()
        self._roots = roots
        self._report = report
        self._started = False
        # Each watched root: who owns its watches (the root's and its subdirectories'), and the
        # directory's identity when it was watched.
        self._watches: dict[str, tuple[Owner, tuple[int, int]]] = {}
        # For a log directory that does not exist yet: a watch on its nearest existing
        # ancestor, so that its creation is noticed at once rather than at the next reconcile.
        self._ancestors: dict[str, Owner] = {}
        # Directories of symlinked files' targets (watch_extra): watched like a root, not
        # recursively, and nothing reported when one is missing (the link is dangling then).
        self._extra: set[str] = set()
        self._remote: set[str] = set()  # roots on a network file system
        self._reported: set[str] = set()

    def start(self) -> None:
        """Open the inotify descriptor and watch every directory that exists."""
        with contextlib.suppress(OSError):  # each watch tries again, and reports the failure
            self.inbox.open()
        self._started = True
        self.rewatch()

    def stop(self) -> None:
        """Close the inotify descriptor: every watch ends."""
        self._started = False
        self._watches.clear()
        self._ancestors.clear()
        self.inbox.close()

    def watch_extra(self, directories: set[str]) -> None:
        """Also watch these directories (not recursively), unless a root covers them already;
        stop watching the ones given before and not now."""
        wanted = {d for d in directories if not self._covered(d)}
        if wanted == self._extra:
            return
        self._extra = wanted
        if not self._started:
            return
        roots = {root for root, _ in self._roots}
        for directory in list(self._watches):
            if directory not in roots and directory not in wanted:
                self._unwatch(directory)
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
        if not self._started:
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
                self._unwatch(root)
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
            self._unwatch_owner(self._ancestors.pop(path))
        self._watch_ancestors(parents | set(waiting.values()))
        return newly, waiting

    def _watch_ancestors(self, wanted: set[str]) -> None:
        for path in set(self._ancestors) - wanted:
            self._unwatch_owner(self._ancestors.pop(path))
        for path in wanted - set(self._ancestors):
            if self._covered(path) or not os.path.isdir(path):
                continue  # a root's own watch tells its subdirectories' coming and going
            owner = Owner(path, files=False, recursive=False)
            with contextlib.suppress(OSError):
                self.inbox.add(path, owner, follow=True)
                self._ancestors[path] = owner

    def _watch(self, root: str, recursive: bool, identity: tuple[int, int]) -> None:
        if not os.access(root, os.R_OK | os.X_OK):
            # inotify silently refuses a directory we cannot read; glob sees nothing in it.
            self._report_once(
                root,
                f"cannot list {root}: Permission denied; give the oai400d user read and "
                "search (x) access to it",
            )
            return
        owner = Owner(root, files=True, recursive=recursive)
        try:
            # Following the root itself lets a symlinked log directory work; below a recursive
            # root symlinks are not followed (a symlink loop would walk forever).
            self.inbox.add(root, owner, follow=True)
            if recursive:
                self._watch_below(root, owner)
        except OSError as error:
            self._unwatch_owner(owner)
            self._report_once(
                root,
                f"cannot watch {root}: {error.strerror or error}; new lines there are only "
                "noticed at each reconcile (raise fs.inotify.max_user_watches / "
                "max_user_instances if the limit was reached)",
            )
            return
        self._watches[root] = (owner, identity)
        if _on_network_file_system(root):
            self._remote.add(root)
        else:
            self._remote.discard(root)
        if root in self._reported:
            self._reported.discard(root)
            self._report(f"watching {root} again")

    def _watch_below(self, root: str, owner: Owner) -> None:
        """Watch every directory below a recursive root (symlinks not followed); OSError only
        for the watch limit (a directory gone meanwhile is skipped)."""
        for directory, subdirectories, _ in os.walk(root):
            subdirectories[:] = [
                name for name in subdirectories if not os.path.islink(os.path.join(directory, name))
            ]
            for name in subdirectories:
                try:
                    self.inbox.add(os.path.join(directory, name), owner, follow=False)
                except OSError as error:
                    if error.errno == errno.ENOSPC:
                        raise

    def _unwatch(self, root: str) -> None:
        owner, _ = self._watches.pop(root)
        self._unwatch_owner(owner)

    def _unwatch_owner(self, owner: Owner) -> None:
        for wd in self.inbox.watched_under(owner):
            self.inbox.remove(wd, owner)

    def _report_once(self, root: str, message: str) -> None:
        if root not in self._reported:
            self._reported.add(root)
            self._report(message)


def _milliseconds(seconds: float) -> int:
    """A poll() timeout: rounded up (not to wake just before the deadline), at most a day."""
    return math.ceil(min(seconds, 86400.0) * 1000)


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
