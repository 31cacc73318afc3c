"""Notifications out: the console, Slack; the outbox worker that delivers them in order."""

from oai400d.notify.base import Attempt, Delivered, MessageAddress, Notifier
from oai400d.notify.console import ConsoleNotifier
from oai400d.notify.outbox import OutboxWorker

__all__ = ["Attempt", "ConsoleNotifier", "Delivered", "MessageAddress", "Notifier", "OutboxWorker"]
