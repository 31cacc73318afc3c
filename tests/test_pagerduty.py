"""The PagerDuty notifier against a fake Events API v2 on 127.0.0.1 (tests/fakes/pagerduty.py):
which event each notification makes, one incident per alert episode, and what each refusal
means for the outbox (retry, park, give the message up), with no secret in any text."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, Literal

import pytest

from oai400d.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from oai400d.model import Notification
from oai400d.notify.base import Attempt, MessageRejected, episode_key
from oai400d.notify.pagerduty import (
    DEDUP_KEY_LIMIT,
    MIN_INTERVAL,
    SUMMARY_LIMIT,
    PagerDutyNotifier,
    change_url,
    dedup_key,
)
from tests.fakes.pagerduty import ROUTING_KEY, FakePagerDuty

SECRET = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx0123a1B2"
FIRST_SEEN = "2026-12-07T01:00:00Z"
ATTEMPT = Attempt(ref="entry-1")


@pytest.fixture
def pd() -> Iterator[FakePagerDuty]:
    with FakePagerDuty() as fake:
        yield fake


def notifier(pd: FakePagerDuty, key: str = ROUTING_KEY) -> PagerDutyNotifier:
    return PagerDutyNotifier(key, events_url=pd.events_url, timeout=5.0)


def notification(kind: str = "opened", **changes: Any) -> Notification:
    n = Notification(
        kind=kind,
        fingerprint="fp-pd",
        category="auth.invalid_api_key",
        severity="critical",
        title="Invalid API key",
        count=3,
        first_seen=FIRST_SEEN,
        last_seen="2026-12-07T01:05:00Z",
        files=("/var/log/app.log",),
        fixes=("rotate the key",),
        docs=("https://platform.openai.com/docs/guides/error-codes",),
        excerpt="openai.AuthenticationError: Error code: 401",
        rule="invalid-api-key",
        message="Incorrect API key provided",
        status=401,
        error_code="invalid_api_key",
        model="gpt-4o",
        request_id="req_123",
        new=2 if kind in ("updated", "repeated") else 0,
        duration_s=300.0 if kind == "resolved" else None,
        host="web-1",
    )
    return replace(n, **changes)


# --- the event each notification makes --------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "endpoint", "action"),
    [
        ("opened", "enqueue", "trigger"),
        ("updated", "enqueue", "trigger"),
        ("repeated", "enqueue", "trigger"),
        ("acknowledged", "enqueue", "acknowledge"),
        ("resolved", "enqueue", "resolve"),
        ("merged", "enqueue", "resolve"),
        ("backlog", "change", None),
    ],
)
def test_each_kind_makes_its_event(
    pd: FakePagerDuty, kind: str, endpoint: str, action: str | None
) -> None:
    """opened/updated/repeated trigger, acknowledged acknowledges, resolved and merged resolve,
    all with the episode's dedup_key; a backlog summary is a Change Event (pages nobody)."""
    n = notification(kind, acked_by="alice" if kind == "acknowledged" else None)
    notifier(pd).send(n, ATTEMPT)
    [request] = pd.requests()
    assert (request.endpoint, request.status) == (endpoint, 202)
    body = request.params
    assert body["routing_key"] == ROUTING_KEY
    if action is None:
        assert "event_action" not in body and "dedup_key" not in body
        assert body["payload"]["summary"] == "Invalid API key"
        assert body["payload"]["source"] == "web-1"
        return
    assert body["event_action"] == action
    assert body["dedup_key"] == episode_key(n) == f"fp-pd@{FIRST_SEEN}"
    if action == "trigger":
        assert set(body) == {
            "routing_key",
            "event_action",
            "dedup_key",
            "payload",
            "links",
            "client",
        }
    else:  # PagerDuty reads only these for acknowledge and resolve
        assert set(body) == {"routing_key", "event_action", "dedup_key"}


