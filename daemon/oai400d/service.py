"""The running daemon: wiring of every stage, the main loop, signals, sd_notify."""

from __future__ import annotations

import calendar
import logging
import os
import queue
import re
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

from apscheduler.schedulers.background import BackgroundScheduler

from oai400d.alerts import AlertBook, iso, probe_alert, silence_added
from oai400d.assemble import Assembler, StreamAssemblers
from oai400d.classify import Classifier, load_rules
from oai400d.config import LoadedConfig, Settings, load_config
from oai400d.errors import ConfigError
from oai400d.metrics import (
    PROBE_SUCCESS_META,
    MetricsExport,
    OAI400DCollector,
    Tally,
    make_registry,
)
from oai400d.model import (
    Alert,
    Event,
    FileState,
    Finding,
    FleetDelta,
    Notification,
    ProbeResult,
)
from oai400d.notify import ConsoleNotifier, Notifier, OutboxWorker
from oai400d.notify.slack import SlackWebhookNotifier, SlackWebNotifier
from oai400d.notify.socket_mode import SlackSocketMode
from oai400d.probes import run_probes
from oai400d.sameerror import rank, same_failure
from oai400d.sources import Sources
from oai400d.sources.globs import source_of
from oai400d.sources.journal import Journals, where
from oai400d.state import ProbeRecord, State

if TYPE_CHECKING:  # the fleet's modules (and psycopg) are loaded only with state.fleet
    from oai400d.fleet import FleetStore
    from oai400d.fleetsync import FleetSync

log = logging.getLogger("oai400d")

POSITION_COMMIT_INTERVAL = 0.5  # positions alone (no new finding) are written this often at most
# A finding that rests on a status alone (`HTTP/1.1 400 Bad Request` from httpx) waits this long
# for the detailed error of the same request, which it then joins instead of being an alert of
# its own with a vaguer cause.
SECONDARY_HOLD = 1.0
HANDLED_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
LOOP_MAX_SLEEP = 1.0  # also bounds how late a silence or ack from the CLI or Slack takes effect
MUTES_KEPT = 30 * 86400.0  # ended silences and old acknowledgements are forgotten after this

# A timestamp at the start of a log line (ISO 8601 and its common variants).
_LEADING_TIME = re.compile(
    r"^\W{0,12}(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,]\d+)?\s?(Z|[+-]\d\d:?\d\d)?"
)


def event_time(text: str) -> float | None:
    """The time a log line says it was written, if it starts with a recognisable timestamp."""
    match = _LEADING_TIME.match(text[:80])
    if not match:
        return None
    year, month, day, hour, minute, second, zone = match.groups()
    try:
        stamp = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second))
    except ValueError:
        return None
    if zone is None:
        return time.mktime(stamp.timetuple())  # no zone written: the host's local time
    sign = 1 if zone[0] == "+" else -1
    offset = 0 if zone == "Z" else sign * (int(zone[1:3]) * 3600 + int(zone[-2:]) * 60)
    return calendar.timegm(stamp.timetuple()) - offset


class SystemdNotify:
    """sd_notify on a datagram socket ($NOTIFY_SOCKET); silent when not under systemd."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        self._socket: socket.socket | None = None
        if self.address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._socket.setblocking(False)
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        self.watchdog_interval: float | None = None
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_interval = int(usec) / 1e6 / 2  # ping at half the deadline

    def send(self, *fields: str) -> None:
        if self._socket is None:
            return
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            self._socket.sendto("\n".join(fields).encode(), target)
        except OSError as exc:  # systemd gone or socket full: never fatal for the daemon
            log.debug("sd_notify failed: %s", exc)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()


def make_notifier(settings: Settings) -> Notifier:
    """Slack when a bot token or a webhook is configured (the token wins), else the console."""
    slack = settings.slack
    interval = 1.0 / slack.max_messages_per_second
    if slack.bot_token is not None:
        return SlackWebNotifier(
            slack.bot_token.get_secret_value(),
            slack.channel,
            slack.base_url,
            interval,
            slack.timeout,
            buttons=slack.app_token is not None,
        )
    if slack.webhook_url is not None:
        return SlackWebhookNotifier(slack.webhook_url.get_secret_value(), interval, slack.timeout)
    return ConsoleNotifier(settings.console.format)


def make_fleet(settings: Settings, poke_outbox: Callable[[], None]) -> FleetSync | None:
    """This host's part in the fleet's alert book, when state.fleet is set."""
    from oai400d.fleetsync import FleetSync

    store = make_fleet_store(settings)
    return None if store is None else FleetSync(settings, store, poke_outbox)


def make_fleet_store(settings: Settings) -> FleetStore | None:
    """A connection pool to the fleet's store (not opened yet), when state.fleet is set."""
    if settings.state.fleet is None:
        return None
    from oai400d.fleet import FleetStore

    f = settings.fleet
    return FleetStore(
        settings.state.fleet.get_secret_value(),
        connect_timeout=f.connect_timeout,
        statement_timeout=f.statement_timeout,
    )


