"""One failed request, one finding.

Clients often log a failed request twice: an HTTP line that shows only the status (httpx's
`HTTP Request: POST … "HTTP/1.1 429 Too Many Requests"`, logged by openai-python at INFO), then
the exception with OpenAI's error body. Both are OpenAI errors, but the status line alone would
open a second, vaguer alert, with a guessed cause (a 429 that was really `insufficient_quota`).
A status-only finding is therefore dropped when a detailed finding with the same status comes
close to it in the same file: after it (the usual order), or before it (retry loops such as
LlamaIndex's log the error and then the status lines of the next attempts; some tools print the
underlying httpx `HTTPStatusError` after the API error). Otherwise it stands on its own.

`same_failure` is the rule; `one_per_request` applies it to a file's findings in order
(`oai400d classify`); the daemon applies it with a clock (service.py holds status-only findings
for a moment, since the detailed error may still be on its way).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

from oai400d.model import Finding

# How many lines apart a status line and the detailed error of the same request may be: retries
# logged in between (`Retrying request to /chat/completions in 0.4 seconds`, more status lines).
SAME_REQUEST_LINES = 50
# A detailed error that shows no status is the same request's only when it is right next to the
# status line (`Error: HTTP 400 … from https://api.openai.com/v1/responses`, a blank, the body).
BODY_LINES = 3


def same_failure(status_only: Finding, detailed: Finding) -> bool:
    """Whether `detailed` tells the failure that the status-only finding showed: the same file
    and status, starting at most SAME_REQUEST_LINES lines after it or ending at most that many
    lines before it; or, showing no status, at most BODY_LINES lines from it."""
    if detailed.status_only or detailed.path != status_only.path:
        return False
    after = detailed.line - status_only.end_line
    before = status_only.line - detailed.end_line
    if detailed.status is None:
        # The body printed right under the status line (or the status right under the message),
        # showing no status of its own.
        return 0 < after <= BODY_LINES or 0 < before <= BODY_LINES
    return detailed.status == status_only.status and (
        0 < after <= SAME_REQUEST_LINES or 0 < before <= SAME_REQUEST_LINES
    )


def one_per_request(findings: Iterable[Finding]) -> Iterator[Finding]:
    """The findings of one file after another, in order, without the status-only ones that a
    detailed finding of the same request follows. Holds only the findings of the last
    SAME_REQUEST_LINES lines after a status-only one."""
    pending: deque[Finding] = deque()  # from the oldest status-only finding still waiting
    told: deque[Finding] = deque(maxlen=8)  # the last detailed findings, for status lines after
    for finding in findings:
        if finding.status_only:
            if any(same_failure(finding, detailed) for detailed in told):
                continue
        else:
            told.append(finding)
            if pending:
                pending = deque(
                    p for p in pending if not (p.status_only and same_failure(p, finding))
                )
        pending.append(finding)
        while pending and (not pending[0].status_only or _too_far(pending[0], finding)):
            yield pending.popleft()
    yield from pending


def _too_far(status_only: Finding, later: Finding) -> bool:
    """Whether no detailed finding from `later` on can still tell the same failure."""
    return later.path != status_only.path or (
        later.line - status_only.end_line > SAME_REQUEST_LINES
    )
