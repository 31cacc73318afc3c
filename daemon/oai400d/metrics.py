"""Prometheus metrics (`[metrics]`): an HTTP endpoint and a node_exporter textfile; on the same
listener, `/healthz` and `/readyz` from the main loop's Heartbeat (Kubernetes' probes).

What must be counted as it happens (findings, lines and bytes read, read errors, deliveries) is
added to a Tally by the thread that sees it, under a lock. Everything else (alerts, the outbox,
probes, how far each source lags) is read from the state DB at scrape time through a connection
of the scraping thread, so a scrape never touches the main loop's objects. Labels take few
values: category, rule, severity, check, notifier, and the `logs.paths` glob a file belongs to
(its path only with `metrics.source_labels = true`); no fingerprint is ever a label.
"""

from __future__ import annotations

import errno
import logging
import os
import selectors
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    make_wsgi_app,
    write_to_textfile,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.registry import Collector

from oai400d import __version__
from oai400d.config import MetricsSettings, split_listen
from oai400d.errors import ConfigError, Oai400dError, StateError
from oai400d.masking import redact
from oai400d.model import PROBE_NAMES, PROBE_STATUSES
from oai400d.state import State

log = logging.getLogger("oai400d.metrics")

SEVERITIES = ("critical", "warning", "info")
PROBE_SUCCESS_META = "probe_last_success:"  # + check name: meta key of its last OK, epoch seconds


class TextfileError(Oai400dError):
    """The metrics textfile cannot be written."""

    retryable = True


