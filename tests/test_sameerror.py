"""One failed request, one finding: which secondary findings a finding that tells more replaces."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from oai400d.model import Finding
from oai400d.sameerror import SAME_REQUEST_LINES, one_per_request, same_failure

from .samples import request_finding as finding

W = SAME_REQUEST_LINES
CASES = [
    # (findings in file order as (line, status, kind), lines of those kept)
    ("status line, then its exception", [(1, 429, "status"), (3, 429, "error")], [3]),
    ("three retries, then the exception",
     [(1, 429, "status"), (3, 429, "status"), (5, 429, "status"), (7, 429, "error")], [7]),
    ("another status and cause follows", [(1, 429, "status"), (3, 500, "error")], [1, 3]),
    ("too far apart", [(1, 429, "status"), (2 + W, 429, "error")], [1, 2 + W]),
    ("just within the window", [(1, 429, "status"), (1 + W, 429, "error")], [1 + W]),
    ("error first, status line far after", [(1, 429, "error"), (7 + W, 429, "status")],
     [1, 7 + W]),
    ("error first, its retries' status lines after",
     [(1, 429, "error"), (8, 429, "status"), (30, 429, "status")], [1]),
    ("a status line alone", [(4, 500, "status")], [4]),
    ("the body right under it, no status shown", [(1, 400, "status"), (3, None, "error")], [3]),
    ("an error without status further down", [(1, 429, "status"), (8, None, "error")], [1, 8]),
    ("two status lines never replace each other", [(1, 429, "status"), (2, 429, "status")],
     [1, 2]),
    ("order kept around a held one",
     [(1, 429, "status"), (2, 500, "error"), (3, 429, "error"), (60, 400, "status")],
     [2, 3, 60]),
    ("retry notices, then the error", [(1, 429, "notice"), (9, 429, "notice"), (20, 429, "error")],
     [20]),
    ("a retry notice tells more than the status lines around it",
     [(1, 400, "status"), (2, 400, "notice"), (3, 400, "status"), (4, 400, "notice")], [2, 4]),
    ("a notice alone stands", [(5, 429, "notice")], [5]),
    ("httpx's line, then an exception that shows only the status", [(1, 409, "status"),
                                                                     (2, 409, "bare")], [2]),
    ("two bare exceptions never replace each other", [(1, 409, "bare"), (8, 409, "bare")],
     [1, 8]),
]


@pytest.mark.parametrize(("findings", "kept"), [(f, k) for _, f, k in CASES],
                         ids=[name for name, _, _ in CASES])
def test_one_per_request(findings: list[tuple[int, int | None, str]], kept: list[int]) -> None:
    """The table: which findings of one file come out, in file order."""
    out = one_per_request(finding(line, status, kind) for line, status, kind in findings)
    assert [f.line for f in out] == kept


def test_another_file_is_another_request() -> None:
    """An error in another file never replaces a status line."""
    status_line = finding(1, 429, "status", path="a.log")
    error = finding(3, 429, "error", path="b.log")
    assert not same_failure(status_line, error)
    assert [f.path for f in one_per_request([status_line, error])] == ["a.log", "b.log"]


def test_what_is_held_is_bounded() -> None:
    """A long run of findings after a status line never piles up: the status line and what
    follows come out as soon as the input is more than SAME_REQUEST_LINES lines past it, not at
    the end of the input."""
    read = 0

    def stream() -> Iterator[Finding]:
        nonlocal read
        for line in range(1, 10_000):
            read = line
            yield finding(line, 429 if line == 1 else 500, "status" if line == 1 else "error")

    outputs = one_per_request(stream())
    first = next(outputs)
    assert first.line == 1  # the status line stands: nothing told its failure better
    assert read <= W + 2  # … and it came out while the input was still being read
