"""Acknowledge and silence: the policy in the alert book, and the CLI against a running daemon."""

from __future__ import annotations

import getpass
import json
import time
from pathlib import Path
from typing import Any

from oai400d.alerts import AlertBook
from oai400d.config import AlertsSettings
from oai400d.model import Ack, Alert, Silence
from oai400d.state import State

from .daemon_harness import (
    ERROR_LINE,
    OTHER_ERROR,
    DaemonProcess,
    append,
    status,
    wait_until,
    write_config,
)
from .samples import finding
from .support import oai400d

SETTINGS = AlertsSettings(group_wait=10, group_interval=60, repeat_interval=3600, resolve_after=900)
USER = getpass.getuser()


def silence(
    fingerprint: str | None = "fp1",
    category: str | None = None,
    starts: float = 0,
    ends: float = 1000,
    silence_id: int = 1,
) -> Silence:
    return Silence(silence_id, fingerprint, category, starts, ends, "", "alice", starts)


def kinds(notifications: list[Any]) -> list[tuple[str, int]]:
    return [(n.kind, n.count) for n in notifications]


# --- the policy, driven by a clock the test controls ----------------------------------------


def test_a_silenced_open_alert_counts_on_and_tells_all_when_the_silence_ends() -> None:
    """No update while silenced; the first message after it carries every hidden finding."""
    book = AlertBook(SETTINGS, host="h")
    book.observe(finding(), 0)
    assert kinds(book.tick(10)) == [("opened", 1)]
    book.silences = [silence(starts=20, ends=500)]
    for second in range(20, 400, 10):
        book.observe(finding(), second)
        assert book.tick(second) == [], second
    assert book.get("fp1").count == 39  # type: ignore[union-attr]
    assert book.next_due(400) == 100  # the silence's end, not a past update deadline
    (update,) = book.tick(500)
    assert (update.kind, update.count, update.new) == ("updated", 39, 38)


def test_the_resolution_of_a_silenced_alert_is_still_posted() -> None:
    book = AlertBook(SETTINGS, host="h")
    book.observe(finding(), 0)
    book.tick(10)
    book.silences = [silence(ends=10_000)]
    book.observe(finding(), 20)
    assert book.tick(100) == []
    assert kinds(book.tick(920)) == [("resolved", 2)]


def test_a_silence_before_the_first_message_holds_it_until_the_end() -> None:
    """A new problem under a category silence is announced when the silence ends, if it is
    still happening; one that went quiet meanwhile is dropped without a word."""
    book = AlertBook(SETTINGS, host="h")
    book.silences = [silence(fingerprint=None, category="auth.invalid_api_key", ends=300)]
    book.observe(finding(), 0)
    book.observe(finding("fp2"), 0)
    assert book.tick(100) == []
    assert book.get("fp1").state == "pending"  # type: ignore[union-attr]
    book.observe(finding(), 250)
    assert sorted(kinds(book.tick(300))) == [("opened", 1), ("opened", 2)]

    quiet = AlertBook(SETTINGS, host="h")
    quiet.silences = [silence(fingerprint=None, category="auth.invalid_api_key", ends=5000)]
    quiet.observe(finding(), 0)
    assert quiet.tick(900) == []
    assert quiet.changed()[0].state == "resolved"
    assert quiet.tick(5000) == []


def test_a_silence_of_another_alert_changes_nothing() -> None:
    book = AlertBook(SETTINGS, host="h")
    book.silences = [silence(fingerprint="other"), silence(None, "rate_limit", silence_id=2)]
    book.observe(finding(), 0)
    assert kinds(book.tick(10)) == [("opened", 1)]


def test_an_ack_is_shown_and_stops_reminders_but_not_updates() -> None:
    book = AlertBook(SETTINGS, host="h")
    book.observe(finding(), 0)
    book.tick(10)
    shown = book.acknowledge(Ack("fp1", "alice", 20.0), 20)
    assert shown is not None and shown.kind == "updated"
    assert (shown.acked_by, shown.acked_at) == ("alice", "1970-01-01T00:00:20Z")
    assert shown.to_json()["acked_by"] == "alice"
    assert book.acknowledge(Ack("fp1", "alice", 20.0), 21) is None  # applied once
    out = []
    for second in range(30, 4000, 30):
        book.observe(finding(), second)
        out += book.tick(second)
    assert out and {n.kind for n in out} == {"updated"}  # never "repeated"
    assert all(n.acked_by == "alice" for n in out)
    assert book.next_due(4000) > 0