class Tally:
    """Counters of things as they happen; any thread adds, a scrape copies under the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._findings: dict[tuple[str, str, str], int] = {}
        self._lines: dict[str, int] = {}
        self._bytes: dict[str, int] = {}
        self._errors: dict[str, int] = {}
        self._delivered: dict[str, int] = {}
        self._failed: dict[tuple[str, str], int] = {}

    def declare(self, sources: Iterable[str] = (), notifiers: Iterable[str] = ()) -> None:
        """Make series exist at 0 before their first event (rate() and alerts need them)."""
        with self._lock:
            for source in sources:
                for table in (self._lines, self._bytes, self._errors):
                    table.setdefault(source, 0)
            for notifier in notifiers:
                self._delivered.setdefault(notifier, 0)
                for kind in ("transient", "permanent"):
                    self._failed.setdefault((notifier, kind), 0)

    def finding(self, category: str, rule: str, source: str) -> None:
        key = (category, rule, source)
        with self._lock:
            self._findings[key] = self._findings.get(key, 0) + 1

    def read(self, source: str, lines: int, size: int) -> None:
        with self._lock:
            self._lines[source] = self._lines.get(source, 0) + lines
            self._bytes[source] = self._bytes.get(source, 0) + size

    def read_error(self, source: str) -> None:
        with self._lock:
            self._errors[source] = self._errors.get(source, 0) + 1

    def delivery(self, notifier: str, outcome: str, count: int = 1) -> None:
        """`outcome`: "delivered", or "transient" / "permanent" for a failed attempt."""
        with self._lock:
            if outcome == "delivered":
                self._delivered[notifier] = self._delivered.get(notifier, 0) + count
            else:
                key = (notifier, outcome)
                self._failed[key] = self._failed.get(key, 0) + count

    def families(self) -> list[Metric]:
        """The counters as metric families (a consistent copy)."""
        with self._lock:
            findings = dict(self._findings)
            lines, size, errors = dict(self._lines), dict(self._bytes), dict(self._errors)
            delivered, failed = dict(self._delivered), dict(self._failed)
        found = CounterMetricFamily(
            "oai400d_findings",
            "OpenAI errors found in the logs, by category, rule and source (logs.paths glob)",
            labels=["category", "rule", "source"],
        )
        for (category, rule, source), value in sorted(findings.items()):
            found.add_metric([category, rule, source], value)
        read_lines = CounterMetricFamily(
            "oai400d_source_lines", "Lines read, by source", labels=["source"]
        )
        read_bytes = CounterMetricFamily(
            "oai400d_source_bytes", "Bytes read, by source", labels=["source"], unit="bytes"
        )
        read_errors = CounterMetricFamily(
            "oai400d_source_read_errors",
            "Times a followed file became unreadable (open or read failed), by source",
            labels=["source"],
        )
        for family, table in ((read_lines, lines), (read_bytes, size), (read_errors, errors)):
            for source, value in sorted(table.items()):
                family.add_metric([source], value)
        sent = CounterMetricFamily(
            "oai400d_deliveries", "Notifications delivered, by notifier", labels=["notifier"]
        )
        for notifier, value in sorted(delivered.items()):
            sent.add_metric([notifier], value)
        failures = CounterMetricFamily(
            "oai400d_delivery_failures",
            "Failed delivery attempts, by notifier and kind (transient: retried; permanent: "
            "dropped, a person must act)",
            labels=["notifier", "kind"],
        )
        for (notifier, kind), value in sorted(failed.items()):
            failures.add_metric([notifier, kind], value)
        return [found, read_lines, read_bytes, read_errors, sent, failures]


def state_families(
    state: State, source_of: Callable[[str], str], sources: Sequence[str], now: float
) -> list[Metric]:
    """Gauges of what the state DB says: alerts, outbox, probes, followed files and their lag."""
    alerts = GaugeMetricFamily(
        "oai400d_alerts_open",
        "Alerts of a problem going on (pending: gathering its first burst; open: announced), "
        "by severity",
        labels=["severity"],
    )
    by_severity = dict.fromkeys(SEVERITIES, 0)
    for alert_state, severity, count in state.alert_counts():
        if alert_state in ("pending", "open"):
            by_severity[severity] = by_severity.get(severity, 0) + count
    for severity, count in by_severity.items():
        alerts.add_metric([severity], count)

    depth = GaugeMetricFamily(
        "oai400d_outbox_depth", "Notifications waiting in the outbox for delivery"
    )
    depth.add_metric([], state.outbox_depth())
    oldest = state.outbox_oldest()
    age = GaugeMetricFamily(
        "oai400d_outbox_oldest_age_seconds",
        "Age of the oldest notification waiting in the outbox (0 when it is empty)",
        unit="seconds",
    )
    age.add_metric([], 0.0 if oldest is None else max(0.0, now - oldest))
    reasons = state.outbox_parked_reasons()
    parked = GaugeMetricFamily(
        "oai400d_outbox_parked",
        "Notifications in the outbox that the receiver refuses for its configuration (a revoked "
        "token, a channel the bot is not in): kept, retried every few minutes and on reload",
    )
    parked.add_metric([], sum(reasons.values()))
    parked_by_reason = GaugeMetricFamily(
        "oai400d_outbox_parked_by_reason",
        "Parked notifications by what the receiver said (what to fix)",
        labels=["reason"],
    )
    for reason, count in reasons.items():
        parked_by_reason.add_metric([reason], count)
    waiting = GaugeMetricFamily(
        "oai400d_notifier_queued",
        "Notifications waiting for each notifier (its own queue: one notifier's outage never "
        "holds up another)",
        labels=["notifier"],
    )
    failing = GaugeMetricFamily(
        "oai400d_notifier_failing",
        "Of those, notifications whose last try failed and will be retried, by notifier",
        labels=["notifier"],
    )
    parked_by_notifier = GaugeMetricFamily(
        "oai400d_notifier_parked",
        "Of those, notifications the notifier's receiver refuses for its configuration",
        labels=["notifier"],
    )
    for notifier, rows in state.outbox_by_target().items():
        waiting.add_metric([notifier], rows.queued)
        failing.add_metric([notifier], rows.failing)
        parked_by_notifier.add_metric([notifier], rows.parked)
    queued = GaugeMetricFamily(
        "oai400d_fleet_queued_findings",
        "Findings waiting to be added to the fleet's store (state.fleet): grows while it is away",
    )
    queued.add_metric([], state.fleet_queued())

    status = GaugeMetricFamily(
        "oai400d_probe_status",
        "Latest result of each probe: 0 ok, 1 warning, 2 critical, 3 unknown (Nagios codes)",
        labels=["check"],
    )
    latency = GaugeMetricFamily(
        "oai400d_probe_latency_seconds",
        "Duration of each probe's latest run",
        labels=["check"],
        unit="seconds",
    )
    last_run = GaugeMetricFamily(
        "oai400d_probe_last_run_timestamp_seconds",
        "When each probe last ran (Unix time)",
        labels=["check"],
        unit="seconds",
    )
    last_ok = GaugeMetricFamily(
        "oai400d_probe_last_success_timestamp_seconds",
        "When each probe last reported ok (Unix time)",
        labels=["check"],
        unit="seconds",
    )
    for record in state.probes():
        if record.name not in PROBE_NAMES:
            continue
        code = PROBE_STATUSES.index(record.status) if record.status in PROBE_STATUSES else 3
        status.add_metric([record.name], code)
        if record.latency_ms is not None:
            latency.add_metric([record.name], record.latency_ms / 1000)
        last_run.add_metric([record.name], record.checked)
        success = state.get_meta(PROBE_SUCCESS_META + record.name)
        if success is None and record.status == "ok":
            success = str(record.checked)
        if success is not None:
            last_ok.add_metric([record.name], float(success))

    files = GaugeMetricFamily(
        "oai400d_source_files", "Files followed, by source", labels=["source"]
    )
    lag = GaugeMetricFamily(
        "oai400d_source_lag_bytes",
        "Bytes written to followed files but not yet read (as of the last saved position)",
        labels=["source"],
        unit="bytes",
    )
    counts = dict.fromkeys(sources, 0)
    behind = dict.fromkeys(sources, 0)
    for saved in state.files():
        source = source_of(saved.path)
        counts[source] = counts.get(source, 0) + 1
        lag_bytes = _lag(saved.path, saved.dev, saved.ino, saved.offset)
        behind[source] = behind.get(source, 0) + lag_bytes
    for source in sorted(counts):
        files.add_metric([source], counts[source])
        lag.add_metric([source], behind[source])
    return [
        alerts,
        depth,
        age,
        parked,
        parked_by_reason,
        waiting,
        failing,
        parked_by_notifier,
        queued,
        status,
        latency,
        last_run,
        last_ok,
        files,
        lag,
    ]


def _lag(path: str, dev: int, ino: int, offset: int) -> int:
    """Bytes of the file at `path` beyond `offset`, if it is still the same file."""
    try:
        info = os.stat(path)
    except OSError:
        return 0
    if (info.st_dev, info.st_ino) != (dev, ino):
        return 0  # rotated away: its successor is followed under that path soon
    return max(0, info.st_size - offset)


class OAI400DCollector(Collector):
    """Reads the daemon's numbers when scraped: the Tally and the state DB."""

    def __init__(
        self,
        state_path: str,
        source_of: Callable[[str], str],
        sources: Callable[[], Sequence[str]],
        tally: Tally | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state_path = state_path
        self.source_of = source_of
        self.sources = sources
        self.tally = tally
        self.clock = clock
        self._state_failing = False

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "oai400d_build_info", "Always 1; the oai400d version", labels=["version"]
        )
        info.add_metric([__version__], 1)
        yield info
        if self.tally is not None:
            yield from map(masked_labels, self.tally.families())
        up = GaugeMetricFamily(
            "oai400d_state_db_up", "1 when the state database could be read for this scrape"
        )
        families: list[Metric] = []
        try:
            state = State(self.state_path, readonly=True)
            try:
                families = state_families(state, self.source_of, self.sources(), self.clock())
            finally:
                state.close()
        except (StateError, sqlite3.Error) as exc:
            # A scrape must still answer (process figures, counters); say why, once.
            if not self._state_failing:
                log.warning("metrics: cannot read the state database %s: %s", self.state_path, exc)
            self._state_failing = True
            up.add_metric([], 0)
        else:
            self._state_failing = False
            up.add_metric([], 1)
        yield up
        yield from map(masked_labels, families)


