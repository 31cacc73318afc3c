"""Secrets of every shape × every way text leaves the daemon (issue 16).

Each shape (real-looking, fake values) is written into an OpenAI error line; the lines then go
through `oai400d classify` (text and --json), the daemon with its console notifications, its
own log, `status` (text and --json), a metrics scrape and the state DB's files (the DB and its
-wal read as bytes), and the daemon with Slack (every request the fake Slack received). No
shape's secret part may appear in any of them: not whole, not any 8 characters of it. The
boundaries are also fed hostile records directly (every field a secret), since upstream
masking would otherwise hide a boundary that masks nothing itself.
"""

from __future__ import annotations

import base64
import io
import json
import re
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.core import CounterMetricFamily

from oai400d.masking import redact, redact_values
from oai400d.metrics import masked_labels
from oai400d.model import Notification
from oai400d.notify import Attempt
from oai400d.notify.console import ConsoleNotifier
from oai400d.notify.slack_blocks import render, render_digest, render_plain, render_reply

from .daemon_harness import STAMP, DaemonProcess, append, status, wait_until, write_config
from .fakes.slack import FakeSlack
from .support import oai400d

WINDOW = 8  # no run of this many characters of a secret part may be shown


@dataclass(frozen=True)
class Shape:
    """A secret as it is written in a log line, and the parts of it that must never show."""

    name: str
    text: str
    secrets: tuple[str, ...]


def _b64url(document: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).rstrip(b"=").decode()


# Assembled from pieces so that no scanner takes this file for a leak.
_JWT_PAYLOAD = _b64url({"sub": "svc-billing-7f3a", "iat": 1736200000, "scope": "admin"})
_JWT_SIGNATURE = "NNr23WaINK5V-MQOMg7v-T1BciR8cIe__UWFMZOWIQI"
_PEM_LINES = (
    "PRU2NFoylq2xqzuB7FAs2KemDVLDhnblmuseX3UNDuwRSY1EM0tSn1W/TsWF23xz",
    "3iW0nbF7OT6ixKkmVRJhA3nI3EPj26FVJUO4lFRbFl4MTuVlXR+qtmVZLyeQLGuS",
)

