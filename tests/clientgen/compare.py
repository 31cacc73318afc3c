"""How today's classifier does on the generated cases: `.venv/bin/python -m tests.clientgen.compare`.

Runs `oai400d classify --json` over tests/data/clients.*/ (never over the held-out captures) and
prints, per library and scenario, whether each case gives exactly its expected findings, and
how it differs when it does not. --markdown prints the table for a report.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from typing import Any

from tests.support import Case, load_corpus, oai400d

Finding = tuple[str, str | None, tuple[int, int]]


def classify(cases: list[Case]) -> dict[str, list[dict[str, Any]]]:
    result = oai400d("classify", "--json", *sorted(str(c.file) for c in cases))
    if result.returncode != 0:
        raise SystemExit(result.stderr.decode())
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in result.stdout.decode().splitlines():
        finding = json.loads(line)
        grouped[finding["path"]].append(finding)
    return grouped


def differences(expected: list[Finding], actual: list[dict[str, Any]]) -> list[str]:
    """What differs, in words (empty: exactly right)."""
    got: list[Finding] = [
        (f["category"], f["error_code"], (f["line"], f["end_line"])) for f in actual
    ]
    if got == expected:
        return []
    out = []
    rules = {(f["line"], f["end_line"]): f["rule"] for f in actual}
    unmatched = list(got)
    for category, code, span in expected:
        # the actual finding that overlaps the expected span best
        overlapping = [g for g in unmatched if g[2][0] <= span[1] and span[0] <= g[2][1]]
        if not overlapping:
            out.append("missing")
            continue
        best = max(overlapping, key=lambda g: min(g[2][1], span[1]) - max(g[2][0], span[0]))
        unmatched.remove(best)
        if best[0] != category:
            out.append(f"wrong cause {best[0]} ({rules.get(best[2])})")
        if best[1] != code:
            out.append(f"code {best[1]!r} (expected {code!r})")
        if best[2] != span:
            out.append(f"span {list(best[2])} (expected {list(span)})")
    for category, _code, span in unmatched:
        label = "false positive" if not expected else "extra finding"
        out.append(f"{label} {category} at {list(span)} ({rules.get(span)})")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    cases = [c for c in load_corpus() if c.group.startswith("clients.")]
    output = classify(cases)
    rows = []
    per_library: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for case in cases:
        expected = [(e.category, e.code, e.lines) for e in case.findings]
        diff = differences(expected, output.get(str(case.file), []))
        library = case.group.removeprefix("clients.")
        scenario, _, style = case.file.stem.partition("__")
        per_library[library][0] += not diff
        per_library[library][1] += 1
        rows.append((library, scenario, style, "; ".join(diff) or "ok"))
    if args.markdown:
        print("| library | scenario | style | result |\n|---|---|---|---|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        for row in rows:
            print("  ".join(row))
    total = sum(n for _, n in per_library.values())
    right = sum(r for r, _ in per_library.values())
    for library, (r, n) in sorted(per_library.items()):
        print(f"{library}: {r}/{n} right")
    print(f"all: {right}/{total} right")
    return 0


if __name__ == "__main__":
    sys.exit(main())