def test_a_trigger_carries_what_a_responder_needs(pd: FakePagerDuty) -> None:
    """The trigger's payload: summary = title, severity, source = host, component = category,
    group = rule, class = error code, timestamp = last seen, custom_details with the counts,
    fixes, docs and evidence; links = the docs; client = oai400d."""
    notifier(pd).send(notification("updated"), ATTEMPT)
    [event] = pd.wait_for_events(1)
    payload = event["payload"]
    assert {k: v for k, v in payload.items() if k != "custom_details"} == {
        "summary": "Invalid API key",
        "source": "web-1",
        "severity": "critical",
        "timestamp": "2026-12-07T01:05:00Z",
        "component": "auth.invalid_api_key",
        "group": "invalid-api-key",
        "class": "invalid_api_key",
    }
    details = payload["custom_details"]
    assert details["count"] == 3 and details["new"] == 2
    assert details["first_seen"] == FIRST_SEEN and details["last_seen"] == "2026-12-07T01:05:00Z"
    assert details["files"] == ["/var/log/app.log"]
    assert details["fixes"] == ["rotate the key"]
    assert details["excerpt"] == "openai.AuthenticationError: Error code: 401"
    assert details["message"] == "Incorrect API key provided"
    assert (details["status"], details["error_code"]) == (401, "invalid_api_key")
    assert (details["model"], details["request_id"]) == ("gpt-4o", "req_123")
    assert event["links"] == [
        {"href": "https://platform.openai.com/docs/guides/error-codes", "text": "Documentation"}
    ]
    assert event["client"] == "oai400d"


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [("critical", "critical"), ("warning", "warning"), ("info", "info"), ("odd", "error")],
)
def test_severity_is_mapped(pd: FakePagerDuty, ours: str, theirs: str) -> None:
    """critical/warning/info are PagerDuty's own; anything else is its middle, error."""
    notifier(pd).send(notification(severity=ours), ATTEMPT)
    assert pd.wait_for_events(1)[0]["payload"]["severity"] == theirs


@pytest.mark.parametrize(
    ("status", "error_code", "cls"),
    [(401, "invalid_api_key", "invalid_api_key"), (429, None, "429"), (None, None, None)],
)
def test_class_is_the_error_code_or_the_status(
    pd: FakePagerDuty, status: int | None, error_code: str | None, cls: str | None
) -> None:
    """payload.class: the error code, else the HTTP status, else left out."""
    notifier(pd).send(notification(status=status, error_code=error_code), ATTEMPT)
    assert pd.wait_for_events(1)[0]["payload"].get("class") == cls


def test_a_long_title_is_cut_to_pagerdutys_limit(pd: FakePagerDuty) -> None:
    """summary is at most 1024 characters (PagerDuty refuses longer), ending in an ellipsis."""
    notifier(pd).send(notification(title="x" * 5000), ATTEMPT)
    summary = pd.wait_for_events(1)[0]["payload"]["summary"]
    assert len(summary) == SUMMARY_LIMIT and summary.endswith("…")


def test_an_overlong_episode_key_is_hashed_the_same_each_time() -> None:
    """dedup_key is at most 255 characters: a longer episode key becomes its stable hash."""
    n = notification(fingerprint="f" * 300)
    assert len(dedup_key(n)) <= DEDUP_KEY_LIMIT
    assert dedup_key(n) == dedup_key(notification("resolved", fingerprint="f" * 300))
    assert dedup_key(notification()) == episode_key(notification())


def test_a_backlog_summary_is_a_change_event_with_its_items(pd: FakePagerDuty) -> None:
    """backlog → /v2/change/enqueue with summary, source, timestamp and the items it covers;
    no incident is opened."""
    items = ({"count": 4, "title": "Rate limited", "category": "rate_limit", "files": ["a"]},)
    notifier(pd).send(notification("backlog", title="7 errors while stopped", items=items), ATTEMPT)
    [change] = pd.wait_for_change_events(1)
    assert change["payload"]["summary"] == "7 errors while stopped"
    assert change["payload"]["timestamp"] == "2026-12-07T01:05:00Z"
    assert change["payload"]["custom_details"]["items"] == [dict(items[0])]
    assert pd.incidents() == [] and pd.events() == []


@pytest.mark.parametrize(
    ("events_url", "expected"),
    [
        (
            "https://events.pagerduty.com/v2/enqueue",
            "https://events.pagerduty.com/v2/change/enqueue",
        ),
        ("https://proxy.local/pd/v2/enqueue/", "https://proxy.local/pd/v2/change/enqueue"),
        ("https://proxy.local/hook", "https://proxy.local/v2/change/enqueue"),
    ],
)
def test_the_change_events_url_sits_beside_the_events_url(events_url: str, expected: str) -> None:
    """/v2/enqueue becomes /v2/change/enqueue, a proxy's prefix kept."""
    assert change_url(events_url) == expected


# --- one problem, one incident --------------------------------------------------------------