def make_socket_mode(settings: Settings) -> SlackSocketMode | None:
    """Slack Socket Mode (the alert buttons) when both a bot token and an app token are set."""
    slack = settings.slack
    if slack.app_token is None:
        return None
    if slack.bot_token is None:
        log.warning(
            "slack.app_token is set but there is no bot token: the alert buttons need messages "
            "posted with a bot token (SLACK_BOT_TOKEN); Slack Socket Mode stays off"
        )
        return None
    return SlackSocketMode.create(
        slack.app_token.get_secret_value(),
        slack.bot_token.get_secret_value(),
        slack.base_url,
        settings.state.path,
        slack.allowed_users,
        slack.allowed_groups,
        slack.timeout,
        fleet=make_fleet_store(settings),
    )


def sample_notification() -> Notification:
    """The alert `oai400d test-alert` sends: realistic, and plainly a test."""
    now = time.time()
    return Notification(
        kind="opened",
        fingerprint=f"test-{int(now)}",
        category="auth.invalid_api_key",
        severity="info",
        title="oai400d test alert: delivery works",
        count=1,
        first_seen=iso(now),
        last_seen=iso(now),
        files=("/var/log/example/app.log",),
        fixes=("Nothing to do: this is what an alert from oai400d looks like.",),
        docs=("https://platform.openai.com/docs/guides/error-codes",),
        excerpt="openai.AuthenticationError: Error code: 401 - {'error': {'code': '…'}}",
        rule="openai.invalid_api_key",
        message="This is a test sent by `oai400d test-alert`.",
        status=401,
        error_code="invalid_api_key",
        host=socket.gethostname(),
    )


class ProbeSchedule:
    """The probes on their intervals (APScheduler 3), their streaks, and what they say.

    Jobs run in the scheduler's thread; results go to the main loop through a queue, so the
    alert book and the state DB are only ever touched by the main loop.
    """

    def __init__(self, settings: Settings, wake: Callable[[], None]) -> None:
        self.settings = settings
        self.results: queue.Queue[ProbeResult] = queue.Queue()
        self.latest: dict[str, ProbeResult] = {}
        self._wake = wake
        self._scheduler: BackgroundScheduler | None = None

    def start(self) -> None:
        p = self.settings.probes
        if not p.enabled:
            return
        scheduler = BackgroundScheduler(
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
            timezone="UTC",
        )
        first = datetime.now().astimezone()
        for names, interval in (
            (["api_key", "models"], p.api_key_interval),
            (["status_page"], p.status_interval),
        ):
            scheduler.add_job(
                self._run,
                "interval",
                args=[names],
                seconds=interval,
                jitter=min(30.0, interval / 10),
                next_run_time=first,
                id="+".join(names),
            )
        scheduler.start()
        self._scheduler = scheduler

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None

    def _run(self, names: list[str]) -> None:
        try:
            for result in run_probes(self.settings, names):
                self.results.put(result)
        except Exception:  # a bug in a probe must not stop the schedule
            log.exception("probe %s failed unexpectedly", "+".join(names))
        self._wake()

    def context(self, category: str) -> str:
        """What the probes said, for an alert of this category (correlation)."""
        if category in ("server.error", "network"):
            page = self.latest.get("status_page")
            if page is None:
                return ""
            incidents = page.details.get("incidents") or []
            links = "; ".join(
                f"{i.get('name')} {i.get('url') or i.get('shortlink') or ''}".strip()
                for i in incidents[:3]
                if isinstance(i, dict)
            )
            return f"OpenAI status page: {page.summary}" + (f" ({links})" if links else "")
        if category.startswith("auth."):
            key = self.latest.get("api_key")
            if key is None or key.status == "unknown":
                return ""
            if key.status == "ok":
                return (
                    "The configured key passes its probe: the application is probably using "
                    "another key (check the environment of the failing process)."
                )
            return f"The configured key fails its probe too: {key.summary}"
        return ""


