"""A fake Slack: the Web API (auth.test, chat.postMessage, chat.update) and an incoming webhook.

    with FakeSlack() as slack:
        client = WebClient(token=slack.token, base_url=slack.base_url)
        client.chat_postMessage(channel="#openai-alerts", text="hi")
        slack.wait_for_posts(1)

Answers as Slack does (HTTP 200 with `{"ok": false, "error": ...}` for API errors; 429 with
`Retry-After` and `"error": "ratelimited"` when rate limited; the webhook answers plain text:
"ok", or "invalid_payload" 400, "no_text" 400, "invalid_token" 403, "no_service" 404,
"channel_not_found" 404, ...). It keeps a per-channel message store, so chat.update edits a
stored message and thread replies are recorded, and checks what it receives against Slack's
limits (text 40,000 characters, 50 blocks, header 150, section text 3,000 ...), answering
`invalid_blocks` / `msg_too_long` so tests catch oversize messages.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from ._http import FakeServer, Fault, FaultPlan, Incoming, RecordedRequest, Reply, merged_params
from .slack_socket import FakeSocketMode

# Slack's documented limits (Block Kit reference, chat.postMessage "text" argument).
TEXT_LIMIT = 40_000
MAX_BLOCKS = 50
BLOCK_ID_LIMIT = 255
HEADER_TEXT_LIMIT = 150
SECTION_TEXT_LIMIT = 3000
SECTION_FIELDS_MAX = 10
SECTION_FIELD_LIMIT = 2000
CONTEXT_ELEMENTS_MAX = 10
ACTIONS_ELEMENTS_MAX = 25
MARKDOWN_BLOCK_LIMIT = 12_000
IMAGE_ALT_TEXT_LIMIT = 2000

BLOCK_TYPES = frozenset(
    {
        "actions",
        "context",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "markdown",
        "rich_text",
        "section",
        "table",
        "video",
    }
)

# The incoming-webhook errors and the HTTP status Slack sends each with.
WEBHOOK_ERROR_STATUS: dict[str, int] = {
    "invalid_payload": 400,
    "user_not_found": 400,
    "no_text": 400,
    "invalid_blocks": 400,
    "invalid_blocks_format": 400,
    "msg_too_long": 400,
    "too_many_attachments": 400,
    "action_prohibited": 403,
    "invalid_token": 403,
    "posting_to_general_channel_denied": 403,
    "channel_not_found": 404,
    "no_service": 404,
    "no_team": 404,
    "team_disabled": 404,
    "channel_is_archived": 410,
    "rollup_error": 500,
}

_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")


@dataclass(frozen=True)
class SlackMessage:
    """A message as the fake's store holds it now. `history` holds earlier versions."""

    channel: str
    ts: str
    text: str
    blocks: Any
    attachments: Any
    thread_ts: str | None
    via: Literal["api", "webhook"]
    reply_count: int = 0
    edited: bool = False
    history: tuple[SlackMessage, ...] = ()
    metadata: Any = None

    @property
    def is_reply(self) -> bool:
        return self.thread_ts is not None and self.thread_ts != self.ts


def block_problems(blocks: Any) -> list[str]:
    """What Slack would reject in `blocks`, in its "[ERROR] ... [json-pointer:...]" style."""
    if not isinstance(blocks, list):
        return ["[ERROR] must be an array [json-pointer:/blocks]"]
    problems: list[str] = []
    if len(blocks) > MAX_BLOCKS:
        problems.append(f"[ERROR] no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]")
    for i, block in enumerate(blocks):
        problems.extend(_block_problems(block, f"/blocks/{i}"))
    return problems


def _text_problems(obj: Any, ptr: str, limit: int, *, plain_only: bool = False) -> list[str]:
    kinds = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    if not isinstance(obj, dict) or obj.get("type") not in kinds:
        wanted = " or ".join(kinds)
        return [f"[ERROR] must provide an object with type {wanted} [json-pointer:{ptr}]"]
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        return [f"[ERROR] must be more than 0 characters [json-pointer:{ptr}/text]"]
    if len(text) > limit:
        return [f"[ERROR] must be less than {limit + 1} characters [json-pointer:{ptr}/text]"]
    return []


