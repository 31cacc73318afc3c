#!/usr/bin/env python3
"""Throughput of `oai400d classify --json FILE` against a grep baseline, per corpus shape.

For each shape (mixed, openai-heavy, jsonl, access-heavy, storm; see gen_log.py) it generates
the log when it is missing (/tmp/oai400d-bench/<shape>-<size>.log), reads it once so that both
tools read from the page cache, then runs each tool --runs times, taking turns (grep, oai400d,
grep, oai400d ...: on a shared machine both see the same load), and reports the best run:

  grep     LC_ALL=C grep -E -c with one -e pattern per taxonomy category, a single process,
           stdout to a pipe (never /dev/null: GNU grep then stops at the first match);
  oai400d  the command under test, stdout to a pipe whose lines this script counts.

Wall time, MB/s (10**6 bytes), CPU time and peak RSS per run; the oai400d/grep ratio; and the
findings per category against the intended counts in PATH.meta.json (mismatches listed, exit 1).
Per shape, and in the summary of all shapes, the ratio both ways: oai400d's throughput as a
multiple of grep's (issue 18's acceptance figure: >= 1.0x is at least as fast as grep) and the
wall-time ratio oai400d/grep (its inverse).

    python bench/classify_throughput.py                       # all shapes, 1 GiB each
    python bench/classify_throughput.py --shape openai-heavy --size 100M
    python bench/classify_throughput.py --size 50M --grep-only
    python bench/classify_throughput.py --shape mixed --size 200M --wrapper docker  # wrap_log.py
    OAI400D_CMD="python -m oai400d.cli" python bench/classify_throughput.py
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import gen_log
import wrap_log
from benchlib import (
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

SHAPE_CHOICES = [*gen_log.SHAPES, "all"]

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
    found: list[Counter[str]]  # per run: findings by category, counted as stdout streamed

    @property
    def best(self) -> Measured:
        return min(self.runs, key=lambda m: m.wall_s)

    @property
    def best_found(self) -> Counter[str]:
        return self.found[self.runs.index(self.best)]


# The top-level key of a finding; a quote inside a JSON string value is escaped, so this
# finds nothing else.
_CATEGORY = re.compile(rb'"category": "([^"\\]*)"')


def measure_once(
    name: str, argv: list[str], env: dict[str, str], run: str, timeout: float
) -> tuple[Measured, Counter[str]]:
    found: Counter[str] = Counter()

    def count(lines: bytes) -> None:
        found.update(c.decode() for c in _CATEGORY.findall(lines))

    m = run_measured(argv, env=env, timeout_s=timeout, keep_stdout=1 << 20, on_lines=count)
    note = " TIMED OUT" if m.timed_out else ""
    print(
        f"  {name} run {run}: {m.wall_s:.2f} s wall, {m.cpu_s:.2f} s CPU, "
        f"peak RSS {m.max_rss_kib / 1024:.1f} MiB, exit {m.returncode}, "
        f"{m.stdout_lines:,} stdout lines{note}",
        flush=True,
    )
    return m, found


def measure_alternating(
    tools: list[tuple[str, list[str], dict[str, str]]], runs: int, timeout: float
) -> list[Best]:
    """Each tool `runs` times, taking turns (A B A B ...), so that both see the same moments of
    a shared machine's load; a tool that times out is not run again."""
    done: dict[str, list[Measured]] = {name: [] for name, _, _ in tools}
    found: dict[str, list[Counter[str]]] = {name: [] for name, _, _ in tools}
    for i in range(runs):
        for name, argv, env in tools:
            if done[name] and done[name][-1].timed_out:
                continue
            m, counts = measure_once(name, argv, env, f"{i + 1}/{runs}", timeout)
            done[name].append(m)
            found[name].append(counts)
    return [Best(name, done[name], found[name]) for name, _, _ in tools]


