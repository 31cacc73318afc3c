"""The probes against the fake OpenAI API and status page on 127.0.0.1 (httpx does real HTTP)."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import httpx
import pytest

from oai400d.config import Settings, parse_settings
from oai400d.model import ProbeResult
from oai400d.probes import (
    AZURE_API_VERSION,
    EXIT_CODES,
    PROBES,
    USER_AGENT,
    make_client,
    overall,
    probe_api_key,
    probe_models,
    probe_status_page,
    provider_of,
    run_probes,
)
from tests.fakes import FakeOpenAI, FakeStatusPage
from tests.fakes.openai_api import openai_error

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
    """An answer slower than probes.timeout is WARNING network "timed out after …", promptly."""
    fake_openai.set_mode("slow", delay=3.0)
    started = time.monotonic()
    result = api_key(make_settings(base_url=fake_openai.base_url, timeout="300ms"))
    assert time.monotonic() - started < 2.0
    assert (result.status, result.summary) == ("warning", "timed out after 300ms")
    assert result.cause == "network"
    assert result.latency_ms is not None and result.latency_ms >= 300


def test_api_key_connection_refused_is_warning() -> None:
    """Nobody listening is WARNING network "cannot connect: Connection refused"."""
    result = api_key(make_settings(base_url=f"http://127.0.0.1:{free_port()}/v1"))
    assert (result.status, result.summary) == ("warning", "cannot connect: Connection refused")
    assert result.cause == "network"


def test_api_key_dropped_connection_is_warning(fake_openai: FakeOpenAI) -> None:
    """A connection closed without an answer is WARNING network."""
    fake_openai.drop_next()
    result = api_key(make_settings(base_url=fake_openai.base_url))
    assert (result.status, result.summary) == ("warning", "connection closed without an answer")
    assert result.cause == "network"


def test_api_key_tls_failure_is_warning_and_says_tls(fake_openai: FakeOpenAI) -> None:
    """TLS that cannot be set up (here: https to a plain-HTTP port) is WARNING, named as TLS."""
    base_url = fake_openai.base_url.replace("http://", "https://")
    result = api_key(make_settings(base_url=base_url))
    assert result.status == "warning"
    assert result.summary.startswith("TLS error: ")
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
    result = models(make_settings(base_url=f"http://127.0.0.1:{free_port()}/v1"))
    assert result.status == "warning"
    assert result.summary == "models not checked: cannot connect: Connection refused"
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
    assert result.summary == "status page not read: timed out after 300ms"


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
