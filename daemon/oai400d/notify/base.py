"""What every notifier offers."""

from __future__ import annotations

from typing import Protocol

from oai400d.model import Notification


class Notifier(Protocol):
    """Delivers one notification, or raises a DeliveryError saying whether a retry can help."""

    name: str

    def send(self, notification: Notification) -> None: ...

    def describe(self) -> str:
        """Where notifications go, for people (never containing a secret)."""
        ...
