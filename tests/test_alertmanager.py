"""The Alertmanager notifier against a fake Alertmanager on 127.0.0.1 (tests/fakes/alertmanager.py):
labels that stay one alert, annotations, firing and resolved, digests, auth, error mapping."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from oai400d.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from oai400d.model import Notification
from oai400d.notify.alertmanager import AlertmanagerNotifier, labels_of
from oai400d.notify.base import Attempt, Delivered, MessageRejected

from .fakes.alertmanager import FakeAlertmanager, parse_time
from .samples import opened

T0 = datetime(2026, 11, 25, 11, 0, 1, tzinfo=UTC).timestamp()  # the sample's last_seen
FIRST_SEEN = datetime(2026, 11, 25, 10, 0, 1, tzinfo=UTC).timestamp()
ATTEMPT = Attempt("entry-1")
PASSWORD = "pa55-w0rd-" + "Q" * 12
TOKEN = "am-token-" + "Z" * 20
KEY = "sk-proj-" + "S3CR3T" * 7 + "zq9X"


class Clock:
    """A clock the notifier and the fake share; tests move it."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def am(clock: Clock) -> Iterator[FakeAlertmanager]:
    with FakeAlertmanager(clock=clock) as fake:
        yield fake


def notifier(am: FakeAlertmanager, clock: Clock, **kwargs: Any) -> AlertmanagerNotifier:
    return AlertmanagerNotifier(am.origin + "/", timeout=2.0, clock=clock, **kwargs)


def fleet(**changes: Any) -> Notification:
    base = {
        "host": "web-1",
        "hosts": ("web-1", "web-2", "web-3", "web-4", "web-5"),
        "host_count": 5,
        "episode": "3f9c0a1b2d4e@2026-11-25T10:00:01Z",
    }
    return opened(**{**base, **changes})


def probe() -> Notification:
    return opened(
        fingerprint="probe:api_key",
        rule="probe.api_key",
        category="auth.invalid_api_key",
        title="Probe api_key: the key was refused",
        files=(),
        docs=(),
        excerpt="",
        context="status page: all systems operational",
    )


# --- the alert ----------------------------------------------------------------------------------

BASE_LABELS = {
    "alertname": "OpenAIAPIError",
    "category": "auth.invalid_api_key",
    "severity": "critical",
    "fingerprint": "3f9c0a1b2d4e",
}


@pytest.mark.parametrize(
    ("notification", "labels", "annotations"),
    [
        pytest.param(
            opened(),
            {**BASE_LABELS, "source": "file", "host": "web-1"},
            {
                "summary": "OpenAI rejected the API key",
                "description": "auth.invalid_api_key on web-1: Incorrect API key provided: "
                "sk-…a1B2. Fix: Check that OPENAI_API_KEY in the failing process holds a "
                "current key.",
                "runbook_url": "https://platform.openai.com/docs/guides/error-codes",
                "docs": "https://platform.openai.com/docs/guides/error-codes\n"
                "https://platform.openai.com/docs/api-reference/authentication",
                "count": "1204",
                "first_seen": "2026-11-25T10:00:01Z",
                "last_seen": "2026-11-25T11:00:01Z",
                "hosts": "web-1",
                "files": "/var/log/myapp/worker.log\n/var/log/myapp/api.log",
            },
            id="a file's alert on one host",
        ),
        pytest.param(
            opened(files=("journal:api", "/var/log/app.log")),
            {**BASE_LABELS, "source": "journal:api", "host": "web-1"},
            {"files": "journal:api\n/var/log/app.log"},
            id="a journal's alert: source is its first place",
        ),
        pytest.param(
            probe(),
            {**BASE_LABELS, "fingerprint": "probe:api_key", "source": "probe", "host": "web-1"},
            {
                "summary": "Probe api_key: the key was refused",
                "context": "status page: all systems operational",
            },
            id="a probe's alert",
        ),
        pytest.param(
            fleet(),
            {**BASE_LABELS, "source": "file", "scope": "fleet"},
            {
                "hosts": "web-1, web-2, web-3, web-4, web-5",
                "host_count": "5",
                "description": "auth.invalid_api_key on 5 host(s): Incorrect API key provided: "
                "sk-…a1B2. Fix: Check that OPENAI_API_KEY in the failing process holds a "
                "current key.",
            },
            id="a fleet alert: no host label, the hosts in annotations",
        ),
        pytest.param(
            fleet(hosts=("web-1", "web-2"), host_count=40),
            {**BASE_LABELS, "source": "file", "scope": "fleet"},
            {"hosts": "web-1, web-2, +38 more", "host_count": "40"},
            id="a fleet alert naming a few of its hosts",
        ),
        pytest.param(
            opened(kind="acknowledged", acked_by="alice", acked_at="2026-11-25T10:30:00Z"),
            {**BASE_LABELS, "source": "file", "host": "web-1"},
            {"acknowledged_by": "alice", "acknowledged_at": "2026-11-25T10:30:00Z"},
            id="an acknowledged alert",
        ),
    ],
)
def test_notification_becomes_labels_and_annotations(
    am: FakeAlertmanager,
    clock: Clock,
    notification: Notification,
    labels: dict[str, str],
    annotations: dict[str, str],
) -> None:
    """Pins the payload: exactly these labels (the alert's identity), and these annotations
    among the others; fixes one per line; startsAt is first_seen; a firing alert expires
    4 × resend_interval after the post."""
    assert notifier(am, clock).send(notification, ATTEMPT) == Delivered()
    (post,) = am.wait_for_posts(1)
    (sent,) = post.alerts
    assert sent["labels"] == labels
    assert {k: sent["annotations"].get(k) for k in annotations} == annotations
    assert sent["annotations"]["fixes"] == "\n".join(notification.fixes)
    assert parse_time(sent["startsAt"]) == FIRST_SEEN
    assert parse_time(sent["endsAt"]) == T0 + 4 * 60.0
    assert [a.labels for a in am.firing()] == [labels]