def test_an_ack_of_an_earlier_episode_does_not_carry_over() -> None:
    book = AlertBook(SETTINGS, host="h")
    book.observe(finding(), 1000)
    assert book.acknowledge(Ack("fp1", "alice", 500.0), 1001) is None
    assert book.get("fp1").acked_by is None  # type: ignore[union-attr]


def test_an_acked_probe_alert_stops_reminding() -> None:
    from oai400d.model import ProbeResult

    book = AlertBook(SETTINGS, host="h")
    result = ProbeResult("api_key", "critical", "key rejected", cause="auth.invalid_api_key")
    book.probe_failed(result, 0)
    assert kinds(book.tick(0)) == [("opened", 1)]
    book.acknowledge(Ack("probe:api_key", "bob", 5.0), 5)
    assert book.tick(3600) == [] and book.tick(7200) == []
    assert book.next_due(7200) > 0


def test_the_state_db_keeps_silences_and_acks(tmp_path: Path) -> None:
    state = State(str(tmp_path / "state.db"))
    try:
        first = state.add_silence("fp1", None, 10, 100, "deploy", "alice", "cli")
        second = state.add_silence(None, "rate_limit", 10, 50, "", "bob", "slack")
        assert [s.id for s in state.silences(after=60)] == [first.id]
        assert len(state.silences()) == 2
        lifted = state.lift_silence(first.id, "carol", 70)
        assert lifted is not None and (lifted.ends, lifted.removed_by) == (70, "carol")
        assert state.lift_silence(second.id, "carol", 70).removed_by is None  # type: ignore[union-attr]
        state.acknowledge(Ack("fp1", "alice", 30.0, "on it"))
        assert state.acks() == [Ack("fp1", "alice", 30.0, "on it", "cli")]
    finally:
        state.close()
    old = State(str(tmp_path / "old.db"))
    old._db.executescript("DROP TABLE silences; DROP TABLE acks;")  # a DB of an older version
    old.close()
    readonly = State(str(tmp_path / "old.db"), readonly=True)
    try:
        assert readonly.silences() == [] and readonly.acks() == []
    finally:
        readonly.close()


# --- the CLI, as a user meets it ------------------------------------------------------------


def cli(config: Path, *args: str) -> tuple[int, str, str]:
    result = oai400d(*args, "--config", str(config), timeout=30)
    return result.returncode, result.stdout.decode(), result.stderr.decode()


def seeded(tmp_path: Path) -> Path:
    """A config and a state DB holding one open and one resolved alert, no daemon."""
    config = write_config(tmp_path)
    state = State(str(tmp_path / "state.db"))
    base = dict(
        category="rate_limit",
        rule="r",
        severity="warning",
        title="Rate limited",
        count=1,
        first_seen=time.time(),
        last_seen=time.time(),
        files=(),
        message="",
        excerpt="",
        fixes=(),
        docs=(),
    )
    state.commit(
        alerts=[
            Alert(fingerprint="openfp", state="open", **base),  # type: ignore[arg-type]
            Alert(fingerprint="gonefp", state="resolved", **base),  # type: ignore[arg-type]
        ]
    )
    state.close()
    return config


def test_cli_errors_say_what_is_wrong_and_exit_1_or_2(tmp_path: Path) -> None:
    """Unknown alert or silence: 1; a malformed argument or unknown category: 2."""
    (tmp_path / "none").mkdir()
    nothing = write_config(tmp_path / "none")
    code, _, err = cli(nothing, "silence", "abc", "--for", "1h")
    assert code == 1 and "no state database" in err and "oai400d run" in err

    config = seeded(tmp_path)
    code, _, err = cli(config, "silence", "nosuchfp", "--for", "1h")
    assert code == 1 and "no alert with fingerprint nosuchfp" in err and "--category" in err
    code, _, err = cli(config, "silence", "--category", "rate_limits", "--for", "1h")
    assert code == 2 and "unknown category 'rate_limits'" in err and "rate_limit," in err
    code, _, err = cli(config, "silence", "openfp", "--for", "2 hours")
    assert code == 2 and "--for" in err and "not a duration" in err
    code, _, err = cli(config, "silence", "openfp", "--category", "rate_limit", "--for", "1h")
    assert code == 2 and "one of them" in err
    code, _, err = cli(config, "silence", "openfp")
    assert code == 2 and "--for" in err
    code, _, err = cli(config, "unsilence", "42")
    assert code == 1 and "no silence 42" in err and "silences --all" in err
    code, _, err = cli(config, "unsilence", "x")
    assert code == 2
    code, _, err = cli(config, "ack", "nosuchfp")
    assert code == 1 and "no alert with fingerprint nosuchfp" in err
    code, _, err = cli(config, "ack", "gonefp")
    assert code == 1 and "is resolved" in err


