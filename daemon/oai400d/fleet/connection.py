"""The fleet store's connections: a small pool, each statement bounded in time, and every
psycopg error translated here into FleetUnavailableError (retry later) or FleetStoreError (a
person must act).

Every part of a FleetStore (the alert book, the leases, the mutes) runs its statements through
one of these (`call`); opening the store uses a direct connection first (`direct`), whose error
says far more than the pool's "no connection within N s".
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeAlias, TypeVar
from urllib.parse import urlsplit

import psycopg
import psycopg.errors
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool, PoolTimeout

from oai400d.errors import FleetError, FleetStoreError, FleetUnavailableError

# Connection-level problems (class 08), timeouts and cancels (57014), lock and serialization
# conflicts (40xxx, 55P03), a server shutting down or short of resources (53xxx, 57P0x): the
# same call can succeed later.
_RETRYABLE_SQLSTATE_PREFIXES = ("08", "40", "53", "55P03", "57")

T = TypeVar("T")
Connection: TypeAlias = psycopg.Connection[TupleRow]

# The pool logs every failed reconnection attempt; FleetSync reports an outage once, saying what
# to do, so the pool's own account of it is only wanted when something unexpected goes wrong.
logging.getLogger("psycopg.pool").setLevel(logging.ERROR)


def describe_dsn(dsn: str) -> str:
    """Where a DSN points (host:port/db), never its password: for messages and logs."""
    try:
        parts = urlsplit(dsn)
        where = f"{parts.hostname or 'localhost'}:{parts.port or 5432}"
    except ValueError:
        return "the fleet store (state.fleet)"
    database = parts.path.lstrip("/")
    return f"{where}/{database}" if database else where


class FleetConnection:
    """A pool of connections to the store (opened by `open`), errors in our terms."""

    def __init__(
        self, dsn: str, connect_timeout: float, statement_timeout: float, max_connections: int
    ) -> None:
        self.where = describe_dsn(dsn)  # host:port/db, for messages
        self._dsn = dsn
        self._statement_timeout_ms = max(1, int(statement_timeout * 1000))
        # libpq counts connect_timeout in whole seconds and treats anything under 2 as 2.
        self._connect_timeout = max(2, round(connect_timeout))
        self._kwargs: dict[str, Any] = {
            "connect_timeout": self._connect_timeout,
            "application_name": "oai400d",
        }
        self._pool: ConnectionPool[Connection] = ConnectionPool(
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

    def open(self) -> None:
        """Start filling the pool (in the background: a call waits for its connection)."""
        self._pool.open(wait=False)

    def close(self) -> None:
        """Close every connection of the pool."""
        self._pool.close()

    def call(self, work: Callable[[Connection], T]) -> T:
        """Run `work` on a pooled connection, translating every psycopg error into ours."""
        try:
            with self._pool.connection() as conn:
                return work(conn)
        except PoolTimeout:
            raise FleetUnavailableError(
                f"the fleet store {self.where} is unreachable: no connection within "
                f"{self._connect_timeout + 1} s; check that PostgreSQL runs and that this host "
                "may connect (pg_hba.conf, firewall); findings are kept locally meanwhile"
            ) from None
        except psycopg.Error as exc:
            raise self._translate(exc) from exc

    def direct(self, work: Callable[[Connection], T]) -> T:
        """Run `work` on a connection of its own (outside the pool), errors translated."""
        try:
            with psycopg.connect(self._dsn, **self._kwargs) as conn:
                self._configure(conn)
                return work(conn)
        except psycopg.Error as exc:
            raise self._translate(exc) from exc

    def _configure(self, conn: Connection) -> None:
        """Bound every statement of a new connection in time; autocommit unless in a transaction."""
        conn.autocommit = True
        conn.execute(
            "SELECT set_config('statement_timeout', %s, false),"
            " set_config('idle_in_transaction_session_timeout', %s, false)",
            # A host frozen inside a transaction must not hold row locks for the whole fleet.
            (f"{self._statement_timeout_ms}ms", f"{self._statement_timeout_ms * 4}ms"),
        )

    def _translate(self, exc: psycopg.Error) -> FleetError:
        """A psycopg error as FleetUnavailableError (retry helps) or FleetStoreError (it cannot)."""
        detail = " ".join(str(exc).split()) or type(exc).__name__
        state = exc.sqlstate or _connect_sqlstate(detail)
        if isinstance(exc, psycopg.errors.QueryCanceled):
            return FleetUnavailableError(
                f"the fleet store {self.where} did not answer within statement_timeout "
                f"({self._statement_timeout_ms} ms): it is overloaded or a lock is held; "
                f"the call can be retried ({detail})"
            )
        if state.startswith(("28", "42501")):  # login refused, or no rights on a table
            return FleetStoreError(
                f"the fleet store {self.where} refused oai400d: {detail}; fix the user, "
                "password or grants in state.fleet (or OAI400D_FLEET_DSN / the fleet-dsn "
                "credential) and in PostgreSQL"
            )
        if state.startswith("3D"):  # no such database
            return FleetStoreError(
                f"the fleet store {self.where} has no such database: {detail}; create it "
                "(createdb) or fix the database name in state.fleet"
            )
        if state.startswith(_RETRYABLE_SQLSTATE_PREFIXES) or (
            isinstance(exc, psycopg.OperationalError) and not state
        ):
            # No SQLSTATE on an OperationalError: the connection itself failed (refused,
            # timed out, dropped), which is what "unreachable" means.
            return FleetUnavailableError(
                f"the fleet store {self.where} is unreachable: {detail}; check that "
                "PostgreSQL runs and that this host may connect (pg_hba.conf, firewall); "
                "the call can be retried"
            )
        return FleetStoreError(
            f"the fleet store {self.where} rejected a statement of oai400d: {detail}; this "
            "is a bug or a schema changed by hand, report it with this message"
        )


class StorePart:
    """A part of the store on a pool it shares with the other parts. FleetStore is all the parts
    on one pool; each part also works alone, on a pool of its own."""

    def __init__(self, connection: FleetConnection) -> None:
        self._connection = connection


def _connect_sqlstate(detail: str) -> str:
    """The SQLSTATE of a refused connection, read from its text (libpq does not carry it)."""
    if "password authentication failed" in detail or "no pg_hba.conf entry" in detail:
        return "28000"
    if "FATAL:" in detail and "database" in detail and "does not exist" in detail:
        return "3D000"
    if "FATAL:" in detail and "role" in detail and "does not exist" in detail:
        return "28000"
    return ""


def one(row: tuple[Any, ...] | None) -> Any:
    """The single value of a one-row, one-column result."""
    if row is None:
        raise FleetStoreError("the fleet store returned no row where one was expected")
    return row[0]
