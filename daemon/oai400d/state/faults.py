"""What went wrong with the state DB, told apart: a damaged file (or one that is not a SQLite
database at all), a full disk, or anything else.

The daemon survives the first two (a damaged DB is set aside and a fresh one started,
state/recovery.py; a full disk holds the batch in memory and retries it), so each becomes an
error of its own (errors.StateDamagedError, errors.StateFullError) with a message that names the
real cause, never a guess about permissions.
"""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path
from typing import Literal

from oai400d.errors import StateDamagedError, StateError, StateFullError

# SQLite's primary result codes (the low byte of an extended code, sqlite3.Error.sqlite_errorcode)
SQLITE_CORRUPT = 11
SQLITE_FULL = 13
SQLITE_NOTADB = 26
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)

Fault = Literal["damaged", "not_a_database", "full"]


def fault_of(exc: BaseException) -> Fault | None:
    """Which fault an error shows (ours, or SQLite's and the OS's raw ones: a row fetched after
    the query ran raises SQLite's own), or None for any other error."""
    if isinstance(exc, StateDamagedError):
        return "not_a_database" if "not a SQLite database" in str(exc) else "damaged"
    if isinstance(exc, StateFullError):
        return "full"
    if isinstance(exc, StateError) and isinstance(exc.__cause__, sqlite3.Error | OSError):
        exc = exc.__cause__
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(exc)
    if isinstance(exc, sqlite3.DatabaseError):
        if primary == SQLITE_NOTADB or "not a database" in text:
            return "not_a_database"
        if primary == SQLITE_CORRUPT or "malformed" in text:
            return "damaged"
    if isinstance(exc, sqlite3.Error) and (primary == SQLITE_FULL or "disk is full" in text):
        return "full"
    if isinstance(exc, OSError) and exc.errno in _NO_SPACE:
        return "full"
    return None


def translate(exc: sqlite3.Error | OSError, path: str, doing: str) -> StateError:
    """SQLite's (or the OS's) error while `doing` ("open", "read", "write") the state DB at
    `path`, as our error: what is wrong, where, and what to do."""
    fault = fault_of(exc)
    if fault == "not_a_database":
        return StateDamagedError(
            f"{path} is not a SQLite database ({exc}): check that state.path names the state "
            "database; `oai400d run` moves such a file aside and starts a fresh database there"
        )
    if fault == "damaged":
        return StateDamagedError(
            f"the state database {path} is damaged ({exc}); `oai400d run` moves it aside and "
            "starts a fresh one (restart the daemon if it runs)"
        )
    if fault == "full":
        return StateFullError(
            f"cannot {doing} the state database {path}: its disk is full ({exc}); free space "
            f"in {Path(path).parent}"
        )
    if doing == "open":
        return StateError(
            f"cannot open the state database {path}: {exc}; check state.path and that the "
            "directory is writable by the oai400d user"
        )
    return StateError(f"cannot {doing} the state database {path}: {exc}")
