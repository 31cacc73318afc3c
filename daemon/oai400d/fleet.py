"""The fleet's shared alert book on PostgreSQL (`state.fleet`): one alert per problem, many hosts.

Every host adds its findings to one row per fingerprint with a single atomic upsert
(`INSERT … ON CONFLICT`), so 40 hosts seeing one revoked key make one alert whose count is the
sum and whose host list names them all. Exactly one host owns the alert's Slack message: it
holds a lease that expires unless renewed, and any other host takes it over once it has
expired. Leases run on the server's clock (`now()`), so the hosts' clocks never decide who owns
a message; first and last seen are the times the hosts saw the findings (clocks kept by NTP: a
skew of seconds moves a resolution by as much, against `resolve_after` of minutes). Every
statement is bounded by `statement_timeout`, every connection attempt by
`connect_timeout`; all psycopg errors are translated here into FleetUnavailableError (retry
later) or FleetStoreError (a person must act).

Each daemon uses it from one thread of its own (fleetsync.FleetSync); the CLI's mute commands
and the Slack buttons (notify/socket_mode) use it for fleet-wide silences and acknowledgements.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar
from urllib.parse import urlsplit

import psycopg
import psycopg.errors
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool, PoolTimeout

from oai400d.errors import FleetError, FleetStoreError, FleetUnavailableError
from oai400d.model import Ack, Silence

# Each migration brings the schema from version N-1 to N, in one transaction; never edit one
# that has shipped: add the next.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE fleet_alerts (
        fingerprint TEXT PRIMARY KEY,
        count BIGINT NOT NULL CHECK (count >= 0),
        first_seen TIMESTAMPTZ NOT NULL,
        last_seen TIMESTAMPTZ NOT NULL,
        data JSONB NOT NULL,
        owner TEXT,
        lease_until TIMESTAMPTZ,
        message JSONB,
        created TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE INDEX fleet_alerts_last_seen ON fleet_alerts (last_seen);
    CREATE TABLE fleet_alert_hosts (
        fingerprint TEXT NOT NULL REFERENCES fleet_alerts (fingerprint) ON DELETE CASCADE,
        host TEXT NOT NULL,
        count BIGINT NOT NULL CHECK (count >= 0),
        last_seen TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (fingerprint, host)
    );
    CREATE TABLE fleet_silences (
        id BIGSERIAL PRIMARY KEY,
        fingerprint TEXT, category TEXT,
        starts TIMESTAMPTZ NOT NULL, ends TIMESTAMPTZ NOT NULL, comment TEXT NOT NULL,
        created_by TEXT NOT NULL, created TIMESTAMPTZ NOT NULL DEFAULT now(),
        via TEXT NOT NULL, removed_by TEXT,
        CHECK ((fingerprint IS NULL) <> (category IS NULL))
    );
    CREATE INDEX fleet_silences_ends ON fleet_silences (ends);
    CREATE TABLE fleet_acks (
        fingerprint TEXT PRIMARY KEY, acked_by TEXT NOT NULL, acked_at TIMESTAMPTZ NOT NULL,
        comment TEXT NOT NULL, via TEXT NOT NULL
    );
    """,
    # 2: episodes (a problem that resolved and came back is a new alert, with its own message),
    # the announcement state written by the message's owner, and per-instance batch numbers
    # that make a contribution apply exactly once however often it is sent.
    """
    ALTER TABLE fleet_alerts
        ADD COLUMN episode BIGINT NOT NULL DEFAULT 1,
        ADD COLUMN state TEXT NOT NULL DEFAULT 'pending',
        ADD COLUMN lifecycle JSONB NOT NULL DEFAULT '{}'::jsonb;
    ALTER TABLE fleet_alert_hosts ADD COLUMN episode BIGINT NOT NULL DEFAULT 1;
    CREATE INDEX fleet_alerts_open ON fleet_alerts (state, lease_until);
    CREATE TABLE fleet_instances (
        instance TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        applied_seq BIGINT NOT NULL,
        seen TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    """,
    # 3: the ids of Slack button presses already handled by any host (replays are refused
    # fleet-wide: Slack hands each press to any one of the app's connections).
    """
    CREATE TABLE fleet_slack_actions (
        key TEXT PRIMARY KEY,
        seen TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE INDEX fleet_slack_actions_seen ON fleet_slack_actions (seen);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
# pg_advisory_xact_lock key: hosts starting together migrate one after the other, never twice.
_MIGRATION_LOCK = 0x0A1400D
# Connection-level problems (class 08), timeouts and cancels (57014), lock and serialization
# conflicts (40xxx, 55P03), a server shutting down or short of resources (53xxx, 57P0x): the
# same call can succeed later.
_RETRYABLE_SQLSTATE_PREFIXES = ("08", "40", "53", "55P03", "57")

T = TypeVar("T")

# The pool logs every failed reconnection attempt; FleetSync reports an outage once, saying what
# to do, so the pool's own account of it is only wanted when something unexpected goes wrong.
logging.getLogger("psycopg.pool").setLevel(logging.ERROR)

# One statement for a whole batch of contributions (one round trip, one transaction). The gate
# applies a batch only if its seq is above the highest its instance had applied; the rows are
# summed per alert and per (alert, host) first, since one INSERT … ON CONFLICT may not touch a
# row twice; rows are written in fingerprint order so that concurrent batches never deadlock.
_CONTRIBUTE = """
WITH input AS (
    SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb)
        AS u (fingerprint text, host text, n bigint, first_seen float8, last_seen float8,
              data jsonb)
),
gate AS (
    INSERT INTO fleet_instances AS i (instance, host, applied_seq)
    SELECT %(instance)s::text, %(host)s::text, %(seq)s::bigint WHERE %(instance)s::text IS NOT NULL
    ON CONFLICT (instance) DO UPDATE
        SET applied_seq = EXCLUDED.applied_seq, host = EXCLUDED.host, seen = now()
        WHERE i.applied_seq < EXCLUDED.applied_seq
    RETURNING 1
),
go AS (SELECT 1 AS go WHERE %(instance)s::text IS NULL OR EXISTS (SELECT 1 FROM gate)),
per_alert AS (
    SELECT fingerprint, sum(n) AS n, min(first_seen) AS first_seen,
           max(last_seen) AS last_seen, (array_agg(data))[1] AS data
    FROM input CROSS JOIN go GROUP BY fingerprint
),
alerts AS (
    INSERT INTO fleet_alerts AS a (fingerprint, count, first_seen, last_seen, data)
    SELECT fingerprint, n, to_timestamp(first_seen), to_timestamp(last_seen), data
    FROM per_alert ORDER BY fingerprint
    ON CONFLICT (fingerprint) DO UPDATE SET
        episode = CASE WHEN a.state = 'resolved' THEN a.episode + 1 ELSE a.episode END,
        count = CASE WHEN a.state = 'resolved' THEN EXCLUDED.count
                     ELSE a.count + EXCLUDED.count END,
        first_seen = CASE WHEN a.state = 'resolved' THEN EXCLUDED.first_seen
                          ELSE least(a.first_seen, EXCLUDED.first_seen) END,
        last_seen = CASE WHEN a.state = 'resolved' THEN EXCLUDED.last_seen
                         ELSE greatest(a.last_seen, EXCLUDED.last_seen) END,
        data = CASE WHEN a.state = 'resolved' THEN EXCLUDED.data ELSE a.data END,
        lifecycle = CASE WHEN a.state = 'resolved' THEN '{}'::jsonb ELSE a.lifecycle END,
        message = CASE WHEN a.state = 'resolved' THEN NULL ELSE a.message END,
        state = CASE WHEN a.state = 'resolved' THEN 'pending' ELSE a.state END,
        updated = now()
    RETURNING fingerprint, episode
),
hosts AS (
    INSERT INTO fleet_alert_hosts AS h (fingerprint, host, episode, count, last_seen)
    SELECT i.fingerprint, i.host, alerts.episode, sum(i.n), to_timestamp(max(i.last_seen))
    FROM input i JOIN alerts USING (fingerprint)
    GROUP BY i.fingerprint, i.host, alerts.episode ORDER BY 1, 2
    ON CONFLICT (fingerprint, host) DO UPDATE SET
        count = CASE WHEN h.episode = EXCLUDED.episode THEN h.count + EXCLUDED.count
                     ELSE EXCLUDED.count END,
        last_seen = CASE WHEN h.episode = EXCLUDED.episode
                         THEN greatest(h.last_seen, EXCLUDED.last_seen)
                         ELSE EXCLUDED.last_seen END,
        episode = EXCLUDED.episode
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM go) AND (SELECT count(*) FROM hosts) >= 0
"""

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
class Contribution:
    """What one host saw of one problem since its last contribution (times: epoch seconds)."""

    fingerprint: str
    host: str
    count_delta: int
    first_seen: float
    last_seen: float
    alert_data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of an alert's announcement state, made by its owner (FleetStore.advance_many)."""

    fingerprint: str
    episode: int
    state: str
    lifecycle: dict[str, Any]
    expect_count: int | None = None  # a resolution: only if no finding came in meanwhile