def masked_labels(family: Metric) -> Metric:
    """The family with every label value masked: a source's path (metrics.source_labels) or
    what a receiver answered can hold a secret. Series that become alike are added up, so
    the exposition never has one twice."""
    merged: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}
    for sample in family.samples:
        labels = {name: redact(value) for name, value in sample.labels.items()}
        key = (sample.name, tuple(sorted(labels.items())))
        seen = merged.get(key)
        value = sample.value if seen is None else seen.value + sample.value
        merged[key] = sample._replace(labels=labels, value=value)
    family.samples = list(merged.values())
    return family


def make_registry(collector: Collector, process: bool = True) -> CollectorRegistry:
    """A registry of our collector and (`process`) this process's CPU, memory, fds and GC."""
    registry = CollectorRegistry(auto_describe=False)  # describing would read the DB now
    registry.register(collector)
    if process:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
    return registry


def write_textfile(registry: CollectorRegistry, path: str) -> None:
    """Write the metrics to `path` atomically (a temporary file beside it, then a rename)."""
    try:
        write_to_textfile(path, registry)
    except OSError as exc:
        where = os.path.dirname(os.path.abspath(path))
        raise TextfileError(
            f"cannot write the metrics textfile {path}: {exc.strerror or exc}; check that "
            f"{where} exists and is writable by the oai400d user (it is node_exporter's "
            "--collector.textfile.directory)"
        ) from exc