def test_one_problem_is_one_incident_from_trigger_to_resolve(pd: FakePagerDuty) -> None:
    """opened → updated → acknowledged → resolved is ONE incident under one dedup_key, ending
    resolved; the same problem coming back later (a new episode) is a new incident."""
    pager = notifier(pd)
    for kind in ("opened", "updated", "acknowledged", "resolved"):
        pager.send(notification(kind, count=5 if kind == "updated" else 3), ATTEMPT)
    key = episode_key(notification())
    assert pd.wait_for_incident(key, "resolved").number == 1
    [incident] = pd.incidents()
    assert incident.dedup_key == key and incident.status == "resolved"
    assert incident.actions == ("trigger", "trigger", "acknowledge", "resolve")
    assert incident.events[1]["payload"]["custom_details"]["count"] == 5

    pager.send(notification(first_seen="2026-12-07T03:00:00Z"), ATTEMPT)
    assert [i.status for i in pd.incidents()] == ["resolved", "triggered"]


def test_a_fleet_is_one_incident_whichever_host_sends(pd: FakePagerDuty) -> None:
    """A fleet's notifications share their episode: two hosts' triggers land on one incident,
    whose source names the hosts ("5 hosts (web-1, web-2, …)")."""
    fleet: dict[str, Any] = {"episode": "ep-42", "hosts": ("web-1", "web-2"), "host_count": 5}
    pager = notifier(pd)
    pager.send(notification(host="web-1", **fleet), ATTEMPT)
    pager.send(
        notification("updated", host="web-3", first_seen="2026-12-07T01:01:00Z", **fleet), ATTEMPT
    )
    [incident] = pd.incidents()
    assert incident.dedup_key == "fp-pd@ep-42" and incident.triggers == 2
    assert incident.source == "5 hosts (web-1, web-2, …)"
    details = incident.events[0]["payload"]["custom_details"]
    assert (details["hosts"], details["host_count"]) == (["web-1", "web-2"], 5)


def test_a_digest_sends_each_notification_in_turn(pd: FakePagerDuty) -> None:
    """send_digest (never asked for: threshold 0) still sends one event per notification."""
    pager = notifier(pd)
    assert pager.digest_threshold == 0
    pager.send_digest([notification(), notification(fingerprint="fp-2")], ATTEMPT)
    assert [e["dedup_key"] for e in pd.events()] == [
        f"fp-pd@{FIRST_SEEN}",
        f"fp-2@{FIRST_SEEN}",
    ]


def test_it_is_a_pacing_never_editing_notifier() -> None:
    """Paced under PagerDuty's ~120 events a minute per key; keeps nothing, never resends."""
    pager = PagerDutyNotifier(ROUTING_KEY)
    assert pager.name == "pagerduty" and pager.min_interval == MIN_INTERVAL == 0.5
    assert pager.edits_messages is False and pager.resend_interval == 0.0
    assert pager.describe() == "PagerDuty Events API v2 (events.pagerduty.com)"


# --- refusals: retry, park, give up ------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["", "short", ROUTING_KEY[:-1] + "-", ROUTING_KEY + "0", "R0UT1NGKEYFAKE PAGERDUTY00000001"],
)
def test_check_refuses_a_malformed_key_naming_where_it_is_set(key: str) -> None:
    """check() (test-alert, check-config): not 32 letters and digits → PermanentDeliveryError
    naming pagerduty.routing_key, PAGERDUTY_ROUTING_KEY and the credential, never the key."""
    with pytest.raises(PermanentDeliveryError) as caught:
        PagerDutyNotifier(key).check()
    text = str(caught.value)
    for where in ("pagerduty.routing_key", "PAGERDUTY_ROUTING_KEY", "pagerduty-routing-key"):
        assert where in text
    assert not key or key not in text


def test_check_passes_a_well_formed_key_and_says_what_it_checked() -> None:
    """A well-formed key: check() says what it checked, without the key."""
    said = PagerDutyNotifier(ROUTING_KEY).check()
    assert "32" in said and ROUTING_KEY not in said


@pytest.mark.parametrize("answer", ["text", "json"])
def test_an_unknown_key_is_parked_with_pagerdutys_words(answer: Literal["text", "json"]) -> None:
    """A well-formed key PagerDuty does not know: 400 "Invalid routing key" (plain text, or in
    the invalid-event JSON) → PermanentDeliveryError (parked), not MessageRejected, carrying
    PagerDuty's words and what to do."""
    other = "0THERKEY0000000000000000000000AB"
    with (
        FakePagerDuty(unknown_key_answer=answer) as fake,
        pytest.raises(PermanentDeliveryError) as caught,
    ):
        notifier(fake, other).send(notification(), ATTEMPT)
    assert not isinstance(caught.value, MessageRejected)
    assert "Invalid routing key" in str(caught.value)
    assert "pagerduty.routing_key" in str(caught.value) and other not in str(caught.value)


