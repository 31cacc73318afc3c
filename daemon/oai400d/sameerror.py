"""One failed request, one finding.

Clients and libraries often log a failed request more than once before the application logs
the error: httpx's line that shows only the status (`HTTP Request: POST … "HTTP/1.1 429 Too
Many Requests"`, at INFO, before each retry and before raising), a library's own record of the
error below error level (openai-python 0.x's INFO `error_code=… message='OpenAI API error
received'`, LlamaIndex's and LangChain's WARNING `Retrying … as it raised RateLimitError: …`).
Each is an OpenAI error, but alerting on it would add a second, vaguer alert for the same
request, sometimes with a guessed cause (a 429 that was really `insufficient_quota`).

Such a finding is *secondary* (`Finding.secondary`, decided by the classifier). It is dropped
when a finding that tells more about the same failure is close to it in the same file (a primary
one; for a status line, also a retry notice that quotes the error body): the same status or
the same rule, within SAME_REQUEST_LINES lines before or after it (retry loops log the error
before the next attempts' status lines; some tools print httpx's `HTTPStatusError` after the API
error); or, if the primary one shows no status, right next to it (the body printed under the
status line). Otherwise it stands on its own: no error goes unseen.

`same_failure` is the rule; `one_per_request` applies it to a file's findings in order
(`oai400d classify`); the daemon applies it with a clock (service.py holds secondary findings
for a moment, since the primary one may still be on its way).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

from oai400d.model import Finding

# How many lines apart a secondary finding and the primary one of the same request may be:
# retries logged in between (`Retrying request to /chat/completions in 0.4 seconds`, more
# status lines).
SAME_REQUEST_LINES = 50
# A primary finding that shows no status is the same request's only when it is right next to
# the secondary one (`Error: HTTP 400 … from https://api.openai.com/v1/responses`, a blank, the
# body).
BODY_LINES = 3


def rank(finding: Finding) -> int:
    """How much a finding tells: the application's error record (3); a library's record below
    error level with the error's details, such as a retry notice (2); a status alone at error
    level, an exception without a body (1); a status line below it, httpx's (0)."""
    if not finding.secondary:
        return 3
    if not finding.status_only:
        return 2
    return 0 if finding.quiet else 1


def tells_more(primary: Finding, secondary: Finding) -> bool:
    return rank(primary) > rank(secondary)


def same_failure(secondary: Finding, primary: Finding) -> bool:
    """Whether `primary` tells the failure that the secondary finding showed (module doc)."""
    if not tells_more(primary, secondary) or primary.path != secondary.path:
        return False
    after = primary.line - secondary.end_line
    before = secondary.line - primary.end_line
    near = 0 < after <= SAME_REQUEST_LINES or 0 < before <= SAME_REQUEST_LINES
    if primary.status is not None and primary.status == secondary.status:
        return near
    if primary.rule == secondary.rule or (
        secondary.status_only and primary.category == secondary.category
    ):
        return near  # (a status line's cause is a guess: the same category will do)
    return primary.status is None and (0 < after <= BODY_LINES or 0 < before <= BODY_LINES)


def one_per_request(findings: Iterable[Finding]) -> Iterator[Finding]:
    """The findings of one file after another, in order, without the secondary ones that a
    primary finding of the same request tells. Holds only the findings of the last
    SAME_REQUEST_LINES lines after a secondary one."""
    pending: deque[Finding] = deque()  # from the oldest secondary finding still waiting
    told: deque[Finding] = deque(maxlen=8)  # the last that tell more than a status, for after
    for finding in findings:
        if finding.secondary and any(same_failure(finding, better) for better in told):
            continue
        if rank(finding) > 0:
            told.append(finding)
            if pending:
                pending = deque(
                    p for p in pending if not (p.secondary and same_failure(p, finding))
                )
        pending.append(finding)
        while pending and (not pending[0].secondary or _too_far(pending[0], finding)):
            yield pending.popleft()
    yield from pending


def _too_far(secondary: Finding, later: Finding) -> bool:
    """Whether no primary finding from `later` on can still tell the same failure."""
    return later.path != secondary.path or (
        later.line - secondary.end_line > SAME_REQUEST_LINES
    )
