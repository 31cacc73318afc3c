"""Slack delivery with slack-sdk: a bot token (Web API) or an incoming webhook.

Bot token: one problem is one message in the channel. `opened` posts it, later notifications edit
it (chat.update) and add a threaded reply for `repeated` and `resolved`. Each post carries the
outbox entry's ref and the episode's key in its metadata. The outbox keeps the message's address
(returned in a `Delivered`) and marks each entry before its first attempt; a retry of an entry
whose earlier attempt may have posted (a lost answer, a kill -9) looks for that post in the
channel's history by its ref before posting again, so a restart neither loses the message nor
posts it twice.

Webhook: new messages for opened / repeated / resolved; updates are folded into the reminders.
Every slack-sdk error is translated here into a DeliveryError that says whether a retry can help.
"""

from __future__ import annotations

import logging
import socket
import urllib.error
from collections.abc import Sequence
from http.client import HTTPException
from typing import Any

from slack_sdk import WebClient, WebhookClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler

from oai400d.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from oai400d.masking import redact
from oai400d.model import Notification
from oai400d.notify.base import Attempt, Delivered, MessageAddress, MessageRejected, episode_key
from oai400d.notify.slack_blocks import (
    SlackMessage,
    render,
    render_digest,
    render_plain,
    render_reply,
)
from oai400d.timestamps import parse_iso

log = logging.getLogger("oai400d.slack")

METADATA_EVENT = "oai400d_alert"
# Fold the due notifications into one digest when sending them one by one would take longer
# than this many messages (about as many seconds at Slack's pace): a storm, not a backlog.
DIGEST_THRESHOLD = 30

# Errors that retrying cannot fix, and what the person should do about each.
PERMANENT: dict[str, str] = {
    "invalid_auth": "the bot token is not valid: create a new one and update the credential",
    "not_authed": "no bot token was sent: set SLACK_BOT_TOKEN or the slack-bot-token credential",
    "account_inactive": "the token's user or app was deactivated: reinstall the Slack app",
    "token_revoked": "the bot token was revoked: reinstall the app and update the credential",
    "token_expired": "the bot token expired: reinstall the app and update the credential",
    "no_permission": "the app lacks a permission: add the chat:write scope and reinstall",
    "missing_scope": "the app lacks a scope: add chat:write and reinstall the app",
    "channel_not_found": "the channel does not exist or is private: check slack.channel",
    "not_in_channel": "the bot is not in the channel: /invite the app into it",
    "is_archived": "the channel is archived: choose another slack.channel",
    "restricted_action": "the workspace does not let this app post there: ask a Slack admin",
    "invalid_blocks": "Slack rejected the message layout",
    "invalid_blocks_format": "Slack rejected the message layout",
    "msg_too_long": "the message was too long",
    "no_text": "the message was empty",
    # Webhook answers
    "invalid_payload": "Slack rejected the message layout",
    "invalid_token": "the webhook URL is no longer valid: create a new incoming webhook",
    "no_service": "the webhook was removed: create a new incoming webhook",
    "no_active_hooks": "the webhook was disabled: re-enable it or create a new one",
    "channel_is_archived": "the webhook's channel is archived: create a webhook for another one",
    "action_prohibited": "a workspace admin blocked this webhook",
    "posting_to_general_channel_denied": "only admins may post to that channel",
}
LAYOUT_ERRORS = {"invalid_blocks", "invalid_blocks_format", "msg_too_long", "invalid_payload"}
# The errors about one message, not about the token or the channel: that message is given up,
# the next ones go on. Every other error of PERMANENT parks the notification until it is fixed.
MESSAGE_ERRORS = LAYOUT_ERRORS | {"no_text"}
_NETWORK_ERRORS = (
    urllib.error.URLError,
    socket.timeout,
    TimeoutError,
    ConnectionError,
    HTTPException,
    OSError,
)


class LayoutRejected(MessageRejected):
    """Slack refused the blocks: send the plain-text version instead."""


def _retry_after(headers: Any) -> float | None:
    try:
        value = headers.get("Retry-After") or headers.get("retry-after")
        return float(value) if value is not None else None
    except (TypeError, ValueError, AttributeError):
        return None


def translate(exc: Exception, where: str) -> DeliveryError:
    """A slack-sdk or network error → ours, saying whether a retry can help and what to do."""
    if isinstance(exc, SlackApiError):
        response = exc.response
        status = response.status_code
        error = str(response.get("error", "")) if isinstance(response.data, dict) else ""
        if status == 429 or error == "ratelimited":
            return TransientDeliveryError(
                f"{where}: rate limited by Slack", _retry_after(response.headers)
            )
        if status >= 500:
            return TransientDeliveryError(f"{where}: Slack answered HTTP {status}")
        if error in LAYOUT_ERRORS:
            return LayoutRejected(f"{where}: {error} ({PERMANENT[error]})")
        if error in MESSAGE_ERRORS:
            return MessageRejected(f"{where}: {error}: {PERMANENT[error]}")
        if error in PERMANENT:
            return PermanentDeliveryError(f"{where}: {error}: {PERMANENT[error]}")
        return TransientDeliveryError(f"{where}: Slack error {error or status}")
    if isinstance(exc, _NETWORK_ERRORS):
        reason = getattr(exc, "reason", None) or exc
        return TransientDeliveryError(
            f"{where}: cannot reach Slack ({type(exc).__name__}: {reason})"
        )
    if isinstance(exc, SlackClientError):
        return TransientDeliveryError(f"{where}: {type(exc).__name__}")
    return TransientDeliveryError(f"{where}: {type(exc).__name__}: {exc}")