def ensure_log(
    path: Path, shape: str, size_text: str, seed: int, regenerate: bool
) -> dict[str, Any]:
    """Generate the log when missing (or asked to, or its meta names another shape or seed);
    return its meta (empty if none)."""
    meta_file = gen_log.meta_path(path)
    meta: dict[str, Any] = {}
    if meta_file.exists():
        meta = dict(json.loads(meta_file.read_text()))
    stale = bool(meta) and (meta.get("shape", "mixed"), meta.get("seed")) != (shape, seed)
    if regenerate or stale or not path.exists():
        why = "regenerating" if path.exists() else "generating"
        print(f"{why} {path} (shape {shape}, {size_text}, seed {seed}) ...", flush=True)
        argv = ["--shape", shape, "--size", size_text, "--out", str(path), "--seed", str(seed)]
        gen_log.main(argv)
        print()
        meta = dict(json.loads(meta_file.read_text()))
    else:
        print(f"using existing {path} (pass --regenerate to rebuild it)")
    if meta and meta.get("bytes") != path.stat().st_size:
        print(f"note: {meta_file} does not describe {path} (size differs); ignoring it")
        return {}
    return meta


@dataclass
class ShapeResult:
    shape: str
    log: Path
    size: int
    meta: dict[str, Any]
    grep: Best
    grep_count: int
    oai: Best | None = None
    found: Counter[str] = field(default_factory=Counter)
    mismatches: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        if self.oai is None or self.grep.best.wall_s <= 0:
            return float("nan")
        return self.oai.best.wall_s / self.grep.best.wall_s

    @property
    def throughput_ratio(self) -> float:
        """oai400d's throughput as a multiple of grep's (grep's wall time / oai400d's)."""
        if self.oai is None or self.oai.best.wall_s <= 0:
            return float("nan")
        return self.grep.best.wall_s / self.oai.best.wall_s

    @property
    def failed(self) -> bool:
        o = self.oai.best if self.oai else None
        return o is not None and (o.returncode != 0 or o.timed_out)


def compare(found: Counter[str], want: dict[str, int]) -> list[str]:
    """One line per category whose number of findings differs from the intended count."""
    out = []
    for cat in sorted(set(found) | set(want)):
        got, exp = found.get(cat, 0), want.get(cat, 0)
        if got != exp:
            out.append(f"{cat}: {got:,} findings, {exp:,} intended ({got - exp:+,})")
    return out


def run_shape(shape: str, log: Path, args: argparse.Namespace, cmd: list[str]) -> ShapeResult:
    print(f"=== shape {shape}")
    meta = ensure_log(log, shape, args.size, args.seed, args.regenerate)
    if args.wrapper:
        # The same log as a container runtime writes it: the same findings are intended.
        wrapped = log.with_suffix(f".{args.wrapper}.log")
        if args.regenerate or not wrapped.exists() or wrapped.stat().st_mtime < log.stat().st_mtime:
            print(f"wrapping {log} for {args.wrapper} into {wrapped} ...", flush=True)
            wrap_log.main([args.wrapper, str(log), "--out", str(wrapped)])
        shape, log = f"{shape} ({args.wrapper})", wrapped
    size = log.stat().st_size
    avail = mem_available()
    if avail is not None and avail < size * 1.2:
        print(
            f"warning: {human_bytes(size)} file, {human_bytes(avail)} available memory: "
            "runs may read from disk rather than the page cache"
        )
    secs = warm_page_cache(log)
    print(f"warm-up read: {human_bytes(size)} in {secs:.2f} s")

    tools = [("grep", grep_argv(log), {**os.environ, "LC_ALL": "C"})]
    if not args.grep_only:
        tools.append(("oai400d", [*cmd, "classify", "--json", str(log)], dict(os.environ)))
    measured = measure_alternating(tools, args.runs, args.timeout)
    grep = measured[0]
    g = grep.best
    grep_count = int(g.stdout.strip() or b"-1") if g.returncode in (0, 1) else -1
    res = ShapeResult(shape, log, size, meta, grep, grep_count)
    if not args.grep_only:
        res.oai = measured[1]
        res.found = res.oai.best_found
        unnamed = res.oai.best.stdout_lines - sum(res.found.values())
        if unnamed:  # lines without a category: not findings
            res.found["<not a finding>"] = unnamed
        if meta:
            res.mismatches = compare(res.found, meta.get("evidence_by_category", {}))
    report_shape(res)
    return res


