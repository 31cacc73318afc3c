"""The fakes in tests/fakes answer the real clients (slack-sdk, httpx) as the real services do."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import ConnectionErrorRetryHandler, FixedValueRetryIntervalCalculator
from slack_sdk.webhook import WebhookClient

from tests.fakes import FakeOpenAI, FakeSlack, FakeStatusPage, WaitTimeout

pytest_plugins = ["tests.fakes.fixtures"]


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    """One httpx client for the module (building one per request costs ~40 ms of TLS setup)."""
    with httpx.Client(timeout=5) as client:
        yield client


def _slack_error(call: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as caught:
        call()
    return caught.value


# -- Slack ------------------------------------------------------------------------------------


def test_slack_web_client_posts_updates_and_threads(fake_slack: FakeSlack) -> None:
    """WebClient against the fake: auth.test, a post with blocks, an update, a thread reply."""
    client = WebClient(token=fake_slack.token, base_url=fake_slack.base_url)
    assert client.auth_test()["user_id"] == fake_slack.bot_user_id

    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "OpenAI key rejected"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "*401* invalid_api_key"}},
    ]
    posted = client.chat_postMessage(channel="#openai-alerts", text="key rejected", blocks=blocks)
    assert posted["ok"] and posted["channel"] == "C0ALERTS01"
    assert abs(float(posted["ts"]) - time.time()) < 60  # epoch seconds, like Slack
    assert posted["message"]["blocks"] == blocks

    client.chat_update(channel=posted["channel"], ts=posted["ts"], text="resolved")
    reply = client.chat_postMessage(channel="C0ALERTS01", text="3 more", thread_ts=posted["ts"])
    assert reply["ts"] > posted["ts"]

    parent = fake_slack.message("#openai-alerts", posted["ts"])
    assert parent is not None
    assert parent.text == "resolved" and parent.edited and parent.blocks == blocks
    assert parent.history[0].text == "key rejected"
    assert parent.reply_count == 1
    assert [m.text for m in fake_slack.replies("#openai-alerts", posted["ts"])] == ["3 more"]
    assert len(fake_slack.wait_for_posts(2)) == 2
    assert fake_slack.updates()[0].params["text"] == "resolved"
    assert fake_slack.posts()[0].header("authorization") == f"Bearer {fake_slack.token}"


def test_slack_auth_errors(fake_slack: FakeSlack) -> None:
    """A wrong token gets ok:false invalid_auth, no token not_authed, both with HTTP 200."""
    wrong = WebClient(token="xoxb-wrong", base_url=fake_slack.base_url)
    error = _slack_error(lambda: wrong.chat_postMessage(channel="#x", text="hi"))
    assert error.response.status_code == 200
    assert error.response["error"] == "invalid_auth"
    anonymous = WebClient(base_url=fake_slack.base_url)
    assert _slack_error(anonymous.auth_test).response["error"] == "not_authed"
    assert fake_slack.messages() == []


def test_slack_rate_limit_is_429_with_retry_after(fake_slack: FakeSlack) -> None:
    """rate_limit_next: slack-sdk raises SlackApiError with status 429 and Retry-After; then ok."""
    client = WebClient(token=fake_slack.token, base_url=fake_slack.base_url)
    fake_slack.rate_limit_next(1, retry_after=7)
    error = _slack_error(lambda: client.chat_postMessage(channel="#a", text="hi"))
    assert error.response.status_code == 429
    assert error.response.headers["Retry-After"] == "7"
    assert error.response["error"] == "ratelimited"
    assert client.chat_postMessage(channel="#a", text="hi")["ok"]
    assert [r.fault for r in fake_slack.calls("chat.postMessage")] == ["rate_limit", None]


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
def test_slack_rejects_what_real_slack_rejects(fake_slack: FakeSlack) -> None:
    """Header over 150, more than 50 blocks, section over 3000 -> invalid_blocks; text over
    40,000 -> msg_too_long; nothing -> no_text; none of them is stored."""
    client = WebClient(token=fake_slack.token, base_url=fake_slack.base_url)

    def header(n: int) -> dict[str, Any]:
        return {"type": "header", "text": {"type": "plain_text", "text": "h" * n}}

    section = {"type": "section", "text": {"type": "mrkdwn", "text": "s" * 3001}}
    for blocks in ([header(151)], [header(10)] * 51, [section]):
        error = _slack_error(lambda b=blocks: client.chat_postMessage(channel="#a", blocks=b))
        assert error.response["error"] == "invalid_blocks"
        assert error.response["response_metadata"]["messages"]
    too_long = _slack_error(lambda: client.chat_postMessage(channel="#a", text="t" * 40_001))
    assert too_long.response["error"] == "msg_too_long"
    assert _slack_error(lambda: client.chat_postMessage(channel="#a")).response["error"] == (
        "no_text"
    )
    assert client.chat_postMessage(channel="#a", blocks=[header(150)], text="fits")["ok"]
    assert len(fake_slack.messages()) == 1


def test_slack_faults_status_error_drop_and_outage(fake_slack: FakeSlack) -> None:
    """fail_next, respond_error_next, drop_next and down/up reach the client as Slack's would."""
    client = WebClient(token=fake_slack.token, base_url=fake_slack.base_url)
    no_retry = WebClient(token=fake_slack.token, base_url=fake_slack.base_url, retry_handlers=[])

    fake_slack.fail_next(1, status=500)
    assert (
        _slack_error(lambda: client.chat_postMessage(channel="#a", text="x")).response["error"]
        == "internal_error"
    )

    fake_slack.respond_error_next(1, "not_in_channel")
    error = _slack_error(lambda: client.chat_postMessage(channel="#a", text="x"))
    assert (error.response.status_code, error.response["error"]) == (200, "not_in_channel")

    fake_slack.drop_next(1)
    with pytest.raises(OSError):  # urllib: RemoteDisconnected / URLError
        no_retry.chat_postMessage(channel="#a", text="x")
    # slack-sdk's default handlers retry a dropped connection once (here without the backoff
    # wait): the retried post then lands, and the fake saw both attempts.
    quick_retry = ConnectionErrorRetryHandler(
        interval_calculator=FixedValueRetryIntervalCalculator(0.01)
    )
    retrying = WebClient(
        token=fake_slack.token, base_url=fake_slack.base_url, retry_handlers=[quick_retry]
    )
    fake_slack.drop_next(1)
    assert retrying.chat_postMessage(channel="#a", text="after drop")["ok"]
    assert [r.fault for r in fake_slack.calls("chat.postMessage")][-2:] == ["drop", None]

    fake_slack.down()
    assert _slack_error(client.auth_test).response.status_code == 503
    fake_slack.up()
    assert client.auth_test()["ok"]
    assert [m.text for m in fake_slack.messages()] == ["after drop"]


