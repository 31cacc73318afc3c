"""This host's side of the fleet link (state.fleet): what goes to the store, and the fallback.

With a fleet store, the hosts share one alert book on PostgreSQL (fleetsync/ runs it in its
own thread). The daemon's part, kept here: each live finding is queued for the store as a
count (FleetDelta), written at the next commit; while the store answers, the local book keeps
only what this host must announce itself (probe alerts when the store is away, the backlog
summary). When the store has failed for fleet.fallback_after, this host alerts on its own
findings, saying so in every message, and counts into them whatever the store may not have
got; when the store is back those alerts end as merged into the fleet's.

The wall clock of a commit (`wall`) is compared with the store thread's confirmations; `now` is
the loop's clock. Both are passed in.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from oai400d.alerts import AlertBook, probe_alert
from oai400d.config import Settings
from oai400d.fleetsync import FleetSync, alert_data, probe_fingerprint
from oai400d.model import Alert, Fact, Finding, FleetDelta, Notification, ProbeResult
from oai400d.timestamps import iso
from oai400d.wiring import make_fleet_store

log = logging.getLogger("oai400d")


class FleetLink:
    """Queues this host's findings for the store and runs the local book's share of alerts."""

    def __init__(
        self,
        sync: FleetSync,
        book: AlertBook,
        settings: Settings,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.sync = sync
        self.book = book
        self.settings = settings
        self._wall = wall
        self._deltas: dict[str, FleetDelta] = {}  # findings for the store, queued at the commit
        self._fell_back = False  # the store failed so long that this host alerts on its own
        # Findings queued for the store while it answered, until it confirms them: if it fails
        # first, they count in the alert this host may have to send on its own. Per commit:
        # (committed at, observed at, fingerprint → (a finding, how many)).
        self._step_findings: dict[str, tuple[Finding, int]] = {}
        self._unconfirmed: list[tuple[float, float, dict[str, tuple[Finding, int]]]] = []

    def take(self, finding: Finding, now: float, backlog: bool) -> bool:
        """Queue a finding for the store; True when the store is answering and counts it (the
        local book must not), False when the local book counts it too (backlog, store away)."""
        if backlog:
            return False
        self._queue(finding.fingerprint, now, finding)
        if self.sync.failing_since is None:
            _, seen = self._step_findings.get(finding.fingerprint, (finding, 0))
            self._step_findings[finding.fingerprint] = (finding, seen + 1)
            return True
        return False

    def take_probe_failure(self, result: ProbeResult, now: float) -> bool:
        """One alert for the fleet, not one per host probing the same key; False while this
        host is falling back (its own book alerts)."""
        if self.falling_back(now):
            return False
        key = probe_fingerprint(result, self.settings)
        self._queue(key, now, probe_alert(result, key, now))
        return True

    def falling_back(self, now: float) -> bool:
        """Whether the store has failed for fleet.fallback_after: this host alerts on its own."""
        failing = self.sync.failing_since
        return failing is not None and now - failing >= self.settings.fleet.fallback_after

    def tick(self, now: float) -> list[Notification]:
        """The local book's notifications in a fleet: probes and backlog always; log alerts only
        while the store is away, saying so; when it is back, those end as merged."""
        failing = self.sync.failing_since
        if failing is None:
            confirmed = self.sync.confirmed_through
            self._unconfirmed = [u for u in self._unconfirmed if u[0] > confirmed]
        else:  # what the store may not have got counts here too
            for _, seen, findings in self._unconfirmed:
                for finding, count in findings.values():
                    for _ in range(count):
                        self.book.observe(finding, seen)
            self._unconfirmed = []
        fallback = self.falling_back(now)
        if fallback and not self._fell_back:
            log.warning(
                "the fleet store has failed for %.0f s (fleet.fallback_after): this host alerts "
                "on its own findings until it is back",
                now - (failing or now),
            )
        self.book.share_silences(self.sync.silences)  # the last the store said
        due = self.book.tick(now, logs=fallback)
        if failing is None:  # what it kept meanwhile is in the store now: forget it
            merged = self.book.absorb(now)
            if self._fell_back:
                due.extend(merged)  # the messages it sent on its own say they were merged
        self._fell_back = fallback if failing is not None else False
        host = self.book.host
        note = (
            f"The fleet store has been unreachable since {iso(failing)}: this message counts "
            f"the findings of {host} alone; they are merged into the fleet's alert when the "
            "store is back."
            if failing is not None
            else f"The fleet store is back: {host}'s findings are counted in the fleet's alert."
        )
        return [
            n
            if n.kind == "backlog" or n.fingerprint.startswith("probe:")
            else replace(n, note=note, episode=f"{n.first_seen}@{host}")
            for n in due
        ]

    def deltas(self) -> list[FleetDelta]:
        """What the next commit writes for the store."""
        return list(self._deltas.values())

    def committed(self, now: float) -> None:
        """The deltas were written (the store thread sends them)."""
        if self._step_findings:
            self._unconfirmed.append((self._wall(), now, self._step_findings))
            self._step_findings = {}
        self._deltas = {}

    def _queue(self, fingerprint: str, now: float, source: Finding | Alert) -> None:
        """One more finding of an alert for the store; what the store keeps to describe the
        alert is taken from `source` once per alert and batch."""
        queued = self._deltas.get(fingerprint)
        if queued is None:
            self._deltas[fingerprint] = FleetDelta(fingerprint, 1, now, now, alert_data(source))
        else:
            self._deltas[fingerprint] = replace(queued, count=queued.count + 1, last_seen=now)


def make_fleet_link(
    settings: Settings,
    book: AlertBook,
    poke: Callable[[], None],
    context: Callable[[str], str],
    facts: Callable[[Alert], Sequence[Fact]] | None = None,
) -> FleetLink | None:
    """This host's part in the fleet's alert book, started, when state.fleet is set. `facts`:
    what was checked about an alert (facts.checks), asked once per notification it owns."""
    store = make_fleet_store(settings)
    if store is None:
        return None
    sync = FleetSync(settings, store, poke)
    sync.context = context
    sync.owner.facts = facts
    sync.start()
    return FleetLink(sync, book, settings)