SHAPES = (
    Shape("openai", "sk-" + "proj-" + "ne6m1wtlgGaWAsUWFxxmmZATkytTftFWmPCKdt8OIpCdJyWU", ()),
    Shape(
        "anthropic",
        "sk-" + "ant-api03-" + "A1fToZ0HpXyT4V3cSykBX0hB0RfZScs1EPvZhWfZ5esavyL0dgpaqOkM5s2K0k"
        "sfMHM4OjHWN9cpoQZI5LBIb8azk1tCR-AA",
        (),
    ),
    Shape("slack_bot", "xox" + "b-7312456789012-7312456789013-dLhGvemmyXMCXChNQDhbWW2Z", ()),
    Shape(
        "slack_app",
        "xa" + "pp-1-X44S0O2A0QP-3044529403940-"
        "40ee979b8d2bfd591920b7f499aee25f0ef0f3e2f047cb11caf27a32370c131c",
        (),
    ),
    Shape(
        "slack_webhook",
        "https://hooks.slack.com/services/" + "T0A1B2C3D/B0A1B2C3D/Zq8Wm3Kp5Rt7Vx2Ny4Lb6Hc9",
        ("Zq8Wm3Kp5Rt7Vx2Ny4Lb6Hc9",),
    ),
    Shape(
        "bearer",
        "Authorization: Bearer " + "rT9vQ2mX8kL4pW7nZ3yB6cH1",
        ("rT9vQ2mX8kL4pW7nZ3yB6cH1",),
    ),
    Shape(
        "azure",
        "api-key: " + "2bb83f827d64f119050535cc4b342021",
        ("2bb83f827d64f119050535cc4b342021",),
    ),
    Shape("aws_key_id", "AK" + "IAQ7ZL3MXW2B5K9TYP", ("Q7ZL3MXW2B5K9TYP",)),
    Shape("aws_temporary_key_id", "AS" + "IAXR4N2VW8P6LT3QJD", ("XR4N2VW8P6LT3QJD",)),
    Shape(
        "aws_secret",
        "aws_secret_access_key=" + "rdmzEZJb6hPNOQFEfKsGPSpFk+gMFIYtKhSWbBTk",
        ("rdmzEZJb6hPNOQFEfKsGPSpFk+gMFIYtKhSWbBTk",),
    ),
    Shape(
        "jwt",
        "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9." + _JWT_PAYLOAD + "." + _JWT_SIGNATURE,
        (_JWT_PAYLOAD, _JWT_SIGNATURE),
    ),
    Shape(
        "url_password",
        "https://deploy:" + "Tr0ub4dor-and-3-horses-9Kq" + "@proxy.internal.example:3128",
        ("Tr0ub4dor-and-3-horses-9Kq",),
    ),
    Shape("github_classic", "gh" + "p_j5OSqplLapHp6hgPjryAczD4UDDqcdbTmBQq", ()),
    Shape("github_oauth", "gh" + "o_79GygZnhAOgshDBj1zpi4i4zBGozlxQF0l3A", ()),
    Shape(
        "github_fine_grained",
        "github_" + "pat_11nQB2bFtKsh2eWYtVFpIPEn_"
        "LCGiFJfWOQgUQudDfZFUWdGvIkgTxzszeomDnTaOaovzMNndr5ObyOdjQ9I",
        (),
    ),
    Shape("google", "AI" + "zaCAIdB89Sr6wnyclVKmtexpDSA3lxl7kettu", ()),
    Shape("huggingface", "hf" + "_AKXgV1r41YWaukxALsxWnkPmZUHcIfraTb", ()),
    Shape("stripe_secret", "sk" + "_live_Jg2V1rmghFFwba4eTqRA3hvAMEy7pMmtkoQllyV9", ()),
    Shape("stripe_restricted", "rk" + "_live_oxFcFi11puEA8OxUvpsAPa7A4a09n9OPBOjan439", ()),
    Shape(
        "private_key",
        "-----BEGIN PRIVATE KEY-----\\n" + "\\n".join(_PEM_LINES) + "\\n-----END PRIVATE KEY-----",
        _PEM_LINES,
    ),
    # A key split by a JSON escape: masked whole, not up to the escape.
    Shape(
        "json_escaped_key",
        "sk\\u002d" + "proj-GkT4wq9ZcV2nLr7XbM3sPd8YhJ6fAe1UoQ5iNt0KyWz",
        ("GkT4wq9ZcV2nLr7XbM3sPd8YhJ6fAe1UoQ5iNt0KyWz",),
    ),
    Shape(
        "json_escaped_webhook",
        "https:\\/\\/hooks.slack.com\\/services\\/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",
        ("Hn5Bv8Cx2Zl4Kj7Gf1Ds9Qa3",),
    ),
    Shape(
        "json_escaped_aws_secret",
        "aws_secret_access_key=" + "Pq3Wn8Zr5Tc1Vb7Xm4Ky" + "\\/" + "Lh9Js2Df6Ga0Ue+Io5Aw",
        ("Pq3Wn8Zr5Tc1Vb7Xm4Ky", "Lh9Js2Df6Ga0Ue+Io5Aw"),
    ),
)


def _parts(shape: Shape) -> tuple[str, ...]:
    """The secret parts; by default everything after the token's public prefix."""
    if shape.secrets:
        return shape.secrets
    prefix = re.match(
        r"(?:sk-(?:[a-z]+-)?(?:api03-)?|xox.-|xapp-1-|gh._|github_pat_|AIza|hf_|[sr]k_live_)",
        shape.text,
    )
    assert prefix is not None, shape.name
    return (shape.text[prefix.end() :],)


def leaks(text: str) -> list[str]:
    """The shapes some run of WINDOW characters of whose secret parts is in text."""
    found = []
    for shape in SHAPES:
        for part in _parts(shape):
            if any(part[i : i + WINDOW] in text for i in range(len(part) - WINDOW + 1)):
                found.append(shape.name)
                break
    return found


