"""Who owns an alert's Slack message, and the announcement state its owner writes.

Exactly one host owns the alert's Slack message: it holds a lease that expires unless renewed,
and any other host takes it over once it has expired. Leases run on the server's clock
(`now()`), so the hosts' clocks never decide who owns a message. Only the owner advances an
alert's announcement state (pending, open, resolved) and records where its message is.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from oai400d.fleet.connection import Connection, StorePart

# The owner's transitions in one statement; rows locked in fingerprint order first, as every
# other statement here locks them, so that it never deadlocks with a contribution.
_ADVANCE = """
WITH changes AS (
    SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb)
        AS c (fingerprint text, episode bigint, state text, lifecycle jsonb, expect_count bigint)
),
locked AS (
    SELECT a.fingerprint FROM fleet_alerts a JOIN changes c USING (fingerprint)
    WHERE a.owner = %(host)s AND a.episode = c.episode AND a.state <> 'resolved'
      AND (c.expect_count IS NULL OR a.count = c.expect_count)
    ORDER BY a.fingerprint
    FOR UPDATE OF a
)
UPDATE fleet_alerts a SET state = c.state, lifecycle = c.lifecycle, updated = now()
FROM changes c JOIN locked USING (fingerprint)
WHERE a.fingerprint = c.fingerprint
RETURNING a.fingerprint
"""

# Take or renew leases in one statement. A row is wanted when this host saw it, or when it has
# been orphaned for a whole ttl (its owner's lease long expired, or never owned since its last
# contribution); SKIP LOCKED: a row another host is claiming right now is left to it.
_CLAIM = """
WITH wanted AS (
    SELECT fingerprint, owner AS before FROM fleet_alerts
    WHERE state <> 'resolved'
      AND (fingerprint = ANY(%(fps)s::text[])
           OR lease_until < now() - make_interval(secs => %(ttl)s)
           OR (owner IS NULL AND updated < now() - make_interval(secs => %(ttl)s)))
      AND (owner IS NULL OR owner = %(host)s OR lease_until < now())
    ORDER BY fingerprint
    LIMIT 1000
    FOR UPDATE SKIP LOCKED
)
UPDATE fleet_alerts a SET owner = %(host)s,
    lease_until = now() + make_interval(secs => %(ttl)s)
FROM wanted WHERE a.fingerprint = wanted.fingerprint
RETURNING a.fingerprint, wanted.before
"""


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of an alert's announcement state, made by its owner (FleetStore.advance_many)."""

    fingerprint: str
    episode: int
    state: str
    lifecycle: dict[str, Any]
    expect_count: int | None = None  # a resolution: only if no finding came in meanwhile


class Leases(StorePart):
    """Claims and renewals of messages, and the owner's writes to its alerts."""

    def claim(self, fingerprints: Sequence[str], host: str, ttl: float) -> dict[str, str | None]:
        """Take or renew, in one statement, the message of every unresolved alert here that
        nobody owns, this host owns, or whose owner's lease has expired; also alerts orphaned
        for longer than `ttl` (every host that saw them stopped) so that they still resolve.
        Returns {fingerprint: the owner before} for each alert this host now owns."""
        if ttl <= 0:
            raise ValueError(f"a lease's ttl must be > 0 s, not {ttl}")

        def write(conn: Connection) -> dict[str, str | None]:
            rows = conn.execute(
                _CLAIM, {"fps": sorted(set(fingerprints)), "host": host, "ttl": ttl}
            ).fetchall()
            return {str(r[0]): r[1] for r in rows}

        return self._connection.call(write)

    def advance(
        self,
        fingerprint: str,
        host: str,
        episode: int,
        state: str,
        lifecycle: dict[str, Any],
        expect_count: int | None = None,
    ) -> bool:
        """advance_many for one alert: whether it was written."""
        change = Transition(fingerprint, episode, state, lifecycle, expect_count)
        return fingerprint in self.advance_many(host, [change])

    def advance_many(self, host: str, changes: Sequence[Transition]) -> set[str]:
        """Write, in one statement, the announcement state of alerts this host owns; the
        fingerprints written. One is skipped if this host lost its lease, the episode moved on,
        or, with `expect_count`, findings came in since the owner looked (a resolution must
        not swallow them)."""
        if not changes:
            return set()
        rows = json.dumps(
            [
                {
                    "fingerprint": c.fingerprint,
                    "episode": c.episode,
                    "state": c.state,
                    "lifecycle": c.lifecycle,
                    "expect_count": c.expect_count,
                }
                for c in sorted(changes, key=lambda c: c.fingerprint)
            ]
        )

        def write(conn: Connection) -> set[str]:
            found = conn.execute(_ADVANCE, {"rows": rows, "host": host}).fetchall()
            return {str(r[0]) for r in found}

        return self._connection.call(write)

    def release_lease(self, fingerprint: str, host: str) -> bool:
        """Give the message up (clean shutdown) so another host takes it at once."""
        return self._as_owner("owner = NULL, lease_until = NULL", (), fingerprint, host)

    def record_message(self, fingerprint: str, host: str, message: dict[str, Any]) -> bool:
        """Store where the alert's Slack message is (channel, ts); only its owner may."""
        return self._as_owner("message = %s::jsonb", (json.dumps(message),), fingerprint, host)

    def _as_owner(
        self, assignments: str, values: tuple[Any, ...], fingerprint: str, host: str
    ) -> bool:
        """Change an alert's row (`assignments`: this module's own SQL, never input) if this
        host owns its message; whether it did."""
        sql = (
            f"UPDATE fleet_alerts SET {assignments} "
            "WHERE fingerprint = %s AND owner = %s RETURNING 1"
        )

        def write(conn: Connection) -> bool:
            return conn.execute(sql, (*values, fingerprint, host)).fetchone() is not None

        return self._connection.call(write)
