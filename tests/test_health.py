"""`/healthz` and `/readyz` on the metrics listener (Kubernetes' liveness and readiness probes):
over real HTTP on 127.0.0.1, from a running daemon (a subprocess) and from a metrics server
whose heartbeat runs on a clock the test moves."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client import CollectorRegistry

from oai400d.metrics import STALE_AFTER, Heartbeat, MetricsServer

from .daemon_harness import DaemonProcess, wait_until, write_config
from .scrape import scrape, value


def get(url: str) -> tuple[int, str, str]:
    """(status, content type, body) of a GET; a 503 is an answer, not an exception."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_running_daemon_is_live_and_ready_and_still_serves_metrics(tmp_path: Path) -> None:
    """A started daemon answers 200 on /healthz (the loop passed within a second or so) and on
    /readyz, each with one text line; /metrics on the same port is unchanged; after SIGTERM
    the daemon exits 0."""
    config = write_config(tmp_path, metrics={"listen": "127.0.0.1:0"})
    daemon = DaemonProcess(config)
    try:
        daemon.wait_ready()
        base = daemon.metrics_url().removesuffix("/metrics")
        # ready once the sources are started: the log line "watching" comes just before
        status, kind, body = wait_until(
            lambda: (answer := get(base + "/readyz"))[0] == 200 and answer, what="/readyz 200"
        )
        assert kind.startswith("text/plain") and body.startswith("ready:") and body.count("\n") == 1
        status, kind, body = get(base + "/healthz")
        assert status == 200, body
        assert body.startswith("ok: the main loop last passed ") and body.count("\n") == 1
        age = float(body.split("passed ")[1].split(" s ago")[0])
        assert age < 5.0  # the idle loop passes at least every second
        assert value(scrape(base + "/metrics"), "oai400d_state_db_up") == 1
    finally:
        daemon.stop()


def test_health_follows_the_heartbeat_over_http() -> None:
    """Before ready(): /readyz 503 "starting", /healthz 200 (start-up counts as a beat); after
    ready(): both 200; with no beat for more than STALE_AFTER seconds: /healthz 503 saying how
    long and what to do, a beat makes it 200 again; stopping(): /readyz 503. Any other path is
    still the metrics exposition."""
    clock = Clock()
    heartbeat = Heartbeat(clock)
    server = MetricsServer(CollectorRegistry(), "127.0.0.1:0", heartbeat)
    base = f"http://127.0.0.1:{server.port}"
    try:
        assert get(base + "/readyz")[0::2] == (
            503,
            "starting: the sources or the state database are not open yet\n",
        )
        assert get(base + "/healthz")[0] == 200
        heartbeat.ready()
        assert get(base + "/readyz")[0] == 200
        clock.now += 2.5
        assert get(base + "/healthz")[0::2] == (200, "ok: the main loop last passed 2.5 s ago\n")

        clock.now += STALE_AFTER
        status, _, body = get(base + "/healthz")
        assert status == 503
        assert body.startswith(f"stuck: the main loop last passed {2.5 + STALE_AFTER:.0f} s ago")
        assert "restart" in body and body.count("\n") == 1
        assert get(base + "/readyz")[0] == 200  # readiness is about start and stop, not speed

        heartbeat.beat()
        assert get(base + "/healthz")[0] == 200
        heartbeat.stopping()
        assert get(base + "/readyz")[0::2] == (503, "stopping: the daemon is shutting down\n")
        status, kind, _ = get(base + "/metrics")
        assert status == 200 and kind.startswith("text/plain; version=")
    finally:
        server.stop()


def test_a_start_up_that_never_finishes_is_not_live() -> None:
    """A daemon stuck before its loop (never ready) fails /healthz once STALE_AFTER has passed
    since start-up began, so a startupProbe's budget ends it."""
    clock = Clock()
    heartbeat = Heartbeat(clock)
    clock.now += STALE_AFTER + 1
    alive, reason = heartbeat.liveness()
    assert not alive and reason.startswith("stuck: start-up began 31 s ago")
