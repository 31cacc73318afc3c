"""journald as a source, against real journal files: entries in journal export format are written
by systemd-journal-remote (appending to the same file while the daemon runs) and read by the
daemon's own `journalctl --directory … --follow`. Nothing of the reading code is replaced."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from oai400d.config import JournalSettings
from oai400d.model import ALL_LINES, JournalPosition, Line
from oai400d.sources.journal import Journals, message_lines
from oai400d.state import State

from .daemon_harness import (
    ERROR_LINE,
    OTHER_ERROR,
    DaemonProcess,
    status,
    wait_until,
    write_config,
)

REMOTE = shutil.which("systemd-journal-remote") or next(
    (
        p
        for p in ("/lib/systemd/systemd-journal-remote", "/usr/lib/systemd/systemd-journal-remote")
        if os.path.exists(p)
    ),
    None,
)
JOURNALCTL = shutil.which("journalctl")
pytestmark = pytest.mark.skipif(
    REMOTE is None or JOURNALCTL is None,
    reason="journal tests need journalctl and systemd-journal-remote "
    "(apt-get install systemd-journal-remote)",
)

BOOT_ID = "0123456789abcdef0123456789abcdef"
# Journal messages carry no timestamp of their own (journald stamps the entry).
AUTH_ERROR = ERROR_LINE.split(" ", 2)[2]
RATE_ERROR = OTHER_ERROR.split(" ", 2)[2]
TRACEBACK = "\n".join(
    [
        "Traceback (most recent call last):",
        '  File "/srv/app/worker.py", line 41, in handle',
        "    reply = client.chat.completions.create(model=MODEL, messages=messages)",
        '  File "/srv/venv/lib/python3.11/site-packages/openai/_base_client.py", line 1059, in '
        "request",
        "    raise self._make_status_error_from_response(err.response) from None",
        RATE_ERROR.removeprefix("ERROR worker: "),
    ]
)


def export(entries: Iterable[Mapping[str, str]]) -> bytes:
    """The journal export format: FIELD=value lines, a multi-line value as FIELD, its length
    (64-bit little-endian) and its bytes; a blank line after each entry."""
    out = bytearray()
    for fields in entries:
        for key, value in fields.items():
            data = value.encode()
            if "\n" in value:
                out += key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
            else:
                out += key.encode() + b"=" + data + b"\n"
        out += b"\n"
    return bytes(out)


class JournalFile:
    """A journal file that systemd-journal-remote appends entries to."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._usec = 0

    def append(self, *messages: str, unit: str = "myapp.service") -> None:
        entries = []
        for message in messages:
            self._usec = max(self._usec + 1, int(time.time() * 1e6))
            entries.append(
                {
                    "__REALTIME_TIMESTAMP": str(self._usec),
                    "_BOOT_ID": BOOT_ID,
                    "_SYSTEMD_UNIT": unit,
                    "SYSLOG_IDENTIFIER": unit.removesuffix(".service"),
                    "PRIORITY": "3",
                    "MESSAGE": message,
                }
            )
        assert REMOTE is not None
        subprocess.run(
            [REMOTE, "-o", str(self.path), "-"],
            input=export(entries),
            check=True,
            capture_output=True,
            timeout=60,
        )


def journal_config(tmp: Path, journals: list[dict[str, Any]], **sections: Any) -> Path:
    """The harness's config plus `[[journal]]` entries."""
    path = write_config(tmp, **sections)
    with path.open("a", encoding="utf-8") as handle:
        for journal in journals:
            handle.write("\n[[journal]]\n")
            for key, value in journal.items():
                handle.write(f"{key} = {json.dumps(value)}\n")
    return path


def counted(config: Path, category: str) -> int:
    return sum(a["count"] for a in status(config)["alerts"] if a["category"] == category)


def opened(n: dict[str, Any]) -> bool:
    return bool(n["kind"] == "opened")


# --- the daemon --------------------------------------------------------------------------------


