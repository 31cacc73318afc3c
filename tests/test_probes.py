"""The probes against the fake OpenAI API and status page on 127.0.0.1 (httpx does real HTTP),
and the verdict table (verdicts.toml) row by row, in-process through httpx.MockTransport."""

from __future__ import annotations

import json
import re
import socket
import ssl
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from oai400d.classify.rules import CATEGORIES, load_rules
from oai400d.config import Settings, parse_settings
from oai400d.model import ProbeResult
from oai400d.probes import (
    AZURE_API_VERSION,
    EXIT_CODES,
    PROBES,
    USER_AGENT,
    Probe,
    make_client,
    overall,
    probe_api_key,
    probe_models,
    probe_status_page,
    provider_of,
    run_probes,
)
from oai400d.probes import api as probes_api
from oai400d.probes.api import api_error
from oai400d.probes.verdicts import parse_table, verdict_table
from tests.fakes import FakeOpenAI, FakeStatusPage
from tests.fakes.openai_api import AZURE_401_MESSAGE, NO_KEY_MESSAGE, openai_error

pytest_plugins = ["tests.fakes.fixtures"]

SECRET = "sk-test-0000000000000000000000000000abcd"  # FakeOpenAI's default accepted key
WRONG = "sk-proj-SECRETPART9999999999999999999wxyz"
NOWHERE = "http://127.0.0.1:9/v1"


def make_settings(
    *,
    base_url: str = NOWHERE,
    key: str | None = SECRET,
    models: list[str] | None = None,
    organization: str = "",
    project: str = "",
    status_url: str = "http://127.0.0.1:9/api/v2/summary.json",
    components: list[str] | None = None,
    timeout: str = "2s",
    provider: str = "openai",  # the fake API server plays OpenAI itself, on 127.0.0.1
) -> Settings:
    """Settings as a config file would give them; no environment, so no stray key."""
    openai: dict[str, Any] = {
        "base_url": base_url,
        "organization": organization,
        "project": project,
        "models": models if models is not None else ["gpt-4o-mini", "gpt-4o"],
        "provider": provider,
    }
    if key is not None:
        openai["api_key"] = key
    raw = {
        "openai": openai,
        "probes": {
            "status_url": status_url,
            "status_components": components or [],
            "timeout": timeout,
        },
    }
    return parse_settings(raw, environ={})


def api_key(settings: Settings) -> ProbeResult:
    """Run the api_key probe with a fresh client."""
    with make_client(settings) as client:
        return probe_api_key(settings, client)


def models(settings: Settings) -> ProbeResult:
    """Run the models probe with a fresh client."""
    with make_client(settings) as client:
        return probe_models(settings, client)


def status(settings: Settings) -> ProbeResult:
    """Run the status_page probe with a fresh client."""
    with make_client(settings) as client:
        return probe_status_page(settings, client)


def assert_no_secret(result: ProbeResult, key: str) -> None:
    """Neither the key nor its middle part is anywhere in the result."""
    text = json.dumps(result.to_json()) + str(result.cause)
    assert key not in text
    assert key[8:-4] not in text  # not even the middle of it


def free_port() -> int:
    """A port on 127.0.0.1 that nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fixes_for(name: str, url: str, setting: str) -> tuple[str, ...]:
    """A [fixes] entry of verdicts.toml with its {host}, {port} and {setting} filled for url."""
    parts = urlsplit(url)
    values = {"host": parts.hostname, "port": str(parts.port or 443), "setting": setting}
    return tuple(fix.format_map(values) for fix in verdict_table().fixes(name))


# -- api_key ------------------------------------------------------------------------------------


def test_api_key_ok_sends_bearer_and_user_agent(fake_openai: FakeOpenAI) -> None:
    """A key the API accepts is OK with the number of models it sees, sent as a Bearer token."""
    result = api_key(make_settings(base_url=fake_openai.base_url))
    assert (result.status, result.summary) == ("ok", "key accepted (6 models visible)")
    assert result.latency_ms is not None and result.latency_ms >= 0
    assert result.cause is None and result.fixes == ()
    [request] = fake_openai.model_requests()
    assert request.method == "GET" and request.path == "/v1/models"
    assert request.header("authorization") == f"Bearer {SECRET}"
    assert request.header("user-agent") == USER_AGENT
    assert request.header("openai-organization") is None


def test_api_key_sends_organization_and_project_when_set() -> None:
    """organization and project go out as OpenAI-Organization and OpenAI-Project headers."""
    with FakeOpenAI(organization="org-right", project="proj_right") as api:
        settings = make_settings(
            base_url=api.base_url, organization="org-right", project="proj_right"
        )
        assert api_key(settings).status == "ok"
        [request] = api.model_requests()
        assert request.header("openai-organization") == "org-right"
        assert request.header("openai-project") == "proj_right"


def test_api_key_invalid_key_is_critical(fake_openai: FakeOpenAI) -> None:
    """A rejected key is CRITICAL auth.invalid_api_key, with fixes, and the key stays hidden."""
    result = api_key(make_settings(base_url=fake_openai.base_url, key=WRONG))
    assert result.status == "critical"
    assert result.summary == "key rejected: 401 invalid_api_key"
    assert result.cause == "auth.invalid_api_key"
    assert result.fixes
    assert result.details["key"] == "sk-…wxyz"
    assert result.details["request_id"] == fake_openai.last_request_id
    assert_no_secret(result, WRONG)


def test_api_key_missing_is_unknown_without_a_request(fake_openai: FakeOpenAI) -> None:
    """No key configured: UNKNOWN naming where a key comes from; nothing is sent."""
    result = api_key(make_settings(base_url=fake_openai.base_url, key=None))
    assert result.status == "unknown"
    assert result.summary == "no API key configured (OPENAI_API_KEY or credential openai-api-key)"
    assert result.latency_ms == 0
    assert fake_openai.model_requests() == []


def test_api_key_wrong_organization_is_critical() -> None:
    """An organization the key does not belong to is CRITICAL auth.organization."""
    with FakeOpenAI(organization="org-right") as api:
        result = api_key(make_settings(base_url=api.base_url, organization="org-wrong"))
    assert result.status == "critical"
    assert result.summary == "wrong organization: 401 mismatched_organization"
    assert result.cause == "auth.organization"
    assert any("openai.organization" in fix for fix in result.fixes)


def test_api_key_unknown_organization_is_critical(fake_openai: FakeOpenAI) -> None:
    """ "No such organization" is the organization's fault too, not the key's."""
    body = openai_error("No such organization: org-typo.", "invalid_request_error")
    fake_openai.respond_next(401, body)
    result = api_key(make_settings(base_url=fake_openai.base_url, organization="org-typo"))
    assert result.status == "critical"
    assert result.summary == "wrong organization: 401 No such organization: org-typo"
    assert result.cause == "auth.organization"


def test_api_key_wrong_project_is_critical() -> None:
    """A project the key does not belong to is CRITICAL auth.organization, naming the project."""
    with FakeOpenAI(project="proj_right") as api:
        result = api_key(make_settings(base_url=api.base_url, project="proj_wrong"))
    assert result.status == "critical"
    assert result.summary == "wrong project: 401 mismatched_project"
    assert result.cause == "auth.organization"


def test_api_key_unsupported_region_is_critical(fake_openai: FakeOpenAI) -> None:
    """403 unsupported_country_region_territory is CRITICAL auth.permission, saying region."""
    fake_openai.set_mode("region")
    result = api_key(make_settings(base_url=fake_openai.base_url))
    assert result.status == "critical"
    assert result.summary == "region not supported: 403 unsupported_country_region_territory"
    assert result.cause == "auth.permission"


def test_api_key_restricted_key_is_warning(fake_openai: FakeOpenAI) -> None:
    """A restricted key without api.model.read is WARNING: it may still work for generation."""
    fake_openai.set_mode("restricted")
    result = api_key(make_settings(base_url=fake_openai.base_url))
    assert result.status == "warning"
    assert "restricted key" in result.summary and "api.model.read" in result.summary
    assert "may still work for generation" in result.summary
    assert result.cause == "auth.permission"


def test_api_key_forbidden_restricted_key_is_warning_too(fake_openai: FakeOpenAI) -> None:
    """The same missing-scope message under a 403 is the same verdict: the body decides."""
    body = openai_error(
        "You have insufficient permissions for this operation. Missing scopes: api.model.read.",
        "invalid_request_error",
    )
    fake_openai.respond_next(403, body)
    result = api_key(make_settings(base_url=fake_openai.base_url))
    assert result.status == "warning" and result.cause == "auth.permission"


def test_api_key_insufficient_quota_is_critical(fake_openai: FakeOpenAI) -> None:
    """429 insufficient_quota is CRITICAL quota.insufficient: retrying cannot help."""
    fake_openai.set_mode("quota")
    result = api_key(make_settings(base_url=fake_openai.base_url))
    assert result.status == "critical"
    assert result.summary == "quota exhausted: 429 insufficient_quota"
    assert result.cause == "quota.insufficient"


def test_api_key_rate_limit_is_warning(fake_openai: FakeOpenAI) -> None:
    """429 rate_limit_exceeded is WARNING rate_limit, with the request id."""
    fake_openai.set_mode("rate_limit")
    result = api_key(make_settings(base_url=fake_openai.base_url))
    assert result.status == "warning"
    assert result.summary.startswith("rate limited: 429 rate_limit_exceeded")
    assert fake_openai.last_request_id and fake_openai.last_request_id in result.summary
    assert result.cause == "rate_limit"


@pytest.mark.parametrize(
    ("mode", "status"), [("server_error", 500), ("bad_gateway", 502), ("overloaded", 503)]
)
def test_api_key_server_error_is_warning(fake_openai: FakeOpenAI, mode: str, status: int) -> None:
    """5xx (JSON or an HTML gateway page) is WARNING server.error naming the status and request."""
    fake_openai.set_mode(mode)
    result = api_key(make_settings(base_url=fake_openai.base_url))
    assert result.status == "warning"
    assert result.summary == f"OpenAI API answered {status} ({fake_openai.last_request_id})"
    assert result.details["request_id"] == fake_openai.last_request_id
    assert result.cause == "server.error"


def test_api_key_timeout_is_warning(fake_openai: FakeOpenAI) -> None:
    """An answer slower than probes.timeout is WARNING network "no answer from URL: timed out
    after …", promptly."""
    fake_openai.set_mode("slow", delay=3.0)
    started = time.monotonic()
    result = api_key(make_settings(base_url=fake_openai.base_url, timeout="300ms"))
    assert time.monotonic() - started < 2.0
    url = f"{fake_openai.base_url}/models"
    assert (result.status, result.summary) == (
        "warning",
        f"no answer from {url}: timed out after 300ms",
    )
    assert result.fixes == fixes_for("timeout", fake_openai.base_url, "openai.base_url")
    assert result.cause == "network"
    assert result.latency_ms is not None and result.latency_ms >= 300


