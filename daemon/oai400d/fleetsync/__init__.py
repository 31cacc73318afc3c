"""This host's part in the fleet's alert book (`state.fleet`): a thread between the state DB
and the PostgreSQL store, so that a slow or unreachable store never holds up reading logs.

Each round it
- sends the findings the main loop queued in the state DB (written in the same transaction as
  the file positions), one numbered batch at a time: a batch whose answer was lost is sent again
  under its number, and the store applies each number once;
- takes, renews or takes over the lease of every alert this host saw (and of alerts orphaned
  by hosts that stopped), and for those it owns runs the alert lifecycle (lifecycle.py) on the
  fleet-wide count, hosts and last-seen. A transition is written to the store first, on
  condition that the lease is still ours (and, to resolve, that no finding came in since); only
  then do its notifications go into the local outbox. So two hosts never announce one change;
- reads the fleet-wide silences and acknowledgements.
The main loop reads `failing_since`: since when the store has been failing, to fall back to
alerting on its own after `fleet.fallback_after`, and to merge back when the store returns.

The package: FleetSync here (the thread, its rounds, the queue sent to the store), `owner`
(the leases and lifecycle of the alerts this host owns, the fleet-wide mutes they obey) and
`messages` (where the one Slack message of an episode is).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from oai400d.config import Settings
from oai400d.errors import FleetError, FleetStoreError
from oai400d.fleet import Contribution, FleetStore, describe_dsn
from oai400d.fleetsync.messages import fleet_episode
from oai400d.fleetsync.owner import FleetOwner, alert_of
from oai400d.model import Alert, Finding, ProbeResult, Silence
from oai400d.state import State

__all__ = [
    "FleetOwner",
    "FleetSync",
    "alert_data",
    "alert_of",
    "fleet_episode",
    "probe_fingerprint",
]

log = logging.getLogger("oai400d.fleet")

MUTES_INTERVAL = 2.0  # fleet-wide silences and acks are read this often
BACKOFF_MAX = 10.0  # a failing store is tried again at least this often
BATCHES_PER_ROUND = 8  # after an outage the queue drains this many batches a round
PRUNE_INTERVAL = 3600.0
REGISTER_INTERVAL = 60.0  # this instance tells the store it is alive, and checks its name
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
        self.owner = FleetOwner(settings, store, self.host, poke_outbox)
        # Read by the main loop (plain assignments: atomic for other threads).
        self.failing_since: float | None = None
        # Every batch the main loop committed before this time is in the store.
        self.confirmed_through = 0.0
        self._round_trips = 0  # this part's statements (see round_trips)
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

    @property
    def round_trips(self) -> int:
        """Statements sent to the store (bench/fleet_overhead.py)."""
        return self._round_trips + self.owner.round_trips

    @property
    def silences(self) -> list[Silence]:
        """The fleet-wide silences, as the store said last (the main loop's book uses them)."""
        return self.owner.silences

    @property
    def context(self) -> Callable[[str], str] | None:
        """What the probes say about a category (the daemon's ProbeSchedule.context)."""
        return self.owner.context

    @context.setter
    def context(self, context: Callable[[str], str] | None) -> None:
        self.owner.context = context

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
            self.owner.read_mutes(self.clock())
            self._next_mutes = now + MUTES_INTERVAL
        self.owner.own(state, now)
        if now >= self._next_prune:
            self._round_trips += 1
            self.store.prune()
            self._next_prune = now + PRUNE_INTERVAL

    def _register(self) -> None:
        self._round_trips += 1
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
            self._round_trips += 1
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
            self.owner.saw((d.fingerprint for d in deltas), now)

    def _release(self, state: State) -> None:
        """Stopping cleanly: give up the leases so that another host takes over at once."""
        if self.failing_since is not None:
            return
        try:
            self._push(state, self.clock())  # what the main loop queued last
            self.owner.release(state)
        except FleetError as exc:
            log.info(
                "could not hand the fleet alerts over on stopping (%s); they are taken "
                "over when the lease runs out",
                exc,
            )
