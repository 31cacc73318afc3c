"""`oai400d probe` and the probes inside the running daemon, against OpenAI API and status page
servers on 127.0.0.1."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from .daemon_harness import DaemonProcess, append, status, wait_until, write_config
from .fakes.openai_api import FakeOpenAI
from .fakes.status_page import FakeStatusPage
from .support import oai400d


def probe_config(tmp: Path, api: FakeOpenAI, page: FakeStatusPage, **probes: object) -> Path:
    settings = {"enabled": True, "status_url": page.summary_url, "timeout": "2s",
                "api_key_interval": "1s", "status_interval": "1s"}
    settings.update(probes)  # type: ignore[arg-type]
    return write_config(
        tmp, openai={"base_url": api.base_url, "models": ["gpt-4o-mini"]}, probes=settings
    )


def run_probe(config: Path, api: FakeOpenAI, *args: str, key: str | None = None) -> tuple[int, str]:
    result = oai400d("probe", "--config", str(config), *args,
                     env={"OPENAI_API_KEY": key if key is not None else api.key})
    return result.returncode, result.stdout.decode() + result.stderr.decode()


def test_all_ok_exits_0_with_the_json_contract(
    tmp_path: Path, fake_openai: FakeOpenAI, fake_status: FakeStatusPage
) -> None:
    """Everything fine: exit 0, and the JSON has status and one check per probe."""
    config = probe_config(tmp_path, fake_openai, fake_status)
    code, out = run_probe(config, fake_openai, "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["status"] == "ok"
    assert [c["name"] for c in doc["checks"]] == ["api_key", "models", "status_page"]
    for check in doc["checks"]:
        assert set(check) == {"name", "status", "summary", "latency_ms", "fixes", "details"}
        assert check["status"] == "ok" and isinstance(check["latency_ms"], int)


def test_rejected_key_is_critical_exit_2_and_never_printed(
    tmp_path: Path, fake_openai: FakeOpenAI, fake_status: FakeStatusPage
) -> None:
    """A wrong key: CRITICAL, exit 2, the cause and a fix, and the key itself nowhere."""
    config = probe_config(tmp_path, fake_openai, fake_status)
    wrong = "sk-proj-WRONGWRONGWRONGWRONGWRONG9z8y"
    code, out = run_probe(config, fake_openai, key=wrong)
    assert code == 2
    assert "CRITICAL" in out and "401" in out and "fix:" in out
    assert wrong not in out and "WRONGWRONG" not in out


def test_status_page_outage_is_warning_and_nagios_line(
    tmp_path: Path, fake_openai: FakeOpenAI, fake_status: FakeStatusPage
) -> None:
    """A partial outage of an API component: WARNING, exit 1; --nagios gives one line with
    performance data."""
    fake_status.set_components({"Chat Completions": "partial_outage"})
    config = probe_config(tmp_path, fake_openai, fake_status)
    code, out = run_probe(config, fake_openai, "--nagios", "--check", "status_page")
    assert code == 1
    line = out.strip()
    assert line.startswith("OAI400D WARNING - status_page:") and "Chat Completions" in line
    assert "| status_page_latency=" in line and line.count("\n") == 0


def test_unreadable_status_page_is_unknown_exit_3(
    tmp_path: Path, fake_openai: FakeOpenAI, fake_status: FakeStatusPage
) -> None:
    """An HTML page where JSON was expected: UNKNOWN (exit 3), never "OpenAI is down"."""
    fake_status.serve_html()
    config = probe_config(tmp_path, fake_openai, fake_status)
    code, out = run_probe(config, fake_openai, "--check", "status_page")
    assert code == 3
    assert "UNKNOWN" in out and "down" not in out.lower().replace("unknown", "")


def test_daemon_opens_a_probe_alert_after_the_threshold_and_resolves_it(
    tmp_path: Path, fake_openai: FakeOpenAI, fake_status: FakeStatusPage
) -> None:
    """In the daemon: two failures in a row open a probe alert; one success resolves it; the
    latest results are in `status`."""
    fake_openai.set_mode("invalid_key")
    config = probe_config(tmp_path, fake_openai, fake_status)
    daemon = DaemonProcess(config, env={"OPENAI_API_KEY": fake_openai.key})
    try:
        daemon.wait_ready()
        (opened,) = daemon.wait_for(
            lambda n: n["kind"] == "opened" and n["fingerprint"] == "probe:api_key", timeout=20
        )
        assert opened["category"] == "auth.invalid_api_key" and opened["severity"] == "critical"
        probes = {p["name"]: p for p in status(config)["probes"]}
        assert probes["api_key"]["status"] == "critical"
        fake_openai.set_mode("ok")
        daemon.wait_for(
            lambda n: n["kind"] == "resolved" and n["fingerprint"] == "probe:api_key", timeout=20
        )
    finally:
        daemon.stop()


def test_alerts_carry_what_the_probes_said(
    tmp_path: Path, fake_openai: FakeOpenAI, fake_status: FakeStatusPage
) -> None:
    """A server error alert says what the status page says; an auth alert says whether the
    configured key passes its probe (if it does, the app probably uses another key)."""
    fake_status.set_components({"Chat Completions": "major_outage"})
    config = probe_config(tmp_path, fake_openai, fake_status, failure_threshold=100)
    daemon = DaemonProcess(config, env={"OPENAI_API_KEY": fake_openai.key})
    log = tmp_path / "logs" / "app.log"
    try:
        daemon.wait_ready()
        wait_until(lambda: len(status(config)["probes"]) == 3, timeout=20, what="first probe results")
        append(log, "openai.InternalServerError: Error code: 500 - {'error': {'message': 'The server "
               "had an error while processing your request. Sorry about that!', 'type': "
               "'server_error', 'param': None, 'code': None}}")
        (server,) = daemon.wait_for(lambda n: n["category"] == "server.error", timeout=10)
        assert "status page" in server["context"] and "Chat Completions" in server["context"]
        append(log, "openai.AuthenticationError: Error code: 401 - {'error': {'message': "
               "'Incorrect API key provided: sk-…abcd.', 'type': 'invalid_request_error', "
               "'param': None, 'code': 'invalid_api_key'}}")
        (auth,) = daemon.wait_for(lambda n: n["category"] == "auth.invalid_api_key", timeout=10)
        assert "passes its probe" in auth["context"] and "another key" in auth["context"]
    finally:
        daemon.stop()


def test_the_cli_offers_exactly_the_probes_that_exist() -> None:
    """`--check` choices (model.PROBE_NAMES, known without importing httpx) match probes.PROBES."""
    from oai400d.model import PROBE_NAMES
    from oai400d.probes import PROBES

    assert tuple(PROBES) == PROBE_NAMES


def test_a_closed_port_is_named_with_the_refused_fix_in_the_table_and_json(
    tmp_path: Path, fake_openai: FakeOpenAI, fake_status: FakeStatusPage
) -> None:
    """`oai400d probe` against a closed 127.0.0.1 port: the table names the URL it could not
    reach and gives the fix for a refusal (nothing listens on that port), and `--json` carries the
    URL in each check's `details`."""
    with socket.socket() as sock:  # a port nobody listens on: bound, then released
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    config = write_config(
        tmp_path,
        openai={"base_url": f"http://127.0.0.1:{port}/v1", "models": ["gpt-4o-mini"]},
        probes={"enabled": True, "status_url": fake_status.summary_url, "timeout": "2s"},
    )
    code, out = run_probe(config, fake_openai, "--check", "api_key")
    assert code == 1, out
    url = f"http://127.0.0.1:{port}/v1/models"
    assert f"connection refused by 127.0.0.1:{port} for {url}" in out
    assert f"api_key: fix: Nothing accepts connections on 127.0.0.1 port {port}" in out
    assert "openai.base_url" in out
    code, out = run_probe(config, fake_openai, "--json")
    doc = json.loads(out)
    checks = {c["name"]: c for c in doc["checks"]}
    assert checks["api_key"]["details"]["url"] == url
    assert checks["models"]["details"]["url"] == f"{url}/gpt-4o-mini"
    assert checks["api_key"]["details"]["failure"] == "refused"
    for check in doc["checks"]:
        assert set(check) == {"name", "status", "summary", "latency_ms", "fixes", "details"}


def test_an_unresolvable_name_is_named_with_the_dns_fix_in_the_table() -> None:
    """A name that does not resolve (the resolver's error injected through the transport the
    probes are given: no test resolves a name): the table names the URL and gives the DNS fix."""
    import httpx

    from oai400d.cli import probe_table
    from oai400d.config import parse_settings
    from oai400d.probes import overall, run_probes

    def unresolvable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno -2] Name or service not known")

    settings = parse_settings(
        {"openai": {"base_url": "https://llm-gateway.internal/v1", "api_key": "sk-test-0000abcd",
                    "models": []}},
        environ={},
    )
    results = run_probes(settings, ["api_key"], transport=httpx.MockTransport(unresolvable))
    out = "\n".join(probe_table(overall(results), results))
    assert (
        "cannot resolve llm-gateway.internal for https://llm-gateway.internal/v1/models: "
        "[Errno -2] Name or service not known"
    ) in out
    assert "api_key: fix: The name llm-gateway.internal does not resolve on this host" in out
    assert "/etc/resolv.conf" in out and "sk-test-0000abcd" not in out
    assert results[0].details["url"] == "https://llm-gateway.internal/v1/models"
