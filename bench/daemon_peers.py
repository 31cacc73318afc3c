#!/usr/bin/env python3
"""`oai400d run` against fail2ban on the same live load, one after the other in the same run.

The load is daemon_sustained.py's writer (the same child process, imported from there): --rate
lines/s in all (default 10,000) appended to --files files (10) for --seconds (30), a batch every
10 ms, ordinary web-app lines with one single-line OpenAI error in --error-every (1000). For each
tool in turn (A B, or A B A B ... with --rounds), the files are created afresh (20 ordinary lines
each), the tool is started and waited for until it follows every file, the writer runs, and then
the script waits until the tool has caught up. Per tool:

  CPU       utime+stime of its process tree from /proc over the writing time, % of one core;
  RSS       VmRSS summed over its process tree at each sample, and the main process's peak;
  lag       oai400d: the sum over files of (size - offset in `status --json`), in seconds of
            writing; fail2ban: the error lines written by the time of the query that its
            "Total failed" does not count yet, in seconds of writing (resolution: one error
            line, 0.1 s at the defaults); kept up = every sample <= 1 s and drained within 5 s;
  counted   oai400d: its alert counts (findings) against the error lines written; fail2ban: its
            "Total failed" (matched lines) against `grep -E -c` of its 15 regexes over the files.

fail2ban is Debian's package (`fail2ban-server -f`, in the foreground as this script's child)
with a configuration of its own under the work directory (socket, pid file, SQLite DB, log): one
jail over the files, a filter of 15 regexes (classify_throughput.py's 14 grep patterns, one per
taxonomy category, plus one for unclassified OpenAI errors), backend pyinotify when fail2ban's
Python has it (else polling), no actions. When fail2ban-server is missing, the script installs
it with `apt-get install -y fail2ban` as root or through `sudo -n`; when it cannot, it says why
and measures oai400d alone. Debian starts the system's fail2ban service on install where an init
system runs; that one is not this benchmark's and is left alone (the script says so).

    python bench/daemon_peers.py                           # 10,000 lines/s, 10 files, 30 s
    python bench/daemon_peers.py --seconds 10 --rounds 2   # A B A B
    python bench/daemon_peers.py --files 500 --seconds 60
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

import daemon_sustained
import gen_log
from benchlib import DEFAULT_WORK_DIR, git_revision
from classify_throughput import CATEGORY_PATTERNS
from daemon_latency import (
    CLK_TCK,
    Daemon,
    clean_work_dir,
    common_arguments,
    descendants,
    host_line,
    prepare_work_dir,
    proc_stat_fields,
    report_stop,
    resolve_or_fail,
    verdict,
    write_config,
)

LAG_TARGET_S = 1.0
DRAIN_TIMEOUT_S = 60.0
DRAIN_TARGET_S = 5.0
JAIL = "oai400d-bench"
INITIAL_LINES = 20  # ordinary lines in each file before a tool starts

# One regex per taxonomy category: the grep baseline's 14, plus `unclassified` (an OpenAI error
# whose cause no rule knows still shows its client's exception or its body).
FAIL2BAN_PATTERNS: dict[str, str] = {
    **CATEGORY_PATTERNS,
    "unclassified": r"openai\.[A-Za-z]*Error|Error code: [45][0-9][0-9] - \{'error'",
}

FAIL2BAN_CONF = """\
[Definition]
loglevel = INFO
logtarget = {dir}/fail2ban.log
socket = {dir}/fail2ban.sock
pidfile = {dir}/fail2ban.pid
dbfile = {dir}/fail2ban.sqlite3
dbpurgeage = 1d
"""

JAIL_CONF = """\
[DEFAULT]
backend = {backend}
usedns = no
ignoreself = false
maxretry = 5
findtime = 10m
bantime = 10m
action =

[{jail}]
enabled = true
filter = {jail}
logpath = {logs}/app-*.log
"""


def filter_conf() -> str:
    """The filter: each pattern as its own failregex, the matched text as the failure id (no
    host in these lines); `%` doubled for fail2ban's config interpolation."""
    lines = [f"<F-ID>(?:{p.replace('%', '%%')})</F-ID>" for p in FAIL2BAN_PATTERNS.values()]
    return "[Definition]\nfailregex = " + "\n            ".join(lines) + "\nignoreregex =\n"


