"""The signed webhook notifier against a fake receiver on 127.0.0.1 that checks signatures as
the README tells a receiver to (tests/fakes/webhook.py)."""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from oai400d.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from oai400d.model import Notification
from oai400d.notify.base import Attempt, Delivered, MessageRejected
from oai400d.notify.console import ConsoleNotifier
from oai400d.notify.webhook import WebhookNotifier

from .fakes.webhook import FakeWebhook
from .samples import opened

ROOT = Path(__file__).resolve().parent.parent
# The README section holding the verification lines. The second path is the draft of that
# section, used until it is pasted into README.md.
README_CANDIDATES = (ROOT / "README.md",)
SECRET = "whsec-" + "Qx7" * 8
OPENAI_KEY = "sk-proj-" + "S3CR3T" * 7 + "zq9X"
HEADER_VALUE = "Bearer hdr-" + "V4LU3" * 5


@pytest.fixture
def hook() -> Iterator[FakeWebhook]:
    """A receiver holding SECRET, at /hooks/T0K3N."""
    with FakeWebhook(secret=SECRET) as fake:
        yield fake


def notifier_for(hook: FakeWebhook, **kwargs: Any) -> WebhookNotifier:
    kwargs.setdefault("secret", hook.secret)
    return WebhookNotifier("ops", hook.url, **kwargs)


def readme_verify() -> Callable[[bytes, str, str, bytes], bool]:
    """The README's `verify` function, run from the markdown as a reader would paste it."""
    pattern = re.compile(r"```python\n(import hashlib, hmac, time\n.*?def verify\(.*?)```", re.S)
    for path in README_CANDIDATES:
        if path.exists() and (found := pattern.search(path.read_text(encoding="utf-8"))):
            code = found.group(1)
            assert len(code.strip().splitlines()) <= 6, "the README promises five lines"
            namespace: dict[str, Any] = {}
            exec(compile(code, str(path), "exec"), namespace)
            return namespace["verify"]  # type: ignore[no-any-return]
    raise AssertionError(f"no verify() block in {[str(p) for p in README_CANDIDATES]}")


def console_json(notification: Notification) -> dict[str, Any]:
    stream = io.StringIO()
    ConsoleNotifier("json", stream).send(notification, Attempt("x"))
    return json.loads(stream.getvalue())  # type: ignore[no-any-return]


KINDS = [
    pytest.param(opened(), id="opened"),
    pytest.param(opened(kind="updated", new=7, count=1211), id="updated"),
    pytest.param(opened(kind="repeated", new=3), id="repeated"),
    pytest.param(opened(kind="resolved", duration_s=3600.0), id="resolved"),
    pytest.param(
        opened(kind="acknowledged", acked_by="ana", acked_at="2026-11-25T10:30:00Z"),
        id="acknowledged",
    ),
    pytest.param(
        opened(kind="opened", hosts=("web-1", "web-2"), host_count=5, episode="ep-1", note="n"),
        id="fleet",
    ),
    pytest.param(opened(kind="merged", episode="ep-1"), id="merged"),
    pytest.param(
        opened(
            kind="backlog",
            items=({"title": "t", "category": "rate_limit", "count": 4, "files": ["a.log"]},),
        ),
        id="backlog",
    ),
]


@pytest.mark.parametrize("notification", KINDS)
def test_body_is_the_console_json_plus_version(
    hook: FakeWebhook, notification: Notification
) -> None:
    """Each kind's body is the console's JSON object plus "version": 1, with the delivery id
    (the attempt's ref) and the kind as event; the notifier keeps nothing (Delivered())."""
    result = notifier_for(hook).send(notification, Attempt(ref="entry-17"))
    assert result == Delivered()
    (delivery,) = hook.wait_for_deliveries(1)
    assert delivery.body == {**console_json(notification), "version": 1}
    assert list(delivery.body)[-1] == "version"
    assert (delivery.id, delivery.event) == ("entry-17", notification.kind)
    assert delivery.headers["content-type"] == "application/json"


def test_the_notifier_protocol_values() -> None:
    """Named after its [[webhook]] table; posts every notification as its own request."""
    notifier = WebhookNotifier("ops", "https://hooks.example.com/x")
    assert (notifier.name, notifier.digest_threshold, notifier.min_interval) == (
        "webhook:ops",
        0,
        0.0,
    )
    assert (notifier.edits_messages, notifier.resend_interval) == (False, 0.0)


