"""The SQLite state database: file positions, alerts, the notification outbox, probe results.

Everything a batch changes is written in ONE transaction (`commit`), so after a crash the daemon
resumes exactly where its last batch left it: no line read twice into an alert, none skipped,
no notification lost. WAL mode lets `oai400d status` read while the daemon writes.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from oai400d.errors import StateError
from oai400d.model import (
    Ack,
    Alert,
    FileState,
    FleetDelta,
    JournalPosition,
    Notification,
    Silence,
)

SCHEMA_VERSION = 1
# The target under which the Slack bot's message addresses are kept in `deliveries`: the outbox
# keeps them for the notifier of that name, the fleet sync shares them with the other hosts, and
# the Slack buttons check that a press came from one of them.
SLACK_TARGET = "slack"
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
    delivered REAL
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (delivered, id);
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


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A notification waiting for (or done with) delivery."""

    id: int
    notification: Notification
    attempts: int
    next_attempt: float
    last_error: str | None


@dataclass(frozen=True, slots=True)
class ProbeRecord:
    """The latest result of one probe and its run of failures or successes."""

    name: str
    status: str
    summary: str
    latency_ms: int | None
    checked: float
    failures: int
    successes: int
    data: dict[str, Any]


def _alert_from_row(data: str) -> Alert:
    fields = json.loads(data)
    for key in ("files", "fixes", "docs"):
        fields[key] = tuple(fields[key])
    return Alert(**fields)