class SlackWebNotifier:
    """Posts with a bot token through the Web API (chat.postMessage, chat.update)."""

    name = "slack"  # the target its message addresses are kept under: state.SLACK_TARGET
    digest_threshold = DIGEST_THRESHOLD
    edits_messages = True
    resend_interval = 0.0

    def __init__(
        self,
        token: str,
        channel: str,
        base_url: str,
        min_interval: float = 1.0,
        timeout: float = 10.0,
        buttons: bool = False,
    ) -> None:
        self.channel = channel
        self.buttons = buttons  # Acknowledge / Silence buttons: only when Socket Mode answers them
        self.base_url = base_url
        self.min_interval = min_interval
        # One quick retry of a dropped connection inside slack-sdk; everything else is the
        # outbox's job (backoff, order per alert).
        self.client = WebClient(
            token=token,
            base_url=base_url,
            timeout=int(timeout),
            retry_handlers=[ConnectionErrorRetryHandler(max_retry_count=1)],
        )

    def describe(self) -> str:
        return f"Slack channel {self.channel} (bot token, {redact(self.base_url)})"

    # --- checks (`oai400d test-alert`) ------------------------------------------------------

    def check(self) -> str:
        """auth.test: which workspace and bot this token is; raises DeliveryError."""
        try:
            answer = self.client.auth_test()
        except Exception as exc:
            raise translate(exc, "auth.test") from None
        return f"workspace {answer.get('team')} ({answer.get('url')}) as {answer.get('user')}"

    # --- delivery ---------------------------------------------------------------------------

    def send(self, notification: Notification, attempt: Attempt) -> Delivered:
        key = episode_key(notification)
        message = render(notification, actions=self.buttons)
        if notification.kind == "backlog":
            return Delivered(self._post_once(attempt, key, message))
        existing = attempt.message
        if existing is None and notification.episode and notification.kind != "opened":
            existing = self._find_fleet_message(attempt, key, notification.first_seen)
        if existing is None:  # the first message of this episode (or its message is gone)
            return Delivered(self._post_once(attempt, key, message))
        current = self._update(existing, message, notification, attempt)
        if notification.kind in ("repeated", "resolved", "merged"):
            self._reply(current, render_reply(notification))
        return Delivered(current)

    def send_digest(self, notifications: Sequence[Notification], attempt: Attempt) -> Delivered:
        message = render_digest(notifications)
        return Delivered(self._post_once(attempt, f"digest:{attempt.ref}", message))

    def _channel_id(self, attempt: Attempt) -> str:
        """The channel as Slack named it in an earlier answer (its id), else as configured."""
        return attempt.channel or self.channel

    def _post_once(self, attempt: Attempt, key: str, message: SlackMessage) -> MessageAddress:
        """Post, unless an interrupted earlier attempt of this entry already did."""
        if attempt.earlier_attempt is not None:
            found = self._find_posted(
                self._channel_id(attempt), "ref", attempt.ref, since=attempt.earlier_attempt
            )
            if found is not None:
                return found
        metadata = {"event_type": METADATA_EVENT, "event_payload": {"ref": attempt.ref, "key": key}}
        try:
            answer = self.client.chat_postMessage(
                channel=self.channel,
                text=message.text,
                blocks=list(message.blocks),
                metadata=metadata,
                unfurl_links=False,
                unfurl_media=False,
            )
        except Exception as exc:
            error = translate(exc, "chat.postMessage")
            if not isinstance(error, LayoutRejected):
                raise error from None
            log.warning("%s; sending the plain-text version", error)
            try:
                answer = self.client.chat_postMessage(
                    channel=self.channel,
                    text=message.text,  # the fallback text stands alone
                    metadata=metadata,
                    unfurl_links=False,
                    unfurl_media=False,
                )
            except Exception as again:
                raise translate(again, "chat.postMessage (plain text)") from None
        return MessageAddress(str(answer["channel"]), str(answer["ts"]))

    def _find_fleet_message(
        self, attempt: Attempt, key: str, first_seen: str
    ) -> MessageAddress | None:
        """The message of a fleet alert that another host posted while it owned the alert, and
        died before the store learnt where it is: found by its episode key, then edited."""
        try:
            since = parse_iso(first_seen)
        except ValueError:
            return None
        return self._find_posted(self._channel_id(attempt), "key", key, since)

    def _find_posted(
        self, channel: str, field: str, value: str, since: float
    ) -> MessageAddress | None:
        """The message whose metadata has this ref (an interrupted attempt of ours) or key (an
        alert's episode), posted since a time (needs channels:history; without it we post again
        and say so)."""
        if not channel or (channel.startswith("#") and field == "ref"):
            return None
        try:
            answer = self.client.conversations_history(
                channel=channel, oldest=f"{since - 5:.6f}", limit=100, include_all_metadata=True
            )
        except SlackApiError as exc:
            log.warning(
                "cannot check whether an interrupted post reached Slack (%s): it may appear "
                "twice; add the channels:history scope to avoid this",
                exc.response.get("error", exc.response.status_code),
            )
            return None
        except Exception as exc:
            raise translate(exc, "conversations.history") from None
        messages: list[dict[str, Any]] = answer.get("messages") or []
        for item in messages:
            payload = (item.get("metadata") or {}).get("event_payload") or {}
            if payload.get(field) == value:
                return MessageAddress(channel, str(item["ts"]))
        return None

    def _update(
        self, where: MessageAddress, message: SlackMessage, n: Notification, attempt: Attempt
    ) -> MessageAddress:
        """Edit the episode's message; the message that stands for it afterwards (a new one
        when it was deleted in Slack)."""
        try:
            self.client.chat_update(
                channel=where.channel, ts=where.ts, text=message.text, blocks=list(message.blocks)
            )
        except Exception as exc:
            error = translate(exc, "chat.update")
            if isinstance(error, LayoutRejected):
                try:
                    self.client.chat_update(
                        channel=where.channel, ts=where.ts, text=render_plain(n), blocks=[]
                    )
                except Exception as again:
                    raise translate(again, "chat.update (plain text)") from None
                return where
            if "message_not_found" in str(error) or "cant_update_message" in str(error):
                return self._post_once(attempt, episode_key(n), message)  # deleted: post anew
            raise error from None
        return where

    def _reply(self, where: MessageAddress, text: str) -> None:
        """A reply in the message's thread (the last step of a delivery: a failure before it
        never leaves a reply that a retry would repeat)."""
        try:
            self.client.chat_postMessage(
                channel=where.channel,
                thread_ts=where.ts,
                text=text,
                unfurl_links=False,
                unfurl_media=False,
            )
        except Exception as exc:
            raise translate(exc, "chat.postMessage (thread reply)") from None