def test_api_key_connection_refused_is_warning() -> None:
    """Nobody listening is WARNING network "connection refused by HOST:PORT for URL", with the
    fixes for a refusal (the port, a firewall, the proxy) naming that port, and the URL in the
    details."""
    port = free_port()
    result = api_key(make_settings(base_url=f"http://127.0.0.1:{port}/v1"))
    url = f"http://127.0.0.1:{port}/v1/models"
    assert (result.status, result.summary) == (
        "warning",
        f"connection refused by 127.0.0.1:{port} for {url}",
    )
    assert result.cause == "network"
    assert result.details["url"] == url and result.details["failure"] == "refused"
    assert result.fixes[0].startswith(f"Nothing accepts connections on 127.0.0.1 port {port}")
    assert any("HTTPS_PROXY" in fix for fix in result.fixes)


def test_api_key_dropped_connection_is_warning(fake_openai: FakeOpenAI) -> None:
    """A connection closed without an answer is WARNING network."""
    fake_openai.drop_next()
    result = api_key(make_settings(base_url=fake_openai.base_url))
    assert (result.status, result.summary) == (
        "warning",
        f"{fake_openai.base_url}/models: connection closed without an answer",
    )
    assert result.cause == "network"


def test_api_key_tls_failure_is_warning_and_says_tls(fake_openai: FakeOpenAI) -> None:
    """TLS that cannot be set up (here: https to a plain-HTTP port) is WARNING, named as TLS."""
    base_url = fake_openai.base_url.replace("http://", "https://")
    result = api_key(make_settings(base_url=base_url))
    assert result.status == "warning"
    assert result.summary.startswith(f"TLS failed for {base_url}/models: TLS error: ")
    assert result.cause == "network"
    assert any("TLS" in fix for fix in result.fixes)


def test_api_key_redirect_is_not_followed(fake_openai: FakeOpenAI) -> None:
    """A redirect is reported as UNKNOWN, never followed (the key must not travel elsewhere)."""
    fake_openai.respond_next(301, "", headers={"Location": "https://elsewhere.example/v1/models"})
    result = api_key(make_settings(base_url=fake_openai.base_url))
    assert result.status == "unknown"
    assert "301" in result.summary and "https://elsewhere.example/v1/models" in result.summary
    assert len(fake_openai.model_requests()) == 1


def test_api_key_wrong_base_url_is_unknown(fake_openai: FakeOpenAI) -> None:
    """A 404 for /models means openai.base_url is wrong: UNKNOWN, saying so."""
    result = api_key(make_settings(base_url=fake_openai.origin + "/nope"))
    assert result.status == "unknown"
    assert "openai.base_url" in result.summary


def test_api_key_unsendable_key_is_critical_and_hidden(fake_openai: FakeOpenAI) -> None:
    """A key with a line break inside cannot be sent: CRITICAL, and httpx never quotes it."""
    key = "sk-test-0000000000\n0000000000000000abcd"
    result = api_key(make_settings(base_url=fake_openai.base_url, key=key))
    assert result.status == "critical" and result.cause == "auth.invalid_api_key"
    assert fake_openai.model_requests() == []
    assert_no_secret(result, key)


