"""Slack delivery end to end: the daemon as a subprocess, a Slack Web API server on 127.0.0.1."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from oai400d.errors import PermanentDeliveryError
from oai400d.model import Notification
from oai400d.notify import Attempt, Delivered, MessageAddress, OutboxWorker
from oai400d.notify.base import MessageRejected, episode_key
from oai400d.notify.slack import PERMANENT, SlackWebhookNotifier, SlackWebNotifier
from oai400d.state import SLACK_TARGET, State
from oai400d.wiring import PARKED_RETRY_VARIABLE

from .daemon_harness import STAMP, DaemonProcess, append, status, wait_until, write_config
from .fakes.slack import FakeSlack
from .support import oai400d

SECRET = "sk-proj-" + "S3CR3T" * 7 + "zq9X"


def model_error(model: str, extra: str = "") -> str:
    """An error line whose fingerprint differs per model (one alert per model)."""
    return (
        f"{STAMP}:01,123 ERROR worker: openai.NotFoundError: Error code: 404 - {{'error': "
        f"{{'message': 'The model `{model}` does not exist or you do not have access to it.{extra}', "
        "'type': 'invalid_request_error', 'param': None, 'code': 'model_not_found'}}"
    )


def slack_daemon(
    tmp_path: Path, slack: FakeSlack, alerts: dict[str, str] | None = None, **slack_keys: object
) -> tuple[Path, DaemonProcess]:
    settings = {"base_url": slack.base_url, "channel": "#openai-alerts", "retry_max": "2s"}
    settings.update(slack_keys)  # type: ignore[arg-type]
    config = write_config(tmp_path, slack=settings, alerts=alerts or {})
    daemon = DaemonProcess(config, env={"SLACK_BOT_TOKEN": slack.token})
    daemon.wait_ready()
    return config, daemon


def top_level(slack: FakeSlack) -> list:  # type: ignore[type-arg]
    return [m for m in slack.messages() if not m.is_reply]


def test_one_problem_is_one_message_updated_then_resolved_in_its_thread(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    """opened posts one message; more errors edit it (chat.update); resolved turns it green and
    adds a threaded reply saying how long it lasted and how many errors it counted."""
    _, daemon = slack_daemon(
        tmp_path, fake_slack, {"group_interval": "500ms", "resolve_after": "3s"}
    )
    log = tmp_path / "logs" / "app.log"
    try:
        append(log, model_error("gpt-9"))
        (post,) = fake_slack.wait_for_posts(1, timeout=10)
        blocks = post.params["blocks"]
        assert (
            blocks[0]["type"] == "header" and ":large_yellow_circle:" in blocks[0]["text"]["text"]
        )
        assert "gpt-9" in json.dumps(post.params) and "does not exist" in json.dumps(post.params)
        append(log, model_error("gpt-9"), model_error("gpt-9"))
        wait_until(
            lambda: any("3" in json.dumps(u.params) for u in fake_slack.updates()),
            what="an update with the new count",
        )
        wait_until(
            lambda: fake_slack.replies(
                top_level(fake_slack)[0].channel, top_level(fake_slack)[0].ts
            ),
            timeout=15,
            what="the resolved reply",
        )
        (message,) = top_level(fake_slack)
        assert ":large_green_circle:" in json.dumps(message.blocks)
        (reply,) = fake_slack.replies(message.channel, message.ts)
        assert "3" in reply.text and "esolved" in reply.text
    finally:
        daemon.stop()


def test_log_text_cannot_ping_or_link_and_no_secret_reaches_slack(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    """`<!channel>`, `<@U123>` and `<https://x|y>` from a log show literally; keys and the Slack
    token appear in no request, no log line and no output."""
    _, daemon = slack_daemon(tmp_path, fake_slack)
    try:
        append(
            tmp_path / "logs" / "app.log",
            model_error("gpt-9", f" <!channel> <@U123> <https://x|y> <!here> key {SECRET}"),
        )
        fake_slack.wait_for_posts(1, timeout=10)
        for request in fake_slack.requests():
            raw = request.body.decode("utf-8", "replace")
            body = json.dumps(request.params)
            for forbidden in (
                "<!channel>",
                "<@U123>",
                "<https://x|y>",
                "<!here>",
                SECRET,
                "S3CR3TS3CR3T",
            ):
                assert forbidden not in raw and forbidden not in body, forbidden
        assert "&lt;!channel&gt;" in json.dumps(fake_slack.posts()[0].params)
    finally:
        daemon.stop()
    everything = daemon.log() + "\n".join(daemon.stdout)
    assert fake_slack.token not in everything and SECRET not in everything


# How long Slack stays down: a minute for the acceptance run (OAI400D_TEST_SLACK_OUTAGE_S=60),
# 20 s in the suite (several retries each way; the suite must stay under 5 minutes).
SLACK_OUTAGE_S = float(os.environ.get("OAI400D_TEST_SLACK_OUTAGE_S", "20"))


def test_slack_down_for_a_minute_then_everything_arrives_once_in_order(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    """Slack down for SLACK_OUTAGE_S (60 s for the acceptance run) while 20 distinct alerts
    open (and update): once it is back, all 20 arrive, each alert's messages in order, none
    twice."""
    config, daemon = slack_daemon(
        tmp_path, fake_slack, {"group_interval": "1s"}, max_messages_per_second=20
    )
    log = tmp_path / "logs" / "app.log"
    try:
        fake_slack.down()
        went_down = time.monotonic()
        append(log, *[model_error(f"gpt-down-{i}") for i in range(20)])
        wait_until(lambda: status(config)["outbox_depth"] >= 20, what="20 queued notifications")
        append(log, *[model_error(f"gpt-down-{i}") for i in range(20)])  # updates queue behind
        wait_until(lambda: status(config)["outbox_depth"] >= 40, what="40 queued notifications")
        wait_until(
            lambda: time.monotonic() - went_down >= SLACK_OUTAGE_S
            and len(fake_slack.requests()) >= 2,
            timeout=SLACK_OUTAGE_S + 30,
            what="the outage, with retries",
        )
        fake_slack.up()
        wait_until(
            lambda: status(config)["outbox_depth"] == 0, timeout=60, what="the outbox to drain"
        )
    finally:
        daemon.stop()
    posts = fake_slack.posts()
    models = [json.dumps(p.params).split("gpt-down-")[1].split("`")[0] for p in posts]
    assert sorted(models, key=int) == [str(i) for i in range(20)]  # all 20, none twice
    assert len(top_level(fake_slack)) == 20
    first_post = {m: p.received_at for m, p in zip(models, posts, strict=True)}
    for update in fake_slack.updates():
        model = json.dumps(update.params).split("gpt-down-")[1].split("`")[0]
        assert update.received_at > first_post[model]  # the update came after its alert's post


def test_kill_9_between_post_and_bookkeeping_does_not_post_twice(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    """A post that reached Slack but whose answer never came back (kill -9) is found again by
    its metadata after the restart: one message, not two."""
    config, daemon = slack_daemon(tmp_path, fake_slack)
    log = tmp_path / "logs" / "app.log"
    append(log, model_error("gpt-first"))
    fake_slack.wait_for_posts(1, timeout=10)  # the channel id is known from now on
    fake_slack.slow_next(1, delay=30)
    append(log, model_error("gpt-slow"))
    wait_until(lambda: len(top_level(fake_slack)) == 2, what="the slow post stored by Slack")
    daemon.kill()
    again = DaemonProcess(config, env={"SLACK_BOT_TOKEN": fake_slack.token})
    try:
        again.wait_ready()
        wait_until(lambda: status(config)["outbox_depth"] == 0, timeout=20, what="the retry")
    finally:
        again.stop()
    assert len(top_level(fake_slack)) == 2
    assert sum("gpt-slow" in json.dumps(p.params) for p in fake_slack.posts()) == 1


def test_rate_limits_are_respected(tmp_path: Path, fake_slack: FakeSlack) -> None:
    """429 with Retry-After: the next attempt waits at least that long."""
    _, daemon = slack_daemon(tmp_path, fake_slack)
    try:
        fake_slack.rate_limit_next(2, retry_after=2)
        append(tmp_path / "logs" / "app.log", model_error("gpt-9"))
        fake_slack.wait_for_posts(1, timeout=20)
    finally:
        daemon.stop()
    attempts = [r.received_at for r in fake_slack.requests("chat.postMessage")]
    assert len(attempts) == 3
    assert attempts[1] - attempts[0] >= 1.9 and attempts[2] - attempts[1] >= 1.9


def test_a_storm_of_distinct_errors_folds_into_a_digest(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    """1,000 distinct errors in 10 s: at most about one message per second, folded into digests
    rather than a thousand messages."""
    config, daemon = slack_daemon(tmp_path, fake_slack)
    log = tmp_path / "logs" / "app.log"
    started = time.monotonic()
    try:
        for second in range(10):
            append(log, *[model_error(f"gpt-storm-{second * 100 + i}") for i in range(100)])
            wait_until(lambda s=second: time.monotonic() - started >= s + 1, what="pace")
        wait_until(
            lambda: status(config)["outbox_depth"] == 0, timeout=60, what="the outbox to drain"
        )
    finally:
        daemon.stop()
    posts = fake_slack.posts()
    assert len(posts) <= 40, len(posts)
    gaps = [b.received_at - a.received_at for a, b in itertools.pairwise(posts)]
    # The pace counts from the answer to the previous post, which Slack sent after receiving
    # it: Slack receives the next one at least a full interval later, whatever the load.
    assert all(gap >= 0.99 for gap in gaps), gaps
    text = json.dumps([p.params for p in posts])
    assert sum(f"gpt-storm-{i}`" in text or f"gpt-storm-{i} " in text for i in range(1000)) > 0
    # Folded: with 1,000 alerts in at most 40 posts, digests list some and count the rest.
    assert re.search(r"and [\d,]+ more", text), text[:2000]


def test_webhook_mode_posts_new_messages_and_falls_back_to_plain_text(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    """With a webhook: opened is a message; when Slack rejects the blocks, plain text is sent."""
    config = write_config(tmp_path, slack={"retry_max": "2s"})
    fake_slack.webhook_faults.respond_error_next(1, "invalid_blocks")
    daemon = DaemonProcess(config, env={"SLACK_WEBHOOK_URL": fake_slack.webhook_url})
    try:
        daemon.wait_ready()
        append(tmp_path / "logs" / "app.log", model_error("gpt-9"))
        (post,) = fake_slack.wait_for_webhook_posts(1, timeout=10)
        assert not post.params.get("blocks") and "gpt-9" in post.params["text"]
    finally:
        daemon.stop()
    assert fake_slack.webhook_url not in daemon.log()


def test_permanent_errors_are_logged_once_with_what_to_do(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    """not_in_channel is permanent: logged once, clearly, and both alerts are kept (parked) for
    when the bot is invited, not dropped."""
    config, daemon = slack_daemon(tmp_path, fake_slack)
    try:
        fake_slack.respond_error_next(3, "not_in_channel")
        append(tmp_path / "logs" / "app.log", model_error("gpt-1"), model_error("gpt-2"))
        wait_until(lambda: "not_in_channel" in daemon.log(), what="the error in the log")
        wait_until(lambda: status(config)["outbox_parked"] == 2, what="both alerts parked")
    finally:
        daemon.stop()
    assert daemon.log().count("not_in_channel") == 1
    assert "/invite" in daemon.log()


def refused_then_accepted(
    config: Path,
    daemon: DaemonProcess,
    slack: FakeSlack,
    while_refused: Callable[[], object] = lambda: None,
    once_accepted: Callable[[], object] = lambda: None,
) -> None:
    """Slack refuses the daemon's token (revoked) for an alert: `status --json` shows the alert
    parked with the reason, and nothing reached Slack; then Slack accepts the token again and
    the alert reaches it, exactly once."""
    token = slack.token
    slack.set_token("xoxb-reinstalled-000000")  # the daemon's token gets invalid_auth from now
    append(config.parent / "logs" / "app.log", model_error("gpt-7"))
    (parked,) = wait_until(lambda: status(config)["parked"], what="the alert parked")
    assert "invalid_auth" in parked["reason"] and parked["kind"] == "opened"
    assert status(config)["outbox_parked"] == 1
    while_refused()
    assert slack.posts() == [] and slack.calls("chat.postMessage")
    slack.set_token(token)
    once_accepted()
    (post,) = slack.wait_for_posts(1, timeout=10)
    assert "model does not exist" in post.params["text"]
    after = wait_until(
        lambda: (s := status(config))["outbox_depth"] == 0 and s, what="the outbox emptied"
    )
    assert after["outbox_parked"] == 0 and after["parked"] == []
    assert len(slack.posts()) == 1 and len(top_level(slack)) == 1
    assert daemon.log().count("is refused") == 1  # said once, with what to do
    assert "systemctl reload oai400d" in daemon.log()


def test_a_refused_alert_is_parked_then_reaches_slack_once_after_a_reload(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    """invalid_auth parks the alert (the slow retry is minutes away); once Slack accepts the
    token, a reload (SIGHUP, no setting changed) sends it at once, once."""
    config, daemon = slack_daemon(tmp_path, fake_slack)
    try:
        refused_then_accepted(
            config, daemon, fake_slack, once_accepted=lambda: daemon.signal(signal.SIGHUP)
        )
    finally:
        daemon.stop()
    assert "trying the 1 parked notification(s) again" in daemon.log()


def test_a_refused_alert_reaches_slack_once_by_the_slow_retry_without_a_reload(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    """The same without a reload: the parked alert is tried again every PARKED_RETRY (a second
    here, through the test-only OAI400D_TEST_PARKED_RETRY), refused quietly while the token is
    bad, and delivered once by the first retry after Slack accepts it."""
    settings = {"base_url": fake_slack.base_url, "channel": "#openai-alerts", "retry_max": "2s"}
    config = write_config(tmp_path, slack=settings)
    env = {"SLACK_BOT_TOKEN": fake_slack.token, PARKED_RETRY_VARIABLE: "1"}
    daemon = DaemonProcess(config, env=env)
    daemon.wait_ready()
    try:
        refused_then_accepted(
            config,
            daemon,
            fake_slack,
            while_refused=lambda: wait_until(
                lambda: len(fake_slack.calls("chat.postMessage")) >= 2,
                what="a slow retry, refused again",
            ),
        )
    finally:
        daemon.stop()
    assert "trying the" not in daemon.log()  # no reload, no restart: the slow retry did it


def test_test_alert_checks_the_token_and_names_the_workspace(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    """`oai400d test-alert` runs auth.test, posts a sample and says where it went; a bad token
    is a clear failure with exit 1."""
    config = write_config(tmp_path, slack={"base_url": fake_slack.base_url})
    ok = oai400d("test-alert", "--config", str(config), env={"SLACK_BOT_TOKEN": fake_slack.token})
    assert ok.returncode == 0, ok.stderr
    out = ok.stdout.decode()
    assert "workspace" in out and "delivered to Slack channel #openai-alerts" in out
    assert len(fake_slack.posts()) == 1
    bad = oai400d(
        "test-alert", "--config", str(config), env={"SLACK_BOT_TOKEN": "xoxb-wrong-000000"}
    )
    assert bad.returncode == 1
    assert (
        "invalid_auth" in bad.stderr.decode()
        and "xoxb-wrong" not in bad.stderr.decode() + bad.stdout.decode()
    )


# --- the bot notifier in-process: what it posts and edits, given what the outbox kept -------

FIRST_SEEN = datetime.fromtimestamp(time.time() - 60, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Crash(Exception):
    """The daemon dying between a post and its bookkeeping (a kill -9)."""


def bot(slack: FakeSlack) -> SlackWebNotifier:
    return SlackWebNotifier(slack.token, "#openai-alerts", slack.base_url, 0.0, timeout=5.0)


def notification(
    kind: str = "opened", fingerprint: str = "fp-slack", episode: str = "", count: int = 3
) -> Notification:
    return Notification(
        kind=kind,
        fingerprint=fingerprint,
        category="model_not_found",
        severity="critical",
        title="Model not found",
        count=count,
        first_seen=FIRST_SEEN,
        last_seen=FIRST_SEEN,
        files=("/var/log/app.log",),
        fixes=("use a model the key can see",),
        docs=(),
        excerpt="The model `gpt-9` does not exist",
        new=2 if kind != "opened" else 0,
        duration_s=60.0 if kind == "resolved" else None,
        episode=episode,
    )


class CrashingBot:
    """The bot, but the daemon dies once Slack has the post and before the outbox books it."""

    name = SlackWebNotifier.name
    digest_threshold = 0
    min_interval = 0.0
    edits_messages = True
    resend_interval = 0.0

    def __init__(self, inner: SlackWebNotifier) -> None:
        self.inner = inner

    def send(self, notification: Notification, attempt: Attempt) -> Delivered:
        self.inner.send(notification, attempt)
        raise Crash

    def send_digest(self, notifications: Sequence[Notification], attempt: Attempt) -> Delivered:
        raise AssertionError("no digest here")

    def describe(self) -> str:
        return self.inner.describe()


def test_the_bot_keeps_its_addresses_where_the_fleet_and_the_buttons_look() -> None:
    """The outbox keeps the bot's message addresses under its name: the fleet sync and the
    Slack buttons read them under state.SLACK_TARGET."""
    assert SlackWebNotifier.name == SLACK_TARGET
    assert SlackWebNotifier.edits_messages and not SlackWebhookNotifier.edits_messages


def test_the_bot_posts_once_tagged_then_edits_that_message_and_replies_in_its_thread(
    fake_slack: FakeSlack,
) -> None:
    """opened posts a message carrying the entry's ref and the episode's key and returns its
    address; repeated, given that address, edits it and adds one reply in its thread."""
    notifier = bot(fake_slack)
    posted = notifier.send(notification(), Attempt("1"))
    assert posted.message is not None
    (message,) = fake_slack.messages()
    assert (message.channel, message.ts) == (posted.message.channel, posted.message.ts)
    assert message.metadata["event_payload"] == {"ref": "1", "key": episode_key(notification())}

    where = posted.message
    edited = notifier.send(notification("repeated", count=5), Attempt("2", where, where.channel))
    assert edited == posted
    (update,) = fake_slack.updates()
    assert update.params["ts"] == where.ts
    (reply,) = fake_slack.replies(where.channel, where.ts)
    assert "5" in reply.text
    assert len([m for m in fake_slack.messages() if not m.is_reply]) == 1


def test_a_retry_after_a_lost_answer_finds_its_post_instead_of_posting_again(
    fake_slack: FakeSlack,
) -> None:
    """Told that an earlier attempt of its entry began (its answer lost), the bot looks in the
    channel's history for a message carrying the entry's ref: found, it is the delivery; an
    entry whose ref no message carries is posted."""
    notifier = bot(fake_slack)
    began = time.time()
    first = notifier.send(notification(), Attempt("7"))
    assert first.message is not None
    channel = first.message.channel
    retry = notifier.send(notification(), Attempt("7", None, channel, earlier_attempt=began))
    assert retry == first
    assert len(fake_slack.posts()) == 1
    assert len(fake_slack.calls("conversations.history")) == 1

    other = notifier.send(
        notification(fingerprint="fp-other"), Attempt("8", None, channel, earlier_attempt=began)
    )
    assert other.message is not None and other.message != first.message
    assert len(fake_slack.posts()) == 2


def test_a_message_deleted_in_slack_is_posted_anew_and_the_reply_goes_to_the_new_one(
    fake_slack: FakeSlack,
) -> None:
    """chat.update answers message_not_found: the bot posts the message again and returns the
    new address (the outbox keeps it), and the resolved reply goes in the new message's thread."""
    notifier = bot(fake_slack)
    channel = fake_slack.channel_id("#openai-alerts")
    assert channel is not None
    gone = MessageAddress(channel, "1000000000.000100")
    result = notifier.send(notification("resolved"), Attempt("3", gone, channel))
    (new,) = [m for m in fake_slack.messages() if not m.is_reply]
    assert result.message == MessageAddress(channel, new.ts)
    (reply,) = fake_slack.replies(channel, new.ts)
    assert "esolved" in reply.text


