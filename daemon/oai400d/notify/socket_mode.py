"""Slack Socket Mode: the Acknowledge and Silence buttons of alert messages.

slack-sdk's built-in SocketModeClient holds a websocket to Slack (reconnects are its job). Each
button press arrives as an `interactive` envelope; it is acked at once, then checked: is the user
allowed, is the message really the one we posted for that alert (a forged value or message is
refused), was this very action handled before (a replay is refused; seen ids are kept in the
state DB for a day, so a restart does not forget them). An accepted press is written to the
state DB exactly as `oai400d ack` / `oai400d silence` would write it (via "slack"); the daemon's
loop takes it up from there. Every slack-sdk error is translated here, as in notify/slack.py.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slack_sdk import WebClient
from slack_sdk.socket_mode import SocketModeClient
from slack_sdk.socket_mode.client import BaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from oai400d.errors import DeliveryError, FleetError, PermanentDeliveryError, StateError
from oai400d.model import Ack
from oai400d.notify.slack import translate
from oai400d.notify.slack_blocks import ACTION_ACK, ACTION_SILENCE
from oai400d.state import SLACK_TARGET, State

if TYPE_CHECKING:  # a store is passed in only with state.fleet: psycopg is not loaded without
    from oai400d.fleet import FleetStore

log = logging.getLogger("oai400d.slack.socket")

GROUP_CACHE = 300.0  # seconds a user group's member list is trusted
SEEN_KEPT = 86400.0  # how long a handled action's ids are remembered (replays)
_CONNECT_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)

# What to do when apps.connections.open refuses the app token.
_APP_TOKEN_ERRORS: dict[str, str] = {
    "invalid_auth": "slack.app_token is wrong or lacks connections:write: create an app-level "
    "token with the connections:write scope and update SLACK_APP_TOKEN / slack-app-token",
    "not_authed": "no app token was sent: set SLACK_APP_TOKEN or the slack-app-token credential",
    "not_allowed_token_type": "slack.app_token is not an app-level token (xapp-…)",
    "token_revoked": "slack.app_token was revoked: create a new app-level token",
    "missing_scope": "slack.app_token lacks connections:write: add it to the app-level token",
    "account_inactive": "the app was deactivated: reinstall the Slack app",
}
# What to do when usergroups.users.list refuses the bot token.
_GROUP_ERRORS: dict[str, str] = {
    "missing_scope": "the app lacks usergroups:read: add the scope and reinstall the app",
    "no_such_subteam": "no such user group: check slack.allowed_groups",
    "subteam_not_found": "no such user group: check slack.allowed_groups",
}


@dataclass(frozen=True, slots=True)
class Press:
    """One button press, as read from a block_actions payload."""

    envelope_id: str
    action_id: str
    fingerprint: str
    user_id: str
    user_name: str
    channel: str
    message_ts: str
    action_ts: str
    trigger_id: str

    @property
    def who(self) -> str:
        """The Slack user as acks and silences record it: "name (U…)", or the ID alone."""
        return f"{self.user_name} ({self.user_id})" if self.user_name else self.user_id

    def seen_keys(self) -> list[str]:
        """The ids that make this press unique: a second arrival of any is a replay."""
        keys = [f"action:{self.user_id}:{self.action_id}:{self.action_ts}"]
        if self.trigger_id:
            keys.append(f"trigger:{self.trigger_id}")
        if self.envelope_id:
            keys.append(f"envelope:{self.envelope_id}")
        return keys


def presses(envelope_id: str, payload: Mapping[str, Any]) -> list[Press]:
    """Our buttons' presses in a block_actions payload (other apps' actions are ignored)."""
    if payload.get("type") != "block_actions":
        return []
    user = payload.get("user") or {}
    channel = payload.get("channel") or {}
    container = payload.get("container") or {}
    message = payload.get("message") or {}
    found = []
    for action in payload.get("actions") or []:
        action_id = str(action.get("action_id") or "")
        if action_id != ACTION_ACK and action_id not in ACTION_SILENCE:
            continue
        found.append(
            Press(
                envelope_id=envelope_id,
                action_id=action_id,
                fingerprint=str(action.get("value") or ""),
                user_id=str(user.get("id") or ""),
                user_name=str(user.get("username") or user.get("name") or ""),
                channel=str(channel.get("id") or container.get("channel_id") or ""),
                message_ts=str(container.get("message_ts") or message.get("ts") or ""),
                action_ts=str(action.get("action_ts") or ""),
                trigger_id=str(payload.get("trigger_id") or ""),
            )
        )
    return found


class GroupMembers:
    """Members of Slack user groups (usergroups.users.list), cached for a few minutes."""

    def __init__(self, client: WebClient, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.clock = clock
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def members(self, group: str) -> frozenset[str]:
        """The group's user IDs; raises DeliveryError when Slack cannot say."""
        with self._lock:
            cached = self._cache.get(group)
            if cached is not None and self.clock() - cached[0] < GROUP_CACHE:
                return cached[1]
        try:
            answer = self.client.usergroups_users_list(usergroup=group)
        except Exception as exc:
            error = translate(exc, f"usergroups.users.list {group}")
            code = _api_error(exc)
            if code in _GROUP_ERRORS:
                error = PermanentDeliveryError(
                    f"usergroups.users.list {group}: {code}: {_GROUP_ERRORS[code]}"
                )
            raise error from None
        users = frozenset(str(u) for u in answer.get("users") or [])
        with self._lock:
            self._cache[group] = (self.clock(), users)
        return users


