#!/usr/bin/env python3
"""Sustained load on `oai400d run`: 10,000 lines/s into 10 files for 60 s.

Starts the daemon on a fresh state directory with --files log files (default 10), waits until
it logs "watching" and `status --json` lists every file, then starts a writer child process
(so that its CPU time is not the daemon's, and it does not share this process's GIL). The
writer appends --rate lines per second in all (default 10,000) for --seconds (default 60), in
small batches every 10 ms, one write() per file per batch, and reports the rate it achieved.
The lines are ordinary web-app lines from gen_log.py (70-230 bytes, ~120 on average) with the
current time; 0.1 % of them (--error-every 1000) are single-line OpenAI error lines that
cycle through six fingerprints (two unknown models, rate limit, quota, context length,
invalid key), spread over the files.

Every 5 s (--interval) it prints a row: the daemon's CPU over the interval as a percentage of
one core (utime+stime from /proc/<pid>/stat), its RSS (VmRSS), and its lag: the sum over the
files of (file size - offset in `status --json`), in bytes and in seconds of writing. The
daemon writes offsets to its state DB at most every 0.5 s, so a lag of up to about half a
second of writing is the commit interval, not a backlog. File sizes are read just after
`status` returns: it reads the DB at the end of its run, after ~0.3 s of interpreter start-up
(read before it, the sizes would hide any lag shorter than that). After the writer stops,
it polls `status --json` until the lag is 0 (the time that takes is the drain time, to
within one `status` call), then until the alert counts in `status --json` add up to the
error lines written, and compares them per category.

Targets: keeps up (every sample under 1 s of writing behind, drained within 2 s), under 25 %
of one core, RSS flat (last sample within 5 MiB of the first).

    python bench/daemon_sustained.py                      # 10 files, 10,000 lines/s, 60 s
    python bench/daemon_sustained.py --seconds 15 --cmd /work/venv-probe/bin/oai400d
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import gen_log
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

CPU_TARGET_PCT = 25.0
LAG_TARGET_S = 1.0
DRAIN_TARGET_S = 2.0
RSS_FLAT_MIB = 5.0
WRITER_MODE = "_writer"  # argv[1] of the writer child
BATCH_INTERVAL = 0.010
POOL_SIZE = 4000

# (key, category, line): single-line openai-python v1 errors, one fingerprint each.
_HEAD = gen_log.PY_TS
ERRORS: list[tuple[str, str, str]] = [
    (
        "model_a",
        "request.model_not_found",
        f"{_HEAD},123 ERROR app.llm: openai.NotFoundError: Error code: 404 - {{'error': "
        "{'message': 'The model `gpt-sustained-a` does not exist or you do not have access "
        "to it.', 'type': 'invalid_request_error', 'param': None, 'code': 'model_not_found'}}",
    ),
    (
        "model_b",
        "request.model_not_found",
        f"{_HEAD},456 ERROR app.llm: openai.NotFoundError: Error code: 404 - {{'error': "
        "{'message': 'The model `gpt-sustained-b` does not exist or you do not have access "
        "to it.', 'type': 'invalid_request_error', 'param': None, 'code': 'model_not_found'}}",
    ),
    (
        "rate_limit",
        "rate_limit",
        f"{_HEAD},789 ERROR app.chat: openai.RateLimitError: Error code: 429 - {{'error': "
        "{'message': 'Rate limit reached for gpt-4o-mini in organization org-abc123 on requests "
        "per min (RPM): Limit 500, Used 500, Requested 1. Please try again in 120ms.', "
        "'type': 'requests', 'param': None, 'code': 'rate_limit_exceeded'}}",
    ),
    (
        "quota",
        "quota.insufficient",
        f"{_HEAD},012 ERROR app.worker: openai.RateLimitError: Error code: 429 - {{'error': "
        "{'message': 'You exceeded your current quota, please check your plan and billing "
        "details.', 'type': 'insufficient_quota', 'param': None, 'code': 'insufficient_quota'}}",
    ),
    (
        "context_length",
        "request.context_length",
        f"{_HEAD},345 ERROR app.summarize: openai.BadRequestError: Error code: 400 - {{'error': "
        "{'message': \"This model's maximum context length is 128000 tokens. However, your "
        'messages resulted in 131072 tokens. Please reduce the length of the messages.", '
        "'type': 'invalid_request_error', 'param': 'messages', 'code': 'context_length_exceeded'}}",
    ),
    (
        "invalid_key",
        "auth.invalid_api_key",
        f"{_HEAD},678 ERROR app.llm: openai.AuthenticationError: Error code: 401 - {{'error': "
        "{'message': 'Incorrect API key provided: sk-proj-****abcd. You can find your API key "
        "at https://platform.openai.com/account/api-keys.', 'type': 'invalid_request_error', "
        "'param': None, 'code': 'invalid_api_key'}}",
    ),
]
CATEGORY = {key: category for key, category, _ in ERRORS}


def ordinary_pool(seed: int, n: int = POOL_SIZE) -> list[bytes]:
    """Ordinary web-app lines (with gen_log's timestamp placeholders), 70-230 bytes rendered."""
    rng = random.Random(seed)
    subs = gen_log.timestamps(datetime.now())
    pool: list[bytes] = []
    while len(pool) < n:
        line = gen_log.normal_record(rng).encode() + b"\n"
        if 70 <= len(gen_log.fill(line, subs)) <= 230:
            pool.append(line)
    return pool


def log_paths(logs: Path, files: int) -> list[Path]:
    return [logs / f"app-{i:02d}.log" for i in range(files)]


# --------------------------------------------------------------------------- the writer child


def start_writer(
    logs: Path, files: int, rate: float, seconds: float, error_every: int, seed: int
) -> subprocess.Popen[str]:
    """The writer child (writer_main), started: its first stdout line is {"start": t}, its
    last the JSON summary (daemon_peers.py and daemon_latency.py start it too)."""
    return subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            WRITER_MODE,
            f"--logs={logs}",
            f"--files={files}",
            f"--rate={rate}",
            f"--seconds={seconds}",
            f"--error-every={error_every}",
            f"--seed={seed}",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )


