"""This host's part in the fleet's alert book (`state.fleet`): a thread between the state DB
and the PostgreSQL store, so that a slow or unreachable store never holds up reading logs.

Each round it
- sends the findings the main loop queued in the state DB (written in the same transaction as
  the file positions), one numbered batch at a time: a batch whose answer was lost is sent again
  under its number, and the store applies each number once;
- takes, renews or takes over the lease of every alert this host saw (and of alerts orphaned
  by hosts that stopped), and for those it owns runs the alert lifecycle (alerts.AlertBook) on
  the fleet-wide count, hosts and last-seen. A transition is written to the store first, on
  condition that the lease is still ours (and, to resolve, that no finding came in since); only
  then do its notifications go into the local outbox. So two hosts never announce one change;
- reads the fleet-wide silences and acknowledgements.
The main loop reads `failing_since`: since when the store has been failing, to fall back to
alerting on its own after `fleet.fallback_after`, and to merge back when the store returns.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from oai400d import lifecycle
from oai400d.alerts import notification_of, silence_added
from oai400d.config import Settings
from oai400d.errors import FleetError, FleetStoreError
from oai400d.fleet import Contribution, FleetAlert, FleetStore, Transition, describe_dsn
from oai400d.model import Ack, Alert, Finding, Notification, ProbeResult, Silence
from oai400d.state import SLACK_TARGET, State

log = logging.getLogger("oai400d.fleet")

MUTES_INTERVAL = 2.0  # fleet-wide silences and acks are read this often
BACKOFF_MAX = 10.0  # a failing store is tried again at least this often
BATCHES_PER_ROUND = 8  # after an outage the queue drains this many batches a round
PRUNE_INTERVAL = 3600.0
REGISTER_INTERVAL = 60.0  # this instance tells the store it is alive, and checks its name
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
# What the store keeps to describe an alert (from the first finding any host sent).
_DESCRIPTION = (
    "category",
    "rule",
    "severity",
    "title",
    "message",
    "excerpt",
    "fixes",
    "docs",
    "status",
    "error_type",
    "error_code",
    "model",
    "request_id",
)


def alert_data(source: Finding | Alert) -> dict[str, Any]:
    """What the store keeps to describe the alert of this finding (or this probe's alert)."""
    data = {key: getattr(source, key) for key in _DESCRIPTION}
    data["fixes"], data["docs"] = list(source.fixes), list(source.docs)
    data["files"] = [source.path] if isinstance(source, Finding) else list(source.files)
    return data


def probe_fingerprint(result: ProbeResult, settings: Settings) -> str:
    """A failing probe's alert in the fleet: one per probe and, for the probes of a key, per
    key and endpoint (hosts with different keys fail apart). Only a short digest of the key."""
    if result.name == "status_page":
        return "probe:status_page"
    key = settings.openai.api_key
    secret = key.get_secret_value() if key is not None else ""
    digest = hashlib.sha256(f"{settings.openai.base_url}\0{secret}".encode()).hexdigest()
    return f"probe:{result.name}:{digest[:8]}"


def fleet_episode(view: FleetAlert) -> str:
    """The name of the one Slack message of this episode, the same on every host."""
    return f"fleet{view.episode}"


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


class FleetSync:
    """The thread that keeps this host's findings and the fleet's alert book in step."""

    def __init__(
        self,
        settings: Settings,
        store: FleetStore,
        poke_outbox: Callable[[], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        assert settings.state.fleet is not None
        self.settings = settings
        self.store = store
        self.host = settings.fleet.host
        self.where = describe_dsn(settings.state.fleet.get_secret_value())
        self.clock = clock
        self._poke_outbox = poke_outbox
        # Read by the main loop (plain assignments: atomic for other threads).
        self.failing_since: float | None = None
        # Every batch the main loop committed before this time is in the store.
        self.confirmed_through = 0.0
        self.silences: list[Silence] = []
        self.round_trips = 0  # statements sent to the store (bench/fleet_overhead.py)
        # What the probes say about a category (the daemon's ProbeSchedule.context).
        self.context: Callable[[str], str] | None = None
        self._acks: dict[str, Ack] = {}
        self._seen: dict[str, float] = {}  # alerts this host added to → when, last
        self._owned: set[str] = set()
        self._opened = False
        self._next_mutes = 0.0
        self._next_prune = 0.0
        self._next_register = 0.0
        self._namesakes: list[str] = []
        self._failures = 0
        self._reported: str | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the thread -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="oai400d-fleet", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.store.close()

    def _run(self) -> None:
        state = State(self.settings.state.path)
        self.instance = state.fleet_instance()
        try:
            while not self._stop.is_set():
                wait = self.step(state)
                self._wake.wait(wait)
                self._wake.clear()
            self._release(state)
        finally:
            state.close()

    def step(self, state: State) -> float:
        """One round; how long to wait before the next."""
        interval = self.settings.fleet.sync_interval
        try:
            self.round(state, self.clock())
        except FleetError as exc:
            self._failed(exc, state)
            self._failures += 1
            return float(min(BACKOFF_MAX, interval * 2.0 ** min(self._failures, 8)))
        except Exception:  # a bug must not end the fleet's share of this host for good
            log.exception("the fleet sync failed unexpectedly; trying again in %.0f s", BACKOFF_MAX)
            # Counted as a failing store: past fleet.fallback_after this host alerts on its own.
            if self.failing_since is None:
                self.failing_since = self.clock()
            return BACKOFF_MAX
        if self.failing_since is not None:
            log.info(
                "the fleet store %s is reachable again after %.0f s; this host's findings of "
                "the outage are merged into the fleet's alerts",
                self.where,
                self.clock() - self.failing_since,
            )
        self.failing_since = None
        self._failures = 0
        self._reported = None
        return interval

    def _failed(self, exc: FleetError, state: State) -> None:
        if self.failing_since is None:
            self.failing_since = self.clock()
        message = str(exc)
        if message != self._reported:  # once per kind of failure, not every retry
            self._reported = message
            level = logging.ERROR if isinstance(exc, FleetStoreError) else logging.WARNING
            log.log(
                level,
                "%s (%d finding(s) queued on this host; alerting on its own after %.0f s)",
                message,
                state.fleet_queued(),
                self.settings.fleet.fallback_after,
            )

    # --- one round --------------------------------------------------------------------------

    def round(self, state: State, now: float) -> None:
        if not self._opened:
            applied = self.store.open()
            self._opened = True
            if applied:
                log.info("fleet store %s: schema created or migrated", self.where)
        if now >= self._next_register:
            self._register()
            self._next_register = now + REGISTER_INTERVAL
        self._push(state, now)
        if now >= self._next_mutes:
            self._read_mutes()
            self._next_mutes = now + MUTES_INTERVAL
        self._own(state, now)
        if now >= self._next_prune:
            self.round_trips += 1
            self.store.prune()
            self._next_prune = now + PRUNE_INTERVAL

    def _register(self) -> None:
        self.round_trips += 1
        namesakes = self.store.register(self.instance, self.host)
        if namesakes and namesakes != self._namesakes:
            log.error(
                "another oai400d (state DB id %s) also runs as %r in %s: the two would take "
                "each other's alert messages for their own and post twice; give every host its "
                "own name ([fleet] host, by default the hostname)",
                ", ".join(namesakes),
                self.host,
                self.where,
            )
        self._namesakes = namesakes

    def _push(self, state: State, now: float) -> None:
        """Send the queued findings, batch by batch, each applied once by the store."""
        started = self.clock()
        for _ in range(BATCHES_PER_ROUND):
            batch = state.fleet_batch()
            if batch is None:
                self.confirmed_through = started
                return
            seq, deltas = batch
            self.round_trips += 1
            self.store.contribute_many(
                [
                    Contribution(
                        d.fingerprint, self.host, d.count, d.first_seen, d.last_seen, d.data
                    )
                    for d in deltas
                ],
                batch=(self.instance, seq),
            )
            state.fleet_sent(seq)
            for d in deltas:
                self._seen[d.fingerprint] = now

    def _read_mutes(self) -> None:
        self.round_trips += 2
        silences = self.store.silences(after=self.clock())
        known = {x.id for x in self.silences}
        for x in silences:
            if x.id not in known:
                log.info("fleet-wide %s", silence_added(x))
        self.silences = silences
        self._acks = {ack.fingerprint: ack for ack in self.store.acks()}

    def _own(self, state: State, now: float) -> None:
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
                self._adopt_message(state, view)
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
            self._publish_message(state, view)

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
        due = [
            notification_of(step.kind, step.alert, step.new, self.host, self.context)
            for step in steps
            if step.kind is not None
        ]
        change = Transition(
            view.fingerprint,
            view.episode,
            alert.state,
            {key: getattr(alert, key) for key in _LIFECYCLE},
            expect_count=view.count if alert.state == "resolved" else None,
        )
        return change, due

    # --- where the Slack message is ---------------------------------------------------------

    def _adopt_message(self, state: State, view: FleetAlert) -> None:
        """Taking over: edit the message the previous owner posted, never post a second one."""
        message = view.message or {}
        channel, ts = message.get("channel"), message.get("ts")
        key = f"{view.fingerprint}@{fleet_episode(view)}"
        if channel and ts and state.delivery_target(key, SLACK_TARGET) is None:
            state.remember_delivery(key, SLACK_TARGET, str(channel), str(ts))

    def _publish_message(self, state: State, view: FleetAlert) -> None:
        """Once this host's outbox posted the message, tell the store where it is."""
        if view.message:
            return
        key = f"{view.fingerprint}@{fleet_episode(view)}"
        posted = state.delivery_target(key, SLACK_TARGET)
        if posted is not None:
            self.round_trips += 1
            self.store.record_message(
                view.fingerprint, self.host, {"channel": posted[0], "ts": posted[1], "key": key}
            )

    def _release(self, state: State) -> None:
        """Stopping cleanly: give up the leases so that another host takes over at once."""
        if self.failing_since is not None:
            return
        try:
            self._push(state, self.clock())  # what the main loop queued last
            self._publish_all(state)
            for fp in sorted(self._owned):
                self.store.release_lease(fp, self.host)
        except FleetError as exc:
            log.info(
                "could not hand the fleet alerts over on stopping (%s); they are taken "
                "over when the lease runs out",
                exc,
            )

    def _publish_all(self, state: State) -> None:
        for view in self.store.alerts(sorted(self._owned)):
            self._publish_message(state, view)
