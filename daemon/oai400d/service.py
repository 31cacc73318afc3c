"""The running daemon: the composition root. Wiring of the stages, the main loop, signals,
reload, shutdown; the stages themselves live in modules of their own (ARCHITECTURE.md):

    ingest ─► classify ─► hold ─► backlog window ─► alert book (+ fleet link) ─► commit ─► outbox
                                   probes (probing) ─┘        mutes ─┘
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from oai400d.alerts import AlertBook
from oai400d.backlog import BacklogWindow
from oai400d.classify import Classifier, load_rules
from oai400d.config import LoadedConfig, format_duration, load_config, restart_needed
from oai400d.errors import ConfigError
from oai400d.facts.checks import FactChecks, make_fetcher
from oai400d.hold import SecondaryHold
from oai400d.ingest import Ingest
from oai400d.keeper import StateKeeper, from_end
from oai400d.labels import SourceLabels
from oai400d.metrics import Heartbeat, MetricsExport, OAI400DCollector, Tally, make_registry
from oai400d.model import Finding, Notification
from oai400d.mutes import MuteSync
from oai400d.probing import ProbeIntake, ProbeSchedule
from oai400d.sources.journal import where
from oai400d.systemd import SystemdNotify, take_signals
from oai400d.wiring import Delivery

if TYPE_CHECKING:  # the fleet's modules (and psycopg) are loaded only with state.fleet
    from oai400d.fleetlink import FleetLink

log = logging.getLogger("oai400d")

LOOP_MAX_SLEEP = 1.0  # also bounds how late a silence or ack from the CLI or Slack takes effect
# glibc's malloc gives each thread that allocates while another does an arena of its own, up
# to 8 per core, and keeps what they held: at 50,000 lines/s into 500 files RSS grew from 64
# to 80 MiB and on; with two it stays at 56 (bench/daemon_sustained.py). mallopt's number for
# M_ARENA_MAX in glibc's malloc.h:
M_ARENA_MAX = -8
MALLOC_ARENAS = 2


def limit_malloc_arenas() -> bool:
    """At most MALLOC_ARENAS malloc arenas (glibc only; MALLOC_ARENA_MAX in the environment,
    read by glibc at start, is left to decide). Before any thread starts. Whether it was set."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return False
        mallopt = ctypes.CDLL(None).mallopt
    except (ValueError, OSError, AttributeError):
        return False  # not glibc (musl, macOS): its malloc is its own business
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, MALLOC_ARENAS))  # (1 on success)