# --------------------------------------------------------------------------- /proc


def tree_cpu_seconds(pid: int) -> float:
    """utime+stime of pid (all threads, and its reaped children) and of its live descendants."""
    ticks = 0
    for p in [pid, *descendants(pid)]:
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = proc_stat_fields(p)
            ticks += int(fields[11]) + int(fields[12])
            if p == pid:
                ticks += int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK


def status_kib(pid: int, key: str) -> int:
    with contextlib.suppress(OSError, ValueError), open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def tree_rss_kib(pid: int) -> int:
    return sum(status_kib(p, "VmRSS") for p in [pid, *descendants(pid)])


# --------------------------------------------------------------------------- the tools


class Subject(Protocol):
    """What the benchmark needs of a tool under load."""

    name: str

    def start(self) -> bool: ...  # started and following every file; False says why it failed

    def alive(self) -> bool: ...

    def cpu_seconds(self) -> float: ...

    def rss_kib(self) -> int: ...

    def peak_kib(self) -> int: ...

    def lag_s(self, elapsed_s: float) -> float: ...  # seconds of writing behind, now

    def counted(self) -> int: ...

    def stop(self) -> str: ...  # "" when it stopped cleanly, else what went wrong


@dataclass(frozen=True)
class Load:
    """The writer's parameters, and the files it writes."""

    paths: tuple[Path, ...]
    rate: float
    error_every: int


class Oai400d:
    """`oai400d run` (daemon_latency.Daemon) with daemon_sustained.py's config and lag."""

    name = "oai400d"

    def __init__(self, cmd: list[str], work: Path, load: Load) -> None:
        self.load = load
        # A fresh state DB for each round: positions and alert counts of this round only.
        for old in work.glob("state.db*"):
            old.unlink()
        self.daemon = Daemon(cmd, write_config(work))
        self.sizes0: list[int] = []
        self._stopped = ""

    def start(self) -> bool:
        ok = self.daemon.boot(len(self.load.paths))
        self.sizes0 = daemon_sustained.sizes_of(list(self.load.paths))
        return ok

    def alive(self) -> bool:
        return self.daemon.alive()

    def cpu_seconds(self) -> float:
        return self.daemon.cpu_seconds()

    def rss_kib(self) -> int:
        return tree_rss_kib(self.daemon.pid)

    def peak_kib(self) -> int:
        return status_kib(self.daemon.pid, "VmHWM")

    def lag_s(self, elapsed_s: float) -> float:
        paths = list(self.load.paths)
        status = self.daemon.status()
        sizes = daemon_sustained.sizes_of(paths)  # after status: it reads the DB at its end
        lag, _ = daemon_sustained.lag_of(paths, sizes, status)
        written = sum(sizes) - sum(self.sizes0)
        byte_rate = written / elapsed_s if elapsed_s > 0 else 0.0
        return lag / byte_rate if byte_rate > 0 else (0.0 if lag == 0 else float("inf"))

    def counted(self) -> int:
        return sum(int(a["count"]) for a in self.daemon.status().get("alerts", []))

    def stop(self) -> str:
        stopped = self.daemon.stop()
        if stopped.clean:
            return ""
        report_stop(stopped, self.daemon)
        return "did not stop cleanly"


def fail2ban_python() -> str | None:
    """The interpreter of fail2ban-server's #! line, or None when fail2ban is not installed."""
    server = shutil.which("fail2ban-server")
    if server is None:
        return None
    with contextlib.suppress(OSError), open(server, "rb") as f:
        first = f.readline().decode("utf-8", "replace").strip()
        if first.startswith("#!"):
            return first[2:].split()[0]
    return sys.executable


