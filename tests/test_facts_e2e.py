"""End to end (issue 20): the daemon as a subprocess, Slack, OpenAI (the key probe's model list)
and an image server as fakes on 127.0.0.1; each alert's Slack message has a "Checked" section
saying what was checked and what it showed."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .daemon_harness import STAMP, DaemonProcess, append, status, wait_until, write_config
from .fakes._http import FakeServer, Incoming, Reply
from .fakes.openai_api import FakeOpenAI
from .fakes.slack import FakeSlack

pytest_plugins = ["tests.fakes.fixtures"]

MODELS = ["gpt-4o", "gpt-4o-2024-08-06", "gpt-4o-2024-11-20", "gpt-4o-mini", "whisper-1"]
KEY = "sk-test-0000000000000000000000000000ab34"  # the configured (probed) key ends in ab34

# X-Amz-Date 2026-12-06 08:00:00Z + X-Amz-Expires 300 s: expired at 08:05:00Z, long before the
# line is read (lines are stamped now: an old stamp would make them backlog).
S3_URL = (
    "https://bucket.s3.amazonaws.com/u/1.png?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAEXAMPLEEXAMPLE%2F20261206%2Fus-east-1%2Fs3%2Faws4_request"
    "&X-Amz-Date=20261206T080000Z&X-Amz-Expires=300&X-Amz-SignedHeaders=host"
    "&X-Amz-Signature=0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
)


def image_error(url: str, second: int) -> str:
    """An image download error; each `second` its own `param` (its own alert: one fetch is made
    per alert episode, of the URL its first message names)."""
    return (
        f"{STAMP}:{second:02d},000 ERROR worker: openai.BadRequestError: Error code: 400 - "
        f"{{'error': {{'message': 'Error while downloading {url}.', 'type': "
        f"'invalid_request_error', 'param': 'messages.[{second}].content.[1].image_url', "
        "'code': 'invalid_image_url'}}"
    )


KEY_ERROR = (
    f"{STAMP}:02,000 ERROR worker: openai.AuthenticationError: Error code: 401 - {{'error': "
    "{'message': 'Incorrect API key provided: sk-proj-********************wxyz. You can find "
    "your API key at https://platform.openai.com/account/api-keys.', 'type': "
    "'invalid_request_error', 'param': None, 'code': 'invalid_api_key'}}"
)
MODEL_ERROR = (
    f"{STAMP}:03,000 ERROR worker: openai.NotFoundError: Error code: 404 - {{'error': "
    "{'message': 'The model `gpt-4o-2024-13-01` does not exist or you do not have access to "
    "it.', 'type': 'invalid_request_error', 'param': None, 'code': 'model_not_found'}}"
)


class ImageServer(FakeServer):
    """An image host on 127.0.0.1: /forbidden.png answers 403, /page.png an HTML page."""

    name = "images"

    def _route(self, req: Incoming) -> tuple[str, Any]:
        return req.path, None

    def _answer(self, endpoint: str, req: Incoming, params: Any) -> Reply:
        if endpoint == "/forbidden.png":
            return Reply.text(403, "<Error>AccessDenied</Error>", "application/xml")
        if endpoint == "/page.png":
            return Reply.text(200, "<html><body>Sign in</body></html>", "text/html")
        return Reply.text(404, "no such image")


@pytest.fixture
def images() -> Iterator[ImageServer]:
    with ImageServer() as server:
        yield server


def checked_sections(slack: FakeSlack) -> list[str]:
    """Each alert message's "Checked" section, as Slack holds it now."""
    found = []
    for message in slack.messages():
        for block in message.blocks or ():
            text = block.get("text", {}).get("text", "") if isinstance(block, dict) else ""
            if text.startswith("*Checked*"):
                found.append(text)
    return found


def wait_for_checked(slack: FakeSlack, *words: str) -> str:
    """The "Checked" section that holds every one of `words` (polled until it comes)."""

    def holding() -> str:
        for text in checked_sections(slack):
            if all(word in text for word in words):
                return text
        return ""

    try:
        found: str = wait_until(holding, timeout=8, what=f"a Checked section with {words}")
    except AssertionError:
        raise AssertionError(f"{words} not in {checked_sections(slack)!r}") from None
    return found