def writer_main(argv: list[str]) -> int:
    """Append the lines at the given pace; print a start line, then a JSON summary line."""
    ap = argparse.ArgumentParser(prog="daemon_sustained.py _writer")
    ap.add_argument("--logs", type=Path, required=True)
    ap.add_argument("--files", type=int, required=True)
    ap.add_argument("--rate", type=float, required=True)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--error-every", type=int, required=True)
    ap.add_argument("--seed", type=int, required=True)
    args = ap.parse_args(argv)
    pool = ordinary_pool(args.seed)
    errors = [(key, (line + "\n").encode()) for key, _, line in ERRORS]
    outs = [open(p, "ab", buffering=0) for p in log_paths(args.logs, args.files)]  # noqa: SIM115
    nfiles = len(outs)
    total = round(args.rate * args.seconds)
    every = args.error_every
    written = 0
    nbytes = 0
    batches = 0
    max_behind = 0.0  # seconds of writing, at the start of a batch
    counts: Counter[str] = Counter()
    print(json.dumps({"start": time.monotonic()}), flush=True)
    start = time.monotonic()
    tick = 0
    while written < total:
        now = time.monotonic()
        target = min(total, int(args.rate * (now - start)))
        if target > written:
            max_behind = max(max_behind, (target - written) / args.rate)
            subs = gen_log.timestamps(datetime.now())
            per_file: list[list[bytes]] = [[] for _ in outs]
            for j in range(written, target):
                if (j + 1) % every == 0:
                    m = j // every
                    key, line = errors[m % len(errors)]
                    counts[key] += 1
                    per_file[m % nfiles].append(line)
                else:
                    per_file[j % nfiles].append(pool[j % len(pool)])
            for out, lines in zip(outs, per_file, strict=True):
                if lines:
                    data = gen_log.fill(b"".join(lines), subs)
                    out.write(data)
                    nbytes += len(data)
            written = target
            batches += 1
        tick += 1
        pause = start + tick * BATCH_INTERVAL - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    end = time.monotonic()
    for out in outs:
        out.close()
    t = os.times()
    print(
        json.dumps(
            {
                "start": start,
                "end": end,
                "lines": written,
                "bytes": nbytes,
                "batches": batches,
                "max_behind_s": max_behind,
                "errors": dict(counts),
                "cpu_s": t.user + t.system,
            }
        ),
        flush=True,
    )
    return 0


