"""`[metrics]`: /metrics scraped over HTTP from the daemon (a subprocess) and parsed with
prometheus_client's own parser; the node_exporter textfile; `status --textfile`."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

from oai400d.sources.globs import source_of

from .daemon_harness import (
    ERROR_LINE,
    NOISE,
    OTHER_ERROR,
    DaemonProcess,
    append,
    wait_until,
    write_config,
)
from .fakes.openai_api import FakeOpenAI
from .fakes.slack import FakeSlack
from .fakes.status_page import FakeStatusPage
from .scrape import parse, scrape, value
from .support import oai400d


def metrics_daemon(
    tmp: Path, env: dict[str, str] | None = None, **sections: dict[str, object]
) -> tuple[Path, DaemonProcess, str]:
    """A daemon with metrics on a free port of 127.0.0.1; returns (config, daemon, URL)."""
    metrics = {"listen": "127.0.0.1:0", **sections.pop("metrics", {})}
    config = write_config(tmp, metrics=metrics, **sections)
    daemon = DaemonProcess(config, env=env)
    daemon.wait_ready()
    return config, daemon, daemon.metrics_url()


def test_findings_lines_bytes_alerts_and_deliveries_move_as_lines_arrive(tmp_path: Path) -> None:
    """Every family is there from the first scrape (counters at 0 for the configured glob);
    error lines make findings, lines and bytes grow exactly, open a critical alert whose
    notification is counted as delivered by the console notifier; a FIFO matching the glob is
    a read error; labels are the glob, never the file's path."""
    _, daemon, url = metrics_daemon(tmp_path)
    glob = str(tmp_path / "logs" / "*.log")
    log = tmp_path / "logs" / "app.log"
    try:
        first = scrape(url)
        assert value(first, "oai400d_source_lines_total", source=glob) == 0
        assert value(first, "oai400d_source_bytes_total", source=glob) == 0
        assert value(first, "oai400d_source_read_errors_total", source=glob) == 0
        assert value(first, "oai400d_deliveries_total", notifier="console") == 0
        assert value(first, "oai400d_alerts_open", severity="critical") == 0
        assert value(first, "oai400d_outbox_depth") == 0
        assert value(first, "oai400d_fleet_queued_findings") == 0  # no state.fleet: always 0
        assert value(first, "oai400d_state_db_up") == 1
        assert value(first, "oai400d_build_info", version="0.1.0") == 1
        for process in ("process_cpu_seconds_total", "process_resident_memory_bytes",
                        "process_open_fds", "python_info"):
            assert process in first, process
        assert "oai400d_findings_total" not in first  # no finding yet: no series

        append(log, NOISE, ERROR_LINE)
        wait_until(
            lambda: value(scrape(url), "oai400d_deliveries_total", notifier="console") == 1,
            what="the opened notification counted as delivered",
        )
        now = scrape(url)
        key = {"category": "auth.invalid_api_key", "rule": "openai.invalid_api_key", "source": glob}
        assert value(now, "oai400d_findings_total", **key) == 1
        assert value(now, "oai400d_source_lines_total", source=glob) == 2
        assert value(now, "oai400d_source_bytes_total", source=glob) == log.stat().st_size
        assert value(now, "oai400d_alerts_open", severity="critical") == 1
        assert value(now, "oai400d_source_files", source=glob) == 1

        append(log, ERROR_LINE, ERROR_LINE, OTHER_ERROR)
        wait_until(
            lambda: value(scrape(url), "oai400d_findings_total", **key) == 3,
            what="three invalid-key findings",
        )
        rate_limit = {"category": "rate_limit", "rule": "openai.rate_limit_reached", "source": glob}
        now = wait_until(
            lambda: (s := scrape(url))
            and value(s, "oai400d_findings_total", **rate_limit) == 1
            and s,
            what="the rate-limit finding (the last line waits for multiline_timeout)",
        )
        assert value(now, "oai400d_source_lines_total", source=glob) == 5
        assert value(now, "oai400d_alerts_open", severity="warning") == 1
        assert value(now, "oai400d_source_bytes_total", source=glob) == log.stat().st_size
        wait_until(
            lambda: value(scrape(url), "oai400d_source_lag_bytes", source=glob) == 0,
            what="no lag once every line is read and its position saved",
        )

        os.mkfifo(tmp_path / "logs" / "pipe.log")  # matches the glob, cannot be followed
        wait_until(
            lambda: value(scrape(url), "oai400d_source_read_errors_total", source=glob) == 1,
            what="the FIFO counted as a read error",
        )
        every = scrape(url)
        for labels_list in every.values():
            for labels, _ in labels_list:
                assert str(log) not in labels.values()  # paths are no labels by default
                assert "fingerprint" not in labels
    finally:
        assert daemon.stop() == 0
    assert "Traceback" not in daemon.log()


