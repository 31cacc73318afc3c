"""The outbox worker: delivers one notifier's notifications from the state DB in order,
retrying with backoff. Each notifier has its own worker, thread and rows in the outbox (its
target, state/outbox_table.py), so one whose receiver is down never delays or repeats another.

Per alert, notifications go out in the order they were queued; an alert whose delivery is
failing waits (with backoff) without holding up the others. The worker owns all the delivery
bookkeeping (notify/deliveries.py): the notifier is told what earlier deliveries left (an
`Attempt`) and says what to keep (a `Delivered`); it never sees the state DB.

When the receiver refuses a notification for its own configuration (a revoked token, a channel
the bot was removed from: a PermanentDeliveryError), nothing is dropped: the entry is parked
(kept, with the reason, its mark of a first attempt kept too), the operator is told once what to
do, and the notifications due after it are parked untried behind it, so a broken channel costs
one refused call per round, not one per alert. Parked entries are tried again every
PARKED_RETRY seconds, and at once after a reload (`retry_parked`). Only a message the receiver
can never take as it is (MessageRejected: its layout, its length) is given up.

A receiver that forgets what it is not told again (Alertmanager expires an alert after its
resolve_timeout: `Notifier.resend_interval`) is sent, that often, the latest notification of
each alert it was told is open; a failed resend waits for the next round.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from oai400d.errors import (
    DeliveryError,
    PermanentDeliveryError,
    StateError,
    TransientDeliveryError,
)
from oai400d.masking import redact
from oai400d.model import Route
from oai400d.notify.base import Attempt, Delivered, MessageRejected, Notifier, episode_key
from oai400d.notify.deliveries import DeliveryLedger
from oai400d.state import OutboxEntry, State

log = logging.getLogger("oai400d.notify")

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 300.0
# How long parked notifications wait for their next try when nobody reloads. What the receiver
# refuses them for (a revoked token, a channel the bot is not in) is fixed by a person, in
# minutes: a try every five minutes notices the fix soon enough (a reload, which the log asks
# for, tries at once), and costs the receiver one refused call per round.
PARKED_RETRY = 300.0
# A delivery the state DB could not book (its disk full) is booked before anything else goes
# out, tried this often.
UNRECORDED_RETRY = 5.0
UNRECORDED_SAID = (
    "a notification went out but the state DB cannot record it yet; nothing more is sent "
    "until it can (so nothing is sent twice)"
)


@dataclass(frozen=True, slots=True)
class Refusal:
    """The receiver refused a notification for its configuration: why, and until when the
    notifications due after it are parked untried."""

    reason: str
    until: float


def backoff(attempts: int, retry_after: float | None = None, most: float = BACKOFF_MAX) -> float:
    """Seconds before the next try: Retry-After when given, else exponential with jitter."""
    if retry_after is not None:
        return max(0.0, retry_after)
    base: float = min(most, BACKOFF_FIRST * 2.0 ** min(attempts, 16))
    return base * random.uniform(0.5, 1.0)


class OutboxWorker:
    """A thread that drains one notifier's rows of the outbox (`route.target`, its name)."""

    def __init__(
        self,
        state_path: str,
        notifier: Notifier,
        clock: Callable[[], float] = time.time,
        retry_max: float = BACKOFF_MAX,
        observe: Callable[[str, str, int], None] | None = None,
        parked_retry: float = PARKED_RETRY,
        route: Route | None = None,
    ) -> None:
        self.state_path = state_path
        # What the notifier receives; registered by the outbox thread before its first drain.
        self.route = route if route is not None else Route(notifier.name)
        self._register = threading.Event()
        self._register.set()
        self._next_resend = 0.0
        # Told (notifier name, "delivered" | "transient" | "permanent", count) for metrics.
        self.observe = observe
        self.notifier = notifier
        self.clock = clock
        self.retry_max = retry_max
        self.parked_retry = parked_retry
        self._wake = threading.Event()
        self._stop = threading.Event()
        # Set by any thread (a reload); the outbox thread takes it up at its next drain, on its
        # own connection. Set from the start too: a restart is how a token in the environment
        # is changed, so what was parked before it is tried at once.
        self._retry_parked = threading.Event()
        self._retry_parked.set()
        self._unrecorded: Callable[[], None] | None = None  # a delivery not booked yet
        self._refusal: Refusal | None = None  # the outbox thread's own
        # A reload asked for a retry: a refusal now says again that the fix did not work.
        self._say_refusal_again = False
        self._thread: threading.Thread | None = None
        self._reported: set[str] = set()
        self._last_sent = 0.0
        self.delivered = 0

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"oai400d-outbox-{self.route.target}", daemon=True
        )
        self._thread.start()

    def poke(self) -> None:
        """New notifications were committed: look now."""
        self._wake.set()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def set_notifier(self, notifier: Notifier, route: Route | None = None) -> None:
        """A new notifier of the same name (a reload), and what it receives: what the old
        one's receiver refused is tried on it."""
        self.notifier = notifier
        if route is not None and route != self.route:
            self.route = route
            self._register.set()
        self._next_resend = 0.0  # (a new receiver may not know what is open)
        self.retry_parked()

    def retry_parked(self) -> None:
        """Try the parked notifications now (a reload: what the receiver refused them for may
        be fixed, even when no setting changed, as after an /invite)."""
        self._retry_parked.set()
        self._wake.set()

    def _run(self) -> None:
        state = State(self.state_path)
        try:
            while not self._stop.is_set():
                try:
                    wait = self.drain(state)
                except Exception:  # a bug must not silence every later notification
                    log.exception("the outbox worker failed; retrying in 5 s")
                    wait = 5.0
                self._wake.wait(wait)
                self._wake.clear()
        finally:
            state.close()

    def drain(self, state: State) -> float:
        """Deliver what is due; return how long to sleep before looking again."""
        if self._unrecorded is not None:  # sent, but the state DB could not say so yet
            try:
                self._unrecorded()
            except StateError as exc:
                self._report_once("unrecorded", logging.WARNING, f"{UNRECORDED_SAID}: {exc}")
                return UNRECORDED_RETRY
            self._unrecorded = None
            self._reported.discard("unrecorded")  # (said again if it happens again)
        if self._register.is_set():
            self._register.clear()
            try:
                taken = state.register_target(self.route)
            except Exception:
                self._register.set()
                raise
            if taken:
                log.info("%d waiting notification(s) routed to %s", taken, self.route.target)
        if self._retry_parked.is_set():  # before taking the notifier: a reload sets it first
            self._retry_parked.clear()
            try:
                self._take_up_parked(state)
            except Exception:
                self._retry_parked.set()  # (the next drain asks again)
                raise
        notifier = self.notifier
        ledger = DeliveryLedger(state, notifier.name, notifier.edits_messages)
        now = self.clock()
        blocked: set[str] = set()  # alerts with an earlier notification still undelivered
        next_look = 60.0
        batch = state.outbox_pending(self.route.target, limit=500)
        due = []
        for entry in batch:
            fingerprint = entry.notification.fingerprint
            if fingerprint in blocked:
                continue
            if entry.next_attempt > now:
                blocked.add(fingerprint)
                next_look = min(next_look, entry.next_attempt - now)
                continue
            due.append(entry)
        refusal = self._refusal
        if due and refusal is not None and now < refusal.until:
            # The receiver refused one of them a moment ago: these wait untried behind it.
            state.park_deliveries(
                [e.id for e in due], self.route.target, refusal.reason, refusal.until, tried=False
            )
            return min(next_look, refusal.until - now)
        if notifier.resend_interval:
            # Before the new ones: after a restart, what was open is told first.
            next_look = min(next_look, self._resend(state, notifier, now))
        if notifier.digest_threshold and len(due) >= notifier.digest_threshold:
            # A storm of distinct problems: one digest message instead of one message each.
            self._pace(notifier)
            attempt = ledger.begin(f"digest-{due[0].id}-{due[-1].id}", None, self.clock())
            try:
                sent = notifier.send_digest([e.notification for e in due], attempt)
            except DeliveryError as exc:
                if self._refused(exc):
                    self._park(state, due, exc)
                    return min(next_look, self.parked_retry)
                self._failed(state, ledger, due[0], attempt, exc)
                return min(next_look, backoff(due[0].attempts, getattr(exc, "retry_after", None)))
            finally:
                self._last_sent = self.clock()  # (the pace counts from the answer: a long post)
            if not self._record(ledger.delivered, [e.id for e in due], attempt, None, sent):
                return UNRECORDED_RETRY
            self.delivered += len(due)
            self._observe(notifier, "delivered", len(due))
            self._recovered()
            return 0.0
        for index, entry in enumerate(due):
            if self._stop.is_set():
                return 0.0
            if entry.notification.fingerprint in blocked:
                continue
            self._pace(notifier)
            episode = episode_key(entry.notification)
            attempt = ledger.begin(str(entry.id), episode, self.clock())
            try:
                sent = notifier.send(entry.notification, attempt)
            except DeliveryError as exc:
                if self._refused(exc):
                    rest = [e for e in due[index:] if e.notification.fingerprint not in blocked]
                    self._park(state, rest, exc)
                    return min(next_look, self.parked_retry)
                delay = self._failed(state, ledger, entry, attempt, exc)
                if delay is not None:
                    blocked.add(entry.notification.fingerprint)
                    next_look = min(next_look, delay)
                continue
            finally:
                self._last_sent = self.clock()  # a failed attempt reached the receiver too
            if not self._record(ledger.delivered, [entry.id], attempt, episode, sent):
                return UNRECORDED_RETRY
            self.delivered += 1
            self._observe(notifier, "delivered")
            self._recovered()
        return 0.0 if len(batch) == 500 and not blocked else next_look

    def _resend(self, state: State, notifier: Notifier, now: float) -> float:
        """Tell a receiver that forgets again what is open, when due; seconds to the next."""
        if now >= self._next_resend:
            self._next_resend = now + notifier.resend_interval
            firing = state.firing_notifications(self.route.target)
            if firing:
                try:
                    notifier.send_digest(firing, Attempt(f"resend-{int(now)}"))
                except DeliveryError as exc:
                    self._observe(notifier, "transient")
                    self._report_once(
                        "resend",
                        logging.WARNING,
                        f"telling {notifier.describe()} again which alerts are open failed "
                        f"(tried again in {notifier.resend_interval:.0f}s): {exc}",
                    )
                else:
                    self._reported.discard("resend")
        return max(0.0, self._next_resend - now)

    def _record(
        self,
        delivered: Callable[[list[int], Attempt, str | None, Delivered, float], None],
        ids: list[int],
        attempt: Attempt,
        episode: str | None,
        sent: Delivered,
    ) -> bool:
        """Book a delivery; if the state DB cannot (a full disk), keep it and book it before
        anything else is sent, so the message is never sent twice (False: stop for now)."""
        now = self.clock()
        try:
            delivered(ids, attempt, episode, sent, now)
        except StateError as exc:
            self._unrecorded = lambda: delivered(ids, attempt, episode, sent, now)
            self._report_once("unrecorded", logging.WARNING, f"{UNRECORDED_SAID}: {exc}")
            return False
        return True

    def _pace(self, notifier: Notifier) -> None:
        """At most one message per notifier.min_interval (Slack: about one per second)."""
        if notifier.min_interval and self._last_sent:
            pause = self._last_sent + notifier.min_interval - self.clock()
            if pause > 0:
                self._stop.wait(pause)
        self._last_sent = self.clock()

    def _failed(
        self,
        state: State,
        ledger: DeliveryLedger,
        entry: OutboxEntry,
        attempt: Attempt,
        exc: DeliveryError,
    ) -> float | None:
        """Book a failed delivery that is not a refusal (see _park); the delay before its retry,
        or None when the message was given up."""
        where = self.notifier.describe()
        self._observe(
            self.notifier, "permanent" if isinstance(exc, PermanentDeliveryError) else "transient"
        )
        if isinstance(exc, PermanentDeliveryError):
            # This message can never go as it is (MessageRejected); the next ones can: keep the
            # outbox moving and say what happened, once.
            ledger.given_up(entry.id, attempt, self.clock())
            self._report_once(
                f"permanent:{exc}", logging.ERROR, f"delivery to {where} failed: {exc}"
            )
            return None
        retry_after = exc.retry_after if isinstance(exc, TransientDeliveryError) else None
        delay = backoff(entry.attempts, retry_after, self.retry_max)
        state.delivery_failed(entry.id, self.route.target, str(exc), self.clock() + delay)
        self._report_once(
            f"transient:{type(exc).__name__}",
            logging.WARNING,
            f"delivery to {where} failed, will retry (in {delay:.0f}s, then with backoff): {exc}",
        )
        return delay

    @staticmethod
    def _refused(exc: DeliveryError) -> bool:
        """Whether the receiver refuses for its configuration (park), not for this message."""
        return isinstance(exc, PermanentDeliveryError) and not isinstance(exc, MessageRejected)

    def _park(self, state: State, entries: Sequence[OutboxEntry], exc: DeliveryError) -> None:
        """The receiver refused the first of `entries` (just tried) for its configuration: keep
        it and park the others untried behind it until the next round; say once what to do.
        The first one's mark of a first attempt stays: an earlier try may have posted."""
        self._observe(self.notifier, "permanent")
        now = self.clock()
        reason = redact(str(exc))
        self._refusal = Refusal(reason, now + self.parked_retry)
        if self._say_refusal_again:
            self._say_refusal_again = False
            self._reported.discard(f"refused:{reason}")
        first, rest = entries[0], entries[1:]
        target = self.route.target
        state.park_deliveries([first.id], target, reason, self._refusal.until)
        if rest:
            state.park_deliveries(
                [e.id for e in rest], target, reason, self._refusal.until, tried=False
            )
        self._report_once(
            f"refused:{reason}",
            logging.ERROR,
            f"delivery to {self.notifier.describe()} is refused: {reason}. The notification is "
            f"kept (parked, with those that follow; `oai400d status` lists them) and tried again "
            f"every {self.parked_retry:.0f}s; once this is fixed, `systemctl reload oai400d` "
            "(SIGHUP) sends them at once",
        )

    def _take_up_parked(self, state: State) -> None:
        """A start or a reload: the parked entries are due now, and a refusal is said again."""
        self._refusal = None
        self._say_refusal_again = True
        parked = state.unpark_deliveries(self.route.target)
        if parked:
            log.info("trying the %d parked notification(s) again", parked)

    def _observe(self, notifier: Notifier, outcome: str, count: int = 1) -> None:
        if self.observe is not None:
            self.observe(notifier.name, outcome, count)

    def _recovered(self) -> None:
        self._refusal = None
        self._say_refusal_again = False
        failing = {key for key in self._reported if key.startswith(("transient:", "refused:"))}
        if failing:
            log.info("delivery to %s works again", self.notifier.describe())
            self._reported -= failing

    def _report_once(self, key: str, level: int, message: str) -> None:
        if key not in self._reported:
            self._reported.add(key)
            log.log(level, message)