def test_signature_verifies_with_the_readme_lines_and_only_for_the_exact_body(
    hook: FakeWebhook,
) -> None:
    """The README's verify() accepts what was sent, and refuses a changed body, another
    secret, another timestamp and a request older than 5 minutes."""
    verify = readme_verify()
    notifier_for(hook).send(opened(), Attempt(ref="r1"))
    (d,) = hook.wait_for_deliveries(1)
    assert d.timestamp is not None and d.signature is not None
    assert d.signature.startswith("sha256=")
    assert abs(int(d.timestamp) - time.time()) < 5
    secret = SECRET.encode()
    assert verify(secret, d.timestamp, d.signature, d.raw)
    assert not verify(secret, d.timestamp, d.signature, d.raw.replace(b"1204", b"1205"))
    assert not verify(b"another secret", d.timestamp, d.signature, d.raw)
    assert not verify(secret, str(int(d.timestamp) + 1), d.signature, d.raw)
    assert not verify(secret, "", d.signature, d.raw)


def test_old_or_forged_requests_are_refused_by_a_receiver_following_the_readme() -> None:
    """A request signed 10 minutes ago, or with another secret, gets 401 from the receiver;
    the notifier says which [[webhook]] keys to check (the outbox parks it)."""
    with FakeWebhook(secret=SECRET) as hook:
        late = notifier_for(hook, clock=lambda: time.time() - 600)
        with pytest.raises(PermanentDeliveryError) as old:
            late.send(opened(), Attempt(ref="r1"))
        wrong = notifier_for(hook, secret="not the receiver's secret")
        with pytest.raises(PermanentDeliveryError) as forged:
            wrong.send(opened(), Attempt(ref="r2"))
        assert [r.answer["error"] for r in hook.refused()] == [
            "timestamp too old or in the future: a replayed request?",
            "bad signature",
        ]
        assert hook.deliveries() == []
    for error in (old.value, forged.value):
        assert not isinstance(error, MessageRejected)
        assert "[[webhook]] ops secret" in str(error)


def test_no_signature_headers_without_a_secret() -> None:
    """Without a secret: no timestamp and no signature, the rest as usual."""
    with FakeWebhook() as hook:
        WebhookNotifier("plain", hook.url).send(opened(), Attempt(ref="r1"))
        (d,) = hook.wait_for_deliveries(1)
    assert "x-oai400d-timestamp" not in d.headers and "x-oai400d-signature" not in d.headers
    assert (d.id, d.event) == ("r1", "opened")


def test_a_retry_carries_the_same_delivery_id_and_a_fresh_signature(hook: FakeWebhook) -> None:
    """A 503 then a retry of the same entry: two requests, one delivery id, each signed at its
    own time (so a late retry is not refused as a replay)."""
    now = [time.time() - 200]
    notifier = notifier_for(hook, clock=lambda: now[0])
    hook.faults.fail_next(1, 503)
    with pytest.raises(TransientDeliveryError):
        notifier.send(opened(), Attempt(ref="entry-9"))
    now[0] += 150
    notifier.send(opened(), Attempt(ref="entry-9", earlier_attempt=now[0] - 150))
    first, second = hook.wait_for_requests(2)
    assert first.header("x-oai400d-delivery") == second.header("x-oai400d-delivery") == "entry-9"
    assert (
        int(second.header("x-oai400d-timestamp") or 0)
        - int(first.header("x-oai400d-timestamp") or 0)
        == 150
    )
    assert [d.id for d in hook.distinct()] == ["entry-9"]


def test_configured_headers_are_sent_but_cannot_replace_the_protocol_ones() -> None:
    """Extra headers go out as configured; Content-Type and X-Oai400d-* stay ours."""
    extra = {
        "Authorization": HEADER_VALUE,
        "X-Team": "ml",
        "content-type": "text/plain",
        "X-Oai400d-Delivery": "forged",
        "x-oai400d-signature": "sha256=forged",
    }
    with FakeWebhook(secret=SECRET, expect_headers={"Authorization": HEADER_VALUE}) as hook:
        notifier_for(hook, headers=extra).send(opened(), Attempt(ref="r1"))
        (d,) = hook.wait_for_deliveries(1)
    assert d.headers["authorization"] == HEADER_VALUE and d.headers["x-team"] == "ml"
    assert d.headers["content-type"] == "application/json"
    assert d.id == "r1" and d.signature != "sha256=forged"


