"""Fleet-wide silences, acknowledgements and Slack button presses (with state.fleet they live
here instead of the state DB): written by the CLI's mute commands and the Slack buttons
(notify/socket_mode), read by every daemon's fleet sync."""

from __future__ import annotations

from collections.abc import Sequence

from oai400d.fleet.connection import Connection, StorePart, one
from oai400d.model import Ack, Silence


class FleetMutes(StorePart):
    """Silences (of a fingerprint or a category, for a time) and acknowledgements."""

    def add_silence(
        self,
        fingerprint: str | None,
        category: str | None,
        starts: float,
        ends: float,
        comment: str,
        created_by: str,
        via: str = "cli",
    ) -> Silence:
        """Silence a fingerprint or a category fleet-wide from starts to ends."""
        if (fingerprint is None) == (category is None):
            raise ValueError("a silence matches either a fingerprint or a category")

        def write(conn: Connection) -> int:
            row = conn.execute(
                """
                INSERT INTO fleet_silences
                    (fingerprint, category, starts, ends, comment, created_by, via)
                VALUES (%s, %s, to_timestamp(%s), to_timestamp(%s), %s, %s, %s) RETURNING id
                """,
                (fingerprint, category, starts, ends, comment, created_by, via),
            ).fetchone()
            return int(one(row))

        found = self.silence(self._connection.call(write))
        assert found is not None
        return found

    def silence(self, silence_id: int) -> Silence | None:
        return next((x for x in self.silences() if x.id == silence_id), None)

    def silences(self, after: float | None = None) -> list[Silence]:
        """Fleet-wide silences that end after a time (all of them when None), oldest first."""

        def read(conn: Connection) -> list[Silence]:
            rows = conn.execute(
                """
                SELECT id, fingerprint, category, extract(epoch FROM starts)::float8,
                       extract(epoch FROM ends)::float8, comment, created_by,
                       extract(epoch FROM created)::float8, via, removed_by
                FROM fleet_silences
                WHERE %s::float8 IS NULL OR ends > to_timestamp(%s::float8) ORDER BY id
                """,
                (after, after),
            ).fetchall()
            return [Silence(*row) for row in rows]

        return self._connection.call(read)

    def lift_silence(self, silence_id: int, by: str, now: float) -> Silence | None:
        """End a fleet-wide silence now (kept, with who lifted it); None if there is none."""

        def write(conn: Connection) -> None:
            conn.execute(
                "UPDATE fleet_silences SET ends = to_timestamp(%s), removed_by = %s "
                "WHERE id = %s AND ends > to_timestamp(%s)",
                (now, by, silence_id, now),
            )

        self._connection.call(write)
        return self.silence(silence_id)

    def acknowledge(self, ack: Ack) -> None:
        """Record fleet-wide that someone has seen this alert (the latest ack wins)."""

        def write(conn: Connection) -> None:
            conn.execute(
                """
                INSERT INTO fleet_acks VALUES (%s, %s, to_timestamp(%s), %s, %s)
                ON CONFLICT (fingerprint) DO UPDATE SET acked_by = EXCLUDED.acked_by,
                    acked_at = EXCLUDED.acked_at, comment = EXCLUDED.comment, via = EXCLUDED.via
                """,
                (ack.fingerprint, ack.by, ack.at, ack.comment, ack.via),
            )

        self._connection.call(write)

    def acks(self) -> list[Ack]:
        """Every fleet-wide acknowledgement, oldest first."""

        def read(conn: Connection) -> list[Ack]:
            rows = conn.execute(
                """
                SELECT fingerprint, acked_by, extract(epoch FROM acked_at)::float8, comment, via
                FROM fleet_acks ORDER BY acked_at
                """
            ).fetchall()
            return [Ack(r[0], r[1], float(r[2]), r[3], r[4]) for r in rows]

        return self._connection.call(read)


class FleetPresses(StorePart):
    """The ids of Slack button presses already handled by any host: a replay is refused
    fleet-wide (Slack hands each press to any one of the app's connections)."""

    def claim_action(self, keys: Sequence[str], keep: float = 86400.0) -> bool:
        """Record a Slack press's ids for the whole fleet; False when any was seen before (a
        replay, on this host or another). Ids older than `keep` s are forgotten."""
        wanted = sorted(set(keys))

        def write(conn: Connection) -> bool:
            with conn.transaction():
                conn.execute(
                    "DELETE FROM fleet_slack_actions "
                    "WHERE seen < now() - make_interval(secs => %s)",
                    (keep,),
                )
                added = conn.execute(
                    "INSERT INTO fleet_slack_actions (key) SELECT unnest(%s::text[]) "
                    "ON CONFLICT DO NOTHING RETURNING key",
                    (wanted,),
                ).fetchall()
            return len(added) == len(wanted)

        return self._connection.call(write)