def test_slack_webhook_answers_plain_text(fake_slack: FakeSlack) -> None:
    """WebhookClient gets "ok"/200; no_text 400, invalid_token 403, no_service 404, 429 with
    Retry-After, and scripted errors with Slack's status for them."""
    hook = WebhookClient(fake_slack.webhook_url)
    sent = hook.send(text="from the webhook")
    assert (sent.status_code, sent.body) == (200, "ok")
    assert fake_slack.wait_for_webhook_posts(1)[0].params == {"text": "from the webhook"}
    assert fake_slack.messages(fake_slack.webhook_channel)[0].via == "webhook"

    empty = hook.send(blocks=[])
    assert (empty.status_code, empty.body) == (400, "no_text")
    wrong_secret = WebhookClient(fake_slack.webhook_url[:-4] + "nope").send(text="x")
    assert (wrong_secret.status_code, wrong_secret.body) == (403, "invalid_token")
    unknown = WebhookClient(f"{fake_slack.origin}/services/T9/B9/zz").send(text="x")
    assert (unknown.status_code, unknown.body) == (404, "no_service")

    fake_slack.webhook_faults.rate_limit_next(1, retry_after=3)
    limited = hook.send(text="x")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"
    fake_slack.webhook_faults.respond_error_next(1, "channel_not_found")
    gone = hook.send(text="x")
    assert (gone.status_code, gone.body) == (404, "channel_not_found")
    assert len(fake_slack.webhook_posts()) == 1