def test_cli_silences_list_lift_and_ack_in_the_state_db(tmp_path: Path) -> None:
    config = seeded(tmp_path)
    code, out, err = cli(config, "silence", "gonefp", "--for", "2h", "--comment", "known")
    assert code == 0 and out.strip().isdigit() and "until" in err
    first = int(out)
    code, out, _ = cli(config, "silence", "--category", "rate_limit", "--for", "30m", "--json")
    assert code == 0
    code, out, _ = cli(config, "silences")
    assert "fingerprint=gonefp" in out and "category=rate_limit" in out and USER in out
    assert "known" in out
    assert cli(config, "unsilence", str(first))[0] == 0
    code, out, _ = cli(config, "unsilence", str(first))
    assert code == 0 and f"already lifted by {USER}" in out
    code, out, _ = cli(config, "silences")
    assert "gonefp" not in out
    code, out, _ = cli(config, "silences", "--all", "--json")
    assert [(s["state"], s["removed_by"]) for s in json.loads(out)] == [
        ("lifted", USER),
        ("active", None),
    ]
    code, out, _ = cli(config, "ack", "openfp", "--comment", "looking")
    assert code == 0 and f"as {USER}" in out
    report = status(config)
    assert [s["category"] for s in report["silences"]] == ["rate_limit"]
    assert [(a["fingerprint"], a["by"], a["comment"]) for a in report["acks"]] == [
        ("openfp", USER, "looking")
    ]
    code, out, _ = cli(config, "status")
    assert "silences (1):" in out and "category=rate_limit" in out
    assert f"acknowledged (1):\n  openfp by {USER}" in out


# --- against a running daemon ---------------------------------------------------------------


def kind_of(kind: str, category: str = "auth.invalid_api_key") -> Any:
    return lambda n: n["kind"] == kind and n["category"] == category


def started(tmp_path: Path, **alerts: str) -> tuple[DaemonProcess, Path, Path]:
    config = write_config(tmp_path, alerts={"group_interval": "0s", **alerts})
    log = tmp_path / "logs" / "app.log"
    log.parent.mkdir(exist_ok=True)
    log.touch()
    daemon = DaemonProcess(config)
    daemon.wait_ready()
    return daemon, config, log


def count_of(config: Path, fingerprint: str) -> int:
    return sum(a["count"] for a in status(config)["alerts"] if a["fingerprint"] == fingerprint)


def test_a_silence_from_the_cli_mutes_a_running_daemon_until_unsilenced(tmp_path: Path) -> None:
    """Opened → silenced → more errors are counted but not told (a later, unsilenced alert
    is told, so the daemon did look) → status shows the silence → unsilence: the hidden
    findings come in one update."""
    daemon, config, log = started(tmp_path)
    try:
        append(log, ERROR_LINE)
        (note,) = daemon.wait_for(kind_of("opened"))
        fingerprint = note["fingerprint"]
        code, out, _ = cli(config, "silence", fingerprint, "--for", "1h", "--comment", "deploy")
        assert code == 0
        silence_id = int(out)
        wait_until(lambda: f"silence #{silence_id} added by {USER}" in daemon.log(), 3)
        append(log, ERROR_LINE, ERROR_LINE)
        wait_until(lambda: count_of(config, fingerprint) == 3, 5, "the findings counted")
        append(log, OTHER_ERROR)
        daemon.wait_for(kind_of("opened", "rate_limit"))
        assert [n["kind"] for n in daemon.notifications() if n["fingerprint"] == fingerprint] == [
            "opened"
        ]
        (shown,) = status(config)["silences"]
        assert (shown["id"], shown["fingerprint"], shown["created_by"]) == (
            silence_id,
            fingerprint,
            USER,
        )
        assert cli(config, "unsilence", str(silence_id))[0] == 0
        lifted = time.monotonic()
        (update,) = daemon.wait_for(kind_of("updated"), timeout=5)
        assert time.monotonic() - lifted < 1.5  # taken up within the loop's 1 s
        assert (update["count"], update["new"]) == (3, 2)
        assert f"silence #{silence_id} (fingerprint={fingerprint}) lifted by {USER}" in (
            daemon.log()
        )
    finally:
        assert daemon.stop() == 0


