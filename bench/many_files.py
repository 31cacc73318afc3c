#!/usr/bin/env python3
"""Many followed files: idle CPU with 5,000 files, and how soon an error is noticed after the
watched directory is removed and created again.

Creates --files log files (default 5,000, a few ordinary lines each) in one directory, starts
the daemon on a fresh state directory (`logs.paths = ["<dir>/*.log"]`, `read_from = "end"`,
`reconcile_interval` from --reconcile, 10 s by default as in the shipped config), waits until
`status --json` lists every file (polled, with a deadline), lets it settle for --settle seconds,
then measures:

  idle      --seconds (default 60) without writes: CPU as a percentage of one core
            (utime+stime of all threads from /proc/<pid>/stat), wake-ups per second
            (voluntary context switches), RSS and open descriptors at the end;
  live      one error line appended to the last file: time to its "opened" notification;
  re-created --trials times (default 3): the directory is removed with every file in it, created
            again, and one new file in it gets an error line (a new model each time, so a new
            alert): time from that write to the "opened" notification.

Targets: idle under 0.5 % of one core; an error in the re-created directory noticed within
1 s (the daemon must not wait for a rescan).

    python bench/many_files.py                          # 5,000 files, 60 s idle, 3 re-creations
    python bench/many_files.py --seconds 20 --reconcile 1s
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from datetime import date
from pathlib import Path

from benchlib import DEFAULT_WORK_DIR, git_revision
from daemon_idle import fill_files
from daemon_latency import (
    CONFIG_TEMPLATE,
    MIB,
    Daemon,
    clean_work_dir,
    common_arguments,
    error_line,
    host_line,
    opened_for,
    prepare_work_dir,
    report_stop,
    resolve_or_fail,
    verdict,
)

CPU_TARGET_PCT = 0.5
RECREATED_TARGET_S = 1.0


def open_descriptors(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def noticed_after(daemon: Daemon, path: Path, model: str, timeout: float) -> float | None:
    """Append an error line naming `model` to `path`; seconds until its "opened" notification."""
    start = daemon.notification_count()
    started = time.monotonic()
    with open(path, "ab") as handle:
        handle.write(error_line(model).encode())
    got = daemon.wait_for(opened_for(model), start, timeout)
    return None if got is None else got[1] - started


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=5000, help="followed log files (5000)")
    ap.add_argument("--lines", type=int, default=5, help="lines in each file (5)")
    ap.add_argument("--seconds", type=float, default=60.0, help="measured idle time (60)")
    ap.add_argument("--settle", type=float, default=5.0, help="seconds from ready to measuring")
    ap.add_argument("--reconcile", default="10s", help="logs.reconcile_interval (10s)")
    ap.add_argument("--trials", type=int, default=3, help="directory re-creations timed (3)")
    ap.add_argument("--timeout", type=float, default=90.0, help="seconds to wait per error (90)")
    ap.add_argument("--seed", type=int, default=400)
    common_arguments(ap, DEFAULT_WORK_DIR / "many-files")
    args = ap.parse_args(argv)
    if args.seconds <= 0 or args.files < 1 or args.trials < 0:
        ap.error("--seconds must be positive, --files at least 1, --trials not negative")
    cmd = resolve_or_fail(args.cmd)
    if cmd is None:
        return 2

    logs = prepare_work_dir(args.dir)
    size = fill_files(logs, args.files, args.lines, args.seed)
    print(f"{args.files} files, {args.lines} lines each, {size / MIB:.2f} MiB in all")
    print(f"host: {host_line()}")
    config = args.dir / "config.toml"
    text = CONFIG_TEMPLATE.format(logs=logs, state=args.dir / "state.db")
    config.write_text(text.replace('"10s"', f'"{args.reconcile}"'))
    daemon = Daemon(cmd, config)
    failed = False
    pct = cpu_s = wall = wakeups = 0.0
    rss = descriptors = 0
    live: float | None = None
    recreated: list[float | None] = []
    try:
        failed = not daemon.boot(args.files)
        if not failed:
            time.sleep(args.settle)
            failed = not daemon.alive()
        if not failed:
            cpu0, csw0, t0 = daemon.cpu_seconds(), daemon.context_switches(), time.monotonic()
            time.sleep(args.seconds)
            cpu_s, wall = daemon.cpu_seconds() - cpu0, time.monotonic() - t0
            wakeups = (daemon.context_switches() - csw0) / wall
            pct = cpu_s / wall * 100
            rss = daemon.memory_kib().get("VmRSS", 0) * 1024
            descriptors = open_descriptors(daemon.pid)
            last = logs / f"app-{args.files - 1:02d}.log"
            live = noticed_after(daemon, last, "gpt-bench-live", args.timeout)
            for trial in range(args.trials):
                shutil.rmtree(logs)
                logs.mkdir()
                took = noticed_after(
                    daemon, logs / f"new-{trial}.log", f"gpt-bench-recreated-{trial}", args.timeout
                )
                recreated.append(took)
                print(
                    f"re-creation {trial + 1}: "
                    + (f"noticed after {took:.3f} s" if took is not None else "NOT noticed")
                )
            failed = not daemon.alive()
    finally:
        stopped = daemon.stop()
        if not args.keep:
            clean_work_dir(args.dir)
    report_stop(stopped, daemon)
    failed = failed or not stopped.clean
    if failed:
        print("no Markdown line: the daemon failed (see above)")
        return 1

    print(f"idle for {wall:.1f} s: CPU {cpu_s:.2f} s = {pct:.3f} % of one core")
    print(f"wake-ups: {wakeups:.1f}/s; RSS {rss / MIB:.1f} MiB; {descriptors} open descriptors")
    print("live error noticed after " + (f"{live:.3f} s" if live is not None else "NEVER"))
    noticed = [t for t in recreated if t is not None]
    worst = max(noticed) if len(noticed) == len(recreated) and noticed else None
    ok_cpu = pct < CPU_TARGET_PCT
    ok_recreated = worst is not None and worst < RECREATED_TARGET_S
    print(f"target CPU < {CPU_TARGET_PCT} % of one core: {verdict(ok_cpu)}")
    print(f"target re-created directory < {RECREATED_TARGET_S:g} s: {verdict(ok_recreated)}")
    times = ", ".join(f"{t:.2f}" if t is not None else "never" for t in recreated)
    md = (
        f"- {date.today()}, {git_revision()}, {os.cpu_count()} CPUs: `oai400d run` with "
        f"{args.files} followed files, reconcile_interval {args.reconcile}: idle CPU {pct:.2f} % "
        f"of one core ({wall:.0f} s, {wakeups:.1f} wake-ups/s, RSS {rss / MIB:.1f} MiB, "
        f"{descriptors} descriptors); an error in the directory removed and re-created noticed "
        f"after {times} s (live: {live if live is None else round(live, 2)} s) "
        f"(targets < {CPU_TARGET_PCT} %: {verdict(ok_cpu)}, < {RECREATED_TARGET_S:g} s: "
        f"{verdict(ok_recreated)})"
    )
    print()
    print("Markdown for BENCHMARKS.md:")
    print(md)
    return 0 if live is not None and len(noticed) == len(recreated) else 1


if __name__ == "__main__":
    sys.exit(main())
