"""Scan one file in one process, the way `oai400d classify` does, and print what it found.

    valgrind --tool=callgrind python bench/scan_once.py FILE     # instructions: repeatable

Run it on two sizes of the same shape: the difference is the cost of scanning, the rest is
start-up (imports, rule table, the automata). Wall-clock figures on a shared machine swing by
tens of percent; instruction counts do not (BENCHMARKS.md).
"""

from __future__ import annotations

import os
import sys
import time

from oai400d.classify import Classifier
from oai400d.scan import Scanner, scan_file


def main() -> int:
    path = sys.argv[1]
    started = time.process_time()
    scanner = Scanner(Classifier())
    found = sum(1 for _ in scan_file(scanner, path, os.path.getsize(path), parallel_min=1 << 62))
    print(
        f"{found} findings, {scanner.stats.events} candidate events, "
        f"{time.process_time() - started:.2f} s CPU"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
