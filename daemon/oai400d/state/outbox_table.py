"""The notification outbox: the `outbox` table, one row per notification, and `outbox_targets`,
one row per notification and notifier (its target) that is to receive it, with that notifier's
own delivery state; `targets` lists the notifiers and what each receives (a `Route`).

Notifications enter the outbox as part of a batch (State.commit), in the transaction of the
alerts that made them, and are routed in that same transaction to every target whose route
accepts them, so none is lost in a crash. Each notifier's outbox thread (notify.outbox) takes
out its own rows in order, marks them delivered, counts a failed attempt, or parks them: one
failing notifier never holds up or repeats another. A notification is done (`outbox.delivered`)
once every target it was routed to has it, or at once when no route accepts it.

A target registers itself when its worker starts (`register_target`): the notifications still
waiting then (queued before it existed, or before any notifier did: an older DB's) are routed to
it too. One that is no longer configured is retired (`retire_targets`): what it had not
delivered is dropped from it, and said.

A parked row is one its receiver refused for the receiver's own configuration (a revoked
token, a channel the bot is not in): it is neither delivered nor dropped, it keeps its place in
its alert's order, and `parked` says why until it is delivered or fails for another reason.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from oai400d.model import Notification, Route
from oai400d.state.connection import TableGroup

# The columns of an OutboxEntry, read from outbox (o) and outbox_targets (r).
_ENTRY = "o.id, o.payload, r.attempts, r.next_attempt, r.last_error, r.parked, r.target"
# Kinds after which an alert is no longer open where it was announced: resolved, and merged (a
# fleet host's own alert folded into the fleet's, which goes on as an alert of its own).
_ENDED = ("resolved", "merged")


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A notification waiting for (or done with) delivery to one target."""

    id: int
    notification: Notification
    attempts: int
    next_attempt: float
    last_error: str | None
    # Why the receiver refuses it, while it is parked (kept, tried again slowly and at once
    # after a reload); None while it only waits its turn or a retry.
    parked: str | None = None
    target: str = ""


@dataclass(frozen=True, slots=True)
class TargetCounts:
    """One notifier's rows in the outbox: waiting (of which failing: tried and failed, and
    parked: refused) and delivered (since the DB's start, as long as they are kept)."""

    queued: int = 0
    failing: int = 0
    parked: int = 0
    delivered: int = 0