def install_fail2ban() -> str:
    """Install Debian's fail2ban when it is missing: "" when it is there, else why not."""
    if shutil.which("fail2ban-server") and shutil.which("fail2ban-client"):
        return ""
    if shutil.which("apt-get") is None:
        return "fail2ban-server is not installed and there is no apt-get to install it"
    if os.geteuid() == 0:
        prefix: list[str] = []
    elif (
        shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], check=False).returncode == 0
    ):
        prefix = ["sudo", "-n"]
    else:
        return "fail2ban-server is not installed, and neither root nor sudo without a password"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print("installing fail2ban: apt-get install -y fail2ban ...", flush=True)
    for attempt in range(2):
        if attempt:  # a stale package list is the usual reason; refresh it once
            subprocess.run([*prefix, "apt-get", "update"], env=env, check=False)
        done = subprocess.run(
            [*prefix, "apt-get", "install", "-y", "fail2ban"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode == 0 and shutil.which("fail2ban-server"):
            print(
                "installed fail2ban. Note: its postinst starts the system's fail2ban service "
                "where an init system allows it; this benchmark runs its own server and leaves "
                "that one alone (`systemctl disable --now fail2ban` stops it)."
            )
            return ""
    tail = "\n".join(done.stdout.splitlines()[-3:] + done.stderr.splitlines()[-3:])
    return f"apt-get install -y fail2ban failed (exit {done.returncode}):\n{tail}"


def fail2ban_version() -> str:
    """`1.0.2`, from `fail2ban-server -V`."""
    done = subprocess.run(["fail2ban-server", "-V"], capture_output=True, text=True, check=False)
    return done.stdout.strip()


def has_pyinotify(python: str) -> bool:
    done = subprocess.run([python, "-c", "import pyinotify"], capture_output=True, check=False)
    return done.returncode == 0


_TOTAL_FAILED = re.compile(r"Total failed:\s*(\d+)")
_FILE_LIST = re.compile(r"File list:\s*(.*)")


class Fail2ban:
    """fail2ban-server in the foreground, as a child in its own process group, with its own
    configuration, socket, pid file, DB and log under `work/fail2ban`."""

    name = "fail2ban"

    def __init__(self, work: Path, load: Load, backend: str) -> None:
        self.load = load
        self.backend = backend
        self.dir = work / "fail2ban"
        self.proc: subprocess.Popen[bytes] | None = None
        self.version = ""

    def _client(self, *words: str, timeout: float = 30.0) -> str:
        done = subprocess.run(
            ["fail2ban-client", "-c", str(self.dir), "-s", str(self.dir / "fail2ban.sock"), *words],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"fail2ban-client {' '.join(words)}: {done.stderr.strip()[-300:]}")
        return done.stdout

    def _write_config(self) -> None:
        if self.dir.exists():
            shutil.rmtree(self.dir)
        (self.dir / "filter.d").mkdir(parents=True)
        (self.dir / "action.d").mkdir()
        (self.dir / "fail2ban.conf").write_text(FAIL2BAN_CONF.format(dir=self.dir))
        (self.dir / "jail.conf").write_text(
            JAIL_CONF.format(backend=self.backend, jail=JAIL, logs=self.load.paths[0].parent)
        )
        (self.dir / "filter.d" / f"{JAIL}.conf").write_text(filter_conf())

    def start(self) -> bool:
        self._write_config()
        self.version = fail2ban_version()
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [
                "fail2ban-server",
                "-f",
                "-x",
                "-c",
                str(self.dir),
                "-s",
                str(self.dir / "fail2ban.sock"),
                "-p",
                str(self.dir / "fail2ban.pid"),
                "--logtarget",
                str(self.dir / "fail2ban.log"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=open(self.dir / "server.out", "wb"),  # noqa: SIM115 - the child keeps it
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the stop reaches every child
        )
        deadline = t0 + 60.0
        listed = 0
        while time.monotonic() < deadline:
            if not self.alive():
                print(f"ERROR: fail2ban-server exited {self.proc.returncode} while starting")
                print(self.log_tail())
                return False
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                out = self._client("status", JAIL, timeout=10.0)
                found = _FILE_LIST.search(out)
                listed = len(found.group(1).split()) if found else 0
                if listed >= len(self.load.paths):
                    print(
                        f"fail2ban-server pid {self.proc.pid} ({self.version}, backend "
                        f"{self.backend}) follows {listed} files after "
                        f"{time.monotonic() - t0:.2f} s"
                    )
                    return True
            time.sleep(0.2)
        print(f"ERROR: fail2ban's jail did not list the {len(self.load.paths)} files in 60 s")
        print(self.log_tail())
        return False

    def log_tail(self, n: int = 15) -> str:
        lines: list[str] = []
        for name in ("server.out", "fail2ban.log"):
            with contextlib.suppress(OSError):
                lines += [f"{name}: {ln}" for ln in (self.dir / name).read_text().splitlines()[-n:]]
        return "\n".join(lines)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.pid)

    def rss_kib(self) -> int:
        return tree_rss_kib(self.pid)

    def peak_kib(self) -> int:
        return status_kib(self.pid, "VmHWM")

    def total_failed(self) -> int:
        found = _TOTAL_FAILED.search(self._client("status", JAIL))
        if found is None:
            raise RuntimeError("fail2ban-client status printed no 'Total failed'")
        return int(found.group(1))

    def lag_s(self, elapsed_s: float) -> float:
        # The error lines written by now (the writer puts one after every error_every - 1
        # ordinary lines) that fail2ban has not counted yet, in seconds of writing.
        written = int(self.load.rate * elapsed_s) // self.load.error_every
        behind = max(0, written - self.total_failed())
        return behind * self.load.error_every / self.load.rate

    def counted(self) -> int:
        return self.total_failed()

    def stop(self) -> str:
        """`fail2ban-client stop`, then SIGTERM, then SIGKILL to its process group."""
        if self.proc is None:
            return ""
        problem = ""
        if self.alive():
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self._client("stop", timeout=15.0)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10.0)
        if self.alive():
            problem = "did not stop on `fail2ban-client stop`"
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5.0)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # whatever is left of its group
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5.0)
        return problem


