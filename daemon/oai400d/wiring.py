"""Building the daemon's parts from the settings: the notifiers, the fleet store, Slack Socket
Mode, and the sample alert of `oai400d test-alert` (used by the daemon and by the CLI); and
`Delivery`, the outbox workers and Socket Mode together, as the daemon runs them."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from oai400d.config import (
    AlertmanagerSettings,
    PagerDutySettings,
    Settings,
    SlackSettings,
    WebhookSettings,
)
from oai400d.model import Notification, Route
from oai400d.notify import ConsoleNotifier, Notifier, OutboxWorker
from oai400d.notify.outbox import PARKED_RETRY
from oai400d.state import State
from oai400d.timestamps import iso

if TYPE_CHECKING:
    # Each notifier's module is imported when that notifier is configured (slack-sdk is ~8 MB
    # of the daemon's memory, httpx ~3 MB); the fleet's modules (and psycopg) with state.fleet.
    from oai400d.fleet import FleetStore
    from oai400d.notify.socket_mode import SlackSocketMode

log = logging.getLogger("oai400d")

# A test-only knob, not a setting (no config key, not in DESIGN.md): the end-to-end tests set it
# to see parked notifications retried within seconds instead of PARKED_RETRY's minutes.
PARKED_RETRY_VARIABLE = "OAI400D_TEST_PARKED_RETRY"
# The longest wait between two tries of a notifier other than Slack (which has a setting).
RETRY_MAX = 60.0


def make_notifiers(settings: Settings) -> list[tuple[Notifier, Route]]:
    """Every configured notifier with what it receives: Slack (a bot token wins over a
    webhook), PagerDuty, Alertmanager, each [[webhook]]; the console when none is."""
    made: list[tuple[Notifier, Route]] = []
    slack = _make_slack(settings)
    if slack is not None:
        made.append((slack, _route(slack.name, settings.slack)))
    pd = settings.pagerduty
    if pd.routing_key is not None:
        from oai400d.notify.pagerduty import PagerDutyNotifier

        pager = PagerDutyNotifier(pd.routing_key.get_secret_value(), pd.events_url, pd.timeout)
        made.append((pager, _route(pager.name, pd)))
    am = settings.alertmanager
    if am.url:
        from oai400d.notify.alertmanager import AlertmanagerNotifier

        manager = AlertmanagerNotifier(
            am.url,
            am.timeout,
            username=am.username,
            password=am.password.get_secret_value() if am.password is not None else "",
            bearer_token=(
                am.bearer_token.get_secret_value() if am.bearer_token is not None else ""
            ),
            resend_interval=am.resend_interval,
        )
        made.append((manager, _route(manager.name, am)))
    for hook in settings.webhook:
        from oai400d.notify.webhook import WebhookNotifier

        webhook = WebhookNotifier(
            hook.name,
            hook.url,
            hook.secret.get_secret_value() if hook.secret is not None else "",
            dict(hook.headers),
            hook.timeout,
        )
        made.append((webhook, _route(webhook.name, hook)))
    if not made:
        made.append((ConsoleNotifier(settings.console.format), Route(ConsoleNotifier.name)))
    return made


def _make_slack(settings: Settings) -> Notifier | None:
    slack = settings.slack
    interval = 1.0 / slack.max_messages_per_second
    if slack.bot_token is not None:
        from oai400d.notify.slack import SlackWebNotifier

        return SlackWebNotifier(
            slack.bot_token.get_secret_value(),
            slack.channel,
            slack.base_url,
            interval,
            slack.timeout,
            buttons=slack.app_token is not None,
        )
    if slack.webhook_url is not None:
        from oai400d.notify.slack import SlackWebhookNotifier

        return SlackWebhookNotifier(slack.webhook_url.get_secret_value(), interval, slack.timeout)
    return None


def _route(
    target: str,
    section: SlackSettings | PagerDutySettings | AlertmanagerSettings | WebhookSettings,
) -> Route:
    """What a notifier receives, from its section's min_severity and categories."""
    return Route(target, section.min_severity, tuple(section.categories))


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
    from oai400d.notify.socket_mode import SlackSocketMode

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
    """What leaves the daemon: one outbox worker per notifier, each with its own thread and
    delivery state, and Slack Socket Mode (the alert buttons) beside them. A reload rebuilds
    the notifiers whose settings changed, starts the new ones, stops and retires the ones no
    longer configured, and tells every worker to try its parked notifications at once."""

    def __init__(self, settings: Settings, observe: Callable[..., None]) -> None:
        self.settings = settings
        self.observe = observe
        self.workers: dict[str, OutboxWorker] = {}
        for notifier, route in make_notifiers(settings):
            self.workers[route.target] = self._worker(notifier, route)
        self.socket_mode: SlackSocketMode | None = None

    def _worker(self, notifier: Notifier, route: Route) -> OutboxWorker:
        return OutboxWorker(
            self.settings.state.path,
            notifier,
            retry_max=_retry_max(self.settings, route.target),
            observe=self.observe,
            parked_retry=_parked_retry(),
            route=route,
        )

    def names(self) -> list[str]:
        """The notifiers' names (their targets in the outbox and their metrics' label)."""
        return list(self.workers)

    def describe(self) -> str:
        """Where notifications go, for people."""
        return "; ".join(w.notifier.describe() for w in self.workers.values())

    def start(self) -> None:
        self._sync_targets()
        for worker in self.workers.values():
            worker.start()
        self._start_socket_mode()

    def poke(self) -> None:
        """New notifications are in the outbox."""
        for worker in self.workers.values():
            worker.poke()

    def reconfigure(self, new: Settings) -> bool:
        """Take up new notification settings; whether the notifiers changed. Either way the
        parked notifications are tried at once: a reload is how a person says the receiver is
        fixed (an /invite changes no setting)."""
        old, self.settings = self.settings, new
        if _notifier_settings(new) == _notifier_settings(old):
            for worker in self.workers.values():
                worker.retry_parked()
            return False
        made = {route.target: (notifier, route) for notifier, route in make_notifiers(new)}
        for name in [name for name in self.workers if name not in made]:
            self.workers.pop(name).stop()
        for name, (notifier, route) in made.items():
            if name in self.workers:  # (tries the parked ones on the new one)
                self.workers[name].set_notifier(notifier, route)
            else:
                self.workers[name] = self._worker(notifier, route)
                self.workers[name].start()
        self._sync_targets()
        if (new.slack, new.console) != (old.slack, old.console):
            if self.socket_mode is not None:
                self.socket_mode.stop()
            self._start_socket_mode()
        return True

    def stop(self) -> None:
        if self.socket_mode is not None:
            self.socket_mode.stop()
        for worker in self.workers.values():
            worker.stop()

    def _sync_targets(self) -> None:
        """Make the state DB's notifiers these, before the main loop commits anything more:
        forget those no longer configured (saying what each had not delivered) and register
        every configured one with its route. Registering here, not only in each worker's
        thread, closes a race: a notification committed before a worker's first drain would
        be routed only to the notifiers registered by then, and once they had it, it would be
        done and never reach the late one."""
        state = State(self.settings.state.path)
        try:
            gone = state.retire_targets(self.workers)
            for worker in self.workers.values():
                state.register_target(worker.route)
        finally:
            state.close()
        for name, waiting in gone.items():
            log.warning(
                "%s is no longer configured%s",
                name,
                f": its {waiting} undelivered notification(s) are dropped" if waiting else "",
            )

    def _start_socket_mode(self) -> None:
        self.socket_mode = make_socket_mode(self.settings)
        if self.socket_mode is not None:
            self.socket_mode.start()


def _notifier_settings(settings: Settings) -> tuple[Any, ...]:
    return (
        settings.console,
        settings.slack,
        settings.pagerduty,
        settings.alertmanager,
        settings.webhook,
    )


def _retry_max(settings: Settings, target: str) -> float:
    """The longest wait between two tries: Slack's setting for Slack, a minute for the others
    (a receiver back from an outage hears within a minute)."""
    return settings.slack.retry_max if target.startswith("slack") else RETRY_MAX


def _parked_retry() -> float:
    """PARKED_RETRY, or the test-only knob's seconds (ignored unless a positive number)."""
    try:
        seconds = float(os.environ.get(PARKED_RETRY_VARIABLE, PARKED_RETRY))
    except ValueError:
        return PARKED_RETRY
    return seconds if seconds > 0 else PARKED_RETRY