@dataclass
class _Followed:
    """One followed file's assemblers (one per stream, see unwrap.py) and the position that is
    safe to persist."""

    assembler: StreamAssemblers
    position: FileState
    last_line_at: float = 0.0
    caught_up: bool = False  # the lines being gathered were read while catching up


@dataclass
class _JournalFollowed:
    """One journal's assembler; where the journal stands is kept by Journals."""

    assembler: Assembler
    last_line_at: float = 0.0
    caught_up: bool = False


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
        self._followed: dict[tuple[str, int, int], _Followed] = {}
        self._journal_followed: dict[str, _JournalFollowed] = {}
        self._forget: list[FileState] = []
        self._dirty_positions = False
        self._last_position_commit = 0.0
        self._pending: list[Notification] = []
        self._held: list[tuple[Finding, float, bool]] = []  # secondary findings waiting
        self._recent: list[tuple[Finding, float]] = []  # detailed findings of the last seconds
        self.tally = Tally()  # what metrics count as it happens (read by a scrape's thread)
        self._labels: dict[str, str] = {}  # path → its metrics `source` label
        self.socket_mode: SlackSocketMode | None = None  # the alert buttons, when configured
        self.fleet: FleetSync | None = None  # the shared alert book, with state.fleet
        self._fleet_deltas: dict[str, FleetDelta] = {}  # findings for it, queued at the commit
        self._fell_back = False  # the store failed so long that this host alerts on its own
        # Findings queued for the store while it answered, until it confirms them: if it fails
        # first, they count in the alert this host may have to send on its own. Per commit:
        # (committed at, observed at, fingerprint → (a finding, how many)).
        self._step_findings: dict[str, tuple[Finding, int]] = {}
        self._unconfirmed: list[tuple[float, float, dict[str, tuple[Finding, int]]]] = []

    # --- signals ----------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT stop, SIGHUP reloads. The signals are blocked in every thread and
        taken by one thread with sigwait(): a Python-level handler would run in the main thread
        between two bytecodes, possibly while it holds the lock of the very Event the handler
        sets, and hang the daemon. Call this before any other thread starts."""
        signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
        threading.Thread(target=self._take_signals, name="oai400d-signals", daemon=True).start()

    def _take_signals(self) -> None:
        while True:
            signum = signal.sigwait(HANDLED_SIGNALS)
            if signum == signal.SIGHUP:
                self._reload.set()
                self._wake_loop()
            else:
                self.stop()

    def _wake_loop(self) -> None:
        """Make the main loop look now (the sources object may be replaced by a reload)."""
        if hasattr(self, "sources"):
            self.sources.wake()

    def stop(self) -> None:
        self._stop.set()
        if hasattr(self, "sources"):
            self.sources.wake()

    # --- the main loop ----------------------------------------------------------------------

    def run(self) -> int:
        s = self.settings
        self.state = State(s.state.path)
        # Before any thread starts: a metrics.listen that cannot be bound stops us right here.
        self.metrics = MetricsExport(
            make_registry(
                OAI400DCollector(s.state.path, self._source_of, self._source_names, self.tally)
            )
        )
        self.metrics.start(s.metrics)
        self.classifier = Classifier(load_rules(s.rules))
        self.book = AlertBook(
            s.alerts, self.state.alerts(), host=s.fleet.host if s.state.fleet else None
        )
        self._start_mutes(self.clock())
        last_stop = self.state.get_meta("last_stop")
        self._last_stop = float(last_stop) if last_stop else None
        self.sources = self._make_sources(self.state.files())
        self.journals = self._make_journals()
        self.worker = OutboxWorker(
            s.state.path, make_notifier(s), retry_max=s.slack.retry_max, observe=self.tally.delivery
        )
        self.tally.declare(self._source_names(), self.worker.notifier.name)
        self.worker.start()
        self.fleet = make_fleet(s, self.worker.poke)
        if self.fleet is not None:
            self.fleet.start()
        self.socket_mode = make_socket_mode(s)
        if self.socket_mode is not None:
            self.socket_mode.start()
        self.sources.start()
        self.journals.start()
        self._streaks = {p.name: (p.failures, p.successes) for p in self.state.probes()}
        self.probes = ProbeSchedule(s, self._wake_loop)
        self.book.context = self.probes.context
        if self.fleet is not None:
            self.fleet.context = lambda category: self.probes.context(category)  # after reloads
        self.probes.start()
        self._catching_up = True
        self._summary_due = True
        started = self.clock()
        log.info(
            "watching %s; state in %s; notifications to %s",
            ", ".join([*s.logs.paths, *(where(name) for name in self.journals.names())]),
            s.state.path,
            self.worker.notifier.describe(),
        )
        self.systemd.send("READY=1", f"STATUS={self._status_line()}")
        next_ping = 0.0
        next_reconcile = started + s.logs.reconcile_interval
        try:
            while not self._stop.is_set():
                now = self.clock()
                if self._reload.is_set():
                    self._reload.clear()
                    self._do_reload()
                if now >= next_reconcile:
                    self.sources.reconcile()
                    next_reconcile = now + self.settings.logs.reconcile_interval
                self._step(now)
                if self.systemd.watchdog_interval and now >= next_ping:
                    self.systemd.send("WATCHDOG=1", f"STATUS={self._status_line()}")
                    next_ping = now + self.systemd.watchdog_interval
                if not (self.sources.more or self.journals.more or self._stop.is_set()):
                    self.sources.wait(self._sleep_for(now, next_ping, next_reconcile))
        finally:
            self._shutdown()
        return 0

    def _step(self, now: float) -> None:
        """One pass: read what is new, classify, advance alerts, persist, hand to the outbox."""
        events: list[tuple[Event, bool]] = []
        for read in self.sources.poll():
            key = (read.file.path, read.file.dev, read.file.ino)
            followed = self._followed.get(key)
            if followed is None:
                followed = self._followed[key] = _Followed(
                    StreamAssemblers(read.file.path, self.settings.logs.event_limits), read.file
                )
            backlog = self._catching_up
            for line in read.lines:
                for event in followed.assembler.feed(line, now):
                    events.append((event, backlog))
            if read.lines:
                followed.last_line_at = now
                followed.caught_up = backlog
                size = max(0, read.file.offset - read.lines[0].offset)
                self.tally.read(self._source_of(read.file.path), len(read.lines), size)
            followed.position = read.file
            self._dirty_positions = True
            if read.finished:
                events.extend((event, backlog) for event in followed.assembler.flush())
                self._forget.append(read.file)
                del self._followed[key]
        timeout = self.settings.logs.multiline_timeout
        for followed in self._followed.values():
            if followed.assembler.pending and now - followed.last_line_at >= timeout:
                events.extend((e, followed.caught_up) for e in followed.assembler.flush())
            elif followed.assembler.pending:  # a stream that went quiet while another goes on
                idle = followed.assembler.flush_idle(now, timeout)
                events.extend((e, followed.caught_up) for e in idle)
        events.extend(self._read_journals(now))
        for event, caught_up in events:
            finding = self.classifier.classify(event)
            if finding is None:
                continue
            backlog = caught_up and self._is_old(event, now)
            if rank(finding) > 0:  # it may tell a held finding's failure better
                self._recent.append((finding, now))
            if finding.secondary:
                self._held.append((finding, now, backlog))
            else:
                self._observe(finding, now, backlog)
        self._release_held(now)
        if self._catching_up and not (
            self.sources.more or self.journals.more or self.journals.catching_up
        ):
            self._catching_up = False  # lines read from now on are live
        if (
            self._summary_due
            and not self._catching_up
            and not any(f.caught_up and f.assembler.pending for f in self._all_followed())
        ):
            # Every caught-up line has been classified: one summary for all of them.
            self._summary_due = False
            summary = self.book.backlog_summary(now)
            if summary is not None:
                self._pending.append(summary)
        self._take_probe_results(now)
        self._refresh_mutes(now)
        if self.fleet is None:
            self._pending.extend(self.book.tick(now))
        else:
            self._pending.extend(self._tick_in_fleet(now))
        self._commit(now)

    # --- the fleet (state.fleet) ------------------------------------------------------------

    def _observe(self, finding: Finding, now: float, backlog: bool) -> None:
        """Count a finding: into the local book, and with a fleet into the store's queue (the
        local book then only keeps what it must announce itself if the store stays away)."""
        self._count_finding(finding)
        if self.fleet is not None and not backlog:
            self._queue_for_fleet(finding.fingerprint, now, finding)
            if self.fleet.failing_since is None:
                _, seen = self._step_findings.get(finding.fingerprint, (finding, 0))
                self._step_findings[finding.fingerprint] = (finding, seen + 1)
                return
        self.book.observe(finding, now, backlog=backlog)

    def _queue_for_fleet(self, fingerprint: str, now: float, source: Finding | Alert) -> None:
        """One more finding of an alert for the store, queued at the next commit; what the store
        keeps to describe the alert is taken from `source` once per alert and batch."""
        queued = self._fleet_deltas.get(fingerprint)
        if queued is None:
            from oai400d.fleetsync import alert_data

            self._fleet_deltas[fingerprint] = FleetDelta(
                fingerprint, 1, now, now, alert_data(source)
            )
        else:
            self._fleet_deltas[fingerprint] = replace(queued, count=queued.count + 1, last_seen=now)

    def _falling_back(self, now: float) -> bool:
        """Whether the store has failed for fleet.fallback_after: this host alerts on its own."""
        assert self.fleet is not None
        failing = self.fleet.failing_since
        return failing is not None and now - failing >= self.settings.fleet.fallback_after

    def _tick_in_fleet(self, now: float) -> list[Notification]:
        """The local book's notifications in a fleet: probes and backlog always; log alerts only
        while the store is away, saying so; when it is back, those end as merged."""
        assert self.fleet is not None
        failing = self.fleet.failing_since
        if failing is None:
            confirmed = self.fleet.confirmed_through
            self._unconfirmed = [u for u in self._unconfirmed if u[0] > confirmed]
        else:  # what the store may not have got counts here too
            for _, seen, findings in self._unconfirmed:
                for finding, count in findings.values():
                    for _ in range(count):
                        self.book.observe(finding, seen)
            self._unconfirmed = []
        fallback = self._falling_back(now)
        if fallback and not self._fell_back:
            log.warning(
                "the fleet store has failed for %.0f s (fleet.fallback_after): this host alerts "
                "on its own findings until it is back",
                now - (failing or now),
            )
        self.book.share_silences(self.fleet.silences)  # the last the store said
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

    # --- silences and acknowledgements (written by the CLI and Slack into the state DB) ------

    def _start_mutes(self, now: float) -> None:
        self.state.prune_mutes(now - MUTES_KEPT)
        self._mutes_version = -1  # the first step takes up what changed while we were stopped
        self.book.silences = self.state.silences(after=now)
        self._acks_seen: dict[str, float] = {}
        for ack in self.state.acks():
            alert = self.book.get(ack.fingerprint)
            if alert is None or alert.acked_at == ack.at or ack.at < alert.first_seen:
                self._acks_seen[ack.fingerprint] = ack.at  # shown already, or not for a live alert
        if self.book.silences:
            log.info(
                "%d silence(s) active: %s",
                len(self.book.silences),
                "; ".join(f"#{x.id} {x.matcher} until {iso(x.ends)}" for x in self.book.silences),
            )

    def _refresh_mutes(self, now: float) -> None:
        """Take up what other processes changed; re-read only when another connection committed
        (PRAGMA data_version), so an idle loop step costs one pragma. Every change is logged
        with who made it."""
        for ended in [x for x in self.book.silences if x.ends <= now]:
            self.book.silences.remove(ended)
            if ended.removed_by is None:
                log.info("silence #%d (%s) ended", ended.id, ended.matcher)
        version = self.state.data_version()
        if version == self._mutes_version:
            return
        self._mutes_version = version
        before = {x.id: x for x in self.book.silences}
        current = self.state.silences(after=now)
        for x in current:
            if x.id not in before:
                log.info("%s", silence_added(x))
        for gone in before.keys() - {x.id for x in current}:
            lifted = self.state.silence(gone)
            if lifted is not None and lifted.removed_by is not None:
                log.info("silence #%d (%s) lifted by %s", gone, lifted.matcher, lifted.removed_by)
        self.book.silences = current
        for ack in self.state.acks():
            if self._acks_seen.get(ack.fingerprint) == ack.at:
                continue
            self._acks_seen[ack.fingerprint] = ack.at
            log.info(
                "alert %s acknowledged by %s (%s)%s",
                ack.fingerprint,
                ack.by,
                ack.via,
                f": {ack.comment}" if ack.comment else "",
            )
            shown = self.book.acknowledge(ack, now)
            if shown is not None:
                self._pending.append(shown)

    def _take_probe_results(self, now: float) -> None:
        """Streaks, the state DB and probe alerts from what the probes reported."""
        p = self.settings.probes
        while True:
            try:
                result = self.probes.results.get_nowait()
            except queue.Empty:
                return
            self.probes.latest[result.name] = result
            failures, successes = self._streaks.get(result.name, (0, 0))
            if result.status == "ok":
                failures, successes = 0, successes + 1
            elif result.status in ("warning", "critical"):
                failures, successes = failures + 1, 0
            self._streaks[result.name] = (failures, successes)
            self.state.save_probe(
                ProbeRecord(
                    result.name,
                    result.status,
                    result.summary,
                    result.latency_ms,
                    now,
                    failures,
                    successes,
                    result.to_json(),
                )
            )
            if result.status == "ok":  # for oai400d_probe_last_success_timestamp_seconds
                self.state.set_meta(PROBE_SUCCESS_META + result.name, repr(now))
            if failures >= p.failure_threshold:
                if self.fleet is not None and not self._falling_back(now):
                    # One alert for the fleet, not one per host probing the same key.
                    from oai400d.fleetsync import probe_fingerprint

                    key = probe_fingerprint(result, self.settings)
                    self._queue_for_fleet(key, now, probe_alert(result, key, now))
                else:
                    self.book.probe_failed(result, now)
            elif successes >= p.success_threshold:
                resolved = self.book.probe_recovered(result.name, now)
                if resolved is not None:
                    self._pending.append(resolved)

    def _release_held(self, now: float) -> None:
        """Secondary findings (sameerror.py): dropped when a finding that tells the same
        failure better came close to them, counted as findings of their own once they have
        waited SECONDARY_HOLD for it."""
        self._recent = [(f, t) for f, t in self._recent if now - t <= 2 * SECONDARY_HOLD]
        still: list[tuple[Finding, float, bool]] = []
        for finding, held_at, backlog in self._held:
            if any(same_failure(finding, better) for better, _ in self._recent):
                continue  # the same failure, told better by another finding
            if now - held_at >= SECONDARY_HOLD or self._stop.is_set():
                self._observe(finding, now, backlog)
            else:
                still.append((finding, held_at, backlog))
        self._held = still

    def _is_old(self, event: Event, now: float) -> bool:
        """A caught-up line older than the backlog window goes into the backlog summary."""
        window = self.settings.alerts.backlog_window or self.settings.alerts.resolve_after
        written = self.journals.entry_time(event)  # a journal entry has its time of its own
        if written is None:
            written = event_time(event.text)
        if written is None:
            written = self._last_stop  # unknown: it was written at some point after the last stop
        return written is not None and now - written > window

    def _commit(self, now: float, force: bool = False) -> None:
        alerts = self.book.changed()
        if not (alerts or self._pending or self._forget or self._fleet_deltas or force) and (
            not self._dirty_positions or now - self._last_position_commit < POSITION_COMMIT_INTERVAL
        ):
            return
        positions = [self._safe_position(f) for f in self._followed.values()]
        self.state.commit(
            fleet=self._fleet_deltas.values(),
            journals=self.journals.positions(
                {name: j.assembler.first_pending for name, j in self._journal_followed.items()}
            ),
            files=positions,
            forget=self._forget,
            alerts=alerts,
            notifications=self._pending,
            now=now,
        )
        if self._pending:
            self.worker.poke()
        if self._step_findings:
            self._unconfirmed.append((time.time(), now, self._step_findings))
            self._step_findings = {}
        self._fleet_deltas = {}
        self._pending = []
        self._forget = []
        self._dirty_positions = False
        self._last_position_commit = now

    @staticmethod
    def _safe_position(followed: _Followed) -> FileState:
        """Where to resume after a crash: the start of an event still being gathered (or of
        the pieces of a split line the file's unwrapper holds, if they began before it)."""
        first = followed.assembler.first_pending
        if first is None or first.offset >= followed.position.offset:
            return followed.position
        p = followed.position
        return FileState(p.path, p.dev, p.ino, p.head, p.head_len, first.offset, first.line_no - 1)

    def _sleep_for(self, now: float, next_ping: float, next_reconcile: float) -> float:
        logs = self.fleet is None or self._falling_back(now)
        deadlines = [now + LOOP_MAX_SLEEP, next_reconcile, now + self.book.next_due(now, logs)]
        if self.systemd.watchdog_interval:
            deadlines.append(next_ping)
        timeout = self.settings.logs.multiline_timeout
        for followed in self._all_followed():
            if followed.assembler.pending:
                deadlines.append(followed.last_line_at + timeout)
        if self._dirty_positions:
            deadlines.append(self._last_position_commit + POSITION_COMMIT_INTERVAL)
        deadlines.extend(held_at + SECONDARY_HOLD for _, held_at, _ in self._held)
        return max(0.0, min(deadlines) - now)

    # --- reload and shutdown ----------------------------------------------------------------

    def _do_reload(self) -> None:
        self.systemd.send("RELOADING=1", f"MONOTONIC_USEC={int(time.monotonic() * 1e6)}")
        try:
            loaded = load_config(self.config_arg)
            classifier = Classifier(load_rules(loaded.settings.rules))
        except ConfigError as exc:
            log.error("reload failed, still running with the previous configuration: %s", exc)
            self.systemd.send("READY=1", f"STATUS=reload failed; {self._status_line()}")
            return
        new = loaded.settings
        if (new.state.fleet, new.fleet) != (self.settings.state.fleet, self.settings.fleet):
            log.warning("state.fleet or [fleet] changed: takes effect at the next restart")
        if new.state.path != self.settings.state.path:
            log.warning(
                "state.path changed to %s: takes effect at the next restart", new.state.path
            )
        if new.logs != self.settings.logs:
            self._commit(self.clock(), force=True)
            self.sources.stop()
            self.sources = self._make_sources(self.state.files(), settings=new)
            self.sources.start()
        if (new.journal, new.logs) != (self.settings.journal, self.settings.logs):
            self._commit(self.clock(), force=True)
            self.journals.stop()
            self._journal_followed = {}  # their pending lines are read again from the cursors
            self.journals = self._make_journals(new)
            self.journals.start()
        self.classifier = classifier
        self.book.reconfigure(new.alerts)
        if new.console != self.settings.console or new.slack != self.settings.slack:
            self.worker.set_notifier(make_notifier(new))
            self.tally.declare(notifier=self.worker.notifier.name)
            if self.socket_mode is not None:
                self.socket_mode.stop()
            self.socket_mode = make_socket_mode(new)
            if self.socket_mode is not None:
                self.socket_mode.start()
        if new.probes != self.settings.probes or new.openai != self.settings.openai:
            self.probes.stop()
            self.probes = ProbeSchedule(new, self._wake_loop)
            self.book.context = self.probes.context
            self.probes.start()
        self.loaded = loaded
        self.settings = new
        self._labels = {}
        self.tally.declare(self._source_names())
        self.metrics.reconfigure(new.metrics)
        log.info("configuration reloaded from %s", loaded.source)
        self.systemd.send("READY=1", f"STATUS={self._status_line()}")

    def _make_sources(self, saved: list[FileState], settings: Settings | None = None) -> Sources:
        s = settings or self.settings
        return Sources(
            s.logs.paths,
            saved,
            s.logs.read_from,
            s.logs.max_line,
            report=log.warning,
            on_error=lambda path: self.tally.read_error(self._source_of(path)),
            wrapper=s.logs.wrapper,
            wrappers=list(s.logs.wrappers.items()),
        )

    # --- journals ---------------------------------------------------------------------------

    def _make_journals(self, settings: Settings | None = None) -> Journals:
        s = settings or self.settings
        return Journals(
            s.journal,
            [position for position, _ in self.state.journal_positions()],
            s.logs.read_from,
            retry=s.logs.reconcile_interval,
            report=log.warning,
            wake=self._wake_loop,
        )

    def _all_followed(self) -> list[_Followed | _JournalFollowed]:
        return [*self._followed.values(), *self._journal_followed.values()]

    def _read_journals(self, now: float) -> list[tuple[Event, bool]]:
        """The events completed by the journals' new entries, or by the multi-line timeout."""
        events: list[tuple[Event, bool]] = []
        backlog = self._catching_up
        for read in self.journals.poll():
            self._dirty_positions = True
            followed = self._journal_followed.get(read.name)
            if followed is None:
                followed = self._journal_followed[read.name] = _JournalFollowed(
                    Assembler(where(read.name), self.settings.logs.event_limits)
                )
            for line in read.lines:
                events.extend((event, backlog) for event in followed.assembler.feed(line))
            if read.lines:
                size = sum(len(line.text.encode("utf-8", "replace")) + 1 for line in read.lines)
                self.tally.read(where(read.name), len(read.lines), size)
                followed.last_line_at = now
                followed.caught_up = backlog
        timeout = self.settings.logs.multiline_timeout
        for followed in self._journal_followed.values():
            if followed.assembler.pending and now - followed.last_line_at >= timeout:
                events.extend((e, followed.caught_up) for e in followed.assembler.flush())
        return events

    # --- metrics ----------------------------------------------------------------------------

    def _count_finding(self, finding: Finding) -> None:
        self.tally.finding(finding.category, finding.rule, self._source_of(finding.path))

    def _source_of(self, path: str) -> str:
        """A path's `source` label: its logs.paths glob, or (source_labels) the path itself.
        Called from the main loop and from scrape threads; the cache is only a shortcut."""
        settings = self.settings
        if settings.metrics.source_labels or path.startswith("journal:"):
            return path  # a journal's where is its configured name: one label per [[journal]]
        label = self._labels.get(path)
        if label is None:
            if len(self._labels) > 10_000:  # names of rotated files come and go
                self._labels = {}
            label = self._labels[path] = source_of(settings.logs.paths, path)
        return label

    def _source_names(self) -> list[str]:
        """The labels that exist before any line is read (none when labels are paths)."""
        readers = getattr(self, "journals", None)  # a scrape may come before they are made
        journals = [where(name) for name in readers.names()] if readers is not None else []
        if self.settings.metrics.source_labels:
            return journals
        return [*self.settings.logs.paths, *journals]

    def _shutdown(self) -> None:
        self.systemd.send("STOPPING=1")
        try:
            self._release_held(self.clock())  # stopping: held findings count now
            self._commit(self.clock(), force=True)
            self.state.set_meta("last_stop", str(self.clock()))
        finally:
            self.metrics.stop()
            if self.socket_mode is not None:
                self.socket_mode.stop()
            self.probes.stop()
            self.sources.stop()
            self.journals.stop()
            if self.fleet is not None:
                self.fleet.stop()  # after the last commit: it sends what that queued
            self.worker.stop()
            self.state.close()
            self.systemd.close()
            log.info("stopped")

    def _status_line(self) -> str:
        files = len(self._followed) if self._followed else len(self.sources.files())
        open_alerts = sum(1 for a in self.book.alerts() if a.state in ("pending", "open"))
        journals = f", {len(self.journals.names())} journal(s)" if self.journals else ""
        return f"watching {files} file(s){journals}, {open_alerts} open alert(s)"
