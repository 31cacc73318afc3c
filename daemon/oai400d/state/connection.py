"""The state DB's one SQLite connection: opening it (WAL, the schema), its transactions, and
reads that a DB of an older version, opened read-only, may not be able to answer.

Every table group of a State (positions, alerts, outbox, deliveries, probes, mutes, the fleet's
queue, meta: each a TableGroup) shares one of these, so a batch that spans groups is still ONE
transaction.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from oai400d.errors import StateDamagedError, StateError
from oai400d.state.faults import fault_of, translate

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT NOT NULL, dev INTEGER NOT NULL, ino INTEGER NOT NULL,
    head TEXT NOT NULL, head_len INTEGER NOT NULL,
    offset INTEGER NOT NULL, line_no INTEGER NOT NULL, updated REAL NOT NULL,
    PRIMARY KEY (path, dev, ino)
);
CREATE TABLE IF NOT EXISTS alerts (
    fingerprint TEXT PRIMARY KEY, state TEXT NOT NULL, last_seen REAL NOT NULL, data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_state ON alerts (state);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint TEXT NOT NULL, kind TEXT NOT NULL, payload TEXT NOT NULL,
    created REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL DEFAULT 0, last_error TEXT,
    delivered REAL, parked TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (delivered, id);
CREATE TABLE IF NOT EXISTS targets (
    name TEXT PRIMARY KEY, min_severity TEXT NOT NULL, categories TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox_targets (
    entry INTEGER NOT NULL, target TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt REAL NOT NULL DEFAULT 0,
    last_error TEXT, delivered REAL, parked TEXT,
    PRIMARY KEY (target, entry)
);
CREATE INDEX IF NOT EXISTS outbox_targets_pending ON outbox_targets (target, delivered, entry);
CREATE INDEX IF NOT EXISTS outbox_targets_entry ON outbox_targets (entry);
CREATE TABLE IF NOT EXISTS deliveries (
    fingerprint TEXT NOT NULL, target TEXT NOT NULL, channel TEXT NOT NULL, ts TEXT NOT NULL,
    PRIMARY KEY (fingerprint, target)
);
CREATE TABLE IF NOT EXISTS journal_cursors (
    name TEXT PRIMARY KEY, cursor TEXT NOT NULL, skip INTEGER NOT NULL, updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS probes (
    name TEXT PRIMARY KEY, status TEXT NOT NULL, summary TEXT NOT NULL, latency_ms INTEGER,
    checked REAL NOT NULL, failures INTEGER NOT NULL, successes INTEGER NOT NULL, data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS silences (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint TEXT, category TEXT,
    starts REAL NOT NULL, ends REAL NOT NULL, comment TEXT NOT NULL,
    created_by TEXT NOT NULL, created REAL NOT NULL, via TEXT NOT NULL, removed_by TEXT,
    CHECK ((fingerprint IS NULL) <> (category IS NULL))
);
CREATE INDEX IF NOT EXISTS silences_ends ON silences (ends);
CREATE TABLE IF NOT EXISTS acks (
    fingerprint TEXT PRIMARY KEY, acked_by TEXT NOT NULL, acked_at REAL NOT NULL,
    comment TEXT NOT NULL, via TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS slack_actions (key TEXT PRIMARY KEY, seen REAL NOT NULL);
CREATE TABLE IF NOT EXISTS fleet_queue (
    seq INTEGER NOT NULL, fingerprint TEXT NOT NULL, count INTEGER NOT NULL,
    first_seen REAL NOT NULL, last_seen REAL NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (seq, fingerprint)
);
"""
# Columns added to a table after its first release: (table, column, type), added to a DB made
# before them when it is opened for writing (SQLite's ADD COLUMN keeps every row).
_ADDED_COLUMNS = (("outbox", "parked", "TEXT"),)


