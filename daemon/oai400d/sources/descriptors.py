"""File descriptors for the followed files: the process's limit, and a budget within it.

Each followed file is read through an open descriptor, and a process may hold only
RLIMIT_NOFILE of them (1,024 by default outside systemd). At start the daemon raises the soft
limit to the hard one (`raise_open_files_limit`). Beyond what is left, the followed files share
a budget (`budget`: the limit less a reserve for the state DB, sockets and inotify): when one
more must be opened, the least recently active file is closed, and reopened by its path when it
changes, its device and inode checked first, so that a rotated file is never taken for it.
"""

from __future__ import annotations

import errno
import os
import resource
from collections.abc import Callable

from oai400d.errors import InputError
from oai400d.sources.tail import Tail, open_log

# Kept for everything that is not a followed file: the state DB and its journal, Slack and
# OpenAI sockets, the metrics listener, the inotify instance, the journal readers.
RESERVE = 64
RESERVE_SHARE = 10  # or a tenth of the limit, if more: a fleet store's pool, a busy listener
MIN_BUDGET = 8  # even under a tiny limit, more than one file at a time
# An unlimited hard limit cannot be the soft one (the kernel caps it at fs.nr_open).
UNLIMITED_TARGET = 1 << 20
TOO_MANY = (errno.EMFILE, errno.ENFILE)  # the process's limit, or the whole system's


def open_files_limit() -> int:
    """The soft RLIMIT_NOFILE: how many descriptors this process may hold now."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return UNLIMITED_TARGET if soft == resource.RLIM_INFINITY else soft


def budget(limit: int | None = None) -> int:
    """How many followed files may be open at once under `limit` (default: the soft limit)."""
    limit = open_files_limit() if limit is None else limit
    return max(MIN_BUDGET, limit - max(RESERVE, limit // RESERVE_SHARE))


def raise_open_files_limit() -> str | None:
    """Raise the soft RLIMIT_NOFILE to the hard limit; what was done, for the log (None when
    the soft limit is the hard one already, as under the unit's LimitNOFILE=)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = UNLIMITED_TARGET if hard == resource.RLIM_INFINITY else hard
    if soft == resource.RLIM_INFINITY or soft >= target:
        return None
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as error:
        return (
            f"could not raise the open files limit (RLIMIT_NOFILE) from {soft} to {target}: "
            f"{error}; with more log files than about {budget(soft)}, the least recently "
            "active ones are closed and reopened when they change (set LimitNOFILE= in the "
            "unit, or ulimit -n, to keep them all open)"
        )
    return f"open files limit (RLIMIT_NOFILE) raised from {soft} to {target}"


def limit_reached(open_now: int) -> str:
    """Said once, when a followed file is first closed to make room for another."""
    return (
        f"{open_now} log files are open, as many as the open files limit allows "
        f"(RLIMIT_NOFILE {open_files_limit()}, less a reserve for the state DB and sockets): "
        "from now on the least recently active files are closed and reopened when they "
        "change, so every file is still read; to keep them all open, raise LimitNOFILE= in "
        "the unit (or ulimit -n)"
    )


class OpenFiles:
    """The followed files holding a descriptor, least recently active first, kept within
    `max_open` (default: budget()): opening one more closes the least recently active."""

    def __init__(self, report: Callable[[str], None], max_open: int | None = None) -> None:
        self._report = report
        self._max_open = max(1, budget() if max_open is None else max_open)
        self._open: dict[Tail, None] = {}  # an ordered set: least recently active first
        self._said = False
        self._gone_said = False

    def open(self, path: str) -> tuple[int, os.stat_result]:
        """open_log within the budget: when it is spent, or the process is out of descriptors,
        the least recently active followed file is closed first (reopened when it changes)."""
        while len(self._open) >= self._max_open and self._close_one():
            pass
        while True:
            try:
                return open_log(path)
            except FileNotFoundError:
                raise
            except OSError as error:
                if error.errno not in TOO_MANY or not self._close_one():
                    raise InputError(
                        f"cannot read {path}: {error.strerror or error}; no log file is left "
                        "to close: raise the open files limit (LimitNOFILE= in the unit, or "
                        "ulimit -n)"
                    ) from error

    def used(self, tail: Tail) -> None:
        """The tail holds a descriptor and was just active: the last to be closed."""
        self._open.pop(tail, None)
        self._open[tail] = None

    def forget(self, tail: Tail) -> None:
        """The tail is followed no more (its descriptor is the caller's to close)."""
        self._open.pop(tail, None)

    def clear(self) -> None:
        self._open.clear()

    def gone_while_closed(self, tail: Tail) -> None:
        """A closed file could not be reopened: deleted, or moved out of its directory."""
        if not self._gone_said:
            # Said once: a write reopens a closed file at once, so lines are lost only when
            # the file goes within moments of being written; a directory removed with many
            # closed files in it must not bring one warning per file.
            self._gone_said = True
            self._report(
                f"{tail.path} was closed to stay within the open files limit and has since "
                f"been deleted or moved out of its directory: any line written to it after "
                f"line {tail.line_no} just before could not be read (said once; raise "
                "LimitNOFILE= so that every log file stays open)"
            )

    def _close_one(self) -> bool:
        """Close the least recently active file (a rotated one only if nothing else is open:
        it must be read to its end)."""
        victim = next((t for t in self._open if not t.rotated), None)
        if victim is None:
            victim = next(iter(self._open), None)
        if victim is None:
            return False
        if not self._said:
            self._said = True
            self._report(limit_reached(len(self._open)))
        del self._open[victim]
        victim.close()
        return True
