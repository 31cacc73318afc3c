"""The state database: one transaction per batch, survives reopening, readable while written."""

from __future__ import annotations

from pathlib import Path

import pytest

from oai400d.errors import StateError
from oai400d.model import Alert, FileState, Notification
from oai400d.state import State


def alert(fp: str = "fp") -> Alert:
    return Alert(
        fingerprint=fp,
        category="rate_limit",
        rule="openai.rate_limit_exceeded",
        severity="warning",
        title="Rate limited",
        state="open",
        count=3,
        first_seen=1.0,
        last_seen=2.0,
        files=("a.log",),
        message="m",
        excerpt="e",
        fixes=("f",),
        docs=("d",),
    )


def note(fp: str = "fp", kind: str = "opened") -> Notification:
    return Notification(
        kind=kind,
        fingerprint=fp,
        category="rate_limit",
        severity="warning",
        title="t",
        count=3,
        first_seen="2026-11-25T10:00:00Z",
        last_seen="2026-11-25T10:00:01Z",
        files=("a.log",),
        fixes=("f",),
        docs=("d",),
        excerpt="e",
    )


def test_a_batch_is_written_together_and_read_back(tmp_path: Path) -> None:
    """Positions, alerts and notifications of one batch are all there after reopening."""
    path = str(tmp_path / "state.db")
    state = State(path)
    position = FileState("/l/a.log", 1, 2, "abc", 10, 500, 12)
    state.commit(files=[position], alerts=[alert()], notifications=[note(), note(kind="updated")])
    state.close()
    again = State(path)
    assert again.files() == [position]
    assert again.alerts()[0] == alert()
    assert [e.notification.kind for e in again.outbox_pending()] == ["opened", "updated"]


def test_a_failed_batch_leaves_nothing_behind(tmp_path: Path) -> None:
    """If anything in a batch fails, none of it is written."""
    state = State(str(tmp_path / "state.db"))
    bad = alert()
    object.__setattr__(bad, "files", {1, 2})  # not JSON-serialisable: the batch must fail
    with pytest.raises(TypeError):
        state.commit(
            files=[FileState("/x", 1, 1, "h", 1, 1, 1)], alerts=[bad], notifications=[note()]
        )
    assert state.files() == [] and state.outbox_depth() == 0


def test_delivery_bookkeeping(tmp_path: Path) -> None:
    """Delivered entries leave the queue; failed ones keep their attempt count and next time."""
    state = State(str(tmp_path / "state.db"))
    state.commit(notifications=[note("a"), note("b")])
    first, second = state.outbox_pending()
    state.delivered(first.id)
    state.delivery_failed(second.id, "slack 503", 99.0)
    (left,) = state.outbox_pending()
    assert (left.attempts, left.next_attempt, left.last_error) == (1, 99.0, "slack 503")
    assert state.outbox_depth() == 1


def test_readonly_view_while_writer_is_open(tmp_path: Path) -> None:
    """`oai400d status` reads a DB the daemon holds open (WAL)."""
    path = str(tmp_path / "state.db")
    writer = State(path)
    writer.commit(alerts=[alert()])
    reader = State(path, readonly=True)
    assert reader.alerts()[0].fingerprint == "fp"
    writer.commit(alerts=[alert("fp2")])
    assert {a.fingerprint for a in reader.alerts()} == {"fp", "fp2"}


def test_unusable_path_is_a_clear_error(tmp_path: Path) -> None:
    """A state path that cannot be created says which path and what to check."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StateError, match=r"state\.path"):
        State(str(blocker / "sub" / "state.db"))


def test_a_delivery_and_what_it_leaves_are_written_together(tmp_path: Path) -> None:
    """record_delivery marks entries delivered, keeps the addresses they left and drops the keys
    they made useless, in one transaction; delivery_targets reads several keys at once (and
    leaves out the ones without a row)."""
    state = State(str(tmp_path / "state.db"))
    state.commit(notifications=[note("a"), note("b"), note("c")])
    first, second, third = state.outbox_pending()
    state.remember_delivery("intent:1", "slack", "C1", "100.0")
    state.record_delivery(
        [first.id, second.id],
        "slack",
        {"a@x": ("C1", "1.5"), "channel-id": ("C1", "C1")},
        ["intent:1"],
        now=50.0,
    )
    assert [e.id for e in state.outbox_pending()] == [third.id]
    kept = state.delivery_targets(["a@x", "channel-id", "intent:1", "b@x"], "slack")
    assert kept == {"a@x": ("C1", "1.5"), "channel-id": ("C1", "C1")}
    assert state.delivery_targets(["a@x"], "console") == {}


def test_a_mark_remembered_once_keeps_its_first_value(tmp_path: Path) -> None:
    """An attempt's mark keeps the time of the first attempt: a second remember_delivery_once
    of the same key changes nothing (remember_delivery replaces)."""
    state = State(str(tmp_path / "state.db"))
    state.remember_delivery_once("intent:9", "slack", "C1", "100.000000")
    state.remember_delivery_once("intent:9", "slack", "C2", "200.000000")
    assert state.delivery_target("intent:9", "slack") == ("C1", "100.000000")
    state.remember_delivery("intent:9", "slack", "C2", "200.000000")
    assert state.delivery_target("intent:9", "slack") == ("C2", "200.000000")
