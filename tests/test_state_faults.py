"""Faults of the state DB the daemon survives: a damaged file (or one that is not a database at
all) is set aside and a fresh DB started; a full disk holds the batch in memory and retries it.

In-process on a real SQLite file (a full disk is SQLite's own SQLITE_FULL, made with
`PRAGMA max_page_count`; time is a fake clock), then end to end with the daemon as a subprocess:
a page overwritten in a stopped daemon's DB, and the DB on a 4 MiB tmpfs filled during errors.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import sqlite3
import subprocess
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from oai400d.config import JournalSettings, LogsSettings, Settings
from oai400d.errors import StateDamagedError, StateError, StateFullError
from oai400d.keeper import FULL_LOG_EVERY, KEEP_DONE, PRUNE_EVERY, StateKeeper, from_end
from oai400d.model import Alert, FileState, FleetDelta, JournalPosition, Route
from oai400d.state import State, open_checked
from oai400d.state.faults import fault_of
from oai400d.state.recovery import CATEGORY

from .daemon_harness import (
    ERROR_LINE,
    NOISE,
    OTHER_ERROR,
    DaemonProcess,
    append,
    status,
    wait_until,
    write_config,
)
from .samples import note, stored_alert

PAGE = 4096  # SQLite's default page size, which the state DB keeps
WAL_SHM = ("", "-wal", "-shm")


def alert(fingerprint: str = "fp", count: int = 1, state: str = "open") -> Alert:
    return stored_alert(fingerprint, count, state, title=f"Rate limited {fingerprint}")


def overwrite_page(path: Path, table: str) -> int:
    """Write garbage over the page that holds `table` (its root page, somewhere in the middle
    of the file) of a closed DB; the page number."""
    with closing(sqlite3.connect(path)) as db:
        (page,) = db.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)
        ).fetchone()
    with path.open("r+b") as handle:
        handle.seek((page - 1) * PAGE)
        handle.write(bytes(range(256)) * (PAGE // 256))
    return int(page)


def damaged_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if ".damaged-" in p.name)


# --- set aside at start-up ---------------------------------------------------------------------


def test_a_damaged_page_is_found_at_open_and_the_file_set_aside_with_what_it_lost(
    tmp_path: Path,
) -> None:
    """quick_check finds the page; the file moves to state.db.damaged-<UTC time> (never
    deleted), a fresh DB takes its place, and the notice says what was lost as far as the old
    file can still be read: the outbox was readable, the alerts' page was not ("unknown")."""
    path = tmp_path / "state.db"
    state = State(str(path))
    state.commit(
        files=[FileState("/l/a.log", 1, 2, "h", 1, 500, 12)],
        alerts=[alert("a"), alert("b")],
        notifications=[note("a"), note("b")],
    )
    state.close()
    page = overwrite_page(path, "alerts")
    assert 1 < page < path.stat().st_size // PAGE

    fresh, recovery = open_checked(str(path), clock=lambda: 1_800_000_000.0)
    try:
        assert recovery is not None and not recovery.not_a_database
        moved = Path(recovery.moved_to)
        assert moved.name == "state.db.damaged-20270115T080000Z" and moved.exists()
        # its -wal and -shm, if any, went with it
        assert {p.name for p in damaged_files(tmp_path)} <= {f"{moved.name}{s}" for s in WAL_SHM}
        assert fresh.files() == [] and fresh.alerts() == [] and fresh.outbox_depth() == 0
        assert recovery.lost.open_alerts is None and recovery.lost.queued == 2
        text = recovery.notice("host-1")
        assert text.category == CATEGORY and text.kind == "opened" and text.host == "host-1"
        assert str(moved) in text.message and text.files == (str(moved),)
        assert "open alerts: unknown" in text.message
        assert "queued notifications: 2" in text.message
        assert "read from its end" in text.message and "malformed" in text.excerpt
    finally:
        fresh.close()
    assert moved.read_bytes()[(page - 1) * PAGE :][:256] == bytes(range(256))  # kept as it was


