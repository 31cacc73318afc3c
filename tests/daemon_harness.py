"""Runs `oai400d run` as a subprocess against real files, and watches what it prints."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DEFAULT_ALERTS = {
    "group_wait": "0s",
    "group_interval": "1s",
    "repeat_interval": "1h",
    "resolve_after": "1h",
}


def write_config(tmp: Path, logs: list[str] | None = None, **sections: Any) -> Path:
    """A config for a test: logs under tmp/logs, state in tmp, console JSON, fast alerts. A
    section given as a list of dicts is an array of tables (`webhook=[{...}]`: [[webhook]])."""
    data: dict[str, dict[str, Any]] = {
        "logs": {
            "paths": logs or [str(tmp / "logs" / "*.log")],
            "read_from": "beginning",
            "reconcile_interval": "1s",
            "multiline_timeout": "100ms",
        },
        "state": {"path": str(tmp / "state.db")},
        "console": {"format": "json"},
        "alerts": dict(DEFAULT_ALERTS),
        "probes": {"enabled": False},
    }
    tables: dict[str, list[dict[str, Any]]] = {}
    for name, values in sections.items():
        if isinstance(values, list):
            tables[name] = values
        else:
            data.setdefault(name, {}).update(values)
    lines = []
    for name, values in data.items():
        lines.append(f"[{name}]")
        for key, value in values.items():
            lines.append(f"{key} = {json.dumps(value)}")
    for name, entries in tables.items():
        for entry in entries:
            lines.append(f"[[{name}]]")
            for key, value in entry.items():
                lines.append(f"{key} = {json.dumps(value)}")
    path = tmp / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    (tmp / "logs").mkdir(exist_ok=True)
    return path


def wait_until(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll `condition` until it returns something truthy; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)  # polling interval, not synchronisation: the condition decides


class DaemonProcess:
    """`oai400d run --config PATH` in a subprocess; stdout JSON lines are collected as they come."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SLACK_"))}
        full_env.pop("NOTIFY_SOCKET", None)
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "oai400d.cli", "run", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
        )
        self._lock = threading.Lock()
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: Any, sink: list[str]) -> None:
        for raw in iter(stream.readline, b""):
            with self._lock:
                sink.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def notifications(self) -> list[dict[str, Any]]:
        with self._lock:
            lines = list(self.stdout)
        return [json.loads(line) for line in lines if line.startswith("{")]

    def log(self) -> str:
        with self._lock:
            return "\n".join(self.stderr)

    def wait_ready(self, timeout: float = 15.0) -> None:
        wait_until(
            lambda: "watching" in self.log() or self.proc.poll() is not None,
            timeout,
            "the daemon to start",
        )
        assert self.proc.poll() is None, self.log()

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], count: int = 1, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """Wait until `count` notifications satisfy `predicate`; return them."""

        def enough() -> list[dict[str, Any]]:
            found = [n for n in self.notifications() if predicate(n)]
            return found if len(found) >= count else []

        try:
            return list(wait_until(enough, timeout, f"{count} matching notification(s)"))
        except AssertionError:
            raise AssertionError(
                f"{self.notifications()!r}\n--- stderr ---\n{self.log()}"
            ) from None

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def metrics_url(self) -> str:
        """The URL of the metrics endpoint the daemon says it listens on (a free port)."""
        found = wait_until(
            lambda: re.search(r"metrics on (http://127\.0\.0\.1:\d+/metrics)", self.log()),
            what="the metrics URL in the log",
        )
        return str(found.group(1))

    def stop(self, timeout: float = 5.0, expect: int | None = 0) -> int:
        """SIGTERM and wait; the daemon must be gone within `timeout` and (unless `expect` is
        None) have exited with `expect`: a clean stop is 0, whatever the test checked before."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        for reader in self._readers:
            reader.join(2)
        if expect is not None and code != expect:
            raise AssertionError(f"the daemon exited with {code}, not {expect}:\n{self.log()}")
        return code

    def kill(self) -> None:
        """kill -9: no chance to flush anything."""
        self.proc.kill()
        self.proc.wait(5)
        for reader in self._readers:
            reader.join(2)


def status(config: Path) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "oai400d.cli", "status", "--json", "--config", str(config)],
        capture_output=True,
        check=True,
        timeout=30,
    )
    data: dict[str, Any] = json.loads(result.stdout)
    return data


# Lines stamped with the time the tests run: a caught-up line with an old leading timestamp goes
# into the backlog summary instead of opening an alert, so a fixed date would rot.
STAMP = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")

ERROR_LINE = (
    f"{STAMP}:01,123 ERROR worker: openai.AuthenticationError: Error code: 401 - {{'error': "
    "{'message': 'Incorrect API key provided: sk-proj-****************************abcd. You can "
    "find your API key at https://platform.openai.com/account/api-keys.', 'type': "
    "'invalid_request_error', 'param': None, 'code': 'invalid_api_key'}}"
)
OTHER_ERROR = (
    f"{STAMP}:02,000 ERROR worker: openai.RateLimitError: Error code: 429 - {{'error': "
    "{'message': 'Rate limit reached for gpt-4o in organization org-abcdef123456 on tokens per min "
    "(TPM): Limit 30000, Used 29500, Requested 900. Please try again in 1.2s.', 'type': 'tokens', "
    "'param': None, 'code': 'rate_limit_exceeded'}}"
)
NOISE = f"{STAMP}:00,000 INFO web: GET /health 200 1ms"


def append(path: Path, *lines: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        for line in lines:
            handle.write(line + "\n")
