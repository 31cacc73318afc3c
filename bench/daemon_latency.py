#!/usr/bin/env python3
"""Notification latency of `oai400d run`: from one appended error line to its "opened" line.

Starts the daemon on a fresh state directory (console notifications as JSON lines on its
stdout, group_wait 0s), waits until it logs "watching", then runs --trials trials. A trial
appends one OpenAI 404 `model_not_found` line naming a model never seen before
(`gpt-bench-<i>`, so a new fingerprint) with a single write() + flush(), and measures the
time until the daemon prints the matching "opened" notification. A reader thread timestamps
each stdout line with time.monotonic() as it arrives. The next trial starts once that
notification has arrived, after a random 0-20 ms gap so that trials do not fall in step with
the daemon's timers. Prints p50, p90, p99 and max in ms (nearest rank) and a Markdown line.

This module also holds the helpers the other daemon_*.py benchmarks share: the benchmark
config, the work directory, and `Daemon` (the child process with its stdout, stderr,
`status --json` and /proc figures).

With --load-files N the trials run while daemon_sustained.py's writer appends --load-rate
ordinary lines a second (no errors) to N other files: detection latency under load, where the
daemon's passes are busy and its wait before a pass stretches (sources/watch.py).

    python bench/daemon_latency.py                  # 200 trials
    python bench/daemon_latency.py --trials 50 --cmd /work/venv-probe/bin/oai400d
    python bench/daemon_latency.py --trials 100 --load-files 500 --load-rate 10000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

from benchlib import (
    DEFAULT_WORK_DIR,
    command_available,
    cpu_model,
    git_revision,
    resolve_command,
)

# --------------------------------------------------------------------------- shared helpers

CONFIG_TEMPLATE = """\
[logs]
paths = ["{logs}/*.log"]
read_from = "end"
reconcile_interval = "10s"
# multiline_timeout: the default (150ms)

[state]
path = "{state}"

[console]
format = "json"

[alerts]
group_wait = "0s"
group_interval = "1m"
repeat_interval = "4h"
resolve_after = "15m"

