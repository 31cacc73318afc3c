"""The state database: one transaction per batch, survives reopening, readable while written."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pytest

from oai400d.errors import StateError
from oai400d.model import Alert, FileState, FleetDelta, JournalPosition, Route
from oai400d.state import ProbeRecord, State
from oai400d.state.connection import StateConnection
from oai400d.state.delivery_table import DeliveryTable
from oai400d.state.positions import Positions

from .samples import note, stored_alert


def alert(fp: str = "fp") -> Alert:
    return stored_alert(fp)


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
    assert [e.notification.kind for e in again.outbox_waiting()] == ["opened", "updated"]


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
    state.register_target(Route("slack"))
    state.commit(notifications=[note("a"), note("b")])
    first, second = state.outbox_pending("slack")
    state.delivered(first.id, "slack")
    state.delivery_failed(second.id, "slack", "slack 503", 99.0)
    (left,) = state.outbox_pending("slack")
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
    state.register_target(Route("slack"))
    state.commit(notifications=[note("a"), note("b"), note("c")])
    first, second, third = state.outbox_pending("slack")
    state.remember_delivery("intent:1", "slack", "C1", "100.0")
    state.record_delivery(
        [first.id, second.id],
        "slack",
        {"a@x": ("C1", "1.5"), "channel-id": ("C1", "C1")},
        ["intent:1"],
        now=50.0,
    )
    assert [e.id for e in state.outbox_pending("slack")] == [third.id]
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


def _raw(path: str, sql: str) -> list[tuple[object, ...]]:
    """What the DB file holds, read by a connection of its own (not through State)."""
    with closing(sqlite3.connect(path)) as db:
        return list(db.execute(sql).fetchall())


def test_the_clock_passed_in_stamps_what_callers_do_not_date(tmp_path: Path) -> None:
    """Without a `now`, a batch's positions and notifications, a delivery and a silence's creation
    take the State's clock, not the wall clock."""
    path = str(tmp_path / "state.db")
    now = [1000.0]
    state = State(path, clock=lambda: now[0])
    state.register_target(Route("slack"))
    state.commit(
        files=[FileState("/l/a.log", 1, 2, "abc", 10, 500, 12)],
        journals=[JournalPosition("app", "s=1", 0)],
        notifications=[note("a"), note("b")],
    )
    assert state.outbox_oldest() == 1000.0
    assert state.journal_positions() == [(JournalPosition("app", "s=1", 0), 1000.0)]
    first, second = state.outbox_pending("slack")
    now[0] = 1005.0
    state.delivered(first.id, "slack")
    now[0] = 1007.0
    state.record_delivery([second.id], "slack", {})
    assert state.add_silence("fp", None, 1.0, 2.0, "", "alice", "cli").created == 1007.0
    assert _raw(path, "SELECT updated FROM files") == [(1000.0,)]
    assert _raw(path, "SELECT delivered FROM outbox ORDER BY id") == [(1005.0,), (1007.0,)]


def test_a_batch_failing_in_its_last_part_leaves_nothing_of_the_others(tmp_path: Path) -> None:
    """The fleet's findings are written last in a batch: when they fail, the positions, alerts
    and notifications written before them in the same transaction are rolled back too."""
    state = State(str(tmp_path / "state.db"))
    unserialisable = FleetDelta("fp", 1, 1.0, 1.0, {"when": {1, 2}})
    with pytest.raises(TypeError):
        state.commit(
            files=[FileState("/x", 1, 1, "h", 1, 1, 1)],
            alerts=[alert()],
            notifications=[note()],
            fleet=[unserialisable],
        )
    assert state.files() == [] and state.alerts() == [] and state.outbox_depth() == 0
    assert state.fleet_queued() == 0


def test_pruning_forgets_only_old_resolved_alerts_and_old_delivered_notifications(
    tmp_path: Path,
) -> None:
    """prune_resolved drops resolved alerts last seen, and notifications delivered, before the
    time; a resolved alert seen since, an open alert however old, a notification not yet
    delivered, and the latest of an alert not over (what Alertmanager is told again) stay."""
    path = str(tmp_path / "state.db")
    state = State(path)
    state.register_target(Route("slack"))
    old = replace(alert("old"), state="resolved", last_seen=5.0)
    recent = replace(alert("recent"), state="resolved", last_seen=50.0)
    state.commit(
        alerts=[old, recent, alert("live")],
        notifications=[
            note("a"),
            note("a", "updated"),
            note("b"),
            note("c"),
            note("c", "resolved"),
        ],
    )
    first_a, last_a, waiting, *c_entries = state.outbox_pending("slack")
    for entry in (first_a, last_a, *c_entries):
        state.delivered(entry.id, "slack", now=10.0)
    state.prune_resolved(older_than=20.0)
    kept = state.alerts(("open", "resolved"))
    assert sorted(a.fingerprint for a in kept) == ["live", "recent"]
    assert state.alert("old") is None
    assert _raw(path, "SELECT id FROM outbox ORDER BY id") == [(last_a.id,), (waiting.id,)]
    assert _raw(path, "SELECT entry FROM outbox_targets ORDER BY entry") == [
        (last_a.id,),
        (waiting.id,),
    ]


