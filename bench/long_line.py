#!/usr/bin/env python3
"""How `oai400d classify --json` copes with pathological input: huge lines and binary bytes.

Writes these files (deterministic, under --dir) and runs the command once on each:

  long-no-newline      one 50 MB line and no newline at all: must end, exit 0, RSS bounded;
  long-then-error      a 50 MB line, then an OpenAI error line: that line must be found (line 2);
  binary-then-error    2 MB of random bytes, then an OpenAI error line: it must be found;
  error-in-long-line   an OpenAI error at the start of a 50 MB line (a logged request body).

Reports wall time, peak RSS, exit code, the findings, and whether the error line was found
(by category and at the right line number: newlines are counted as b"\\n" only, so a stray
\\r or \\x0b in the binary part must not shift it). Exits 1 when a check fails.

    python bench/long_line.py [--cmd "oai400d"] [--long-size 50M] [--binary-size 2M] [--stdin]
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path

from benchlib import (
    DEFAULT_WORK_DIR,
    Measured,
    command_available,
    mb_per_s,
    parse_size,
    resolve_command,
    run_measured,
    tail,
)

SEED = 50
ERROR_CATEGORY = "quota.insufficient"
ERROR_LINE = (
    b"2024-05-01 12:00:01,000 ERROR app.llm: openai.RateLimitError: Error code: 429 - "
    b"{'error': {'message': 'You exceeded your current quota, please check your plan and "
    b"billing details. For more information on this error, read the docs: "
    b"https://platform.openai.com/docs/guides/error-codes/api-errors.', 'type': "
    b"'insufficient_quota', 'param': None, 'code': 'insufficient_quota'}}\n"
)
IN_LINE_CATEGORY = "request.context_length"
IN_LINE_HEAD = (
    b"2024-05-01 12:00:02,000 ERROR app.llm: openai.BadRequestError: Error code: 400 - "
    b"{'error': {'message': \"This model's maximum context length is 128000 tokens. However, "
    b'your messages resulted in 9123456 tokens. Please reduce the length of the messages.", '
    b"'type': 'invalid_request_error', 'param': 'messages', 'code': "
    b"'context_length_exceeded'}} request_body="
)
LONG_HEAD = (
    b'2024-05-01 12:00:00,000 DEBUG app.upload: request body={"image": "data:image/png;base64,'
)


@dataclass(frozen=True)
class Variant:
    name: str
    path: Path
    expect_line: int | None  # 1-based line of the OpenAI error, None: no finding expected
    expect_category: str | None


def filler(rng: random.Random, n: int) -> bytes:
    """n bytes of base64 text (no newline), like an inlined image."""
    return base64.b64encode(rng.randbytes(n * 3 // 4 + 3))[:n]


def write_variants(directory: Path, long_size: int, binary_size: int) -> list[Variant]:
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(SEED)
    long_line = LONG_HEAD + filler(rng, long_size - len(LONG_HEAD))
    binary = random.Random(SEED + 1).randbytes(binary_size) + b"\n"
    out = [
        Variant("long-no-newline", directory / "long-no-newline.log", None, None),
        Variant("long-then-error", directory / "long-then-error.log", 2, ERROR_CATEGORY),
        Variant(
            "binary-then-error",
            directory / "binary-then-error.log",
            binary.count(b"\n") + 1,
            ERROR_CATEGORY,
        ),
        Variant("error-in-long-line", directory / "error-in-long-line.log", 1, IN_LINE_CATEGORY),
    ]
    out[0].path.write_bytes(long_line)
    out[1].path.write_bytes(long_line + b"\n" + ERROR_LINE)
    out[2].path.write_bytes(binary + ERROR_LINE)
    out[3].path.write_bytes(IN_LINE_HEAD + filler(rng, long_size - len(IN_LINE_HEAD) - 1) + b"\n")
    return out


def findings(m: Measured) -> list[dict[str, object]]:
    found = []
    for line in m.stdout.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            obj = {"category": "<not JSON>", "raw": line[:200].decode("utf-8", "replace")}
        found.append(obj if isinstance(obj, dict) else {"category": "<not an object>"})
    return found


def verdict(v: Variant, m: Measured, got: list[dict[str, object]]) -> tuple[bool, str]:
    """(ok, what happened) for one variant."""
    if m.timed_out:
        return False, "timed out"
    if m.returncode != 0:
        return False, f"exit {m.returncode}"
    if v.expect_line is None:
        return (not got), ("no findings" if not got else f"{len(got)} unexpected finding(s)")
    hits = [f for f in got if f.get("category") == v.expect_category]
    at_line = [f for f in hits if f.get("line") == v.expect_line]
    if at_line:
        return True, f"found {v.expect_category} at line {v.expect_line}"
    if hits:
        lines = ", ".join(str(f.get("line")) for f in hits)
        return False, f"found {v.expect_category} at line {lines}, expected {v.expect_line}"
    cats = ", ".join(sorted({str(f.get("category")) for f in got})) or "nothing"
    return False, f"NOT found (expected {v.expect_category} at line {v.expect_line}; got {cats})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cmd", help="command under test (default: $OAI400D_CMD, PATH, .venv)")
    ap.add_argument("--dir", type=Path, default=DEFAULT_WORK_DIR / "long-line")
    ap.add_argument("--long-size", default="50M", help="size of the long line (default 50M)")
    ap.add_argument("--binary-size", default="2M", help="random binary prefix (default 2M)")
    ap.add_argument("--stdin", action="store_true", help="feed each file on stdin as '-'")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per run (default 600)")
    args = ap.parse_args(argv)
    try:
        long_size, binary_size = parse_size(args.long_size), parse_size(args.binary_size)
    except ValueError as e:
        ap.error(str(e))

    cmd = resolve_command(args.cmd)
    if not command_available(cmd):
        print(
            f"error: command under test {cmd[0]!r} not found; install the project "
            "(.venv/bin/oai400d) or set OAI400D_CMD / --cmd",
            file=sys.stderr,
        )
        return 2

    variants = write_variants(args.dir, long_size, binary_size)
    print(f"command: {' '.join(cmd)} classify --json {'-' if args.stdin else 'FILE'}")
    rows = []
    failed = False
    for v in variants:
        size = v.path.stat().st_size
        if args.stdin:
            m = run_measured(
                [*cmd, "classify", "--json", "-"], stdin_path=v.path, timeout_s=args.timeout
            )
        else:
            m = run_measured([*cmd, "classify", "--json", str(v.path)], timeout_s=args.timeout)
        got = findings(m)
        ok, what = verdict(v, m, got)
        failed |= not ok
        rows.append((v, size, m, got, ok, what))
        print(f"  {v.name}: {m.wall_s:.2f} s, exit {m.returncode}: {what}", flush=True)
        if not ok:
            print(f"    stderr tail:\n{tail(m.stderr)}")

    print()
    print(
        f"{'variant':<20} {'size':>11} {'wall s':>7} {'MB/s':>7} {'peak RSS':>11} {'exit':>5} "
        f"{'findings':>8}  check"
    )
    for v, size, m, got, ok, what in rows:
        print(
            f"{v.name:<20} {size:>11,} {m.wall_s:>7.2f} {mb_per_s(size, m.wall_s):>7.1f} "
            f"{m.max_rss_kib / 1024:>7.1f} MiB {m.returncode:>5} {len(got):>8}  "
            f"{'ok' if ok else 'FAIL'}: {what}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