def test_azure_v1_sends_api_key_header() -> None:
    """Azure OpenAI (path /openai/v1): the key goes in api-key, no Bearer, no api-version."""
    with FakeOpenAI(azure=True) as api:
        result = api_key(make_settings(base_url=api.azure_base_url, provider="azure"))
        [request] = api.model_requests()
    assert result.status == "ok"
    assert request.path == "/openai/v1/models"
    assert request.header("api-key") == SECRET
    assert request.header("authorization") is None
    assert "api-version" not in request.query


def test_azure_classic_adds_api_version() -> None:
    """Azure's classic data plane (path /openai) gets ?api-version=2024-10-21."""
    with FakeOpenAI(azure=True) as api:
        result = api_key(make_settings(base_url=f"{api.origin}/openai", provider="azure"))
        [request] = api.model_requests()
    assert result.status == "ok"
    assert request.path == "/openai/models"
    assert request.query["api-version"] == [AZURE_API_VERSION]


def test_azure_bad_key_is_critical() -> None:
    """Azure's 401 "invalid subscription key" is CRITICAL auth.invalid_api_key, named Azure."""
    with FakeOpenAI(azure=True) as api:
        result = api_key(
            make_settings(
                base_url=api.azure_base_url, key="0123456789abcdef0123", provider="azure"
            )
        )
    assert result.status == "critical"
    assert "Azure" in result.summary
    assert result.cause == "auth.invalid_api_key"
    assert_no_secret(result, "0123456789abcdef0123")


@pytest.mark.parametrize(
    ("base_url", "provider"),
    [
        ("https://myres.openai.azure.com/openai/v1", "azure"),
        ("https://myres.cognitiveservices.azure.com/openai", "azure"),
        ("https://api.openai.com/v1", "openai"),
        ("https://apim.example.com/openai/v1", "compatible"),
        ("https://gateway.ai.cloudflare.com/v1/acct/gw/openai", "compatible"),
        ("http://127.0.0.1:8000/v1", "compatible"),
    ],
)
def test_the_provider_comes_from_the_host_never_the_path(base_url: str, provider: str) -> None:
    """Azure hosts are Azure, api.openai.com is OpenAI, anything else (even at /openai/v1) is
    an OpenAI-compatible proxy or server unless openai.provider says otherwise."""
    assert provider_of(base_url) == provider
    assert provider_of(base_url, "azure") == "azure"


def test_a_gateway_serving_openai_v1_gets_a_bearer_key_and_accepts_it() -> None:
    """A proxy whose path is /openai/v1 is not taken for Azure: the valid key goes as Bearer,
    and the probe says OK instead of reporting a rejected key."""
    with FakeOpenAI() as api:
        result = api_key(make_settings(base_url=api.azure_base_url, provider="auto"))
        [request] = api.model_requests()
    assert result.status == "ok", result.summary
    assert request.header("authorization") == f"Bearer {SECRET}"
    assert request.header("api-key") is None
    assert result.details["provider"] == "compatible"


def test_a_key_rejected_by_a_compatible_server_says_so() -> None:
    """A 401 from a proxy or gateway names it and suggests its own key or provider = azure."""
    with FakeOpenAI() as api:
        result = api_key(
            make_settings(base_url=api.base_url, key="sk-wrong-0123456789abcdef", provider="auto")
        )
    assert result.status == "critical"
    assert "OpenAI-compatible server at 127.0.0.1" in result.summary
    assert any('openai.provider = "azure"' in fix for fix in result.fixes)


# -- models -------------------------------------------------------------------------------------


def test_models_all_present_is_ok(fake_openai: FakeOpenAI) -> None:
    """Every configured model exists: OK "2/2 configured models available"."""
    result = models(make_settings(base_url=fake_openai.base_url))
    assert (result.status, result.summary) == ("ok", "2/2 configured models available")
    assert [r.path for r in fake_openai.model_requests()] == [
        "/v1/models/gpt-4o-mini",
        "/v1/models/gpt-4o",
    ]
    assert result.latency_ms is not None


def test_models_one_missing_is_critical(fake_openai: FakeOpenAI) -> None:
    """A model the API does not know is CRITICAL request.model_not_found, naming it, with fixes."""
    result = models(make_settings(base_url=fake_openai.base_url, models=["gpt-4o", "gpt-4o-mni"]))
    assert result.status == "critical"
    assert result.summary == "1/2 configured models missing: gpt-4o-mni"
    assert result.cause == "request.model_not_found"
    assert result.details["missing"] == ["gpt-4o-mni"]
    assert result.details["available"] == ["gpt-4o"]
    assert any("model_not_found" in fix for fix in result.fixes)


def test_models_denied_model_is_critical_permission(fake_openai: FakeOpenAI) -> None:
    """A 403 "does not have access to model" (code model_not_found) is auth.permission."""
    body = openai_error(
        "Project `proj_abc` does not have access to model `gpt-4o`",
        "invalid_request_error",
        "model_not_found",
    )
    fake_openai.respond_next(403, body)
    result = models(make_settings(base_url=fake_openai.base_url, models=["gpt-4o"]))
    assert result.status == "critical"
    assert result.summary == "1/1 configured models not allowed for this key: gpt-4o"
    assert result.cause == "auth.permission"


def test_models_auth_failure_says_models_not_checked(fake_openai: FakeOpenAI) -> None:
    """A rejected key: the api_key verdict, but the summary says the models were not checked."""
    result = models(make_settings(base_url=fake_openai.base_url, key=WRONG))
    assert result.status == "critical"
    assert result.summary == "models not checked: key rejected: 401 invalid_api_key"
    assert result.cause == "auth.invalid_api_key"
    assert len(fake_openai.model_requests()) == 1  # stops at the first refusal
    assert_no_secret(result, WRONG)


def test_models_network_failure_is_warning() -> None:
    """Cannot reach the API: WARNING network, models not checked."""
    port = free_port()
    result = models(make_settings(base_url=f"http://127.0.0.1:{port}/v1"))
    assert result.status == "warning"
    url = f"http://127.0.0.1:{port}/v1/models/gpt-4o-mini"
    assert result.summary == f"models not checked: connection refused by 127.0.0.1:{port} for {url}"
    assert result.details["url"] == url
    assert result.cause == "network"


def test_models_without_key_is_unknown(fake_openai: FakeOpenAI) -> None:
    """No key: UNKNOWN, nothing sent."""
    result = models(make_settings(base_url=fake_openai.base_url, key=None))
    assert result.status == "unknown"
    assert result.summary.startswith("models not checked: no API key")
    assert fake_openai.model_requests() == []


def test_models_none_configured_is_ok(fake_openai: FakeOpenAI) -> None:
    """An empty openai.models list is a choice: OK, nothing sent."""
    result = models(make_settings(base_url=fake_openai.base_url, models=[]))
    assert result.status == "ok" and "no models configured" in result.summary
    assert fake_openai.model_requests() == []


# -- status page --------------------------------------------------------------------------------


def status_url(page: FakeStatusPage, shape: str) -> str:
    """The fake's URL for one of the two formats."""
    return page.summary_url if shape == "statuspage" else page.incidentio_url


SHAPES = ["statuspage", "incident.io"]