def test_opened_then_resolved_is_one_alert_firing_then_resolved(
    am: FakeAlertmanager, clock: Clock
) -> None:
    """opened → the alert fires; resolved (later, with more errors counted) → the same label
    set, endsAt = now: one alert in Alertmanager, resolved, startsAt kept from the first."""
    am_notifier = notifier(am, clock)
    am_notifier.send(opened(), ATTEMPT)
    assert len(am.firing()) == 1
    clock.now += 90
    am_notifier.send(opened(kind="resolved", count=1300, duration_s=3690.0), ATTEMPT)
    assert len(am.wait_for_posts(2)) == 2
    clock.now += 1
    (alert,) = am.alerts()
    assert not am.firing()
    assert alert.ends_at == T0 + 90
    assert alert.starts_at == FIRST_SEEN
    assert alert.annotations["count"] == "1300"


def test_resending_keeps_an_open_alert_firing_and_silence_lets_it_expire(
    am: FakeAlertmanager, clock: Clock
) -> None:
    """The outbox re-sends every resend_interval: each post pushes endsAt on, so the alert
    fires for as long as the problem lasts; once oai400d stops re-sending (stopped for good)
    it expires by itself 4 intervals after the last post."""
    am_notifier = notifier(am, clock, resend_interval=30.0)
    am_notifier.send(opened(), ATTEMPT)
    for _ in range(10):  # 5 minutes, far past 4 × 30 s
        clock.now += 30
        assert len(am.firing()) == 1
        am_notifier.send_digest([opened(kind="repeated")], ATTEMPT)
    last = clock.now
    clock.now = last + 4 * 30 - 1
    assert len(am.firing()) == 1
    clock.now = last + 4 * 30 + 1
    assert not am.firing() and len(am.alerts()) == 1


def test_no_resending_leaves_the_expiry_to_alertmanager(am: FakeAlertmanager, clock: Clock) -> None:
    """resend_interval 0 (never re-sent): no endsAt, so Alertmanager's resolve_timeout
    decides (a firing alert would otherwise end the moment it is posted)."""
    notifier(am, clock, resend_interval=0.0).send(opened(), ATTEMPT)
    (post,) = am.wait_for_posts(1)
    assert "endsAt" not in post.alerts[0]
    assert am.firing()[0].ends_at == T0 + am.resolve_timeout


def test_a_fleet_alert_is_one_alert_whatever_its_hosts(am: FakeAlertmanager, clock: Clock) -> None:
    """A 5-host fleet alert announced by one owner, then by another with 7 hosts, then
    resolved: one label set in Alertmanager, never one per host or per host count."""
    am_notifier = notifier(am, clock)
    am_notifier.send(fleet(host="web-1"), ATTEMPT)
    clock.now += 10
    am_notifier.send(
        fleet(kind="updated", host="web-3", hosts=("web-3", "web-6", "web-7"), host_count=7),
        ATTEMPT,
    )
    assert len(am.firing()) == 1
    clock.now += 10
    am_notifier.send(fleet(kind="resolved", host="web-2", host_count=7), ATTEMPT)
    clock.now += 1
    (alert,) = am.alerts()
    assert alert.labels.get("scope") == "fleet" and "host" not in alert.labels
    assert not am.firing()
    assert labels_of(fleet(host_count=5)) == labels_of(fleet(host_count=40, host="db-9"))


