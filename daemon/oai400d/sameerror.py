"""One failed request, one finding.

Clients often log a failed request twice: an HTTP line that shows only the status (httpx's
`HTTP Request: POST … "HTTP/1.1 429 Too Many Requests"`, logged by openai-python at INFO), then
the exception with OpenAI's error body. Both are OpenAI errors, but the status line alone would
open a second, vaguer alert, with a guessed cause (a 429 that was really `insufficient_quota`).
A status-only finding is therefore dropped when a detailed finding with the same status follows
it closely in the same file; otherwise it stands on its own.

`same_failure` is the rule; `one_per_request` applies it to a file's findings in order
(`oai400d classify`); the daemon applies it with a clock (service.py holds status-only findings
for a moment, since the detailed error may still be on its way).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

from oai400d.model import Finding

# How many lines after the status line the detailed error may start: retries logged in between
# (`Retrying request to /chat/completions in 0.4 seconds`, more status lines) included.
SAME_REQUEST_LINES = 50


def same_failure(status_only: Finding, detailed: Finding) -> bool:
    """Whether `detailed` tells the failure that the status-only finding showed: the same file
    and status, starting within SAME_REQUEST_LINES lines after it."""
    return (
        not detailed.status_only
        and detailed.path == status_only.path
        and detailed.status == status_only.status
        and 0 < detailed.line - status_only.end_line <= SAME_REQUEST_LINES
    )


def one_per_request(findings: Iterable[Finding]) -> Iterator[Finding]:
    """The findings of one file after another, in order, without the status-only ones that a
    detailed finding of the same request follows. Holds only the findings of the last
    SAME_REQUEST_LINES lines after a status-only one."""
    pending: deque[Finding] = deque()  # from the oldest status-only finding still waiting
    for finding in findings:
        if not finding.status_only and pending:
            pending = deque(p for p in pending if not (p.status_only and same_failure(p, finding)))
        pending.append(finding)
        while pending and (not pending[0].status_only or _too_far(pending[0], finding)):
            yield pending.popleft()
    yield from pending


def _too_far(status_only: Finding, later: Finding) -> bool:
    """Whether no detailed finding from `later` on can still tell the same failure."""
    return later.path != status_only.path or (
        later.line - status_only.end_line > SAME_REQUEST_LINES
    )