@pytest.mark.parametrize("shape", SHAPES)
def test_status_all_operational_is_ok(fake_status: FakeStatusPage, shape: str) -> None:
    """Both formats, everything fine: OK "All 12 API components operational"."""
    result = status(make_settings(status_url=status_url(fake_status, shape)))
    assert (result.status, result.summary) == ("ok", "All 12 API components operational")
    assert result.details["format"] == shape
    assert "Chat Completions" in result.details["components"]
    assert "Conversations" not in result.details["components"]
    assert result.cause is None


@pytest.mark.parametrize("shape", SHAPES)
def test_status_partial_outage_of_an_api_component_is_warning(
    fake_status: FakeStatusPage, shape: str
) -> None:
    """A partial outage of Chat Completions: WARNING naming it, the incident with its link."""
    incident = fake_status.add_incident(
        "Elevated errors on Chat Completions", "major", {"Chat Completions": "partial_outage"}
    )
    result = status(make_settings(status_url=status_url(fake_status, shape)))
    assert (result.status, result.summary) == ("warning", "Partial outage: Chat Completions")
    assert result.cause == "server.error"
    [listed] = result.details["incidents"]
    assert listed["name"] == "Elevated errors on Chat Completions"
    assert listed["url"] == f"https://status.openai.com/incidents/{incident}"
    assert listed["impact"] in ("major", "partial_outage")


@pytest.mark.parametrize("shape", SHAPES)
def test_status_major_outage_is_critical(fake_status: FakeStatusPage, shape: str) -> None:
    """major_outage (full_outage in incident.io's words) is CRITICAL; worst listed first."""
    fake_status.set_components({"Responses": "major_outage", "Embeddings": "degraded_performance"})
    result = status(make_settings(status_url=status_url(fake_status, shape)))
    assert result.status == "critical"
    outage = "Major outage" if shape == "statuspage" else "Full outage"
    assert result.summary == f"{outage}: Responses; degraded performance: Embeddings"


@pytest.mark.parametrize("shape", SHAPES)
def test_status_chatgpt_outage_only_is_ok(fake_status: FakeStatusPage, shape: str) -> None:
    """An outage of ChatGPT, Sora and Codex alone never alerts API users: OK."""
    fake_status.add_incident(
        "ChatGPT unavailable",
        "critical",
        {"Conversations": "major_outage", "Login": "major_outage", "File uploads": "major_outage"},
    )
    fake_status.set_components({"Sora": "major_outage", "Codex Web": "partial_outage"})
    result = status(make_settings(status_url=status_url(fake_status, shape)))
    assert (result.status, result.summary) == ("ok", "All 12 API components operational")
    assert result.details["incidents"] == [] and result.details["other_incidents"] == 1


def test_status_maintenance_is_ok_and_said(fake_status: FakeStatusPage) -> None:
    """A component under maintenance is planned work: OK, and the summary names it."""
    fake_status.set_components({"Batch": "under_maintenance"})
    result = status(make_settings(status_url=fake_status.summary_url))
    assert result.status == "ok"
    assert result.summary == "11/12 API components operational, under maintenance: Batch"


def test_status_statuspage_without_groups_still_finds_api_components() -> None:
    """Without group entries, API components are recognised by name; ChatGPT's are not."""
    with FakeStatusPage(statuspage_groups=False) as page:
        page.set_components({"Files": "partial_outage", "File uploads": "major_outage"})
        result = status(make_settings(status_url=page.summary_url))
    assert (result.status, result.summary) == ("warning", "Partial outage: Files")


def test_status_configured_components_are_the_only_ones_judged(fake_status: FakeStatusPage) -> None:
    """probes.status_components narrows the judgement to the named components."""
    fake_status.set_components({"Embeddings": "major_outage"})
    settings = make_settings(status_url=fake_status.summary_url, components=["Chat Completions"])
    result = status(settings)
    assert (result.status, result.summary) == ("ok", "All 1 API components operational")


def test_status_configured_components_not_on_page_is_unknown(fake_status: FakeStatusPage) -> None:
    """Configured names the page does not have: UNKNOWN, naming them."""
    settings = make_settings(status_url=fake_status.summary_url, components=["Chat Completion"])
    result = status(settings)
    assert result.status == "unknown" and "Chat Completion" in result.summary


def _assert_unknown_not_down(result: ProbeResult) -> None:
    """UNKNOWN, pointing at probes.status_url, and never claiming an outage."""
    assert result.status == "unknown"
    assert "outage" not in result.summary.lower() and "down" not in result.summary.lower()
    assert result.cause is None
    assert result.fixes and "probes.status_url" in result.fixes[0]


def test_status_html_page_is_unknown(fake_status: FakeStatusPage) -> None:
    """An HTML page where JSON was expected: UNKNOWN, never "OpenAI is down"."""
    fake_status.serve_html()
    result = status(make_settings(status_url=fake_status.summary_url))
    _assert_unknown_not_down(result)
    assert result.summary == "status page answered HTML (text/html), not JSON"


def test_status_redirect_is_unknown_and_not_followed(fake_status: FakeStatusPage) -> None:
    """A 301 is UNKNOWN naming the new location; the redirect is not followed."""
    fake_status.redirect()
    result = status(make_settings(status_url=fake_status.summary_url))
    _assert_unknown_not_down(result)
    assert result.summary == f"status page answered 301 (redirect to {fake_status.elsewhere_url})"
    assert fake_status.requests("elsewhere") == []


def test_status_changed_shape_is_unknown(fake_status: FakeStatusPage) -> None:
    """Valid JSON of another shape: UNKNOWN naming what it has."""
    fake_status.changed_shape()
    result = status(make_settings(status_url=fake_status.summary_url))
    _assert_unknown_not_down(result)
    assert result.summary == "status page answered JSON of an unknown shape (data, meta)"


def test_status_timeout_is_unknown(fake_status: FakeStatusPage) -> None:
    """A status page slower than probes.timeout: UNKNOWN."""
    fake_status.slow(2.0)
    result = status(make_settings(status_url=fake_status.summary_url, timeout="300ms"))
    _assert_unknown_not_down(result)
    assert result.summary == (
        f"status page not read: no answer from {fake_status.summary_url}: timed out after 300ms"
    )


@pytest.mark.parametrize("code", [500, 503, 404])
def test_status_http_error_is_unknown(fake_status: FakeStatusPage, code: int) -> None:
    """The status page failing (5xx, 4xx) says nothing about the API: UNKNOWN."""
    fake_status.fail(code)
    result = status(make_settings(status_url=fake_status.summary_url))
    _assert_unknown_not_down(result)
    assert result.summary == f"status page answered {code}"


def test_status_dropped_connection_is_unknown(fake_status: FakeStatusPage) -> None:
    """A dropped connection: UNKNOWN."""
    fake_status.drop()
    result = status(make_settings(status_url=fake_status.summary_url))
    _assert_unknown_not_down(result)


# -- secrets, running, overall ------------------------------------------------------------------


@pytest.mark.parametrize(
    "mode", ["ok", "invalid_key", "restricted", "quota", "rate_limit", "server_error", "slow"]
)
def test_no_result_ever_shows_the_key(mode: str) -> None:
    """Whatever the API answers, no result's JSON holds the key (at most sk-…abcd)."""
    with FakeOpenAI(keys=[WRONG], slow_delay=1.0) as api, FakeStatusPage() as page:
        api.set_mode(mode)
        settings = make_settings(
            base_url=api.base_url, key=WRONG, status_url=page.summary_url, timeout="300ms"
        )
        results = run_probes(settings)
    for result in results:
        assert_no_secret(result, WRONG)


