"""Building the daemon's parts from the settings: the notifier, the fleet store, Slack Socket
Mode, and the sample alert of `oai400d test-alert` (used by the daemon and by the CLI); and
`Delivery`, the outbox and Socket Mode together, as the daemon runs them."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from oai400d.config import Settings
from oai400d.model import Notification
from oai400d.notify import ConsoleNotifier, Notifier, OutboxWorker
from oai400d.notify.outbox import PARKED_RETRY
from oai400d.notify.slack import SlackWebhookNotifier, SlackWebNotifier
from oai400d.notify.socket_mode import SlackSocketMode
from oai400d.timestamps import iso

if TYPE_CHECKING:  # the fleet's modules (and psycopg) are loaded only with state.fleet
    from oai400d.fleet import FleetStore

log = logging.getLogger("oai400d")

# A test-only knob, not a setting (no config key, not in DESIGN.md): the end-to-end tests set it
# to see parked notifications retried within seconds instead of PARKED_RETRY's minutes.
PARKED_RETRY_VARIABLE = "OAI400D_TEST_PARKED_RETRY"


def make_notifier(settings: Settings) -> Notifier:
    """Slack when a bot token or a webhook is configured (the token wins), else the console."""
    slack = settings.slack
    interval = 1.0 / slack.max_messages_per_second
    if slack.bot_token is not None:
        return SlackWebNotifier(
            slack.bot_token.get_secret_value(),
            slack.channel,
            slack.base_url,
            interval,
            slack.timeout,
            buttons=slack.app_token is not None,
        )
    if slack.webhook_url is not None:
        return SlackWebhookNotifier(slack.webhook_url.get_secret_value(), interval, slack.timeout)
    return ConsoleNotifier(settings.console.format)


def make_fleet_store(settings: Settings) -> FleetStore | None:
    """A connection pool to the fleet's store (not opened yet), when state.fleet is set."""
    if settings.state.fleet is None:
        return None
    from oai400d.fleet import FleetStore

    f = settings.fleet
    return FleetStore(
        settings.state.fleet.get_secret_value(),
        connect_timeout=f.connect_timeout,
        statement_timeout=f.statement_timeout,
    )


def make_socket_mode(settings: Settings) -> SlackSocketMode | None:
    """Slack Socket Mode (the alert buttons) when both a bot token and an app token are set."""
    slack = settings.slack
    if slack.app_token is None:
        return None
    if slack.bot_token is None:
        log.warning(
            "slack.app_token is set but there is no bot token: the alert buttons need messages "
            "posted with a bot token (SLACK_BOT_TOKEN); Slack Socket Mode stays off"
        )
        return None
    return SlackSocketMode.create(
        slack.app_token.get_secret_value(),
        slack.bot_token.get_secret_value(),
        slack.base_url,
        settings.state.path,
        slack.allowed_users,
        slack.allowed_groups,
        slack.timeout,
        fleet=make_fleet_store(settings),
    )


def sample_notification() -> Notification:
    """The alert `oai400d test-alert` sends: realistic, and plainly a test."""
    now = time.time()
    return Notification(
        kind="opened",
        fingerprint=f"test-{int(now)}",
        category="auth.invalid_api_key",
        severity="info",
        title="oai400d test alert: delivery works",
        count=1,
        first_seen=iso(now),
        last_seen=iso(now),
        files=("/var/log/example/app.log",),
        fixes=("Nothing to do: this is what an alert from oai400d looks like.",),
        docs=("https://platform.openai.com/docs/guides/error-codes",),
        excerpt="openai.AuthenticationError: Error code: 401 - {'error': {'code': '…'}}",
        rule="openai.invalid_api_key",
        message="This is a test sent by `oai400d test-alert`.",
        status=401,
        error_code="invalid_api_key",
        host=socket.gethostname(),
    )


class Delivery:
    """What leaves the daemon: the outbox worker with its notifier, and Slack Socket Mode (the
    alert buttons) beside it; rebuilt on a reload that changes [console] or [slack], and told
    on every reload to try the parked notifications at once."""

    def __init__(self, settings: Settings, observe: Callable[..., None]) -> None:
        self.settings = settings
        self.worker = OutboxWorker(
            settings.state.path,
            make_notifier(settings),
            retry_max=settings.slack.retry_max,
            observe=observe,
            parked_retry=_parked_retry(),
        )
        self.socket_mode: SlackSocketMode | None = None

    @property
    def notifier(self) -> Notifier:
        return self.worker.notifier

    def start(self) -> None:
        self.worker.start()
        self._start_socket_mode()

    def poke(self) -> None:
        """New notifications are in the outbox."""
        self.worker.poke()

    def reconfigure(self, new: Settings) -> bool:
        """Take up new notification settings; whether anything changed. Either way the parked
        notifications are tried at once: a reload is how a person says the receiver is fixed
        (an /invite changes no setting)."""
        old, self.settings = self.settings, new
        if (new.console, new.slack) == (old.console, old.slack):
            self.worker.retry_parked()
            return False
        self.worker.set_notifier(make_notifier(new))  # (tries the parked ones on the new one)
        if self.socket_mode is not None:
            self.socket_mode.stop()
        self._start_socket_mode()
        return True

    def stop(self) -> None:
        if self.socket_mode is not None:
            self.socket_mode.stop()
        self.worker.stop()

    def _start_socket_mode(self) -> None:
        self.socket_mode = make_socket_mode(self.settings)
        if self.socket_mode is not None:
            self.socket_mode.start()


def _parked_retry() -> float:
    """PARKED_RETRY, or the test-only knob's seconds (ignored unless a positive number)."""
    try:
        seconds = float(os.environ.get(PARKED_RETRY_VARIABLE, PARKED_RETRY))
    except ValueError:
        return PARKED_RETRY
    return seconds if seconds > 0 else PARKED_RETRY
