"""The notification outbox: the `outbox` table, one row per notification to deliver.

Notifications enter it as part of a batch (State.commit), in the transaction of the alerts that
made them, so none is lost in a crash; the outbox thread (notify.outbox) takes them out in order,
marks them delivered or counts a failed attempt.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from oai400d.model import Notification
from oai400d.state.connection import TableGroup


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A notification waiting for (or done with) delivery."""

    id: int
    notification: Notification
    attempts: int
    next_attempt: float
    last_error: str | None


class OutboxTable(TableGroup):
    """The queue of notifications: what waits, how long, how often it was tried."""

    def outbox_pending(self, limit: int = 100) -> list[OutboxEntry]:
        """Undelivered notifications, oldest first."""
        rows = self._connection.execute(
            "SELECT id, payload, attempts, next_attempt, last_error FROM outbox "
            "WHERE delivered IS NULL ORDER BY id LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            OutboxEntry(row[0], Notification.from_json(json.loads(row[1])), row[2], row[3], row[4])
            for row in rows
        ]

    def outbox_depth(self) -> int:
        row = self._connection.execute(
            "SELECT COUNT(*) FROM outbox WHERE delivered IS NULL"
        ).fetchone()
        return int(row[0])

    def outbox_oldest(self) -> float | None:
        """When the oldest undelivered notification was queued (None: the outbox is empty)."""
        row = self._connection.execute(
            "SELECT MIN(created) FROM outbox WHERE delivered IS NULL"
        ).fetchone()
        return None if row[0] is None else float(row[0])

    def delivered(self, entry_id: int, now: float | None = None) -> None:
        with self._connection.transaction() as db:
            db.execute(
                "UPDATE outbox SET delivered = ?, last_error = NULL WHERE id = ?",
                (self._clock() if now is None else now, entry_id),
            )

    def delivery_failed(self, entry_id: int, error: str, next_attempt: float) -> None:
        with self._connection.transaction() as db:
            db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt = ? "
                "WHERE id = ?",
                (error, next_attempt, entry_id),
            )

    @staticmethod
    def _queue_notifications(
        db: sqlite3.Connection, notifications: Iterable[Notification], stamp: float
    ) -> None:
        """A batch's notifications, queued inside its transaction (`db`)."""
        db.executemany(
            "INSERT INTO outbox (fingerprint, kind, payload, created) VALUES (?, ?, ?, ?)",
            [(n.fingerprint, n.kind, json.dumps(n.to_json()), stamp) for n in notifications],
        )

    @staticmethod
    def _mark_delivered(db: sqlite3.Connection, entry_ids: Iterable[int], stamp: float) -> None:
        """Entries delivered at `stamp`, inside a transaction (`db`)."""
        db.executemany(
            "UPDATE outbox SET delivered = ?, last_error = NULL WHERE id = ?",
            [(stamp, entry_id) for entry_id in entry_ids],
        )

    @staticmethod
    def _prune_delivered(db: sqlite3.Connection, older_than: float) -> None:
        """Forget notifications delivered before a time, inside a transaction (`db`)."""
        db.execute(
            "DELETE FROM outbox WHERE delivered IS NOT NULL AND delivered < ?", (older_than,)
        )