class OutboxTable(TableGroup):
    """The queue of notifications per target: what waits, how long, how often it was tried."""

    def outbox_pending(self, target: str, limit: int = 100) -> list[OutboxEntry]:
        """A target's undelivered notifications, oldest first."""
        rows = self._connection.execute(
            f"SELECT {_ENTRY} FROM outbox_targets r JOIN outbox o ON o.id = r.entry "
            "WHERE r.target = ? AND r.delivered IS NULL ORDER BY r.entry LIMIT ?",
            (target, limit),
        ).fetchall()
        return [_entry(row) for row in rows]

    def outbox_waiting(self, limit: int = 100) -> list[OutboxEntry]:
        """Notifications some target has yet to receive, oldest first, whatever the target
        (their delivery state is each target's: see outbox_pending)."""
        rows = self._connection.rows(
            "SELECT id, payload, 0, 0, NULL, NULL, '' FROM outbox WHERE delivered IS NULL "
            "ORDER BY id LIMIT ?",
            (limit,),
        )
        return [_entry(row) for row in rows]

    def outbox_parked(self, limit: int = 100) -> list[OutboxEntry]:
        """Parked notifications of every target, oldest first (none from an older DB)."""
        rows = self._connection.rows(
            f"SELECT {_ENTRY} FROM outbox_targets r JOIN outbox o ON o.id = r.entry "
            "WHERE r.delivered IS NULL AND r.parked IS NOT NULL ORDER BY r.entry, r.target "
            "LIMIT ?",
            (limit,),
        )
        return [_entry(row) for row in rows]

    def outbox_parked_reasons(self) -> dict[str, int]:
        """How many notifications are parked, by the reason their receiver refused them."""
        rows = self._connection.rows(
            "SELECT parked, COUNT(*) FROM outbox_targets WHERE delivered IS NULL "
            "AND parked IS NOT NULL GROUP BY parked ORDER BY parked"
        )
        return {str(row[0]): int(row[1]) for row in rows}

    def outbox_by_target(self) -> dict[str, TargetCounts]:
        """Each registered target's counts (an older DB has none)."""
        rows = self._connection.rows(
            "SELECT t.name, "
            "COUNT(r.entry) FILTER (WHERE r.delivered IS NULL), "
            "COUNT(r.entry) FILTER (WHERE r.delivered IS NULL AND r.attempts > 0 "
            "AND r.parked IS NULL), "
            "COUNT(r.entry) FILTER (WHERE r.delivered IS NULL AND r.parked IS NOT NULL), "
            "COUNT(r.entry) FILTER (WHERE r.delivered IS NOT NULL) "
            "FROM targets t LEFT JOIN outbox_targets r ON r.target = t.name "
            "GROUP BY t.name ORDER BY t.name"
        )
        return {str(row[0]): TargetCounts(*(int(v) for v in row[1:])) for row in rows}

    def outbox_depth(self) -> int:
        """Notifications some target has yet to receive (or no target yet: none registered)."""
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

    def firing_notifications(self, target: str) -> list[Notification]:
        """For each alert, the latest notification delivered to a target, when it says the
        alert is open (not resolved or merged): what a receiver that forgets alerts must be
        told again. A fleet's alert and a host's own alert of the same fingerprint (made while
        the fleet's store was away) are two alerts; a backlog summary is none."""
        rows = self._connection.execute(
            "SELECT o.payload, o.kind FROM outbox o WHERE o.id IN ("
            "SELECT MAX(o2.id) FROM outbox o2 JOIN outbox_targets r ON r.entry = o2.id "
            "WHERE r.target = ? AND r.delivered IS NOT NULL AND o2.kind != 'backlog' "
            "GROUP BY o2.fingerprint, IFNULL(json_extract(o2.payload, '$.host_count'), 0) > 0"
            ") ORDER BY o.id",
            (target,),
        ).fetchall()
        return [Notification.from_json(json.loads(row[0])) for row in rows if row[1] not in _ENDED]

    def delivered(self, entry_id: int, target: str, now: float | None = None) -> None:
        with self._connection.transaction() as db:
            self._mark_delivered(db, [entry_id], target, self._clock() if now is None else now)

    def delivery_failed(
        self, entry_id: int, target: str, error: str, next_attempt: float
    ) -> None:
        """A try failed for a reason that may pass: retried at `next_attempt` (no longer parked:
        its receiver took it up again)."""
        with self._connection.transaction() as db:
            db.execute(
                "UPDATE outbox_targets SET attempts = attempts + 1, last_error = ?, "
                "next_attempt = ?, parked = NULL WHERE entry = ? AND target = ?",
                (error, next_attempt, entry_id, target),
            )

    def park_deliveries(
        self,
        entry_ids: Sequence[int],
        target: str,
        reason: str,
        next_attempt: float,
        tried: bool = True,
    ) -> None:
        """The receiver refuses these entries for its configuration: keep them, say why, try
        again at `next_attempt` (`tried`: each was just tried; else they were held back
        untried behind one that was)."""
        with self._connection.transaction() as db:
            db.executemany(
                "UPDATE outbox_targets SET attempts = attempts + ?, last_error = ?, parked = ?, "
                "next_attempt = ? WHERE entry = ? AND target = ? AND delivered IS NULL",
                [
                    (int(tried), reason, reason, next_attempt, entry_id, target)
                    for entry_id in entry_ids
                ],
            )

    def unpark_deliveries(self, target: str) -> int:
        """Every parked entry of a target due now (a reload: the receiver may be fixed); how
        many. They stay parked, with their reason, until their next try says otherwise."""
        with self._connection.transaction() as db:
            cursor = db.execute(
                "UPDATE outbox_targets SET next_attempt = 0 WHERE target = ? "
                "AND delivered IS NULL AND parked IS NOT NULL",
                (target,),
            )
            return cursor.rowcount

    def register_target(self, route: Route) -> int:
        """A notifier starts (or its route changed): keep its route, and route to it every
        notification still waiting that it accepts and does not have; how many were."""
        with self._connection.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO targets VALUES (?, ?, ?)",
                (route.target, route.min_severity, json.dumps(list(route.categories))),
            )
            rows = db.execute(
                "SELECT id, payload FROM outbox WHERE delivered IS NULL AND NOT EXISTS "
                "(SELECT 1 FROM outbox_targets r WHERE r.entry = outbox.id AND r.target = ?) "
                "ORDER BY id",
                (route.target,),
            ).fetchall()
            taken = [row[0] for row in rows if _accepts(route, json.loads(row[1]))]
            db.executemany(
                "INSERT INTO outbox_targets (entry, target) VALUES (?, ?)",
                [(entry_id, route.target) for entry_id in taken],
            )
            return len(taken)

    def retire_targets(self, keep: Iterable[str], now: float | None = None) -> dict[str, int]:
        """Forget every target not in `keep` (no longer configured), with what it had not
        delivered; how many notifications each had waiting. A notification left with no
        target waiting for it is done (one left with no target at all waits for the next to
        register)."""
        kept = list(keep)
        marks = ",".join("?" * len(kept)) or "NULL"
        stamp = self._clock() if now is None else now
        with self._connection.transaction() as db:
            rows = db.execute(
                "SELECT t.name, COUNT(r.entry) FROM targets t LEFT JOIN outbox_targets r "
                "ON r.target = t.name AND r.delivered IS NULL "
                f"WHERE t.name NOT IN ({marks}) GROUP BY t.name",
                kept,
            ).fetchall()
            gone = {str(row[0]): int(row[1]) for row in rows}
            for name in gone:
                db.execute("DELETE FROM targets WHERE name = ?", (name,))
                db.execute(
                    "DELETE FROM outbox_targets WHERE target = ? AND delivered IS NULL", (name,)
                )
            if gone:
                db.execute(
                    "UPDATE outbox SET delivered = ? WHERE delivered IS NULL AND EXISTS "
                    "(SELECT 1 FROM outbox_targets r WHERE r.entry = outbox.id) AND NOT EXISTS "
                    "(SELECT 1 FROM outbox_targets r WHERE r.entry = outbox.id "
                    "AND r.delivered IS NULL)",
                    (stamp,),
                )
            return gone

    @staticmethod
    def _queue_notifications(
        db: sqlite3.Connection, notifications: Iterable[Notification], stamp: float
    ) -> None:
        """A batch's notifications, queued and routed inside its transaction (`db`)."""
        routes = [
            Route(str(name), str(severity), tuple(json.loads(categories)))
            for name, severity, categories in db.execute("SELECT * FROM targets ORDER BY name")
        ]
        for n in notifications:
            taken = [r.target for r in routes if r.accepts(n.severity, n.category)]
            # Routed nowhere while notifiers are registered: nothing to deliver. With none
            # registered yet, it waits for the first (register_target).
            done = stamp if routes and not taken else None
            cursor = db.execute(
                "INSERT INTO outbox (fingerprint, kind, payload, created, delivered) "
                "VALUES (?, ?, ?, ?, ?)",
                (n.fingerprint, n.kind, json.dumps(n.to_json()), stamp, done),
            )
            db.executemany(
                "INSERT INTO outbox_targets (entry, target) VALUES (?, ?)",
                [(cursor.lastrowid, target) for target in taken],
            )

    @staticmethod
    def _mark_delivered(
        db: sqlite3.Connection, entry_ids: Iterable[int], target: str, stamp: float
    ) -> None:
        """Entries delivered to a target at `stamp`, inside a transaction (`db`); an entry
        every target has is done."""
        ids = list(entry_ids)
        db.executemany(
            "UPDATE outbox_targets SET delivered = ?, last_error = NULL, parked = NULL "
            "WHERE entry = ? AND target = ?",
            [(stamp, entry_id, target) for entry_id in ids],
        )
        db.executemany(
            "UPDATE outbox SET delivered = ? WHERE id = ? AND delivered IS NULL AND NOT EXISTS "
            "(SELECT 1 FROM outbox_targets r WHERE r.entry = outbox.id AND r.delivered IS NULL)",
            [(stamp, entry_id) for entry_id in ids],
        )

    @staticmethod
    def _prune_delivered(db: sqlite3.Connection, older_than: float) -> None:
        """Forget notifications delivered before a time, inside a transaction (`db`), but the
        latest of an alert that it does not say is over: a receiver that forgets
        (firing_notifications) is told that one again for as long as the alert is open."""
        old = (
            "SELECT id FROM outbox WHERE delivered IS NOT NULL AND delivered < ? AND "
            f"(kind IN {_ENDED!r} OR id NOT IN (SELECT MAX(id) FROM outbox GROUP BY fingerprint))"
        )
        db.execute(f"DELETE FROM outbox_targets WHERE entry IN ({old})", (older_than,))
        db.execute(f"DELETE FROM outbox WHERE id IN ({old})", (older_than,))


def _accepts(route: Route, payload: dict[str, Any]) -> bool:
    return route.accepts(str(payload.get("severity", "")), str(payload.get("category", "")))


def _entry(row: tuple[Any, ...]) -> OutboxEntry:
    """A row (id, payload, attempts, next_attempt, last_error, parked, target) as an entry."""
    entry_id, payload, attempts, next_attempt, last_error, parked, target = row
    notification = Notification.from_json(json.loads(payload))
    return OutboxEntry(entry_id, notification, attempts, next_attempt, last_error, parked, target)