def test_a_missing_expected_header_is_a_configuration_error() -> None:
    """The receiver wants an Authorization header that is not configured: 401, parked,
    pointing at [[webhook]] NAME headers."""
    wanted = r"\[\[webhook\]\] ops secret .* headers"
    with (
        FakeWebhook(expect_headers={"Authorization": HEADER_VALUE}) as hook,
        pytest.raises(PermanentDeliveryError, match=wanted),
    ):
        WebhookNotifier("ops", hook.url).send(opened(), Attempt(ref="r1"))


ANSWERS = [
    # (status, error class, text the message must hold)
    (200, None, ""),
    (201, None, ""),
    (202, None, ""),
    (204, None, ""),
    (408, TransientDeliveryError, "answered 408"),
    (429, TransientDeliveryError, "answered 429"),
    (500, TransientDeliveryError, "answered 500"),
    (502, TransientDeliveryError, "answered 502"),
    (503, TransientDeliveryError, "answered 503"),
    (400, MessageRejected, "refused this notification's body"),
    (413, MessageRejected, "refused this notification's body"),
    (415, MessageRejected, "refused this notification's body"),
    (422, MessageRejected, "refused this notification's body"),
    (401, PermanentDeliveryError, "check [[webhook]] ops secret"),
    (403, PermanentDeliveryError, "check [[webhook]] ops secret"),
    (404, PermanentDeliveryError, "check [[webhook]] ops url"),
    (410, PermanentDeliveryError, "check [[webhook]] ops url"),
    (409, PermanentDeliveryError, "check [[webhook]] ops url, secret and headers"),
    (301, PermanentDeliveryError, "redirects are not followed"),
    (307, PermanentDeliveryError, "redirects are not followed"),
]


@pytest.mark.parametrize(("status", "error", "said"), ANSWERS, ids=[str(a[0]) for a in ANSWERS])
def test_each_answer_means_what_the_readme_says(
    hook: FakeWebhook, status: int, error: type[DeliveryError] | None, said: str
) -> None:
    """2xx delivered; 408/429/5xx retried; 400/413/415/422 give up this body only; other 4xx
    and redirects park it, saying which key to check, naming the webhook without its path."""
    notifier = notifier_for(hook)
    hook.respond(status)
    if error is None:
        assert notifier.send(opened(), Attempt(ref="r")) == Delivered()
        return
    with pytest.raises(DeliveryError) as caught:
        notifier.send(opened(), Attempt(ref="r"))
    assert type(caught.value) is error
    assert said in str(caught.value)
    assert str(caught.value).startswith(f"the webhook ops ({hook.origin})")
    assert "T0K3N" not in str(caught.value)


def test_rate_limit_passes_retry_after_on(hook: FakeWebhook) -> None:
    """429 with Retry-After: a TransientDeliveryError carrying it."""
    hook.faults.rate_limit_next(1, retry_after=7)
    with pytest.raises(TransientDeliveryError) as caught:
        notifier_for(hook).send(opened(), Attempt(ref="r"))
    assert caught.value.retry_after == 7


def test_no_answer_is_transient() -> None:
    """A dropped connection, or nobody listening, is retried."""
    with FakeWebhook() as hook:
        notifier = WebhookNotifier("ops", hook.url)
        hook.faults.drop_next(1)
        with pytest.raises(TransientDeliveryError):
            notifier.send(opened(), Attempt(ref="r"))
    with pytest.raises(TransientDeliveryError, match="could not be reached"):
        notifier.send(opened(), Attempt(ref="r"))  # the fake has stopped: connection refused


def test_digest_sends_each_in_turn_and_a_refused_one_does_not_hold_back_the_rest(
    hook: FakeWebhook,
) -> None:
    """send_digest: one request per notification in order, delivery ids ref/1, ref/2, … the
    same on a retry; a body refused (422) is reported after the others went."""
    notifier = notifier_for(hook)
    batch = [opened(fingerprint=f"fp{i}") for i in range(3)]
    assert notifier.send_digest(batch, Attempt(ref="d1")) == Delivered()
    assert [(d.id, d.body["fingerprint"]) for d in hook.wait_for_deliveries(3)] == [
        ("d1/1", "fp0"),
        ("d1/2", "fp1"),
        ("d1/3", "fp2"),
    ]
    hook.clear_requests()
    hook.faults.fail_next(1, 500)
    with pytest.raises(TransientDeliveryError):
        notifier.send_digest(batch, Attempt(ref="d2"))
    notifier.send_digest(batch, Attempt(ref="d2"))
    assert [d.id for d in hook.distinct()][-3:] == ["d2/1", "d2/2", "d2/3"]
    # The first is answered normally (a slow fault of no delay), the second refused.
    hook.faults.slow_next(1, delay=0.0).fail_next(1, 422)
    with pytest.raises(MessageRejected, match="answered 422"):
        notifier.send_digest(batch, Attempt(ref="d3"))
    assert [d.id for d in hook.deliveries()][-2:] == ["d3/1", "d3/3"]