def test_outbox_depth_age_and_delivery_failures_while_slack_is_down(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    """Slack down: the outbox fills, its oldest entry ages, transient failures are counted;
    Slack back: the delivery is counted and the outbox is empty again."""
    _, daemon, url = metrics_daemon(
        tmp_path,
        env={"SLACK_BOT_TOKEN": fake_slack.token},
        slack={"base_url": fake_slack.base_url, "retry_max": "1s"},
    )
    try:
        assert value(scrape(url), "oai400d_deliveries_total", notifier="slack") == 0
        fake_slack.down()
        append(tmp_path / "logs" / "app.log", ERROR_LINE)
        down = wait_until(
            lambda: (s := scrape(url))
            and (value(s, "oai400d_delivery_failures_total", notifier="slack", kind="transient")
                 or 0) >= 1
            and (value(s, "oai400d_outbox_oldest_age_seconds") or 0) > 0.2
            and s,
            what="a failed delivery and an ageing outbox",
        )
        assert value(down, "oai400d_outbox_depth") == 1
        assert value(down, "oai400d_deliveries_total", notifier="slack") == 0
        fake_slack.up()
        up = wait_until(
            lambda: (s := scrape(url))
            and value(s, "oai400d_deliveries_total", notifier="slack") == 1
            and value(s, "oai400d_outbox_depth") == 0
            and s,
            timeout=15,
            what="the delivery once Slack is back",
        )
        assert value(up, "oai400d_outbox_oldest_age_seconds") == 0
        assert value(up, "oai400d_delivery_failures_total", notifier="slack", kind="permanent") == 0
    finally:
        assert daemon.stop() == 0


def test_probe_status_latency_and_last_success_per_check(
    tmp_path: Path, fake_openai: FakeOpenAI, fake_status: FakeStatusPage
) -> None:
    """Each check's status (0 ok … 3 unknown), latency and last success; a rejected key turns
    api_key critical while its last success stays where it was."""
    probes = {"enabled": True, "status_url": fake_status.summary_url, "timeout": "2s",
              "api_key_interval": "1s", "status_interval": "1s"}
    _, daemon, url = metrics_daemon(
        tmp_path,
        env={"OPENAI_API_KEY": fake_openai.key},
        openai={"base_url": fake_openai.base_url, "models": ["gpt-4o-mini"]},
        probes=probes,
    )
    checks = ("api_key", "models", "status_page")
    try:
        ok = wait_until(
            lambda: (s := scrape(url))
            and all(value(s, "oai400d_probe_status", check=c) == 0 for c in checks)
            and all(value(s, "oai400d_probe_last_success_timestamp_seconds", check=c)
                    for c in checks)
            and s,
            what="every probe ok",
        )
        for check in checks:
            latency = value(ok, "oai400d_probe_latency_seconds", check=check)
            assert latency is not None and 0 <= latency < 2
            last_run = value(ok, "oai400d_probe_last_run_timestamp_seconds", check=check)
            assert last_run is not None and last_run > 1.7e9
        fake_openai.set_mode("invalid_key")
        bad = wait_until(
            lambda: (s := scrape(url))
            and value(s, "oai400d_probe_status", check="api_key") == 2
            and s,
            what="api_key critical",
        )
        success = value(bad, "oai400d_probe_last_success_timestamp_seconds", check="api_key")
        last_run = value(bad, "oai400d_probe_last_run_timestamp_seconds", check="api_key")
        assert success is not None and last_run is not None and last_run > success
    finally:
        assert daemon.stop() == 0


def test_textfile_is_replaced_atomically_and_status_writes_one(tmp_path: Path) -> None:
    """metrics.textfile: written every interval by rename (a reader never sees a partial file,
    the inode changes, no temporary file is left); `status --textfile` writes the state DB's
    figures once; a wrong name or directory is a clear error."""
    out_dir = tmp_path / "textfile"
    out_dir.mkdir()
    prom = out_dir / "oai400d.prom"
    config = write_config(tmp_path, metrics={"textfile": str(prom), "interval": "50ms"})
    daemon = DaemonProcess(config)
    daemon.wait_ready()
    reads: list[str] = []
    partial: list[str] = []
    stop_reading = threading.Event()

    def reader() -> None:
        while not stop_reading.is_set():
            text = prom.read_text()  # never missing: rename replaces it in one step
            # Whole: from our first family to the GC collector's, registered last.
            if not (text.startswith("# HELP oai400d_build_info") and text.endswith("\n")
                    and "python_gc_collections_total{" in text):
                partial.append(text)
            if len(reads) < 100:
                reads.append(text)

    thread = threading.Thread(target=reader, daemon=True)
    try:
        first = wait_until(lambda: prom.exists() and os.stat(prom).st_ino, what="the textfile")
        thread.start()
        append(tmp_path / "logs" / "app.log", ERROR_LINE)
        wait_until(
            lambda: value(parse(prom.read_text()), "oai400d_findings_total",
                          category="auth.invalid_api_key", rule="openai.invalid_api_key",
                          source=str(tmp_path / "logs" / "*.log")) == 1,
            what="the finding in the textfile",
        )
        inodes = {first}
        wait_until(lambda: inodes.add(os.stat(prom).st_ino) or len(inodes) >= 4,
                   what="the textfile replaced three more times")
    finally:
        stop_reading.set()
        thread.join(5)
        assert daemon.stop() == 0
    assert len(reads) > 10 and partial == []
    for text in reads:  # each read is one whole file: parseable, complete
        samples = parse(text)
        assert value(samples, "oai400d_build_info", version="0.1.0") == 1
        assert "process_cpu_seconds_total" in samples and text.endswith("\n")
    assert [p.name for p in out_dir.iterdir()] == ["oai400d.prom"]

    once = tmp_path / "status.prom"
    result = oai400d("status", "--config", str(config), "--textfile", str(once))
    assert result.returncode == 0, result.stderr
    samples = parse(once.read_text())
    assert value(samples, "oai400d_alerts_open", severity="critical") == 1
    assert value(samples, "oai400d_outbox_depth") == 0
    assert value(samples, "oai400d_source_files", source=str(tmp_path / "logs" / "*.log")) == 1
    assert "oai400d_findings_total" not in samples  # counters live in the daemon only
    assert "process_cpu_seconds_total" not in samples  # nor the figures of `status` itself

    wrong = oai400d("status", "--config", str(config), "--textfile", str(tmp_path / "x.txt"))
    assert wrong.returncode == 2 and b".prom" in wrong.stderr
    missing = tmp_path / "nowhere" / "oai400d.prom"
    gone = oai400d("status", "--config", str(config), "--textfile", str(missing))
    assert gone.returncode == 73
    assert str(missing) in gone.stderr.decode() and b"writable" in gone.stderr


def test_address_in_use_and_bad_keys_are_config_errors(tmp_path: Path) -> None:
    """A metrics.listen someone else holds: exit 78 naming the key and what to do; a listen
    without a port or a textfile not named *.prom: exit 78 naming the key."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path, metrics={"listen": f"127.0.0.1:{port}"})
        daemon = DaemonProcess(config)
        code = daemon.proc.wait(15)
        daemon.stop(expect=78)
    assert code == 78, daemon.log()
    assert "metrics.listen" in daemon.log() and "already in use" in daemon.log()
    assert "free port" in daemon.log() and "Traceback" not in daemon.log()

    for key, bad in (("listen", "localhost"), ("textfile", str(tmp_path / "metrics.txt"))):
        config = write_config(tmp_path, metrics={key: bad})
        result = oai400d("check-config", "--config", str(config))
        assert result.returncode == 78
        assert f"metrics.{key}" in result.stderr.decode()


def test_source_label_is_the_glob_a_file_belongs_to() -> None:
    """Rotated names keep their glob's label; a file under no glob is "other"."""
    patterns = ["/var/log/app/*.log", "/srv/**/*.json"]
    assert source_of(patterns, "/var/log/app/web.log") == "/var/log/app/*.log"
    assert source_of(patterns, "/var/log/app/web.log.1") == "/var/log/app/*.log"
    assert source_of(patterns, "/srv/a/b/x.json") == "/srv/**/*.json"
    assert source_of(patterns, "/srv/a/b/x.json.1") == "/srv/**/*.json"
    assert source_of(patterns, "/tmp/elsewhere.log") == "other"


def test_errors_no_rule_knows_are_counted_as_unclassified(tmp_path: Path) -> None:
    """An OpenAI error with a code no rule knows is a finding like any other: counted under
    category="unclassified", so a dashboard shows how many errors the rules cannot explain."""
    _, daemon, url = metrics_daemon(tmp_path)
    glob = str(tmp_path / "logs" / "*.log")
    unknown = (
        f"{ERROR_LINE[:23]} ERROR worker: openai.BadRequestError: Error code: 400 - {{'error': "
        "{'message': 'The flux capacitor is over its limit.', 'type': 'invalid_request_error', "
        "'param': None, 'code': 'quantum_flux_exceeded'}}"
    )
    try:
        append(tmp_path / "logs" / "app.log", unknown, unknown)
        key = {"category": "unclassified", "rule": "openai.unclassified", "source": glob}
        wait_until(
            lambda: value(scrape(url), "oai400d_findings_total", **key) == 2,
            what="two unclassified findings",
        )
    finally:
        daemon.stop()