class StateConnection:
    """One connection to the state DB, opened read-write (schema created) or read-only.

    `check`: run SQLite's quick_check first, so that a damaged DB is found at start-up (as
    StateDamagedError) rather than by whichever write first reaches the damaged page. SQLite's
    errors come out as StateError, StateDamagedError or StateFullError (state/faults.py)."""

    def __init__(self, path: str, readonly: bool = False, check: bool = False) -> None:
        self.path = path
        self.sqlite: sqlite3.Connection | None = None
        try:
            if readonly:
                uri = f"{Path(path).resolve().as_uri()}?mode=ro"
                self.sqlite = sqlite3.connect(uri, uri=True, timeout=10, isolation_level=None)
            else:
                parent = Path(path).parent
                parent.mkdir(parents=True, exist_ok=True)
                self.sqlite = sqlite3.connect(path, timeout=10, isolation_level=None)
                if check:
                    _quick_check(self.sqlite, path)
                self.sqlite.execute("PRAGMA journal_mode=WAL")
                self.sqlite.execute("PRAGMA synchronous=NORMAL")
                self.sqlite.executescript(_SCHEMA)
                self._add_columns()
                self.sqlite.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
            self.sqlite.execute("PRAGMA busy_timeout=10000")
        except (sqlite3.Error, OSError, StateError) as exc:
            if self.sqlite is not None:
                self.sqlite.close()  # the file may be moved aside next: let go of it now
            if isinstance(exc, StateError):
                raise
            raise translate(exc, path, "open") from exc

    def close(self) -> None:
        if self.sqlite is not None:
            self.sqlite.close()

    @property
    def db(self) -> sqlite3.Connection:
        assert self.sqlite is not None, "the connection failed to open"
        return self.sqlite

    def _add_columns(self) -> None:
        """The columns a DB of an older release lacks (in one transaction: two processes that
        open it at once cannot both add one)."""
        with self.transaction() as db:
            for table, column, kind in _ADDED_COLUMNS:
                known = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
                if column not in known:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT, rolled back on any error; SQLite's errors as StateError
        (StateFullError when the disk is full: nothing of the transaction was written)."""
        db = self.db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                # After SQLITE_FULL (and some I/O errors) SQLite has rolled back already; a
                # second ROLLBACK would fail and hide the error that matters.
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except (sqlite3.Error, OSError) as exc:
            raise translate(exc, self.path, "write") from exc

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        """A read of a table every version of the DB has (a damaged DB or a full disk raise
        StateDamagedError or StateFullError; SQLite's other errors are the caller's)."""
        try:
            return self.db.execute(sql, params)
        except sqlite3.Error as exc:
            if fault_of(exc) is None:
                raise
            raise translate(exc, self.path, "read") from exc

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of a table (or column) that a read-only look at a DB of an older version may
        not have."""
        try:
            return list(self.db.execute(sql, params).fetchall())
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc) or "no such column" in str(exc):
                return []
            raise translate(exc, self.path, "read") from exc
        except sqlite3.Error as exc:
            raise translate(exc, self.path, "read") from exc


def _quick_check(db: sqlite3.Connection, path: str) -> None:
    """Raise StateDamagedError unless SQLite's quick_check finds the file sound (it reads every
    page once: milliseconds for a state DB, which keeps no history beyond its pruning)."""
    rows = db.execute("PRAGMA quick_check").fetchall()
    if rows != [("ok",)]:
        found = "; ".join(str(row[0]) for row in rows[:3])
        raise StateDamagedError(
            f"the state database {path} is damaged (quick_check: {found}); `oai400d run` "
            "moves it aside and starts a fresh one"
        )


class TableGroup:
    """A group of tables on a connection it shares with the other groups. State is all the
    groups on one connection; each group also works alone, on a connection of its own."""

    def __init__(self, connection: StateConnection, clock: Callable[[], float] = time.time) -> None:
        self._connection = connection
        self._clock = clock  # stamps what a caller does not date itself


class Meta(TableGroup):
    """The `meta` table: small named values (the schema version, probe successes, …)."""

    def get_meta(self, key: str) -> str | None:
        row = self._connection.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._connection.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