def test_no_secret_path_query_or_header_value_in_describe_or_errors() -> None:
    """describe(), check() and every error name the webhook by scheme://host:port only, even
    when the receiver echoes the path and query of a URL holding a token and a password."""
    with FakeWebhook(secret=SECRET) as hook:
        origin = hook.origin
        url = f"http://user:pa55w0rd@127.0.0.1:{hook.port}/hooks/T0K3N?key=QU3RYT0K"
        notifier = WebhookNotifier(
            "ops", url, secret=SECRET, headers={"Authorization": HEADER_VALUE}
        )
        texts = [notifier.describe(), notifier.check()]
        for status in (404, 401, 400, 503, 301):
            hook.respond(status)
            with pytest.raises(DeliveryError) as caught:
                notifier.send(opened(), Attempt(ref="r"))
            texts.append(str(caught.value))
        echoed = [r.answer["error"] for r in hook.requests() if r.status == 404]
    assert "T0K3N" in echoed[0]  # the receiver did echo it: the notifier hid it
    assert texts[0] == f"the webhook ops ({origin})"
    for text in texts:
        for secret in ("T0K3N", "QU3RYT0K", "pa55w0rd", "user:", SECRET, HEADER_VALUE, "V4LU3"):
            assert secret not in text, (secret, text)


def test_check_says_what_is_configured_and_refuses_a_plainly_wrong_one() -> None:
    """check(): the origin, whether it is signed, how many extra headers; a URL that is not
    http(s), or a header httpx cannot send, is a PermanentDeliveryError naming the key (and
    send refuses the same way instead of retrying for ever)."""
    signed = WebhookNotifier("ops", "https://h.example/x", secret="s" * 20, headers={"A": "b"})
    assert (
        signed.check()
        == "POST to https://h.example, signed with HMAC-SHA256 (X-Oai400d-Signature), 1 extra header(s)"
    )
    assert "unsigned" in WebhookNotifier("ops", "http://h.example/x").check()
    wrong = [
        (WebhookNotifier("ops", "ftp://h.example/x"), "[[webhook]] ops url"),
        (WebhookNotifier("ops", "h.example/x"), "[[webhook]] ops url"),
        (
            WebhookNotifier("ops", "https://h/x", headers={"Bad Name": "v"}),
            "[[webhook]] ops headers",
        ),
        (
            WebhookNotifier("ops", "https://h/x", headers={"A": "line\nbreak"}),
            "[[webhook]] ops headers",
        ),
        (
            WebhookNotifier("ops", "https://h/x", headers={"A": "tok\u00e9n"}),
            "[[webhook]] ops headers",
        ),
    ]
    for notifier, key in wrong:
        with pytest.raises(PermanentDeliveryError, match=re.escape(key)) as caught:
            notifier.check()
        assert "line\nbreak" not in str(caught.value) and "tok\u00e9n" not in str(caught.value)
        with pytest.raises(PermanentDeliveryError, match=re.escape(key)):
            notifier.send(opened(), Attempt(ref="r"))
    assert WebhookNotifier("ops", "h.example/x").describe() == "the webhook ops (an invalid URL)"


def test_an_openai_key_in_log_text_is_masked_in_the_body(hook: FakeWebhook) -> None:
    """An sk- key in the title, message, excerpt, fixes, files or context never leaves."""
    leaky = opened(
        title=f"bad key {OPENAI_KEY}",
        message=f"Incorrect API key provided: {OPENAI_KEY}.",
        excerpt=f"openai.AuthenticationError: key={OPENAI_KEY}",
        fixes=(f"rotate {OPENAI_KEY}",),
        files=(f"/var/log/{OPENAI_KEY}.log",),
        context=f"key check: {OPENAI_KEY}",
    )
    notifier_for(hook).send(leaky, Attempt(ref="r"))
    (d,) = hook.wait_for_deliveries(1)
    assert OPENAI_KEY not in d.raw.decode() and "S3CR3T" not in d.raw.decode()
    assert "zq9X" in d.body["message"]  # masked to its last characters, as on the console