# --------------------------------------------------------------------------- one phase


@dataclass(frozen=True)
class Phase:
    tool: str
    round: int
    seconds: float  # writing time
    lines: int
    rate: float  # lines/s the writer achieved
    errors: int  # error lines written
    cpu_s: float
    cpu_pct: float
    rss_first_mib: float
    rss_last_mib: float
    rss_peak_mib: float
    max_lag_s: float
    drain_s: float | None  # None: not caught up within DRAIN_TIMEOUT_S
    counted: int  # findings (oai400d) or matched lines (fail2ban)
    expected: int
    failure: str  # "" when the tool ran through

    @property
    def kept_up(self) -> bool:
        return (
            self.drain_s is not None
            and self.max_lag_s <= LAG_TARGET_S
            and self.drain_s <= DRAIN_TARGET_S
        )


def reset_files(paths: tuple[Path, ...], seed: int) -> None:
    """Each file afresh with INITIAL_LINES ordinary lines, as daemon_sustained.py starts."""
    pool = daemon_sustained.ordinary_pool(seed, 400)
    subs = gen_log.timestamps(datetime.now())
    for i, path in enumerate(paths):
        start = (i * INITIAL_LINES) % (len(pool) - INITIAL_LINES)
        path.write_bytes(gen_log.fill(b"".join(pool[start : start + INITIAL_LINES]), subs))


def grep_matches(paths: tuple[Path, ...]) -> int:
    """Lines of the files that fail2ban's regexes match, counted by grep -E (the expected
    "Total failed")."""
    argv = ["grep", "-E", "-c", "-h"]
    for pattern in FAIL2BAN_PATTERNS.values():
        argv += ["-e", pattern]
    done = subprocess.run(
        [*argv, "--", *map(str, paths)],
        capture_output=True,
        text=True,
        env={**os.environ, "LC_ALL": "C"},
        check=False,
    )
    return sum(int(n) for n in done.stdout.split())


