"""Where each followed file and journal was read up to: the `files` and `journal_cursors` tables.

Written only as part of a batch (State.commit), in the same transaction as the alerts and
notifications those lines made: after a crash no line is read twice into an alert, none skipped.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from oai400d.model import FileState, JournalPosition
from oai400d.state.connection import TableGroup


class Positions(TableGroup):
    """Files' offsets (by path, device and inode) and journals' cursors."""

    def files(self) -> list[FileState]:
        rows = self._connection.execute(
            "SELECT path, dev, ino, head, head_len, offset, line_no FROM files ORDER BY path"
        ).fetchall()
        return [FileState(*row) for row in rows]

    def journal_positions(self) -> list[tuple[JournalPosition, float]]:
        """Each `[[journal]]`'s saved cursor, and when it was written."""
        try:
            rows = self._connection.execute(
                "SELECT name, cursor, skip, updated FROM journal_cursors ORDER BY name"
            ).fetchall()
        except sqlite3.OperationalError:  # a DB from before journals, opened read-only
            return []
        return [(JournalPosition(row[0], row[1], row[2]), float(row[3])) for row in rows]

    @staticmethod
    def _write_positions(
        db: sqlite3.Connection,
        files: Iterable[FileState],
        forget: Iterable[FileState],
        journals: Iterable[JournalPosition],
        stamp: float,
    ) -> None:
        """A batch's positions, inside its transaction (`db`)."""
        # Forgotten files first: a file forgotten and followed again in one batch stays.
        db.executemany(
            "DELETE FROM files WHERE path = ? AND dev = ? AND ino = ?",
            [(f.path, f.dev, f.ino) for f in forget],
        )
        db.executemany(
            "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(f.path, f.dev, f.ino, f.head, f.head_len, f.offset, f.line_no, stamp) for f in files],
        )
        db.executemany(
            "INSERT OR REPLACE INTO journal_cursors VALUES (?, ?, ?, ?)",
            [(j.name, j.cursor, j.skip, stamp) for j in journals],
        )