def test_a_fleet_message_another_host_posted_is_found_by_its_episode_and_edited(
    fake_slack: FakeSlack,
) -> None:
    """A host taking over a fleet alert whose message's address never reached the store finds
    the message by the episode key it carries, edits it and returns its address: no second
    message."""
    posted = bot(fake_slack).send(notification(episode="fleet4"), Attempt("1"))
    assert posted.message is not None
    taken = bot(fake_slack).send(
        notification("updated", episode="fleet4", count=9),
        Attempt("5", None, posted.message.channel),
    )
    assert taken == posted
    assert len(fake_slack.posts()) == 1 and len(fake_slack.updates()) == 1


def test_the_outbox_and_the_bot_post_once_across_a_crash_between_post_and_bookkeeping(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    """In-process twin of the kill -9 test: the daemon dies after Slack stored a post and
    before the outbox booked it; after the restart the entry is delivered by finding that post
    (one message, not two), and its address is kept for the edits to come."""
    path = str(tmp_path / "state.db")
    state = State(path)
    state.commit(notifications=[notification(fingerprint="fp-first")])
    OutboxWorker(path, bot(fake_slack)).drain(state)  # the channel id is known from now on
    state.commit(notifications=[notification(fingerprint="fp-slow")])
    with pytest.raises(Crash):
        OutboxWorker(path, CrashingBot(bot(fake_slack))).drain(state)
    state.close()

    again = State(path)
    OutboxWorker(path, bot(fake_slack)).drain(again)
    assert again.outbox_depth() == 0
    top = [m for m in fake_slack.messages() if not m.is_reply]
    assert len(top) == 2 and len(fake_slack.posts()) == 2
    key = episode_key(notification(fingerprint="fp-slow"))
    assert again.delivery_target(key, SLACK_TARGET) == (top[1].channel, top[1].ts)
    again.close()


@pytest.mark.parametrize(
    ("error", "parks"),
    [
        ("invalid_auth", True),
        ("token_revoked", True),
        ("channel_not_found", True),
        ("not_in_channel", True),
        ("msg_too_long", False),
        ("no_text", False),
    ],
)
def test_a_refusal_for_the_token_or_channel_parks_and_one_for_the_message_is_given_up(
    fake_slack: FakeSlack, error: str, parks: bool
) -> None:
    """The bot says which a permanent error is: the token's or the channel's (the outbox parks
    the entry until that is fixed) or this message's own (MessageRejected: given up, the next
    ones go on); either way with what to do."""
    fake_slack.respond_error_next(2, error)  # the blocks, and the plain-text fallback
    with pytest.raises(PermanentDeliveryError) as raised:
        bot(fake_slack).send(notification(), Attempt("1"))
    assert isinstance(raised.value, MessageRejected) is not parks
    assert error in str(raised.value) and PERMANENT[error] in str(raised.value)