@dataclass(frozen=True, slots=True)
class HostCount:
    """One host's share of a fleet alert."""

    host: str
    count: int
    last_seen: float


@dataclass(frozen=True, slots=True)
class FleetAlert:
    """An alert as the whole fleet sees it; `owner` holds the Slack message until `lease_until`."""

    fingerprint: str
    count: int
    first_seen: float
    last_seen: float
    hosts: tuple[HostCount, ...]
    data: dict[str, Any]
    owner: str | None
    lease_until: float | None
    message: dict[str, Any] | None
    episode: int = 1
    state: str = "pending"  # pending, open or resolved: written by the owner only
    lifecycle: dict[str, Any] = field(default_factory=dict)  # the owner's announcement state
    host_count: int = 0  # hosts that contributed to this episode (`hosts` may list fewer)

    @property
    def title(self) -> str:
        return str(self.data.get("title") or self.fingerprint)


def describe_dsn(dsn: str) -> str:
    """Where a DSN points (host:port/db), never its password: for messages and logs."""
    try:
        parts = urlsplit(dsn)
        where = f"{parts.hostname or 'localhost'}:{parts.port or 5432}"
    except ValueError:
        return "the fleet store (state.fleet)"
    database = parts.path.lstrip("/")
    return f"{where}/{database}" if database else where