def report_shape(r: ShapeResult) -> None:
    print()
    print(f"file: {r.log} ({r.size:,} bytes, {human_bytes(r.size)})")
    if r.meta:
        print(
            f"generated content: {r.meta['lines']:,} lines, {r.meta['evidence_events']:,} OpenAI "
            f"error events, {r.meta['lookalike_events']:,} look-alike events"
        )
        shares = r.meta.get("lines_with_literal_percent")
        if shares:
            text = ", ".join(f"{k!r} {v:.1f} %" for k, v in shares.items())
            print(f"lines containing: {text}")
    print(
        f"{'tool':<9} {'wall s':>8} {'MB/s':>9} {'CPU s':>8} {'peak RSS':>11} {'exit':>5}  output"
    )
    tools = [r.grep] + ([r.oai] if r.oai else [])
    for t in tools:
        b = t.best
        out = f"{r.grep_count:,} matching lines" if t is r.grep else f"{b.stdout_lines:,} findings"
        print(
            f"{t.name:<9} {b.wall_s:>8.2f} {mb_per_s(r.size, b.wall_s):>9.1f} {b.cpu_s:>8.2f} "
            f"{b.max_rss_kib / 1024:>7.1f} MiB {b.returncode:>5}  {out}"
        )
    if r.oai is None:
        print()
        return
    o = r.oai.best
    print(f"oai400d/grep: throughput {r.throughput_ratio:.3g}x grep's, wall time {r.ratio:.2f}x")
    want: dict[str, int] = r.meta.get("evidence_by_category", {})
    if r.found or want:
        print(f"  {'category':30} {'findings':>9} {'intended':>9}")
        for cat in sorted(set(r.found) | set(want)):
            flag = "" if r.found.get(cat, 0) == want.get(cat, 0) else "  MISMATCH"
            print(f"  {cat:30} {r.found.get(cat, 0):>9,} {want.get(cat, 0):>9,}{flag}")
    if r.meta:
        verdict = "yes" if not r.mismatches else f"NO, {len(r.mismatches)} categories differ"
        print(
            f"findings {o.stdout_lines:,} vs intended OpenAI error events "
            f"{r.meta['evidence_events']:,}: per-category match {verdict}"
        )
        for line in r.mismatches:
            print(f"  mismatch: {line}")
    else:
        print("no meta file: findings not compared")
    if r.failed:
        print(f"oai400d exit {o.returncode}; stderr tail:\n{tail(o.stderr)}")
    else:
        own = [ln for ln in o.stderr.splitlines() if ln.startswith("oai400d:")]
        print(f"oai400d's summary: {own[-1] if own else tail(o.stderr, 1)}")
    print()


def markdown(r: ShapeResult) -> str:
    g = r.grep.best
    grep_md = (
        f"grep -E ({len(CATEGORY_PATTERNS)} patterns) {g.wall_s:.2f} s, "
        f"{mb_per_s(r.size, g.wall_s):.0f} MB/s, {g.max_rss_kib / 1024:.1f} MiB RSS"
    )
    where = f"{r.log.name} ({human_bytes(r.size)}, shape {r.shape})"
    if r.oai is None:
        return f"- {date.today()}, {where}: {grep_md}; oai400d not run"
    o = r.oai.best
    found = f", {o.stdout_lines:,} findings"
    if r.meta:
        match = "match" if not r.mismatches else f"{len(r.mismatches)} categories differ"
        found += f" / {r.meta['evidence_events']:,} intended ({match})"
    n = len(r.oai.runs)
    runs = f"best of {n} runs each, taking turns" if n > 1 else "one run each"
    return (
        f"- {date.today()}, {git_revision()}, {where}, {os.cpu_count()} CPUs: "
        f"oai400d classify --json {o.wall_s:.2f} s, {mb_per_s(r.size, o.wall_s):.1f} MB/s, "
        f"{o.max_rss_kib / 1024:.0f} MiB RSS{found}; {grep_md}; "
        f"oai400d/grep: throughput {r.throughput_ratio:.3g}x, wall time {r.ratio:.2f}x "
        f"({runs})"
    )