# The main loop passes at least every second (service.LOOP_MAX_SLEEP) and a pass is bounded
# by its batch; 30 s without one is a loop that is stuck (a deadlock, a blocking call), not busy.
STALE_AFTER = 30.0


@dataclass(frozen=True)
class Pulse:
    """What the main loop last said: when it passed (the Heartbeat's clock) and its phase."""

    at: float
    phase: str  # "starting" | "running" | "stopping"


class Heartbeat:
    """The main loop's liveness and readiness, read by the metrics server's threads.

    The loop replaces one frozen Pulse; a reader takes the reference once, so it sees one
    consistent pulse without a lock (an attribute assignment is atomic in CPython) and a beat
    costs the loop a clock read and an allocation."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, stale_after: float = STALE_AFTER
    ) -> None:
        self.clock = clock
        self.stale_after = stale_after
        self._pulse = Pulse(clock(), "starting")  # start-up counts as a beat

    # beat, ready and stopping are called by the main loop only: no two writers.

    def beat(self) -> None:
        """One pass of the main loop."""
        self._pulse = Pulse(self.clock(), self._pulse.phase)

    def ready(self) -> None:
        """The sources are started and the state DB is open: from now on the loop runs."""
        self._pulse = Pulse(self.clock(), "running")

    def stopping(self) -> None:
        self._pulse = Pulse(self.clock(), "stopping")

    def liveness(self) -> tuple[bool, str]:
        """(alive, one line saying why): alive while the loop (or start-up) passed recently."""
        pulse = self._pulse
        age = max(0.0, self.clock() - pulse.at)
        what = "start-up began" if pulse.phase == "starting" else "the main loop last passed"
        if age > self.stale_after:
            return False, (
                f"stuck: {what} {age:.0f} s ago (more than {self.stale_after:g} s); "
                "restart the daemon and report the stack (py-spy dump) if it recurs"
            )
        return True, f"ok: {what} {age:.1f} s ago"

    def readiness(self) -> tuple[bool, str]:
        """(ready, one line saying why): ready once the sources and the state DB are up."""
        phase = self._pulse.phase
        if phase == "starting":
            return False, "starting: the sources or the state database are not open yet"
        if phase == "stopping":
            return False, "stopping: the daemon is shutting down"
        return True, "ready: following the logs, state database open"


def with_health(metrics_app: WSGIApplication, heartbeat: Heartbeat) -> WSGIApplication:
    """`metrics_app` with /healthz (liveness) and /readyz (readiness) in front: 200 or 503
    with a one-line text/plain reason; every other path is the metrics app's."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            good, reason = heartbeat.liveness()
        elif path == "/readyz":
            good, reason = heartbeat.readiness()
        else:
            return metrics_app(environ, start_response)
        body = (reason + "\n").encode("utf-8")
        status = "200 OK" if good else "503 Service Unavailable"
        start_response(
            status,
            [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
            ],
        )
        return [body]

    return app


