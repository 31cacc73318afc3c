"""How the classifier does on cases it was never tuned on: the held-out corpus measure.

    python bench/heldout.py DIR [DIR ...]       # folders laid out like tests/data/<group>/

Each DIR holds `<group>/expected.toml` + `.log` files in the corpus format (tests/data/README.md).
Keep such folders OUTSIDE the repository and never look at them while writing rules: they are
what predicts how the rules do on logs nobody has seen. Prints, per group and in all:

- right cause: expected findings matched by a finding of the same category whose span overlaps;
- some finding: expected findings overlapped by any finding (the error is at least not silent);
- clean negatives: negative cases (no expected finding) that yield no finding at all;
- extra findings: findings in positive cases that overlap no expected finding.

Runs `oai400d classify --json` once over every file, as a user would.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tomllib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Tally:
    expected: int = 0
    right: int = 0
    found: int = 0
    negatives: int = 0
    clean: int = 0
    extra: int = 0
    misses: list[str] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.expected += other.expected
        self.right += other.right
        self.found += other.found
        self.negatives += other.negatives
        self.clean += other.clean
        self.extra += other.extra
        self.misses += other.misses


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def _cases(root: Path) -> list[tuple[str, Path, list[tuple[str, tuple[int, int]]]]]:
    found = []
    for table in sorted(root.glob("**/expected.toml")):
        document = tomllib.loads(table.read_text(encoding="utf-8"))
        for raw in document.get("case", []):
            expected = [(f["category"], (f["lines"][0], f["lines"][1])) for f in raw["findings"]]
            found.append((table.parent.name, table.parent / raw["file"], expected))
    return found


def measure(dirs: list[Path]) -> dict[str, Tally]:
    """The tally of each group (folder name) of the cases under `dirs`."""
    cases = [case for root in dirs for case in _cases(root)]
    if not cases:
        return {}
    result = subprocess.run(
        [sys.executable, "-m", "oai400d.cli", "classify", "--json", *(str(c[1]) for c in cases)],
        capture_output=True,
        check=False,
    )
    by_file: dict[str, list[tuple[str, tuple[int, int]]]] = defaultdict(list)
    for line in result.stdout.decode().splitlines():
        finding = json.loads(line)
        by_file[finding["path"]].append(
            (finding["category"], (finding["line"], finding["end_line"]))
        )
    groups: dict[str, Tally] = defaultdict(Tally)
    for group, path, expected in cases:
        tally = groups[group]
        actual = by_file.get(str(path), [])
        if not expected:
            tally.negatives += 1
            tally.clean += not actual
            if actual:
                tally.misses.append(f"{path.name}: negative, got {actual}")
            continue
        for category, span in expected:
            tally.expected += 1
            overlapping = [a for a in actual if _overlaps(a[1], span)]
            tally.found += bool(overlapping)
            right = any(a[0] == category for a in overlapping)
            tally.right += right
            if not right:
                tally.misses.append(f"{path.name}: expected {category} {span}, got {overlapping}")
        tally.extra += sum(
            1 for a in actual if not any(_overlaps(a[1], span) for _, span in expected)
        )
    return dict(groups)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dirs", nargs="+", type=Path)
    parser.add_argument("--misses", action="store_true", help="list every miss (reveals texts)")
    args = parser.parse_args()
    groups = measure(args.dirs)
    if not groups:
        print("no cases found", file=sys.stderr)
        return 2
    total = Tally()
    print(f"{'group':<28}{'errors':>7}{'right cause':>13}{'some finding':>14}"
          f"{'negatives':>11}{'clean':>8}{'extra':>7}")
    for group in sorted(groups):
        tally = groups[group]
        total.add(tally)
        _row(group, tally)
    _row("all", total)
    if args.misses:
        print("\n".join(total.misses))
    return 0


def _row(name: str, t: Tally) -> None:
    def ratio(a: int, b: int) -> str:
        return f"{a / b:.3f}" if b else "-"

    print(
        f"{name:<28}{t.expected:>7}{ratio(t.right, t.expected):>13}"
        f"{ratio(t.found, t.expected):>14}{t.negatives:>11}{ratio(t.clean, t.negatives):>8}"
        f"{t.extra:>7}"
    )


if __name__ == "__main__":
    sys.exit(main())