def test_a_digest_posts_once_and_only_the_last_notification_of_an_alert(
    am: FakeAlertmanager, clock: Clock
) -> None:
    """send_digest: one POST; opened then resolved of one fingerprint in the batch sends only
    the resolved; another alert of the batch goes in the same POST; a backlog posts nothing."""
    other = opened(fingerprint="0aa0bb0cc0dd", category="rate_limit", severity="warning")
    backlog = opened(kind="backlog", fingerprint="backlog", category="backlog")
    batch = [opened(), other, backlog, opened(kind="resolved")]
    notifier(am, clock).send_digest(batch, ATTEMPT)
    (post,) = am.wait_for_posts(1)
    assert [(a["labels"]["fingerprint"], a["endsAt"]) for a in post.alerts] == [
        ("0aa0bb0cc0dd", "2026-11-25T11:04:01.000Z"),
        ("3f9c0a1b2d4e", "2026-11-25T11:00:01.000Z"),
    ]


@pytest.mark.parametrize(
    "batch",
    [
        pytest.param([], id="empty"),
        pytest.param([opened(kind="backlog", fingerprint="backlog")], id="backlog only"),
    ],
)
def test_nothing_to_post_posts_nothing(
    am: FakeAlertmanager, clock: Clock, batch: list[Notification]
) -> None:
    """An empty digest, or one of history only (backlog), makes no request at all."""
    am_notifier = notifier(am, clock)
    assert am_notifier.send_digest(batch, ATTEMPT) == Delivered()
    for notification in batch:
        assert am_notifier.send(notification, ATTEMPT) == Delivered()
    assert am.requests() == []


def test_merged_ends_this_hosts_own_copy_and_the_fleet_alert_goes_on(
    am: FakeAlertmanager, clock: Clock
) -> None:
    """While the fleet store was away this host announced the alert itself (label host);
    when it is back its alert is merged into the fleet's (label scope=fleet): merged resolves
    the local copy, so Alertmanager is left with the fleet's one alert."""
    am_notifier = notifier(am, clock)
    am_notifier.send(opened(), ATTEMPT)
    clock.now += 30
    am_notifier.send_digest([opened(kind="merged"), fleet(kind="updated")], ATTEMPT)
    clock.now += 1
    assert [a.labels.get("scope") for a in am.firing()] == ["fleet"]
    assert [a.labels.get("host") for a in am.resolved()] == ["web-1"]


def test_log_text_is_masked_in_every_annotation(am: FakeAlertmanager, clock: Clock) -> None:
    """A key in the title, message, excerpt, fixes or context never reaches Alertmanager."""
    leaky = opened(
        title=f"bad key {KEY}",
        message=f"Incorrect API key provided: {KEY}",
        excerpt=f"Authorization: Bearer {KEY}",
        fixes=(f"replace {KEY}",),
        context=f"probe said {KEY}",
        files=(f"/var/log/{KEY}.log",),
    )
    notifier(am, clock).send(leaky, ATTEMPT)
    (post,) = am.wait_for_posts(1)
    assert KEY not in post.alerts[0]["annotations"].__repr__()
    assert KEY not in am.requests()[0].body.decode()
    assert "zq9X" in post.alerts[0]["annotations"]["summary"]  # masked, its tail shown


def test_huge_notification_is_taken(am: FakeAlertmanager, clock: Clock) -> None:
    """Oversized fields are cut for people (excerpt, files, fixes), and the post is taken."""
    from .samples import huge

    notifier(am, clock).send(huge(), ATTEMPT)
    (post,) = am.wait_for_posts(1)
    annotations = post.alerts[0]["annotations"]
    assert len(annotations["excerpt"]) <= 2000
    assert annotations["files"].endswith("(+480 more)")
    assert len(post.alerts[0]["annotations"]["fixes"].splitlines()) == 11


