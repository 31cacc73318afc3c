"""What every notifier offers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from oai400d.model import Notification
from oai400d.state import State


class Notifier(Protocol):
    """Delivers notifications, or raises a DeliveryError saying whether a retry can help."""

    name: str
    # Fold this many or more due notifications into one digest message (0: never fold).
    digest_threshold: int
    # At most one message this often (Slack: about one per second per channel).
    min_interval: float

    def bind(self, state: State) -> None:
        """Give the notifier the outbox thread's state connection (for delivery bookkeeping)."""

    def send(self, notification: Notification, ref: str) -> None:
        """Deliver one notification; `ref` identifies this outbox entry across retries."""

    def send_digest(self, notifications: Sequence[Notification], ref: str) -> None:
        """Deliver many notifications as one message."""

    def describe(self) -> str:
        """Where notifications go, for people (never containing a secret)."""
        ...
