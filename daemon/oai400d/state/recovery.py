"""A damaged state DB (or a file that is not one) set aside, and what went with it.

The file is never deleted: it is renamed, with its -wal and -shm, to
`<path>.damaged-<UTC time>` (SQLite still finds the WAL beside it under the new name, for a
post-mortem or `sqlite3 … .recover`). What it held that a fresh DB will not have (open alerts,
queued notifications, silences) is read from it as far as it can be read, so that the one
notification about it can say what was lost, or "unknown".
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from oai400d.model import Notification
from oai400d.timestamps import iso

DAMAGED_SUFFIX = ".damaged-"
MAX_TITLES = 5  # the open alerts named in the notification; the rest are counted
CATEGORY = "oai400d.state_damaged"  # the notification's category (not an OpenAI error's)


@dataclass(frozen=True, slots=True)
class Lost:
    """What a set-aside DB held that a fresh one does not; None where it could not be read."""

    open_alerts: tuple[str, ...] | None  # the titles of its pending and open alerts
    queued: int | None  # notifications not yet delivered
    silences: int | None  # silences not yet ended

    def describe(self, alerts_kept: bool) -> str:
        """`open alerts: 2 (Invalid API key; Rate limit); queued notifications: 1; …`"""
        if alerts_kept:
            alerts = "open alerts: none (the daemon had every alert in memory)"
        elif self.open_alerts is None:
            alerts = "open alerts: unknown (unreadable)"
        else:
            names = "; ".join(self.open_alerts[:MAX_TITLES])
            more = len(self.open_alerts) - MAX_TITLES
            names += f"; and {more} more" if more > 0 else ""
            alerts = f"open alerts: {len(self.open_alerts)}" + (f" ({names})" if names else "")
        queued = f"queued notifications: {_count(self.queued)}"
        return "; ".join([alerts, queued, f"silences: {_count(self.silences)}"])


@dataclass(frozen=True, slots=True)
class Recovery:
    """A damaged state DB at `path` moved to `moved_to` at `at`, because of `cause`."""

    path: str
    moved_to: str
    cause: str
    lost: Lost
    at: float
    not_a_database: bool = False

    def notice(self, host: str, alerts_kept: bool = False) -> Notification:
        """The one notification that tells what happened, what was lost and where the file is.
        `alerts_kept`: found while running, the daemon wrote every alert it had to the new DB."""
        what = "is not a SQLite database" if self.not_a_database else "was damaged"
        lost = self.lost.describe(alerts_kept)
        return Notification(
            kind="opened",
            fingerprint=f"state-damaged:{Path(self.moved_to).name}",
            category=CATEGORY,
            severity="warning",
            title=f"oai400d's state database {what}; a fresh one was started"[:150],
            count=1,
            first_seen=iso(self.at),
            last_seen=iso(self.at),
            files=(self.moved_to,),
            fixes=(
                f"Nothing is needed for monitoring to go on; the old file is kept at "
                f"{self.moved_to} (delete it when done with it).",
                f"Look for what damaged it: the disk of {Path(self.path).parent} (dmesg, "
                "smartctl), another program writing state.path, a copy taken while running.",
                "Re-create the silences that were lost (`oai400d silence …`).",
            ),
            docs=(),
            excerpt=self.cause,
            message=(
                f"The state database {self.path} {what} ({self.cause}). It was moved aside to "
                f"{self.moved_to} and a fresh state database was started: every followed file "
                f"is read from its end on (no replay). Lost with it: {lost}."
            ),
            host=host,
        )


def set_aside(path: str, cause: str, now: float, not_a_database: bool = False) -> Recovery:
    """Rename the DB at `path` (closed by the caller) and its -wal and -shm to
    `<path>.damaged-<UTC time>`; read what it held as far as it can be read."""
    stamp = iso(now).replace("-", "").replace(":", "")  # 20261125T100001Z
    moved = f"{path}{DAMAGED_SUFFIX}{stamp}"
    tries = 1
    while os.path.lexists(moved):  # set aside twice in one second: keep both
        tries += 1
        moved = f"{path}{DAMAGED_SUFFIX}{stamp}-{tries}"
    for suffix in ("-wal", "-shm", ""):  # the main file last: its name is what shows it was done
        if os.path.lexists(path + suffix):
            os.replace(path + suffix, moved + suffix)
    return Recovery(path, moved, cause, read_lost(moved, now), now, not_a_database)


def read_lost(path: str, now: float) -> Lost:
    """What the DB at `path` held at `now` that matters to people, each part None if
    unreadable."""
    try:
        db = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, timeout=1)
    except sqlite3.Error:
        return Lost(None, None, None)
    try:
        return Lost(_open_alert_titles(db), _scalar(db, _QUEUED), _scalar(db, _SILENCES, (now,)))
    finally:
        db.close()


_OPEN = "SELECT data FROM alerts WHERE state IN ('pending', 'open') ORDER BY last_seen DESC"
_QUEUED = "SELECT count(*) FROM outbox WHERE delivered IS NULL"
_SILENCES = "SELECT count(*) FROM silences WHERE removed_by IS NULL AND ends > ?"


def _open_alert_titles(db: sqlite3.Connection) -> tuple[str, ...] | None:
    try:
        rows = db.execute(_OPEN).fetchall()
    except sqlite3.Error:
        return None
    titles = []
    for (data,) in rows:
        try:
            titles.append(str(json.loads(data).get("title") or "untitled"))
        except (ValueError, AttributeError):
            titles.append("unreadable")
    return tuple(titles)


def _scalar(db: sqlite3.Connection, sql: str, params: tuple[float, ...] = ()) -> int | None:
    try:
        row = db.execute(sql, params).fetchone()
    except sqlite3.Error:
        return None
    return int(row[0]) if row is not None else None


def _count(value: int | None) -> str:
    return "unknown (unreadable)" if value is None else str(value)