def test_wait_for_times_out_listing_requests(fake_slack: FakeSlack) -> None:
    """wait_for polls until its deadline, then raises WaitTimeout naming what was received."""
    WebClient(token=fake_slack.token, base_url=fake_slack.base_url).auth_test()
    with pytest.raises(WaitTimeout, match=r"auth\.test"):
        fake_slack.wait_for_posts(1, timeout=0.1)


# -- OpenAI -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "status", "error_type", "code"),
    [
        ("invalid_key", 401, "invalid_request_error", "invalid_api_key"),
        ("no_key", 401, "invalid_request_error", None),
        ("region", 403, "request_forbidden", "unsupported_country_region_territory"),
        ("restricted", 401, "invalid_request_error", None),
        ("quota", 429, "insufficient_quota", "insufficient_quota"),
        ("rate_limit", 429, "requests", "rate_limit_exceeded"),
        ("server_error", 500, "server_error", None),
        ("overloaded", 503, "server_error", None),
    ],
)
def test_openai_modes_answer_openai_error_bodies(
    fake_openai: FakeOpenAI,
    http: httpx.Client,
    mode: str,
    status: int,
    error_type: str,
    code: str | None,
) -> None:
    """Each error mode answers GET /models with OpenAI's status, error body and x-request-id."""
    fake_openai.set_mode(mode)
    answer = http.get(
        f"{fake_openai.base_url}/models", headers={"Authorization": f"Bearer {fake_openai.key}"}
    )
    assert answer.status_code == status
    error = answer.json()["error"]
    assert (error["type"], error["code"]) == (error_type, code)
    assert set(error) == {"message", "type", "param", "code"}
    assert answer.headers["x-request-id"] == fake_openai.last_request_id
    assert answer.headers["x-request-id"].startswith("req_")
    if mode == "rate_limit":
        assert answer.headers["retry-after"] == "20"


def test_openai_models_keys_org_and_project(fake_openai: FakeOpenAI, http: httpx.Client) -> None:
    """The model list and one model; 404 model_not_found; wrong key, org, project -> 401."""
    auth = {"Authorization": f"Bearer {fake_openai.key}"}
    with httpx.Client(base_url=fake_openai.base_url, headers=auth) as client:
        listing = client.get("/models")
        assert listing.status_code == 200 and listing.json()["object"] == "list"
        assert "gpt-4o-mini" in {m["id"] for m in listing.json()["data"]}
        assert client.get("/models/gpt-4o-mini").json()["object"] == "model"
        missing = client.get("/models/gpt-9").json()["error"]
        assert missing["code"] == "model_not_found"
        assert missing["message"] == (
            "The model `gpt-9` does not exist or you do not have access to it."
        )
        bad_key = client.get("/models", headers={"Authorization": "Bearer sk-proj-wrong0abcd"})
        assert bad_key.json()["error"]["message"].startswith(
            "Incorrect API key provided: sk-proj-******abcd."
        )
    assert [r.status for r in fake_openai.model_requests()] == [200, 200, 404, 401]

    with FakeOpenAI(keys=["sk-k"], organization="org-a", project="proj_a") as api:
        headers = {"Authorization": "Bearer sk-k", "OpenAI-Organization": "org-b"}
        org = http.get(f"{api.base_url}/models", headers=headers)
        assert (org.status_code, org.json()["error"]["code"]) == (401, "mismatched_organization")
        headers = {"Authorization": "Bearer sk-k", "OpenAI-Project": "proj_b"}
        project = http.get(f"{api.base_url}/models", headers=headers)
        assert project.json()["error"]["code"] == "mismatched_project"


