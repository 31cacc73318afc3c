"""Acknowledge and Silence from Slack: the daemon as a subprocess, the Web API and a Socket Mode
websocket on 127.0.0.1, button presses pushed as Slack pushes them."""

from __future__ import annotations

import dataclasses
import itertools
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from oai400d.config import parse_settings, public_view
from oai400d.errors import ConfigError
from oai400d.notify.slack_blocks import render

from .daemon_harness import ERROR_LINE, DaemonProcess, append, status, wait_until, write_config
from .fakes.slack import FakeSlack, block_problems
from .fakes.slack_socket import block_action
from .samples import huge, opened

ALICE = "U0ALICE001"
MALLORY = "U0MALLORY1"
BUTTONS = ["oai400d_ack", "oai400d_silence_1h", "oai400d_silence_24h"]
_ids = itertools.count(1)


def start(
    tmp_path: Path, slack: FakeSlack, app_token: str | None = None, **slack_keys: Any
) -> tuple[Path, DaemonProcess]:
    settings = {"base_url": slack.base_url, "channel": "#openai-alerts", "retry_max": "2s"}
    settings.update(slack_keys)
    config = write_config(tmp_path, slack=settings)
    env = {"SLACK_BOT_TOKEN": slack.token}
    if app_token is not None:
        env["SLACK_APP_TOKEN"] = app_token
    daemon = DaemonProcess(config, env=env)
    daemon.wait_ready()
    return config, daemon


def alert_message(
    config: Path, tmp_path: Path, slack: FakeSlack
) -> tuple[str, str, str, list[dict[str, Any]]]:
    """Make an alert; (fingerprint, channel, ts, blocks) of its Slack message."""
    append(tmp_path / "logs" / "app.log", ERROR_LINE)
    (post,) = slack.wait_for_posts(1, timeout=8)
    # The daemon stores the message's ts when Slack has answered, before the entry is done.
    wait_until(lambda: status(config)["outbox_depth"] == 0, 8, "the post to be recorded")
    blocks = post.params["blocks"]
    actions = [b for b in blocks if b["type"] == "actions"]
    fingerprint = actions[0]["elements"][0]["value"] if actions else ""
    return fingerprint, post.answer["channel"], post.answer["ts"], blocks


def press(
    slack: FakeSlack, action: str, fingerprint: str, channel: str, ts: str, user: str = ALICE
) -> dict[str, Any]:
    envelope = block_action(
        f"env-{next(_ids)}", action, fingerprint, user, channel, ts, user_name="alice"
    )
    slack.sockets.push(envelope)
    slack.sockets.wait_for_ack(envelope["envelope_id"])
    return envelope


def refused(daemon: DaemonProcess, user: str, reason: str, count: int = 1) -> None:
    wait_until(
        lambda: (
            sum(
                1
                for line in daemon.log().splitlines()
                if "refused Slack" in line and user in line and reason in line
            )
            >= count
        ),
        8,
        f"{count} refusal(s) of {user}: {reason}",
    )


