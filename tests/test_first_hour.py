"""The README's first hour: the daemon's two start-up lines say what is watched, where the state
is, where notifications go, and that it is waiting; the Quick start shows them as they are."""

from __future__ import annotations

import re
from pathlib import Path

from .daemon_harness import DaemonProcess, wait_until, write_config

README = Path(__file__).parent.parent / "README.md"


def readme_startup_lines() -> list[str]:
    """The start-up lines the Quick start shows, without their timestamps."""
    text = README.read_text(encoding="utf-8")
    heading = r"^### The first minutes: what appears, and when\n(.*?)^#"
    section = re.search(heading, text, re.S | re.M)
    assert section, "README.md's Quick start has no 'The first minutes' part"
    block = re.search(r"```\n(.*?)```", section.group(1), re.S)
    assert block, "no start-up lines in 'The first minutes'"
    return [line.split(" INFO ", 1)[1] for line in block.group(1).splitlines() if " INFO " in line]


def test_the_startup_lines_say_what_is_watched_and_that_it_waits(tmp_path: Path) -> None:
    """With the defaults the README assumes (group_wait 10s, probes every 5m and 2m), the daemon
    logs exactly the README's second line, and a first line naming the glob, how many files it
    matches now, the state DB and the notifier; then nothing more while no error is written."""
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "app.log").write_text("INFO starting\n", encoding="utf-8")
    config = write_config(
        tmp_path,
        alerts={"group_wait": "10s"},
        probes={
            "enabled": True,
            "api_key_interval": "5m",
            "status_interval": "2m",
            # nothing listens there: no test reaches the internet
            "status_url": "http://127.0.0.1:9/api/v2/summary.json",
        },
        console={"format": "text"},
    )
    first, second = readme_startup_lines()
    daemon = DaemonProcess(config)
    try:
        wait_until(lambda: "ready, waiting" in daemon.log(), what="the second start-up line")
    finally:
        daemon.stop()
    lines = [line.split(" ", 2)[2] for line in daemon.log().splitlines()]  # no timestamp
    glob = tmp_path / "logs" / "*.log"
    assert lines[0] == (
        f"INFO oai400d: watching {glob} (1 file(s) now, new matching files too); state in "
        f"{tmp_path / 'state.db'}; notifications to the console (stdout, text)"
    )
    assert lines[1] == f"INFO {second}"
    assert f"INFO {first}" == lines[0].replace(str(glob), "./logs/*.log").replace(
        str(tmp_path / "state.db"), "./oai400d-state.db"
    ).replace("1 file(s)", "0 file(s)")
    assert lines[2:] == ["INFO oai400d: stopped"], daemon.log()
