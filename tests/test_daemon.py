"""`oai400d run` end to end: the daemon as a subprocess, real files rotated on disk."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

from .daemon_harness import (
    ERROR_LINE,
    NOISE,
    OTHER_ERROR,
    STAMP,
    DaemonProcess,
    append,
    status,
    wait_until,
    write_config,
)


def opened(n: dict) -> bool:  # type: ignore[type-arg]
    return n["kind"] == "opened"


def counted(config: Path, category: str) -> int:
    """The count of the open alert of a category, from the state DB."""
    return sum(a["count"] for a in status(config)["alerts"] if a["category"] == category)


def test_an_error_line_is_notified_within_a_second(tmp_path: Path) -> None:
    """Append an error line: the console notification follows within 1 s (group_wait 0s)."""
    config = write_config(tmp_path)
    log = tmp_path / "logs" / "app.log"
    append(log, NOISE)
    daemon = DaemonProcess(config)
    try:
        daemon.wait_ready()
        started = time.monotonic()
        append(log, NOISE, ERROR_LINE)
        (note,) = daemon.wait_for(opened, timeout=5)
        assert time.monotonic() - started < 1.0
        assert note["category"] == "auth.invalid_api_key" and note["count"] == 1
        assert note["files"] == [str(log)]
        assert "sk-proj-" not in str(note)  # redacted before it is printed
        assert note["fixes"] and note["docs"]
    finally:
        assert daemon.stop() == 0


def test_text_notifications_are_readable(tmp_path: Path) -> None:
    """The text console format says what, how often, where, the cause and the fix."""
    config = write_config(tmp_path, console={"format": "text"})
    log = tmp_path / "logs" / "app.log"
    daemon = DaemonProcess(config)
    try:
        daemon.wait_ready()
        append(log, ERROR_LINE)
        text = wait_until(
            lambda: "\n".join(daemon.stdout) if any("fix:" in x for x in daemon.stdout) else ""
        )
        assert "[OPENED] CRITICAL" in text
        assert "1 error(s)" in text and str(log) in text
        assert "cause: auth.invalid_api_key status 401 code invalid_api_key" in text
    finally:
        daemon.stop()


def test_rename_rotation_loses_nothing(tmp_path: Path) -> None:
    """logrotate's rename-and-create: lines in the old file (even after the rename) and the new
    one are all counted, none twice."""
    config = write_config(tmp_path)
    log = tmp_path / "logs" / "app.log"
    append(log, ERROR_LINE)
    daemon = DaemonProcess(config)
    try:
        daemon.wait_ready()
        daemon.wait_for(opened)
        log.rename(tmp_path / "logs" / "app.log.1")
        append(tmp_path / "logs" / "app.log.1", ERROR_LINE)  # the writer has not reopened yet
        append(log, ERROR_LINE, ERROR_LINE)
        wait_until(lambda: counted(config, "auth.invalid_api_key") == 4, what="4 errors counted")
    finally:
        daemon.stop()


def test_copytruncate_and_truncation(tmp_path: Path) -> None:
    """A file copied then truncated in place, and a plain truncation: new lines still counted."""
    config = write_config(tmp_path)
    log = tmp_path / "logs" / "app.log"
    append(log, ERROR_LINE, NOISE * 3)
    daemon = DaemonProcess(config)
    try:
        daemon.wait_ready()
        wait_until(lambda: counted(config, "auth.invalid_api_key") == 1)
        (tmp_path / "logs" / "app.log.1").write_bytes(log.read_bytes())  # copy …
        with log.open("r+") as handle:  # … truncate
            handle.truncate(0)
        append(log, ERROR_LINE)
        wait_until(lambda: counted(config, "auth.invalid_api_key") == 2, what="after copytruncate")
        log.write_text("")
        append(log, NOISE, ERROR_LINE)  # new content: it starts with other bytes
        wait_until(lambda: counted(config, "auth.invalid_api_key") == 3, what="after truncation")
    finally:
        daemon.stop()


def test_delete_and_recreate(tmp_path: Path) -> None:
    """A deleted log recreated under the same name is followed from its first line."""
    config = write_config(tmp_path)
    log = tmp_path / "logs" / "app.log"
    append(log, ERROR_LINE)
    daemon = DaemonProcess(config)
    try:
        daemon.wait_ready()
        wait_until(lambda: counted(config, "auth.invalid_api_key") == 1)
        log.unlink()
        append(log, ERROR_LINE, ERROR_LINE)
        wait_until(lambda: counted(config, "auth.invalid_api_key") == 3)
    finally:
        daemon.stop()


def test_a_new_file_matching_the_glob_is_picked_up(tmp_path: Path) -> None:
    """A file created while running that matches logs.paths is read from its start."""
    config = write_config(tmp_path)
    daemon = DaemonProcess(config)
    try:
        daemon.wait_ready()
        append(tmp_path / "logs" / "worker-7.log", OTHER_ERROR)
        (note,) = daemon.wait_for(opened)
        assert note["category"] == "rate_limit"
        assert note["files"] == [str(tmp_path / "logs" / "worker-7.log")]
    finally:
        daemon.stop()


def test_rotation_while_stopped(tmp_path: Path) -> None:
    """Lines written before a rotation that happened while the daemon was stopped are read from
    the rotated file, then the new file from its start: nothing lost, nothing twice."""
    config = write_config(tmp_path)
    log = tmp_path / "logs" / "app.log"
    append(log, ERROR_LINE)
    daemon = DaemonProcess(config)
    daemon.wait_ready()
    wait_until(lambda: counted(config, "auth.invalid_api_key") == 1)
    assert daemon.stop() == 0
    append(log, ERROR_LINE)  # written while stopped, then rotated away
    log.rename(tmp_path / "logs" / "app.log.1")
    append(log, ERROR_LINE, ERROR_LINE)
    again = DaemonProcess(config)
    try:
        again.wait_ready()
        wait_until(lambda: counted(config, "auth.invalid_api_key") == 4, what="4 errors counted")
    finally:
        again.stop()


def test_kill_9_mid_stream_counts_every_line_once(tmp_path: Path) -> None:
    """kill -9 while 10,000 error lines stream in; after a restart every line is counted exactly
    once and no notification is repeated."""
    config = write_config(tmp_path, alerts={"group_interval": "200ms"})
    log = tmp_path / "logs" / "app.log"
    log.touch()
    daemon = DaemonProcess(config)
    daemon.wait_ready()
    with log.open("a") as handle:
        for i in range(10_000):
            handle.write(ERROR_LINE + "\n")
            if i % 500 == 0:
                handle.flush()
            if i == 5_000:
                handle.flush()
                wait_until(
                    lambda: counted(config, "auth.invalid_api_key") > 0, what="a first count"
                )
                daemon.kill()
    first_run = daemon.notifications()
    again = DaemonProcess(config)
    try:
        again.wait_ready()
        wait_until(
            lambda: counted(config, "auth.invalid_api_key") == 10_000,
            timeout=30,
            what="all 10,000 lines counted",
        )
        wait_until(
            lambda: (
                (again.notifications()
                and again.notifications()[-1]["count"] == 10_000)
                or any(n["count"] == 10_000 for n in first_run)
            ),
            timeout=10,
            what="a notification with the final count",
        )
    finally:
        again.stop()
    everything = first_run + again.notifications()
    assert sum(1 for n in everything if n["kind"] == "opened") == 1
    seen = [(n["kind"], n["count"]) for n in everything]
    assert len(seen) == len(set(seen)), seen
    assert status(config)["outbox_depth"] == 0


def test_a_burst_is_one_alert_and_few_messages(tmp_path: Path) -> None:
    """10,000 identical errors in 5 s: one opened alert and a bounded number of updates."""
    config = write_config(tmp_path, alerts={"group_wait": "1s", "group_interval": "2s"})
    log = tmp_path / "logs" / "app.log"
    log.touch()
    daemon = DaemonProcess(config)
    try:
        daemon.wait_ready()
        started = time.monotonic()
        with log.open("a") as handle:
            for i in range(10):
                handle.write((ERROR_LINE + "\n") * 1000)
                handle.flush()
                wait_until(lambda i=i: time.monotonic() - started >= (i + 1) * 0.5, what="pace")
        wait_until(lambda: counted(config, "auth.invalid_api_key") == 10_000, timeout=20)
        daemon.wait_for(lambda n: n["count"] == 10_000, timeout=10)
        notes = daemon.notifications()
        assert [n["kind"] for n in notes].count("opened") == 1
        assert len(notes) <= 6, [(n["kind"], n["count"]) for n in notes]
    finally:
        daemon.stop()


def test_garbage_does_not_stop_the_pipeline(tmp_path: Path) -> None:
    """Invalid UTF-8, a 50 MB line without newline and a binary file: the daemon keeps running
    and still alerts on good lines that come after."""
    config = write_config(tmp_path)
    logs = tmp_path / "logs"
    daemon = DaemonProcess(config)
    try:
        daemon.wait_ready()
        (logs / "binary.log").write_bytes(os.urandom(2_000_000))
        with (logs / "app.log").open("ab") as handle:
            handle.write(b"\xff\xfe\xc3\x28 invalid utf-8 \x80\x81\n")
            handle.write(b"y" * 50_000_000)
        append(logs / "other.log", ERROR_LINE)
        daemon.wait_for(opened, timeout=20)
        with (logs / "app.log").open("a") as handle:
            handle.write("\n" + OTHER_ERROR + "\n")
        daemon.wait_for(lambda n: n["category"] == "rate_limit", timeout=20)
        assert daemon.proc.poll() is None
    finally:
        assert daemon.stop() == 0


def test_sighup_with_a_broken_config_keeps_the_old_one(tmp_path: Path) -> None:
    """SIGHUP re-reads the config; a broken one is reported and the old one stays in force."""
    config = write_config(tmp_path)
    log = tmp_path / "logs" / "app.log"
    daemon = DaemonProcess(config)
    try:
        daemon.wait_ready()
        good = config.read_text()
        config.write_text(good.replace('group_wait = "0s"', 'group_wait = "10x"'))
        daemon.signal(signal.SIGHUP)
        wait_until(lambda: "reload failed" in daemon.log(), what="the reload error")
        assert "alerts.group_wait" in daemon.log()
        append(log, ERROR_LINE)
        daemon.wait_for(opened)
        config.write_text(good.replace('"json"', '"text"'))
        daemon.signal(signal.SIGHUP)
        wait_until(lambda: "configuration reloaded" in daemon.log())
        append(log, OTHER_ERROR)
        wait_until(lambda: any("[OPENED]" in line for line in daemon.stdout), what="text output")
    finally:
        daemon.stop()


def test_sd_notify_protocol(tmp_path: Path) -> None:
    """Under systemd: READY=1 once watching, WATCHDOG=1 pings, RELOADING=1/READY=1 around a
    reload, STOPPING=1 at the end, STATUS= lines with a summary."""
    address = str(tmp_path / "notify.sock")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(address)
    receiver.settimeout(10)
    config = write_config(tmp_path)
    daemon = DaemonProcess(config, env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "400000"})
    messages: list[str] = []

    def receive_until(word: str) -> None:
        while not any(word in m for m in messages):
            messages.append(receiver.recv(4096).decode())

    try:
        receive_until("READY=1")
        assert any("STATUS=watching" in m for m in messages)
        receive_until("WATCHDOG=1")
        daemon.signal(signal.SIGHUP)
        receive_until("RELOADING=1")
        messages.clear()
        receive_until("READY=1")
    finally:
        daemon.stop()
        receive_until("STOPPING=1")
        receiver.close()


def test_status_reads_the_running_daemons_state(tmp_path: Path) -> None:
    """`oai400d status --json` shows files, offsets and open alerts while the daemon runs."""
    config = write_config(tmp_path)
    log = tmp_path / "logs" / "app.log"
    append(log, NOISE, ERROR_LINE)
    daemon = DaemonProcess(config)
    try:
        daemon.wait_ready()
        daemon.wait_for(opened)
        report = wait_until(lambda: (r := status(config))["files"] and r)
        assert report["files"][0]["path"] == str(log)
        assert report["files"][0]["offset"] == log.stat().st_size
        assert report["alerts"][0]["count"] == 1 and report["outbox_depth"] == 0
    finally:
        daemon.stop()


def test_sigterm_stops_within_5_seconds(tmp_path: Path) -> None:
    """SIGTERM: clean stop, exit 0, within 5 s, state flushed."""
    config = write_config(tmp_path)
    daemon = DaemonProcess(config)
    daemon.wait_ready()
    started = time.monotonic()
    assert daemon.stop(timeout=5) == 0
    assert time.monotonic() - started < 5
    assert "stopped" in daemon.log()


def test_bad_config_exits_78(tmp_path: Path) -> None:
    """`run` with an invalid config names the key and exits 78 without starting."""
    config = write_config(tmp_path, alerts={"resolve_after": "soon"})
    daemon = DaemonProcess(config)
    assert daemon.proc.wait(30) == 78
    daemon.stop(expect=78)
    assert "alerts.resolve_after" in daemon.log()


def test_an_httpx_status_line_joins_the_detailed_error_that_follows(tmp_path: Path) -> None:
    """openai-python logs `HTTP/1.1 400 Bad Request` just before the exception: one alert with
    the exception's cause, not a second one saying only "400"; a status line alone still alerts."""
    config = write_config(tmp_path)
    log = tmp_path / "logs" / "app.log"
    daemon = DaemonProcess(config)
    request = (
        f'{STAMP}:01,100 INFO httpx: HTTP Request: POST https://api.openai.com/v1/chat/'
        'completions "HTTP/1.1 {status}"'
    )
    try:
        daemon.wait_ready()
        append(log, request.format(status="401 Unauthorized"), ERROR_LINE)
        daemon.wait_for(opened)
        append(log, request.format(status="429 Too Many Requests"))
        (alone,) = daemon.wait_for(lambda n: n["category"] == "rate_limit", timeout=5)
        assert alone["kind"] == "opened"
    finally:
        daemon.stop()
    assert [n["category"] for n in daemon.notifications()] == ["auth.invalid_api_key", "rate_limit"]
    assert counted(config, "auth.invalid_api_key") == 1


def test_old_lines_caught_up_after_a_restart_become_one_summary(tmp_path: Path) -> None:
    """Errors written long ago (older than the backlog window) and read after a restart are
    counted into one "backlog" summary, not announced as a flood of new alerts."""
    config = write_config(tmp_path)
    log = tmp_path / "logs" / "app.log"
    append(log, NOISE)
    daemon = DaemonProcess(config)
    daemon.wait_ready()
    wait_until(lambda: status(config)["files"], what="the file to be followed")
    assert daemon.stop() == 0
    old = [line.replace(STAMP, "2020-01-02 03:04") for line in (ERROR_LINE, OTHER_ERROR)]
    append(log, *(old * 3))
    again = DaemonProcess(config)
    try:
        again.wait_ready()
        (summary,) = again.wait_for(lambda n: n["kind"] == "backlog")
        assert summary["count"] == 6 and len(summary["items"]) == 2
        append(log, ERROR_LINE.replace(STAMP, "2999-01-01 00:00"))  # happening now
        (live,) = again.wait_for(opened)
        assert live["category"] == "auth.invalid_api_key" and live["count"] == 4
    finally:
        again.stop()
    assert [n["kind"] for n in again.notifications()] == ["backlog", "opened"]