def test_run_probes_runs_all_in_order_with_overall(
    fake_openai: FakeOpenAI, fake_status: FakeStatusPage
) -> None:
    """run_probes runs api_key, models, status_page; overall is the worst status."""
    fake_status.set_components({"Batch": "degraded_performance"})
    settings = make_settings(base_url=fake_openai.base_url, status_url=fake_status.incidentio_url)
    results = run_probes(settings)
    assert [r.name for r in results] == list(PROBES) == ["api_key", "models", "status_page"]
    assert [r.status for r in results] == ["ok", "ok", "warning"]
    assert all(r.latency_ms is not None for r in results)
    assert overall(results) == "warning"


def test_run_probes_selected_names_and_unknown_name(fake_status: FakeStatusPage) -> None:
    """Only the named probes run; an unknown name is a ValueError listing the known ones."""
    settings = make_settings(status_url=fake_status.summary_url)
    assert [r.name for r in run_probes(settings, ["status_page"])] == ["status_page"]
    with pytest.raises(ValueError, match="api_key, models, status_page"):
        run_probes(settings, ["status"])


class RecordingTransport(httpx.HTTPTransport):
    """A real HTTP transport that notes the path of each request it carries."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return super().handle_request(request)


def test_run_probes_uses_the_given_transport(fake_openai: FakeOpenAI) -> None:
    """A transport passed in carries every request (how the daemon's tests can shape traffic)."""
    transport = RecordingTransport()
    settings = make_settings(base_url=fake_openai.base_url, models=["gpt-4o"])
    results = run_probes(settings, ["api_key", "models"], transport=transport)
    assert transport.paths == ["/v1/models", "/v1/models/gpt-4o"]
    assert [r.status for r in results] == ["ok", "ok"]


def _result(status: str) -> ProbeResult:
    """A bare result with this status."""
    return ProbeResult("x", status, "", 0)


def test_overall_ranks_critical_warning_unknown_ok() -> None:
    """Overall is the worst: CRITICAL > WARNING > UNKNOWN > OK; nothing run is UNKNOWN."""
    assert overall([_result("ok"), _result("unknown"), _result("warning")]) == "warning"
    assert overall([_result("warning"), _result("critical")]) == "critical"
    assert overall([_result("ok"), _result("unknown")]) == "unknown"
    assert overall([_result("ok")]) == "ok"
    assert overall([]) == "unknown"
    assert EXIT_CODES == {"ok": 0, "warning": 1, "critical": 2, "unknown": 3}


def test_make_client_bounds_time_and_does_not_follow_redirects() -> None:
    """The client: probes.timeout on every phase, our User-Agent, redirects not followed."""
    with make_client(make_settings(timeout="1500ms")) as client:
        assert client.timeout.connect == client.timeout.read == 1.5
        assert client.follow_redirects is False
        assert client.headers["user-agent"] == USER_AGENT


# -- the verdict table (verdicts.toml), in-process through httpx.MockTransport -----------------

# The taxonomy's ids (../shared/taxonomy.md, outside the repository): the classifier's
# categories, which the rule loader checks every rule against, and `not_openai`.
TAXONOMY_IDS = CATEGORIES | {"not_openai"}
OPENAI_URL = "https://api.openai.com/v1"
AZURE_URL = "https://myres.openai.azure.com/openai/v1"
REQUEST_ID = "req_0123456789abcdef0123456789abcdef"


@dataclass(frozen=True)
class Answer:
    """One scripted answer of the API: status, body (dict: JSON, str: HTML), extra headers."""

    status: int
    body: dict[str, Any] | str | None = None
    headers: tuple[tuple[str, str], ...] = ()

    def response(self) -> httpx.Response:
        headers = dict(self.headers)
        if isinstance(self.body, dict):
            return httpx.Response(self.status, json=self.body, headers=headers)
        if isinstance(self.body, str):
            headers.setdefault("content-type", "text/html")
            return httpx.Response(self.status, text=self.body, headers=headers)
        return httpx.Response(self.status, headers=headers)


@dataclass(frozen=True)
class VerdictCase:
    """An answer, where it came from, and the verdict expected of it: the table row, the level,
    the summary (the api_key probe's; the models probe prefixes it) and the cause."""

    row: str
    answer: Answer
    level: str
    summary: str
    cause: str | None
    base_url: str = OPENAI_URL
    provider: str = "auto"


WITH_ID = (("x-request-id", REQUEST_ID),)
VERDICT_CASES = [
    VerdictCase(
        "restricted_key",
        Answer(
            401,
            openai_error(
                "You have insufficient permissions for this operation. Missing scopes: "
                "api.model.read. Check that you have the correct role.",
                "invalid_request_error",
            ),
        ),
        "warning",
        "restricted key cannot list models (401, missing scope api.model.read); "
        "it may still work for generation",
        "auth.permission",
    ),
    VerdictCase(
        "restricted_key",
        Answer(403, openai_error("Missing scope: api.files.read.", "invalid_request_error")),
        "warning",
        "restricted key cannot list models (403, missing scope api.files.read); "
        "it may still work for generation",
        "auth.permission",
    ),
    VerdictCase(
        "organization_mismatch",
        Answer(
            401,
            openai_error(
                "OpenAI-Organization header should match organization for API key",
                "invalid_request_error",
                "mismatched_organization",
            ),
        ),
        "critical",
        "wrong organization: 401 mismatched_organization",
        "auth.organization",
    ),
    VerdictCase(
        "organization_unknown",
        Answer(
            401,
            openai_error(
                "You must be a member of an organization to use the API. Please contact us.",
                "invalid_request_error",
                "no_organization",
            ),
        ),
        "critical",
        "wrong organization: 401 You must be a member of an organization to use the API",
        "auth.organization",
    ),
    VerdictCase(
        "project_mismatch",
        Answer(
            401,
            openai_error(
                "OpenAI-Project header should match project for API key",
                "invalid_request_error",
                "mismatched_project",
            ),
        ),
        "critical",
        "wrong project: 401 mismatched_project",
        "auth.organization",
    ),
    VerdictCase(
        "account_deactivated",
        Answer(
            401,
            openai_error(
                "This key is associated with a deactivated account.",
                "invalid_request_error",
                "account_deactivated",
            ),
        ),
        "critical",
        "key rejected: 401 account_deactivated",
        "auth.invalid_api_key",
    ),
    VerdictCase(
        "key_stripped",
        Answer(401, openai_error(NO_KEY_MESSAGE, "invalid_request_error")),
        "critical",
        "key rejected: 401 no key reached the API (a proxy may strip it)",
        "auth.invalid_api_key",
    ),
    VerdictCase(
        "azure_key",
        Answer(401, {"error": {"code": "401", "message": "Unauthorized."}}),
        "critical",
        "key rejected: 401 (Azure: invalid subscription key or wrong API endpoint)",
        "auth.invalid_api_key",
        base_url=AZURE_URL,
    ),
    VerdictCase(
        "azure_key_wording",  # Azure behind a custom domain, taken for a compatible server
        Answer(401, {"error": {"code": "401", "message": AZURE_401_MESSAGE}}),
        "critical",
        "key rejected: 401 (Azure: invalid subscription key or wrong API endpoint)",
        "auth.invalid_api_key",
        base_url="https://apim.example.com/openai/v1",
    ),
    VerdictCase(
        "compatible_key",
        Answer(401, openai_error("Authentication Error", "auth_error")),
        "critical",
        "key rejected: 401 invalid_api_key (by the OpenAI-compatible server at 127.0.0.1)",
        "auth.invalid_api_key",
        base_url="http://127.0.0.1:4000/v1",
    ),
    VerdictCase(
        "invalid_key",
        Answer(
            401,
            openai_error(
                "Incorrect API key provided: sk-proj-****wxyz.",
                "invalid_request_error",
                "invalid_api_key",
            ),
        ),
        "critical",
        "key rejected: 401 invalid_api_key",
        "auth.invalid_api_key",
    ),
    VerdictCase(
        "invalid_key",  # no body at all: the code the row assumes
        Answer(401),
        "critical",
        "key rejected: 401 invalid_api_key",
        "auth.invalid_api_key",
        provider="openai",
    ),
    VerdictCase(
        "unsupported_region",
        Answer(
            403,
            openai_error(
                "Country, region, or territory not supported",
                "request_forbidden",
                "unsupported_country_region_territory",
            ),
        ),
        "critical",
        "region not supported: 403 unsupported_country_region_territory",
        "auth.permission",
    ),
    VerdictCase(
        "ip_not_authorized",
        Answer(403, openai_error("Access denied.", "invalid_request_error", "ip_not_authorized")),
        "critical",
        "this host's IP is not allowed: 403 ip_not_authorized",
        "auth.permission",
    ),
    VerdictCase(
        "ip_not_authorized",  # the words without the code, " ip" before "not authorized"
        Answer(403, openai_error("Requests from IP 203.0.113.7 are not authorized.", "denied")),
        "critical",
        "this host's IP is not allowed: 403 ip_not_authorized",
        "auth.permission",
    ),
    VerdictCase(
        "forbidden_not_json",
        Answer(403, "<html><body>403 Forbidden</body></html>"),
        "critical",
        "access denied: 403 not JSON: a proxy or firewall?",
        "auth.permission",
    ),
    VerdictCase(
        "forbidden",
        Answer(403, openai_error("Forbidden.", "permission_error")),
        "critical",
        "access denied: 403 permission_error",
        "auth.permission",
    ),
    VerdictCase(
        "forbidden",  # JSON without code or type: nothing after the status
        Answer(403, {"detail": "Forbidden"}),
        "critical",
        "access denied: 403",
        "auth.permission",
    ),
    VerdictCase(
        "quota_exhausted",
        Answer(
            429,
            openai_error(
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
                "insufficient_quota",
            ),
        ),
        "critical",
        "quota exhausted: 429 insufficient_quota",
        "quota.insufficient",
    ),
    VerdictCase(
        "quota_exhausted",
        Answer(
            429, openai_error("Billing hard limit has been reached.", "billing_hard_limit_reached")
        ),
        "critical",
        "quota exhausted: 429 insufficient_quota",
        "quota.insufficient",
    ),
    VerdictCase(
        "rate_limited",
        Answer(
            429,
            openai_error("Rate limit reached for requests", "requests", "rate_limit_exceeded"),
            WITH_ID,
        ),
        "warning",
        f"rate limited: 429 rate_limit_exceeded ({REQUEST_ID})",
        "rate_limit",
    ),
    VerdictCase(
        "server_error",
        Answer(503, "<html>Service Unavailable</html>", WITH_ID),
        "warning",
        f"OpenAI API answered 503 ({REQUEST_ID})",
        "server.error",
    ),
    VerdictCase(
        "server_error",
        Answer(500, openai_error("The server had an error.", "server_error")),
        "warning",
        "OpenAI API answered 500",
        "server.error",
    ),
    VerdictCase(
        "redirect",  # the target without its user:password and query
        Answer(307, "", (("location", "https://user:pw@elsewhere.example/v1/models?k=1"),)),
        "unknown",
        "OpenAI API answered 307 (redirect to https://elsewhere.example/v1/models): "
        "set openai.base_url to the final URL",
        None,
    ),
    VerdictCase(
        "redirect",
        Answer(302),
        "unknown",
        "OpenAI API answered 302 (redirect): set openai.base_url to the final URL",
        None,
    ),
    VerdictCase(
        "no_such_path",
        Answer(404, openai_error("Invalid URL (GET /v1/modelz)", "invalid_request_error")),
        "unknown",
        "GET /models answered 404: is openai.base_url right?",
        None,
    ),
    VerdictCase(
        "unexpected",
        Answer(418, openai_error("I'm a teapot", "teapot_error", "teapot"), WITH_ID),
        "unknown",
        f"unexpected answer 418 teapot ({REQUEST_ID})",
        None,
    ),
    VerdictCase(
        "unexpected",
        Answer(400),
        "unknown",
        "unexpected answer 400",
        None,
    ),
]


def scripted(settings: Settings, answer: Answer, probe: Probe) -> ProbeResult:
    """Run one probe in-process, every request answered with `answer`."""
    transport = httpx.MockTransport(lambda request: answer.response())
    with make_client(settings, transport) as client:
        return probe(settings, client)


def case_settings(case: VerdictCase) -> Settings:
    """Settings for a case: its base URL and provider, one model."""
    return make_settings(base_url=case.base_url, provider=case.provider, models=["gpt-4o"])


@pytest.mark.parametrize(
    "case", [pytest.param(c, id=f"{c.row}-{c.answer.status}") for c in VERDICT_CASES]
)
def test_each_answer_gets_its_rows_verdict(case: VerdictCase) -> None:
    """The row the table picks for an answer, and what both API probes then say: level, summary,
    cause and the row's fixes; the models probe says the models were not checked."""
    settings = case_settings(case)
    provider = provider_of(case.base_url, case.provider)
    error = api_error(case.answer.response(), SECRET)
    row = verdict_table().find(error, provider)
    assert row.id == case.row
    key_result = scripted(settings, case.answer, probe_api_key)
    models_result = scripted(settings, case.answer, probe_models)
    assert (key_result.status, key_result.summary, key_result.cause) == (
        case.level,
        case.summary,
        case.cause,
    )
    assert (models_result.status, models_result.summary, models_result.cause) == (
        case.level,
        "models not checked: " + case.summary,
        case.cause,
    )
    assert key_result.fixes == models_result.fixes == row.fixes and row.fixes
    assert key_result.details["http_status"] == case.answer.status
    assert case.cause is None or case.cause in TAXONOMY_IDS


def test_every_row_of_the_table_has_a_case() -> None:
    """No row of verdicts.toml goes untested, and no case names a row that is not there."""
    assert {c.row for c in VERDICT_CASES} == {row.id for row in verdict_table().rows}


def test_every_cause_of_the_table_is_a_taxonomy_category() -> None:
    """A verdict's cause is a category of taxonomy.md (or none, when the probe cannot tell)."""
    for row in verdict_table().rows:
        assert row.cause is None or row.cause in TAXONOMY_IDS, row.id
        assert row.cause is not None or row.level == "unknown", row.id


def test_fixes_shared_with_the_rules_name_existing_rules() -> None:
    """A [fixes] entry that refers to a rule names a built-in rule of rules.toml, and carries
    exactly that rule's fixes."""
    rules = {rule.id: rule for rule in load_rules().rules}
    assert verdict_table().rule_refs  # the sharing is in use
    for name, rule_id in verdict_table().rule_refs.items():
        assert rule_id in rules, f"[fixes] {name}: no rule {rule_id}"
        assert verdict_table().fixes(name) == rules[rule_id].fixes


def test_every_fix_set_is_used_and_every_used_one_exists() -> None:
    """Each [fixes] entry is given by some row or asked for by a probe, and each one a probe asks
    for by name exists (read from the package's source: `.fixes("name")`)."""
    package = Path(probes_api.__file__).parent
    asked = {
        name
        for path in package.glob("*.py")
        for name in re.findall(r'\.fixes\("(\w+)"\)', path.read_text(encoding="utf-8"))
    }
    table = verdict_table()
    assert asked <= set(table.fix_sets)
    given = {row.fix_set for row in table.rows} | {row.fix_set for row in table.failures}
    assert set(table.fix_sets) == asked | given


def _failing(exc: Exception) -> httpx.MockTransport:
    """A transport on which every request fails with exc."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return httpx.MockTransport(handler)


def _tls_failure() -> Exception:
    """httpx's ConnectError as it comes out of a failed TLS handshake."""
    handshake = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    handshake.reason = "WRONG_VERSION_NUMBER"  # set by the ssl module's C code, not by __init__
    try:
        raise handshake
    except ssl.SSLError as cause:
        try:
            raise httpx.ConnectError("handshake failed") from cause
        except httpx.ConnectError as exc:
            return exc


@pytest.mark.parametrize(
    ("transport", "level", "summary", "cause", "fixes"),
    [
        pytest.param(
            _failing(httpx.ConnectError("[Errno 101] Network is unreachable")),
            "warning",
            "[Errno 101] Network is unreachable",
            "network",
            "network",
            id="network",
        ),
        pytest.param(_failing(_tls_failure()), "warning", None, "network", "tls", id="tls"),
        pytest.param(
            httpx.MockTransport(lambda r: httpx.Response(200, text="<html>login</html>")),
            "unknown",
            None,
            None,
            "base_url",
            id="no-model-list",
        ),
    ],
)
def test_the_api_probes_own_verdicts(
    transport: httpx.MockTransport, level: str, summary: str | None, cause: str | None, fixes: str
) -> None:
    """What the API probes judge without the table (no answer, or a 200 that is not the API's):
    level, cause, and the named fixes of verdicts.toml."""
    settings = make_settings(base_url=OPENAI_URL, models=["gpt-4o"])
    for probe in (probe_api_key, probe_models):
        with make_client(settings, transport) as client:
            result = probe(settings, client)
        assert (result.status, result.cause) == (level, cause)
        assert result.fixes == fixes_for(fixes, OPENAI_URL, "openai.base_url")
        if summary is not None:
            assert result.summary.endswith(summary)
        assert cause is None or cause in TAXONOMY_IDS
    if fixes == "tls":
        assert result.summary == (
            f"models not checked: TLS failed for {OPENAI_URL}/models/gpt-4o: "
            "TLS error: wrong version number"
        )
    if fixes == "base_url":
        assert "is openai.base_url right?" in result.summary


def test_models_missing_and_denied_carry_their_named_fixes() -> None:
    """A 404 model (missing) and a 403 'does not have access to model' (denied): their causes are
    taxonomy categories, their fixes the table's `models` and `model_denied` entries."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/gpt-5-typo"):
            return httpx.Response(404, json=openai_error("The model does not exist", "x"))
        return httpx.Response(
            403, json=openai_error("Project `p` does not have access to model `o3`", "x")
        )

    transport = httpx.MockTransport(handler)
    for models_configured, cause, fixes in [
        (["gpt-5-typo", "o3"], "request.model_not_found", "models"),
        (["o3"], "auth.permission", "model_denied"),
    ]:
        settings = make_settings(base_url=OPENAI_URL, models=models_configured)
        with make_client(settings, transport) as client:
            result = probe_models(settings, client)
        assert (result.status, result.cause) == ("critical", cause)
        assert cause in TAXONOMY_IDS
        assert result.fixes == verdict_table().fixes(fixes)


def test_the_status_page_verdicts_carry_their_named_fixes() -> None:
    """The status page unreadable (UNKNOWN) and an API outage (server.error): the table's
    `status_page` and `outage` fixes."""
    outage = {
        "page": {"url": "https://status.openai.com"},
        "components": [{"name": "Chat Completions", "status": "major_outage"}],
        "incidents": [],
    }
    settings = make_settings()
    for body, level, cause, fixes in [
        ({"unknown": "shape"}, "unknown", None, "status_page"),
        (outage, "critical", "server.error", "outage"),
    ]:
        transport = httpx.MockTransport(lambda r, body=body: httpx.Response(200, json=body))
        with make_client(settings, transport) as client:
            result = probe_status_page(settings, client)
        assert (result.status, result.cause) == (level, cause)
        assert result.fixes == verdict_table().fixes(fixes)


def _table_document() -> dict[str, Any]:
    """The shipped verdicts.toml, parsed (to break on purpose)."""
    text = Path(probes_api.__file__).with_name("verdicts.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def _rule_fixes() -> dict[str, tuple[str, ...]]:
    return {rule.id: rule.fixes for rule in load_rules().rules}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d["answer"][0].update(cause="auth.key"), "is not a category of taxonomy.md"),
        (lambda d: d["answer"][0].update(level="fatal"), "`level` 'fatal' is not one of"),
        (lambda d: d["answer"][0].update(fixes="nope"), "`fixes` 'nope' is not an entry"),
        (lambda d: d["answer"][0].update(summary="{nope}"), "unknown placeholder(s) ['nope']"),
        (lambda d: d["answer"][0].update(statuses=[401]), "unknown key(s) ['statuses']"),
        (lambda d: d["answer"][0].update(patterns=["("]), "is not a valid regex"),
        (lambda d: d["answer"][0].update(provider=["aws"]), "`provider` must be a list of"),
        (lambda d: d["answer"][1].update(id=d["answer"][0]["id"]), "the id is used by an earlier"),
        (lambda d: d["answer"][-1].update(status=[400]), "the last [[answer]] must have no"),
        (lambda d: d["fixes"].update(quota={"rule": "openai.nope"}), "no rule 'openai.nope'"),
        (lambda d: d["fixes"].update(quota=[]), "[fixes] quota: give a non-empty list"),
        (
            lambda d: d["failure"][0].update(kind=["dns"]),
            "[[failure]] proxy_unreachable: `kind` must",
        ),
        (lambda d: d["failure"][0].update(proxy="yes"), "`proxy` must be true or false"),
        (lambda d: d["failure"][-1].update(kind=["tls"]), "the last [[failure]] must have no"),
        (lambda d: d["fixes"].update(dns=["{url}"]), "[fixes] dns may use only"),
        (lambda d: d["failure"][0].update(summary="{status}"), "`summary` may use only"),
    ],
)
def test_a_broken_table_is_refused_saying_where(change: Any, problem: str) -> None:
    """Each mistake in verdicts.toml is a ValueError naming the row or entry and what is wrong."""
    document = _table_document()
    change(document)
    with pytest.raises(ValueError) as raised:
        parse_table(document, _rule_fixes())
    assert problem in str(raised.value)
    assert str(raised.value).startswith("verdicts.toml: ")


def test_the_shipped_table_parses_as_loaded() -> None:
    """verdicts.toml as shipped is what verdict_table() holds (nothing lost in loading)."""
    table = parse_table(_table_document(), _rule_fixes())
    assert [row.id for row in table.rows] == [row.id for row in verdict_table().rows]
    assert [row.id for row in table.failures] == [row.id for row in verdict_table().failures]
    assert table.fix_sets == verdict_table().fix_sets


# -- no answer at all: the [[failure]] rows -------------------------------------------------------


def _connect_error(message: str) -> httpx.ConnectError:
    """httpx's ConnectError with the OS's words, as a failed connect or lookup raises it (the
    resolver's message for DNS: no test resolves a name)."""
    return httpx.ConnectError(message)


@dataclass(frozen=True)
class FailureCase:
    row: str
    error: Exception
    says: str  # what the summary says after the URL's part, or "" when it only names the URL
    fix_mentions: str  # a word the first fix must have


FAILURE_CASES = [
    FailureCase("dns", _connect_error("[Errno -2] Name or service not known"),
                "[Errno -2] Name or service not known", "does not resolve"),
    FailureCase("dns", _connect_error("[Errno -3] Temporary failure in name resolution"),
                "[Errno -3] Temporary failure in name resolution", "does not resolve"),
    FailureCase("dns", _connect_error("[Errno 8] nodename nor servname provided, or not known"),
                "[Errno 8] nodename nor servname provided, or not known", "does not resolve"),
    FailureCase("dns", _connect_error("[Errno -2] Name does not resolve"),
                "[Errno -2] Name does not resolve", "does not resolve"),
    FailureCase("refused", _connect_error("[Errno 111] Connection refused"), "",
                "Nothing accepts connections"),
    FailureCase("tls", _tls_failure(), "TLS error: wrong version number", "certificate"),
    FailureCase("proxy", httpx.ProxyError("407 Proxy Authentication Required"),
                "proxy failed: 407 Proxy Authentication Required", "HTTPS_PROXY"),
    FailureCase("timeout", httpx.ConnectTimeout("timed out"), "timed out after 2s",
                "probes.timeout"),
    FailureCase("closed", httpx.RemoteProtocolError("Server disconnected"),
                "connection closed without an answer", "closed the connection"),
    FailureCase("unreachable", _connect_error("[Errno 101] Network is unreachable"),
                "[Errno 101] Network is unreachable", "route"),
]


def test_every_failure_row_has_a_case() -> None:
    """No [[failure]] row of verdicts.toml goes untested (proxy_unreachable: with a real proxy
    setting, in test_a_proxy_that_does_not_answer_is_named_not_the_api)."""
    tested = {c.row for c in FAILURE_CASES} | {"proxy_unreachable"}
    assert tested == {row.id for row in verdict_table().failures}


@pytest.mark.parametrize("case", FAILURE_CASES, ids=lambda c: f"{c.row}:{c.says[:30]}")
def test_a_request_with_no_answer_names_its_url_and_gets_fixes_that_fit(case: FailureCase) -> None:
    """Each way a request can fail before any answer (DNS, refused, TLS, proxy, timeout, closed,
    the route), for every probe: the summary names the URL (host and path, never the query or
    credentials), the details carry it with the row, and the fixes are that row's, naming the
    host and the config key that holds the URL."""
    settings = make_settings(
        base_url="https://user:pw@api.example.test/v1?api-version=x",
        status_url="https://status.example.test/api/v2/summary.json?token=t0k",
        models=["gpt-4o"],
    )
    expected = {
        "api_key": ("https://api.example.test/v1/models", "openai.base_url", "warning"),
        "models": ("https://api.example.test/v1/models/gpt-4o", "openai.base_url", "warning"),
        "status_page": (
            "https://status.example.test/api/v2/summary.json", "probes.status_url", "unknown"
        ),
    }
    for result in run_probes(settings, transport=_failing(case.error)):
        url, setting, level = expected[result.name]
        assert result.status == level, result
        assert url in result.summary and result.summary.endswith(case.says), result.summary
        assert "pw" not in result.summary and "t0k" not in result.summary
        assert "api-version" not in result.summary
        assert result.details["url"] == url and result.details["failure"] == case.row
        row = next(r for r in verdict_table().failures if r.id == case.row)
        assert result.fixes == fixes_for(row.fix_set, url, setting)
        assert case.fix_mentions in result.fixes[0]
        assert all("{" not in fix for fix in result.fixes)


def test_an_unresolvable_status_page_is_not_told_to_set_the_url_it_has() -> None:
    """DNS failing for the default status page: the fixes are about the name and the resolver,
    not "set probes.status_url to" the value it already has."""
    default = "https://status.openai.com/api/v2/summary.json"
    settings = make_settings(status_url=default)
    (result,) = run_probes(
        settings,
        ["status_page"],
        transport=_failing(_connect_error("[Errno -2] Name or service not known")),
    )
    assert result.summary == (
        f"status page not read: cannot resolve status.openai.com for {default}: "
        "[Errno -2] Name or service not known"
    )
    text = " ".join(result.fixes)
    assert "Set probes.status_url to" not in text and "/etc/resolv.conf" in text
    assert "status.openai.com" in result.fixes[0] and "probes.status_url" in result.fixes[0]


def test_a_proxy_that_does_not_answer_is_named_not_the_api(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTPS_PROXY pointing at a closed 127.0.0.1 port (real httpx, which then never resolves the
    API's name itself): the summary names the proxy (without its credentials) and the API URL,
    and the fixes are the proxy's (its address, NO_PROXY), not the API port's."""
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
                 "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    port = free_port()
    monkeypatch.setenv("HTTPS_PROXY", f"http://squid:pr0xypw@127.0.0.1:{port}")
    settings = make_settings(base_url="https://api.example.test/v1", models=["gpt-4o"])
    (result,) = run_probes(settings, ["api_key"])
    proxy = f"http://127.0.0.1:{port}"
    url = "https://api.example.test/v1/models"
    assert result.status == "warning" and result.cause == "network"
    assert result.summary.startswith(f"cannot reach the proxy {proxy} for {url}: "), result.summary
    assert "pr0xypw" not in json.dumps(result.to_json())
    assert result.details["proxy"] == proxy and result.details["failure"] == "proxy_unreachable"
    assert result.fixes[0].startswith(f"The proxy {proxy} (HTTPS_PROXY")
    assert "api.example.test" in result.fixes[1] and "NO_PROXY" in result.fixes[1]