# --- auth ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fake_auth", "notifier_auth", "header"),
    [
        pytest.param(
            {"username": "oai", "password": PASSWORD},
            {"username": "oai", "password": PASSWORD},
            "Basic " + base64.b64encode(f"oai:{PASSWORD}".encode()).decode(),
            id="basic",
        ),
        pytest.param(
            {"bearer_token": TOKEN}, {"bearer_token": TOKEN}, f"Bearer {TOKEN}", id="bearer"
        ),
        pytest.param({}, {}, None, id="none"),
    ],
)
def test_auth_header_is_sent(
    clock: Clock, fake_auth: dict[str, str], notifier_auth: dict[str, str], header: str | None
) -> None:
    """Basic auth or a bearer token goes in Authorization on every request (check too)."""
    with FakeAlertmanager(clock=clock, **fake_auth) as am:
        am_notifier = notifier(am, clock, **notifier_auth)
        am_notifier.send(opened(), ATTEMPT)
        assert am_notifier.check() == "Alertmanager 0.28.1, cluster disabled"
        assert [r.header("authorization") for r in am.requests()] == [header, header]
        assert len(am.firing()) == 1


def test_basic_and_bearer_together_are_refused_without_showing_them() -> None:
    """Both kinds of credentials at once is a configuration mistake, named by its keys."""
    with pytest.raises(ValueError, match="bearer_token, not both") as raised:
        AlertmanagerNotifier("http://am:9093", username="u", password=PASSWORD, bearer_token=TOKEN)
    assert PASSWORD not in str(raised.value) and TOKEN not in str(raised.value)


# --- errors -------------------------------------------------------------------------------------


def _fail_with(status: int, error: str = "") -> Any:
    def arrange(am: FakeAlertmanager) -> None:
        if error:
            am.faults.respond_error_next(1, error, status)
        else:
            am.faults.fail_next(1, status)

    return arrange


@pytest.mark.parametrize(
    ("fake_auth", "notifier_auth", "arrange", "path", "error", "words"),
    [
        pytest.param(
            {},
            {},
            _fail_with(400, "start time must be before end time"),
            "",
            MessageRejected,
            ["HTTP 400", "start time must be before end time"],
            id="400: the message, with Alertmanager's reason",
        ),
        pytest.param(
            {},
            {},
            lambda am: am.faults.respond_error_next(1, "0.labels in body is required", 422),
            "",
            MessageRejected,
            ["HTTP 422", "0.labels in body is required"],
            id="422: the schema check",
        ),
        pytest.param(
            {"username": "oai", "password": "other"},
            {"username": "oai", "password": PASSWORD},
            None,
            "",
            PermanentDeliveryError,
            ["HTTP 401", "alertmanager.username and alertmanager.password"],
            id="401 with basic auth",
        ),
        pytest.param(
            {"bearer_token": "other"},
            {"bearer_token": TOKEN},
            None,
            "",
            PermanentDeliveryError,
            ["HTTP 401", "alertmanager.bearer_token"],
            id="401 with a token",
        ),
        pytest.param(
            {"bearer_token": TOKEN},
            {},
            None,
            "",
            PermanentDeliveryError,
            ["HTTP 401", "none is set"],
            id="401 without credentials",
        ),
        pytest.param(
            {},
            {"bearer_token": TOKEN},
            _fail_with(403),
            "",
            PermanentDeliveryError,
            ["HTTP 403", "alertmanager.bearer_token"],
            id="403",
        ),
        pytest.param(
            {},
            {},
            None,
            "/api/v2/alerts",
            PermanentDeliveryError,
            ["HTTP 404", "base URL", "http://alertmanager:9093", "API v1 is gone"],
            id="404: the URL is not the base URL",
        ),
        pytest.param(
            {},
            {"password": PASSWORD, "username": "u"},
            _fail_with(500),
            "",
            TransientDeliveryError,
            ["500"],
            id="500",
        ),
        pytest.param({}, {}, _fail_with(503), "", TransientDeliveryError, ["503"], id="503"),
        pytest.param(
            {},
            {},
            lambda am: am.faults.rate_limit_next(1, retry_after=7),
            "",
            TransientDeliveryError,
            ["429"],
            id="429",
        ),
        pytest.param(
            {},
            {"bearer_token": TOKEN},
            lambda am: am.faults.drop_next(1),
            "",
            TransientDeliveryError,
            ["could not be reached"],
            id="connection dropped",
        ),
    ],
)
def test_error_mapping(
    clock: Clock,
    fake_auth: dict[str, str],
    notifier_auth: dict[str, str],
    arrange: Any,
    path: str,
    error: type[DeliveryError],
    words: list[str],
) -> None:
    """Each answer → the DeliveryError that says whether a retry helps and what to fix, with
    no credential in its text."""
    with FakeAlertmanager(clock=clock, **fake_auth) as am:
        if arrange is not None:
            arrange(am)
        am_notifier = AlertmanagerNotifier(am.origin + path, clock=clock, **notifier_auth)
        where = f"Alertmanager (127.0.0.1:{am.port})"
        with pytest.raises(error) as raised:
            am_notifier.send(opened(), ATTEMPT)
    assert type(raised.value) is error
    text = str(raised.value)
    assert all(word in text for word in words), text
    assert text.startswith(where)
    assert PASSWORD not in text and TOKEN not in text
    if "429" in words:
        assert isinstance(raised.value, TransientDeliveryError)
        assert raised.value.retry_after == 7