def test_a_readable_old_file_names_the_open_alerts_it_lost(tmp_path: Path) -> None:
    """What was lost is read from the old file when it can be: the open alerts by title."""
    path = tmp_path / "state.db"
    state = State(str(path))
    state.commit(alerts=[alert("a"), alert("b"), alert("c", state="resolved")])
    state.close()
    overwrite_page(path, "outbox")
    fresh, recovery = open_checked(str(path))
    fresh.close()
    assert recovery is not None
    assert recovery.lost.open_alerts is not None
    assert sorted(recovery.lost.open_alerts) == ["Rate limited a", "Rate limited b"]
    assert recovery.lost.queued == 0  # (counted on its index, which is sound)
    assert "open alerts: 2 (Rate limited" in recovery.notice("h").message


def test_a_file_that_is_not_a_database_is_named_as_such_not_as_a_permission_problem(
    tmp_path: Path,
) -> None:
    """Garbage where the DB should be: StateDamagedError naming the real cause (read-only
    too, as `status` opens it); the daemon's open sets it aside with nothing readable."""
    path = tmp_path / "state.db"
    path.write_bytes(b"this is a text file, not a database\n" * 200)
    with pytest.raises(StateDamagedError) as raised:
        State(str(path), readonly=True).files()
    assert "not a SQLite database" in str(raised.value) and "writable" not in str(raised.value)

    fresh, recovery = open_checked(str(path))
    fresh.close()
    assert recovery is not None and recovery.not_a_database
    assert Path(recovery.moved_to).read_bytes().startswith(b"this is a text file")
    notice = recovery.notice("h")
    assert "is not a SQLite database" in notice.title
    assert notice.message.count("unknown (unreadable)") == 3  # alerts, queue, silences


def test_a_sound_db_opens_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    State(str(path)).close()
    state, recovery = open_checked(str(path))
    state.close()
    assert recovery is None and damaged_files(tmp_path) == []


def test_faults_are_told_apart() -> None:
    """Damage, a foreign file, a full disk (SQLite's or the OS's), and everything else."""
    assert fault_of(sqlite3.DatabaseError("database disk image is malformed")) == "damaged"
    assert fault_of(sqlite3.DatabaseError("file is not a database")) == "not_a_database"
    assert fault_of(sqlite3.OperationalError("database or disk is full")) == "full"
    assert fault_of(OSError(errno.ENOSPC, "No space left on device")) == "full"
    assert fault_of(StateFullError("x")) == "full"
    assert fault_of(sqlite3.OperationalError("database is locked")) is None
    assert fault_of(StateError("cannot open")) is None
    assert fault_of(ValueError("a bug")) is None


# --- the keeper: a full disk held through, a damaged DB replaced while running -----------------


class FakeReading:
    """The ingest stage's positions, as the keeper sees them."""

    def __init__(self) -> None:
        self.dirty = True
        self.position = FileState("/l/a.log", 1, 2, "h", 1, 100, 1)
        self.commits = 0
        self.asked: list[bool] = []  # `everything` of each file_positions()

    def file_positions(self, everything: bool = False) -> list[FileState]:
        self.asked.append(everything)
        return [self.position]

    def journal_positions(self) -> list[JournalPosition]:
        return [JournalPosition("app", "cursor-1", -1)]

    def forgotten(self) -> list[FileState]:
        return []

    def committed(self) -> None:
        self.commits += 1
        self.dirty = False


class FakeFleet:
    def __init__(self) -> None:
        self.pending = [FleetDelta("a", 2, 1.0, 2.0, {"title": "t"})]
        self.confirmed: list[float] = []

    def deltas(self) -> list[FleetDelta]:
        return list(self.pending)

    def committed(self, now: float) -> None:
        self.confirmed.append(now)
        self.pending = []


def fill(state: State) -> None:
    """No room for one more page: SQLite's own SQLITE_FULL on the next write that grows it."""
    db = state._db
    db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")


def free(state: State) -> None:
    state._db.execute("PRAGMA max_page_count = 1073741823")


