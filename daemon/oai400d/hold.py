"""The status-only hold: a secondary finding waits a moment for the detailed one.

A secondary finding (sameerror.py: httpx's status line, a library's retry notice) is often
followed within a fraction of a second by the application's record of the same failed request,
which tells its cause. The hold keeps each secondary finding for `wait` seconds: if a finding
that tells the same failure better arrives meanwhile (or arrived just before), the secondary one
is dropped; otherwise it is released and counts as a finding of its own. No error goes unseen,
and none is alerted twice.

Pure: the caller passes the time; nothing here reads a clock or does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from oai400d.model import Finding
from oai400d.sameerror import rank, same_failure

# How long a secondary finding waits for the detailed error of the same request.
SECONDARY_HOLD = 1.0


@dataclass(frozen=True, slots=True)
class Held:
    """A secondary finding and when it came; `backlog`: read while catching up, and old."""

    finding: Finding
    since: float
    backlog: bool


class SecondaryHold:
    """Holds secondary findings until the finding that tells them better comes, or `wait` ends."""

    def __init__(self, wait: float = SECONDARY_HOLD) -> None:
        self.wait = wait
        self._held: list[Held] = []
        # Findings that tell more than a status, of the last 2 × wait: one may tell a secondary
        # finding that comes after it (a retry's status line logged after the error).
        self._recent: list[tuple[Finding, float]] = []

    def offer(self, finding: Finding, now: float, backlog: bool) -> bool:
        """Take a new finding; True when it is held (secondary), False when the caller counts
        it now."""
        if rank(finding) > 0:  # it may tell a held finding's failure better
            self._recent.append((finding, now))
        if finding.secondary:
            self._held.append(Held(finding, now, backlog))
            return True
        return False

    def release(self, now: float, stopping: bool = False) -> list[Held]:
        """The held findings that count from now on, in the order they came: those that waited
        `wait` without a better finding of the same failure (all of them when stopping). The
        ones a better finding told are forgotten."""
        self._recent = [(f, t) for f, t in self._recent if now - t <= 2 * self.wait]
        released: list[Held] = []
        still: list[Held] = []
        for held in self._held:
            if any(same_failure(held.finding, better) for better, _ in self._recent):
                continue  # the same failure, told better by another finding
            if stopping or now - held.since >= self.wait:
                released.append(held)
            else:
                still.append(held)
        self._held = still
        return released

    def deadlines(self) -> list[float]:
        """When each held finding is due to be released."""
        return [held.since + self.wait for held in self._held]

    def __len__(self) -> int:
        return len(self._held)
