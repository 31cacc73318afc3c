"""Where delivered notifications went: the `deliveries` table, (channel, ts) by key and target.

The outbox keeps here, per notifier (its target), the message address of each alert episode,
an entry's first-attempt mark and the last channel id (notify.deliveries names the keys); the
fleet sync shares the Slack target's with the other hosts, and the Slack buttons check that a
press came from one of them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping

from oai400d.state.connection import TableGroup

# The target under which the Slack bot's message addresses are kept in `deliveries`: the outbox
# keeps them for the notifier of that name, the fleet sync shares them with the other hosts, and
# the Slack buttons check that a press came from one of them.
SLACK_TARGET = "slack"


class DeliveryTable(TableGroup):
    """(channel, ts) by (key, target): read one, several, or every episode's of an alert."""

    def delivery_target(self, fingerprint: str, target: str) -> tuple[str, str] | None:
        """The (channel, ts) of the message that stands for an alert in a target, if any."""
        row = self._connection.execute(
            "SELECT channel, ts FROM deliveries WHERE fingerprint = ? AND target = ?",
            (fingerprint, target),
        ).fetchone()
        return None if row is None else (row[0], row[1])

    def delivery_targets(self, keys: Iterable[str], target: str) -> dict[str, tuple[str, str]]:
        """The stored (channel, ts) of each of these keys that has one, in one query."""
        wanted = list(keys)
        marks = ",".join("?" * len(wanted))
        rows = self._connection.execute(
            f"SELECT fingerprint, channel, ts FROM deliveries WHERE target = ? "
            f"AND fingerprint IN ({marks})",
            (target, *wanted),
        ).fetchall()
        return {str(row[0]): (str(row[1]), str(row[2])) for row in rows}

    def deliveries_of(self, fingerprint: str, target: str) -> list[tuple[str, str]]:
        """(channel, ts) of every stored message of an alert's episodes in a target."""
        rows = self._connection.execute(
            "SELECT channel, ts FROM deliveries WHERE target = ? AND "
            "(fingerprint = ? OR substr(fingerprint, 1, ?) = ?)",
            (target, fingerprint, len(fingerprint) + 1, fingerprint + "@"),
        ).fetchall()
        return [(str(row[0]), str(row[1])) for row in rows]

    def remember_delivery(self, fingerprint: str, target: str, channel: str, ts: str) -> None:
        with self._connection.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO deliveries VALUES (?, ?, ?, ?)",
                (fingerprint, target, channel, ts),
            )

    def remember_delivery_once(self, key: str, target: str, channel: str, ts: str) -> None:
        """Like remember_delivery, but a key that has a row keeps it (an attempt's mark keeps
        the time of the first attempt)."""
        with self._connection.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO deliveries VALUES (?, ?, ?, ?)", (key, target, channel, ts)
            )

    def forget_delivery(self, fingerprint: str, target: str) -> None:
        with self._connection.transaction() as db:
            db.execute(
                "DELETE FROM deliveries WHERE fingerprint = ? AND target = ?", (fingerprint, target)
            )

    @staticmethod
    def _write_deliveries(
        db: sqlite3.Connection,
        target: str,
        remember: Mapping[str, tuple[str, str]],
        forget: Iterable[str],
    ) -> None:
        """Keep these keys' (channel, ts) and drop those, inside a transaction (`db`)."""
        db.executemany(
            "INSERT OR REPLACE INTO deliveries VALUES (?, ?, ?, ?)",
            [(key, target, channel, ts) for key, (channel, ts) in remember.items()],
        )
        db.executemany(
            "DELETE FROM deliveries WHERE fingerprint = ? AND target = ?",
            [(key, target) for key in forget],
        )
