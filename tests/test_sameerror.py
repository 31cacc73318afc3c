"""One failed request, one finding: which status-only findings a detailed one replaces."""

from __future__ import annotations

import pytest

from oai400d.model import Finding
from oai400d.sameerror import SAME_REQUEST_LINES, one_per_request, same_failure


def finding(
    line: int, status: int | None, status_only: bool, path: str = "app.log"
) -> Finding:
    return Finding(
        path=path,
        line=line,
        end_line=line + (0 if status_only else 5),
        category="rate_limit",
        rule="openai.status_429" if status_only else "openai.insufficient_quota",
        severity="warning",
        title="t",
        status=status,
        error_type=None,
        error_code=None,
        param=None,
        model=None,
        request_id=None,
        message="m",
        fingerprint=f"fp{line}",
        fixes=(),
        docs=(),
        excerpt="",
        status_only=status_only,
    )


S = finding  # status-only
CASES = [
    # (findings in file order as (line, status, status_only), lines of those kept)
    ("status line, then its exception", [(1, 429, True), (3, 429, False)], [3]),
    ("three retries, then the exception", [(1, 429, True), (3, 429, True), (5, 429, True),
                                           (7, 429, False)], [7]),
    ("another status follows", [(1, 429, True), (3, 500, False)], [1, 3]),
    ("too far apart", [(1, 429, True), (2 + SAME_REQUEST_LINES, 429, False)],
     [1, 2 + SAME_REQUEST_LINES]),
    ("just within the window", [(1, 429, True), (1 + SAME_REQUEST_LINES, 429, False)],
     [1 + SAME_REQUEST_LINES]),
    ("detailed first, status line far after", [(1, 429, False), (7 + SAME_REQUEST_LINES, 429, True)],
     [1, 7 + SAME_REQUEST_LINES]),
    ("detailed first, its retries' status lines after", [(1, 429, False), (8, 429, True),
                                                         (30, 429, True)], [1]),
    ("a status line alone", [(4, 503, True)], [4]),
    ("the body right under it, no status shown", [(1, 400, True), (3, None, False)], [3]),
    ("an error without status further down", [(1, 429, True), (8, None, False)], [1, 8]),
    ("two status-only findings never replace each other", [(1, 429, True), (2, 429, True)],
     [1, 2]),
    ("order kept around a held one", [(1, 429, True), (2, 500, False), (3, 429, False),
                                      (60, 401, True)], [2, 3, 60]),
]


@pytest.mark.parametrize(("findings", "kept"), [(f, k) for _, f, k in CASES],
                         ids=[name for name, _, _ in CASES])
def test_one_per_request(findings: list[tuple[int, int | None, bool]], kept: list[int]) -> None:
    """The table: which findings of one file come out, in file order."""
    out = one_per_request(S(line, status, only) for line, status, only in findings)
    assert [f.line for f in out] == kept


def test_another_file_is_another_request() -> None:
    """A detailed error in another file never replaces a status line."""
    status_line = S(1, 429, True, path="a.log")
    detailed = S(3, 429, False, path="b.log")
    assert not same_failure(status_line, detailed)
    assert [f.path for f in one_per_request([status_line, detailed])] == ["a.log", "b.log"]


def test_what_is_held_is_bounded() -> None:
    """A long run of findings after a status line never piles up: each is let go once it is
    more than SAME_REQUEST_LINES lines past the status line."""
    stream = [S(1, 429, True)] + [S(n, 500, False) for n in range(2, 10_000)]
    seen = 0
    for out in one_per_request(iter(stream)):
        seen += 1
        if out.line == SAME_REQUEST_LINES + 1:
            break  # came out while the input was still being read
    assert seen <= SAME_REQUEST_LINES + 1