def _block_problems(block: Any, ptr: str) -> list[str]:
    if not isinstance(block, dict):
        return [f"[ERROR] must be an object [json-pointer:{ptr}]"]
    kind = block.get("type")
    if kind not in BLOCK_TYPES:
        return [f"[ERROR] unsupported type: {kind!r} [json-pointer:{ptr}/type]"]
    problems: list[str] = []
    block_id = block.get("block_id")
    if block_id is not None and (not isinstance(block_id, str) or len(block_id) > BLOCK_ID_LIMIT):
        problems.append(
            f"[ERROR] must be less than {BLOCK_ID_LIMIT + 1} characters "
            f"[json-pointer:{ptr}/block_id]"
        )
    if kind == "header":
        problems += _text_problems(
            block.get("text"), f"{ptr}/text", HEADER_TEXT_LIMIT, plain_only=True
        )
    elif kind == "section":
        text, fields = block.get("text"), block.get("fields")
        if text is None and fields is None:
            problems.append(f"[ERROR] must provide either text or fields [json-pointer:{ptr}]")
        if text is not None:
            problems += _text_problems(text, f"{ptr}/text", SECTION_TEXT_LIMIT)
        if fields is not None:
            if not isinstance(fields, list) or not fields:
                problems.append(f"[ERROR] must be a non-empty array [json-pointer:{ptr}/fields]")
            else:
                if len(fields) > SECTION_FIELDS_MAX:
                    problems.append(
                        f"[ERROR] no more than {SECTION_FIELDS_MAX} items allowed "
                        f"[json-pointer:{ptr}/fields]"
                    )
                for j, item in enumerate(fields):
                    problems += _text_problems(item, f"{ptr}/fields/{j}", SECTION_FIELD_LIMIT)
    elif kind == "context":
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements:
            problems.append(f"[ERROR] must be a non-empty array [json-pointer:{ptr}/elements]")
        else:
            if len(elements) > CONTEXT_ELEMENTS_MAX:
                problems.append(
                    f"[ERROR] no more than {CONTEXT_ELEMENTS_MAX} items allowed "
                    f"[json-pointer:{ptr}/elements]"
                )
            for j, element in enumerate(elements):
                if isinstance(element, dict) and element.get("type") == "image":
                    continue
                problems += _text_problems(element, f"{ptr}/elements/{j}", SECTION_TEXT_LIMIT)
    elif kind == "actions":
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements:
            problems.append(f"[ERROR] must be a non-empty array [json-pointer:{ptr}/elements]")
        elif len(elements) > ACTIONS_ELEMENTS_MAX:
            problems.append(
                f"[ERROR] no more than {ACTIONS_ELEMENTS_MAX} items allowed "
                f"[json-pointer:{ptr}/elements]"
            )
    elif kind == "image":
        if not isinstance(block.get("image_url"), str) and not block.get("slack_file"):
            problems.append(f"[ERROR] missing required field: image_url [json-pointer:{ptr}]")
        alt = block.get("alt_text")
        if not isinstance(alt, str) or not alt or len(alt) > IMAGE_ALT_TEXT_LIMIT:
            problems.append(
                f"[ERROR] must be 1 to {IMAGE_ALT_TEXT_LIMIT} characters "
                f"[json-pointer:{ptr}/alt_text]"
            )
    elif kind == "markdown":
        text = block.get("text")
        if not isinstance(text, str) or not text or len(text) > MARKDOWN_BLOCK_LIMIT:
            problems.append(
                f"[ERROR] must be 1 to {MARKDOWN_BLOCK_LIMIT} characters [json-pointer:{ptr}/text]"
            )
    return problems


def _decode_json_arg(value: Any) -> tuple[Any, bool]:
    """Form-encoded calls carry blocks/attachments as JSON strings. (value, parsed_ok)."""
    if isinstance(value, str):
        try:
            return json.loads(value), True
        except ValueError:
            return None, False
    return value, True


def content_error(params: Mapping[str, Any]) -> tuple[str, list[str]] | None:
    """The Slack error for a message's content (text, blocks, attachments), or None if fine.

    Returns (error, problems): `invalid_blocks_format`, `no_text`, `invalid_blocks` (with
    Slack-style problem messages) or `msg_too_long`.
    """
    blocks, blocks_ok = _decode_json_arg(params.get("blocks"))
    attachments, attachments_ok = _decode_json_arg(params.get("attachments"))
    if not blocks_ok or not attachments_ok:
        return "invalid_blocks_format", []
    text = params.get("text")
    if text is not None and not isinstance(text, str):
        text = str(text)
    if not text and not blocks and not attachments:
        return "no_text", []
    if blocks is not None:
        problems = block_problems(blocks)
        if problems:
            return "invalid_blocks", problems
    if text is not None and len(text) > TEXT_LIMIT:
        return "msg_too_long", []
    return None