def test_unreachable_is_transient() -> None:
    """Nothing listening: a retry may help."""
    with FakeAlertmanager() as am:
        origin = am.origin
    with pytest.raises(TransientDeliveryError, match="could not be reached"):
        AlertmanagerNotifier(origin, timeout=1.0).send(opened(), ATTEMPT)


def test_a_real_validation_refusal_is_rejected(am: FakeAlertmanager, clock: Clock) -> None:
    """The fake's own validation (here: endsAt before startsAt, which the notifier never sends
    but a clock set far back could make) is the 400 the notifier turns into MessageRejected."""
    answer = httpx.post(
        am.origin + "/api/v2/alerts",
        json=[
            {
                "labels": {"alertname": "x"},
                "startsAt": "2026-11-25T10:00:00Z",
                "endsAt": "2026-11-25T09:00:00Z",
            }
        ],
    )
    assert answer.status_code == 400 and answer.json() == "start time must be before end time"


# --- describe and check -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "described"),
    [
        ("http://alertmanager:9093", "Alertmanager (alertmanager:9093)"),
        ("https://am.example.com/", "Alertmanager (am.example.com)"),
        (f"http://oai:{PASSWORD}@am.internal:9093/prefix", "Alertmanager (am.internal:9093)"),
    ],
)
def test_describe_names_host_and_port_only(url: str, described: str) -> None:
    """describe(): where alerts go, never a credential (not even one written in the URL)."""
    am_notifier = AlertmanagerNotifier(url, username="oai", password=PASSWORD)
    assert am_notifier.describe() == described
    assert AlertmanagerNotifier(url, bearer_token=TOKEN).describe() == described


def test_check_refuses_what_is_not_alertmanager(clock: Clock) -> None:
    """check() on a server that is not Alertmanager (404 on /api/v2/status) says to fix
    alertmanager.url; with wrong credentials, which keys to fix."""
    with (
        FakeAlertmanager(clock=clock) as am,
        pytest.raises(PermanentDeliveryError, match=r"alertmanager\.url must be"),
    ):
        AlertmanagerNotifier(am.origin + "/nothing-here").check()
    with (
        FakeAlertmanager(clock=clock, bearer_token="other") as am,
        pytest.raises(PermanentDeliveryError, match=r"alertmanager\.bearer_token") as raised,
    ):
        AlertmanagerNotifier(am.origin, bearer_token=TOKEN).check()
    assert TOKEN not in str(raised.value)


# --- the fake itself ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"labels": {}}, "alerts in body must be of type array"),
        ([{"annotations": {}}], "0.labels in body is required"),
        ([{"labels": {"a": 1}}], "0.labels in body must be a map of strings"),
        ([{"labels": {"a": "b"}, "startsAt": "yesterday"}], "0.startsAt in body must be of type"),
    ],
)
def test_fake_refuses_what_alertmanager_refuses(
    am: FakeAlertmanager, body: Any, message: str
) -> None:
    """The fake's schema check answers 400 {"code": 400, "message": ...} and stores nothing."""
    answer = httpx.post(am.origin + "/api/v2/alerts", json=body)
    assert answer.status_code == 400
    assert answer.json()["message"].startswith(message)
    assert am.alerts() == []


def test_fake_stores_the_valid_alerts_of_a_partly_invalid_post(am: FakeAlertmanager) -> None:
    """As Alertmanager: valid alerts are stored, invalid ones named in the 400; empty label
    values dropped; no endsAt means now + resolve_timeout."""
    answer = httpx.post(
        am.origin + "/api/v2/alerts",
        json=[{"labels": {"alertname": "ok", "empty": ""}}, {"labels": {"bad-name": "x"}}],
    )
    assert answer.status_code == 400 and "invalid name" in answer.json()
    (alert,) = am.alerts()
    assert dict(alert.labels) == {"alertname": "ok"}
    assert alert.timeout and alert.firing(am.clock())