def test_a_full_disk_holds_the_batch_retries_it_with_backoff_and_loses_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The failed commit wrote nothing; the same batch, with what came since (a later
    snapshot of an alert replaces the earlier), is written once space returns, with the
    positions of that moment: nothing counted twice, nothing lost. Retries back off (1, 2, 4,
    … 10 s), the log says it once a minute, STATUS= at once and again when it is over."""
    now = [1000.0]
    changes: list[float] = []
    pokes: list[float] = []
    keeper = StateKeeper(
        str(tmp_path / "state.db"),
        "h",
        lambda: now[0],
        changed=lambda: changes.append(now[0]),
        poke=lambda: pokes.append(now[0]),
    )
    attempts: list[float] = []
    real_commit = keeper.state.commit

    def counted_commit(**batch: Any) -> None:
        attempts.append(now[0])
        real_commit(**batch)

    keeper.state.commit = counted_commit  # type: ignore[method-assign]
    reading, fleet = FakeReading(), FakeFleet()
    fill(keeper.state)
    keeper.hold([alert("a", count=1)], [note("a")] * 40)  # (more than one page)
    caplog.set_level(logging.ERROR, "oai400d")

    assert keeper.write(now[0], reading, fleet) is False
    assert (reading.commits, fleet.confirmed, pokes) == (0, [], [])
    assert keeper.state.outbox_depth() == 0 and keeper.state.files() == []
    assert keeper.deadlines(dirty=True) == [1001.0]
    assert keeper.status("watching 1 file(s)").startswith("state DB disk full since ")
    assert keeper.status("watching 1 file(s)").endswith("; watching 1 file(s)")
    assert changes == [1000.0]

    for count in range(2, 18):  # every half second for 8 s: tries only at the backoff's times
        now[0] += 0.5
        keeper.hold([alert("a", count=count)], [replace(note("a"), count=count)])
        assert keeper.write(now[0], reading, fleet) is False
    assert attempts == [1000.0, 1001.0, 1003.0, 1007.0]  # 1, 2 and 4 s after the one before
    full_logs = [r.getMessage() for r in caplog.records if "disk is full" in r.getMessage()]
    assert len(full_logs) == 1 and "holding 1 file position(s)" in full_logs[0]
    now[0] += FULL_LOG_EVERY
    assert keeper.write(now[0], reading, fleet) is False
    assert len([r for r in caplog.records if "disk is full" in r.getMessage()]) == 2
    assert keeper.deadlines(dirty=True) == [now[0] + 10.0]  # the backoff's most

    reading.position = replace(reading.position, offset=900, line_no=9)  # read on meanwhile
    free(keeper.state)
    now[0] = keeper.deadlines(True)[0]
    assert keeper.write(now[0], reading, fleet) is True
    assert (reading.commits, fleet.confirmed, pokes) == (1, [now[0]], [now[0]])
    assert [a.count for a in keeper.state.alerts()] == [17]  # the latest snapshot, once
    queued = [e.notification.count for e in keeper.state.outbox_waiting(limit=100)]
    assert queued == [3] * 40 + list(range(2, 18))  # each once, in order
    assert keeper.state.files() == [reading.position]
    assert keeper.state.fleet_queued() == 2
    assert keeper.status("watching") == "watching" and changes[-1] == now[0]
    assert len(changes) == 6  # five failed tries, then written again
    keeper.close()


def test_a_write_of_the_loop_on_a_full_disk_is_survived_and_a_bug_is_not(tmp_path: Path) -> None:
    keeper = StateKeeper(str(tmp_path / "state.db"), "h", lambda: 50.0)
    full = sqlite3.OperationalError("database or disk is full")
    assert keeper.survive(full, 50.0, list) is False
    assert keeper.deadlines(dirty=False) == [51.0]
    with pytest.raises(ValueError):
        keeper.survive(ValueError("a bug"), 50.0, list)
    keeper.close()


def test_a_db_damaged_while_running_is_replaced_and_given_what_memory_holds(
    tmp_path: Path,
) -> None:
    """survive(): the file is set aside, the same State object goes on with a fresh DB (every
    stage holding it writes there), and the next write saves every alert the daemon had in
    memory, the positions, and the one notice (saying the alerts were kept)."""
    path = tmp_path / "state.db"
    keeper = StateKeeper(str(path), "h", lambda: 1_800_000_000.0)
    state = keeper.state
    reading = FakeReading()
    keeper.hold([alert("a")], [note("a")])
    assert keeper.write(1.0, reading, None)
    damage = StateDamagedError("the state database is damaged (database disk image is malformed)")

    assert keeper.survive(damage, 2.0, lambda: [alert("a", count=5), alert("b")]) is True
    assert keeper.write(2.0, reading, None, force=True)
    assert keeper.state is state and damaged_files(tmp_path)
    assert sorted((a.fingerprint, a.count) for a in state.alerts()) == [("a", 5), ("b", 1)]
    (notice,) = [e.notification for e in state.outbox_waiting()]
    assert notice.category == CATEGORY and "open alerts: none" in notice.message
    assert "queued notifications: 1" in notice.message  # note("a"), undelivered in the old file
    assert state.files() == [reading.position]
    # The fresh DB holds no position: that write asked for every one, not only those moved.
    assert reading.asked == [False, True]
    assert keeper.write(3.0, reading, None, force=True)
    assert reading.asked == [False, True, False]
    keeper.close()


def test_a_fresh_db_after_damage_reads_every_source_from_its_end() -> None:
    settings = Settings(
        logs=LogsSettings(read_from="beginning"),
        journal=[JournalSettings(unit="app.service", read_from="beginning")],
    )
    at_end = from_end(settings)
    assert at_end.logs.read_from == "end" and [j.read_from for j in at_end.journal] == ["end"]
    assert settings.logs.read_from == "beginning"  # the settings themselves are not changed


# --- end to end ----------------------------------------------------------------------------


def opened(category: str):  # type: ignore[no-untyped-def]
    return lambda n: n["kind"] == "opened" and n["category"] == category


def test_a_damaged_db_does_not_stop_the_daemon(tmp_path: Path) -> None:
    """A page of a stopped daemon's state.db overwritten: the daemon starts, says so in one
    notification, keeps the old file, replays nothing written while it was stopped (read from
    the end), and the next error is detected within 2 s."""
    config = write_config(tmp_path)
    log = tmp_path / "logs" / "app.log"
    append(log, NOISE)
    daemon = DaemonProcess(config)
    daemon.wait_ready()
    append(log, ERROR_LINE)
    daemon.wait_for(opened("auth.invalid_api_key"))
    daemon.stop()
    overwrite_page(tmp_path / "state.db", "alerts")
    append(log, OTHER_ERROR)  # written while stopped: the positions are lost, so not replayed

    daemon = DaemonProcess(config)
    try:
        daemon.wait_ready()
        (notice,) = daemon.wait_for(opened(CATEGORY))
        (moved,) = [p for p in damaged_files(tmp_path) if not p.name.endswith(("-wal", "-shm"))]
        assert notice["files"] == [str(moved)] and str(moved) in notice["message"]
        assert "damaged" in daemon.log() and daemon.proc.poll() is None
        append(log, ERROR_LINE)
        daemon.wait_for(opened("auth.invalid_api_key"), timeout=2)
        assert not [n for n in daemon.notifications() if n["category"] == "rate_limit"]
        assert len(daemon.wait_for(opened(CATEGORY))) == 1
    finally:
        daemon.stop()


def test_a_file_that_is_not_a_database_does_not_stop_the_daemon(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    (tmp_path / "state.db").write_bytes(os.urandom(20_000))
    daemon = DaemonProcess(config)
    try:
        daemon.wait_ready()
        (notice,) = daemon.wait_for(opened(CATEGORY))
        assert "is not a SQLite database" in notice["title"] and "writable" not in daemon.log()
        append(tmp_path / "logs" / "app.log", ERROR_LINE)
        daemon.wait_for(opened("auth.invalid_api_key"), timeout=2)
    finally:
        daemon.stop()


@pytest.fixture
def small_disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A 4 MiB tmpfs, or a skip saying why there is none (mounting needs root)."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a 4 MiB tmpfs to fill: {result.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill_disk(directory: Path) -> Path:
    """Fill the file system of `directory` to the last byte; the filler, to free it again."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 16, 1 << 12, 1 << 9, 1):  # to the last byte: the WAL cannot grow
            try:
                while os.write(fd, b"\0" * size):
                    pass
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_under_the_state_db_loses_and_repeats_nothing(
    tmp_path: Path, small_disk: Path
) -> None:
    """The state DB on a 4 MiB tmpfs, filled while errors are written: the daemon stays up and
    says why in STATUS= and its log; once space is freed every error line is counted once."""
    address = str(tmp_path / "notify.sock")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(address)
    receiver.setblocking(False)
    statuses: list[str] = []

    def said(word: str) -> bool:
        while True:
            try:
                statuses.append(receiver.recv(4096).decode())
            except BlockingIOError:
                return any(word in m for m in statuses)

    config = write_config(tmp_path, state={"path": str(small_disk / "state.db")})
    log = tmp_path / "logs" / "app.log"
    append(log, NOISE)
    daemon = DaemonProcess(config, env={"NOTIFY_SOCKET": address})
    try:
        daemon.wait_ready()
        append(log, ERROR_LINE)
        daemon.wait_for(opened("auth.invalid_api_key"))
        wait_until(lambda: status(config)["outbox_depth"] == 0, what="the opened one delivered")
        filler = fill_disk(small_disk)
        append(log, *[ERROR_LINE] * 5, *[OTHER_ERROR] * 3)
        wait_until(lambda: "disk is full" in daemon.log(), what="the full disk in the log")
        wait_until(lambda: said("STATUS=state DB disk full"), what="the full disk in STATUS=")
        append(log, ERROR_LINE)  # read, counted in memory, held
        assert daemon.proc.poll() is None
        held = [line for line in daemon.log().splitlines() if "in memory and retrying" in line]
        assert len(held) == 1, daemon.log()  # once a minute, not at every retry

        filler.unlink()
        wait_until(
            lambda: (
                {a["category"]: a["count"] for a in status(config)["alerts"]}
                == {"auth.invalid_api_key": 7, "rate_limit": 3}
            ),
            timeout=15,
            what="every error line counted once",
        )
        daemon.wait_for(opened("rate_limit"))
        assert "is written again" in daemon.log()
        assert len([n for n in daemon.notifications() if n["kind"] == "opened"]) == 2
        wait_until(lambda: said("STATUS=watching"), what="STATUS= without the full disk")
    finally:
        daemon.stop()
        receiver.close()
    assert [a["count"] for a in status(config)["alerts"] if a["category"] == "rate_limit"] == [3]