class SlackWebhookNotifier:
    """Posts to an incoming webhook: new messages for opened / repeated / resolved."""

    name = "slack-webhook"
    digest_threshold = DIGEST_THRESHOLD
    edits_messages = False  # a webhook returns no message id: nothing to keep
    resend_interval = 0.0

    def __init__(self, url: str, min_interval: float = 1.0, timeout: float = 10.0) -> None:
        self.client = WebhookClient(
            url,
            timeout=int(timeout),
            retry_handlers=[ConnectionErrorRetryHandler(max_retry_count=1)],
        )
        self.min_interval = min_interval

    def describe(self) -> str:
        return "a Slack incoming webhook"

    def check(self) -> str:
        return "an incoming webhook (its channel was chosen when it was created)"

    def send(self, notification: Notification, attempt: Attempt) -> Delivered:
        if notification.kind == "updated":
            return Delivered()  # folded into the next reminder: a webhook cannot edit its message
        self._send(render(notification), render_plain(notification))
        return Delivered()

    def send_digest(self, notifications: Sequence[Notification], attempt: Attempt) -> Delivered:
        message = render_digest(notifications)
        self._send(message, message.text)
        return Delivered()

    def _send(self, message: SlackMessage, plain: str) -> None:
        error = self._post(text=message.text, blocks=list(message.blocks))
        if isinstance(error, LayoutRejected):
            error = self._post(text=plain, blocks=None)
        if error is not None:
            raise error

    def _post(self, text: str, blocks: list[dict[str, Any]] | None) -> DeliveryError | None:
        """Send once; None when Slack answered ok, else what went wrong."""
        try:
            response = self.client.send(
                text=text, blocks=blocks, unfurl_links=False, unfurl_media=False
            )
        except Exception as exc:
            raise translate(exc, "webhook") from None
        if response.status_code == 200:
            return None
        return self._error(response.status_code, response.body or "", response.headers)

    def _error(self, status: int, body: str, headers: Any) -> DeliveryError:
        error = body.strip()
        if status == 429:
            return TransientDeliveryError("webhook: rate limited by Slack", _retry_after(headers))
        if status >= 500:
            return TransientDeliveryError(f"webhook: Slack answered HTTP {status}")
        if error in LAYOUT_ERRORS or error == "no_text":
            return LayoutRejected(f"webhook: {error}")
        if error in PERMANENT:
            return PermanentDeliveryError(f"webhook: {error}: {PERMANENT[error]}")
        return PermanentDeliveryError(f"webhook: Slack answered HTTP {status} {error[:100]}")
