"""Shared helpers for the benchmark scripts in bench/ (stdlib only).

Not a benchmark itself: size parsing, finding the `oai400d` command, and running a child
process while measuring its wall time, its CPU time (os.wait4 rusage) and its peak RSS
(/usr/bin/time -f %M).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
DEFAULT_WORK_DIR = Path("/tmp/oai400d-bench")

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """'1G' -> 1 GiB, '50M' -> 50 MiB, '512k', '1.5G', '12345' (bytes). Binary units."""
    m = _SIZE_RE.match(text)
    if not m:
        raise ValueError(f"not a size: {text!r} (use e.g. 50M, 1G, 1048576)")
    n = int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])
    if n <= 0:
        raise ValueError(f"size must be positive: {text!r}")
    return n


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def mb_per_s(nbytes: int, seconds: float) -> float:
    """Throughput in MB/s, decimal (10**6 bytes), as BENCHMARKS.md reports it."""
    return nbytes / 1e6 / seconds if seconds > 0 else float("inf")


def resolve_command(explicit: str | None) -> list[str]:
    """The command to benchmark, as argv.

    Order: the --cmd argument, $OAI400D_CMD, `oai400d` on PATH, the repo's .venv/bin/oai400d.
    A string is split shell-style, so "python -m oai400d" works. Falls back to ["oai400d"]
    (which then fails to start with a clear message).
    """
    for text in (explicit, os.environ.get("OAI400D_CMD")):
        if text:
            return shlex.split(text)
    on_path = shutil.which("oai400d")
    if on_path:
        return [on_path]
    repo_venv = REPO_DIR / ".venv" / "bin" / "oai400d"
    if repo_venv.exists():
        return [str(repo_venv)]
    return ["oai400d"]


def command_available(argv: Sequence[str]) -> bool:
    exe = argv[0]
    if os.sep in exe:
        return os.access(exe, os.X_OK)
    return shutil.which(exe) is not None


GNU_TIME = "/usr/bin/time"


@dataclass(frozen=True)
class Measured:
    argv: tuple[str, ...]
    wall_s: float
    cpu_s: float  # user + system of the child and its waited-for descendants
    max_rss_kib: int  # peak resident set size of the child, KiB
    rss_source: str  # how max_rss_kib was measured
    returncode: int  # negative: killed by that signal
    stdout: bytes  # up to keep_stdout bytes of what the child printed
    stdout_bytes: int
    stdout_lines: int
    stderr: str
    timed_out: bool


def run_measured(
    argv: Sequence[str],
    *,
    stdin_path: Path | None = None,
    env: dict[str, str] | None = None,
    timeout_s: float = 3600.0,
    keep_stdout: int = 64 << 20,
    on_lines: Callable[[bytes], None] | None = None,
) -> Measured:
    """Run argv with stdout to a pipe that this process drains and counts lines of.

    stdout is never /dev/null (GNU grep would stop at the first match). stderr goes to a
    temporary file, so a chatty child can't block on a full pipe. Only the first keep_stdout
    bytes are kept; `on_lines` is given all of it as it streams, in pieces of whole lines (an
    error storm's findings are gigabytes of JSON at 1 GiB: count them, don't keep them).

    Peak RSS comes from `/usr/bin/time -f %M` when it exists. The rusage that os.wait4 gives
    for a direct child is not usable for that: Linux carries the RSS high-water mark across
    fork+exec, so it would report at least this Python process's own RSS.
    """
    kept = bytearray()
    total = 0
    lines = 0
    timed_out = threading.Event()
    use_time = os.access(GNU_TIME, os.X_OK)
    with contextlib.ExitStack() as stack:
        err = stack.enter_context(tempfile.TemporaryFile())
        stdin_f = stack.enter_context(open(stdin_path, "rb")) if stdin_path else None
        time_out = stack.enter_context(tempfile.NamedTemporaryFile("r", suffix=".time"))
        full = [GNU_TIME, "-f", "%M", "-o", time_out.name, *argv] if use_time else list(argv)
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            full,
            stdin=stdin_f,
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
            start_new_session=True,
        )

        def kill() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout_s, kill)
        timer.start()
        try:
            assert proc.stdout is not None
            fd = proc.stdout.fileno()
            partial = b""  # an unfinished last line, for on_lines
            while block := os.read(fd, 1 << 20):
                total += len(block)
                lines += block.count(b"\n")
                if len(kept) < keep_stdout:
                    kept += block[: keep_stdout - len(kept)]
                if on_lines is not None:
                    cut = block.rfind(b"\n") + 1
                    if cut:
                        on_lines(partial + block[:cut])
                        partial = block[cut:]
                    else:
                        partial += block
            if on_lines is not None and partial:
                on_lines(partial)
            proc.stdout.close()
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
        returncode = proc.returncode
        if use_time:
            report = time_out.read().splitlines()
            rss_kib = int(report[-1]) if report and report[-1].strip().isdigit() else -1
            rss_source = GNU_TIME
            for line in report:  # GNU time notes a signal death before the format line
                if line.startswith("Command terminated by signal "):
                    returncode = -int(line.rsplit(" ", 1)[1])
        else:
            rss_kib = usage.ru_maxrss
            rss_source = "wait4 (an upper bound: includes this script's RSS at fork)"
    return Measured(
        argv=tuple(argv),
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        max_rss_kib=rss_kib,
        rss_source=rss_source,
        returncode=returncode,
        stdout=bytes(kept),
        stdout_bytes=total,
        stdout_lines=lines,
        stderr=stderr,
        timed_out=timed_out.is_set(),
    )


def warm_page_cache(path: Path) -> float:
    """Read the whole file once so later runs read it from the page cache. Returns seconds."""
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(4 << 20)
        view = memoryview(buf)
        while f.readinto(view):
            pass
    return time.perf_counter() - t0


def mem_available() -> int | None:
    """MemAvailable from /proc/meminfo in bytes, or None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def git_revision() -> str:
    """Short commit of the repo this bench/ lives in, '+dirty' when the tree has changes."""
    try:
        rev = subprocess.run(
            ["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO_DIR), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "no commit"
    return rev + ("+dirty" if dirty else "")


def tail(text: str, n: int = 5) -> str:
    return "\n".join(text.rstrip("\n").splitlines()[-n:])