def until(check: Callable[[], bool], timeout: float, alive: Callable[[], bool]) -> float | None:
    """Poll check() until it holds: the seconds it took, or None after timeout or a death."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout and alive():
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            if check():
                return time.monotonic() - t0
        time.sleep(0.05)
    return None


def run_phase(
    subject: Subject, round_no: int, args: argparse.Namespace, logs: Path, load: Load
) -> Phase:
    print(f"\n--- round {round_no}: {subject.name}")
    reset_files(load.paths, args.seed)
    writer: subprocess.Popen[str] | None = None
    failure = ""
    summary: dict[str, Any] = {}
    samples: list[tuple[float, float, float, float]] = []  # t, CPU %, RSS MiB, lag s
    drain_s: float | None = None
    counted = expected = 0
    cpu_s = cpu_pct = 0.0
    peak = 0.0
    try:
        if not subject.start():
            return failed_phase(subject.name, round_no, "did not start")
        time.sleep(1.0)
        writer = daemon_sustained.start_writer(
            logs, len(load.paths), load.rate, args.seconds, load.error_every, args.seed
        )
        assert writer.stdout is not None
        first = writer.stdout.readline()
        if not first:
            return failed_phase(subject.name, round_no, f"the writer exited {writer.wait()}")
        w_start = float(json.loads(first)["start"])
        cpu0, t0 = subject.cpu_seconds(), time.monotonic()
        prev_cpu, prev_t = cpu0, t0
        print(f"{'t s':>6} {'CPU %':>7} {'RSS MiB':>8} {'lag s':>6}")
        next_sample = w_start + args.interval
        last_sample = w_start + args.seconds - args.interval / 10
        while writer.poll() is None and next_sample <= last_sample:
            with contextlib.suppress(subprocess.TimeoutExpired):
                writer.wait(max(0.0, next_sample - time.monotonic()))
            if writer.poll() is not None:
                break
            if not subject.alive():
                failure = "died while the writer ran"
                break
            next_sample += args.interval
            t = time.monotonic()
            cpu = subject.cpu_seconds()
            rss = subject.rss_kib() / 1024
            try:
                lag = subject.lag_s(t - w_start)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                print(f"  (lag not read: {e})")
                lag = float("nan")
            samples.append((t - w_start, (cpu - prev_cpu) / (t - prev_t) * 100, rss, lag))
            prev_cpu, prev_t = cpu, t
            print(f"{t - w_start:>6.1f} {samples[-1][1]:>7.1f} {rss:>8.1f} {lag:>6.2f}", flush=True)
        if failure:
            writer.kill()
        out, _ = writer.communicate()
        cpu1, t1 = subject.cpu_seconds(), time.monotonic()
        cpu_s, cpu_pct = cpu1 - cpu0, (cpu1 - cpu0) / (t1 - t0) * 100
        if not failure:
            if writer.returncode != 0 or not out.strip():
                failure = f"the writer exited {writer.returncode}"
            else:
                summary = json.loads(out.strip().splitlines()[-1])
        if not failure:
            errors = sum(int(n) for n in summary["errors"].values())
            if subject.name == "oai400d":
                expected = errors
                # Caught up: every offset at its file's size; then the alert counts, which the
                # commit after that brings (not part of the drain time).
                drain_s = until(
                    lambda: subject.lag_s(t1 - w_start) == 0, DRAIN_TIMEOUT_S, subject.alive
                )
                until(lambda: subject.counted() >= expected, 15.0, subject.alive)
            else:
                expected = grep_matches(load.paths)
                drain_s = until(
                    lambda: subject.counted() >= expected, DRAIN_TIMEOUT_S, subject.alive
                )
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                counted = subject.counted()
            peak = subject.peak_kib() / 1024
            if not subject.alive():
                failure = "died"
    finally:
        if writer is not None and writer.poll() is None:
            writer.kill()
            writer.wait()
        problem = subject.stop()
        failure = failure or problem
    if failure:
        print(f"ERROR: {subject.name} {failure}")
        return failed_phase(subject.name, round_no, failure)
    duration = float(summary["end"]) - float(summary["start"])
    lines = int(summary["lines"])
    lags = [s[3] for s in samples if s[3] == s[3]]
    return Phase(
        tool=subject.name,
        round=round_no,
        seconds=duration,
        lines=lines,
        rate=lines / duration,
        errors=sum(int(n) for n in summary["errors"].values()),
        cpu_s=cpu_s,
        cpu_pct=cpu_pct,
        rss_first_mib=samples[0][2] if samples else 0.0,
        rss_last_mib=samples[-1][2] if samples else 0.0,
        rss_peak_mib=peak,
        max_lag_s=max(lags, default=0.0),
        drain_s=drain_s,
        counted=counted,
        expected=expected,
        failure="",
    )


def failed_phase(tool: str, round_no: int, failure: str) -> Phase:
    nan = float("nan")
    return Phase(tool, round_no, nan, 0, nan, 0, nan, nan, nan, nan, nan, nan, None, 0, 0, failure)


def describe(p: Phase) -> str:
    if p.failure:
        return f"{p.tool}: FAILED ({p.failure})"
    what = "findings" if p.tool == "oai400d" else "matched lines"
    drained = f"caught up {p.drain_s:.1f} s after" if p.drain_s is not None else "NOT caught up"
    return (
        f"{p.tool}: CPU {p.cpu_pct:.1f} % of one core ({p.cpu_s:.1f} s), RSS "
        f"{p.rss_first_mib:.1f} → {p.rss_last_mib:.1f} MiB (peak {p.rss_peak_mib:.1f}), lag at "
        f"most {p.max_lag_s:.2f} s, {drained}, {what} {p.counted}/{p.expected}"
    )


# --------------------------------------------------------------------------- main


class Interrupted(Exception):
    """SIGTERM or SIGHUP: unwind through the `finally`s that stop the tools."""


def on_signal(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="writing time per tool (30)")
    ap.add_argument("--rate", type=float, default=10_000, help="lines/s in all (default 10000)")
    ap.add_argument("--files", type=int, default=10, help="log files (default 10)")
    ap.add_argument(
        "--error-every", type=int, default=1000, help="one error line per N lines (1000)"
    )
    ap.add_argument("--interval", type=float, default=5.0, help="seconds between samples (5)")
    ap.add_argument("--rounds", type=int, default=1, help="A B rounds, alternating (default 1)")
    ap.add_argument(
        "--backend",
        choices=["auto", "pyinotify", "polling"],
        default="auto",
        help="fail2ban's backend (auto: pyinotify when its Python has it, else polling)",
    )
    ap.add_argument("--no-install", action="store_true", help="never install fail2ban")
    ap.add_argument("--seed", type=int, default=400)
    common_arguments(ap, DEFAULT_WORK_DIR / "daemon-peers")
    args = ap.parse_args(argv)
    if args.seconds <= 0 or args.rate <= 0 or args.files < 1 or args.error_every < 2:
        ap.error("--seconds and --rate must be positive, --files >= 1, --error-every >= 2")
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    cmd = resolve_or_fail(args.cmd)
    if cmd is None:
        return 2

    skipped = "--no-install, and fail2ban-server is not installed" if args.no_install else ""
    if not args.no_install:
        skipped = install_fail2ban()
    elif shutil.which("fail2ban-server"):
        skipped = ""
    backend = args.backend
    python = fail2ban_python()
    if not skipped and python is not None and backend == "auto":
        backend = "pyinotify" if has_pyinotify(python) else "polling"
    if skipped:
        print(f"fail2ban skipped: {skipped}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    logs = prepare_work_dir(args.dir)
    load = Load(
        tuple(daemon_sustained.log_paths(logs, args.files)), float(args.rate), args.error_every
    )
    print(f"host: {host_line()}")
    print(
        f"load: {args.rate:,.0f} lines/s into {args.files} files for {args.seconds:g} s per tool, "
        f"1 in {args.error_every} an error line; {args.rounds} round(s)"
    )
    phases: list[Phase] = []
    try:
        for round_no in range(1, args.rounds + 1):
            subjects: list[Subject] = [Oai400d(cmd, args.dir, load)]
            if not skipped:
                subjects.append(Fail2ban(args.dir, load, backend))
            for subject in subjects:
                phases.append(run_phase(subject, round_no, args, logs, load))
                print(describe(phases[-1]))
    except (KeyboardInterrupt, Interrupted) as e:
        print(f"interrupted ({e or 'SIGINT'}): the tools were stopped")
        return 1
    finally:
        if not args.keep:
            clean_work_dir(args.dir)
    version = "" if skipped else fail2ban_version()
    return report(phases, args, version, backend, skipped)


def report(
    phases: list[Phase], args: argparse.Namespace, version: str, backend: str, skipped: str
) -> int:
    print("\n=== summary")
    for p in phases:
        print(f"round {p.round}: {describe(p)}")
    ours = [p for p in phases if p.tool == "oai400d" and not p.failure]
    peers = [p for p in phases if p.tool == "fail2ban" and not p.failure]
    failed = [p for p in phases if p.failure]
    bad_counts = [p for p in ours if p.counted != p.expected]
    for p in bad_counts:
        print(f"ERROR: round {p.round}: oai400d counted {p.counted} of {p.expected} error lines")
    ratios = [
        a.cpu_pct / b.cpu_pct
        for a, b in pairs(phases)
        if not a.failure and not b.failure and b.cpu_pct > 0
    ]
    if ratios:
        print(
            "CPU oai400d/fail2ban per round: "
            + ", ".join(f"{r:.2f}x" for r in ratios)
            + (f"; median {statistics.median(ratios):.2f}x" if len(ratios) > 1 else "")
        )
    if not ours:
        print("no Markdown line: oai400d did not run through")
        return 1

    def med(values: Iterator[float]) -> float:
        return statistics.median(list(values))

    rate = med(p.rate for p in ours)
    counted = sum(p.counted for p in ours)
    expected = sum(p.expected for p in ours)
    oai = (
        f"`oai400d run` CPU {med(p.cpu_pct for p in ours):.1f} % of one core, RSS "
        f"{med(p.rss_last_mib for p in ours):.1f} MiB "
        f"(peak {max(p.rss_peak_mib for p in ours):.1f}), "
        f"lag at most {max(p.max_lag_s for p in ours):.2f} s, findings {counted}/{expected}, "
        f"keeps up {verdict(all(p.kept_up for p in ours))}"
    )
    if peers:
        peer = (
            f"fail2ban {version} ({backend}, {len(FAIL2BAN_PATTERNS)} regexes, no actions) CPU "
            f"{med(p.cpu_pct for p in peers):.1f} %, RSS {med(p.rss_last_mib for p in peers):.1f} "
            f"MiB, lag at most {max(p.max_lag_s for p in peers):.2f} s, matched "
            f"{sum(p.counted for p in peers)}/{sum(p.expected for p in peers)}, keeps up "
            f"{verdict(all(p.kept_up for p in peers))}"
        )
        ratio = f"; oai400d/fail2ban CPU = {statistics.median(ratios):.2f}x" if ratios else ""
    else:
        peer, ratio = f"fail2ban skipped ({skipped.splitlines()[0]})", ""
    many = f"median of {len(ours)} rounds, " if len(ours) > 1 else ""
    flags = [
        f" --{name} {value:g}"
        for name, value, default in (
            ("seconds", args.seconds, 30),
            ("rate", args.rate, 10_000),
            ("files", args.files, 10),
            ("rounds", args.rounds, 1),
        )
        if value != default
    ]
    md = (
        f"- {date.today()}, {git_revision()}, {os.cpu_count()} CPUs: {rate:,.0f} lines/s into "
        f"{args.files} files for {ours[0].seconds:.0f} s per tool, daemon_sustained.py's writer, "
        f"one tool after the other ({many}`python bench/daemon_peers.py{''.join(flags)}`): "
        f"{oai}; {peer}{ratio}"
    )
    if failed or bad_counts:
        print("no Markdown line: a run failed or oai400d's counts differ (see above)")
        return 1
    print()
    print("Markdown for BENCHMARKS.md:")
    print(md)
    return 0


def pairs(phases: list[Phase]) -> Iterator[tuple[Phase, Phase]]:
    """(oai400d, fail2ban) of each round that ran both."""
    by_round: dict[int, dict[str, Phase]] = {}
    for p in phases:
        by_round.setdefault(p.round, {})[p.tool] = p
    for tools in by_round.values():
        if "oai400d" in tools and "fail2ban" in tools:
            yield tools["oai400d"], tools["fail2ban"]


if __name__ == "__main__":
    sys.exit(main())