def test_a_category_silence_that_expires_lets_messages_resume(tmp_path: Path) -> None:
    """`--for 2s` on a category: its new alert is not announced while the silence lasts,
    then it is, with everything counted meanwhile."""
    daemon, config, log = started(tmp_path)
    try:
        asked = time.monotonic()
        code, out, _ = cli(config, "silence", "--category", "rate_limit", "--for", "2s")
        assert code == 0
        wait_until(lambda: f"silence #{int(out)} added by" in daemon.log(), 3)
        append(log, OTHER_ERROR, OTHER_ERROR)
        append(log, ERROR_LINE)  # another category: told at once
        daemon.wait_for(kind_of("opened"))
        assert daemon.notifications()[0]["category"] != "rate_limit"
        (opened,) = daemon.wait_for(kind_of("opened", "rate_limit"), timeout=5)
        assert time.monotonic() - asked >= 2.0
        assert opened["count"] == 2
        assert f"silence #{int(out)} (category=rate_limit) ended" in daemon.log()
    finally:
        assert daemon.stop() == 0


def test_an_ack_from_the_cli_is_shown_and_stops_the_reminders(tmp_path: Path) -> None:
    """With repeat_interval 1s, an unacknowledged alert reminds ("repeated"); the acknowledged
    one tells its new findings as plain updates, each showing who acknowledged it."""
    daemon, config, log = started(tmp_path, repeat_interval="1s")
    try:
        append(log, ERROR_LINE, OTHER_ERROR)
        acked, other = (
            daemon.wait_for(kind_of("opened"))[0],
            daemon.wait_for(kind_of("opened", "rate_limit"))[0],
        )
        opened_at = time.time()
        code, _, _ = cli(config, "ack", acked["fingerprint"], "--comment", "on it")
        assert code == 0
        (shown,) = daemon.wait_for(kind_of("updated"), timeout=3)
        assert shown["acked_by"] == USER and shown["acked_at"]
        assert f"alert {acked['fingerprint']} acknowledged by {USER} (cli): on it" in daemon.log()
        # Past repeat_interval since the opening, a new finding is due a reminder.
        wait_until(lambda: time.time() > opened_at + 1.2, 3, "repeat_interval to pass")
        append(log, ERROR_LINE, OTHER_ERROR)
        daemon.wait_for(kind_of("repeated", "rate_limit"), timeout=5)
        (again,) = daemon.wait_for(lambda n: kind_of("updated")(n) and n["count"] == 2)
        assert again["acked_by"] == USER
        assert not [n for n in daemon.notifications() if kind_of("repeated")(n)]
        assert other["fingerprint"] != acked["fingerprint"]
        assert status(config)["acks"][0]["fingerprint"] == acked["fingerprint"]
    finally:
        assert daemon.stop() == 0


def test_silences_and_acks_made_while_the_daemon_is_stopped_hold_after_its_start(
    tmp_path: Path,
) -> None:
    """Both live in the state DB: the restarted daemon says which silences hold, shows the
    acknowledgement made meanwhile, and keeps the silenced alert quiet."""
    daemon, config, log = started(tmp_path)
    try:
        append(log, ERROR_LINE, OTHER_ERROR)
        acked = daemon.wait_for(kind_of("opened"))[0]["fingerprint"]
        muted = daemon.wait_for(kind_of("opened", "rate_limit"))[0]["fingerprint"]
    finally:
        assert daemon.stop() == 0
    assert cli(config, "ack", acked)[0] == 0
    code, out, _ = cli(config, "silence", muted, "--for", "1h")
    assert code == 0
    daemon = DaemonProcess(config)
    try:
        daemon.wait_ready()
        assert f"1 silence(s) active: #{int(out)} fingerprint={muted}" in daemon.log()
        (shown,) = daemon.wait_for(kind_of("updated"))
        assert shown["acked_by"] == USER
        append(log, OTHER_ERROR, ERROR_LINE)
        daemon.wait_for(lambda n: kind_of("updated")(n) and n["count"] == 2)
        wait_until(lambda: count_of(config, muted) == 2, 5, "the silenced alert counted")
        append(log, ERROR_LINE)  # a later step: anything the silenced alert was due came first
        daemon.wait_for(lambda n: kind_of("updated")(n) and n["count"] == 3)
        assert not [n for n in daemon.notifications() if n["fingerprint"] == muted]
    finally:
        assert daemon.stop() == 0
