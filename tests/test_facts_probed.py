"""Facts from the probes (facts/probed.py), the daemon's facts stage (facts/checks.py) and where
facts go: the alert book's notifications, the state DB, every notifier, `status`."""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import asdict, replace
from pathlib import Path

from oai400d.alerts import AlertBook
from oai400d.config import AlertsSettings, Settings
from oai400d.facts.checks import FactChecks, image_url
from oai400d.facts.probed import closest_names, key_facts, model_facts, probe_facts, status_facts
from oai400d.model import Alert, Fact, Notification
from oai400d.notify.alertmanager import annotations_of
from oai400d.notify.console import render_text
from oai400d.notify.pagerduty import custom_details
from oai400d.notify.slack_blocks import render, render_plain
from oai400d.probes.api import MODEL_IDS_MAX, model_ids
from oai400d.state import ProbeRecord, State

from .daemon_harness import wait_until
from .samples import finding, opened

CHECKED = 1_796_000_000.0  # when the probe records below were made
MODELS = ["gpt-4o", "gpt-4o-2024-08-06", "gpt-4o-2024-11-20", "gpt-4o-mini", "whisper-1"]


def key_record(status: str = "ok", summary: str = "key accepted (5 models visible)") -> ProbeRecord:
    details = {"key": "sk-…ab34", "models_visible": len(MODELS), "model_ids": MODELS}
    data = {"name": "api_key", "status": status, "summary": summary, "details": details}
    return ProbeRecord("api_key", status, summary, 12, CHECKED, 0, 1, data)


def page_record(status: str, summary: str) -> ProbeRecord:
    data = {"name": "status_page", "status": status, "summary": summary, "details": {}}
    return ProbeRecord("status_page", status, summary, 30, CHECKED, 0, 1, data)


def test_a_missing_model_gets_the_closest_names_the_key_sees() -> None:
    """The issue's example: a model that does not exist is compared with the probe's list, and
    the closest names by edit distance are named, best first."""
    (fact,) = model_facts("gpt-4o-2024-13-01", key_record())
    assert fact.kind == "model_closest"
    assert "not among the 5 models the probe's key sees" in fact.text
    assert "the closest: `gpt-4o-2024-11-20`, `gpt-4o-2024-08-06`" in fact.text
    assert "2026-" in fact.text  # when the list was taken


def test_a_model_the_key_sees_rules_out_a_typo() -> None:
    """The negative case: the model is in the list, so the failing process uses another key
    (its fixes first), and no closest names are given."""
    (fact,) = model_facts("gpt-4o-mini", key_record())
    assert fact.bearing == "rules_out"
    assert "is among the 5 models" in fact.text and "closest" not in fact.text


def test_no_list_no_model_fact() -> None:
    """Without a list (the probe failed, or an older version wrote the record) nothing is said."""
    assert model_facts("gpt-x", None) == ()
    assert model_facts("gpt-x", key_record(status="critical", summary="refused")) == ()
    assert model_facts(None, key_record()) == ()
    assert closest_names("zzzzzz", MODELS) == []


def test_the_key_probes_verdict_is_a_fact_with_the_keys_last_four_only() -> None:
    """Accepted: the failing process runs another key. Refused: the key itself is bad."""
    (accepted,) = key_facts(key_record())
    assert "accepted" in accepted.text and "sk-…ab34" in accepted.text
    refused_record = key_record("critical", "key rejected: 401 invalid_api_key")
    (refused,) = key_facts(refused_record)
    assert "refused too (key rejected: 401 invalid_api_key)" in refused.text
    assert refused.bearing == "supports"


