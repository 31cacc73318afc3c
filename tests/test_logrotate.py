"""The README's logrotate example, run by the real `logrotate` against a running daemon and across
a stop: no line lost, none counted twice; and the same example without `delaycompress` loses the
lines written while the daemon was stopped (what the README warns of)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from oai400d.cli import status_report
from oai400d.state import State

from .daemon_harness import ERROR_LINE, NOISE, DaemonProcess, append, wait_until, write_config

README = Path(__file__).parent.parent / "README.md"
README_GLOB = "/var/log/myapp/*.log"


def logrotate() -> str:
    """The logrotate binary, or skip saying how to get it."""
    found = shutil.which("logrotate") or next(
        (p for p in ("/usr/sbin/logrotate", "/sbin/logrotate") if os.access(p, os.X_OK)), None
    )
    if found is None:
        pytest.skip("logrotate is not installed (Debian: apt-get install logrotate; .ci/run does)")
    return found


def readme_config() -> str:
    """The first ```conf block of the README's "Logrotate" section, as a reader would copy it."""
    text = README.read_text(encoding="utf-8")
    section = re.search(r"^## Logrotate\n(.*?)^## ", text, re.S | re.M)
    assert section, "README.md has no '## Logrotate' section"
    block = re.search(r"```conf\n(.*?)```", section.group(1), re.S)
    assert block, "the README's Logrotate section has no ```conf block"
    assert README_GLOB in block.group(1) and "delaycompress" in block.group(1)
    return block.group(1)


class Rotation:
    """A log directory, the README's config pointed at it, and `logrotate -f` with its own state
    file (no root, no system state touched)."""

    def __init__(self, tmp: Path, config_text: str) -> None:
        self.binary = logrotate()
        self.logs = tmp / "logs"
        self.logs.mkdir(exist_ok=True)
        self.live = self.logs / "app.log"
        self.live.touch()
        self.conf = tmp / "logrotate.conf"
        self.conf.write_text(config_text.replace(README_GLOB, str(self.logs / "*.log")))
        self.conf.chmod(0o644)  # logrotate ignores a config others may write
        self.state = tmp / "logrotate.status"

    def rotate(self) -> None:
        result = subprocess.run(
            [self.binary, "-s", str(self.state), "-f", str(self.conf)],
            capture_output=True, text=True, timeout=30, check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def status(config: Path) -> dict[str, Any]:
    """What `oai400d status --json` reports, read in this process (the same function; a command
    per poll would cost half a second each)."""
    state = State(str(config.parent / "state.db"), readonly=True)
    try:
        return status_report(state)
    finally:
        state.close()


def findings(config: Path) -> int:
    """Findings counted in the state DB: the sum of the alerts' counts."""
    return sum(int(a["count"]) for a in status(config)["alerts"])


def caught_up(config: Path, logs: Path) -> bool:
    """Every followed file that still exists as text is read to its end, the live one included."""
    report = status(config)
    on_disk = {f.stat().st_ino: f for f in logs.iterdir() if not f.name.endswith(".gz")}
    read_to: dict[int, int] = {int(f["ino"]): int(f["offset"]) for f in report["files"]}
    live = (logs / "app.log").stat().st_ino
    if live not in read_to:
        return False
    return all(
        offset == on_disk[ino].stat().st_size for ino, offset in read_to.items() if ino in on_disk
    )


def settle(config: Path, logs: Path, expected: int, what: str) -> None:
    """Wait until the findings reach `expected` and every file is read to its end (after which
    no late re-read could add to them)."""
    wait_until(
        lambda: findings(config) >= expected and caught_up(config, logs), timeout=20, what=what
    )
    assert findings(config) == expected, f"{what}: {findings(config)} findings"


def test_the_readme_logrotate_config_loses_and_repeats_no_line(tmp_path: Path) -> None:
    """The README's block (delaycompress), rotated by the real logrotate twice: once while the
    daemon runs (the application still writing to the renamed file for a moment), once while it
    is stopped with unread lines in the live file. Every error line is one finding, exactly."""
    rotation = Rotation(tmp_path, readme_config())
    config = write_config(tmp_path, logs=[str(rotation.logs / "*.log")])
    log = rotation.live
    daemon = DaemonProcess(config)
    try:
        daemon.wait_ready()
        append(log, NOISE, ERROR_LINE, ERROR_LINE, ERROR_LINE)
        settle(config, rotation.logs, 3, "the first three errors")
        rotation.rotate()  # app.log -> app.log.1 (plain), a new app.log
        append(rotation.logs / "app.log.1", ERROR_LINE)  # written before the app reopened
        append(log, ERROR_LINE, NOISE, ERROR_LINE)
        settle(config, rotation.logs, 6, "the errors around a rotation while running")
    finally:
        daemon.stop()
    append(log, ERROR_LINE, ERROR_LINE)  # while stopped, unread
    rotation.rotate()  # app.log.1 -> app.log.2.gz, app.log -> app.log.1 (delaycompress: plain)
    assert (rotation.logs / "app.log.2.gz").exists() and (rotation.logs / "app.log.1").exists()
    append(log, ERROR_LINE, ERROR_LINE)
    daemon = DaemonProcess(config)
    try:
        daemon.wait_ready()
        settle(config, rotation.logs, 10, "the errors written while stopped, and after")
    finally:
        daemon.stop()
    assert findings(config) == 10


def test_without_delaycompress_the_lines_written_while_stopped_are_lost(tmp_path: Path) -> None:
    """The same block without `delaycompress`: the rotated file is compressed at once, so the
    two lines written while the daemon was stopped are never read, and the daemon says so."""
    without = readme_config().replace("    delaycompress\n", "")
    assert "delaycompress" not in without
    rotation = Rotation(tmp_path, without)
    config = write_config(tmp_path, logs=[str(rotation.logs / "*.log")])
    log = rotation.live
    daemon = DaemonProcess(config)
    try:
        daemon.wait_ready()
        append(log, ERROR_LINE)
        settle(config, rotation.logs, 1, "the first error")
    finally:
        daemon.stop()
    append(log, ERROR_LINE, ERROR_LINE)  # while stopped: these two are lost
    rotation.rotate()  # app.log -> app.log.1.gz at once
    assert (rotation.logs / "app.log.1.gz").exists()
    append(log, ERROR_LINE)
    daemon = DaemonProcess(config)
    try:
        daemon.wait_ready()
        settle(config, rotation.logs, 2, "the error after the rotation")
        wait_until(lambda: "is gone" in daemon.log(), what="the warning about the lost lines")
    finally:
        daemon.stop()
    assert findings(config) == 2
