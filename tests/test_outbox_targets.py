"""One outbox, several notifiers: each has its own rows, routing and delivery state, so one
failing receiver never delays or repeats another (in-process, a fake clock, real SQLite)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from oai400d.config import Settings
from oai400d.errors import PermanentDeliveryError, TransientDeliveryError
from oai400d.metrics import state_families
from oai400d.model import Notification, Route
from oai400d.notify import Attempt, Delivered, OutboxWorker
from oai400d.state import State, TargetCounts
from oai400d.wiring import Delivery

from .samples import note

START = 1_800_000_000.0


@dataclass
class FakeClock:
    now: float = START

    def __call__(self) -> float:
        return self.now


class Receiver:
    """A notifier that only posts: it keeps what it was sent and fails while told to."""

    min_interval = 0.0
    edits_messages = False
    digest_threshold = 0

    def __init__(self, name: str, resend_interval: float = 0.0) -> None:
        self.name = name
        self.resend_interval = resend_interval
        self.sent: list[tuple[str, str]] = []  # (fingerprint, kind), in order
        self.resent: list[list[tuple[str, str]]] = []
        self.failing: Exception | None = None

    def send(self, notification: Notification, attempt: Attempt) -> Delivered:
        if self.failing is not None:
            raise self.failing
        self.sent.append((notification.fingerprint, notification.kind))
        return Delivered()

    def send_digest(self, notifications: Sequence[Notification], attempt: Attempt) -> Delivered:
        if self.failing is not None:
            raise self.failing
        self.resent.append([(n.fingerprint, n.kind) for n in notifications])
        return Delivered()

    def describe(self) -> str:
        return f"the receiver {self.name}"


def severe(
    fp: str, severity: str, kind: str = "opened", category: str = "rate_limit"
) -> Notification:
    return replace(note(fp, kind), severity=severity, category=category)


@pytest.fixture
def state(tmp_path: Path) -> State:
    return State(str(tmp_path / "state.db"))


def worker(
    state: State, notifier: Receiver, clock: FakeClock, route: Route | None = None
) -> OutboxWorker:
    return OutboxWorker(state.path, notifier, clock=clock, retry_max=10.0, route=route)


def test_a_receiver_down_neither_delays_nor_repeats_another(state: State) -> None:
    """While one receiver fails, the other gets each notification once, at once; the failing
    one gets them all later, once each, in the order they were queued; meanwhile its queue
    and failures show in the per-notifier gauges."""
    clock = FakeClock()
    slack, pager = Receiver("slack"), Receiver("pagerduty")
    slack_worker, pager_worker = worker(state, slack, clock), worker(state, pager, clock)
    for w in (slack_worker, pager_worker):
        w.drain(state)  # registered before anything is queued
    pager.failing = TransientDeliveryError("PagerDuty answered 500")
    state.commit(notifications=[note("a"), note("b")])
    for _ in range(3):
        slack_worker.drain(state)
        pager_worker.drain(state)
        state.commit(notifications=[note("a", "updated")])
        clock.now += 30.0
    slack_worker.drain(state)
    assert slack.sent == [("a", "opened"), ("b", "opened")] + [("a", "updated")] * 3
    assert pager.sent == []
    assert state.outbox_by_target()["pagerduty"] == TargetCounts(queued=5, failing=2)
    families = {f.name: f for f in state_families(state, str, [], clock.now)}
    gauges = {
        (name, s.labels["notifier"]): s.value
        for name in ("oai400d_notifier_queued", "oai400d_notifier_failing")
        for s in families[name].samples
    }
    assert gauges == {
        ("oai400d_notifier_queued", "pagerduty"): 5,
        ("oai400d_notifier_queued", "slack"): 0,
        ("oai400d_notifier_failing", "pagerduty"): 2,
        ("oai400d_notifier_failing", "slack"): 0,
    }
    pager.failing = None
    clock.now += 60.0
    pager_worker.drain(state)
    assert pager.sent == slack.sent
    assert state.outbox_depth() == 0
    counts = state.outbox_by_target()
    assert counts["pagerduty"] == counts["slack"] == TargetCounts(delivered=5)


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        (Route("t"), ["crit", "warn", "info", "auth"]),
        (Route("t", "critical"), ["crit"]),
        (Route("t", "warning"), ["crit", "warn"]),
        (Route("t", "info", ("auth.invalid_api_key",)), ["auth"]),
        (Route("t", "critical", ("auth.invalid_api_key", "rate_limit")), ["crit"]),
    ],
)
def test_min_severity_and_categories_choose_what_a_notifier_gets(
    state: State, route: Route, expected: list[str]
) -> None:
    """A notifier receives the notifications at least as severe as its min_severity and, when
    it names categories, only theirs; one no route takes is done at once, not left waiting."""
    clock = FakeClock()
    receiver = Receiver("t")
    w = worker(state, receiver, clock, route)
    w.drain(state)
    state.commit(
        notifications=[
            severe("crit", "critical"),
            severe("warn", "warning"),
            severe("info", "info"),
            severe("auth", "info", category="auth.invalid_api_key"),
        ]
    )
    w.drain(state)
    assert [fp for fp, _ in receiver.sent] == expected
    assert state.outbox_depth() == 0


def test_a_notifier_added_later_gets_what_is_still_waiting(state: State) -> None:
    """Registering a notifier routes to it the notifications still waiting for another (or
    queued before any notifier registered: an older DB's), not the ones already done."""
    clock = FakeClock()
    slack = Receiver("slack")
    state.commit(notifications=[note("before")])  # no notifier registered yet: it waits
    slack_worker = worker(state, slack, clock)
    slack_worker.drain(state)
    assert slack.sent == [("before", "opened")]
    slack.failing = TransientDeliveryError("503")
    state.commit(notifications=[note("waiting")])
    slack_worker.drain(state)
    pager = Receiver("pagerduty")
    worker(state, pager, clock).drain(state)
    assert pager.sent == [("waiting", "opened")]


def test_a_notifier_no_longer_configured_is_retired_with_what_it_had_waiting(
    state: State,
) -> None:
    """Retiring a target drops its undelivered rows (and says how many); a notification it
    held up is then done; the kept target's rows are untouched."""
    clock = FakeClock()
    slack, pager = Receiver("slack"), Receiver("pagerduty")
    pager.failing = PermanentDeliveryError("refused")
    workers = [worker(state, slack, clock), worker(state, pager, clock)]
    for w in workers:
        w.drain(state)
    state.commit(notifications=[note("a"), note("b")])
    for w in workers:
        w.drain(state)
    assert state.outbox_depth() == 2 and state.outbox_by_target()["pagerduty"].parked == 2
    assert state.retire_targets(["slack"]) == {"pagerduty": 2}
    assert state.outbox_depth() == 0 and list(state.outbox_by_target()) == ["slack"]
    assert state.retire_targets(["slack"]) == {}


def test_what_is_open_is_told_again_to_a_receiver_that_forgets(state: State) -> None:
    """A notifier with a resend_interval is sent, that often, the latest delivered
    notification of each alert still open for it: a resolved or merged alert drops out, a
    backlog summary is no alert, a fleet's alert of the same fingerprint as a host's merged
    one goes on; a failed resend waits for the next."""
    clock = FakeClock()
    manager = Receiver("alertmanager", resend_interval=60.0)
    w = worker(state, manager, clock)
    state.commit(notifications=[note("a"), note("b"), note("c")])
    assert w.drain(state) <= 60.0
    assert manager.resent == []  # (nothing was open when it looked)
    state.commit(
        notifications=[
            note("a", "updated"),
            note("b", "resolved"),
            note("c", "merged"),
            replace(note("c", "updated"), host_count=3, hosts=("h1", "h2", "h3")),
            replace(note("backlog", "backlog"), fingerprint="backlog"),
        ]
    )
    w.drain(state)
    clock.now += 59.0
    w.drain(state)
    assert manager.resent == []  # not due yet
    clock.now += 1.0
    w.drain(state)
    assert manager.resent == [[("a", "updated"), ("c", "updated")]]
    manager.failing = TransientDeliveryError("503")
    clock.now += 60.0
    w.drain(state)
    manager.failing = None
    clock.now += 60.0
    w.drain(state)
    assert len(manager.resent) == 2


def test_every_configured_notifier_is_registered_before_the_first_commit(tmp_path: Path) -> None:
    """Delivery.start() registers every notifier before it returns (not only in each worker's
    first drain): a notification committed at once is routed to all of them, so none can be
    done for the early ones before a late one registers, and missed by it."""
    settings = Settings.model_validate(
        {
            "state": {"path": str(tmp_path / "state.db")},
            "pagerduty": {
                "routing_key": "R0UT1NGKEYFAKEPAGERDUTY000000001",
                "events_url": "http://127.0.0.1:9/v2/enqueue",
            },
            "alertmanager": {"url": "http://127.0.0.1:9"},
        }
    )
    delivery = Delivery(settings, lambda *args: None)
    delivery.start()
    try:
        state = State(settings.state.path)
        state.commit(notifications=[severe("a", "critical")])
        assert set(state.outbox_by_target()) == {"pagerduty", "alertmanager"}
        assert {t: c.queued + c.delivered for t, c in state.outbox_by_target().items()} == {
            "pagerduty": 1,
            "alertmanager": 1,
        }
    finally:
        delivery.stop()
