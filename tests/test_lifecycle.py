"""The alert lifecycle as one pure function: each transition and each boundary on fake times,
and the fleet owner applying the same rules (in-process, the store faked)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import pytest

from oai400d.alerts import AlertBook
from oai400d.config import AlertsSettings, Settings
from oai400d.fleet import FleetAlert, FleetStore, HostCount, Transition
from oai400d.fleetsync import FleetOwner, FleetSync
from oai400d.lifecycle import NEVER, Step, acknowledge, decide, merge, recover, silence_for
from oai400d.model import Ack, Alert, ProbeResult, Silence
from oai400d.state import SLACK_TARGET, State

# group_wait 10, group_interval 60, repeat_interval 3600, resolve_after 900
SETTINGS = AlertsSettings(group_wait=10, group_interval=60, repeat_interval=3600, resolve_after=900)
# resolve_after longer than repeat_interval: to see a reminder that is not due
LONG = SETTINGS.model_copy(update={"resolve_after": 10_000.0})
CATEGORY = "auth.invalid_api_key"


def alert(state: str = "pending", **fields: Any) -> Alert:
    """An alert first seen at 100 with 5 findings, in `state`; `fields` override the rest."""
    base = Alert(
        fingerprint="fp1",
        category=CATEGORY,
        rule="openai.invalid_api_key",
        severity="critical",
        title="OpenAI key rejected (401)",
        state=state,
        count=5,
        first_seen=100.0,
        last_seen=100.0,
        files=("/var/log/app.log",),
        message="Incorrect API key provided",
        excerpt="",
        fixes=("Rotate the key",),
        docs=(),
    )
    return replace(base, **fields)


def announced(**fields: Any) -> Alert:
    """A log alert opened at 110 with its 5 findings told: nothing new since."""
    told = {
        "last_seen": 110.0,
        "opened_at": 110.0,
        "last_notified": 110.0,
        "last_reminder": 110.0,
        "notified_count": 5,
    }
    return alert("open", **{**told, **fields})


def probe(state: str = "open", **fields: Any) -> Alert:
    """A probe's alert opened at 100, failing since (3 runs counted, 1 told)."""
    told = {
        "fingerprint": "probe:api_key",
        "source": "probe",
        "count": 3,
        "last_seen": 300.0,
        "opened_at": 100.0,
        "last_notified": 100.0,
        "last_reminder": 100.0,
        "notified_count": 1,
    }
    return alert(state, **{**told, **fields})


def silence(starts: float = 0.0, ends: float = 500.0, category: str | None = None) -> Silence:
    """A silence of fp1 (or, given `category`, of that category) from `starts` to `ends`."""
    fingerprint = None if category else "fp1"
    return Silence(1, fingerprint, category, starts, ends, "", "alice", starts)


@dataclass(frozen=True)
class Row:
    """One case: the alert, the silences in force, `now`; the step expected."""

    name: str
    alert: Alert
    now: float
    action: str
    kind: str | None = None
    new: int = 0
    due: float | None = None  # expected for "wait" only
    silences: tuple[Silence, ...] = ()
    settings: AlertsSettings = SETTINGS


