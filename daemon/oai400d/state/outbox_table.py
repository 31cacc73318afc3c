"""The notification outbox: the `outbox` table, one row per notification to deliver.

Notifications enter it as part of a batch (State.commit), in the transaction of the alerts that
made them, so none is lost in a crash; the outbox thread (notify.outbox) takes them out in order,
marks them delivered, counts a failed attempt, or parks them.

A parked entry is one its receiver refused for the receiver's own configuration (a revoked
token, a channel the bot is not in): it is neither delivered nor dropped, it keeps its place in
its alert's order, and `parked` says why until it is delivered or fails for another reason.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

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
    # Why the receiver refuses it, while it is parked (kept, tried again slowly and at once
    # after a reload); None while it only waits its turn or a retry.
    parked: str | None = None


class OutboxTable(TableGroup):
    """The queue of notifications: what waits, how long, how often it was tried."""

    def outbox_pending(self, limit: int = 100) -> list[OutboxEntry]:
        """Undelivered notifications, oldest first."""
        rows = self._connection.execute(
            "SELECT id, payload, attempts, next_attempt, last_error, parked FROM outbox "
            "WHERE delivered IS NULL ORDER BY id LIMIT ?",
            (limit,),
        ).fetchall()
        return [_entry(row) for row in rows]

    def outbox_parked(self, limit: int = 100) -> list[OutboxEntry]:
        """Parked notifications, oldest first (none from a DB older than parking)."""
        rows = self._connection.rows(
            "SELECT id, payload, attempts, next_attempt, last_error, parked FROM outbox "
            "WHERE delivered IS NULL AND parked IS NOT NULL ORDER BY id LIMIT ?",
            (limit,),
        )
        return [_entry(row) for row in rows]

    def outbox_parked_reasons(self) -> dict[str, int]:
        """How many notifications are parked, by the reason their receiver refused them."""
        rows = self._connection.rows(
            "SELECT parked, COUNT(*) FROM outbox WHERE delivered IS NULL AND parked IS NOT NULL "
            "GROUP BY parked ORDER BY parked"
        )
        return {str(row[0]): int(row[1]) for row in rows}

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
                "UPDATE outbox SET delivered = ?, last_error = NULL, parked = NULL WHERE id = ?",
                (self._clock() if now is None else now, entry_id),
            )

    def delivery_failed(self, entry_id: int, error: str, next_attempt: float) -> None:
        """A try failed for a reason that may pass: retried at `next_attempt` (no longer parked:
        its receiver took it up again)."""
        with self._connection.transaction() as db:
            db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt = ?, "
                "parked = NULL WHERE id = ?",
                (error, next_attempt, entry_id),
            )

    def park_deliveries(
        self, entry_ids: Sequence[int], reason: str, next_attempt: float, tried: bool = True
    ) -> None:
        """The receiver refuses these entries for its configuration: keep them, say why, try
        again at `next_attempt` (`tried`: each was just tried; else they were held back
        untried behind one that was)."""
        with self._connection.transaction() as db:
            db.executemany(
                "UPDATE outbox SET attempts = attempts + ?, last_error = ?, parked = ?, "
                "next_attempt = ? WHERE id = ? AND delivered IS NULL",
                [(int(tried), reason, reason, next_attempt, entry_id) for entry_id in entry_ids],
            )

    def unpark_deliveries(self) -> int:
        """Every parked entry due now (a reload: the receiver may be fixed); how many. They
        stay parked, with their reason, until their next try says otherwise."""
        with self._connection.transaction() as db:
            cursor = db.execute(
                "UPDATE outbox SET next_attempt = 0 WHERE delivered IS NULL AND parked IS NOT NULL"
            )
            return cursor.rowcount

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
            "UPDATE outbox SET delivered = ?, last_error = NULL, parked = NULL WHERE id = ?",
            [(stamp, entry_id) for entry_id in entry_ids],
        )

    @staticmethod
    def _prune_delivered(db: sqlite3.Connection, older_than: float) -> None:
        """Forget notifications delivered before a time, inside a transaction (`db`)."""
        db.execute(
            "DELETE FROM outbox WHERE delivered IS NOT NULL AND delivered < ?", (older_than,)
        )


def _entry(row: tuple[Any, ...]) -> OutboxEntry:
    """An outbox row (id, payload, attempts, next_attempt, last_error, parked) as an entry."""
    return OutboxEntry(
        row[0], Notification.from_json(json.loads(row[1])), row[2], row[3], row[4], row[5]
    )