def error_line(index: int, shape: Shape) -> str:
    """An OpenAI error (one alert per shape: the model differs) carrying the secret twice:
    in the application's words before the exception, and in the API's message."""
    return (
        f"{STAMP}:01,{index:03d} ERROR worker: call failed with {shape.text}: "
        f"openai.NotFoundError: Error code: 404 - {{'error': {{'message': 'The model "
        f"`gpt-sec-{index}` does not exist or you do not have access to it. Sent: {shape.text}', "
        "'type': 'invalid_request_error', 'param': None, 'code': 'model_not_found'}}"
    )


LINES = [error_line(i, shape) for i, shape in enumerate(SHAPES)]


def test_the_table_itself_would_catch_a_leak() -> None:
    """Each line shows every secret part as written (so a leak would be seen), and the window
    check finds each shape in its own line and in no other."""
    for line, shape in zip(LINES, SHAPES, strict=True):
        assert leaks(line) == [shape.name]


def test_every_shape_is_masked_by_redact_and_redact_is_idempotent() -> None:
    for line in LINES:
        once = redact(line)
        assert leaks(once) == [], once
        assert redact(once) == once


# --- the boundaries fed directly: every field of a record is a secret ---------------------------

ALL_SECRETS = " ".join(shape.text for shape in SHAPES)


def hostile_notification(kind: str = "opened") -> Notification:
    return Notification(
        kind=kind,
        fingerprint="0123456789ab",
        category="request.model_not_found",
        severity="warning",
        title=f"Model not found {ALL_SECRETS}",
        count=3,
        first_seen="2025-01-07T12:00:00Z",
        last_seen="2025-01-07T12:01:00Z",
        files=(f"/var/log/{SHAPES[7].text}/app.log",),
        fixes=(f"Check {ALL_SECRETS}",),
        docs=("https://platform.openai.com/docs/guides/error-codes",),
        excerpt=ALL_SECRETS,
        rule="model_not_found",
        message=ALL_SECRETS,
        error_code=SHAPES[12].text,
        model=SHAPES[16].text,
        request_id=SHAPES[10].text,
        host=SHAPES[15].text,
        context=ALL_SECRETS,
        note=ALL_SECRETS,
        items=({"title": ALL_SECRETS, "category": "x", "count": 1, "files": [ALL_SECRETS]},),
    )


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_console_notifier_masks_every_field(fmt: str) -> None:
    for kind in ("opened", "backlog", "resolved"):
        stream = io.StringIO()
        ConsoleNotifier(fmt, stream=stream).send(hostile_notification(kind), Attempt("a"))
        shown = stream.getvalue()
        assert leaks(shown) == [], (kind, shown)
        if fmt == "json":
            json.loads(shown)  # masking keeps the line valid JSON


def test_slack_messages_mask_every_field() -> None:
    notes = [hostile_notification(kind) for kind in ("opened", "updated", "resolved", "backlog")]
    for n in notes:
        assert leaks(json.dumps(render(n, actions=True).payload())) == []
        assert leaks(render_plain(n)) == []
        assert leaks(render_reply(n, since_s=60)) == []
    assert leaks(json.dumps(render_digest(notes).payload())) == []


def test_metric_labels_are_masked_and_series_that_become_alike_add_up() -> None:
    family = CounterMetricFamily("oai400d_findings", "x", labels=["source"])
    family.add_metric([f"/var/log/{SHAPES[12].text}.log"], 1)
    family.add_metric([f"/var/log/{SHAPES[12].text[:-4]}ZZZZ{SHAPES[12].text[-4:]}.log"], 2)
    masked = masked_labels(family)
    assert leaks(str(masked.samples)) == []
    assert [s.value for s in masked.samples] == [3]


def test_redact_values_keeps_a_document_valid() -> None:
    document = {"a": [ALL_SECRETS, {"b": ALL_SECRETS, "n": 1, "none": None}], "ok": "plain"}
    masked = redact_values(document)
    assert leaks(json.dumps(masked)) == []
    assert masked["ok"] == "plain" and masked["a"][1]["n"] == 1 and masked["a"][1]["none"] is None


