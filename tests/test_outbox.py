"""The outbox worker in-process, on a fake clock, with a notifier that records what it is told:
the worker keeps every piece of delivery bookkeeping, the notifier none."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from oai400d.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from oai400d.model import Notification
from oai400d.notify import Attempt, Delivered, MessageAddress, OutboxWorker
from oai400d.notify.base import episode_key
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
    ("error", "waiting"), [(PermanentDeliveryError("not_in_channel"), 0), (Crash(), 1)]
)
def test_a_permanent_error_drops_the_entry_and_its_mark(
    state: State, error: Exception, waiting: int
) -> None:
    """Retrying cannot help: the entry leaves the queue with its mark, the others go on (a
    crash, for contrast, leaves both for the next start)."""
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