def test_openai_transport_faults_and_scripts(fake_openai: FakeOpenAI, http: httpx.Client) -> None:
    """slow mode outlasts a client timeout; drop_next closes the connection; respond_next and
    mode_next script single answers; azure=True reads the api-key header."""
    url = f"{fake_openai.base_url}/models"
    auth = {"Authorization": f"Bearer {fake_openai.key}"}
    fake_openai.set_mode("slow", delay=1.0)
    with pytest.raises(httpx.ReadTimeout):
        http.get(url, headers=auth, timeout=0.2)
    fake_openai.set_mode("ok")

    fake_openai.drop_next(1)
    with pytest.raises(httpx.RemoteProtocolError):
        http.get(url, headers=auth)

    fake_openai.respond_next(502, "<html>bad gateway</html>", {"Content-Type": "text/html"})
    fake_openai.mode_next("quota")
    gateway = http.get(url, headers=auth)
    assert gateway.status_code == 502 and gateway.headers["content-type"] == "text/html"
    assert gateway.headers["x-request-id"].startswith("req_")
    assert http.get(url, headers=auth).json()["error"]["code"] == "insufficient_quota"
    assert http.get(url, headers=auth).status_code == 200

    with FakeOpenAI(keys=["azure-key"], azure=True) as azure:
        ok = http.get(f"{azure.azure_base_url}/models", headers={"api-key": "azure-key"})
        assert ok.status_code == 200 and "apim-request-id" in ok.headers
        denied = http.get(f"{azure.azure_base_url}/models", headers={"api-key": "nope"})
        assert denied.status_code == 401 and denied.json()["error"]["code"] == "401"
        assert denied.json()["error"]["message"].startswith("Access denied")


# -- status page ------------------------------------------------------------------------------


def test_status_page_serves_both_shapes(fake_status: FakeStatusPage, http: httpx.Client) -> None:
    """set_components and add_incident show in summary.json and in incident.io's proxy JSON."""
    fake_status.set_components({"Chat Completions": "partial_outage", "Login": "major_outage"})
    incident = fake_status.add_incident(
        "Elevated errors on Chat Completions", "major", ["Chat Completions"], "https://x/inc/1"
    )

    summary = http.get(fake_status.summary_url).json()
    assert summary["status"]["indicator"] == "critical"
    by_name = {c["name"]: c for c in summary["components"]}
    assert by_name["Chat Completions"]["status"] == "partial_outage"
    assert by_name["Chat Completions"]["group_id"] == by_name["APIs"]["id"]
    assert by_name["APIs"]["group"] is True and by_name["APIs"]["status"] == "partial_outage"
    [open_incident] = summary["incidents"]
    assert (open_incident["name"], open_incident["impact"]) == (
        "Elevated errors on Chat Completions",
        "major",
    )
    assert open_incident["shortlink"] == "https://x/inc/1"
    assert [c["name"] for c in open_incident["components"]] == ["Chat Completions"]

    proxy = http.get(fake_status.incidentio_url).json()["summary"]
    names = {c["id"]: c["name"] for c in proxy["components"]}
    affected = {names[a["component_id"]]: a["status"] for a in proxy["affected_components"]}
    assert affected == {"Chat Completions": "partial_outage", "Login": "full_outage"}
    groups = {i["group"]["name"]: i["group"] for i in proxy["structure"]["items"] if "group" in i}
    assert "Chat Completions" in [c["name"] for c in groups["APIs"]["components"]]
    assert proxy["ongoing_incidents"][0]["id"] == incident

    fake_status.resolve_incident(incident)
    fake_status.reset_components()
    assert http.get(fake_status.summary_url).json()["status"]["indicator"] == "none"


def test_status_page_fault_modes(fake_status: FakeStatusPage, http: httpx.Client) -> None:
    """HTML, redirect (to 127.0.0.1), changed shape, failure, slowness and dropped connections."""
    url = fake_status.summary_url
    fake_status.serve_html()
    html = http.get(url)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")

    fake_status.redirect()
    moved = http.get(url)
    assert moved.status_code == 301 and moved.headers["location"] == fake_status.elsewhere_url
    assert http.get(url, follow_redirects=True).headers["content-type"].startswith("text/html")

    fake_status.changed_shape()
    shape = http.get(fake_status.incidentio_url).json()
    assert "summary" not in shape and "components" not in shape

    fake_status.fail(503)
    assert http.get(url).status_code == 503

    fake_status.normal()
    fake_status.slow(1.0)
    with pytest.raises(httpx.ReadTimeout):
        http.get(url, timeout=0.2)

    fake_status.normal()
    fake_status.drop()
    with pytest.raises(httpx.RemoteProtocolError):
        http.get(url)

    fake_status.normal()
    fake_status.faults.fail_next(1, status=500)
    assert http.get(url).status_code == 500
    assert http.get(url).json()["status"]["indicator"] == "none"