# --- end to end ------------------------------------------------------------------------------


def test_classify_output_text_and_json_shows_no_secret(tmp_path: Path) -> None:
    """`oai400d classify` finds each line (one finding per shape) and shows no secret."""
    log = tmp_path / "app.log"
    log.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    config = write_config(tmp_path)
    as_json = oai400d("classify", "--json", "--config", str(config), str(log))
    as_text = oai400d("classify", "--config", str(config), str(log))
    for result in (as_json, as_text):
        assert result.returncode == 0, result.stderr.decode()
        output = result.stdout.decode() + result.stderr.decode()
        assert leaks(output) == [], output
    findings = [json.loads(line) for line in as_json.stdout.decode().splitlines()]
    assert sorted(f["model"] for f in findings) == sorted(
        f"gpt-sec-{i}" for i in range(len(SHAPES))
    )


def _state_bytes(tmp: Path) -> str:
    """The state DB and its journal files as they are on disk (latin-1: one char per byte)."""
    files = [p for p in tmp.iterdir() if p.name.startswith("state.db")]
    assert any(p.name == "state.db" for p in files)
    return "".join(p.read_bytes().decode("latin-1") for p in files)


def test_daemon_console_log_status_metrics_and_state_db_show_no_secret(tmp_path: Path) -> None:
    """One daemon (console, text) for every shape: its notifications, its log, `status` as
    text and JSON, a metrics scrape and the state DB's files hold no secret."""
    config = write_config(
        tmp_path,
        console={"format": "text"},
        metrics={"listen": "127.0.0.1:0", "source_labels": True},
    )
    daemon = DaemonProcess(config)
    try:
        daemon.wait_ready()
        url = daemon.metrics_url()
        append(tmp_path / "logs" / "app.log", *LINES)
        wait_until(
            lambda: sum(line.startswith("[OPENED]") for line in list(daemon.stdout)) >= len(SHAPES),
            what=f"{len(SHAPES)} alerts opened on the console",
        )
        shown = "\n".join(list(daemon.stdout))
        assert all(f"gpt-sec-{i}" in shown for i in range(len(SHAPES)))
        assert leaks(shown) == [], shown
        report = status(config)
        assert len(report["alerts"]) == len(SHAPES)
        assert leaks(json.dumps(report)) == []
        as_text = oai400d("status", "--config", str(config))
        assert as_text.returncode == 0 and leaks(as_text.stdout.decode()) == []
        with urllib.request.urlopen(url, timeout=5) as response:
            scraped = response.read().decode()
        assert "oai400d_findings_total" in scraped and leaks(scraped) == []
    finally:
        daemon.stop()
    assert leaks(daemon.log()) == [], daemon.log()
    assert leaks(_state_bytes(tmp_path)) == []


def test_daemon_slack_messages_and_state_db_show_no_secret(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    """One daemon (Slack) for every shape: no request Slack received, raw or decoded, holds a
    secret; nor do the daemon's log and the state DB's files."""
    settings = {
        "base_url": fake_slack.base_url,
        "channel": "#openai-alerts",
        "retry_max": "2s",
        "max_messages_per_second": 50,
    }
    config = write_config(tmp_path, slack=settings)
    daemon = DaemonProcess(config, env={"SLACK_BOT_TOKEN": fake_slack.token})
    try:
        daemon.wait_ready()
        append(tmp_path / "logs" / "app.log", *LINES)
        fake_slack.wait_for_posts(len(SHAPES), timeout=20)
    finally:
        daemon.stop()
    received = [
        request.body.decode("utf-8", "replace") + json.dumps(request.params)
        for request in fake_slack.requests()
    ]
    assert all(any(f"gpt-sec-{i}" in r for r in received) for i in range(len(SHAPES)))
    assert leaks("\n".join(received)) == []
    assert leaks(daemon.log()) == [], daemon.log()
    assert leaks(_state_bytes(tmp_path)) == []