class _QuietHandler(WSGIRequestHandler):
    """No access log: a scrape every 15 s must not fill the journal."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def bind_problem(listen: str, exc: OSError) -> str:
    """What a person must do when metrics.listen cannot be bound."""
    reason = exc.strerror or str(exc)
    if exc.errno == errno.EADDRINUSE:
        advice = (
            "another process listens there (another oai400d, or an exporter): stop it, or set "
            "metrics.listen to a free port"
        )
    elif exc.errno == errno.EACCES:
        advice = "ports below 1024 need privileges: use a higher port, e.g. 9400"
    elif exc.errno == errno.EADDRNOTAVAIL:
        advice = "this host has no such address: use 127.0.0.1 or one of the host's addresses"
    elif isinstance(exc, socket.gaierror):
        advice = "the host name does not resolve: use an IP address such as 127.0.0.1"
    else:
        advice = 'check the address; "127.0.0.1:9400" listens on the loopback only'
    return f'metrics.listen: cannot listen on "{listen}": {reason}; {advice}'


class MetricsServer:
    """`/metrics` over HTTP on metrics.listen, served by a daemon thread (with a heartbeat,
    `/healthz` and `/readyz` too)."""

    def __init__(
        self, registry: CollectorRegistry, listen: str, heartbeat: Heartbeat | None = None
    ) -> None:
        host, port = split_listen(listen)
        try:
            family = socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )[0][0]
            server_class = type("_Server", (ThreadingWSGIServer,), {"address_family": family})
            app: WSGIApplication = make_wsgi_app(registry)
            if heartbeat is not None:
                app = with_health(app, heartbeat)
            self._httpd: WSGIServer = make_server(
                host, port, app, server_class, handler_class=_QuietHandler
            )
        except OSError as exc:
            raise ConfigError([bind_problem(listen, exc)]) from None
        self.listen = listen
        self.port: int = self._httpd.server_port
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{self.port}/metrics"
        # serve_forever() would wake every poll_interval to look for shutdown(); this thread
        # sleeps until a scrape or a byte on the wake pair, so an idle daemon stays asleep.
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, name="oai400d-metrics", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._httpd.socket, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while True:
                ready = {key.fileobj for key, _ in selector.select()}
                if self._wake_r in ready:
                    return
                # Readable: accept() will not block; each request gets a thread of its own.
                self._httpd.handle_request()

    def stop(self) -> None:
        self._wake_w.send(b"\0")
        self._thread.join(2.0)
        self._httpd.server_close()
        self._wake_r.close()
        self._wake_w.close()


class TextfileWriter:
    """Rewrites metrics.textfile every metrics.interval in a daemon thread."""

    def __init__(self, registry: CollectorRegistry, path: str, interval: float) -> None:
        self.registry = registry
        self.path = path
        self.interval = interval
        self._stop = threading.Event()
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="oai400d-textfile", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                write_textfile(self.registry, self.path)
            except TextfileError as exc:
                if not self._failing:
                    log.warning("%s; retrying every %g s", exc, self.interval)
                self._failing = True
            except Exception:  # a bug must not end the writes for good
                log.exception("writing the metrics textfile failed unexpectedly")
            else:
                if self._failing:
                    log.info("metrics textfile %s written again", self.path)
                self._failing = False
            if self._stop.wait(self.interval):
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2.0)


class MetricsExport:
    """The endpoint and the textfile of the current `[metrics]` section; either may be off."""

    def __init__(self, registry: CollectorRegistry, heartbeat: Heartbeat | None = None) -> None:
        self.registry = registry
        self.heartbeat = heartbeat
        self.settings = MetricsSettings()
        self.server: MetricsServer | None = None
        self.textfile: TextfileWriter | None = None

    def start(self, settings: MetricsSettings) -> None:
        """Start what `settings` asks for; ConfigError (naming metrics.listen) if it cannot bind."""
        self.settings = settings
        if settings.listen:
            self.server = MetricsServer(self.registry, settings.listen, self.heartbeat)
            log.info("metrics on %s", self.server.url)
        if settings.textfile:
            self.textfile = TextfileWriter(self.registry, settings.textfile, settings.interval)

    def reconfigure(self, settings: MetricsSettings) -> None:
        """Apply a reloaded `[metrics]`; a bind failure is logged, the daemon runs on."""
        old = self.settings
        self.settings = settings
        if (settings.textfile, settings.interval) != (old.textfile, old.interval):
            if self.textfile is not None:
                self.textfile.stop()
                self.textfile = None
            if settings.textfile:
                self.textfile = TextfileWriter(self.registry, settings.textfile, settings.interval)
        if settings.listen != old.listen:
            if self.server is not None:
                self.server.stop()
                self.server = None
            if settings.listen:
                try:
                    self.server = MetricsServer(self.registry, settings.listen, self.heartbeat)
                except ConfigError as exc:
                    log.error("%s; the metrics endpoint is off until fixed", exc.problems[0])
                else:
                    log.info("metrics on %s", self.server.url)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.textfile is not None:
            self.textfile.stop()
            self.textfile = None