def start(tmp: Path, slack: FakeSlack, group_wait: str, **sections: Any) -> DaemonProcess:
    config = write_config(
        tmp,
        alerts={"group_wait": group_wait, "group_interval": "1s"},
        slack={"base_url": slack.base_url},
        **sections,
    )
    daemon = DaemonProcess(config, env={"SLACK_BOT_TOKEN": slack.token})
    daemon.wait_ready()
    return daemon


def test_expired_link_other_key_and_missing_model_are_each_checked(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    """Three errors, three Slack messages, each with its "Checked" section: the S3 link expired
    at 08:05:00Z (from its X-Amz-Date and X-Amz-Expires); the 401's key ends in wxyz while the
    probed key ends in ab34 (and the probe accepts it); the missing model is not among those the
    key sees, the closest named. The alerts in `status --json` carry the same facts."""
    with FakeOpenAI(keys=[KEY], models=MODELS) as openai:
        daemon = start(
            tmp_path,
            fake_slack,
            "0s",
            openai={"base_url": openai.base_url, "api_key": KEY, "models": ["gpt-4o-mini"]},
            probes={"enabled": True, "status_url": f"{openai.origin}/nothing", "timeout": "2s"},
        )
        try:
            # The facts quote the probes' latest records: wait for the key probe's first.
            wait_until(
                lambda: [p for p in status(daemon.config)["probes"] if p["name"] == "api_key"],
                timeout=8,
                what="the key probe's first result",
            )
            append(tmp_path / "logs" / "app.log", image_error(S3_URL, 1), KEY_ERROR, MODEL_ERROR)
            expired = wait_for_checked(fake_slack, "expired", "08:05")
            other_key = wait_for_checked(fake_slack, "wxyz", "ab34")
            model = wait_for_checked(fake_slack, "gpt-4o-2024-13-01", "not among the 5 models")

            def checked_alerts() -> list[dict[str, Any]]:
                found = [a for a in status(daemon.config)["alerts"] if a["facts"]]
                return found if len(found) == 3 else []

            alerts = wait_until(checked_alerts, timeout=8, what="three alerts with facts")
        finally:
            daemon.stop()
    text = subprocess.run(
        [sys.executable, "-m", "oai400d.cli", "status", "--config", str(daemon.config)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    assert "    checked: `gpt-4o-2024-13-01` is not among the 5 models" in text
    assert "the closest: `gpt-4o-2024-11-20`, `gpt-4o-2024-08-06`" in model
    assert "accepted" in other_key  # the key probe: the configured key works
    assert "X-Amz-Signature=0f1e" not in expired  # a signature never leaves
    assert {a["category"] for a in alerts} == {
        "request.image",
        "auth.invalid_api_key",
        "request.model_not_found",
    }
    assert all(isinstance(fact, str) for a in alerts for fact in a["facts"])


def test_fetch_urls_reports_a_403_and_an_html_answer_and_refuses_an_unlisted_address(
    tmp_path: Path, fake_slack: FakeSlack, images: ImageServer
) -> None:
    """With `[diagnose] fetch_urls = true` and the image server's 127.0.0.1 in allow_hosts, the
    fetch's 403 and its HTML answer are facts; 127.0.0.2 (loopback, not listed) is refused
    before any connection, and the refusal is the fact."""
    port = images.port
    daemon = start(
        tmp_path,
        fake_slack,
        "1s",  # the fetch is started when an alert is first seen, and is done by then
        diagnose={"fetch_urls": True, "allow_hosts": ["127.0.0.1"], "timeout": "2s"},
    )
    try:
        append(
            tmp_path / "logs" / "app.log",
            image_error(f"http://127.0.0.1:{port}/forbidden.png", 1),
            image_error(f"http://127.0.0.1:{port}/page.png", 2),
            image_error(f"http://127.0.0.2:{port}/private.png", 3),
        )
        forbidden = wait_for_checked(fake_slack, "forbidden.png", "403")
        html = wait_for_checked(fake_slack, "page.png", "text/html")
        refused = wait_for_checked(fake_slack, "private.png", "not fetched")
    finally:
        daemon.stop()
    assert "fetched from this host" in forbidden
    assert "not an image" in html
    assert not [r for r in images.requests() if r.path == "/private.png"]
    assert "127.0.0.2" in refused
