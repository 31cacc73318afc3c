"""The alerts this host owns in the fleet's book, and their lifecycle.

This host takes, renews or takes over the lease of every alert it saw (and of alerts orphaned
by hosts that stopped), and for those it owns runs the alert lifecycle (lifecycle.py) on the
fleet-wide count, hosts and last-seen, under the fleet-wide silences and acknowledgements. A
transition is written to the store first, on condition that the lease is still ours (and, to
resolve, that no finding came in since); only then do its notifications go into the local
outbox. So two hosts never announce one change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from oai400d import lifecycle
from oai400d.alerts import checked, notification_of, silence_added
from oai400d.config import Settings
from oai400d.fleet import FleetAlert, FleetStore, Transition
from oai400d.fleetsync.messages import adopt_message, fleet_episode, posted_message
from oai400d.model import Ack, Alert, Fact, Notification, Silence
from oai400d.state import State

log = logging.getLogger("oai400d.fleet")

# The announcement state the owner keeps in the store: what a host taking over needs to go on.
_LIFECYCLE = (
    "notified_count",
    "last_notified",
    "last_reminder",
    "opened_at",
    "resolved_at",
    "acked_by",
    "acked_at",
)


def alert_of(view: FleetAlert) -> Alert:
    """The fleet-wide alert as the lifecycle sees it: fleet counts and times, shared state."""
    data, life = view.data, view.lifecycle
    return Alert(
        fingerprint=view.fingerprint,
        category=str(data.get("category", "")),
        rule=str(data.get("rule", "")),
        severity=str(data.get("severity", "warning")),
        title=str(data.get("title", "")),
        state=view.state,
        count=view.count,
        first_seen=view.first_seen,
        last_seen=view.last_seen,
        files=tuple(data.get("files") or ()),
        message=str(data.get("message") or ""),
        excerpt=str(data.get("excerpt") or ""),
        fixes=tuple(data.get("fixes") or ()),
        docs=tuple(data.get("docs") or ()),
        status=data.get("status"),
        error_type=data.get("error_type"),
        error_code=data.get("error_code"),
        model=data.get("model"),
        request_id=data.get("request_id"),
        notified_count=int(life.get("notified_count") or 0),
        last_notified=life.get("last_notified"),
        last_reminder=life.get("last_reminder"),
        opened_at=life.get("opened_at"),
        resolved_at=life.get("resolved_at"),
        acked_by=life.get("acked_by"),
        acked_at=life.get("acked_at"),
    )


class FleetOwner:
    """Leases the alerts this host saw and announces the changes of those it owns."""

    def __init__(
        self, settings: Settings, store: FleetStore, host: str, poke_outbox: Callable[[], None]
    ) -> None:
        self.settings = settings
        self.store = store
        self.host = host
        self._poke_outbox = poke_outbox
        self.silences: list[Silence] = []  # fleet-wide, as the store said last
        self.round_trips = 0  # statements sent to the store (bench/fleet_overhead.py)
        # What the probes say about a category (the daemon's ProbeSchedule.context).
        self.context: Callable[[str], str] | None = None
        # What was checked about an alert (the daemon's facts.checks), once per notification.
        self.facts: Callable[[Alert], Sequence[Fact]] | None = None
        self._acks: dict[str, Ack] = {}
        self._seen: dict[str, float] = {}  # alerts this host added to → when, last
        self._owned: set[str] = set()

    def saw(self, fingerprints: Iterable[str], now: float) -> None:
        """This host added to these alerts (the store has its findings)."""
        for fingerprint in fingerprints:
            self._seen[fingerprint] = now

    def read_mutes(self, now: float) -> None:
        """The fleet-wide silences (those not over at `now`) and acknowledgements."""
        self.round_trips += 2
        silences = self.store.silences(after=now)
        known = {x.id for x in self.silences}
        for x in silences:
            if x.id not in known:
                log.info("fleet-wide %s", silence_added(x))
        self.silences = silences
        self._acks = {ack.fingerprint: ack for ack in self.store.acks()}

    def own(self, state: State, now: float) -> None:
        """Lease the alerts this host saw; run the lifecycle of those it owns."""
        settings = self.settings
        # An alert this host added to stays of interest until it must have resolved.
        keep = settings.alerts.resolve_after + 2 * settings.fleet.lease
        self._seen = {fp: t for fp, t in self._seen.items() if now - t < keep}
        self.round_trips += 1
        claimed = self.store.claim(list(self._seen), self.host, settings.fleet.lease)
        for fp, before in claimed.items():
            if before not in (None, self.host):
                log.info(
                    "took over the message of alert %s from %s (its lease ran out)", fp, before
                )
        self._owned = set(claimed)
        if not claimed:
            return
        self.round_trips += 1
        views = [v for v in self.store.alerts(list(claimed)) if v.state != "resolved"]
        changes: list[tuple[FleetAlert, Transition, list[Notification]]] = []
        for view in views:
            if claimed[view.fingerprint] != self.host:  # newly ours: its message, if any
                adopt_message(state, view)
            change = self._lifecycle(view, now)
            if change is not None:
                changes.append((view, *change))
        if changes:
            self.round_trips += 1
            written = self.store.advance_many(self.host, [t for _, t, _ in changes])
            # Notified only what the store took: the others are looked at again next round
            # (the lease went, or findings came in).
            due = [
                replace(
                    n,
                    host=self.host,
                    hosts=tuple(h.host for h in view.hosts),
                    host_count=view.host_count,
                    episode=fleet_episode(view),
                )
                for view, change, notifications in changes
                if change.fingerprint in written
                for n in notifications
            ]
            if due:
                state.commit(notifications=due, now=now)
                self._poke_outbox()
        for view in views:
            self._publish(state, view)

    def release(self, state: State) -> None:
        """Stopping cleanly: say where the messages are and give up the leases, so that
        another host takes over at once."""
        for view in self.store.alerts(sorted(self._owned)):
            self._publish(state, view)
        for fp in sorted(self._owned):
            self.store.release_lease(fp, self.host)

    def _publish(self, state: State, view: FleetAlert) -> None:
        """Once this host's outbox posted the message, tell the store where it is."""
        message = posted_message(state, view)
        if message is not None:
            self.round_trips += 1
            self.store.record_message(view.fingerprint, self.host, message)

    def _notification(self, step: lifecycle.Step) -> Notification:
        """The step's message; with the facts checked now (but a resolution's), as the local
        book does (alerts.checked)."""
        assert step.kind is not None
        alert, fixes = step.alert, step.alert.fixes
        if self.facts is not None and step.kind not in ("resolved", "merged"):
            alert, fixes = checked(alert, self.facts(alert))
        note = notification_of(step.kind, alert, step.new, self.host, self.context)
        return replace(note, fixes=fixes)

    def _lifecycle(
        self, view: FleetAlert, now: float
    ) -> tuple[Transition, list[Notification]] | None:
        """What the lifecycle makes of an owned alert now: its new state and notifications."""
        settings = self.settings.alerts
        if view.fingerprint.startswith("probe:"):
            # A failing probe adds to its alert once per run: it has recovered everywhere when
            # no host has added for more than two runs (resolve_after at the least).
            p = self.settings.probes
            runs = (
                p.status_interval
                if view.fingerprint == "probe:status_page"
                else (p.api_key_interval)
            )
            quiet = max(settings.resolve_after, 2.5 * runs)
            settings = settings.model_copy(update={"resolve_after": quiet})
        alert = alert_of(view)
        steps: list[lifecycle.Step] = []
        ack = self._acks.get(view.fingerprint)
        acked = None if ack is None else lifecycle.acknowledge(alert, ack, now, self.silences)
        if acked is not None:
            steps.append(acked)
            alert = acked.alert
        timed = lifecycle.decide(alert, now, settings, self.silences)
        if timed.action != "wait":
            steps.append(timed)
            alert = timed.alert
        if not steps:
            return None
        due = [self._notification(step) for step in steps if step.kind is not None]
        change = Transition(
            view.fingerprint,
            view.episode,
            alert.state,
            {key: getattr(alert, key) for key in _LIFECYCLE},
            expect_count=view.count if alert.state == "resolved" else None,
        )
        return change, due