[probes]
enabled = false
"""

MARKER = ".oai400d-bench"  # a work directory holds this file, so that only ours is deleted
READY_TEXT = "watching"
CLK_TCK = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024


def error_line(model: str, when: datetime | None = None) -> str:
    """An openai-python v1 404 log line; each distinct model is a distinct fingerprint."""
    t = when or datetime.now()
    return (
        f"{t:%Y-%m-%d %H:%M:%S},{t.microsecond // 1000:03d} ERROR worker: openai.NotFoundError: "
        f"Error code: 404 - {{'error': {{'message': 'The model `{model}` does not exist or you "
        "do not have access to it.', 'type': 'invalid_request_error', 'param': None, "
        "'code': 'model_not_found'}}\n"
    )


def prepare_work_dir(work: Path) -> Path:
    """Empty `work` (refusing a non-empty directory that is not ours), then create work/logs."""
    if work.exists():
        if any(work.iterdir()) and not (work / MARKER).exists():
            raise SystemExit(
                f"error: {work} is not empty and not an oai400d-bench work directory; "
                "pass another --dir"
            )
        shutil.rmtree(work)
    logs = work / "logs"
    logs.mkdir(parents=True)
    (work / MARKER).write_text("work directory of bench/daemon_*.py; deleted after each run\n")
    return logs


def clean_work_dir(work: Path) -> None:
    if (work / MARKER).exists():
        shutil.rmtree(work, ignore_errors=True)


def write_config(work: Path) -> Path:
    config = work / "config.toml"
    config.write_text(CONFIG_TEMPLATE.format(logs=work / "logs", state=work / "state.db"))
    return config


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in 0..100)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


@dataclass(frozen=True)
class Stopped:
    returncode: int | None  # None: could not be reaped
    killed: bool  # SIGTERM was not enough within the grace period
    died_early: bool  # it had exited before the benchmark asked it to stop

    @property
    def clean(self) -> bool:
        return not self.died_early and not self.killed and self.returncode == 0


class Daemon:
    """`oai400d run --config CONFIG` as a child process of the benchmark.

    A thread reads its stdout and keeps every line, parsed as JSON when it is one, stamped
    with time.monotonic() when it arrived; another keeps the tail of its stderr and notes
    the "watching" line. CPU time and memory come from /proc/<pid>.
    """

    def __init__(self, cmd: Sequence[str], config: Path) -> None:
        self.cmd = list(cmd)
        self.config = config
        self.notifications: list[tuple[float, dict[str, Any]]] = []
        self.other_stdout: list[str] = []  # stdout lines that are not JSON objects
        self.stderr_lines: deque[str] = deque(maxlen=200)
        self.stderr_count = 0
        self.ready_at: float | None = None
        self._cond = threading.Condition()
        self._ready = threading.Event()
        self._threads: list[threading.Thread] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopped: Stopped | None = None

    # --- process --------------------------------------------------------------------------

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise RuntimeError("daemon not started")
        return self._proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    def start(self) -> None:
        self.started_at = time.monotonic()
        self._proc = subprocess.Popen(
            [*self.cmd, "run", "--config", str(self.config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: a kill reaches its children too
        )
        assert self._proc.stdout is not None and self._proc.stderr is not None
        for target, stream in (
            (self._read_stdout, self._proc.stdout),
            (self._read_stderr, self._proc.stderr),
        ):
            thread = threading.Thread(target=target, args=(stream,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def boot(self, files: int) -> bool:
        """Start, wait for "watching" and until `status --json` lists `files` files; say so."""
        self.start()
        if not self.wait_ready():
            print(f"ERROR: the daemon did not log {READY_TEXT!r} within 60 s")
            return False
        assert self.ready_at is not None
        print(f"daemon pid {self.pid} ready in {self.ready_at - self.started_at:.2f} s")
        ok, listed, waited = self.wait_files(files, timeout=60.0)
        print(f"status --json lists {listed}/{files} files after {waited:.2f} s")
        if not ok:
            print("ERROR: not every file was listed within 60 s")
        return ok

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def wait_ready(self, timeout: float = 60.0) -> bool:
        """Until the daemon logs its "watching" line; False if it exits or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if not self.alive() or time.monotonic() >= deadline:
                return False
        return True

    def stop(self, grace: float = 5.0) -> Stopped:
        """SIGTERM, then SIGKILL to its process group after `grace` seconds."""
        if self._stopped is not None:
            return self._stopped
        proc = self.proc
        died_early = proc.poll() is not None
        killed = False
        if not died_early:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                killed = True
        # Whatever is left of its process group (the daemon if it hung, or children).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        try:
            returncode: int | None = proc.wait(5.0)
        except subprocess.TimeoutExpired:
            returncode = None
        for thread in self._threads:
            thread.join(2.0)
        self._stopped = Stopped(returncode, killed, died_early)
        return self._stopped

    # --- output ---------------------------------------------------------------------------

    def _read_stdout(self, stream: IO[bytes]) -> None:
        for raw in stream:
            now = time.monotonic()
            text = raw.decode("utf-8", "replace").rstrip("\n")
            try:
                obj = json.loads(text)
            except ValueError:
                obj = None
            with self._cond:
                if isinstance(obj, dict):
                    self.notifications.append((now, obj))
                else:
                    self.other_stdout.append(text)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _read_stderr(self, stream: IO[bytes]) -> None:
        for raw in stream:
            text = raw.decode("utf-8", "replace").rstrip("\n")
            self.stderr_lines.append(text)
            self.stderr_count += 1
            if not self._ready.is_set() and READY_TEXT in text:
                self.ready_at = time.monotonic()
                self._ready.set()

    def wait_for(
        self, match: Callable[[dict[str, Any]], bool], start: int, timeout: float
    ) -> tuple[int, float, dict[str, Any]] | None:
        """The first notification at index >= start that matches: (index, arrival, object)."""
        deadline = time.monotonic() + timeout
        index = start
        with self._cond:
            while True:
                while index < len(self.notifications):
                    arrived, obj = self.notifications[index]
                    if match(obj):
                        return index, arrived, obj
                    index += 1
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._proc is None or self._proc.poll() is not None:
                    return None
                self._cond.wait(min(remaining, 0.2))

    def notification_count(self) -> int:
        with self._cond:
            return len(self.notifications)

    def stderr_tail(self, n: int = 15) -> str:
        return "\n".join(list(self.stderr_lines)[-n:])

    # --- status --json --------------------------------------------------------------------

    def status(self, timeout: float = 60.0) -> dict[str, Any]:
        """`oai400d status --json --config CONFIG`, parsed."""
        done = subprocess.run(
            [*self.cmd, "status", "--json", "--config", str(self.config)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"status --json exit {done.returncode}: {done.stderr.strip()}")
        report = json.loads(done.stdout)
        if not isinstance(report, dict):
            raise RuntimeError(f"status --json printed {type(report).__name__}, not an object")
        return report

    def wait_files(self, n: int, timeout: float = 60.0) -> tuple[bool, int, float]:
        """Poll `status --json` until it lists at least n files: (ok, listed, seconds)."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        listed = 0
        while True:
            listed = len(self.status().get("files", []))
            if listed >= n:
                return True, listed, time.monotonic() - t0
            if time.monotonic() >= deadline or not self.alive():
                return False, listed, time.monotonic() - t0
            time.sleep(0.2)

    # --- /proc ----------------------------------------------------------------------------

    def cpu_seconds(self) -> float:
        """utime+stime of the daemon (all threads), of its children it reaped, and of its
        live descendants, in seconds (clock-tick resolution)."""
        ticks = 0
        for pid in [self.pid, *descendants(self.pid)]:
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = proc_stat_fields(pid)
                ticks += int(fields[11]) + int(fields[12])  # utime, stime
                if pid == self.pid:
                    ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
        return ticks / CLK_TCK

    def memory_kib(self) -> dict[str, int]:
        """VmRSS, VmHWM (peak RSS) and the like from /proc/<pid>/status, in KiB."""
        out: dict[str, int] = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.startswith("Vm") and value.strip().endswith("kB"):
                    out[key] = int(value.split()[0])
        return out

    def context_switches(self) -> int:
        """Voluntary context switches summed over the daemon's threads: roughly, wake-ups."""
        total = 0
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{self.pid}/task"):
                with contextlib.suppress(OSError), open(f"/proc/{self.pid}/task/{tid}/status") as f:
                    for line in f:
                        if line.startswith("voluntary_ctxt_switches:"):
                            total += int(line.split()[1])
        return total

    def threads(self) -> int:
        try:
            return len(os.listdir(f"/proc/{self.pid}/task"))
        except OSError:
            return 0


def proc_stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat from field 3 (state) on: index 11 is utime, 12 stime, 13 cutime."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    return text[text.rindex(")") + 2 :].split()


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{parent}/task"):
                with contextlib.suppress(OSError), open(f"/proc/{parent}/task/{tid}/children") as f:
                    kids = [int(k) for k in f.read().split()]
                    found.extend(kids)
                    todo.extend(kids)
    return found