ROWS = [
    # pending: gathering its first burst for group_wait
    Row("pending just before group_wait", alert(), 109.9, "wait", due=110.0),
    Row("pending exactly at group_wait", alert(), 110.0, "open", "opened", 5),
    Row("pending well past group_wait", alert(), 5000.0, "open", "opened", 5),
    Row(
        "pending under a silence waits for its end",
        alert(last_seen=150.0),
        200.0,
        "wait",
        due=500.0,
        silences=(silence(),),
    ),
    Row(
        "pending under a long silence waits until it would have gone quiet",
        alert(last_seen=150.0),
        200.0,
        "wait",
        due=1050.0,
        silences=(silence(ends=5000.0),),
    ),
    Row(
        "pending under a silence, quiet just short of resolve_after",
        alert(),
        999.9,
        "wait",
        due=1000.0,
        silences=(silence(ends=5000.0),),
    ),
    Row(
        "pending under a silence that went quiet is dropped unannounced",
        alert(),
        1000.0,
        "drop",
        silences=(silence(ends=5000.0),),
    ),
    Row(
        "pending at the very end of its silence opens",
        alert(last_seen=400.0),
        500.0,
        "open",
        "opened",
        5,
        silences=(silence(),),
    ),
    Row(
        "pending before a silence starts opens",
        alert(),
        110.0,
        "open",
        "opened",
        5,
        silences=(silence(starts=200.0),),
    ),
    Row(
        "pending under a category silence waits",
        alert(),
        110.0,
        "wait",
        due=500.0,
        silences=(silence(category=CATEGORY),),
    ),
    Row(
        "a silence of another category changes nothing",
        alert(),
        110.0,
        "open",
        "opened",
        5,
        silences=(silence(category="rate_limit"),),
    ),
    Row(
        "a pending probe alert under a silence is not dropped on quiet time",
        alert(source="probe"),
        5000.0,
        "wait",
        due=10_000.0,
        silences=(silence(ends=10_000.0),),
    ),
    # backlog: never announced alone, gone without a word after resolve_after
    Row("backlog before resolve_after", alert("backlog"), 999.0, "wait", due=1000.0),
    Row("backlog exactly at resolve_after", alert("backlog"), 1000.0, "drop"),
    Row(
        "backlog ignores silences",
        alert("backlog"),
        1000.0,
        "drop",
        silences=(silence(ends=5000.0),),
    ),
    # open log alerts: updates, reminders, resolution
    Row("open with nothing new waits to resolve", announced(), 500.0, "wait", due=1010.0),
    Row(
        "open with new findings just before group_interval",
        announced(count=8, last_seen=150.0),
        169.9,
        "wait",
        due=170.0,
    ),
    Row(
        "open with new findings at group_interval",
        announced(count=8, last_seen=150.0),
        170.0,
        "update",
        "updated",
        3,
    ),
    Row(
        "open, quiet just short of resolve_after",
        announced(count=8, last_seen=150.0, last_notified=170.0, notified_count=8),
        1049.9,
        "wait",
        due=1050.0,
    ),
    Row(
        "open, quiet exactly resolve_after",
        announced(count=8, last_seen=150.0, last_notified=170.0, notified_count=8),
        1050.0,
        "resolve",
        "resolved",
        0,
    ),
    Row(
        "resolution tells what was not told yet",
        announced(count=8, last_seen=150.0),
        1050.0,
        "resolve",
        "resolved",
        3,
    ),
    Row(
        "still happening after repeat_interval: a reminder, before a due update",
        announced(count=8, last_seen=3700.0, last_notified=3600.0),
        3710.0,
        "repeat",
        "repeated",
        3,
    ),
    Row(
        "still happening, just before repeat_interval",
        announced(count=8, last_seen=3700.0, last_notified=3680.0, notified_count=8),
        3709.9,
        "wait",
        due=3710.0,
    ),
    Row(
        "an acknowledged alert updates but does not remind",
        announced(count=8, last_seen=3700.0, acked_at=200.0, acked_by="bob"),
        3710.0,
        "update",
        "updated",
        3,
    ),
    Row(
        "no reminder when nothing happened since the last one",
        announced(),
        3710.0,
        "wait",
        due=10_110.0,  # its resolution
        settings=LONG,
    ),
    Row(
        "a reminder once something happened since the last one",
        announced(last_seen=3000.0),
        3710.0,
        "repeat",
        "repeated",
        settings=LONG,
    ),
    Row(
        "open under a silence counts on, waiting for the silence's end",
        announced(count=8, last_seen=290.0),
        300.0,
        "wait",
        due=500.0,
        silences=(silence(),),
    ),
    Row(
        "open under a silence is still resolved, and says so",
        announced(count=8, last_seen=150.0),
        1050.0,
        "resolve",
        "resolved",
        3,
        silences=(silence(ends=5000.0),),
    ),
    Row(
        "open at the very end of its silence tells what it hid",
        announced(count=8, last_seen=490.0),
        500.0,
        "update",
        "updated",
        3,
        silences=(silence(),),
    ),
    # probe alerts: resolve on probe successes, remind every repeat_interval
    Row("a probe alert has no update deadline", probe(), 3699.0, "wait", due=3700.0),
    Row("a probe alert reminds at repeat_interval", probe(), 3700.0, "repeat", "repeated", 2),
    Row(
        "a probe alert does not resolve on quiet time",
        probe(last_seen=100.0),
        3000.0,
        "wait",
        due=3700.0,
    ),
    Row(
        "an acknowledged probe alert waits for its probe",
        probe(acked_at=200.0, acked_by="bob"),
        9000.0,
        "wait",
        due=NEVER,
    ),
    Row(
        "a silenced probe alert waits for the silence's end",
        probe(fingerprint="fp1"),
        3700.0,
        "wait",
        due=5000.0,
        silences=(silence(ends=5000.0),),
    ),
    Row("a resolved alert has nothing left", alert("resolved"), 9000.0, "wait", due=NEVER),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_the_lifecycle_table(row: Row) -> None:
    """Each rule falls due exactly at its boundary, in its order of precedence."""
    step = decide(row.alert, row.now, row.settings, row.silences)
    assert (step.action, step.kind, step.new) == (row.action, row.kind, row.new)
    if row.action == "wait":
        assert step.alert is row.alert
        assert step.due == row.due
        assert step.due > row.now  # a past wake-up would spin the main loop
    else:
        assert step.due == row.now


def test_what_each_step_writes_into_the_alert() -> None:
    """Opening stamps every time; an update and a reminder move what was told; a resolution
    tells the rest; a drop keeps notified_count."""
    opened = decide(alert(), 110.0, SETTINGS).alert
    assert (opened.state, opened.opened_at, opened.last_notified, opened.last_reminder) == (
        "open",
        110.0,
        110.0,
        110.0,
    )
    assert opened.notified_count == 5
    update = decide(announced(count=8, last_seen=150.0), 170.0, SETTINGS).alert
    assert (update.last_notified, update.last_reminder, update.notified_count) == (170, 110, 8)
    reminder = decide(probe(), 3700.0, SETTINGS).alert
    assert (reminder.last_notified, reminder.last_reminder, reminder.notified_count) == (
        3700,
        3700,
        3,
    )
    resolved = decide(announced(count=8, last_seen=150.0), 1050.0, SETTINGS).alert
    assert (resolved.state, resolved.resolved_at, resolved.notified_count) == ("resolved", 1050, 8)
    dropped = decide(alert("backlog"), 1000.0, SETTINGS).alert
    assert (dropped.state, dropped.resolved_at, dropped.notified_count) == ("resolved", 1000, 0)


def test_following_due_times_walks_an_alert_through_its_life() -> None:
    """Woken only at the times `due` gives, an alert opens, tells what came after, is reminded
    of and resolves, once each, and is never woken for nothing twice in a row."""
    settings = SETTINGS.model_copy(update={"resolve_after": 5000.0})
    a, now, seen = alert(), 100.0, []
    for _ in range(20):
        step = decide(a, now, settings)
        if step.action == "wait":
            if step.due == NEVER:
                break
            assert not seen or seen[-1] != "wait"
            now = step.due
        else:
            a = step.alert
            if a.state == "open" and a.last_seen < 3000:
                a = replace(a, count=a.count + 1, last_seen=3000.0)  # still happening at 3000
        seen.append(step.action)
    assert [s for s in seen if s != "wait"] == ["open", "update", "repeat", "resolve"]


def test_the_first_matching_active_silence_is_the_one_in_force() -> None:
    """A silence counts from its start up to, not including, its end."""
    early, late = silence(0, 500), replace(silence(200, 900), id=2)
    assert silence_for(alert(), [early, late], 499.0) is early
    assert silence_for(alert(), [early, late], 500.0) is late
    assert silence_for(alert(), [early, late], 900.0) is None


# --- steps on input ---------------------------------------------------------------------------


def test_an_acknowledgement_is_shown_on_an_announced_unsilenced_alert_only() -> None:
    """Shown as an update with what is new; recorded silently when pending or silenced; an
    earlier episode's or one already applied changes nothing."""
    ack = Ack("fp1", "alice", 200.0)
    shown = acknowledge(announced(count=8), ack, 200.0)
    assert shown is not None and (shown.kind, shown.new) == ("updated", 3)
    assert (shown.alert.acked_by, shown.alert.acked_at, shown.alert.notified_count) == (
        "alice",
        200.0,
        8,
    )
    for quiet in (
        acknowledge(alert(), ack, 200.0),
        acknowledge(announced(), ack, 200.0, [silence()]),
    ):
        assert quiet is not None and quiet.kind is None and quiet.alert.acked_by == "alice"
    assert acknowledge(announced(), Ack("fp1", "alice", 50.0), 200.0) is None
    assert acknowledge(announced(acked_at=200.0), ack, 201.0) is None
    assert acknowledge(alert("resolved"), ack, 200.0) is None


def test_a_probe_recovery_resolves_and_tells_only_an_announced_alert() -> None:
    """Recovery: 'resolved' for an open alert, a silent end for a pending one."""
    told = recover(probe(), 400.0)
    assert told is not None and (told.action, told.kind, told.new) == ("resolve", "resolved", 2)
    silent = recover(probe("pending"), 400.0)
    assert silent is not None and silent.kind is None and silent.alert.state == "resolved"
    assert recover(probe("resolved"), 400.0) is None


def test_the_store_coming_back_merges_what_this_host_kept_alone() -> None:
    """An announced alert says it was merged; a pending one just goes; others stay."""
    merged = merge(announced(count=8), 400.0)
    assert merged is not None and (merged.kind, merged.new) == ("merged", 3)
    assert merged.alert.state == "resolved"
    gone = merge(alert(), 400.0)
    assert gone is not None and gone.kind is None and gone.alert.state == "resolved"
    assert merge(alert("backlog"), 400.0) is None


# --- the book applies the same rules ----------------------------------------------------------


def test_the_book_wakes_for_nothing_never_with_a_failing_probe() -> None:
    """A probe alert counting failures after its message has no update due: the main loop
    sleeps until the reminder instead of spinning."""
    book = AlertBook(SETTINGS, host="h")
    failing = ProbeResult("api_key", "critical", "key rejected")
    book.probe_failed(failing, 1000.0)
    assert [n.kind for n in book.tick(1000.0)] == ["opened"]
    book.probe_failed(failing, 1060.0)
    assert book.tick(1200.0) == []
    assert book.next_due(1200.0) == pytest.approx(3400.0)


def test_the_book_and_the_function_agree() -> None:
    """tick applies `decide` to each alert; next_due is the soonest `due`."""
    book = AlertBook(SETTINGS, [alert(), announced(fingerprint="fp2", count=8)], host="h")
    assert book.next_due(105.0) == 5.0
    assert [(n.fingerprint, n.kind) for n in book.tick(110.0)] == [("fp1", "opened")]
    assert book.next_due(110.0) == 60.0  # fp2's update at 170


# --- the fleet owner applies the same rules ---------------------------------------------------


def fleet_settings(**alerts: float) -> Settings:
    """Host h1's settings with a fleet store, SETTINGS' alert timing unless `alerts` says."""
    return Settings.model_validate(
        {
            "state": {"path": ":memory:", "fleet": "postgresql://oai400d@db.invalid/oai400d"},
            "fleet": {"host": "h1"},
            "alerts": {**SETTINGS.model_dump(), **alerts},
        }
    )


def fleet_sync(**alerts: float) -> FleetOwner:
    """The owner part of a FleetSync of host h1 (the one that runs the lifecycle), whose store
    is never called: only its lifecycle is used."""
    owner = FleetSync(fleet_settings(**alerts), cast(FleetStore, None), lambda: None).owner
    owner.context = lambda category: f"probes say nothing about {category}"
    return owner


def view(state: str = "pending", **fields: Any) -> FleetAlert:
    """The fleet-wide alert fp1: 5 findings from two hosts, first seen at 100."""
    base = FleetAlert(
        fingerprint="fp1",
        count=5,
        first_seen=100.0,
        last_seen=100.0,
        hosts=(HostCount("h1", 3, 100.0), HostCount("h2", 2, 100.0)),
        data={"category": CATEGORY, "title": "OpenAI key rejected (401)"},
        owner="h1",
        lease_until=None,
        message=None,
        episode=3,
        state=state,
        host_count=2,
    )
    return replace(base, **fields)


def test_the_fleet_owner_opens_a_pending_alert_at_group_wait() -> None:
    """The owned alert follows the same table: nothing before group_wait, 'opened' at it."""
    sync = fleet_sync()
    assert sync._lifecycle(view(), 109.0) is None
    result = sync._lifecycle(view(), 110.0)
    assert result is not None
    change, (opened,) = result
    assert (change.fingerprint, change.episode, change.state, change.expect_count) == (
        "fp1",
        3,
        "open",
        None,
    )
    assert change.lifecycle["opened_at"] == 110.0 and change.lifecycle["notified_count"] == 5
    assert (opened.kind, opened.count, opened.host) == ("opened", 5, "h1")
    assert opened.context == f"probes say nothing about {CATEGORY}"


def test_the_fleet_owner_resolves_only_if_no_finding_came_in() -> None:
    """A resolution is written on condition that the fleet count is still the one it saw."""
    told = {"notified_count": 5, "last_notified": 110.0, "last_reminder": 110.0}
    result = fleet_sync()._lifecycle(view("open", lifecycle=told), 1000.0)
    assert result is not None
    change, (resolved,) = result
    assert (change.state, change.expect_count, resolved.kind) == ("resolved", 5, "resolved")


def test_the_fleet_owner_shows_an_ack_once() -> None:
    """A fleet-wide acknowledgement is shown in an update telling every finding, then never
    again."""
    told = {"notified_count": 2, "last_notified": 110.0, "last_reminder": 110.0}
    sync = fleet_sync()
    sync._acks = {"fp1": Ack("fp1", "alice", 300.0)}
    result = sync._lifecycle(view("open", last_seen=290.0, lifecycle=told), 300.0)
    assert result is not None
    change, shown = result
    assert [(n.kind, n.new, n.acked_by) for n in shown] == [("updated", 3, "alice")]
    assert change.lifecycle["acked_by"] == "alice" and change.lifecycle["notified_count"] == 5
    applied = view("open", last_seen=290.0, lifecycle=dict(change.lifecycle))
    assert sync._lifecycle(applied, 301.0) is None


def test_the_fleet_owner_applies_an_ack_and_the_clock_in_one_change() -> None:
    """An acknowledgement and a due resolution make one transition and two messages."""
    told = {"notified_count": 2, "last_notified": 110.0, "last_reminder": 110.0}
    sync = fleet_sync()
    sync._acks = {"fp1": Ack("fp1", "alice", 990.0)}
    result = sync._lifecycle(view("open", lifecycle=told), 1000.0)
    assert result is not None
    change, shown = result
    assert [n.kind for n in shown] == ["updated", "resolved"]
    assert (change.state, change.expect_count, change.lifecycle["acked_by"]) == (
        "resolved",
        5,
        "alice",
    )


def test_fleet_wide_silences_hold_the_owner_s_messages() -> None:
    """A pending alert under a fleet-wide silence is not announced until it ends."""
    sync = fleet_sync()
    sync.silences = [silence(ends=500.0)]
    assert sync._lifecycle(view(last_seen=400.0), 200.0) is None
    result = sync._lifecycle(view(last_seen=400.0), 500.0)
    assert result is not None and [n.kind for n in result[1]] == ["opened"]


def test_a_fleet_probe_alert_resolves_after_runs_with_no_failure_anywhere() -> None:
    """A probe's fleet alert resolves when no host added for 2.5 probe runs (at the least
    resolve_after), whatever resolve_after says."""
    sync = fleet_sync(resolve_after=60.0)  # status page runs every 120 s: 300 s of quiet
    told = {"notified_count": 5, "last_notified": 110.0, "last_reminder": 110.0}
    status = view("open", fingerprint="probe:status_page", lifecycle=told)
    assert sync._lifecycle(status, 399.0) is None
    result = sync._lifecycle(status, 400.0)
    assert result is not None and result[0].state == "resolved"


class OwnerStore:
    """The store as the fleet owner uses it: the leases it grants (each alert's previous owner
    in `before`, this host's by default), the fleet-wide views, the transitions it writes (all,
    or none with `takes=False`), where the messages are, the leases given up."""

    def __init__(self, *views: FleetAlert, takes: bool = True) -> None:
        self.views = {v.fingerprint: v for v in views}
        self.before: dict[str, str | None] = {}
        self.takes = takes
        self.advanced: list[Transition] = []
        self.messages: dict[str, dict[str, Any]] = {}
        self.released: list[str] = []

    def claim(self, fingerprints: list[str], host: str, ttl: float) -> dict[str, str | None]:
        return {fp: self.before.get(fp, host) for fp in fingerprints if fp in self.views}

    def alerts(self, fingerprints: list[str]) -> list[FleetAlert]:
        return [self.views[fp] for fp in sorted(fingerprints) if fp in self.views]

    def advance_many(self, host: str, changes: list[Transition]) -> set[str]:
        self.advanced.extend(changes)
        return {change.fingerprint for change in changes} if self.takes else set()

    def record_message(self, fingerprint: str, host: str, message: dict[str, Any]) -> bool:
        self.messages[fingerprint] = message
        return True

    def release_lease(self, fingerprint: str, host: str) -> bool:
        self.released.append(fingerprint)
        return True


def fleet_owner(store: OwnerStore, pokes: list[str]) -> FleetOwner:
    """Host h1's FleetOwner on `store`; each poke of the outbox is counted in `pokes`."""
    return FleetOwner(fleet_settings(), cast(FleetStore, store), "h1", lambda: pokes.append("poke"))


def test_the_fleet_owner_announces_a_change_once_the_store_wrote_it(tmp_path: Path) -> None:
    """An alert this host saw is leased and its due transition written to the store; its
    notification, with the fleet's hosts and the episode's message name, goes into the outbox
    in one commit, and the outbox is poked once. Three statements: claim, alerts, advance."""
    store = OwnerStore(view())
    pokes: list[str] = []
    owner = fleet_owner(store, pokes)
    owner.saw(["fp1"], 100.0)
    state = State(str(tmp_path / "state.db"))
    owner.own(state, 110.0)
    assert [(t.fingerprint, t.state) for t in store.advanced] == [("fp1", "open")]
    (entry,) = state.outbox_waiting()
    sent = entry.notification
    assert (sent.kind, sent.host, sent.hosts, sent.host_count, sent.episode) == (
        "opened",
        "h1",
        ("h1", "h2"),
        2,
        "fleet3",
    )
    assert (pokes, owner.round_trips) == (["poke"], 3)
    state.close()


def test_the_fleet_owner_announces_nothing_the_store_did_not_write(tmp_path: Path) -> None:
    """A transition the store refused (the lease went, or findings came in) is not notified:
    the alert is looked at again next round."""
    store = OwnerStore(view(), takes=False)
    pokes: list[str] = []
    owner = fleet_owner(store, pokes)
    owner.saw(["fp1"], 100.0)
    state = State(str(tmp_path / "state.db"))
    owner.own(state, 110.0)
    assert len(store.advanced) == 1
    assert (state.outbox_waiting(), pokes) == ([], [])
    state.close()


def test_a_new_fleet_owner_edits_the_message_of_the_one_before(tmp_path: Path) -> None:
    """Taking an alert over, the owner remembers where the previous owner's message is (its
    outbox edits it, never posts a second); the store is not told what it already knows."""
    posted = {"channel": "C1", "ts": "1700000000.000100", "key": "fp1@fleet3"}
    store = OwnerStore(view("open", message=posted))
    store.before["fp1"] = "h2"
    owner = fleet_owner(store, [])
    owner.saw(["fp1"], 100.0)
    state = State(str(tmp_path / "state.db"))
    owner.own(state, 110.0)
    assert state.delivery_target("fp1@fleet3", SLACK_TARGET) == ("C1", "1700000000.000100")
    assert store.messages == {}
    state.close()


def test_the_fleet_owner_tells_the_store_where_its_message_is_and_releases_on_stopping(
    tmp_path: Path,
) -> None:
    """Once this host's outbox posted the episode's message, the store learns where it is (one
    statement); stopping, the owner tells it again for every owned alert still unknown and
    gives every lease up."""
    store = OwnerStore(view("open"))
    owner = fleet_owner(store, [])
    owner.saw(["fp1"], 100.0)
    state = State(str(tmp_path / "state.db"))
    state.remember_delivery("fp1@fleet3", SLACK_TARGET, "C1", "1.0")
    owner.own(state, 110.0)
    assert store.messages == {"fp1": {"channel": "C1", "ts": "1.0", "key": "fp1@fleet3"}}
    assert owner.round_trips == 3  # claim, alerts, the message
    store.messages.clear()
    owner.release(state)
    assert store.messages == {"fp1": {"channel": "C1", "ts": "1.0", "key": "fp1@fleet3"}}
    assert store.released == ["fp1"]
    state.close()


def test_a_step_is_a_small_frozen_record() -> None:
    """Steps are values: the caller keeps the alert it carries."""
    step = Step("wait", alert())
    with pytest.raises(AttributeError):
        step.action = "open"  # type: ignore[misc]