def test_buttons_then_an_allowed_ack_is_recorded_and_shown(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    """The alert message carries the 3 buttons; Acknowledge by an allowed user is acked at
    once, recorded (via slack, by that user) and shown on the message, whose Acknowledge
    button then goes; a user not in allowed_users is refused and nothing is stored."""
    config, daemon = start(tmp_path, fake_slack, fake_slack.app_token, allowed_users=[ALICE])
    try:
        fingerprint, channel, ts, blocks = alert_message(config, tmp_path, fake_slack)
        (actions,) = [b for b in blocks if b["type"] == "actions"]
        assert [e["action_id"] for e in actions["elements"]] == BUTTONS
        assert {e["value"] for e in actions["elements"]} == {fingerprint}
        fake_slack.sockets.wait_connected()

        press(fake_slack, "oai400d_ack", fingerprint, channel, ts, user=MALLORY)
        refused(daemon, MALLORY, "not allowed")
        assert status(config)["acks"] == []

        press(fake_slack, "oai400d_ack", fingerprint, channel, ts)
        acks = wait_until(lambda: status(config)["acks"], 8, "the ack in status")
        assert [(a["fingerprint"], a["via"]) for a in acks] == [(fingerprint, "slack")]
        assert ALICE in acks[0]["by"] and "alice" in acks[0]["by"]
        update = wait_until(
            lambda: [u for u in fake_slack.updates() if ALICE in json.dumps(u.params["blocks"])],
            8,
            "the message to show the ack",
        )[-1]
        ids = [
            e["action_id"]
            for b in update.params["blocks"]
            if b["type"] == "actions"
            for e in b["elements"]
        ]
        assert ids == BUTTONS[1:]
    finally:
        daemon.stop()


def test_silence_1h_then_the_same_action_again_is_refused_as_replayed(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    """The 1 h silence button silences the alert for one hour, via Slack; the same action replayed is refused."""
    config, daemon = start(tmp_path, fake_slack, fake_slack.app_token)
    try:
        fingerprint, channel, ts, _ = alert_message(config, tmp_path, fake_slack)
        fake_slack.sockets.wait_connected()
        envelope = press(fake_slack, "oai400d_silence_1h", fingerprint, channel, ts)
        silences = wait_until(lambda: status(config)["silences"], 8, "the silence in status")
        (silence,) = silences
        assert (silence["fingerprint"], silence["via"]) == (fingerprint, "slack")
        assert ALICE in silence["created_by"]
        length = (
            datetime.fromisoformat(silence["ends"]) - datetime.fromisoformat(silence["starts"])
        ).total_seconds()
        assert abs(length - 3600) < 5
        wait_until(lambda: "silenced alert" in daemon.log(), 5, "the silence to be logged")

        # Slack redelivering the envelope, and the same action in a new envelope.
        fake_slack.sockets.push(envelope)
        again = dict(envelope, envelope_id="env-again")
        fake_slack.sockets.push(again)
        fake_slack.sockets.wait_for_ack("env-again")
        refused(daemon, ALICE, "replayed", count=2)
        assert len(status(config)["silences"]) == 1
    finally:
        daemon.stop()


def test_an_unknown_fingerprint_or_another_message_is_refused_as_forged(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    """A button press for an unknown alert, or one that does not come from the alert's own message, is refused as forged and changes nothing."""
    config, daemon = start(tmp_path, fake_slack, fake_slack.app_token)
    try:
        fingerprint, channel, ts, _ = alert_message(config, tmp_path, fake_slack)
        fake_slack.sockets.wait_connected()
        press(fake_slack, "oai400d_silence_24h", "0123456789ab", channel, ts)
        refused(daemon, ALICE, "forged: no alert")
        press(fake_slack, "oai400d_ack", fingerprint, channel, "1700000000.000100")
        refused(daemon, ALICE, "forged: message")
        press(fake_slack, "oai400d_ack", fingerprint, "C0OTHER001", ts)
        refused(daemon, ALICE, "forged: message", count=2)
        report = status(config)
        assert report["acks"] == [] and report["silences"] == []
    finally:
        daemon.stop()


def test_a_member_of_an_allowed_group_may_press(tmp_path: Path, fake_slack: FakeSlack) -> None:
    """With allowed_groups set, a member may press and a non-member is refused; group membership is looked up once."""
    fake_slack.usergroups["S0ONCALL01"] = ["U0BOB00001", ALICE]
    config, daemon = start(
        tmp_path, fake_slack, fake_slack.app_token, allowed_groups=["S0ONCALL01"]
    )
    try:
        fingerprint, channel, ts, _ = alert_message(config, tmp_path, fake_slack)
        fake_slack.sockets.wait_connected()
        press(fake_slack, "oai400d_ack", fingerprint, channel, ts, user=MALLORY)
        refused(daemon, MALLORY, "not allowed")
        press(fake_slack, "oai400d_ack", fingerprint, channel, ts)
        wait_until(lambda: status(config)["acks"], 8, "the ack in status")
        assert len(fake_slack.calls("usergroups.users.list")) == 1  # cached
    finally:
        daemon.stop()


def test_without_an_app_token_no_buttons_and_no_socket(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    """Without an app token the messages carry no buttons and no Socket Mode connection is opened."""
    config, daemon = start(tmp_path, fake_slack)
    try:
        _, _, _, blocks = alert_message(config, tmp_path, fake_slack)
        assert all(b["type"] != "actions" for b in blocks)
    finally:
        daemon.stop()
    assert fake_slack.calls("apps.connections.open") == []
    assert fake_slack.sockets.connections == 0


def test_a_wrong_app_token_says_what_to_do_and_alerts_still_post(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    """A rejected app token is reported once with what to do (not retried), alerts still post, and the token never reaches the log."""
    config, daemon = start(tmp_path, fake_slack, "xapp-1-wrong-token")
    try:
        wait_until(
            lambda: "slack.app_token is wrong or lacks connections:write" in daemon.log(),
            8,
            "the app token error",
        )
        alert_message(config, tmp_path, fake_slack)
        assert len(fake_slack.calls("apps.connections.open")) == 1  # not retried: permanent
    finally:
        assert daemon.stop() == 0
    assert "xapp-1-wrong-token" not in daemon.log()


# --- the pieces alone -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["opened", "updated", "repeated"])
def test_buttons_fit_even_a_huge_alert_and_never_crowd_out_the_fixes(kind: str) -> None:
    """Even the largest alert keeps valid blocks with the buttons last, and the buttons appear only when asked for."""
    message = render(dataclasses.replace(huge(), kind=kind), actions=True)
    assert block_problems(list(message.blocks)) == []
    assert message.blocks[-1]["type"] == "actions"
    assert [e["action_id"] for e in message.blocks[-1]["elements"]] == BUTTONS
    assert render(dataclasses.replace(huge(), kind=kind)).blocks[-1]["type"] != "actions"


def test_no_buttons_on_a_resolved_alert_and_no_ack_button_once_acked() -> None:
    """A resolved alert has no buttons; an acknowledged one loses only its ack button."""
    resolved = render(opened(kind="resolved"), actions=True)
    assert all(b["type"] != "actions" for b in resolved.blocks)
    acked = render(opened(acked_by="alice", acked_at="2026-11-25T10:00:00Z"), actions=True)
    assert [e["action_id"] for e in acked.blocks[-1]["elements"]] == BUTTONS[1:]


def test_the_app_token_is_checked_masked_and_read_from_env_or_credential(
    tmp_path: Path,
) -> None:
    """The app token must start xapp- (the error names the key, not the value), is read from the environment or a credential file, and is shown masked."""
    with pytest.raises(ConfigError) as bad:
        parse_settings({}, {"SLACK_APP_TOKEN": "xoxb-not-an-app-token"})
    assert "slack.app_token" in str(bad.value) and "xapp-" in str(bad.value)
    assert "xoxb-not-an-app-token" not in str(bad.value)
    (tmp_path / "slack-app-token").write_text("xapp-1-A0-credential-9z8y\n")
    settings = parse_settings({}, {"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert settings.slack.app_token is not None
    assert public_view(settings)["slack"]["app_token"] == "…9z8y"
    with pytest.raises(ConfigError) as ids:
        parse_settings({"slack": {"allowed_users": ["@alice"], "allowed_groups": ["oncall"]}})
    assert "slack.allowed_users" in str(ids.value) and "slack.allowed_groups" in str(ids.value)
