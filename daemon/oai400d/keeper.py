"""The daemon's side of the state DB: opened checked, each batch committed in one transaction,
a batch held through a full disk, a damaged DB replaced.

- **Full disk** (SQLITE_FULL, ENOSPC): the commit is one transaction, so a failed one wrote
  nothing. The batch stays here (alerts by fingerprint, the latest wins; notifications in
  order); positions stay in the ingest stage, which goes on reading. The same batch, with what
  came since, is tried again with backoff until space returns: no finding counted twice, none
  lost. Why is said in systemd's STATUS= and once a minute in the log.
- **Damaged DB** (state/recovery.py): found at start-up, the file is set aside and every
  followed file is read from its end (`from_end`); found while running, the fresh DB gets every
  alert and position the daemon holds in memory. Either way one notification says what was lost.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from oai400d.config import Settings
from oai400d.errors import StateFullError
from oai400d.model import Alert, FileState, FleetDelta, JournalPosition, Notification
from oai400d.state import Recovery, open_checked
from oai400d.state.faults import fault_of
from oai400d.timestamps import iso

log = logging.getLogger("oai400d")

POSITION_COMMIT_INTERVAL = 0.5  # positions alone (no new finding) are written this often at most
FULL_RETRY_FIRST = 1.0  # seconds before the first retry of a batch the disk had no room for
FULL_RETRY_MAX = 10.0  # and at most this long between two: space returning is seen soon
# Resolved alerts and delivered notifications are kept this long (for `status` and a person's
# look into the DB), then forgotten, checked once an hour: without it the DB grows for ever.
KEEP_DONE = 7 * 86400.0
PRUNE_EVERY = 3600.0
FULL_LOG_EVERY = 60.0  # the log says it again this often while it lasts


class Reading(Protocol):
    """Where each source stands (the ingest stage): what a commit saves with the batch."""

    @property
    def dirty(self) -> bool: ...  # positions moved since the last commit

    def file_positions(self, everything: bool = False) -> list[FileState]: ...

    def journal_positions(self) -> list[JournalPosition]: ...

    def forgotten(self) -> list[FileState]: ...

    def committed(self) -> None: ...


class FleetQueueing(Protocol):
    """The findings a fleet (state.fleet) queues for its store, written with the batch."""

    def deltas(self) -> list[FleetDelta]: ...

    def committed(self, now: float) -> None: ...


@dataclass
class _Full:
    """The disk has been full since `since`; the next try is at `retry_at`."""

    since: float
    tries: int = 0
    retry_at: float = 0.0
    next_log: float = 0.0


class StateKeeper:
    """The daemon's State and the batch not yet written to it.

    `changed()` is called whenever what `status()` adds changes (the daemon tells systemd,
    STATUS=); `poke()` once notifications are written (the outbox looks at once)."""

    def __init__(
        self,
        path: str,
        host: str | None = None,
        clock: Callable[[], float] = time.time,
        changed: Callable[[], None] = lambda: None,
        poke: Callable[[], None] = lambda: None,
    ) -> None:
        self.host = host if host is not None else socket.gethostname()  # as the alert book's
        self._changed = changed
        self._poke = poke
        self._last_write = 0.0
        self.state, self.recovery = open_checked(path, clock)
        self._alerts: dict[str, Alert] = {}
        self._notifications: list[Notification] = []
        self._full: _Full | None = None
        self._next_prune = 0.0
        # A fresh DB replaced a damaged one while running: the next commit writes every
        # position, not only those that moved since the last (the old rows are gone).
        self._all_positions = False
        if self.recovery is not None:
            log.error("%s", _logged(self.recovery, alerts_kept=False))
            self.hold((), [self.recovery.notice(self.host)])

    @classmethod
    def of(
        cls,
        settings: Settings,
        clock: Callable[[], float],
        changed: Callable[[], None],
        poke: Callable[[], None],
    ) -> StateKeeper:
        """The daemon's: at state.path, its notifications from the alert book's host."""
        host = settings.fleet.host if settings.state.fleet else None
        return cls(settings.state.path, host, clock, changed, poke)

    # --- the batch ----------------------------------------------------------------------------

    def hold(self, alerts: Iterable[Alert], notifications: Iterable[Notification]) -> None:
        """Alerts and notifications for the next commit (kept until one succeeds)."""
        for alert in alerts:
            self._alerts[alert.fingerprint] = alert  # a later snapshot of an alert wins
        self._notifications.extend(notifications)

    @property
    def holding(self) -> bool:
        return bool(self._alerts or self._notifications)

    def write(
        self, now: float, reading: Reading, fleet: FleetQueueing | None, force: bool = False
    ) -> bool:
        """Write the batch held, the `fleet`'s findings and where `reading` stands in one
        transaction, when there is something to write (positions alone: every
        POSITION_COMMIT_INTERVAL); False when the disk is full: the batch is kept and tried
        again after a backoff (before that, unless `force`, nothing is tried). A damaged DB
        raises StateDamagedError (for survive)."""
        forget = reading.forgotten()
        deltas = fleet.deltas() if fleet is not None else []
        if not (self.holding or forget or deltas or force) and (
            not reading.dirty or now - self._last_write < POSITION_COMMIT_INTERVAL
        ):
            return True
        full = self._full
        if full is not None and now < full.retry_at and not force:
            return False
        self._last_write = now  # (after a failure too: positions wait for the next interval)
        files = reading.file_positions(everything=self._all_positions)
        try:
            self.state.commit(
                files=files,
                forget=forget,
                journals=reading.journal_positions(),
                alerts=list(self._alerts.values()),
                notifications=self._notifications,
                fleet=deltas,
                now=now,
            )
        except StateFullError as exc:
            self.disk_full(exc, now, len(files))
            return False
        reading.committed()
        self._all_positions = False
        if now >= self._next_prune:
            self._prune(now)
        if fleet is not None:
            fleet.committed(now)
        notified, self._alerts, self._notifications = bool(self._notifications), {}, []
        if notified:
            self._poke()
        if full is not None:
            self._full = None
            log.warning(
                "the state database %s is written again after %.0f s with its disk full; what "
                "was held in memory is saved (%d tries)",
                self.state.path,
                now - full.since,
                full.tries + 1,
            )
            self._changed()
        return True

    def _prune(self, now: float) -> None:
        """Forget what is over and older than KEEP_DONE (a full disk: at the next hour)."""
        self._next_prune = now + PRUNE_EVERY
        try:
            self.state.prune_resolved(now - KEEP_DONE)
        except StateFullError as exc:  # (a delete writes too)
            log.warning("could not prune the state database (%s); trying again in an hour", exc)

    def disk_full(self, error: Exception, now: float, files: int = 0) -> None:
        """A write failed for want of space (a commit, or any other write of the loop): back off,
        say why (the log once a minute, systemd's status at once)."""
        full = self._full
        if full is None:
            full = self._full = _Full(now)
        full.tries += 1
        full.retry_at = now + min(FULL_RETRY_MAX, FULL_RETRY_FIRST * 2.0 ** (full.tries - 1))
        if now >= full.next_log:
            full.next_log = now + FULL_LOG_EVERY
            log.error(
                "%s; holding %d file position(s), %d alert(s) and %d notification(s) in memory "
                "and retrying (every %.0f s at most); nothing is lost while the daemon runs",
                error,
                files,
                len(self._alerts),
                len(self._notifications),
                FULL_RETRY_MAX,
            )
        self._changed()

    def deadlines(self, dirty: bool) -> list[float]:
        """When the next write is due (the main loop's sleep): the held batch's retry, or
        positions that moved (`dirty`)."""
        if self._full is not None:
            return [self._full.retry_at]
        return [self._last_write + POSITION_COMMIT_INTERVAL] if dirty else []

    def status(self, line: str) -> str:
        """systemd's STATUS= `line`, after why the state DB is not being written if it is not."""
        full = self._full
        if full is None:
            return line
        return (
            f"state DB disk full since {iso(full.since)}, holding {len(self._alerts)} "
            f"alert(s) and {len(self._notifications)} notification(s) in memory, retrying; {line}"
        )

    # --- a damaged DB found while running -----------------------------------------------------

    def survive(self, error: Exception, now: float, alerts: Callable[[], list[Alert]]) -> bool:
        """An error of the loop: a full disk is waited out (False); a damaged DB is replaced
        by a fresh one given every alert in memory, `alerts()` (True: threads that opened the
        old file must open the new one; the caller then writes); any other error is raised."""
        fault = fault_of(error)
        if fault is None:
            raise error
        if fault == "full":
            self.disk_full(error, now)
            return False
        self.start_afresh(error, alerts())
        return True

    def start_afresh(self, error: Exception, alerts: Iterable[Alert]) -> Recovery:
        """Replace the damaged DB by a fresh one and hold every alert the daemon has (`alerts`)
        for it, with the notification that tells about it; the caller commits."""
        recovery = self.state.start_afresh(error)
        log.error("%s", _logged(recovery, alerts_kept=True))
        self._full = None
        self._all_positions = True
        self.hold(alerts, [recovery.notice(self.host, alerts_kept=True)])
        return recovery

    def close(self) -> None:
        self.state.close()


def from_end(settings: Settings) -> Settings:
    """The same settings with every file and journal read from its end (a fresh DB after a
    damaged one: the positions are gone, and reading everything again would be a storm)."""
    return settings.model_copy(
        update={
            "logs": settings.logs.model_copy(update={"read_from": "end"}),
            "journal": [j.model_copy(update={"read_from": "end"}) for j in settings.journal],
        }
    )


def _logged(recovery: Recovery, alerts_kept: bool) -> str:
    return (
        f"the state database {recovery.path} could not be used ({recovery.cause}); it was moved "
        f"aside to {recovery.moved_to} (kept) and a fresh one started; followed files are read "
        f"from their end on; lost: {recovery.lost.describe(alerts_kept)}"
    )
