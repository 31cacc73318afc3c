"""The SQLite state database: file positions, alerts, the notification outbox, probe results.

Everything a batch changes is written in ONE transaction (`commit`), so after a crash the daemon
resumes exactly where its last batch left it: no line read twice into an alert, none skipped,
no notification lost. WAL mode lets `oai400d status` read while the daemon writes.

One small class per group of tables, each with one job, all on one connection
(connection.StateConnection): positions (files, journal cursors), alert_table, outbox_table,
delivery_table, probe_table, mute_tables (silences and acks; Slack button presses), fleet_queue
and connection.Meta. State is all of them on one connection: it adds what spans groups (a batch,
a delivery and what it leaves, pruning), each in one transaction.

A damaged DB (faults.py tells it from other errors) is moved aside and replaced by a fresh one
(recovery.py): at start-up by `open_checked`, while running by `State.start_afresh`.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping

from oai400d.errors import StateDamagedError
from oai400d.model import Alert, FileState, FleetDelta, JournalPosition, Notification
from oai400d.state.alert_table import AlertTable
from oai400d.state.connection import SCHEMA_VERSION, Meta, StateConnection
from oai400d.state.delivery_table import SLACK_TARGET, DeliveryTable
from oai400d.state.faults import fault_of
from oai400d.state.fleet_queue import FleetQueue
from oai400d.state.mute_tables import MuteTables, SlackPresses
from oai400d.state.outbox_table import OutboxEntry, OutboxTable, TargetCounts
from oai400d.state.positions import Positions
from oai400d.state.probe_table import ProbeRecord, ProbeTable
from oai400d.state.recovery import Recovery, set_aside

__all__ = [
    "SCHEMA_VERSION",
    "SLACK_TARGET",
    "OutboxEntry",
    "ProbeRecord",
    "Recovery",
    "State",
    "TargetCounts",
    "open_checked",
]


# Each base is one table group with methods of its own (tests/test_layers.py checks that no two
# define the same name); State only opens their connection and writes across them.
class State(
    Positions,
    AlertTable,
    OutboxTable,
    DeliveryTable,
    ProbeTable,
    MuteTables,
    SlackPresses,
    FleetQueue,
    Meta,
):
    """One connection to the state DB; use one per thread. `clock` stamps what a caller does
    not date itself (a batch, a delivery, a silence's creation); `check` runs SQLite's
    quick_check first (the daemon's own connection: a damaged DB is found at start-up)."""

    def __init__(
        self,
        path: str,
        readonly: bool = False,
        clock: Callable[[], float] = time.time,
        check: bool = False,
    ) -> None:
        super().__init__(StateConnection(path, readonly, check), clock)
        self.path = path

    def close(self) -> None:
        self._connection.close()

    @property
    def where(self) -> str:
        """Where the state is, for people."""
        return self.path

    @property
    def _db(self) -> sqlite3.Connection:
        """The SQLite connection itself (a test drops tables through it to make an old DB)."""
        return self._connection.db

    def data_version(self) -> int:
        """Changes whenever another connection commits: the daemon's cheap "look again" signal."""
        return int(self._connection.execute("PRAGMA data_version").fetchone()[0])

    def start_afresh(self, error: Exception) -> Recovery:
        """The DB was found damaged while in use: move it aside (with its -wal and -shm) and go
        on with a fresh, empty one at the same path, on this same object, so that every stage
        holding it writes to the new one. Connections of other threads still see the old file:
        their owners must open theirs again."""
        self._connection.close()
        recovery = set_aside(self.path, str(error), self._clock(), _not_a_database(error))
        self._connection = StateConnection(self.path)
        return recovery

    # --- what spans table groups, each in one transaction (the groups' writers take it) -------

    def commit(
        self,
        files: Iterable[FileState] = (),
        forget: Iterable[FileState] = (),
        alerts: Iterable[Alert] = (),
        notifications: Iterable[Notification] = (),
        now: float | None = None,
        journals: Iterable[JournalPosition] = (),
        fleet: Iterable[FleetDelta] = (),
    ) -> None:
        """Write a batch in one transaction (with state.fleet: the findings for the store too,
        so a crash can neither lose them nor send them twice)."""
        stamp = self._clock() if now is None else now
        with self._connection.transaction() as db:
            self._write_positions(db, files, forget, journals, stamp)
            self._write_alerts(db, alerts)
            self._queue_notifications(db, notifications, stamp)
            self._queue_findings(db, fleet)

    def record_delivery(
        self,
        entry_ids: Iterable[int],
        target: str,
        remember: Mapping[str, tuple[str, str]],
        forget: Iterable[str] = (),
        now: float | None = None,
    ) -> None:
        """Outbox entries delivered, with what their delivery left ((channel, ts) by key) and the
        keys it made useless, in one transaction: a crash keeps all of it or none."""
        stamp = self._clock() if now is None else now
        with self._connection.transaction() as db:
            self._write_deliveries(db, target, remember, forget)
            self._mark_delivered(db, entry_ids, target, stamp)

    def prune_resolved(self, older_than: float) -> None:
        """Forget resolved alerts and delivered notifications older than a time."""
        with self._connection.transaction() as db:
            self._prune_alerts(db, older_than)
            self._prune_delivered(db, older_than)


def open_checked(
    path: str, clock: Callable[[], float] = time.time
) -> tuple[State, Recovery | None]:
    """The daemon's State, checked (quick_check): a damaged file, or one that is not a SQLite
    database at all, is moved aside and a fresh DB started; the Recovery then says what was lost
    and where the old file went (None when the DB was sound)."""
    try:
        return State(path, clock=clock, check=True), None
    except StateDamagedError as exc:
        recovery = set_aside(path, str(exc), clock(), _not_a_database(exc))
        return State(path, clock=clock), recovery


def _not_a_database(error: Exception) -> bool:
    return fault_of(error) == "not_a_database"