@dataclass
class Daemon:
    """`oai400d run`: follow the logs, classify, alert, until SIGTERM."""

    loaded: LoadedConfig
    config_arg: str | None = None
    clock: Callable[[], float] = time.time
    systemd: SystemdNotify = field(default_factory=SystemdNotify)

    def __post_init__(self) -> None:
        self.settings = self.loaded.settings
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._pending: list[Notification] = []
        self.hold = SecondaryHold()
        self.tally = Tally()  # what metrics count as it happens (read by a scrape's thread)
        self.labels = SourceLabels(lambda: self.settings, self._journal_names)
        self.fleet: FleetLink | None = None  # the shared alert book, with state.fleet
        # /healthz and /readyz: the loop's passes, on a clock that no wall-clock step moves
        self.heartbeat = Heartbeat(time.monotonic)

    # --- signals ----------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT stop, SIGHUP reloads (systemd.take_signals: before any other thread)."""
        take_signals(self.stop, self._request_reload)

    def _request_reload(self) -> None:
        self._reload.set()
        self._wake_loop()

    def _wake_loop(self) -> None:
        """Make the main loop look now (the ingest stage may be replaced by a reload)."""
        if hasattr(self, "ingest"):
            self.ingest.wake()

    def stop(self) -> None:
        self._stop.set()
        self._wake_loop()

    # --- the main loop ----------------------------------------------------------------------

    def run(self) -> int:
        limit_malloc_arenas()
        s = self.settings
        now = self.clock()
        self.keeper = StateKeeper.of(s, self.clock, self._say_status, self._poke)
        self.state = self.keeper.state  # a damaged DB was set aside, a fresh one started
        # Before any thread starts: a metrics.listen that cannot be bound stops us right here.
        self.metrics = MetricsExport(
            make_registry(
                OAI400DCollector(s.state.path, self.labels.of, self.labels.names, self.tally)
            ),
            self.heartbeat,
        )
        self.metrics.start(s.metrics)
        self.classifier = Classifier(load_rules(s.rules))
        self.probes = ProbeSchedule(s, self._wake_loop)
        self.intake = ProbeIntake(self.state, self.probes)
        self.mutes = MuteSync(self.state, now)
        # (keeper.state: a damaged DB replaced while running is a new State)
        self.checks = FactChecks(s, lambda: self.keeper.state.probes(), make_fetcher(s))
        self.book = AlertBook(
            s.alerts,
            self.state.alerts(),
            host=s.fleet.host if s.state.fleet else None,
            silences=self.mutes.silences,
            context=self.probes_context,
            facts=self.checks.facts,
        )
        self.mutes.attach(self.book)
        last_stop = self.state.get_meta("last_stop")
        self.ingest = Ingest(
            from_end(s) if self.keeper.recovery else s,  # a fresh DB: no replay
            self.state,
            report=log.warning,
            wake=self._wake_loop,
            on_read=lambda path, lines, size: self.tally.read(self.labels.of(path), lines, size),
            on_error=lambda path: self.tally.read_error(self.labels.of(path)),
            prefilter=self.classifier.prefilter,
        )
        self.backlog = BacklogWindow(
            s.alerts, float(last_stop) if last_stop else None, self.ingest.entry_time
        )
        self.delivery = Delivery(s, self.tally.delivery)
        self.tally.declare(self.labels.names(), self.delivery.names())
        self.delivery.start()
        if s.state.fleet is not None:  # (the fleet's modules and psycopg load only then)
            from oai400d.fleetlink import make_fleet_link

            self.fleet = make_fleet_link(
                s, self.book, self.delivery.poke, self.probes_context, self.checks.facts
            )
        self.ingest.start()
        self.probes.start()
        # Two lines, then silence until an error: a newcomer must be able to tell from these
        # alone what is watched, where the state is, and that quiet means waiting, not stuck.
        log.info(
            "watching %s (%s now, new matching files too); state in %s; notifications to %s",
            ", ".join([*s.logs.paths, *(where(name) for name in self.ingest.journal_names())]),
            self.ingest.describe(),
            s.state.path,
            self.delivery.describe(),
        )
        log.info(
            "ready, waiting for OpenAI errors: nothing more is logged until one is found, and "
            "its first notification comes alerts.group_wait (%s) after it; probes %s",
            format_duration(s.alerts.group_wait),
            f"every {format_duration(s.probes.api_key_interval)} (key, models) and "
            f"{format_duration(s.probes.status_interval)} (status page)"
            if s.probes.enabled
            else "off",
        )
        self.systemd.send("READY=1", f"STATUS={self._status_line()}")
        self.heartbeat.ready()
        next_ping = 0.0
        next_reconcile = now + s.logs.reconcile_interval
        try:
            while not self._stop.is_set():
                now = self.clock()
                self.heartbeat.beat()
                if self._reload.is_set():
                    self._reload.clear()
                    self._do_reload()
                if now >= next_reconcile:
                    self.ingest.reconcile()
                    next_reconcile = now + self.settings.logs.reconcile_interval
                try:
                    self._step(now)
                except Exception as exc:  # the state DB's faults are survived, bugs are not
                    if self.keeper.survive(exc, now, self.book.alerts):
                        self._reopen_state()
                if self.systemd.watchdog_interval and now >= next_ping:
                    self.systemd.send("WATCHDOG=1", f"STATUS={self._status_line()}")
                    next_ping = now + self.systemd.watchdog_interval
                if not (self.ingest.more or self._stop.is_set()):
                    self.ingest.wait(self._sleep_for(now, next_ping, next_reconcile))
        finally:
            self._shutdown()
        return 0

    def _step(self, now: float) -> None:
        """One pass: read what is new, classify, advance alerts, persist, hand to the outbox."""
        for item in self.ingest.read(now):
            finding = self.classifier.classify(item.event)
            if finding is None:
                continue
            backlog = self.backlog.is_old(item.event, item.caught_up, now)
            if not self.hold.offer(finding, now, backlog):
                self._observe(finding, now, backlog)
        for held in self.hold.release(now, stopping=self._stop.is_set()):
            self._observe(held.finding, now, held.backlog)
        if self.backlog.summary_due(self.ingest.catching_up, self.ingest.caught_up_pending()):
            summary = self.book.backlog_summary(now)  # every caught-up line was classified
            if summary is not None:
                self._pending.append(summary)
        self._take_probe_results(now)
        self._pending.extend(self.mutes.refresh(now))
        self._pending.extend(self.book.tick(now) if self.fleet is None else self.fleet.tick(now))
        self._commit(now)

    def _observe(self, finding: Finding, now: float, backlog: bool) -> None:
        """Count a finding: into the local book, or (in a fleet, while the store answers) into
        the store's queue only."""
        self.tally.finding(finding.category, finding.rule, self.labels.of(finding.path))
        if self.fleet is None or not self.fleet.take(finding, now, backlog):
            self.book.observe(finding, now, backlog=backlog)
            if not backlog and finding.category == "request.image":
                alert = self.book.get(finding.fingerprint)
                if alert is not None:
                    self.checks.begin(alert)  # the image fetch, during group_wait

    def _take_probe_results(self, now: float) -> None:
        turns = self.intake.take(now)
        if turns:
            self.checks.refresh_probes()  # (the facts read the probes' records from here)
        for turn in turns:
            if turn.failing:
                if self.fleet is None or not self.fleet.take_probe_failure(turn.result, now):
                    self.book.probe_failed(turn.result, now)
            elif turn.recovered:
                resolved = self.book.probe_recovered(turn.result.name, now)
                if resolved is not None:
                    self._pending.append(resolved)

    def _commit(self, now: float, force: bool = False) -> bool:
        """Write what changed in one transaction; False while the disk is full (keeper.py)."""
        self.keeper.hold(self.book.changed(), self._pending)
        self._pending = []
        if force:
            self.ingest.all_positions_due()  # (a stop or a reload: no position left for later)
        return self.keeper.write(now, self.ingest, self.fleet, force)

    def _reopen_state(self) -> None:
        """A fresh DB replaced a damaged one: threads that read the old file are built again."""
        self.delivery.stop()
        self.delivery = Delivery(self.settings, self.tally.delivery)
        self.delivery.start()
        self._commit(self.clock(), force=True)
        if self.fleet is not None:
            from oai400d.fleetlink import make_fleet_link

            self.fleet.sync.stop()
            self.fleet = make_fleet_link(
                self.settings, self.book, self._poke, self.probes_context, self.checks.facts
            )

    def _sleep_for(self, now: float, next_ping: float, next_reconcile: float) -> float:
        logs = self.fleet is None or self.fleet.falling_back(now)
        deadlines = [now + LOOP_MAX_SLEEP, next_reconcile, now + self.book.next_due(now, logs)]
        if self.systemd.watchdog_interval:
            deadlines.append(next_ping)
        deadlines.extend(self.ingest.deadlines())
        deadlines.extend(self.keeper.deadlines(self.ingest.dirty))
        deadlines.extend(self.hold.deadlines())
        return max(0.0, min(deadlines) - now)

    # --- building, reload and shutdown --------------------------------------------------------

    def probes_context(self, category: str) -> str:
        """What the probes say about a category now (the schedule is replaced by reloads)."""
        return self.probes.context(category)

    def _do_reload(self) -> None:
        self.systemd.send("RELOADING=1", f"MONOTONIC_USEC={int(time.monotonic() * 1e6)}")
        try:
            loaded = load_config(self.config_arg)
            classifier = Classifier(load_rules(loaded.settings.rules))
        except ConfigError as exc:
            log.error("reload failed, still running with the previous configuration: %s", exc)
            self.systemd.send("READY=1", f"STATUS=reload failed; {self._status_line()}")
            return
        new, old = loaded.settings, self.settings
        for message in restart_needed(old, new):
            log.warning("%s", message)
        if new.logs != old.logs:
            self._commit(self.clock(), force=True)
            self.ingest.replace_files(new)
        if (new.journal, new.logs) != (old.journal, old.logs):
            self._commit(self.clock(), force=True)
            self.ingest.replace_journals(new)
        self.classifier = classifier
        self.ingest.use_prefilter(classifier.prefilter)
        self.book.reconfigure(new.alerts)
        if (new.diagnose, new.openai) != (old.diagnose, old.openai):
            self.checks.reconfigure(new, make_fetcher(new))  # (a new fetcher: a new rate limit)
        self.backlog.settings = new.alerts
        if self.delivery.reconfigure(new):
            self.tally.declare(notifiers=self.delivery.names())
        if new.probes != old.probes or new.openai != old.openai:
            self.probes.stop()
            self.probes = ProbeSchedule(new, self._wake_loop)
            self.intake.schedule = self.probes
            self.probes.start()
        self.loaded = loaded
        self.settings = new
        self.labels.forget()
        self.tally.declare(self.labels.names())
        self.metrics.reconfigure(new.metrics)
        log.info("configuration reloaded from %s", loaded.source)
        self.systemd.send("READY=1", f"STATUS={self._status_line()}")

    def _shutdown(self) -> None:
        self.systemd.send("STOPPING=1")
        self.heartbeat.stopping()
        try:
            for held in self.hold.release(self.clock(), stopping=True):  # they count now
                self._observe(held.finding, self.clock(), held.backlog)
            if self._commit(self.clock(), force=True):  # (a full disk: read again at start)
                self.state.set_meta("last_stop", str(self.clock()))
        finally:
            self.metrics.stop()
            self.probes.stop()
            self.ingest.stop()
            if self.fleet is not None:
                self.fleet.sync.stop()  # after the last commit: it sends what that queued
            self.delivery.stop()
            self.state.close()
            self.systemd.close()
            log.info("stopped")

    # --- what others read: the status line, metrics labels ------------------------------------

    def _status_line(self) -> str:
        open_alerts = sum(1 for a in self.book.alerts() if a.state in ("pending", "open"))
        return self.keeper.status(f"watching {self.ingest.describe()}, {open_alerts} open alert(s)")

    def _say_status(self) -> None:
        self.systemd.send(f"STATUS={self._status_line()}")

    def _poke(self) -> None:  # (the delivery is built again with a fresh DB)
        self.delivery.poke()

    def _journal_names(self) -> list[str]:
        ingest = getattr(self, "ingest", None)  # a scrape may come before it is made
        return ingest.journal_names() if ingest is not None else []