class FleetStore:
    """The shared alert book: a small pool of connections, each statement bounded in time."""

    def __init__(
        self,
        dsn: str,
        *,
        connect_timeout: float = 5.0,
        statement_timeout: float = 5.0,
        max_connections: int = 4,
    ) -> None:
        self._where = describe_dsn(dsn)
        self._dsn = dsn
        self._statement_timeout_ms = max(1, int(statement_timeout * 1000))
        # libpq counts connect_timeout in whole seconds and treats anything under 2 as 2.
        self._connect_timeout = max(2, round(connect_timeout))
        self._kwargs: dict[str, Any] = {
            "connect_timeout": self._connect_timeout,
            "application_name": "oai400d",
        }
        self._pool: ConnectionPool[psycopg.Connection[TupleRow]] = ConnectionPool(
            dsn,
            kwargs=self._kwargs,
            min_size=1,
            max_size=max_connections,
            open=False,
            configure=self._configure,
            # No check= on lending: it costs a round trip before every statement. A connection
            # that broke (the server restarted) fails its statement once, as unreachable, and
            # the pool replaces it; the caller's next round goes through.
            # Waiting for a pooled connection is bounded too: a dead store fails the call fast.
            timeout=float(self._connect_timeout) + 1.0,
            # The pool's background reconnects back off 1, 2, 4 s… without bound; giving up after
            # 10 s lets the next call start again at 1 s, so a store back after a long outage is
            # used again within seconds, not after a backoff of minutes.
            reconnect_timeout=10.0,
            name="oai400d-fleet",
        )

    # -- lifecycle --------------------------------------------------------------------------

    def open(self) -> int:
        """Connect, create or migrate the schema; the number of migrations applied."""
        # One direct connection first: its error (refused, no such database, bad password)
        # says far more than the pool's "no connection within N s".
        applied = self._direct(self._migrate)
        self._pool.open(wait=False)
        return applied

    def close(self) -> None:
        """Close every connection of the pool."""
        self._pool.close()

    def __enter__(self) -> FleetStore:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def schema_version(self) -> int:
        """The schema version the store is at (0: never migrated)."""

        def read(conn: psycopg.Connection[TupleRow]) -> int:
            exists = conn.execute("SELECT to_regclass('fleet_schema_version')").fetchone()
            if exists is None or exists[0] is None:
                return 0
            row = conn.execute("SELECT coalesce(max(version), 0) FROM fleet_schema_version")
            return int(_one(row.fetchone()))

        return self._call(read)

    # -- the alert book ---------------------------------------------------------------------

    def contribute(
        self,
        fingerprint: str,
        host: str,
        count_delta: int,
        first_seen: float,
        last_seen: float,
        alert_data: dict[str, Any] | None = None,
    ) -> None:
        """Add one host's findings of one problem to the fleet's alert (opening it if new)."""
        self.contribute_many(
            [Contribution(fingerprint, host, count_delta, first_seen, last_seen, alert_data or {})]
        )

    def contribute_many(
        self,
        contributions: Sequence[Contribution],
        batch: tuple[str, int] | None = None,
    ) -> bool:
        """Add contributions in ONE statement (all or none); False if `batch` was applied before.

        `batch` is (instance, seq): the sending daemon's id and the number of this batch. The
        store keeps the highest seq applied per instance, so a batch sent again after a lost
        answer or a crash is not counted twice. Contributions to a resolved alert open its next
        episode: count, hosts and announcement state start afresh.
        """
        if not contributions:
            return True
        for c in contributions:
            if c.count_delta < 0:
                raise ValueError(f"count_delta must be >= 0, not {c.count_delta}")
        instance, seq = batch if batch is not None else (None, 0)
        host = contributions[0].host
        # The whole batch as ONE JSON parameter: psycopg quotes a text[] of JSON documents in
        # Python, character by character (30 ms for 500 rows; this: 4 ms).
        rows = json.dumps(
            [
                {
                    "fingerprint": c.fingerprint,
                    "host": c.host,
                    "n": c.count_delta,
                    "first_seen": c.first_seen,
                    "last_seen": c.last_seen,
                    "data": c.alert_data,
                }
                for c in contributions
            ]
        )

        def write(conn: psycopg.Connection[TupleRow]) -> bool:
            row = conn.execute(
                _CONTRIBUTE, {"rows": rows, "instance": instance, "host": host, "seq": seq}
            ).fetchone()
            return bool(_one(row))

        return self._call(write)

    def alert(self, fingerprint: str) -> FleetAlert | None:
        """The fleet-wide view of one alert, or None if no host has contributed to it."""

        def read(conn: psycopg.Connection[TupleRow]) -> FleetAlert | None:
            found = _read_alerts(conn, [fingerprint], hosts_listed=0)
            if not found:
                return None
            hosts = conn.execute(
                """
                SELECT h.host, h.count, extract(epoch FROM h.last_seen)::float8
                FROM fleet_alert_hosts h JOIN fleet_alerts a USING (fingerprint, episode)
                WHERE h.fingerprint = %s ORDER BY h.host
                """,
                (fingerprint,),
            ).fetchall()
            return replace(
                found[0], hosts=tuple(HostCount(h, int(n), float(seen)) for h, n, seen in hosts)
            )

        return self._call(read)

    def alerts(self, fingerprints: Sequence[str], hosts_listed: int = 10) -> list[FleetAlert]:
        """The fleet-wide view of these alerts in one round trip, with the first
        `hosts_listed` host names (by name) and the number of hosts of each."""
        wanted = sorted(set(fingerprints))
        if not wanted:
            return []
        return self._call(lambda conn: _read_alerts(conn, wanted, hosts_listed))

    def open_alerts(self, limit: int = 100) -> list[FleetAlert]:
        """The alerts not resolved, the most recently seen first (`oai400d status`)."""

        def read(conn: psycopg.Connection[TupleRow]) -> list[FleetAlert]:
            rows = conn.execute(
                "SELECT fingerprint FROM fleet_alerts WHERE state <> 'resolved' "
                "ORDER BY last_seen DESC LIMIT %s",
                (limit,),
            ).fetchall()
            found = _read_alerts(conn, [str(r[0]) for r in rows], hosts_listed=10)
            return sorted(found, key=lambda a: -a.last_seen)

        return self._call(read)

    def claim(self, fingerprints: Sequence[str], host: str, ttl: float) -> dict[str, str | None]:
        """Take or renew, in one statement, the message of every unresolved alert here that
        nobody owns, this host owns, or whose owner's lease has expired; also alerts orphaned
        for longer than `ttl` (every host that saw them stopped) so that they still resolve.
        Returns {fingerprint: the owner before} for each alert this host now owns."""
        if ttl <= 0:
            raise ValueError(f"a lease's ttl must be > 0 s, not {ttl}")

        def write(conn: psycopg.Connection[TupleRow]) -> dict[str, str | None]:
            rows = conn.execute(
                _CLAIM, {"fps": sorted(set(fingerprints)), "host": host, "ttl": ttl}
            ).fetchall()
            return {str(r[0]): r[1] for r in rows}

        return self._call(write)

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

        def write(conn: psycopg.Connection[TupleRow]) -> set[str]:
            found = conn.execute(_ADVANCE, {"rows": rows, "host": host}).fetchall()
            return {str(r[0]) for r in found}

        return self._call(write)

    def register(self, instance: str, host: str, within: float = 120.0) -> list[str]:
        """Say that this instance runs as `host` (now); the other instances seen under the same
        host name within `within` s: two daemons that share a name would share leases."""

        def write(conn: psycopg.Connection[TupleRow]) -> list[str]:
            rows = conn.execute(
                """
                WITH me AS (
                    INSERT INTO fleet_instances AS i (instance, host, applied_seq)
                    VALUES (%(instance)s, %(host)s, 0)
                    ON CONFLICT (instance) DO UPDATE SET host = EXCLUDED.host, seen = now()
                    RETURNING instance
                )
                SELECT instance FROM fleet_instances
                WHERE host = %(host)s AND instance <> %(instance)s
                  AND seen > now() - make_interval(secs => %(within)s)
                ORDER BY instance
                """,
                {"instance": instance, "host": host, "within": within},
            ).fetchall()
            return [str(r[0]) for r in rows]

        return self._call(write)

    def prune(self, older_than_days: float = 7.0) -> int:
        """Forget alerts resolved longer ago than this; instances silent, silences ended and
        acknowledgements made more than four times as long ago (as the state DB does, 30
        days at the default); the rows removed."""

        def write(conn: psycopg.Connection[TupleRow]) -> int:
            gone = 0
            with conn.transaction():
                for sql, days in (
                    (
                        "DELETE FROM fleet_alerts WHERE state = 'resolved' "
                        "AND updated < now() - %s * interval '1 day'",
                        older_than_days,
                    ),
                    (
                        "DELETE FROM fleet_instances WHERE seen < now() - %s * interval '1 day'",
                        older_than_days * 4,
                    ),
                    (
                        "DELETE FROM fleet_silences WHERE ends < now() - %s * interval '1 day'",
                        older_than_days * 4,
                    ),
                    (
                        "DELETE FROM fleet_acks WHERE acked_at < now() - %s * interval '1 day'",
                        older_than_days * 4,
                    ),
                ):
                    gone += conn.execute(sql, (days,)).rowcount
            return gone

        return self._call(write)

    # -- who owns the Slack message ---------------------------------------------------------

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

        def write(conn: psycopg.Connection[TupleRow]) -> bool:
            return conn.execute(sql, (*values, fingerprint, host)).fetchone() is not None

        return self._call(write)

    # -- fleet-wide silences and acks -------------------------------------------------------

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

        def write(conn: psycopg.Connection[TupleRow]) -> int:
            row = conn.execute(
                """
                INSERT INTO fleet_silences
                    (fingerprint, category, starts, ends, comment, created_by, via)
                VALUES (%s, %s, to_timestamp(%s), to_timestamp(%s), %s, %s, %s) RETURNING id
                """,
                (fingerprint, category, starts, ends, comment, created_by, via),
            ).fetchone()
            return int(_one(row))

        found = self.silence(self._call(write))
        assert found is not None
        return found

    def silence(self, silence_id: int) -> Silence | None:
        return next((x for x in self.silences() if x.id == silence_id), None)

    def silences(self, after: float | None = None) -> list[Silence]:
        """Fleet-wide silences that end after a time (all of them when None), oldest first."""

        def read(conn: psycopg.Connection[TupleRow]) -> list[Silence]:
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

        return self._call(read)

    def lift_silence(self, silence_id: int, by: str, now: float) -> Silence | None:
        """End a fleet-wide silence now (kept, with who lifted it); None if there is none."""

        def write(conn: psycopg.Connection[TupleRow]) -> None:
            conn.execute(
                "UPDATE fleet_silences SET ends = to_timestamp(%s), removed_by = %s "
                "WHERE id = %s AND ends > to_timestamp(%s)",
                (now, by, silence_id, now),
            )

        self._call(write)
        return self.silence(silence_id)

    def acknowledge(self, ack: Ack) -> None:
        """Record fleet-wide that someone has seen this alert (the latest ack wins)."""

        def write(conn: psycopg.Connection[TupleRow]) -> None:
            conn.execute(
                """
                INSERT INTO fleet_acks VALUES (%s, %s, to_timestamp(%s), %s, %s)
                ON CONFLICT (fingerprint) DO UPDATE SET acked_by = EXCLUDED.acked_by,
                    acked_at = EXCLUDED.acked_at, comment = EXCLUDED.comment, via = EXCLUDED.via
                """,
                (ack.fingerprint, ack.by, ack.at, ack.comment, ack.via),
            )

        self._call(write)

    def acks(self) -> list[Ack]:
        """Every fleet-wide acknowledgement, oldest first."""

        def read(conn: psycopg.Connection[TupleRow]) -> list[Ack]:
            rows = conn.execute(
                """
                SELECT fingerprint, acked_by, extract(epoch FROM acked_at)::float8, comment, via
                FROM fleet_acks ORDER BY acked_at
                """
            ).fetchall()
            return [Ack(r[0], r[1], float(r[2]), r[3], r[4]) for r in rows]

        return self._call(read)

    def claim_action(self, keys: Sequence[str], keep: float = 86400.0) -> bool:
        """Record a Slack press's ids for the whole fleet; False when any was seen before (a
        replay, on this host or another). Ids older than `keep` s are forgotten."""
        wanted = sorted(set(keys))

        def write(conn: psycopg.Connection[TupleRow]) -> bool:
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

        return self._call(write)

    @property
    def where(self) -> str:
        """Where the store is, for people: `the fleet store db:5432/oai400d`."""
        return f"the fleet store {self._where}"

    # -- plumbing ---------------------------------------------------------------------------

    def _configure(self, conn: psycopg.Connection[TupleRow]) -> None:
        """Bound every statement of a new connection in time; autocommit unless in a transaction."""
        conn.autocommit = True
        conn.execute(
            "SELECT set_config('statement_timeout', %s, false),"
            " set_config('idle_in_transaction_session_timeout', %s, false)",
            # A host frozen inside a transaction must not hold row locks for the whole fleet.
            (f"{self._statement_timeout_ms}ms", f"{self._statement_timeout_ms * 4}ms"),
        )

    def _call(self, work: Callable[[psycopg.Connection[TupleRow]], T]) -> T:
        """Run `work` on a pooled connection, translating every psycopg error into ours."""
        try:
            with self._pool.connection() as conn:
                return work(conn)
        except PoolTimeout:
            raise FleetUnavailableError(
                f"the fleet store {self._where} is unreachable: no connection within "
                f"{self._connect_timeout + 1} s; check that PostgreSQL runs and that this host "
                "may connect (pg_hba.conf, firewall); findings are kept locally meanwhile"
            ) from None
        except psycopg.Error as exc:
            raise self._translate(exc) from exc

    def _direct(self, work: Callable[[psycopg.Connection[TupleRow]], T]) -> T:
        """Run `work` on a connection of its own (outside the pool), errors translated."""
        try:
            with psycopg.connect(self._dsn, **self._kwargs) as conn:
                self._configure(conn)
                return work(conn)
        except psycopg.Error as exc:
            raise self._translate(exc) from exc

    def _translate(self, exc: psycopg.Error) -> FleetError:
        """A psycopg error as FleetUnavailableError (retry helps) or FleetStoreError (it cannot)."""
        detail = " ".join(str(exc).split()) or type(exc).__name__
        state = exc.sqlstate or _connect_sqlstate(detail)
        if isinstance(exc, psycopg.errors.QueryCanceled):
            return FleetUnavailableError(
                f"the fleet store {self._where} did not answer within statement_timeout "
                f"({self._statement_timeout_ms} ms): it is overloaded or a lock is held; "
                f"the call can be retried ({detail})"
            )
        if state.startswith(("28", "42501")):  # login refused, or no rights on a table
            return FleetStoreError(
                f"the fleet store {self._where} refused oai400d: {detail}; fix the user, "
                "password or grants in state.fleet (or OAI400D_FLEET_DSN / the fleet-dsn "
                "credential) and in PostgreSQL"
            )
        if state.startswith("3D"):  # no such database
            return FleetStoreError(
                f"the fleet store {self._where} has no such database: {detail}; create it "
                "(createdb) or fix the database name in state.fleet"
            )
        if state.startswith(_RETRYABLE_SQLSTATE_PREFIXES) or (
            isinstance(exc, psycopg.OperationalError) and not state
        ):
            # No SQLSTATE on an OperationalError: the connection itself failed (refused,
            # timed out, dropped), which is what "unreachable" means.
            return FleetUnavailableError(
                f"the fleet store {self._where} is unreachable: {detail}; check that "
                "PostgreSQL runs and that this host may connect (pg_hba.conf, firewall); "
                "the call can be retried"
            )
        return FleetStoreError(
            f"the fleet store {self._where} rejected a statement of oai400d: {detail}; this "
            "is a bug or a schema changed by hand, report it with this message"
        )

    def _migrate(self, conn: psycopg.Connection[TupleRow]) -> int:
        """Bring the schema up to SCHEMA_VERSION in one transaction; migrations applied."""
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute(
                """
                CREATE TABLE IF NOT EXISTS fleet_schema_version (
                    version INTEGER PRIMARY KEY,
                    applied TIMESTAMPTZ NOT NULL DEFAULT now()
                )
                """
            )
            current = int(
                _one(
                    conn.execute(
                        "SELECT coalesce(max(version), 0) FROM fleet_schema_version"
                    ).fetchone()
                )
            )
            if current > SCHEMA_VERSION:
                raise FleetStoreError(
                    f"the fleet store {self._where} has schema version {current}, newer than "
                    f"this oai400d knows ({SCHEMA_VERSION}): another host runs a newer "
                    "oai400d; upgrade this one too"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                conn.execute(MIGRATIONS[version - 1])
                conn.execute("INSERT INTO fleet_schema_version (version) VALUES (%s)", (version,))
            return SCHEMA_VERSION - current


def _read_alerts(
    conn: psycopg.Connection[TupleRow], fingerprints: Sequence[str], hosts_listed: int
) -> list[FleetAlert]:
    """These alerts with the number of their episode's hosts and the first names, by name."""
    rows = conn.execute(
        """
        SELECT a.fingerprint, a.count, extract(epoch FROM a.first_seen)::float8,
               extract(epoch FROM a.last_seen)::float8, a.data, a.owner,
               extract(epoch FROM a.lease_until)::float8, a.message, a.episode, a.state,
               a.lifecycle,
               (SELECT count(*) FROM fleet_alert_hosts h
                WHERE h.fingerprint = a.fingerprint AND h.episode = a.episode),
               ARRAY(SELECT h.host FROM fleet_alert_hosts h
                     WHERE h.fingerprint = a.fingerprint AND h.episode = a.episode
                     ORDER BY h.host LIMIT %s)
        FROM fleet_alerts a WHERE a.fingerprint = ANY(%s::text[]) ORDER BY a.fingerprint
        """,
        (hosts_listed, list(fingerprints)),
    ).fetchall()
    return [
        FleetAlert(
            fingerprint=row[0],
            count=int(row[1]),
            first_seen=float(row[2]),
            last_seen=float(row[3]),
            hosts=tuple(HostCount(name, 0, 0.0) for name in row[12]),
            data=dict(row[4]),
            owner=row[5],
            lease_until=None if row[6] is None else float(row[6]),
            message=None if row[7] is None else dict(row[7]),
            episode=int(row[8]),
            state=str(row[9]),
            lifecycle=dict(row[10]),
            host_count=int(row[11]),
        )
        for row in rows
    ]


def _connect_sqlstate(detail: str) -> str:
    """The SQLSTATE of a refused connection, read from its text (libpq does not carry it)."""
    if "password authentication failed" in detail or "no pg_hba.conf entry" in detail:
        return "28000"
    if "FATAL:" in detail and "database" in detail and "does not exist" in detail:
        return "3D000"
    if "FATAL:" in detail and "role" in detail and "does not exist" in detail:
        return "28000"
    return ""


def _one(row: tuple[Any, ...] | None) -> Any:
    """The single value of a one-row, one-column result."""
    if row is None:
        raise FleetStoreError("the fleet store returned no row where one was expected")
    return row[0]