def report_stop(stopped: Stopped, daemon: Daemon) -> None:
    """Print how the daemon ended when that was not a clean SIGTERM stop."""
    if stopped.clean:
        return
    if stopped.died_early:
        print(f"ERROR: the daemon died during the benchmark (exit {stopped.returncode})")
    elif stopped.killed:
        print("ERROR: the daemon did not exit within 5 s of SIGTERM; killed")
    else:
        print(f"ERROR: the daemon exited {stopped.returncode} after SIGTERM (expected 0)")
    print(f"daemon stderr (last lines):\n{daemon.stderr_tail()}")


def common_arguments(ap: argparse.ArgumentParser, default_dir: Path) -> None:
    ap.add_argument("--cmd", help="command under test (default: $OAI400D_CMD, PATH, .venv)")
    ap.add_argument(
        "--dir", type=Path, default=default_dir, help=f"work directory (default {default_dir})"
    )
    ap.add_argument("--keep", action="store_true", help="keep the work directory afterwards")


def resolve_or_fail(explicit: str | None) -> list[str] | None:
    cmd = resolve_command(explicit)
    if not command_available(cmd):
        print(
            f"error: command under test {cmd[0]!r} not found; install the project "
            "(.venv/bin/oai400d) or set OAI400D_CMD / --cmd",
            file=sys.stderr,
        )
        return None
    return cmd


def host_line() -> str:
    return f"{cpu_model()}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}"