# --------------------------------------------------------------------------- the benchmark


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the writer started
    cpu_pct: float  # daemon CPU over the interval before this sample, % of one core
    rss_mib: float
    written_bytes: int
    lag_bytes: int
    lag_s: float  # lag in seconds of writing at the average rate so far
    status_s: float  # how long `status --json` took
    missing: int  # files that status did not list


def lag_of(paths: list[Path], sizes: list[int], status: dict[str, Any]) -> tuple[int, int]:
    """(sum of size - offset over the files, files that status does not list)."""
    offsets: dict[str, int] = {}
    for f in status.get("files", []):
        offsets[str(f["path"])] = int(f["offset"])
        offsets[os.path.realpath(str(f["path"]))] = int(f["offset"])
    lag = 0
    missing = 0
    for path, size in zip(paths, sizes, strict=True):
        offset = offsets.get(str(path), offsets.get(os.path.realpath(path)))
        if offset is None:
            missing += 1
            offset = 0
        lag += max(0, size - offset)
    return lag, missing


def sizes_of(paths: list[Path]) -> list[int]:
    return [p.stat().st_size for p in paths]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [WRITER_MODE]:
        return writer_main(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="writing time (default 60)")
    ap.add_argument("--rate", type=float, default=10_000, help="lines/s in all (default 10000)")
    ap.add_argument("--files", type=int, default=10, help="log files (default 10)")
    ap.add_argument(
        "--error-every", type=int, default=1000, help="one error line per N lines (1000)"
    )
    ap.add_argument("--interval", type=float, default=5.0, help="seconds between samples (5)")
    ap.add_argument("--seed", type=int, default=400)
    common_arguments(ap, DEFAULT_WORK_DIR / "daemon-sustained")
    args = ap.parse_args(argv)
    if args.seconds <= 0 or args.rate <= 0 or args.files < 1 or args.error_every < 2:
        ap.error("--seconds and --rate must be positive, --files >= 1, --error-every >= 2")
    cmd = resolve_or_fail(args.cmd)
    if cmd is None:
        return 2

    logs = prepare_work_dir(args.dir)
    paths = log_paths(logs, args.files)
    pool = ordinary_pool(args.seed)
    for i, path in enumerate(paths):
        path.write_bytes(
            gen_log.fill(b"".join(pool[i * 20 : i * 20 + 20]), gen_log.timestamps(datetime.now()))
        )
    print(f"host: {host_line()}")
    daemon = Daemon(cmd, write_config(args.dir))
    writer: subprocess.Popen[str] | None = None
    failed = False
    done = False
    samples: list[Sample] = []
    summary: dict[str, Any] = {}
    drain_s: float | None = None
    alerts: list[dict[str, Any]] = []
    try:
        failed = not daemon.boot(args.files)
        if not failed:
            time.sleep(1.0)
            sizes0 = sizes_of(paths)
            writer = start_writer(
                logs, args.files, args.rate, args.seconds, args.error_every, args.seed
            )
            assert writer.stdout is not None
            first = writer.stdout.readline()
            if not first:
                raise SystemExit(f"error: the writer exited {writer.wait()} before starting")
            w_start = float(json.loads(first)["start"])
            prev_t, prev_cpu = time.monotonic(), daemon.cpu_seconds()
            cpu_start, cpu_t0 = prev_cpu, prev_t
            rss_mib = daemon.memory_kib().get("VmRSS", 0) / 1024
            print(
                f"writer pid {writer.pid}: {args.rate:,.0f} lines/s into {args.files} files for "
                f"{args.seconds:g} s, 1 in {args.error_every} an error line; "
                f"daemon RSS {rss_mib:.1f} MiB"
            )
            print(
                f"{'t s':>6} {'CPU %':>7} {'RSS MiB':>8} {'written MiB':>12} {'lag bytes':>10} "
                f"{'lag s':>6} {'status s':>8}"
            )
            next_sample = w_start + args.interval
            last_sample = w_start + args.seconds - args.interval / 10  # none as writing ends
            while writer.poll() is None and next_sample <= last_sample:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    writer.wait(max(0.0, next_sample - time.monotonic()))
                if writer.poll() is not None:
                    break
                if not daemon.alive():
                    failed = True
                    writer.kill()
                    break
                next_sample += args.interval
                t = time.monotonic()
                cpu = daemon.cpu_seconds()
                rss_mib = daemon.memory_kib().get("VmRSS", 0) / 1024
                status = daemon.status()
                # status reads the DB at the end of its run, after the interpreter's start-up.
                sizes = sizes_of(paths)
                t_sizes = time.monotonic()
                status_s = t_sizes - t
                lag, missing = lag_of(paths, sizes, status)
                written = sum(sizes) - sum(sizes0)
                byte_rate = written / (t_sizes - w_start) if t_sizes > w_start else 0.0
                sample = Sample(
                    t=t - w_start,
                    cpu_pct=(cpu - prev_cpu) / (t - prev_t) * 100,
                    rss_mib=rss_mib,
                    written_bytes=written,
                    lag_bytes=lag,
                    lag_s=lag / byte_rate if byte_rate > 0 else 0.0,
                    status_s=status_s,
                    missing=missing,
                )
                prev_t, prev_cpu = t, cpu
                samples.append(sample)
                note = f"  ({missing} file(s) not in status)" if missing else ""
                print(
                    f"{sample.t:>6.1f} {sample.cpu_pct:>7.1f} {sample.rss_mib:>8.1f} "
                    f"{written / MIB:>12.1f} {lag:>10,} {sample.lag_s:>6.2f} "
                    f"{status_s:>8.2f}{note}",
                    flush=True,
                )
            out, _ = writer.communicate()
            cpu_end, cpu_t1 = daemon.cpu_seconds(), time.monotonic()
            if failed:
                pass  # the daemon died; the writer was stopped
            elif writer.returncode != 0 or not out.strip():
                print(f"ERROR: the writer exited {writer.returncode}")
                failed = True
            else:
                summary = json.loads(out.strip().splitlines()[-1])
            failed = failed or not daemon.alive()
        if summary and not failed:
            # Drain: until every offset reaches its file's size.
            final_sizes = sizes_of(paths)
            deadline = time.monotonic() + 120.0
            while daemon.alive() and time.monotonic() < deadline:
                lag, _ = lag_of(paths, final_sizes, daemon.status())
                if lag == 0:
                    drain_s = time.monotonic() - float(summary["end"])
                    break
                time.sleep(0.05)
            cpu_drained = daemon.cpu_seconds()
            # Alerts: until their counts add up to the error lines written.
            expected = sum(summary["errors"].values())
            deadline = time.monotonic() + 15.0
            while daemon.alive():
                alerts = list(daemon.status().get("alerts", []))
                if sum(int(a["count"]) for a in alerts) >= expected:
                    break
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.2)
            mem_end = daemon.memory_kib() if daemon.alive() else {}
            failed = not daemon.alive()
            done = True
    finally:
        if writer is not None and writer.poll() is None:
            writer.kill()
            writer.wait()
        stopped = daemon.stop()
        if not args.keep:
            clean_work_dir(args.dir)
    report_stop(stopped, daemon)
    failed = failed or not stopped.clean
    if not done:
        return 1

    # --- the report -------------------------------------------------------------------------
    duration = float(summary["end"]) - float(summary["start"])
    lines = int(summary["lines"])
    rate = lines / duration
    print()
    print(
        f"writer: {lines:,} lines, {summary['bytes'] / MIB:.1f} MiB "
        f"({summary['bytes'] / lines:.0f} bytes/line) in {duration:.2f} s = {rate:,.0f} lines/s "
        f"({rate / args.rate * 100:.1f} % of the {args.rate:,.0f} asked), "
        f"{summary['batches']:,} batches, at most {summary['max_behind_s'] * 1000:.0f} ms behind "
        f"its schedule, writer CPU {summary['cpu_s']:.1f} s"
    )
    if rate < 0.98 * args.rate:
        print("odd: the writer did not keep its pace; the figures are for the rate achieved")
    cpu_pct = (cpu_end - cpu_start) / (cpu_t1 - cpu_t0) * 100
    print(f"daemon CPU while writing: {cpu_end - cpu_start:.2f} s = {cpu_pct:.1f} % of one core")
    if drain_s is None:
        print("ERROR: the lag did not reach 0 within 120 s after the writer stopped")
        failed = True
    else:
        print(
            f"drained: lag 0 in status --json {drain_s:.2f} s after the writer stopped "
            f"(daemon CPU meanwhile {cpu_drained - cpu_end:.2f} s)"
        )
    max_lag = max((s.lag_s for s in samples), default=0.0)
    max_lag_bytes = max((s.lag_bytes for s in samples), default=0)
    rss_series = [s.rss_mib for s in samples]
    rss_growth = rss_series[-1] - rss_series[0] if rss_series else 0.0
    hwm = mem_end.get("VmHWM", 0) / 1024
    print(
        "RSS every 5 s, MiB: "
        + " ".join(f"{r:.1f}" for r in rss_series)
        + f"; at the end {mem_end.get('VmRSS', 0) / 1024:.1f}, peak {hwm:.1f}"
    )
    print(f"lag: at most {max_lag_bytes:,} bytes = {max_lag:.2f} s of writing")

    # Alert counts against the error lines written.
    written_errors = {str(k): int(v) for k, v in summary["errors"].items()}
    expected = sum(written_errors.values())
    by_category: Counter[str] = Counter()
    for key, n in written_errors.items():
        by_category[CATEGORY[key]] += n
    counted: Counter[str] = Counter()
    for a in alerts:
        counted[str(a.get("category"))] += int(a["count"])
    total_counted = sum(counted.values())
    print(
        f"alerts: {len(alerts)} in status --json, counts sum {total_counted} "
        f"vs {expected} error lines written"
    )
    print(f"  {'category':28} {'written':>8} {'counted':>8}")
    for category in sorted(set(by_category) | set(counted)):
        mark = "" if by_category[category] == counted[category] else "  <- differs"
        print(f"  {category:28} {by_category[category]:>8} {counted[category]:>8}{mark}")
    counts_ok = counted == by_category
    if not counts_ok:
        print("ERROR: the alert counts do not match the error lines written")
        failed = True
    kinds = Counter(str(obj.get("kind")) for _, obj in daemon.notifications)
    print(f"notifications on stdout: {dict(kinds)}")
    warnings = [line for line in daemon.stderr_lines if " WARNING " in line or " ERROR " in line]
    if warnings:
        print(f"odd: {len(warnings)} warning/error line(s) in the daemon's log, last:")
        print("\n".join(warnings[-5:]))

    keeps_up = drain_s is not None and max_lag <= LAG_TARGET_S and drain_s <= DRAIN_TARGET_S
    ok_cpu = cpu_pct < CPU_TARGET_PCT
    flat = abs(rss_growth) <= RSS_FLAT_MIB
    print(
        f"target keeps up (lag <= {LAG_TARGET_S:g} s of writing, drained in "
        f"<= {DRAIN_TARGET_S:g} s): {verdict(keeps_up)}"
    )
    print(f"target CPU < {CPU_TARGET_PCT:g} % of one core: {verdict(ok_cpu)}")
    print(
        f"target RSS flat (first to last sample within {RSS_FLAT_MIB:g} MiB, "
        f"{rss_growth:+.1f} MiB): {verdict(flat)}"
    )
    drained = f"drained in {drain_s:.1f} s" if drain_s is not None else "NOT drained"
    md = (
        f"- {date.today()}, {git_revision()}, {os.cpu_count()} CPUs: `oai400d run`, "
        f"{rate:,.0f} lines/s ({summary['bytes'] / duration / 1e6:.2f} MB/s) into "
        f"{args.files} files for {duration:.0f} s, {expected} error lines: CPU {cpu_pct:.1f} % "
        f"of one core, RSS {rss_series[0] if rss_series else 0:.1f} → "
        f"{rss_series[-1] if rss_series else 0:.1f} MiB (peak {hwm:.1f}), lag at most "
        f"{max_lag:.2f} s of writing, {drained}, alert counts {total_counted}/{expected} "
        f"(targets: keeps up {verdict(keeps_up)}, < 25 % {verdict(ok_cpu)}, "
        f"RSS flat {verdict(flat)})"
    )
    if failed:
        print("no Markdown line: the run failed (see above)")
        return 1
    print()
    print("Markdown for BENCHMARKS.md:")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
