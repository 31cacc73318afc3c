#!/usr/bin/env python3
"""Throughput of `oai400d classify --json FILE` against a grep baseline on a 1 GiB mixed log.

Generates the log with gen_log.py when it is missing, reads it once so that both tools read
from the page cache, then runs each tool --runs times (best run reported):

  grep     LC_ALL=C grep -E -c with one -e pattern per taxonomy category, a single process,
           stdout to a pipe (never /dev/null: GNU grep then stops at the first match);
  oai400d  the command under test, stdout to a pipe whose lines this script counts.

Wall time, MB/s (10**6 bytes), CPU time and peak RSS (os.wait4 rusage of that child) per run.

    python bench/classify_throughput.py                       # 1 GiB, oai400d from PATH/.venv
    python bench/classify_throughput.py --size 50M --grep-only
    OAI400D_CMD="python -m oai400d.cli" python bench/classify_throughput.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import gen_log
from benchlib import (
    DEFAULT_WORK_DIR,
    Measured,
    command_available,
    cpu_model,
    git_revision,
    human_bytes,
    mb_per_s,
    mem_available,
    parse_size,
    resolve_command,
    run_measured,
    tail,
    warm_page_cache,
)

DEFAULT_LOG = DEFAULT_WORK_DIR / "mixed-1g.log"

# One extended regex per taxonomy category (shared/taxonomy.md), from its "typical evidence".
# The baseline a user would otherwise write: cheap, but it cannot assemble tracebacks, tell
# OpenAI's 429 from Stripe's, or say which fix applies.
CATEGORY_PATTERNS: dict[str, str] = {
    "auth.invalid_api_key": (
        "invalid_api_key|Incorrect API key|You didn't provide an API key|invalid subscription key"
    ),
    "auth.organization": (
        "No such organization|mismatched_organization|OpenAI-Organization header should match"
        "|must be a member of an organization"
    ),
    "auth.permission": (
        "not allowed to sample from this model|does not have access to model"
        "|unsupported_country_region_territory|insufficient permissions|Missing scopes"
    ),
    "quota.insufficient": (
        "insufficient_quota|exceeded your current quota|billing_hard_limit_reached"
        "|billing_not_active"
    ),
    "rate_limit": "rate_limit_exceeded|Rate limit reached for|Too Many Requests",
    "request.image": (
        "invalid_image_url|Failed to download image|Error while downloading"
        "|Timeout while downloading|invalid_image_format|image_parse_error|Invalid image"
    ),
    "request.context_length": (
        "context_length_exceeded|maximum context length is|max_tokens is too large"
    ),
    "request.unsupported_parameter": (
        "unsupported_parameter|unsupported_value|does not support specifying"
    ),
    "request.invalid_parameter": (
        "Missing required parameter|Invalid type for|is not of type"
        "|Additional properties are not allowed|could not parse the JSON body"
        "|must be followed by tool messages|No file found with id"
    ),
    "request.model_not_found": (
        "model_not_found|does not exist or you do not have access|DeploymentNotFound"
        "|has been deprecated"
    ),
    "request.content_policy": (
        "content_policy_violation|rejected as a result of our safety system|content_filter"
        "|invalid_prompt"
    ),
    "request.payload": (
        "Request Entity Too Large|codec can't (en|de)code|file is too large|Maximum request size"
    ),
    "server.error": (
        "The server had an error|server_error|Service Unavailable|overloaded|Bad Gateway"
        "|Gateway Timeout"
    ),
    "network": (
        "APIConnectionError|APITimeoutError|CERTIFICATE_VERIFY_FAILED|ProxyError|ConnectError"
        "|Name or service not known|Connection reset by peer"
    ),
}


def grep_argv(path: Path) -> list[str]:
    argv = ["grep", "-E", "-c"]
    for pattern in CATEGORY_PATTERNS.values():
        argv += ["-e", pattern]
    return [*argv, "--", str(path)]


@dataclass(frozen=True)
class Best:
    name: str
    runs: list[Measured]

    @property
    def best(self) -> Measured:
        return min(self.runs, key=lambda m: m.wall_s)


def measure(name: str, argv: list[str], env: dict[str, str], runs: int, timeout: float) -> Best:
    done: list[Measured] = []
    for i in range(runs):
        m = run_measured(argv, env=env, timeout_s=timeout)
        note = " TIMED OUT" if m.timed_out else ""
        print(
            f"  {name} run {i + 1}/{runs}: {m.wall_s:.2f} s wall, {m.cpu_s:.2f} s CPU, "
            f"peak RSS {m.max_rss_kib / 1024:.1f} MiB, exit {m.returncode}, "
            f"{m.stdout_lines:,} stdout lines{note}",
            flush=True,
        )
        done.append(m)
        if m.timed_out:
            break
    return Best(name, done)


def ensure_log(path: Path, size_text: str, seed: int, regenerate: bool) -> dict[str, Any]:
    """Generate the log when missing (or asked to); return its meta (empty if none)."""
    meta_file = gen_log.meta_path(path)
    if regenerate or not path.exists():
        print(f"generating {path} ({size_text}, seed {seed}) ...", flush=True)
        gen_log.main(["--size", size_text, "--out", str(path), "--seed", str(seed)])
        print()
    else:
        print(f"using existing {path} (pass --regenerate to rebuild it)")
    if meta_file.exists():
        meta = json.loads(meta_file.read_text())
        if meta.get("bytes") == path.stat().st_size:
            return dict(meta)
        print(f"note: {meta_file} does not describe {path} (size differs); ignoring it")
    return {}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--log", type=Path, help=f"log file (default {DEFAULT_LOG}, or mixed-<size>.log)"
    )
    ap.add_argument("--size", default="1G", help="size when generating the log (default 1G)")
    ap.add_argument("--seed", type=int, default=gen_log.DEFAULT_SEED)
    ap.add_argument("--regenerate", action="store_true", help="rebuild the log even if present")
    ap.add_argument("--runs", type=int, default=2, help="timed runs per tool (default 2)")
    ap.add_argument(
        "--cmd", help="command under test (default: $OAI400D_CMD, oai400d on PATH, .venv)"
    )
    ap.add_argument("--grep-only", action="store_true", help="measure the grep baseline only")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per run (default 3600)")
    args = ap.parse_args(argv)
    try:
        parse_size(args.size)
    except ValueError as e:
        ap.error(str(e))
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    log: Path = args.log or gen_log.default_out(args.size)

    cmd = resolve_command(args.cmd)
    if not args.grep_only and not command_available(cmd):
        print(
            f"error: command under test {cmd[0]!r} not found; install the project "
            "(.venv/bin/oai400d), set OAI400D_CMD / --cmd, or pass --grep-only",
            file=sys.stderr,
        )
        return 2

    meta = ensure_log(log, args.size, args.seed, args.regenerate)
    size = log.stat().st_size
    avail = mem_available()
    if avail is not None and avail < size * 1.2:
        print(
            f"warning: {human_bytes(size)} file, {human_bytes(avail)} available memory: "
            "runs may read from disk rather than the page cache"
        )
    secs = warm_page_cache(log)
    print(f"warm-up read: {human_bytes(size)} in {secs:.2f} s")
    print(f"host: {cpu_model()}, {os.cpu_count()} CPUs")

    env_c = {**os.environ, "LC_ALL": "C"}
    grep = measure("grep", grep_argv(log), env_c, args.runs, args.timeout)
    g = grep.best
    grep_count = int(g.stdout.strip() or b"-1") if g.returncode in (0, 1) else -1

    results = [grep]
    oai: Best | None = None
    if not args.grep_only:
        oai = measure(
            "oai400d",
            [*cmd, "classify", "--json", str(log)],
            dict(os.environ),
            args.runs,
            args.timeout,
        )
        results.append(oai)

    print()
    print(f"file: {log} ({size:,} bytes, {human_bytes(size)})")
    if meta:
        print(
            f"generated content: {meta['lines']:,} lines, {meta['evidence_events']:,} OpenAI "
            f"error events, {meta['lookalike_events']:,} look-alike events"
        )
    print(
        f"{'tool':<9} {'wall s':>8} {'MB/s':>9} {'CPU s':>8} {'peak RSS':>11} {'exit':>5}  output"
    )
    for r in results:
        b = r.best
        out = f"{grep_count:,} matching lines" if r is grep else f"{b.stdout_lines:,} findings"
        print(
            f"{r.name:<9} {b.wall_s:>8.2f} {mb_per_s(size, b.wall_s):>9.1f} {b.cpu_s:>8.2f} "
            f"{b.max_rss_kib / 1024:>7.1f} MiB {b.returncode:>5}  {out}"
        )

    grep_md = (
        f"grep -E ({len(CATEGORY_PATTERNS)} patterns) {g.wall_s:.2f} s, "
        f"{mb_per_s(size, g.wall_s):.0f} MB/s, {g.max_rss_kib / 1024:.1f} MiB RSS"
    )
    status = 0
    if oai is None:
        md = f"- {date.today()}, {log.name} ({human_bytes(size)}): {grep_md}; oai400d not run"
    else:
        o = oai.best
        ratio = o.wall_s / g.wall_s if g.wall_s > 0 else float("inf")
        print(f"ratio oai400d/grep (wall): {ratio:.1f}x")
        cats = categories(o.stdout)
        want: dict[str, int] = meta.get("evidence_by_category", {})
        if cats or want:
            print(f"{'category':32} {'findings':>9} {'generated':>10}")
            for cat in sorted(set(cats) | set(want)):
                print(f"  {cat:30} {cats.get(cat, 0):>9,} {want.get(cat, 0):>10,}")
        if meta:
            print(
                f"findings {o.stdout_lines:,} vs generated OpenAI error events "
                f"{meta['evidence_events']:,}"
            )
        if o.returncode != 0 or o.timed_out:
            status = 1
            print(f"oai400d exit {o.returncode}; stderr tail:\n{tail(o.stderr)}")
        else:
            print(f"oai400d stderr summary (tail):\n{tail(o.stderr)}")
        found = f", {o.stdout_lines:,} findings" + (
            f" / {meta['evidence_events']:,} generated events" if meta else ""
        )
        md = (
            f"- {date.today()}, {git_revision()}, {log.name} ({human_bytes(size)}), "
            f"{os.cpu_count()} CPUs: "
            f"oai400d classify --json {o.wall_s:.2f} s, {mb_per_s(size, o.wall_s):.1f} MB/s, "
            f"{o.max_rss_kib / 1024:.0f} MiB RSS{found}; {grep_md}; "
            f"oai400d/grep = {ratio:.1f}x"
        )
    print()
    print("Markdown for BENCHMARKS.md:")
    print(md)
    return status


def categories(stdout: bytes) -> Counter[str]:
    counts: Counter[str] = Counter()
    for line in stdout.splitlines():
        try:
            counts[str(json.loads(line).get("category"))] += 1
        except (ValueError, AttributeError):
            counts["<not a JSON object>"] += 1
    return counts


if __name__ == "__main__":
    sys.exit(main())