def test_the_status_page_is_said_as_a_fact_for_server_errors_only() -> None:
    """A server error gets the status page's word; a key error gets the key probe's."""
    records = {
        "api_key": key_record(),
        "status_page": page_record("warning", "Degraded performance: API"),
    }
    (page,) = probe_facts("server.error", None, records)
    assert page.text.startswith("OpenAI's status page at ") and "Degraded performance" in page.text
    (key,) = probe_facts("auth.invalid_api_key", None, records)
    assert key.kind == "key_probe"
    assert probe_facts("rate_limit", None, records) == ()
    (calm,) = status_facts(page_record("ok", "All Systems Operational"))
    assert "likely not an OpenAI outage" in calm.text


def test_the_models_list_kept_by_the_probe_is_bounded() -> None:
    """A server answering with thousands of models, or junk, cannot grow the probe's record."""
    data = [{"id": f"m-{i:05d}"} for i in range(5000)]
    data += [{"id": "x" * 500}, {"id": 7}, "junk", {"no": "id"}]
    ids = model_ids(data)
    assert len(ids) == MODEL_IDS_MAX
    assert all(isinstance(i, str) and len(i) < 20 for i in ids)


class _Fetcher:
    """A stand-in for facts.fetch (another part of the issue): records the URLs it was asked
    for, and answers once the test lets it."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []
        self.release = threading.Event()

    def facts(self, url: str, episode: str) -> tuple[Fact, ...]:
        self.asked.append((url, episode))
        self.release.wait(5)
        return (Fact("fetch", "Fetched from this host: 403 Forbidden, text/html.", "supports"),)


IMAGE_MESSAGE = "Error while downloading https://img.example.com/a.png?sig=1."


def image_alert(**changes: object) -> Alert:
    base = Alert(
        fingerprint="img1",
        category="request.image",
        rule="openai.image_download",
        severity="warning",
        title="OpenAI could not download an image",
        state="pending",
        count=1,
        first_seen=1000.0,
        last_seen=1000.0,
        files=("/var/log/app.log",),
        message=IMAGE_MESSAGE,
        excerpt="",
        fixes=("Make the URL public", "Check the link has not expired"),
        docs=(),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_the_fetch_starts_when_the_alert_is_seen_and_its_facts_come_when_ready() -> None:
    """One fetch per episode, in a worker thread: the first notification goes without its facts
    when it is not done, the next one carries them; a new episode fetches again."""
    fetcher = _Fetcher()
    checks = FactChecks(Settings(), lambda: [], fetcher)
    alert = image_alert()
    assert image_url(alert) == "https://img.example.com/a.png?sig=1"
    checks.begin(alert)
    checks.begin(alert)  # the same episode: not again
    assert not any(f.kind == "fetch" for f in checks.facts(alert))  # not ready yet
    fetcher.release.set()
    facts = wait_for_facts(checks, alert)
    assert "403 Forbidden" in facts[-1].text
    assert [url for url, _ in fetcher.asked] == ["https://img.example.com/a.png?sig=1"]
    checks.begin(replace(alert, first_seen=5000.0, last_seen=5000.0))  # a new episode
    wait_until(lambda: fetcher.asked[1:], timeout=5, what="the second episode's fetch")
    checks.begin(replace(alert, fingerprint="k", category="auth.invalid_api_key"))
    assert len(fetcher.asked) == 2  # only image errors are fetched


def wait_for_facts(checks: FactChecks, alert: Alert) -> tuple[Fact, ...]:
    def fetched() -> tuple[Fact, ...]:
        facts = checks.facts(alert)
        return facts if any(f.kind == "fetch" for f in facts) else ()

    found: tuple[Fact, ...] = wait_until(fetched, timeout=5, what="the fetch's facts")
    return found


def test_the_book_asks_for_facts_once_per_notification_and_orders_the_fixes() -> None:
    """Facts are asked when a notification is built (open, update), never per finding; they go
    on the alert (for the state DB and `status`) and the notification, and the fixes a fact
    prefers come first. A resolution repeats what the last message checked."""
    asked: list[str] = []

    def facts(alert: Alert) -> tuple[Fact, ...]:
        asked.append(alert.fingerprint)
        return (Fact("key_probe", f"checked #{len(asked)}", prefer=("env",)),)

    settings = AlertsSettings(
        group_wait=10, group_interval=60, repeat_interval=3600, resolve_after=900
    )
    book = AlertBook(settings, host="h", facts=facts)
    for i in range(50):
        book.observe(finding("fp1"), 100.0 + i * 0.01)
    assert asked == []
    (first,) = book.tick(111.0)
    assert asked == ["fp1"]
    assert first.facts == ("checked #1",)
    assert first.fixes == ("Check the env", "Rotate the key")
    assert book.get("fp1").facts == ("checked #1",)  # type: ignore[union-attr]
    book.observe(finding("fp1"), 200.0)
    (update,) = book.tick(200.0)
    assert update.kind == "updated" and update.facts == ("checked #2",)
    (resolved,) = book.tick(200.0 + 900)
    assert resolved.kind == "resolved" and resolved.facts == ("checked #2",)
    assert len(asked) == 2


def test_facts_survive_the_outbox_and_the_state_db_and_old_rows_still_load(tmp_path: Path) -> None:
    """Notification JSON always has "facts" (a list, [] when nothing was checked) and reads
    back; an alert stored with facts reads back with them; one stored before facts existed
    (no "facts" key in its JSON) reads back with none."""
    empty = opened()
    assert empty.to_json()["facts"] == []
    full = opened(facts=("a", "b"))
    assert Notification.from_json(json.loads(json.dumps(full.to_json()))) == full
    state = State(str(tmp_path / "state.db"))
    try:
        alert = image_alert(facts=("The link expired at 2026-12-06T08:05:00Z.",))
        state.commit(alerts=[alert, replace(alert, fingerprint="old", facts=())], now=1.0)
    finally:
        state.close()
    old = asdict(image_alert(fingerprint="old"))
    del old["facts"]
    db = sqlite3.connect(tmp_path / "state.db")
    db.execute("UPDATE alerts SET data = ? WHERE fingerprint = 'old'", (json.dumps(old),))
    db.commit()
    db.close()
    state = State(str(tmp_path / "state.db"), readonly=True)
    try:
        assert state.alert("img1") == alert
        assert state.alert("old") == image_alert(fingerprint="old")
    finally:
        state.close()


HOSTILE = "The URL said <!channel> and <@U123> & `code` *bold*: see https://x.example/?sig=s3cr3t"


def test_every_notifier_shows_the_facts_and_slack_cannot_be_made_to_ping() -> None:
    """Slack: a "Checked" section, one bullet per fact, log text escaped as everywhere there (a
    fact quoting `<!channel>` pings nobody); console: a `checked:` line per fact; Alertmanager:
    an annotation "facts", one per line; PagerDuty: custom_details.facts."""
    n = opened(facts=("`gpt-4o` is not among the 5 models", HOSTILE))
    blocks = render(n).blocks
    checked = [
        b
        for b in blocks
        if b.get("type") == "section" and b.get("text", {}).get("text", "").startswith("*Checked*")
    ]
    assert len(checked) == 1
    text = checked[0]["text"]["text"]
    assert text.splitlines()[1] == "• `gpt-4o` is not among the 5 models"
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text and "<@U123>" not in text
    assert "*Checked*" in render_plain(n) and "&lt;!channel&gt;" in render_plain(n)
    assert "  checked: `gpt-4o` is not among the 5 models\n" in render_text(n)
    assert annotations_of(n)["facts"].splitlines()[0] == "`gpt-4o` is not among the 5 models"
    assert custom_details(n)["facts"][0] == "`gpt-4o` is not among the 5 models"
    plain = opened()
    assert not [b for b in render(plain).blocks if "Checked" in json.dumps(b)]
    assert "checked:" not in render_text(plain)
    assert "facts" not in annotations_of(plain) and "facts" not in custom_details(plain)
