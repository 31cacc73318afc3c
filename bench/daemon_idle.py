#!/usr/bin/env python3
"""Idle cost of `oai400d run`: CPU and memory while 50 followed log files stay unchanged.

Creates --files log files (default 50) of ordinary web-app lines, starts the daemon on a
fresh state directory, waits until it logs "watching" and `status --json` lists every file
(polled, with a deadline), lets it settle for --settle seconds, then measures over --seconds
(default 60) with no writes at all:

  CPU     utime+stime of the daemon process (all threads, plus any children) from
          /proc/<pid>/stat in clock ticks, as a percentage of one core;
  memory  VmRSS at the start and at the end, and the peak VmHWM, from /proc/<pid>/status;
  wakeups voluntary context switches summed over the daemon's threads, per second.

With --metrics, the daemon also serves Prometheus metrics (metrics.listen on a free port of
127.0.0.1) and the benchmark scrapes /metrics every --scrape-interval seconds (15) while idle, as
Prometheus would; the scrapes' own cost is part of the figure.

Targets: under 0.5 % of one core, RSS under 60 MB.

    python bench/daemon_idle.py                       # 50 files, 60 s
    python bench/daemon_idle.py --metrics             # the same, with /metrics scraped every 15 s
    python bench/daemon_idle.py --seconds 15 --cmd /work/venv-probe/bin/oai400d
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import time
import urllib.request
from datetime import date, datetime, timedelta

from benchlib import DEFAULT_WORK_DIR, git_revision
from daemon_latency import (
    MIB,
    Daemon,
    clean_work_dir,
    common_arguments,
    host_line,
    prepare_work_dir,
    report_stop,
    resolve_or_fail,
    verdict,
    write_config,
)

CPU_TARGET_PCT = 0.5
RSS_TARGET_BYTES = 60_000_000  # 60 MB


def fill_files(logs: os.PathLike[str] | str, files: int, lines: int, seed: int) -> int:
    """Write `files` logs of `lines` ordinary lines each; returns the bytes written."""
    rng = random.Random(seed)
    t = datetime.now() - timedelta(hours=1)
    total = 0
    for n in range(files):
        out = []
        for i in range(lines):
            stamp = t + timedelta(milliseconds=37 * i)
            out.append(
                f"{stamp:%Y-%m-%d %H:%M:%S},{stamp.microsecond // 1000:03d} INFO app.http "
                f"GET /api/v1/orders/{rng.randrange(1, 99999)} 200 {rng.uniform(0.4, 250):.1f}ms "
                f"user={rng.randrange(1, 50000)} rid={rng.getrandbits(64):016x}\n"
            )
        data = "".join(out).encode()
        with open(os.path.join(logs, f"app-{n:02d}.log"), "wb") as f:
            f.write(data)
        total += len(data)
    return total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="measured idle time (default 60)")
    ap.add_argument("--files", type=int, default=50, help="followed log files (default 50)")
    ap.add_argument("--lines", type=int, default=200, help="lines in each file (default 200)")
    ap.add_argument(
        "--settle", type=float, default=2.0, help="seconds between ready and measuring (2)"
    )
    ap.add_argument("--seed", type=int, default=400)
    ap.add_argument(
        "--metrics",
        action="store_true",
        help="serve /metrics (metrics.listen on a free port) and scrape it while idle",
    )
    ap.add_argument(
        "--scrape-interval", type=float, default=15.0, help="seconds between scrapes (15)"
    )
    common_arguments(ap, DEFAULT_WORK_DIR / "daemon-idle")
    args = ap.parse_args(argv)
    if args.seconds <= 0 or args.files < 1:
        ap.error("--seconds must be positive and --files at least 1")
    cmd = resolve_or_fail(args.cmd)
    if cmd is None:
        return 2

    logs = prepare_work_dir(args.dir)
    size = fill_files(logs, args.files, args.lines, args.seed)
    print(f"{args.files} files, {args.lines} lines each, {size / MIB:.2f} MiB in all")
    print(f"host: {host_line()}")
    config = write_config(args.dir)
    if args.metrics:
        with config.open("a", encoding="utf-8") as handle:
            handle.write('\n[metrics]\nlisten = "127.0.0.1:0"  # port 0: a free one, logged\n')
    daemon = Daemon(cmd, config)
    scrapes: list[tuple[float, int]] = []  # (seconds, bytes) of each scrape
    failed = False
    measured = False
    try:
        failed = not daemon.boot(args.files)
        url = None
        if not failed and args.metrics:
            url = metrics_url(daemon)
            failed = url is None
        if not failed:
            time.sleep(args.settle)
            failed = not daemon.alive()
        if not failed:
            mem0 = daemon.memory_kib()
            cpu0 = daemon.cpu_seconds()
            csw0 = daemon.context_switches()
            t0 = time.monotonic()
            deadline = t0 + args.seconds
            per_10s: list[float] = []
            mark, mark_cpu = t0, cpu0
            next_scrape = t0
            while (now := time.monotonic()) < deadline and daemon.alive():
                if url is not None and now >= next_scrape:
                    scrapes.append(scrape(url))
                    next_scrape += args.scrape_interval
                time.sleep(max(0.0, min(1.0, deadline - time.monotonic())))
                if time.monotonic() - mark >= 10.0 - 1e-3:
                    cpu = daemon.cpu_seconds()
                    per_10s.append((cpu - mark_cpu) / (time.monotonic() - mark) * 100)
                    mark, mark_cpu = time.monotonic(), cpu
            if daemon.alive():
                cpu1 = daemon.cpu_seconds()
                t1 = time.monotonic()
                csw1 = daemon.context_switches()
                mem1 = daemon.memory_kib()
                threads = daemon.threads()
                measured = True
            else:
                failed = True
    finally:
        stopped = daemon.stop()
        if not args.keep:
            clean_work_dir(args.dir)
    report_stop(stopped, daemon)
    failed = failed or not stopped.clean
    if daemon.notifications or daemon.other_stdout:
        print(
            f"odd: {len(daemon.notifications) + len(daemon.other_stdout)} line(s) on stdout "
            "while idle"
        )
    if not measured:
        return 1

    wall = t1 - t0
    cpu_s = cpu1 - cpu0
    pct = cpu_s / wall * 100
    rss0, rss1 = mem0.get("VmRSS", 0) * 1024, mem1.get("VmRSS", 0) * 1024
    hwm = mem1.get("VmHWM", 0) * 1024
    wakeups = (csw1 - csw0) / wall
    print(f"idle for {wall:.1f} s, {threads} threads")
    if args.metrics:
        slowest = max((t for t, _ in scrapes), default=0.0)
        print(
            f"metrics: {len(scrapes)} scrape(s) of /metrics, {scrapes[-1][1] if scrapes else 0} "
            f"bytes each, slowest {slowest * 1000:.1f} ms"
        )
    print(f"CPU: {cpu_s:.2f} s = {pct:.3f} % of one core")
    if per_10s:
        print("CPU per 10 s, % of one core: " + "  ".join(f"{p:.2f}" for p in per_10s))
    print(f"wake-ups: {wakeups:.1f}/s (voluntary context switches, all threads)")
    print(
        f"RSS: {rss0 / MIB:.1f} MiB at the start, {rss1 / MIB:.1f} MiB at the end, "
        f"peak {hwm / MIB:.1f} MiB ({max(rss1, hwm) / 1e6:.1f} MB)"
    )
    ok_cpu = pct < CPU_TARGET_PCT
    ok_rss = max(rss1, hwm) < RSS_TARGET_BYTES
    print(f"target CPU < {CPU_TARGET_PCT} % of one core: {verdict(ok_cpu)}")
    print(f"target RSS < 60 MB: {verdict(ok_rss)}")
    md = (
        f"- {date.today()}, {git_revision()}, {os.cpu_count()} CPUs: `oai400d run` idle, "
        f"{args.files} followed files, {wall:.0f} s without writes"
        + (
            f", metrics on and scraped every {args.scrape_interval:g} s ({len(scrapes)} scrapes)"
            if args.metrics
            else ""
        )
        + f": CPU {pct:.2f} % of one "
        f"core ({cpu_s:.2f} s), {wakeups:.1f} wake-ups/s, RSS {rss0 / MIB:.1f} → "
        f"{rss1 / MIB:.1f} MiB, peak {hwm / MIB:.1f} MiB (targets < {CPU_TARGET_PCT} %: "
        f"{verdict(ok_cpu)}, < 60 MB: {verdict(ok_rss)})"
    )
    if failed:
        print("no Markdown line: the daemon failed (see above)")
        return 1
    print()
    print("Markdown for BENCHMARKS.md:")
    print(md)
    return 0


def metrics_url(daemon: Daemon, timeout: float = 10.0) -> str | None:
    """The /metrics URL the daemon logged (it listens on a port it chose)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and daemon.alive():
        for line in list(daemon.stderr_lines):
            found = re.search(r"metrics on (http://\S+)", line)
            if found:
                return found.group(1)
        time.sleep(0.05)  # polling the collected log with a deadline
    print("the daemon never logged its metrics URL:\n" + "\n".join(daemon.stderr_lines))
    return None


def scrape(url: str) -> tuple[float, int]:
    """GET /metrics as Prometheus would; (seconds taken, bytes)."""
    started = time.monotonic()
    with urllib.request.urlopen(url, timeout=10) as response:
        body = response.read()
    return time.monotonic() - started, len(body)


if __name__ == "__main__":
    sys.exit(main())
