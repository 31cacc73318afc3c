"""The outbox worker: delivers notifications from the state DB in order, retrying with backoff.

Per alert, notifications go out in the order they were queued; an alert whose delivery is
failing waits (with backoff) without holding up the others.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

from oai400d.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from oai400d.notify.base import Notifier
from oai400d.state import State

log = logging.getLogger("oai400d.notify")

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 300.0


def backoff(attempts: int, retry_after: float | None = None) -> float:
    """Seconds before the next try: Retry-After when given, else exponential with jitter."""
    if retry_after is not None:
        return max(0.0, retry_after)
    base: float = min(BACKOFF_MAX, BACKOFF_FIRST * 2.0 ** min(attempts, 16))
    return base * random.uniform(0.5, 1.0)


class OutboxWorker:
    """A thread that drains the outbox through one notifier."""

    def __init__(
        self,
        state_path: str,
        notifier: Notifier,
        clock: Callable[[], float] = time.time,
        min_interval: float = 0.0,
    ) -> None:
        self.state_path = state_path
        self.notifier = notifier
        self.clock = clock
        self.min_interval = min_interval  # at most one message this often (Slack: ~1/s)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reported: set[str] = set()
        self.delivered = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="oai400d-outbox", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        """New notifications were committed: look now."""
        self._wake.set()

    def stop(self, timeout: float = 3.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def set_notifier(self, notifier: Notifier) -> None:
        self.notifier = notifier
        self._wake.set()

    def _run(self) -> None:
        state = State(self.state_path)
        try:
            while not self._stop.is_set():
                wait = self.drain(state)
                self._wake.wait(wait)
                self._wake.clear()
        finally:
            state.close()

    def drain(self, state: State) -> float:
        """Deliver what is due; return how long to sleep before looking again."""
        now = self.clock()
        blocked: set[str] = set()  # alerts with an earlier notification still undelivered
        next_look = 60.0
        last_sent = 0.0
        batch = state.outbox_pending(limit=200)
        for entry in batch:
            if self._stop.is_set():
                break
            fingerprint = entry.notification.fingerprint
            if fingerprint in blocked:
                continue
            if entry.next_attempt > now:
                blocked.add(fingerprint)
                next_look = min(next_look, entry.next_attempt - now)
                continue
            if self.min_interval and last_sent:
                pause = last_sent + self.min_interval - self.clock()
                if pause > 0 and self._stop.wait(pause):
                    break
            try:
                self.notifier.send(entry.notification)
            except TransientDeliveryError as exc:
                delay = backoff(entry.attempts, exc.retry_after)
                state.delivery_failed(entry.id, str(exc), self.clock() + delay)
                blocked.add(fingerprint)
                next_look = min(next_look, delay)
                self._report_once(
                    f"transient:{exc}",
                    logging.WARNING,
                    f"delivery to {self.notifier.describe()} failed, will retry: {exc}",
                )
                continue
            except PermanentDeliveryError as exc:
                # Retrying cannot help; keep the outbox moving and say what to do, once.
                state.delivered(entry.id)
                self._report_once(
                    f"permanent:{exc}",
                    logging.ERROR,
                    f"delivery to {self.notifier.describe()} failed: {exc}",
                )
                continue
            except DeliveryError as exc:  # pragma: no cover - every notifier raises a subclass
                state.delivery_failed(entry.id, str(exc), self.clock() + backoff(entry.attempts))
                blocked.add(fingerprint)
                continue
            state.delivered(entry.id)
            self.delivered += 1
            last_sent = self.clock()
        else:
            return 0.0 if len(batch) == 200 and not blocked else next_look
        return 0.0

    def _report_once(self, key: str, level: int, message: str) -> None:
        if key not in self._reported:
            self._reported.add(key)
            log.log(level, message)