class FakeSlack(FakeServer):
    """A Slack workspace on 127.0.0.1: Web API under `base_url`, an incoming webhook.

    `channels` maps channel names to IDs; when given, other channels answer
    `channel_not_found`. When None (the default), any channel is accepted and given an ID on
    first use ("#openai-alerts" is "C0ALERTS01" from the start).
    """

    name = "slack"

    def __init__(
        self,
        *,
        token: str = "xoxb-test-token",
        channels: Mapping[str, str] | None = None,
        team_id: str = "T000",
        webhook_service: str = "B000",
        webhook_secret: str = "XXXX",
        webhook_channel: str = "C0WEBHOOK1",
        bot_user_id: str = "U0BOT00001",
        bot_id: str = "B0BOT00001",
        app_token: str = "xapp-1-A0FAKEAPP1-test",
    ) -> None:
        super().__init__()
        self.token = token
        self.app_token = app_token  # apps.connections.open wants this one
        self.sockets = FakeSocketMode()  # the Socket Mode websocket it hands out
        self.usergroups: dict[str, list[str]] = {}  # usergroups.users.list: group → user IDs
        self.usergroups_scope = True  # False: usergroups.users.list answers missing_scope
        self.history_scope = True  # False: conversations.history answers missing_scope
        self.team_id = team_id
        self.webhook_service = webhook_service
        self.webhook_secret = webhook_secret
        self.webhook_channel = webhook_channel
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.api_faults = FaultPlan()
        self.webhook_faults = FaultPlan()
        self._strict_channels = channels is not None
        self._channel_ids: dict[str, str] = dict(
            channels if channels is not None else {"openai-alerts": "C0ALERTS01"}
        )
        self._channel_names: dict[str, str] = {v: k for k, v in self._channel_ids.items()}
        self._channel_names.setdefault(webhook_channel, "webhook-channel")
        self._messages: dict[str, list[SlackMessage]] = {}
        self._last_micros = 0
        self._channel_counter = itertools.count(1)
        self._req_counter = itertools.count(1)

    def start(self) -> FakeSlack:
        """The Web API and webhook, and the Socket Mode websocket beside them."""
        if self._server is None:
            self.sockets = FakeSocketMode().start()
        super().start()
        return self

    def stop(self) -> None:
        self.sockets.stop()
        super().stop()

    # -- addresses -----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """For `WebClient(base_url=...)` and `slack.base_url`: `http://127.0.0.1:PORT/api/`."""
        return f"{self.origin}/api/"

    @property
    def webhook_path(self) -> str:
        return f"/services/{self.team_id}/{self.webhook_service}/{self.webhook_secret}"

    @property
    def webhook_url(self) -> str:
        """`http://127.0.0.1:PORT/services/T000/B000/XXXX`."""
        return f"{self.origin}{self.webhook_path}"

    # -- configuration -------------------------------------------------------------------------

    def set_token(self, token: str) -> None:
        """Accept `token` from now on (the old one now gets `invalid_auth`)."""
        with self._lock:
            self.token = token

    def channel_id(self, channel: str) -> str | None:
        """The ID of a channel name ("#x" or "x") or ID, without creating it."""
        with self._lock:
            name = channel.lstrip("#")
            if name in self._channel_names:
                return name
            return self._channel_ids.get(name)

    # -- faults: Web API (and, for down/up, the webhook too) ------------------------------------

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """Next n Web API calls: HTTP `status`, `{"ok": false, "error": "internal_error"}`."""
        self.api_faults.fail_next(n, status)

    def rate_limit_next(self, n: int = 1, retry_after: int = 2) -> None:
        """Next n Web API calls: HTTP 429, `Retry-After`, `"error": "ratelimited"`."""
        self.api_faults.rate_limit_next(n, retry_after)

    def slow_next(self, n: int = 1, delay: float = 1.0) -> None:
        """Next n Web API calls are carried out, but answered after `delay` seconds."""
        self.api_faults.slow_next(n, delay)

    def drop_next(self, n: int = 1) -> None:
        """Next n Web API calls: connection closed without an answer (nothing is posted)."""
        self.api_faults.drop_next(n)

    def respond_error_next(self, n: int, error: str) -> None:
        """Next n Web API calls: HTTP 200 with `{"ok": false, "error": error}`."""
        self.api_faults.respond_error_next(n, error)

    def down(self, how: Literal["status", "drop"] = "status", status: int = 503) -> None:
        """Web API and webhook fail every request (HTTP `status` or dropped) until `up()`."""
        self.api_faults.down(how, status)
        self.webhook_faults.down(how, status)

    def up(self) -> None:
        self.api_faults.up()
        self.webhook_faults.up()

    # -- what was received ---------------------------------------------------------------------

    def calls(self, method: str | None = None) -> list[RecordedRequest]:
        """Every Web API request (to `method`, if given), whatever the answer."""
        return [
            r
            for r in self.requests()
            if r.endpoint != "webhook" and (method is None or r.endpoint == method)
        ]

    def _accepted(self, method: str, channel: str | None) -> list[RecordedRequest]:
        wanted = self.channel_id(channel) if channel is not None else None
        return [
            r
            for r in self.requests(method)
            if r.ok and (channel is None or r.answer.get("channel") == wanted)
        ]

    def posts(self, channel: str | None = None) -> list[RecordedRequest]:
        """chat.postMessage calls Slack accepted (optionally to one channel), oldest first."""
        return self._accepted("chat.postMessage", channel)

    def updates(self, channel: str | None = None) -> list[RecordedRequest]:
        """chat.update calls Slack accepted, oldest first."""
        return self._accepted("chat.update", channel)

    def webhook_posts(self) -> list[RecordedRequest]:
        """Webhook posts Slack accepted ("ok"), oldest first."""
        return [r for r in self.requests("webhook") if r.ok]

    def messages(self, channel: str | None = None) -> list[SlackMessage]:
        """The store now: every message (replies included) in `channel` or all, by ts."""
        with self._lock:
            if channel is None:
                found = [m for ms in self._messages.values() for m in ms]
            else:
                cid = self.channel_id(channel)
                found = list(self._messages.get(cid, [])) if cid else []
        return sorted(found, key=lambda m: m.ts)

    def message(self, channel: str, ts: str) -> SlackMessage | None:
        """The stored message `ts` in `channel`, as it is now (after any updates)."""
        return next((m for m in self.messages(channel) if m.ts == ts), None)

    def replies(self, channel: str, thread_ts: str) -> list[SlackMessage]:
        """Thread replies to `thread_ts` in `channel`, oldest first."""
        return [m for m in self.messages(channel) if m.is_reply and m.thread_ts == thread_ts]

    def wait_for_posts(
        self, n: int, timeout: float = 5.0, channel: str | None = None
    ) -> list[RecordedRequest]:
        """Wait until at least n accepted chat.postMessage calls; return them all."""

        def enough() -> list[RecordedRequest]:
            found = self.posts(channel)
            return found if len(found) >= n else []

        return self.wait_for(enough, timeout, f"{n} accepted chat.postMessage call(s)")

    def wait_for_updates(self, n: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Wait until at least n accepted chat.update calls; return them all."""

        def enough() -> list[RecordedRequest]:
            found = self.updates()
            return found if len(found) >= n else []

        return self.wait_for(enough, timeout, f"{n} accepted chat.update call(s)")

    def wait_for_webhook_posts(self, n: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Wait until at least n accepted webhook posts; return them all."""

        def enough() -> list[RecordedRequest]:
            found = self.webhook_posts()
            return found if len(found) >= n else []

        return self.wait_for(enough, timeout, f"{n} accepted webhook post(s)")

    # -- serving -------------------------------------------------------------------------------

    def _route(self, req: Incoming) -> tuple[str, Any]:
        if req.path.startswith("/services/"):
            return "webhook", self._webhook_payload(req)
        if req.path.startswith("/api/"):
            return req.path.removeprefix("/api/"), merged_params(req)
        return "unknown", req.body.decode("utf-8", errors="replace")

    def _faults_for(self, endpoint: str) -> FaultPlan:
        return self.webhook_faults if endpoint == "webhook" else self.api_faults

    def _api_reply(self, status: int, payload: dict[str, Any], *headers: tuple[str, str]) -> Reply:
        req_id = f"fake-{next(self._req_counter):06d}"
        return Reply.json(status, payload, (("x-slack-req-id", req_id), *headers))

    def _fault_reply(self, endpoint: str, req: Incoming, params: Any, fault: Fault) -> Reply:
        if endpoint == "webhook":
            if fault.kind == "rate_limit":
                return Reply.text(429, "rate_limited").with_headers(
                    ("Retry-After", str(fault.retry_after))
                )
            if fault.kind == "error":
                status = fault.status or WEBHOOK_ERROR_STATUS.get(fault.error, 400)
                return Reply.text(status, fault.error)
            return Reply.text(fault.status, "rollup_error" if fault.status == 500 else "error")
        if fault.kind == "rate_limit":
            return self._api_reply(
                429, {"ok": False, "error": "ratelimited"}, ("Retry-After", str(fault.retry_after))
            )
        if fault.kind == "error":
            return self._api_reply(fault.status or 200, {"ok": False, "error": fault.error})
        return self._api_reply(fault.status, {"ok": False, "error": "internal_error"})

    def _answer(self, endpoint: str, req: Incoming, params: Any) -> Reply:
        if endpoint == "webhook":
            return self._webhook(req, params)
        if endpoint == "unknown":
            return Reply.text(404, "Not Found")
        assert isinstance(params, dict)
        supplied = self._token_of(req, params)
        if supplied is None:
            return self._api_reply(200, {"ok": False, "error": "not_authed"})
        if endpoint == "apps.connections.open":  # the app-level token's only method
            if supplied != self.app_token:
                return self._api_reply(200, {"ok": False, "error": "invalid_auth"})
            return self._api_reply(200, {"ok": True, "url": self.sockets.url})
        if supplied != self.token:
            return self._api_reply(200, {"ok": False, "error": "invalid_auth"})
        handler = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "conversations.history": self._history,
            "usergroups.users.list": self._usergroup_users,
        }.get(endpoint)
        if handler is None:
            return self._api_reply(200, {"ok": False, "error": "unknown_method"})
        return self._api_reply(200, handler(params))

    @staticmethod
    def _token_of(req: Incoming, params: Mapping[str, Any]) -> str | None:
        auth = req.header("authorization") or ""
        if auth.lower().startswith("bearer "):
            return auth[7:].strip() or None
        token = params.get("token")
        return token if isinstance(token, str) and token else None

    def _auth_test(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://fake-workspace.slack.com/",
            "team": "Fake Workspace",
            "user": "oai400d",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _usergroup_users(self, params: Mapping[str, Any]) -> dict[str, Any]:
        if not self.usergroups_scope:
            return {"ok": False, "error": "missing_scope", "needed": "usergroups:read"}
        group = params.get("usergroup")
        if group not in self.usergroups:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(self.usergroups[group])}

    def _next_ts(self) -> str:
        """Like Slack: the epoch time of the message, made unique (strictly increasing)."""
        micros = max(int(time.time() * 1_000_000), self._last_micros + 100)
        self._last_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _resolve_channel(self, raw: Any) -> str | None:
        if not isinstance(raw, str) or not raw.strip():
            return None
        found = self.channel_id(raw)
        if found is not None or self._strict_channels:
            return found
        name = raw.lstrip("#")
        if _CHANNEL_ID.match(name):
            self._channel_names[name] = name.lower()
            return name
        new_id = f"C0CHAN{next(self._channel_counter):04d}"
        self._channel_ids[name] = new_id
        self._channel_names[new_id] = name
        return new_id

    def _message_json(self, m: SlackMessage) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "message",
            "text": m.text,
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": "A0FAKEAPP1",
            "team": self.team_id,
            "ts": m.ts,
        }
        if m.blocks:
            out["blocks"] = m.blocks
        if m.attachments:
            out["attachments"] = m.attachments
        if m.thread_ts:
            out["thread_ts"] = m.thread_ts
        if m.reply_count:
            out["reply_count"] = m.reply_count
        if m.edited:
            out["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        if m.metadata:
            out["metadata"] = m.metadata
        return out

    def _history(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """conversations.history: top-level messages, newest first (needs channels:history)."""
        if not self.history_scope:
            return {"ok": False, "error": "missing_scope", "needed": "channels:history"}
        channel = self._resolve_channel(params.get("channel"))
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        oldest = float(params.get("oldest") or 0)
        limit = int(params.get("limit") or 100)
        found = [
            self._message_json(m)
            for m in reversed(self._messages.get(channel, []))
            if not m.is_reply and float(m.ts) >= oldest
        ]
        return {"ok": True, "messages": found[:limit], "has_more": len(found) > limit}

    def _store(self, message: SlackMessage) -> None:
        self._messages.setdefault(message.channel, []).append(message)
        if message.is_reply and message.thread_ts is not None:
            siblings = self._messages[message.channel]
            for i, parent in enumerate(siblings):
                if parent.ts == message.thread_ts:
                    siblings[i] = replace(
                        parent, thread_ts=parent.ts, reply_count=parent.reply_count + 1
                    )

    def _post_message(self, params: Mapping[str, Any]) -> dict[str, Any]:
        if not params.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        problem = content_error(params)
        if problem is not None:
            return _content_failure(*problem)
        channel = self._resolve_channel(params.get("channel"))
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        thread_ts = params.get("thread_ts") or None
        message = SlackMessage(
            channel=channel,
            ts=self._next_ts(),
            text=str(params.get("text") or ""),
            blocks=_decode_json_arg(params.get("blocks"))[0],
            attachments=_decode_json_arg(params.get("attachments"))[0],
            thread_ts=str(thread_ts) if thread_ts else None,
            via="api",
            metadata=_decode_json_arg(params.get("metadata"))[0],
        )
        self._store(message)
        return {
            "ok": True,
            "channel": channel,
            "ts": message.ts,
            "message": self._message_json(message),
        }

    def _update(self, params: Mapping[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(params.get("channel")) if params.get("channel") else None
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        ts = params.get("ts")
        stored = self._messages.get(channel, [])
        index = next((i for i, m in enumerate(stored) if m.ts == ts), None)
        if index is None:
            return {"ok": False, "error": "message_not_found"}
        old = stored[index]
        # What the message would become: arguments left out keep their old values.
        result = {"text": old.text, "blocks": old.blocks, "attachments": old.attachments}
        result.update({k: params[k] for k in result if k in params})
        problem = content_error(result)
        if problem is not None:
            return _content_failure(*problem)
        # As chat.update: an argument left out keeps its old value; [] clears blocks.
        new = replace(
            old,
            text=str(params["text"]) if "text" in params else old.text,
            blocks=_decode_json_arg(params["blocks"])[0] if "blocks" in params else old.blocks,
            attachments=(
                _decode_json_arg(params["attachments"])[0]
                if "attachments" in params
                else old.attachments
            ),
            edited=True,
            history=(*old.history, replace(old, history=())),
        )
        stored[index] = new
        return {
            "ok": True,
            "channel": channel,
            "ts": new.ts,
            "text": new.text,
            "message": self._message_json(new),
        }

    # -- the incoming webhook ------------------------------------------------------------------

    @staticmethod
    def _webhook_payload(req: Incoming) -> Any:
        if req.content_type == "application/x-www-form-urlencoded":
            raw = req.form().get("payload")
            try:
                return json.loads(raw) if raw is not None else None
            except ValueError:
                return None
        return req.json()

    def _webhook(self, req: Incoming, payload: Any) -> Reply:
        if req.path.rstrip("/") != self.webhook_path:
            parts = req.path.strip("/").split("/")
            known = len(parts) == 4 and parts[1:3] == [self.team_id, self.webhook_service]
            return Reply.text(403, "invalid_token") if known else Reply.text(404, "no_service")
        if not isinstance(payload, dict):
            return Reply.text(400, "invalid_payload")
        problem = content_error(payload)
        if problem is not None:
            error = problem[0]
            return Reply.text(WEBHOOK_ERROR_STATUS.get(error, 400), error)
        message = SlackMessage(
            channel=self.webhook_channel,
            ts=self._next_ts(),
            text=str(payload.get("text") or ""),
            blocks=payload.get("blocks"),
            attachments=payload.get("attachments"),
            thread_ts=None,
            via="webhook",
        )
        self._store(message)
        return Reply.text(200, "ok", content_type="text/html")


def _content_failure(error: str, problems: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"ok": False, "error": error}
    if problems:
        out["errors"] = [p.removeprefix("[ERROR] ") for p in problems]
        out["response_metadata"] = {"messages": problems}
    return out
