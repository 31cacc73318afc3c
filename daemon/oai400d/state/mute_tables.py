"""Silences, acknowledgements and Slack button presses: the `silences`, `acks` and
`slack_actions` tables.

Written by other processes than the daemon (`oai400d silence` and `ack`, a Slack button through
Socket Mode) and read by the daemon's mutes stage, which notices their commits by the
connection's data_version. Without state.fleet these are the host's mutes; with it, the fleet
store keeps them instead (fleet.mutes).
"""

from __future__ import annotations

from collections.abc import Iterable

from oai400d.model import Ack, Silence
from oai400d.state.connection import TableGroup

_SILENCE_COLUMNS = (
    "id, fingerprint, category, starts, ends, comment, created_by, created, via, removed_by"
)


class MuteTables(TableGroup):
    """Silences (of a fingerprint or a category, for a time) and acknowledgements."""

    def add_silence(
        self,
        fingerprint: str | None,
        category: str | None,
        starts: float,
        ends: float,
        comment: str,
        created_by: str,
        via: str,
    ) -> Silence:
        with self._connection.transaction() as db:
            cursor = db.execute(
                "INSERT INTO silences (fingerprint, category, starts, ends, comment, created_by, "
                "created, via) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (fingerprint, category, starts, ends, comment, created_by, self._clock(), via),
            )
            silence_id = int(cursor.lastrowid or 0)
        found = self.silence(silence_id)
        assert found is not None
        return found

    def silence(self, silence_id: int) -> Silence | None:
        rows = self._connection.rows(
            f"SELECT {_SILENCE_COLUMNS} FROM silences WHERE id = ?", (silence_id,)
        )
        return Silence(*rows[0]) if rows else None

    def silences(self, after: float | None = None) -> list[Silence]:
        """Silences that end after a time (all of them when None), oldest first."""
        rows = self._connection.rows(
            f"SELECT {_SILENCE_COLUMNS} FROM silences WHERE ends > ? ORDER BY id",
            (float("-inf") if after is None else after,),
        )
        return [Silence(*row) for row in rows]

    def lift_silence(self, silence_id: int, by: str, now: float) -> Silence | None:
        """End a silence now (kept, with who lifted it); None if there is no such silence."""
        with self._connection.transaction() as db:
            db.execute(
                "UPDATE silences SET ends = ?, removed_by = ? WHERE id = ? AND ends > ?",
                (now, by, silence_id, now),
            )
        return self.silence(silence_id)

    def acknowledge(self, ack: Ack) -> None:
        with self._connection.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO acks VALUES (?, ?, ?, ?, ?)",
                (ack.fingerprint, ack.by, ack.at, ack.comment, ack.via),
            )

    def acks(self) -> list[Ack]:
        rows = self._connection.rows(
            "SELECT fingerprint, acked_by, acked_at, comment, via FROM acks ORDER BY acked_at"
        )
        return [Ack(*row) for row in rows]

    def prune_mutes(self, older_than: float) -> None:
        """Forget silences that ended and acknowledgements made before a time."""
        with self._connection.transaction() as db:
            db.execute("DELETE FROM silences WHERE ends < ?", (older_than,))
            db.execute("DELETE FROM acks WHERE acked_at < ?", (older_than,))


class SlackPresses(TableGroup):
    """The ids of Slack button presses (ack, silence) already handled: a replay is refused."""

    def claim_action(self, keys: Iterable[str], now: float, keep: float = 86400.0) -> bool:
        """Record a Slack action's ids; False when any was seen before (a replay). Ids older
        than `keep` are forgotten, in the same transaction."""
        wanted = list(keys)
        with self._connection.transaction() as db:
            db.execute("DELETE FROM slack_actions WHERE seen < ?", (now - keep,))
            marks = ",".join("?" * len(wanted))
            seen = db.execute(
                f"SELECT COUNT(*) FROM slack_actions WHERE key IN ({marks})", wanted
            ).fetchone()[0]
            if seen:
                return False
            db.executemany("INSERT INTO slack_actions VALUES (?, ?)", [(k, now) for k in wanted])
        return True
