"""Findings waiting for the fleet store (state.fleet): the `fleet_queue` table.

Findings enter it as part of a batch (State.commit), so a crash can neither lose them nor send
them twice: the queue hands them out as numbered batches, a batch keeps its number until the
store confirms it, and the store applies each (instance, number) once.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterable

from oai400d.model import FleetDelta
from oai400d.state.connection import TableGroup


class FleetQueue(TableGroup):
    """Unsent findings (seq 0), summed per alert, and the batch sent but not yet confirmed."""

    def fleet_instance(self) -> str:
        """This state DB's id in the fleet store, made on first use: batch numbers are counted
        per instance, so a host whose state DB was replaced starts a count of its own."""
        with self._connection.transaction() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'fleet_instance'").fetchone()
            if row is not None:
                return str(row[0])
            instance = uuid.uuid4().hex
            db.execute("INSERT INTO meta VALUES ('fleet_instance', ?)", (instance,))
            return instance

    def fleet_batch(self) -> tuple[int, list[FleetDelta]] | None:
        """The next batch for the store, numbered: the one sent before if it was never confirmed
        (sent again with the same number, so the store can tell), else the waiting findings
        under a new number. None when nothing waits."""
        with self._connection.transaction() as db:
            row = db.execute("SELECT min(seq) FROM fleet_queue WHERE seq > 0").fetchone()
            seq = row[0]
            if seq is None:
                if db.execute("SELECT 1 FROM fleet_queue WHERE seq = 0 LIMIT 1").fetchone() is None:
                    return None
                last = db.execute("SELECT value FROM meta WHERE key = 'fleet_seq'").fetchone()
                seq = int(last[0]) + 1 if last is not None else 1
                db.execute("INSERT OR REPLACE INTO meta VALUES ('fleet_seq', ?)", (str(seq),))
                db.execute("UPDATE fleet_queue SET seq = ? WHERE seq = 0", (seq,))
            rows = db.execute(
                "SELECT fingerprint, count, first_seen, last_seen, data FROM fleet_queue "
                "WHERE seq = ? ORDER BY fingerprint",
                (seq,),
            ).fetchall()
        return int(seq), [FleetDelta(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]

    def fleet_sent(self, seq: int) -> None:
        """The store confirmed batch `seq`: forget it."""
        with self._connection.transaction() as db:
            db.execute("DELETE FROM fleet_queue WHERE seq = ?", (seq,))

    def fleet_queued(self) -> int:
        """Findings waiting for the store (0 without state.fleet)."""
        rows = self._connection.rows("SELECT coalesce(sum(count), 0) FROM fleet_queue")
        return int(rows[0][0]) if rows else 0

    @staticmethod
    def _queue_findings(db: sqlite3.Connection, deltas: Iterable[FleetDelta]) -> None:
        """A batch's findings for the store, inside its transaction (`db`)."""
        # Unsent findings (seq 0) of one alert are summed into one row while they wait.
        db.executemany(
            "INSERT INTO fleet_queue VALUES (0, ?, ?, ?, ?, ?) "
            "ON CONFLICT (seq, fingerprint) DO UPDATE SET count = count + excluded.count, "
            "first_seen = min(first_seen, excluded.first_seen), "
            "last_seen = max(last_seen, excluded.last_seen)",
            [
                (d.fingerprint, d.count, d.first_seen, d.last_seen, json.dumps(d.data))
                for d in deltas
            ],
        )