def test_the_fleet_queue_keeps_a_batch_and_its_number_until_the_store_confirms_it(
    tmp_path: Path,
) -> None:
    """Waiting findings of one alert are summed; a batch unconfirmed is handed out again as it
    was, findings queued meanwhile wait for the next number; the instance id survives
    reopening the DB."""
    path = str(tmp_path / "state.db")
    state = State(path)
    assert state.fleet_batch() is None and state.fleet_queued() == 0
    state.commit(fleet=[FleetDelta("fp", 2, 10.0, 11.0, {"title": "t"})])
    state.commit(fleet=[FleetDelta("fp", 3, 5.0, 12.0, {}), FleetDelta("fp2", 1, 1.0, 1.0, {})])
    assert state.fleet_queued() == 6
    first = (
        1,
        [FleetDelta("fp", 5, 5.0, 12.0, {"title": "t"}), FleetDelta("fp2", 1, 1.0, 1.0, {})],
    )
    assert state.fleet_batch() == first
    state.commit(fleet=[FleetDelta("fp", 1, 20.0, 20.0, {})])
    assert state.fleet_batch() == first  # not confirmed: the same batch, the same number
    state.fleet_sent(1)
    assert state.fleet_batch() == (2, [FleetDelta("fp", 1, 20.0, 20.0, {})])
    instance = state.fleet_instance()
    state.close()
    again = State(path)
    assert again.fleet_instance() == instance
    again.fleet_sent(2)
    assert again.fleet_batch() is None and again.fleet_queued() == 0


def test_a_slack_press_seen_before_is_refused_until_it_is_forgotten(tmp_path: Path) -> None:
    """claim_action refuses ids seen within `keep` (and records none of a refused press);
    older ids are forgotten, so the same id is accepted again."""
    state = State(str(tmp_path / "state.db"))
    assert state.claim_action(["envelope:e1", "action:a1"], now=100.0)
    assert not state.claim_action(["envelope:e2", "action:a1"], now=101.0)
    assert state.claim_action(["envelope:e2"], now=102.0)
    assert not state.claim_action(["envelope:e1"], now=100.0 + 86400.0 - 1)
    assert state.claim_action(["envelope:e1"], now=100.0 + 86400.0 + 1)


def test_probe_results_and_meta_values_are_kept_by_name(tmp_path: Path) -> None:
    """A probe's latest result replaces its earlier one, results come back by name; meta
    values are read back, the schema version among them."""
    state = State(str(tmp_path / "state.db"))
    api = ProbeRecord("api", "ok", "fine", 120, 5.0, 0, 3, {"model": "x"})
    status = replace(api, name="status", latency_ms=None, data={})
    state.save_probe(status)
    state.save_probe(api)
    state.save_probe(replace(api, status="failing", failures=1, successes=0))
    assert state.probes() == [replace(api, status="failing", failures=1, successes=0), status]
    assert state.get_meta("probe.api") is None
    state.set_meta("probe.api", "5.0")
    assert state.get_meta("probe.api") == "5.0"
    assert state.get_meta("schema_version") == "1"


def test_a_read_only_look_at_an_older_db_sees_no_journals_and_no_queue(tmp_path: Path) -> None:
    """A DB from before journals and the fleet queue, opened read-only (`oai400d status` on an
    old host), answers with nothing rather than an error."""
    path = str(tmp_path / "state.db")
    State(path).close()
    with closing(sqlite3.connect(path)) as db:
        db.executescript("DROP TABLE journal_cursors; DROP TABLE fleet_queue;")
    reader = State(path, readonly=True)
    assert reader.journal_positions() == [] and reader.fleet_queued() == 0


def test_a_table_group_needs_only_the_connection(tmp_path: Path) -> None:
    """A group works on a StateConnection of its own: what a transaction that fails wrote is
    not there; an alert's messages are found for each of its episodes and no
    other alert's."""
    connection = StateConnection(str(tmp_path / "state.db"))
    with pytest.raises(RuntimeError), connection.transaction() as db:
        db.execute("INSERT INTO files VALUES ('/x', 1, 1, 'h', 1, 1, 1, 1.0)")
        raise RuntimeError("the rest of the batch failed")
    assert Positions(connection).files() == []
    deliveries = DeliveryTable(connection)
    for key, ts in (("fp", "1.0"), ("fp@1", "2.0"), ("fp@2", "3.0"), ("fpx@1", "4.0")):
        deliveries.remember_delivery(key, "slack", "C1", ts)
    assert sorted(deliveries.deliveries_of("fp", "slack")) == [
        ("C1", "1.0"),
        ("C1", "2.0"),
        ("C1", "3.0"),
    ]
    assert deliveries.deliveries_of("fp", "console") == []
    deliveries.forget_delivery("fp@1", "slack")
    assert deliveries.delivery_target("fp@1", "slack") is None
    connection.close()
