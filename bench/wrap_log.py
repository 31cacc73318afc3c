#!/usr/bin/env python3
"""Wrap a log the way a container runtime writes it to disk, for timing `oai400d classify` on
wrapped logs against the same log bare.

  docker   Docker's json-file driver: {"log":"…\\n","stream":"stderr","time":"…"} per line, a
           line over 16 KiB split into several objects (the log of all but the last does not
           end in a newline), <, > and & escaped as Go writes them
  cri      containerd / CRI-O: "<RFC 3339 time> stderr <P|F> <text>", a line over 16 KiB in P
           pieces then an F one

    python bench/gen_log.py --size 200M --out /tmp/oai400d-bench/mixed-200m.log
    python bench/wrap_log.py docker /tmp/oai400d-bench/mixed-200m.log   # → mixed-200m.docker.log
    python bench/wrap_log.py cri /tmp/oai400d-bench/mixed-200m.log      # → mixed-200m.cri.log

The time advances 1 µs per line from 2024-05-01T12:00:00Z. Memory stays bounded (line by line).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

SPLIT = 16 * 1024  # Docker's and containerd's buffer: longer lines come in pieces
START = datetime(2024, 5, 1, 12, tzinfo=UTC)


def stamps() -> Iterator[str]:
    step = timedelta(microseconds=1)
    now = START
    while True:
        yield now.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
        now += step


def _go_json(text: str) -> str:
    quoted = json.dumps(text, ensure_ascii=False)
    return quoted.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def docker(line: str, stamp: str) -> str:
    pieces = [line[i : i + SPLIT] for i in range(0, len(line), SPLIT)] or [""]
    pieces[-1] += "\n"
    return "".join(
        f'{{"log":{_go_json(piece)},"stream":"stderr","time":"{stamp}"}}\n' for piece in pieces
    )


def cri(line: str, stamp: str) -> str:
    pieces = [line[i : i + SPLIT] for i in range(0, len(line), SPLIT)] or [""]
    last = len(pieces) - 1
    return "".join(
        f"{stamp} stderr {'F' if i == last else 'P'} {piece}\n" for i, piece in enumerate(pieces)
    )


WRAPPERS = {"docker": docker, "cri": cri}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wrapper", choices=sorted(WRAPPERS))
    parser.add_argument("path", type=Path, help="the bare log")
    parser.add_argument("--out", type=Path, help="default: PATH with .<wrapper>.log for .log")
    args = parser.parse_args(argv)
    out = args.out or args.path.with_suffix(f".{args.wrapper}.log")
    wrap = WRAPPERS[args.wrapper]
    lines = 0
    with (
        args.path.open(encoding="utf-8", errors="surrogateescape", newline="\n") as source,
        out.open("w", encoding="utf-8", errors="surrogateescape") as sink,
    ):
        for line, stamp in zip(source, stamps(), strict=False):
            sink.write(wrap(line.removesuffix("\n"), stamp))
            lines += 1
    print(f"{out}: {lines} lines, {out.stat().st_size / 1e6:.1f} MB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