def _api_error(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    data = getattr(response, "data", None)
    return str(data.get("error", "")) if isinstance(data, dict) else ""


class ActionHandler:
    """Checks a press and records it in the state DB; the policy, without any socket."""

    def __init__(
        self,
        state_path: str,
        allowed_users: Sequence[str],
        allowed_groups: Sequence[str],
        groups: GroupMembers | None,
        clock: Callable[[], float] = time.time,
        fleet: FleetStore | None = None,
    ) -> None:
        self.state_path = state_path
        # With state.fleet the press may be on a message another host posted, and what it
        # records is for the whole fleet: both are looked up and written in the store.
        self.fleet = fleet
        self._fleet_open = False
        self.allowed_users = frozenset(allowed_users)
        self.allowed_groups = tuple(allowed_groups)
        self.groups = groups
        self.clock = clock

    def refusal(self, press: Press, state: State) -> str | None:
        """Why the press must be refused, or None when it may be carried out."""
        allowed = self._not_allowed(press)
        if allowed is not None:
            return allowed
        known = bool(press.fingerprint) and state.alert(press.fingerprint) is not None
        messages = state.deliveries_of(press.fingerprint, SLACK_TARGET) if known else []
        in_fleet = bool(press.fingerprint) and self.fleet is not None
        shared = self._fleet().alert(press.fingerprint) if in_fleet else None
        if shared is not None:
            known = True
            if shared.message and shared.message.get("channel") and shared.message.get("ts"):
                messages.append((str(shared.message["channel"]), str(shared.message["ts"])))
        if not known:
            return f"forged: no alert with fingerprint {press.fingerprint!r}"
        if not messages:
            return f"forged: alert {press.fingerprint} has no Slack message"
        if (press.channel, press.message_ts) not in messages:
            return (
                f"forged: message {press.channel}/{press.message_ts} is not alert "
                f"{press.fingerprint}'s"
            )
        if self.fleet is not None:
            fresh = self._fleet().claim_action(press.seen_keys(), SEEN_KEPT)
        else:
            fresh = state.claim_action(press.seen_keys(), self.clock(), SEEN_KEPT)
        if not fresh:
            return "replayed: this action was handled before"
        return None

    def _fleet(self) -> FleetStore:
        assert self.fleet is not None
        if not self._fleet_open:
            self.fleet.open()
            self._fleet_open = True
        return self.fleet

    def _not_allowed(self, press: Press) -> str | None:
        if not press.user_id:
            return "not allowed: the action names no user"
        if not self.allowed_users and not self.allowed_groups:
            return None
        if press.user_id in self.allowed_users:
            return None
        problems = []
        for group in self.allowed_groups:
            if self.groups is None:
                break
            try:
                if press.user_id in self.groups.members(group):
                    return None
            except DeliveryError as exc:
                problems.append(str(exc))
        checked = "not in slack.allowed_users" + (
            " nor in slack.allowed_groups" if self.allowed_groups else ""
        )
        if problems:
            checked += f" (could not check: {'; '.join(problems)})"
        return f"not allowed: {checked}"

    def handle(self, press: Press) -> bool:
        """Carry out a press if it passes every check; log what happened either way."""
        try:
            state = State(self.state_path)
        except StateError as exc:
            log.error("Slack %s by %s not recorded: %s", press.action_id, press.user_id, exc)
            return False
        try:
            reason = self.refusal(press, state)
            book: State | FleetStore = state if self.fleet is None else self._fleet()
            if reason is not None:
                log.warning(
                    "refused Slack %s on alert %s by user %s: %s",
                    press.action_id,
                    press.fingerprint,
                    press.user_id,
                    reason,
                )
                return False
            now = self.clock()
            if press.action_id == ACTION_ACK:
                book.acknowledge(Ack(press.fingerprint, press.who, now, "", "slack"))
                log.info("Slack: %s acknowledged alert %s", press.who, press.fingerprint)
            else:
                seconds = ACTION_SILENCE[press.action_id]
                silence = book.add_silence(
                    press.fingerprint, None, now, now + seconds, "", press.who, "slack"
                )
                log.info(
                    "Slack: %s silenced alert %s for %dh (silence #%d)",
                    press.who,
                    press.fingerprint,
                    seconds // 3600,
                    silence.id,
                )
            return True
        except (StateError, FleetError) as exc:
            log.error("Slack %s by %s not recorded: %s", press.action_id, press.user_id, exc)
            return False
        finally:
            state.close()


class SlackSocketMode:
    """The Socket Mode connection: started and stopped by the daemon, in its own threads."""

    def __init__(
        self,
        app_token: str,
        base_url: str,
        handler: ActionHandler,
        timeout: float = 10.0,
    ) -> None:
        self.base_url = base_url
        self.handler = handler
        self.client = SocketModeClient(
            app_token=app_token,
            web_client=WebClient(base_url=base_url, timeout=int(timeout)),
        )
        self.client.socket_mode_request_listeners.append(self._on_request)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def create(
        cls,
        app_token: str,
        bot_token: str,
        base_url: str,
        state_path: str,
        allowed_users: Sequence[str],
        allowed_groups: Sequence[str],
        timeout: float = 10.0,
        fleet: FleetStore | None = None,
    ) -> SlackSocketMode:
        """The connection and its handler, user groups looked up with the bot token."""
        groups = GroupMembers(WebClient(token=bot_token, base_url=base_url, timeout=int(timeout)))
        handler = ActionHandler(state_path, allowed_users, allowed_groups, groups, fleet=fleet)
        return cls(app_token, base_url, handler, timeout)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._connect, name="oai400d-slack-socket")
        self._thread.daemon = True
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        # close() shuts the websocket at once, then joins slack-sdk's threads, one of which
        # polls its queue once a second: not worth holding a stopping daemon for.
        closing = threading.Thread(target=self._close, name="oai400d-slack-socket-close")
        closing.daemon = True
        closing.start()
        closing.join(0.5)

    def _close(self) -> None:
        try:
            self.client.close()
        except Exception as exc:  # closing a half-open socket: nothing left to do about it
            log.debug("closing the Socket Mode connection: %s", exc)

    def _connect(self) -> None:
        """Connect, retrying what can pass; give up (and say what to do) on what cannot."""
        attempt = 0
        while not self._stop.is_set():
            try:
                self.client.connect()
            except Exception as exc:
                error = self._translate(exc)
                if not error.retryable:
                    log.error("Slack Socket Mode is off: %s", error)
                    return
                wait = _CONNECT_BACKOFF[min(attempt, len(_CONNECT_BACKOFF) - 1)]
                attempt += 1
                log.warning("Slack Socket Mode: %s; trying again in %.0fs", error, wait)
                self.client.wss_uri = None  # ask apps.connections.open for a fresh URL
                self._stop.wait(wait)
                continue
            # connect() reports a failed websocket handshake only in slack-sdk's log; from
            # here on its monitor thread reconnects whenever the session is down.
            if self.client.is_connected():
                log.info("Slack Socket Mode connected: alert buttons are answered")
            else:
                log.warning("Slack Socket Mode: the websocket did not open; slack-sdk retries")
            return

    @staticmethod
    def _translate(exc: Exception) -> DeliveryError:
        code = _api_error(exc)
        if code in _APP_TOKEN_ERRORS:
            return PermanentDeliveryError(
                f"apps.connections.open: {code}: {_APP_TOKEN_ERRORS[code]}"
            )
        return translate(exc, "apps.connections.open")

    def _on_request(self, client: BaseSocketModeClient, request: SocketModeRequest) -> None:
        """Ack the envelope at once (Slack redelivers unacked ones), then handle our presses."""
        try:
            client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))
        except Exception as exc:
            log.warning("could not ack Slack envelope %s: %s", request.envelope_id, exc)
        if request.type != "interactive" or not isinstance(request.payload, dict):
            return
        for press in presses(request.envelope_id, request.payload):
            self.handler.handle(press)
