"""The fleet's shared alert book on PostgreSQL (`state.fleet`): one alert per problem, many hosts.

Each daemon uses it from one thread of its own (fleetsync.FleetSync); the CLI's mute commands
and the Slack buttons (notify/socket_mode) use it for fleet-wide silences and acknowledgements.

One small class per job, on one pool of connections (connection.FleetConnection: every
statement bounded by `statement_timeout`, every connection attempt by `connect_timeout`, all
psycopg errors translated there): the schema and its migrations (schema), the alert book that
hosts contribute to (book.FleetBook), who owns each alert's Slack message (leases.Leases), and
fleet-wide silences, acknowledgements and button presses (mutes). FleetStore is all the parts
on one pool: it opens the store, keeps the hosts' registry and prunes across the tables.
"""

from __future__ import annotations

from oai400d.fleet.book import Contribution, FleetAlert, FleetBook, HostCount
from oai400d.fleet.connection import Connection, FleetConnection, describe_dsn
from oai400d.fleet.leases import Leases, Transition
from oai400d.fleet.mutes import FleetMutes, FleetPresses
from oai400d.fleet.schema import MIGRATIONS, SCHEMA_VERSION, migrate, schema_version

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Contribution",
    "FleetAlert",
    "FleetStore",
    "HostCount",
    "Transition",
    "describe_dsn",
]


# Each base is one part with methods of its own (tests/test_layers.py checks that no two
# define the same name); FleetStore opens their pool, keeps the hosts' registry and prunes.
class FleetStore(FleetBook, Leases, FleetMutes, FleetPresses):
    """The shared alert book: a small pool of connections, each statement bounded in time."""

    def __init__(
        self,
        dsn: str,
        *,
        connect_timeout: float = 5.0,
        statement_timeout: float = 5.0,
        max_connections: int = 4,
    ) -> None:
        super().__init__(FleetConnection(dsn, connect_timeout, statement_timeout, max_connections))

    @property
    def where(self) -> str:
        """Where the store is, for people: `the fleet store db:5432/oai400d`."""
        return f"the fleet store {self._connection.where}"

    # -- lifecycle --------------------------------------------------------------------------

    def open(self) -> int:
        """Connect, create or migrate the schema; the number of migrations applied."""
        # One direct connection first: its error (refused, no such database, bad password)
        # says far more than the pool's "no connection within N s".
        where = self._connection.where
        applied = self._connection.direct(lambda conn: migrate(conn, where))
        self._connection.open()
        return applied

    def close(self) -> None:
        """Close every connection of the pool."""
        self._connection.close()

    def __enter__(self) -> FleetStore:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def schema_version(self) -> int:
        """The schema version the store is at (0: never migrated)."""
        return self._connection.call(schema_version)

    # -- the hosts, and housekeeping across the tables --------------------------------------

    def register(self, instance: str, host: str, within: float = 120.0) -> list[str]:
        """Say that this instance runs as `host` (now); the other instances seen under the same
        host name within `within` s: two daemons that share a name would share leases."""

        def write(conn: Connection) -> list[str]:
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

        return self._connection.call(write)

    def prune(self, older_than_days: float = 7.0) -> int:
        """Forget alerts resolved longer ago than this; instances silent, silences ended and
        acknowledgements made more than four times as long ago (as the state DB does, 30
        days at the default); the rows removed."""

        def write(conn: Connection) -> int:
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

        return self._connection.call(write)
