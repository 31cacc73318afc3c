"""Many followed files, end to end: more files than descriptors, and a log directory that is
removed and created again. The daemon runs as a subprocess on real files."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests import daemon_harness
from tests.daemon_harness import NOISE, STAMP, DaemonProcess, append, write_config

FILES = 1500
WRITTEN = 30
SOFT_AND_HARD = 1024  # the usual soft limit, made the hard one too: raising it cannot help
UNIT = Path(__file__).parent.parent / "systemd" / "oai400d.service"


def model_error(model: str) -> str:
    """An openai-python 404 line; each model is its own alert."""
    return (
        f"{STAMP}:03,000 ERROR worker: openai.NotFoundError: Error code: 404 - {{'error': "
        f"{{'message': 'The model `{model}` does not exist or you do not have access to it.', "
        "'type': 'invalid_request_error', 'param': None, 'code': 'model_not_found'}}"
    )


def opened_for(model: str) -> Callable[[dict[str, Any]], bool]:
    return lambda n: n.get("kind") == "opened" and f"`{model}`" in str(n)


@contextmanager
def open_files_limit(limit: int) -> Iterator[None]:
    """Daemons started inside get RLIMIT_NOFILE (limit, limit), as `ulimit -n` would give."""
    real = subprocess.Popen

    def limited(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault(
            "preexec_fn",
            lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit)),
        )
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(daemon_harness.subprocess, "Popen", limited)
        yield


def test_an_error_in_each_of_30_files_among_1500_under_a_1024_descriptor_limit(
    tmp_path: Path,
) -> None:
    """1,500 files with `ulimit -n 1024` (soft and hard): the least recently active files are
    closed and reopened when written, so an error written to each of 30 files spread over all
    of them opens exactly 30 alerts; the limit is said once, and no file is called unreadable."""
    config = write_config(tmp_path)
    logs = tmp_path / "logs"
    for index in range(FILES):
        (logs / f"app-{index:04d}.log").write_text(NOISE + "\n")
    with open_files_limit(SOFT_AND_HARD):
        daemon = DaemonProcess(config)
    try:
        daemon.wait_ready(30)
        chosen = [round(k * (FILES - 1) / (WRITTEN - 1)) for k in range(WRITTEN)]
        for index in chosen:
            append(logs / f"app-{index:04d}.log", model_error(f"gpt-many-{index}"))
        daemon.wait_for(lambda n: n.get("kind") == "opened", count=WRITTEN, timeout=30)
        opened = [n for n in daemon.notifications() if n.get("kind") == "opened"]
        for index in chosen:
            assert len([n for n in opened if opened_for(f"gpt-many-{index}")(n)]) == 1, index
        log = daemon.log()
        assert log.count("open files limit") == 1, log
        assert "cannot read" not in log, log
    finally:
        daemon.stop(timeout=15)
    assert len([n for n in daemon.notifications() if n.get("kind") == "opened"]) == WRITTEN


def test_an_error_in_a_log_directory_removed_and_created_again_is_noticed_at_once(
    tmp_path: Path,
) -> None:
    """No rescan helps here (reconcile_interval 1h): the directory's parent is watched, so the
    new directory and its files are followed as soon as they appear, removed or renamed away."""
    config = write_config(tmp_path)
    text = config.read_text().replace('reconcile_interval = "1s"', 'reconcile_interval = "1h"')
    config.write_text(text)
    logs = tmp_path / "logs"
    for index in range(20):
        (logs / f"app-{index}.log").write_text(NOISE + "\n")
    daemon = DaemonProcess(config)
    try:
        daemon.wait_ready()
        shutil.rmtree(logs)
        logs.mkdir()
        append(logs / "app-0.log", model_error("gpt-after-removal"))
        daemon.wait_for(opened_for("gpt-after-removal"), timeout=2.5)
        logs.rename(tmp_path / "logs.old")
        logs.mkdir()
        append(logs / "fresh.log", model_error("gpt-after-rename"))
        daemon.wait_for(opened_for("gpt-after-rename"), timeout=2.5)
    finally:
        daemon.stop()


def test_the_unit_gives_room_for_many_files() -> None:
    """LimitNOFILE= sets soft and hard alike, far above the 1,024 default soft limit."""
    values = [
        line.partition("=")[2].strip()
        for line in UNIT.read_text(encoding="utf-8").splitlines()
        if line.strip().startswith("LimitNOFILE=")
    ]
    assert len(values) == 1 and ":" not in values[0] and int(values[0]) >= 65536


def test_malloc_arenas_are_limited_by_the_unit_and_by_the_daemon() -> None:
    """Per-thread malloc arenas grew RSS past 80 MB with 500 busy files: the unit sets
    MALLOC_ARENA_MAX=2, and the daemon sets it itself on glibc (in a child, as `run` would:
    not in the test process)."""
    environment = [
        line.partition("=")[2].strip()
        for line in UNIT.read_text(encoding="utf-8").splitlines()
        if line.strip().startswith("Environment=")
    ]
    assert "MALLOC_ARENA_MAX=2" in " ".join(environment).split()
    probe = (
        "import os, sys\n"
        "from oai400d.service import limit_malloc_arenas\n"
        "glibc = bool(os.confstr('CS_GNU_LIBC_VERSION'))\n"
        "sys.exit(0 if limit_malloc_arenas() == glibc else 1)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    assert subprocess.run([sys.executable, "-c", probe], env=env, check=False).returncode == 0
    env["MALLOC_ARENA_MAX"] = "4"  # the environment's own choice is left alone
    probe_env = probe.replace("== glibc", "is False")
    assert subprocess.run([sys.executable, "-c", probe_env], env=env, check=False).returncode == 0