class State:
    """One connection to the state DB; use one per thread."""

    def __init__(self, path: str, readonly: bool = False) -> None:
        self.path = path
        try:
            if readonly:
                uri = f"{Path(path).resolve().as_uri()}?mode=ro"
                self._db = sqlite3.connect(uri, uri=True, timeout=10, isolation_level=None)
            else:
                parent = Path(path).parent
                parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(path, timeout=10, isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.executescript(_SCHEMA)
                self._db.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
            self._db.execute("PRAGMA busy_timeout=10000")
        except (sqlite3.Error, OSError) as exc:
            raise StateError(
                f"cannot open the state database {path}: {exc}; check state.path and that the "
                "directory is writable by the oai400d user"
            ) from exc

    def close(self) -> None:
        self._db.close()

    @property
    def where(self) -> str:
        """Where the state is, for people."""
        return self.path

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StateError(f"cannot write the state database {self.path}: {exc}") from exc

    # --- one batch: positions, alerts and new notifications together -------------------------

    def commit(
        self,
        files: Iterable[FileState] = (),
        forget: Iterable[FileState] = (),
        alerts: Iterable[Alert] = (),
        notifications: Iterable[Notification] = (),
        now: float | None = None,
        journals: Iterable[JournalPosition] = (),
        fleet: Iterable[FleetDelta] = (),
    ) -> None:
        """Write a batch in one transaction (with state.fleet: the findings for the store too,
        so a crash can neither lose them nor send them twice)."""
        stamp = time.time() if now is None else now
        with self._transaction() as db:
            # Forgotten files first: a file forgotten and followed again in one batch stays.
            db.executemany(
                "DELETE FROM files WHERE path = ? AND dev = ? AND ino = ?",
                [(f.path, f.dev, f.ino) for f in forget],
            )
            db.executemany(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (f.path, f.dev, f.ino, f.head, f.head_len, f.offset, f.line_no, stamp)
                    for f in files
                ],
            )
            db.executemany(
                "INSERT OR REPLACE INTO journal_cursors VALUES (?, ?, ?, ?)",
                [(j.name, j.cursor, j.skip, stamp) for j in journals],
            )
            db.executemany(
                "INSERT OR REPLACE INTO alerts VALUES (?, ?, ?, ?)",
                [(a.fingerprint, a.state, a.last_seen, json.dumps(asdict(a))) for a in alerts],
            )
            db.executemany(
                "INSERT INTO outbox (fingerprint, kind, payload, created) VALUES (?, ?, ?, ?)",
                [(n.fingerprint, n.kind, json.dumps(n.to_json()), stamp) for n in notifications],
            )
            # Unsent findings (seq 0) of one alert are summed into one row while they wait.
            db.executemany(
                "INSERT INTO fleet_queue VALUES (0, ?, ?, ?, ?, ?) "
                "ON CONFLICT (seq, fingerprint) DO UPDATE SET count = count + excluded.count, "
                "first_seen = min(first_seen, excluded.first_seen), "
                "last_seen = max(last_seen, excluded.last_seen)",
                [
                    (d.fingerprint, d.count, d.first_seen, d.last_seen, json.dumps(d.data))
                    for d in fleet
                ],
            )

    # --- the fleet's queue (state.fleet) ----------------------------------------------------

    def fleet_instance(self) -> str:
        """This state DB's id in the fleet store, made on first use: batch numbers are counted
        per instance, so a host whose state DB was replaced starts a count of its own."""
        with self._transaction() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'fleet_instance'").fetchone()
            if row is not None:
                return str(row[0])
            instance = uuid.uuid4().hex
            db.execute("INSERT INTO meta VALUES ('fleet_instance', ?)", (instance,))
            return instance

    def fleet_batch(self) -> tuple[int, list[FleetDelta]] | None:
        """The next batch for the store, numbered: the one sent before if it was never confirmed
        (sent again with the same number, so the store can tell), else the waiting findings
        under a new number. None when nothing waits."""
        with self._transaction() as db:
            row = db.execute("SELECT min(seq) FROM fleet_queue WHERE seq > 0").fetchone()
            seq = row[0]
            if seq is None:
                if db.execute("SELECT 1 FROM fleet_queue WHERE seq = 0 LIMIT 1").fetchone() is None:
                    return None
                last = db.execute("SELECT value FROM meta WHERE key = 'fleet_seq'").fetchone()
                seq = int(last[0]) + 1 if last is not None else 1
                db.execute("INSERT OR REPLACE INTO meta VALUES ('fleet_seq', ?)", (str(seq),))
                db.execute("UPDATE fleet_queue SET seq = ? WHERE seq = 0", (seq,))
            rows = db.execute(
                "SELECT fingerprint, count, first_seen, last_seen, data FROM fleet_queue "
                "WHERE seq = ? ORDER BY fingerprint",
                (seq,),
            ).fetchall()
        return int(seq), [FleetDelta(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]

    def fleet_sent(self, seq: int) -> None:
        """The store confirmed batch `seq`: forget it."""
        with self._transaction() as db:
            db.execute("DELETE FROM fleet_queue WHERE seq = ?", (seq,))

    def fleet_queued(self) -> int:
        """Findings waiting for the store (0 without state.fleet)."""
        rows = self._rows("SELECT coalesce(sum(count), 0) FROM fleet_queue")
        return int(rows[0][0]) if rows else 0

    # --- reads ------------------------------------------------------------------------------

    def files(self) -> list[FileState]:
        rows = self._db.execute(
            "SELECT path, dev, ino, head, head_len, offset, line_no FROM files ORDER BY path"
        ).fetchall()
        return [FileState(*row) for row in rows]

    def journal_positions(self) -> list[tuple[JournalPosition, float]]:
        """Each `[[journal]]`'s saved cursor, and when it was written."""
        try:
            rows = self._db.execute(
                "SELECT name, cursor, skip, updated FROM journal_cursors ORDER BY name"
            ).fetchall()
        except sqlite3.OperationalError:  # a DB from before journals, opened read-only
            return []
        return [(JournalPosition(row[0], row[1], row[2]), float(row[3])) for row in rows]

    def alerts(self, states: Iterable[str] = ("pending", "open", "backlog")) -> list[Alert]:
        wanted = tuple(states)
        marks = ",".join("?" * len(wanted))
        rows = self._db.execute(
            f"SELECT data FROM alerts WHERE state IN ({marks}) ORDER BY last_seen DESC", wanted
        ).fetchall()
        return [_alert_from_row(row[0]) for row in rows]

    def prune_resolved(self, older_than: float) -> None:
        """Forget resolved alerts and delivered notifications older than a time."""
        with self._transaction() as db:
            db.execute(
                "DELETE FROM alerts WHERE state = 'resolved' AND last_seen < ?", (older_than,)
            )
            db.execute(
                "DELETE FROM outbox WHERE delivered IS NOT NULL AND delivered < ?", (older_than,)
            )

    # --- outbox -----------------------------------------------------------------------------

    def outbox_pending(self, limit: int = 100) -> list[OutboxEntry]:
        """Undelivered notifications, oldest first."""
        rows = self._db.execute(
            "SELECT id, payload, attempts, next_attempt, last_error FROM outbox "
            "WHERE delivered IS NULL ORDER BY id LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            OutboxEntry(row[0], Notification.from_json(json.loads(row[1])), row[2], row[3], row[4])
            for row in rows
        ]

    def outbox_depth(self) -> int:
        row = self._db.execute("SELECT COUNT(*) FROM outbox WHERE delivered IS NULL").fetchone()
        return int(row[0])

    def outbox_oldest(self) -> float | None:
        """When the oldest undelivered notification was queued (None: the outbox is empty)."""
        row = self._db.execute("SELECT MIN(created) FROM outbox WHERE delivered IS NULL").fetchone()
        return None if row[0] is None else float(row[0])

    def alert_counts(self) -> list[tuple[str, str, int]]:
        """(state, severity, count) of the alerts not resolved, without decoding each alert."""
        rows = self._db.execute(
            "SELECT state, json_extract(data, '$.severity'), COUNT(*) FROM alerts "
            "WHERE state != 'resolved' GROUP BY 1, 2"
        ).fetchall()
        return [(str(row[0]), str(row[1]), int(row[2])) for row in rows]

    def delivered(self, entry_id: int, now: float | None = None) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE outbox SET delivered = ?, last_error = NULL WHERE id = ?",
                (time.time() if now is None else now, entry_id),
            )

    def delivery_failed(self, entry_id: int, error: str, next_attempt: float) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt = ? "
                "WHERE id = ?",
                (error, next_attempt, entry_id),
            )

    def delivery_target(self, fingerprint: str, target: str) -> tuple[str, str] | None:
        """The (channel, ts) of the message that stands for an alert in a target, if any."""
        row = self._db.execute(
            "SELECT channel, ts FROM deliveries WHERE fingerprint = ? AND target = ?",
            (fingerprint, target),
        ).fetchone()
        return None if row is None else (row[0], row[1])

    def remember_delivery(self, fingerprint: str, target: str, channel: str, ts: str) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO deliveries VALUES (?, ?, ?, ?)",
                (fingerprint, target, channel, ts),
            )

    def forget_delivery(self, fingerprint: str, target: str) -> None:
        with self._transaction() as db:
            db.execute(
                "DELETE FROM deliveries WHERE fingerprint = ? AND target = ?", (fingerprint, target)
            )

    def delivery_targets(self, keys: Iterable[str], target: str) -> dict[str, tuple[str, str]]:
        """The stored (channel, ts) of each of these keys that has one, in one query."""
        wanted = list(keys)
        marks = ",".join("?" * len(wanted))
        rows = self._db.execute(
            f"SELECT fingerprint, channel, ts FROM deliveries WHERE target = ? "
            f"AND fingerprint IN ({marks})",
            (target, *wanted),
        ).fetchall()
        return {str(row[0]): (str(row[1]), str(row[2])) for row in rows}

    def remember_delivery_once(self, key: str, target: str, channel: str, ts: str) -> None:
        """Like remember_delivery, but a key that has a row keeps it (an attempt's mark keeps
        the time of the first attempt)."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO deliveries VALUES (?, ?, ?, ?)", (key, target, channel, ts)
            )

    def record_delivery(
        self,
        entry_ids: Iterable[int],
        target: str,
        remember: Mapping[str, tuple[str, str]],
        forget: Iterable[str] = (),
        now: float | None = None,
    ) -> None:
        """Outbox entries delivered, with what their delivery left ((channel, ts) by key) and the
        keys it made useless, in one transaction: a crash keeps all of it or none."""
        stamp = time.time() if now is None else now
        with self._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO deliveries VALUES (?, ?, ?, ?)",
                [(key, target, channel, ts) for key, (channel, ts) in remember.items()],
            )
            db.executemany(
                "DELETE FROM deliveries WHERE fingerprint = ? AND target = ?",
                [(key, target) for key in forget],
            )
            db.executemany(
                "UPDATE outbox SET delivered = ?, last_error = NULL WHERE id = ?",
                [(stamp, entry_id) for entry_id in entry_ids],
            )

    # --- probes -----------------------------------------------------------------------------

    def save_probe(self, record: ProbeRecord) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO probes VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.name,
                    record.status,
                    record.summary,
                    record.latency_ms,
                    record.checked,
                    record.failures,
                    record.successes,
                    json.dumps(record.data),
                ),
            )

    def probes(self) -> list[ProbeRecord]:
        rows = self._db.execute(
            "SELECT name, status, summary, latency_ms, checked, failures, successes, data "
            "FROM probes ORDER BY name"
        ).fetchall()
        return [
            ProbeRecord(row[0], row[1], row[2], row[3], row[4], row[5], row[6], json.loads(row[7]))
            for row in rows
        ]

    # --- meta -------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # --- silences and acknowledgements (written by the CLI and Slack, read by the daemon) --

    def data_version(self) -> int:
        """Changes whenever another connection commits: the daemon's cheap "look again" signal."""
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def alert(self, fingerprint: str) -> Alert | None:
        """The alert with this fingerprint in any state (resolved ones until pruned)."""
        row = self._db.execute(
            "SELECT data FROM alerts WHERE fingerprint = ?", (fingerprint,)
        ).fetchone()
        return None if row is None else _alert_from_row(row[0])

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
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO silences (fingerprint, category, starts, ends, comment, created_by, "
                "created, via) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (fingerprint, category, starts, ends, comment, created_by, time.time(), via),
            )
            silence_id = int(cursor.lastrowid or 0)
        found = self.silence(silence_id)
        assert found is not None
        return found

    def silence(self, silence_id: int) -> Silence | None:
        rows = self._rows(f"SELECT {_SILENCE_COLUMNS} FROM silences WHERE id = ?", (silence_id,))
        return Silence(*rows[0]) if rows else None

    def silences(self, after: float | None = None) -> list[Silence]:
        """Silences that end after a time (all of them when None), oldest first."""
        rows = self._rows(
            f"SELECT {_SILENCE_COLUMNS} FROM silences WHERE ends > ? ORDER BY id",
            (float("-inf") if after is None else after,),
        )
        return [Silence(*row) for row in rows]

    def lift_silence(self, silence_id: int, by: str, now: float) -> Silence | None:
        """End a silence now (kept, with who lifted it); None if there is no such silence."""
        with self._transaction() as db:
            db.execute(
                "UPDATE silences SET ends = ?, removed_by = ? WHERE id = ? AND ends > ?",
                (now, by, silence_id, now),
            )
        return self.silence(silence_id)

    def acknowledge(self, ack: Ack) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO acks VALUES (?, ?, ?, ?, ?)",
                (ack.fingerprint, ack.by, ack.at, ack.comment, ack.via),
            )

    def acks(self) -> list[Ack]:
        rows = self._rows(
            "SELECT fingerprint, acked_by, acked_at, comment, via FROM acks ORDER BY acked_at"
        )
        return [Ack(*row) for row in rows]

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of a table that a read-only look at a DB of an older version may not have."""
        try:
            return list(self._db.execute(sql, params).fetchall())
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise StateError(f"cannot read the state database {self.path}: {exc}") from exc

    # --- Slack button presses (Socket Mode) ------------------------------------------------

    def deliveries_of(self, fingerprint: str, target: str) -> list[tuple[str, str]]:
        """(channel, ts) of every stored message of an alert's episodes in a target."""
        rows = self._db.execute(
            "SELECT channel, ts FROM deliveries WHERE target = ? AND "
            "(fingerprint = ? OR substr(fingerprint, 1, ?) = ?)",
            (target, fingerprint, len(fingerprint) + 1, fingerprint + "@"),
        ).fetchall()
        return [(str(row[0]), str(row[1])) for row in rows]

    def claim_action(self, keys: Iterable[str], now: float, keep: float = 86400.0) -> bool:
        """Record a Slack action's ids; False when any was seen before (a replay). Ids older
        than `keep` are forgotten, in the same transaction."""
        wanted = list(keys)
        with self._transaction() as db:
            db.execute("DELETE FROM slack_actions WHERE seen < ?", (now - keep,))
            marks = ",".join("?" * len(wanted))
            seen = db.execute(
                f"SELECT COUNT(*) FROM slack_actions WHERE key IN ({marks})", wanted
            ).fetchone()[0]
            if seen:
                return False
            db.executemany("INSERT INTO slack_actions VALUES (?, ?)", [(k, now) for k in wanted])
        return True

    def prune_mutes(self, older_than: float) -> None:
        """Forget silences that ended and acknowledgements made before a time."""
        with self._transaction() as db:
            db.execute("DELETE FROM silences WHERE ends < ?", (older_than,))
            db.execute("DELETE FROM acks WHERE acked_at < ?", (older_than,))


_SILENCE_COLUMNS = (
    "id, fingerprint, category, starts, ends, comment, created_by, created, via, removed_by"
)
