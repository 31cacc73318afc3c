"""The fleet store's schema: its migrations, applied in order, each once, by whichever host
opens the store first (hosts starting together take turns on an advisory lock)."""

from __future__ import annotations

from oai400d.errors import FleetStoreError
from oai400d.fleet.connection import Connection, one

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


def migrate(conn: Connection, where: str) -> int:
    """Bring the schema up to SCHEMA_VERSION in one transaction; migrations applied. `where`
    names the store in the error of a schema newer than this oai400d."""
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
            one(
                conn.execute(
                    "SELECT coalesce(max(version), 0) FROM fleet_schema_version"
                ).fetchone()
            )
        )
        if current > SCHEMA_VERSION:
            raise FleetStoreError(
                f"the fleet store {where} has schema version {current}, newer than "
                f"this oai400d knows ({SCHEMA_VERSION}): another host runs a newer "
                "oai400d; upgrade this one too"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            conn.execute(MIGRATIONS[version - 1])
            conn.execute("INSERT INTO fleet_schema_version (version) VALUES (%s)", (version,))
        return SCHEMA_VERSION - current


def schema_version(conn: Connection) -> int:
    """The schema version the store is at (0: never migrated)."""
    exists = conn.execute("SELECT to_regclass('fleet_schema_version')").fetchone()
    if exists is None or exists[0] is None:
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) FROM fleet_schema_version")
    return int(one(row.fetchone()))