def summary(results: list[ShapeResult]) -> None:
    print("=== summary")
    print(
        f"{'shape':<13} {'size':>10} {'grep s':>7} {'grep MB/s':>9} {'oai s':>8} {'oai MB/s':>8} "
        f"{'oai CPU s':>9} {'oai RSS':>8} {'thru/grep':>9} {'time/grep':>9}  findings/intended"
    )
    for r in results:
        g = r.grep.best
        o = r.oai.best if r.oai else None
        if o is None:
            tail_cols = f"{'-':>8} {'-':>8} {'-':>9} {'-':>8} {'-':>9} {'-':>9}  -"
        else:
            intended = f"{r.meta['evidence_events']:,}" if r.meta else "?"
            ok = "" if not r.meta else (" ok" if not r.mismatches else " MISMATCH")
            tail_cols = (
                f"{o.wall_s:>8.2f} {mb_per_s(r.size, o.wall_s):>8.1f} {o.cpu_s:>9.2f} "
                f"{o.max_rss_kib / 1024:>4.0f} MiB {r.throughput_ratio:>8.3g}x {r.ratio:>8.2f}x  "
                f"{o.stdout_lines:,}/{intended}{ok}"
            )
        print(
            f"{r.shape:<13} {human_bytes(r.size):>10} {g.wall_s:>7.2f} "
            f"{mb_per_s(r.size, g.wall_s):>9.0f} {tail_cols}"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--shape", choices=SHAPE_CHOICES, default="all", help="corpus shape (default all)"
    )
    ap.add_argument(
        "--log", type=Path, help="log file (one shape only; default <work dir>/<shape>-<size>.log)"
    )
    ap.add_argument("--size", default="1G", help="size of each generated log (default 1G)")
    ap.add_argument("--seed", type=int, default=gen_log.DEFAULT_SEED)
    ap.add_argument("--regenerate", action="store_true", help="rebuild the logs even if present")
    ap.add_argument("--runs", type=int, default=2, help="timed runs per tool (default 2)")
    ap.add_argument(
        "--cmd", help="command under test (default: $OAI400D_CMD, oai400d on PATH, .venv)"
    )
    ap.add_argument("--grep-only", action="store_true", help="measure the grep baseline only")
    ap.add_argument(
        "--wrapper",
        choices=sorted(wrap_log.WRAPPERS),
        help="measure the log as a container runtime wraps it (bench/wrap_log.py)",
    )
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per run (default 3600)")
    args = ap.parse_args(argv)
    try:
        parse_size(args.size)
    except ValueError as e:
        ap.error(str(e))
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    shapes = list(gen_log.SHAPES) if args.shape == "all" else [args.shape]
    if args.log and len(shapes) > 1:
        ap.error("--log needs a single --shape")

    cmd = resolve_command(args.cmd)
    if not args.grep_only and not command_available(cmd):
        print(
            f"error: command under test {cmd[0]!r} not found; install the project "
            "(.venv/bin/oai400d), set OAI400D_CMD / --cmd, or pass --grep-only",
            file=sys.stderr,
        )
        return 2
    print(f"host: {cpu_model()}, {os.cpu_count()} CPUs; command: {' '.join(cmd)}")
    print()

    results = []
    for shape in shapes:
        log: Path = args.log or gen_log.default_out(args.size, shape)
        results.append(run_shape(shape, log, args, cmd))

    summary(results)
    print()
    print("Markdown for BENCHMARKS.md:")
    for r in results:
        print(markdown(r))
    return 1 if any(r.failed or r.mismatches for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