# --------------------------------------------------------------------------- the benchmark


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=200, help="timed trials (default 200)")
    ap.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait per notification (10)"
    )
    ap.add_argument("--seed", type=int, default=400, help="seed of the gaps between trials")
    ap.add_argument(
        "--load-files", type=int, default=0, help="other files written during the trials (0)"
    )
    ap.add_argument(
        "--load-rate", type=float, default=10000, help="lines/s into them, in all (10000)"
    )
    common_arguments(ap, DEFAULT_WORK_DIR / "daemon-latency")
    args = ap.parse_args(argv)
    if args.trials < 1:
        ap.error("--trials must be at least 1")
    cmd = resolve_or_fail(args.cmd)
    if cmd is None:
        return 2

    logs = prepare_work_dir(args.dir)
    log = logs / "app.log"
    log.write_text("2026-11-25 10:00:00,000 INFO app: started\n")
    load = [logs / f"app-{i:02d}.log" for i in range(args.load_files)]  # daemon_sustained's
    for path in load:
        path.write_text("2026-11-25 10:00:00,000 INFO app: started\n")
    writer: subprocess.Popen[str] | None = None
    daemon = Daemon(cmd, write_config(args.dir))
    rng = random.Random(args.seed)
    latencies: list[float] = []
    missed: list[int] = []
    failed = False
    mem: dict[str, int] = {}
    try:
        daemon.start()
        ready = daemon.wait_ready()
        if ready:
            assert daemon.ready_at is not None
            print(f"daemon pid {daemon.pid} ready in {daemon.ready_at - daemon.started_at:.2f} s")
            print(f"host: {host_line()}")
        else:
            print(f"ERROR: the daemon did not log {READY_TEXT!r} within 60 s")
            failed = True
        if ready and load:
            listed_ok, listed, _ = daemon.wait_files(len(load) + 1)
            print(f"status --json lists {listed}/{len(load) + 1} files")
            failed = failed or not listed_ok
            writer = start_load(logs, len(load), args.load_rate, args.trials * 0.5 + 60)
            print(f"load: {args.load_rate:,.0f} lines/s into {len(load)} other files")
        with open(log, "ab") as f:
            for i in range(args.trials if ready else 0):
                model = f"gpt-bench-{i}"
                data = error_line(model).encode()
                start = daemon.notification_count()
                t0 = time.monotonic()
                f.write(data)
                f.flush()
                got = daemon.wait_for(opened_for(model), start, args.timeout)
                if got is None:
                    if not daemon.alive():
                        failed = True
                        break
                    missed.append(i)
                    print(f"trial {i}: no 'opened' notification for {model} in {args.timeout} s")
                    continue
                latencies.append((got[1] - t0) * 1000)
                time.sleep(rng.uniform(0.0, 0.020))
        mem = daemon.memory_kib() if daemon.alive() else {}
    finally:
        if writer is not None:
            writer.kill()
            writer.wait()
        stopped = daemon.stop()
        if not args.keep:
            clean_work_dir(args.dir)
    report_stop(stopped, daemon)
    failed = failed or not stopped.clean

    kinds: dict[str, int] = {}
    for _, obj in daemon.notifications:
        kinds[str(obj.get("kind"))] = kinds.get(str(obj.get("kind")), 0) + 1
    run = len(latencies) + len(missed)
    print(f"trials: {run} of {args.trials}, notified: {len(latencies)}, missed: {len(missed)}")
    print(f"notifications by kind: {kinds}")
    if daemon.other_stdout:
        print(
            f"odd: {len(daemon.other_stdout)} stdout line(s) not JSON objects, first: "
            f"{daemon.other_stdout[0][:200]!r}"
        )
    if not latencies:
        print("no latency measured")
        return 1
    s = sorted(latencies)
    p50, p90, p99 = (percentile(s, q) for q in (50, 90, 99))
    print(
        f"latency ms: min {s[0]:.1f}  p50 {p50:.1f}  p90 {p90:.1f}  p99 {p99:.1f}  "
        f"max {s[-1]:.1f}  mean {sum(s) / len(s):.1f}  (first trial {latencies[0]:.1f})"
    )
    if mem:
        print(
            f"daemon RSS at the end {mem.get('VmRSS', 0) / 1024:.1f} MiB, "
            f"peak {mem.get('VmHWM', 0) / 1024:.1f} MiB"
        )
    ok = p99 < 250 and not missed
    print(f"target p99 < 250 ms and no missed notification: {verdict(ok)}")
    under = (
        f", while {args.load_rate:,.0f} lines/s go into {len(load)} other files" if load else ""
    )
    md = (
        f"- {date.today()}, {git_revision()}, {os.cpu_count()} CPUs: `oai400d run`, one error "
        f'line appended → its "opened" notification on stdout{under}, {len(latencies)} trials'
        f"{f' ({len(missed)} missed)' if missed else ''}: p50 {p50:.0f} ms, p90 {p90:.0f} ms, "
        f"p99 {p99:.0f} ms, max {s[-1]:.0f} ms (target p99 < 250 ms: {verdict(ok)})"
    )
    if failed:
        print("no Markdown line: the daemon failed (see above)")
        return 1
    print()
    print("Markdown for BENCHMARKS.md:")
    print(md)
    return 1 if missed else 0


def start_load(logs: Path, files: int, rate: float, seconds: float) -> subprocess.Popen[str]:
    """daemon_sustained.py's writer: ordinary lines only (no error within its run)."""
    import daemon_sustained  # (here: it imports this module's helpers at its top)

    return daemon_sustained.start_writer(logs, files, rate, seconds, 10**12, 400)


def opened_for(model: str) -> Callable[[dict[str, Any]], bool]:
    quoted = f"`{model}`"

    def match(obj: dict[str, Any]) -> bool:
        if obj.get("kind") != "opened":
            return False
        return obj.get("model") == model or quoted in str(obj.get("excerpt", ""))

    return match


if __name__ == "__main__":
    sys.exit(main())