def test_entries_appended_while_running_alert_with_the_unit_as_where(tmp_path: Path) -> None:
    """Entries appended to a journal while the daemon follows it: an alert whose "where" is the
    unit; other units' entries are not read; status lists the journal and its cursor."""
    journal = JournalFile(tmp_path / "journal" / "system.journal")
    journal.append("myapp starting", AUTH_ERROR, unit="other.service")  # before: not ours
    config = journal_config(
        tmp_path, [{"unit": "myapp.service", "directory": str(tmp_path / "journal")}]
    )
    daemon = DaemonProcess(config)
    try:
        daemon.wait_ready()
        assert "journal:myapp.service" in daemon.log()
        started = time.monotonic()
        journal.append("GET /health 200", AUTH_ERROR)
        journal.append(AUTH_ERROR, unit="other.service")
        (note,) = daemon.wait_for(opened)
        latency = time.monotonic() - started
        assert note["category"] == "auth.invalid_api_key" and note["count"] == 1
        assert note["files"] == ["journal:myapp.service"]
        assert "sk-proj-" not in str(note)
        journal.append(AUTH_ERROR, AUTH_ERROR)
        wait_until(lambda: counted(config, "auth.invalid_api_key") == 3, what="3 counted")
        (entry,) = wait_until(lambda: status(config)["journals"])
        assert entry["name"] == "myapp.service" and entry["cursor"].startswith("s=")
        print(f"journal entry appended -> notification: {latency * 1000:.0f} ms")
    finally:
        assert daemon.stop() == 0
    assert counted(config, "auth.invalid_api_key") == 3  # the other unit's errors never counted
    text = subprocess.run(
        [sys.executable, "-m", "oai400d.cli", "status", "--config", str(config)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "journal:myapp.service  cursor s=" in text


def test_a_traceback_in_one_multi_line_message_is_one_finding(tmp_path: Path) -> None:
    """A Python traceback logged as one entry (a multi-line MESSAGE), and the same traceback
    printed line by line to stderr (one entry per line): each is one finding, whose excerpt
    holds the frames."""
    journal = JournalFile(tmp_path / "journal" / "system.journal")
    config = journal_config(
        tmp_path,
        [
            {"identifier": "myapp", "directory": str(tmp_path / "journal")},
            {"unit": "stderr.service", "directory": str(tmp_path / "journal")},
        ],
    )
    journal.append("myapp starting")
    daemon = DaemonProcess(config)
    try:
        daemon.wait_ready()
        journal.append("handling request 42", TRACEBACK, "request 43 done")
        (note,) = daemon.wait_for(opened)
        assert note["category"].startswith("rate_limit") and note["count"] == 1
        assert note["files"] == ["journal:myapp"]
        assert "_base_client.py" in note["excerpt"] and "Traceback" in note["excerpt"]
        journal.append("handling request 44", *TRACEBACK.split("\n"), unit="stderr.service")
        wait_until(
            lambda: [a for a in status(config)["alerts"] if "journal:stderr.service" in a["files"]],
            what="the stderr traceback's alert",
        )
    finally:
        assert daemon.stop() == 0
    (alert,) = status(config)["alerts"]
    assert alert["count"] == 2  # one finding per traceback, not one per line
    assert alert["files"] == ["journal:myapp", "journal:stderr.service"]


def test_kill_9_mid_stream_counts_every_error_once(tmp_path: Path) -> None:
    """kill -9 while entries stream in; after a restart every error is counted exactly once.
    Each entry holds two error lines, so a position saved while lines flow is in the middle of
    an entry (its second line is the pending event): the restart must skip exactly one line."""
    per_batch = 1500
    total = 2 * 2 * per_batch
    journal = JournalFile(tmp_path / "journal" / "system.journal")
    journal.append("myapp starting")
    config = journal_config(
        tmp_path,
        [{"unit": "myapp.service", "directory": str(tmp_path / "journal")}],
        alerts={"group_interval": "200ms"},
    )
    message = f"{AUTH_ERROR}\n{AUTH_ERROR}"
    daemon = DaemonProcess(config)
    daemon.wait_ready()
    journal.append(*[message] * per_batch)
    # Read the state DB directly (a status subprocess is slower than the daemon's reading).
    wait_until(lambda: fast_count(tmp_path) >= 500, what="a first 500 counted")
    daemon.kill()
    at_kill = fast_count(tmp_path)
    (saved,) = status(config)["journals"]
    journal.append(*[message] * per_batch)
    first_run = daemon.notifications()
    again = DaemonProcess(config)
    try:
        again.wait_ready()
        wait_until(
            lambda: counted(config, "auth.invalid_api_key") == total,
            timeout=30,
            what=f"all {total} errors counted",
        )
        wait_until(
            lambda: any(n["count"] == total for n in first_run + again.notifications()),
            what="a notification with the final count",
        )
    finally:
        assert again.stop() == 0
    assert counted(config, "auth.invalid_api_key") == total
    everything = first_run + again.notifications()
    assert sum(1 for n in everything if n["kind"] == "opened") == 1
    seen = [(n["kind"], n["count"]) for n in everything]
    assert len(seen) == len(set(seen)), seen
    assert status(config)["outbox_depth"] == 0
    print(f"killed at count {at_kill} of {total}; saved position skip={saved['skip']}")


def fast_count(tmp: Path) -> int:
    """The count of every open alert, straight from the state DB."""
    if not (tmp / "state.db").exists():
        return 0
    state = State(str(tmp / "state.db"), readonly=True)
    try:
        return sum(alert.count for alert in state.alerts())
    finally:
        state.close()


def test_journalctl_failing_is_reported_once_and_retried(tmp_path: Path) -> None:
    """A journal directory that does not exist yet: reported once with what to do, retried;
    once a journal is there, its entries are read (like an unreadable file)."""
    missing = tmp_path / "later"
    config = journal_config(tmp_path, [{"unit": "myapp.service", "directory": str(missing)}])
    daemon = DaemonProcess(config)
    try:
        daemon.wait_ready()
        wait_until(lambda: "journal myapp.service: journalctl failed" in daemon.log())
        JournalFile(missing / "system.journal").append(AUTH_ERROR)
        (note,) = daemon.wait_for(opened, timeout=15)
        assert note["files"] == ["journal:myapp.service"]
    finally:
        daemon.stop()
    assert daemon.log().count("journalctl failed") == 1, daemon.log()
    assert "journalctl reads again" in daemon.log()


def test_bad_journal_config_exits_78_naming_the_key(tmp_path: Path) -> None:
    """Each wrong [[journal]] entry stops the daemon with exit 78 and a message naming its key."""
    for journal, key in (
        ({"unit": "a.service", "identifier": "a"}, "journal.0: set exactly one of unit"),
        ({"match": ["priority=3"]}, "journal.0.match"),
        ({"unit": "a.service", "colour": "red"}, "journal.0.colour: unknown key"),
    ):
        config = journal_config(tmp_path, [journal])
        daemon = DaemonProcess(config)
        assert daemon.proc.wait(30) == 78
        daemon.stop(expect=78)
        assert key in daemon.log(), daemon.log()


# --- the reading stage alone, on real journal files ---------------------------------------------


def no_wake() -> None:
    """The daemon's wake-up; these tests poll instead."""


def spec(tmp: Path, **keys: Any) -> JournalSettings:
    return JournalSettings.model_validate({"directory": str(tmp / "journal"), **keys})


def read_all(journals: Journals, want: int, timeout: float = 10.0) -> list[Line]:
    """Poll until `want` lines came and the backlog is caught up."""
    lines: list[Line] = []

    def enough() -> bool:
        for read in journals.poll():
            lines.extend(read.lines)
        return len(lines) >= want and not journals.catching_up

    wait_until(enough, timeout, f"{want} journal lines")
    return lines


def test_resume_in_the_middle_of_a_multi_line_entry(tmp_path: Path) -> None:
    """A saved position (cursor, skip=2) resumes at the third line of that entry, then reads
    on; (cursor, ALL_LINES) resumes after it."""
    journal = JournalFile(tmp_path / "journal" / "system.journal")
    journal.append("one", "a\nb\nc\nd", "two")
    first = Journals([spec(tmp_path, unit="myapp.service")], [], "beginning", 1.0, print, no_wake)
    first.start()
    try:
        lines = read_all(first, 6)
    finally:
        first.stop()
    assert [(x.text, x.offset) for x in lines] == [
        ("one", 0),
        ("a", 0),
        ("b", 1),
        ("c", 2),
        ("d", 3),
        ("two", 0),
    ]
    (middle,) = first.positions({"myapp.service": lines[3]})
    assert middle.skip == 2
    after = JournalPosition(middle.name, middle.cursor, ALL_LINES)
    for saved, expected in ((middle, ["c", "d", "two"]), (after, ["two"])):
        again = Journals(
            [spec(tmp_path, unit="myapp.service")], [saved], "beginning", 1.0, print, no_wake
        )
        again.start()
        try:
            assert [x.text for x in read_all(again, len(expected))] == expected
        finally:
            again.stop()


def test_read_from_end_starts_after_the_last_entry_and_saves_it(tmp_path: Path) -> None:
    """No saved cursor and read_from "end": old entries are skipped, the last one's cursor is
    the position at once (so a restart before any new entry loses nothing), new ones are read."""
    journal = JournalFile(tmp_path / "journal" / "system.journal")
    journal.append("old one", "old two")
    journals = Journals([spec(tmp_path, unit="myapp.service")], [], "end", 1.0, print, no_wake)
    journals.start()
    try:
        wait_until(lambda: journals.poll() is not None and journals.positions({}))
        (anchor,) = journals.positions({})
        assert anchor.skip == ALL_LINES
        journal.append("new")
        assert [x.text for x in read_all(journals, 1)] == ["new"]
    finally:
        journals.stop()
    assert anchor.cursor != journals.positions({})[0].cursor


def test_journalctl_missing_is_reported_once(tmp_path: Path) -> None:
    """journalctl not on PATH: one report saying what to do, however often it is retried."""
    reports: list[str] = []
    journals = Journals(
        [spec(tmp_path, unit="myapp.service")],
        [],
        "beginning",
        0.01,
        reports.append,
        no_wake,
        journalctl="journalctl-not-installed",
    )
    journals.start()
    try:
        wait_until(lambda: journals.attempts()["myapp.service"] >= 5, what="5 attempts")
        # Nothing to wait for: lines of files are not held back as a backlog.
        wait_until(lambda: journals.poll() == [] and not journals.catching_up)
    finally:
        journals.stop()
    assert len(reports) == 1, reports
    assert "journalctl-not-installed not found on PATH; install" in reports[0]


def test_message_lines() -> None:
    """MESSAGE as journalctl -o json gives it: text, bytes (not UTF-8), several values, none."""
    assert message_lines("a\nb\n") == ("a", "b")
    assert message_lines("a\r\nb") == ("a", "b")
    assert message_lines(list(b"bad \xff\nok")) == ("bad \ufffd", "ok")
    assert message_lines(["one", "two"]) == ("one", "two")
    assert message_lines(None) == ()
    assert message_lines("") == ("",)


def test_archived_files_are_read_and_read_again_for_new_entries(tmp_path: Path) -> None:
    """`files`: journalctl cannot follow a --file, so it reads to the end and is run again
    (every retry interval) from where it stopped: each entry once."""
    journal = JournalFile(tmp_path / "archive" / "app.journal")
    journal.append("first", "second")
    journals = Journals(
        [JournalSettings(unit="myapp.service", files=[str(journal.path)], name="archive")],
        [],
        "beginning",
        0.05,
        print,
        no_wake,
    )
    journals.start()
    try:
        assert [x.text for x in read_all(journals, 2)] == ["first", "second"]
        journal.append("third")
        assert [x.text for x in read_all(journals, 1)] == ["third"]
        assert journals.attempts()["archive"] >= 2
    finally:
        journals.stop()


def test_a_journal_is_a_metrics_source_of_its_own(tmp_path: Path) -> None:
    """Lines, bytes and findings read from a journal are counted under `journal:NAME`, one
    label per configured journal."""
    from .scrape import scrape, value

    journal = JournalFile(tmp_path / "journal" / "system.journal")
    journal.append("myapp starting")
    config = journal_config(
        tmp_path,
        [{"unit": "myapp.service", "directory": str(tmp_path / "journal")}],
        metrics={"listen": "127.0.0.1:0"},
    )
    daemon = DaemonProcess(config)
    try:
        daemon.wait_ready()
        url = daemon.metrics_url()
        journal.append("GET /health 200", AUTH_ERROR)
        daemon.wait_for(opened)
        source = "journal:myapp.service"
        samples = wait_until(
            lambda: (s := scrape(url))
            and (value(s, "oai400d_source_lines_total", source=source) or 0) >= 2
            and s,
            what="journal lines counted",
        )
        assert (value(samples, "oai400d_source_bytes_total", source=source) or 0) > len(AUTH_ERROR)
        findings = [
            v
            for labels, v in samples["oai400d_findings_total"]
            if labels.get("source") == source and labels.get("category") == "auth.invalid_api_key"
        ]
        assert findings == [1.0]
    finally:
        assert daemon.stop() == 0
