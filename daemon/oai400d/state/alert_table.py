"""The alerts the daemon's book holds, as the state DB keeps them: the `alerts` table.

Each alert is stored whole as JSON (its state and last_seen also as columns, for the queries
below); written only as part of a batch (State.commit).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import asdict

from oai400d.model import Alert
from oai400d.state.connection import TableGroup


class AlertTable(TableGroup):
    """The book's alerts by fingerprint, resolved ones until pruned."""

    def alerts(self, states: Iterable[str] = ("pending", "open", "backlog")) -> list[Alert]:
        wanted = tuple(states)
        marks = ",".join("?" * len(wanted))
        rows = self._connection.execute(
            f"SELECT data FROM alerts WHERE state IN ({marks}) ORDER BY last_seen DESC", wanted
        ).fetchall()
        return [_alert_from_row(row[0]) for row in rows]

    def alert(self, fingerprint: str) -> Alert | None:
        """The alert with this fingerprint in any state (resolved ones until pruned)."""
        row = self._connection.execute(
            "SELECT data FROM alerts WHERE fingerprint = ?", (fingerprint,)
        ).fetchone()
        return None if row is None else _alert_from_row(row[0])

    def alert_counts(self) -> list[tuple[str, str, int]]:
        """(state, severity, count) of the alerts not resolved, without decoding each alert."""
        rows = self._connection.execute(
            "SELECT state, json_extract(data, '$.severity'), COUNT(*) FROM alerts "
            "WHERE state != 'resolved' GROUP BY 1, 2"
        ).fetchall()
        return [(str(row[0]), str(row[1]), int(row[2])) for row in rows]

    @staticmethod
    def _write_alerts(db: sqlite3.Connection, alerts: Iterable[Alert]) -> None:
        """A batch's alerts, inside its transaction (`db`)."""
        db.executemany(
            "INSERT OR REPLACE INTO alerts VALUES (?, ?, ?, ?)",
            [(a.fingerprint, a.state, a.last_seen, json.dumps(asdict(a))) for a in alerts],
        )

    @staticmethod
    def _prune_alerts(db: sqlite3.Connection, older_than: float) -> None:
        """Forget resolved alerts last seen before a time, inside a transaction (`db`)."""
        db.execute("DELETE FROM alerts WHERE state = 'resolved' AND last_seen < ?", (older_than,))


def _alert_from_row(data: str) -> Alert:
    fields = json.loads(data)
    for key in ("files", "fixes", "docs"):
        fields[key] = tuple(fields[key])
    # Stored whole as JSON: an alert written before facts existed has no "facts" key (no column
    # to add, old DBs open as they are).
    fields["facts"] = tuple(fields.get("facts") or ())
    return Alert(**fields)
