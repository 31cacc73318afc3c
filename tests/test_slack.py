"""Slack delivery end to end: the daemon as a subprocess, a Slack Web API server on 127.0.0.1."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

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


def test_slack_down_for_a_minute_then_everything_arrives_once_in_order(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    """Slack down for 60 s while 20 distinct alerts open (and update): once it is back, all 20
    arrive, each alert's messages in order, none twice."""
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
            lambda: time.monotonic() - went_down >= 60 and len(fake_slack.requests()) >= 2,
            timeout=90,
            what="a minute of outage with retries",
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
    assert all(gap >= 0.9 for gap in gaps), gaps
    text = json.dumps([p.params for p in posts])
    assert sum(f"gpt-storm-{i}`" in text or f"gpt-storm-{i} " in text for i in range(1000)) > 0
    assert "more" in text or len(posts) < 1000


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
    """not_in_channel is permanent: logged once, clearly, and the outbox keeps moving."""
    config, daemon = slack_daemon(tmp_path, fake_slack)
    try:
        fake_slack.respond_error_next(3, "not_in_channel")
        append(tmp_path / "logs" / "app.log", model_error("gpt-1"), model_error("gpt-2"))
        wait_until(lambda: "not_in_channel" in daemon.log(), what="the error in the log")
        wait_until(lambda: status(config)["outbox_depth"] == 0, what="the outbox to move on")
    finally:
        daemon.stop()
    assert daemon.log().count("not_in_channel") == 1
    assert "/invite" in daemon.log()


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