def test_status_on_a_file_that_is_not_a_database_says_so_and_exits_73(tmp_path: Path) -> None:
    """`oai400d status` names the real cause (not a SQLite database) in one line, exit 73, no
    traceback and no advice about which user runs it."""
    from .support import oai400d as run_cli

    db = tmp_path / "state.db"
    db.write_bytes(os.urandom(8192))
    config = tmp_path / "config.toml"
    config.write_text(f'[state]\npath = "{db}"\n')
    result = run_cli("status", "--config", str(config))
    err = result.stderr.decode()
    assert result.returncode == 73, err
    assert "is not a SQLite database" in err and "Traceback" not in err
    assert "sudo -u" not in err


def test_the_keeper_prunes_what_is_over_and_old_once_an_hour(tmp_path: Path) -> None:
    """A write prunes resolved alerts and delivered notifications older than KEEP_DONE, at
    most once per PRUNE_EVERY: the state DB does not grow for ever."""
    now = [1_800_000_000.0]
    keeper = StateKeeper(str(tmp_path / "state.db"), "h", lambda: now[0])
    state = keeper.state
    state.register_target(Route("console"))
    old = replace(stored_alert("old"), state="resolved", last_seen=now[0] - KEEP_DONE - 1)
    state.commit(alerts=[old], notifications=[note("old"), note("old", "resolved")], now=now[0])
    for entry in state.outbox_pending("console"):
        state.delivered(entry.id, "console", now=now[0] - KEEP_DONE - 1)
    reading = FakeReading()
    assert keeper.write(now[0], reading, None)
    assert state.alert("old") is None and state.outbox_by_target()["console"].delivered == 0
    state.commit(alerts=[old], notifications=[note("again", "resolved")], now=now[0])
    (entry,) = state.outbox_pending("console")
    state.delivered(entry.id, "console", now=now[0] - KEEP_DONE - 1)
    now[0] += PRUNE_EVERY - 1
    assert keeper.write(now[0], reading, None, force=True)
    assert state.alert("old") is not None  # not an hour yet
    now[0] += 1
    assert keeper.write(now[0], reading, None, force=True)
    assert state.alert("old") is None and state.outbox_by_target()["console"].delivered == 0