def test_a_malformed_key_sent_anyway_is_parked_with_pagerdutys_errors(pd: FakePagerDuty) -> None:
    """PagerDuty's 400 about the key's length → PermanentDeliveryError with its errors."""
    with pytest.raises(PermanentDeliveryError) as caught:
        notifier(pd, "abc-123").send(notification(), ATTEMPT)
    assert not isinstance(caught.value, MessageRejected)
    assert "Length of 'routing_key' is incorrect (should be 32 characters)" in str(caught.value)
    assert "abc-123" not in str(caught.value)


def test_an_invalid_event_is_given_up_and_the_next_goes_on(pd: FakePagerDuty) -> None:
    """A 400 about the event itself (an empty summary) → MessageRejected with PagerDuty's
    errors: that message is given up, the next one is accepted."""
    pager = notifier(pd)
    with pytest.raises(MessageRejected) as caught:
        pager.send(notification(title=""), ATTEMPT)
    assert "'payload.summary' is missing or blank" in str(caught.value)
    pager.send(notification(), ATTEMPT)
    assert len(pd.events()) == 1


@pytest.mark.parametrize(
    ("script", "retry_after"),
    [
        (lambda pd: pd.faults.fail_next(1, 500), None),
        (lambda pd: pd.faults.fail_next(1, 503), None),
        (lambda pd: pd.faults.rate_limit_next(1, retry_after=7), 7.0),
        (lambda pd: pd.faults.drop_next(1), None),
    ],
    ids=["500", "503", "429", "dropped"],
)
def test_outages_and_rate_limits_are_retried(
    pd: FakePagerDuty, script: Any, retry_after: float | None
) -> None:
    """5xx, 429 (honouring Retry-After) and a dropped connection → TransientDeliveryError;
    the retry goes through."""
    script(pd)
    pager = notifier(pd)
    with pytest.raises(TransientDeliveryError) as caught:
        pager.send(notification(), ATTEMPT)
    assert caught.value.retry_after == retry_after
    pager.send(notification(), ATTEMPT)
    assert len(pd.events()) == 1


def test_a_kind_without_an_events_api_action_is_given_up(pd: FakePagerDuty) -> None:
    """A notification kind this notifier does not know is refused as a message (reported once
    by the outbox), never guessed into a page."""
    with pytest.raises(MessageRejected, match="'silenced'"):
        notifier(pd).send(notification("silenced"), ATTEMPT)
    assert pd.requests() == []


def test_a_wrong_events_url_is_parked_naming_the_setting(pd: FakePagerDuty) -> None:
    """404 (the URL is not PagerDuty's enqueue) → PermanentDeliveryError naming events_url."""
    pager = PagerDutyNotifier(ROUTING_KEY, events_url=f"{pd.origin}/v1/enqueue", timeout=5.0)
    with pytest.raises(PermanentDeliveryError, match=r"pagerduty\.events_url"):
        pager.send(notification(), ATTEMPT)


# --- secrets -----------------------------------------------------------------------------------


def test_the_routing_key_is_in_no_text_and_only_in_its_field(pd: FakePagerDuty) -> None:
    """The routing key appears in no exception text, describe() or check(), and in the body
    only as routing_key."""
    pd.faults.fail_next(1, 500).rate_limit_next(1).respond_error_next(1, "bad event")
    pager = notifier(pd)
    texts = [pager.describe(), pager.check()]
    for _ in range(3):
        with pytest.raises(DeliveryError) as caught:
            pager.send(notification(), ATTEMPT)
        texts.append(str(caught.value))
    pager.send(notification(), ATTEMPT)
    assert all(ROUTING_KEY not in t for t in texts), texts
    body = dict(pd.events()[0])
    assert body.pop("routing_key") == ROUTING_KEY
    assert ROUTING_KEY not in json.dumps(body)


def test_a_key_in_log_text_is_redacted_before_pagerduty_sees_it(pd: FakePagerDuty) -> None:
    """Log text carrying an OpenAI key (title, excerpt, message, fixes, files, context) reaches
    PagerDuty masked, in trigger and change events alike."""
    leaky: dict[str, Any] = {
        "title": f"Invalid key {SECRET}",
        "excerpt": f"Incorrect API key provided: {SECRET}",
        "message": f"key {SECRET} refused",
        "fixes": (f"revoke {SECRET}",),
        "files": (f"/logs/{SECRET}.log",),
        "context": f"probe said {SECRET}",
    }
    pager = notifier(pd)
    pager.send(notification(**leaky), ATTEMPT)
    pager.send(notification("backlog", **leaky), ATTEMPT)
    received = [r.body.decode("utf-8") for r in pd.requests()]
    assert len(received) == 2 and all(r.status == 202 for r in pd.requests())
    assert all(SECRET not in body for body in received)
    assert all("sk-…a1B2" in body for body in received)
