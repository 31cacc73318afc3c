"""The outbox worker in-process, on a fake clock, with a notifier that records what it is told:
the worker keeps every piece of delivery bookkeeping, the notifier none."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from oai400d.cli import _print_parked_status, status_report
from oai400d.errors import (
    DeliveryError,
    PermanentDeliveryError,
    StateFullError,
    TransientDeliveryError,
)
from oai400d.metrics import state_families
from oai400d.model import Notification, Route
from oai400d.notify import Attempt, Delivered, MessageAddress, OutboxWorker
from oai400d.notify.base import MessageRejected, episode_key
from oai400d.state import State

from .samples import note

START = 1_800_000_000.0


@dataclass
class FakeClock:
    now: float = START

    def __call__(self) -> float:
        return self.now


class Crash(Exception):
    """The daemon dying between a delivery and its bookkeeping (a kill -9)."""


class Recorder:
    """A notifier that posts 'messages' of its own, edits the one it is given, and fails or
    crashes when told to; it keeps what each attempt told it."""

    name = "recorder"
    min_interval = 0.0

    def __init__(self, edits_messages: bool = True, digest_threshold: int = 0) -> None:
        self.edits_messages = edits_messages
        self.resend_interval = 0.0
        self.digest_threshold = digest_threshold
        self.attempts: list[tuple[str, Attempt]] = []
        self.digests: list[tuple[int, Attempt]] = []
        self.failures: list[Exception] = []  # raised by the next attempts, in order
        self.posted = 0

    def send(self, notification: Notification, attempt: Attempt) -> Delivered:
        self.attempts.append((notification.kind, attempt))
        return self._deliver(attempt)

    def send_digest(self, notifications: Sequence[Notification], attempt: Attempt) -> Delivered:
        self.digests.append((len(notifications), attempt))
        return self._deliver(attempt)

    def _deliver(self, attempt: Attempt) -> Delivered:
        if attempt.message is None:
            self.posted += 1
            where = MessageAddress("C0REC", f"{self.posted}.000100")
        else:
            where = attempt.message
        if self.failures:
            raise self.failures.pop(0)
        return Delivered(where if self.edits_messages else None)

    def describe(self) -> str:
        return "the recorder"


@pytest.fixture
def state(tmp_path: Path) -> State:
    return State(str(tmp_path / "state.db"))


def worker(state: State, notifier: Recorder, clock: FakeClock) -> OutboxWorker:
    return OutboxWorker(state.path, notifier, clock=clock, retry_max=10.0)


def test_the_message_an_entry_posts_is_handed_to_the_next_notification_of_its_episode(
    state: State,
) -> None:
    """opened posts, and the outbox keeps where: the update of the same episode is given that
    address to edit (and where the target's messages go); a new episode starts without one."""
    clock = FakeClock()
    notifier = Recorder()
    state.commit(notifications=[note(), note(kind="updated")])
    worker(state, notifier, clock).drain(state)
    (_, first), (_, second) = notifier.attempts
    assert first.message is None and first.channel == ""
    assert second.message == MessageAddress("C0REC", "1.000100")
    assert second.channel == "C0REC"
    assert state.delivery_target(episode_key(note()), "recorder") == ("C0REC", "1.000100")

    comeback = note(kind="opened", first_seen="2026-11-26T08:00:00Z")
    state.commit(notifications=[comeback])
    worker(state, notifier, clock).drain(state)
    assert notifier.attempts[-1][1].message is None  # a problem that came back: a new message
    assert state.outbox_depth() == 0


def test_a_retry_is_told_when_the_first_attempt_began_and_the_mark_goes_with_the_entry(
    state: State,
) -> None:
    """Each entry is marked before its first attempt; every retry (however many) is told when
    that first attempt began, so it can look for a post whose answer was lost; delivered, the
    entry leaves no mark behind."""
    clock = FakeClock()
    notifier = Recorder()
    notifier.failures = [TransientDeliveryError("timeout"), TransientDeliveryError("503")]
    state.commit(notifications=[note()])
    outbox = worker(state, notifier, clock)
    for _ in range(3):
        outbox.drain(state)
        clock.now += 60.0  # past any backoff (retry_max is 10 s)
    earlier = [attempt.earlier_attempt for _, attempt in notifier.attempts]
    assert earlier == [None, START, START]
    assert state.outbox_depth() == 0
    (entry_ref,) = {attempt.ref for _, attempt in notifier.attempts}
    assert state.delivery_target(f"intent:{entry_ref}", "recorder") is None


def test_a_crash_between_delivery_and_bookkeeping_leaves_the_mark_for_the_next_start(
    tmp_path: Path,
) -> None:
    """The daemon dies after the notifier delivered but before the outbox wrote it down: the
    next start's worker delivers the entry again, told that an earlier attempt began and where
    the target's messages go, so the notifier can find that post instead of posting twice."""
    path = str(tmp_path / "state.db")
    clock = FakeClock()
    first = State(path)
    first.commit(notifications=[note("a")])
    worker(first, Recorder(), clock).drain(first)  # the channel is known from now on
    first.commit(notifications=[note("b")])
    dying = Recorder()
    dying.failures = [Crash()]
    with pytest.raises(Crash):
        worker(first, dying, clock).drain(first)
    first.close()

    clock.now += 5.0
    again = State(path)
    notifier = Recorder()
    worker(again, notifier, clock).drain(again)
    ((kind, attempt),) = notifier.attempts
    assert kind == "opened" and attempt.earlier_attempt == START
    assert attempt.channel == "C0REC" and attempt.message is None
    assert again.outbox_depth() == 0


def test_a_notifier_that_never_edits_has_nothing_kept(state: State) -> None:
    """The console or a webhook: the outbox marks nothing and keeps no address for it; its
    entries are simply delivered."""
    clock = FakeClock()
    notifier = Recorder(edits_messages=False)
    state.commit(notifications=[note(), note(kind="updated")])
    notifier.failures = [TransientDeliveryError("503")]
    outbox = worker(state, notifier, clock)
    outbox.drain(state)
    clock.now += 60.0
    outbox.drain(state)
    assert [attempt.earlier_attempt for _, attempt in notifier.attempts] == [None, None, None]
    assert all(attempt.message is None for _, attempt in notifier.attempts)
    refs = [f"intent:{attempt.ref}" for _, attempt in notifier.attempts]
    assert state.delivery_targets([*refs, "channel-id", episode_key(note())], "recorder") == {}
    assert state.outbox_depth() == 0


@pytest.mark.parametrize(
    ("error", "waiting"),
    [
        (MessageRejected("msg_too_long"), 0),
        (PermanentDeliveryError("not_in_channel"), 1),
        (Crash(), 1),
    ],
)
def test_only_a_rejected_message_is_dropped_with_its_mark(
    state: State, error: Exception, waiting: int
) -> None:
    """A message the receiver can never take as it is leaves the queue with its mark, the
    others go on; a refusal for the receiver's configuration (not_in_channel) parks the entry
    and keeps its mark, as a crash leaves both for the next start."""
    clock = FakeClock()
    notifier = Recorder()
    notifier.failures = [error]
    state.commit(notifications=[note("a")])
    outbox = worker(state, notifier, clock)
    if isinstance(error, DeliveryError):
        outbox.drain(state)
    else:
        with pytest.raises(Crash):
            outbox.drain(state)
    ((_, attempt),) = notifier.attempts
    assert state.outbox_depth() == waiting
    mark = state.delivery_target(f"intent:{attempt.ref}", "recorder")
    assert (mark is not None) == bool(waiting)


def test_a_digest_delivers_its_entries_together_and_keeps_only_where_it_went(
    state: State,
) -> None:
    """A storm folded into one digest: one attempt for all the entries, all delivered at once;
    no alert episode gets the digest as its message, but the target's channel is learnt."""
    clock = FakeClock()
    notifier = Recorder(digest_threshold=3)
    state.commit(notifications=[note(f"fp{i}") for i in range(5)])
    worker(state, notifier, clock).drain(state)
    ((count, attempt),) = notifier.digests
    assert count == 5 and attempt.ref.startswith("digest-") and notifier.attempts == []
    assert state.outbox_depth() == 0
    keys = [episode_key(note(f"fp{i}")) for i in range(5)]
    kept = state.delivery_targets([*keys, "channel-id", f"intent:{attempt.ref}"], "recorder")
    assert kept == {"channel-id": ("C0REC", "C0REC")}


# --- a receiver that refuses for its configuration: parked, kept, retried ----------------------

REFUSED = PermanentDeliveryError("chat.postMessage: invalid_auth: the bot token is not valid")


def parking_worker(state: State, notifier: Recorder, clock: FakeClock) -> OutboxWorker:
    return OutboxWorker(state.path, notifier, clock=clock, retry_max=10.0, parked_retry=300.0)


def test_a_refused_entry_is_parked_with_those_after_it_and_retried_slowly(state: State) -> None:
    """invalid_auth parks the entry (not delivered, its reason kept) and the entries due after it
    untried: one refused call, not one per alert. Nothing is tried before the slow retry; then
    all go out once, in their order, the first told of its earlier attempt (its mark kept)."""
    clock = FakeClock()
    notifier = Recorder()
    notifier.failures = [REFUSED]
    state.commit(notifications=[note("a"), note("b"), note("a", kind="updated")])
    outbox = parking_worker(state, notifier, clock)
    outbox.drain(state)
    assert len(notifier.attempts) == 1
    reason = str(REFUSED)
    assert [e.parked for e in state.outbox_parked()] == [reason] * 3
    assert state.outbox_parked_reasons() == {reason: 3}
    assert state.outbox_depth() == 3  # waiting still: parked is not delivered

    clock.now += 299.0
    outbox.drain(state)
    assert len(notifier.attempts) == 1  # the slow retry is not due yet

    clock.now += 1.0
    outbox.drain(state)
    assert [kind for kind, _ in notifier.attempts] == ["opened", "opened", "opened", "updated"]
    retried, _, update = (attempt for _, attempt in notifier.attempts[1:])
    assert retried.earlier_attempt == START and update.message is not None
    assert state.outbox_depth() == 0 and state.outbox_parked() == []


def test_a_reload_tries_the_parked_entries_at_once_and_a_refusal_is_said_once_per_round(
    state: State, caplog: pytest.LogCaptureFixture
) -> None:
    """While refused, a new entry is parked untried; the refusal is logged once, with what to do.
    A reload (retry_parked) tries them at once: refused again, it is said again (the fix did
    not work); accepted, everything goes out and the log says so."""
    clock = FakeClock()
    notifier = Recorder()
    notifier.failures = [REFUSED]
    state.commit(notifications=[note("a")])
    outbox = parking_worker(state, notifier, clock)
    with caplog.at_level("INFO", logger="oai400d.notify"):
        outbox.drain(state)
        clock.now += 10.0
        state.commit(notifications=[note("b")])
        outbox.drain(state)
        assert len(notifier.attempts) == 1 and len(state.outbox_parked()) == 2
        refusals = [r.getMessage() for r in caplog.records if "is refused" in r.getMessage()]
        assert len(refusals) == 1
        assert "invalid_auth" in refusals[0] and "systemctl reload oai400d" in refusals[0]

        notifier.failures = [REFUSED]
        outbox.retry_parked()
        outbox.drain(state)
        assert len(notifier.attempts) == 2 and len(state.outbox_parked()) == 2
        assert sum("is refused" in r.getMessage() for r in caplog.records) == 2

        outbox.retry_parked()
        outbox.drain(state)
    assert [attempt.ref for _, attempt in notifier.attempts[2:]] == ["1", "2"]
    assert state.outbox_depth() == 0
    assert any("works again" in r.getMessage() for r in caplog.records)


def test_a_restart_tries_the_parked_entries_at_once(tmp_path: Path) -> None:
    """A token in the environment changes with a restart: the new worker tries at once what the
    old one parked, with the mark of the first attempt (it may have posted)."""
    path = str(tmp_path / "state.db")
    clock = FakeClock()
    first = State(path)
    first.commit(notifications=[note("a")])
    refused = Recorder()
    refused.failures = [REFUSED]
    parking_worker(first, refused, clock).drain(first)
    first.close()

    again = State(path)
    notifier = Recorder()
    parking_worker(again, notifier, clock).drain(again)
    ((_, attempt),) = notifier.attempts
    assert attempt.earlier_attempt == START
    assert again.outbox_depth() == 0


def test_a_refused_digest_parks_all_its_entries(state: State) -> None:
    """A storm's digest refused: every entry in it is parked; a reload sends the digest."""
    clock = FakeClock()
    notifier = Recorder(digest_threshold=3)
    notifier.failures = [REFUSED]
    state.commit(notifications=[note(f"fp{i}") for i in range(4)])
    outbox = parking_worker(state, notifier, clock)
    outbox.drain(state)
    assert state.outbox_parked_reasons() == {str(REFUSED): 4}
    outbox.retry_parked()
    outbox.drain(state)
    assert [count for count, _ in notifier.digests] == [4, 4]
    assert state.outbox_depth() == 0


def test_a_parked_entry_that_then_fails_for_a_passing_reason_is_no_longer_parked(
    state: State,
) -> None:
    """Once the receiver takes it up again, a 503 is a plain retry: status must not show it
    parked for a reason that no longer holds."""
    clock = FakeClock()
    notifier = Recorder()
    notifier.failures = [REFUSED, TransientDeliveryError("503")]
    state.commit(notifications=[note("a")])
    outbox = parking_worker(state, notifier, clock)
    outbox.drain(state)
    outbox.retry_parked()
    outbox.drain(state)
    assert state.outbox_parked() == [] and state.outbox_depth() == 1
    (entry,) = state.outbox_pending("recorder")
    assert entry.last_error == "503" and entry.parked is None


def test_a_db_from_before_parking_and_per_notifier_queues_keeps_its_queue(
    tmp_path: Path,
) -> None:
    """An outbox of an older release (no `parked`, no per-notifier rows): a read-only look
    finds nothing parked and no notifier; opened for writing, the tables are added and the
    queued entries go to the first notifier that registers."""
    path = str(tmp_path / "state.db")
    old = State(path)
    old.commit(notifications=[note("a")])
    old._db.execute("ALTER TABLE outbox DROP COLUMN parked")
    old._db.execute("DROP TABLE outbox_targets")
    old._db.execute("DROP TABLE targets")
    old.close()

    look = State(path, readonly=True)
    assert look.outbox_parked() == [] and look.outbox_parked_reasons() == {}
    assert look.outbox_by_target() == {} and look.outbox_depth() == 1
    look.close()
    again = State(path)
    assert again.register_target(Route("recorder")) == 1
    (entry,) = again.outbox_pending("recorder")
    assert entry.notification.fingerprint == "a" and entry.parked is None
    again.park_deliveries([entry.id], "recorder", "refused", START + 300.0)
    assert again.outbox_parked_reasons() == {"refused": 1}


def test_status_and_metrics_show_the_parked_notifications_and_why(
    state: State, capsys: pytest.CaptureFixture[str]
) -> None:
    """`status --json` adds outbox_parked and each parked entry with its reason (outbox_depth
    still counts them); the text says what brings them out; the metrics count them by reason."""
    clock = FakeClock()
    notifier = Recorder()
    notifier.failures = [REFUSED]
    state.commit(notifications=[note("a"), note("b")])
    parking_worker(state, notifier, clock).drain(state)

    report = status_report(state)
    assert report["outbox_depth"] == 2 and report["outbox_parked"] == 2
    assert [(p["fingerprint"], p["reason"]) for p in report["parked"]] == [
        ("a", str(REFUSED)),
        ("b", str(REFUSED)),
    ]
    _print_parked_status(report)
    text = capsys.readouterr().out
    assert "2 of them parked" in text and "invalid_auth" in text and "reload" in text

    families = {f.name: f for f in state_families(state, str, [], START)}
    assert [s.value for s in families["oai400d_outbox_parked"].samples] == [2]
    (by_reason,) = families["oai400d_outbox_parked_by_reason"].samples
    assert by_reason.labels == {"reason": str(REFUSED)} and by_reason.value == 2


class FullOnce(State):
    """The state DB whose disk fills up just as one delivery is booked (then frees again)."""

    def __init__(self, path: str, full_times: int) -> None:
        super().__init__(path)
        self.full_times = full_times

    def record_delivery(self, *args: Any, **kwargs: Any) -> None:
        if self.full_times:
            self.full_times -= 1
            raise StateFullError(f"{self.path}: database or disk is full")
        super().record_delivery(*args, **kwargs)


def test_a_delivery_the_state_db_cannot_book_is_never_sent_twice(tmp_path: Path) -> None:
    """The receiver took the message but the disk is full: nothing else is sent, the booking
    is retried, and once it is written the message is not sent again; the rest follows."""
    path = str(tmp_path / "state.db")
    State(path).commit(notifications=[note("a"), note("b")])
    state = FullOnce(path, full_times=2)
    notifier, clock = Recorder(), FakeClock()
    outbox = worker(state, notifier, clock)
    assert outbox.drain(state) > 0  # "a" went out; its booking failed: stop
    assert [kind for kind, _ in notifier.attempts] == ["opened"]
    assert outbox.drain(state) > 0  # still full: nothing sent
    assert len(notifier.attempts) == 1
    outbox.drain(state)  # booked now, then "b"
    outbox.drain(state)
    assert len(notifier.attempts) == 2 and notifier.posted == 2
    assert state.outbox_depth() == 0
