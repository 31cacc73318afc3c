"""PagerDuty delivery through the Events API v2: one alert episode is one PagerDuty incident.

Each notification becomes one event, POSTed as JSON with the integration's routing key:

- opened, updated, repeated: `trigger` (an update re-triggers the same `dedup_key`, so PagerDuty
  adds it to the open incident's log with the new count instead of paging again);
- acknowledged: `acknowledge`; resolved and merged: `resolve`;
- backlog (errors found in lines caught up after a restart: history, not a live problem): a
  Change Event (`/v2/change/enqueue`), shown beside the service's incidents, paging nobody.

`dedup_key` is the alert's episode (`notify.base.episode_key`): a fleet's episode makes the
hosts that see one problem raise one incident, and a problem that resolves and comes back is a
new incident (PagerDuty opens a new one for a trigger on a resolved key).

Answers (developer.pagerduty.com, Events API v2 overview): 202 accepted; 429 and 5xx are
transient (PagerDuty asks for a retry after some time); 400 is "invalid event": when its errors
are about the routing key, the configuration is wrong (PermanentDeliveryError: parked); when
they are about the event, that message is given up (MessageRejected) and the others go on.
Everything taken from logs goes out through masking.redact_values; the routing key appears only
in the `routing_key` field of the body.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from oai400d.errors import PermanentDeliveryError, TransientDeliveryError
from oai400d.masking import redact, redact_values
from oai400d.model import Notification
from oai400d.notify.base import Attempt, Delivered, MessageRejected, episode_key
from oai400d.notify.posting import Answer, Poster, Transport, retry_after, status_error

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
ENQUEUE_PATH = "/v2/enqueue"
CHANGE_PATH = "/v2/change/enqueue"
# PagerDuty: "approximately 120 calls/minute per integration key", over a 60 s window.
MIN_INTERVAL = 0.5
# A 429 without Retry-After (PagerDuty sends none): its docs suggest retrying 30 s apart.
RATE_LIMIT_WAIT = 30.0
# PagerDuty's documented limits: summary 1024 characters, dedup_key 255, whole event 512 KB.
SUMMARY_LIMIT = 1024
DEDUP_KEY_LIMIT = 255
# Our own caps on log text in custom_details, far under 512 KB: a page is read on a phone.
EXCERPT_LIMIT = 4000
TEXT_LIMIT = 1000
ROUTING_KEY_LENGTH = 32
_ROUTING_KEY_SHAPE = re.compile(r"[A-Za-z0-9]{32}")

ACTIONS: dict[str, str] = {
    "opened": "trigger",
    "updated": "trigger",
    "repeated": "trigger",
    "acknowledged": "acknowledge",
    "resolved": "resolve",
    "merged": "resolve",
}
SEVERITIES: dict[str, str] = {"critical": "critical", "warning": "warning", "info": "info"}
# What a person does about a refused routing key (config key, environment, credential).
KEY_ADVICE = (
    "set pagerduty.routing_key (or PAGERDUTY_ROUTING_KEY, or the pagerduty-routing-key "
    "credential) to the Integration Key of an Events API v2 integration on the PagerDuty "
    "service (Service > Integrations), not a REST API token"
)


def dedup_key(notification: Notification) -> str:
    """The episode's key as PagerDuty's dedup_key: itself, or its SHA-256 when it is longer than
    PagerDuty's 255 characters (the same for every event of the episode either way)."""
    key = episode_key(notification)
    if len(key) <= DEDUP_KEY_LIMIT:
        return key
    return f"oai400d-{hashlib.sha256(key.encode('utf-8')).hexdigest()}"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def source_of(notification: Notification, fallback: str) -> str:
    """payload.source: the host, or for a fleet "5 hosts (web-1, web-2, …)"."""
    n = notification
    if n.host_count > 0:
        more = ", …" if n.host_count > len(n.hosts) else ""
        names = f" ({', '.join(n.hosts)}{more})" if n.hosts else ""
        return f"{n.host_count} host{'s' if n.host_count != 1 else ''}{names}"
    return n.host or fallback


def _links(docs: Sequence[str]) -> list[dict[str, str]]:
    """PagerDuty's links: only http(s) URLs (a href must be one)."""
    return [
        {"href": doc, "text": "Documentation"}
        for doc in docs
        if urlsplit(doc).scheme in ("http", "https")
    ]


def _present(details: dict[str, Any]) -> dict[str, Any]:
    """Without the fields that say nothing (None, "", empty lists): the incident page shows
    every key of custom_details."""
    return {k: v for k, v in details.items() if v not in (None, "", [], ())}


def custom_details(n: Notification) -> dict[str, Any]:
    """What a responder reads on the incident: counts, times, where, the fixes, the evidence."""
    return _present(
        {
            "kind": n.kind,
            "count": n.count,
            "new": n.new or None,
            "first_seen": n.first_seen,
            "last_seen": n.last_seen,
            "duration_s": n.duration_s,
            "category": n.category,
            "status": n.status,
            "error_code": n.error_code,
            "model": n.model,
            "request_id": n.request_id,
            "message": _cut(n.message, TEXT_LIMIT),
            "excerpt": _cut(n.excerpt, EXCERPT_LIMIT),
            "files": list(n.files),
            "fixes": list(n.fixes),
            "docs": list(n.docs),
            "context": _cut(n.context, TEXT_LIMIT),
            "facts": [_cut(fact, TEXT_LIMIT) for fact in n.facts],
            "host": n.host,
            "hosts": list(n.hosts),
            "host_count": n.host_count or None,
            "acked_by": n.acked_by,
            "acked_at": n.acked_at,
            "note": n.note,
            "items": [dict(item) for item in n.items],
            "fingerprint": n.fingerprint,
        }
    )


def trigger_payload(n: Notification, fallback_source: str) -> dict[str, Any]:
    """The `payload` of a trigger event (before redaction)."""
    return _present(
        {
            "summary": _cut(n.title, SUMMARY_LIMIT),
            "source": source_of(n, fallback_source),
            "severity": SEVERITIES.get(n.severity, "error"),
            "timestamp": n.last_seen,
            "component": n.category,
            "group": n.rule,
            "class": n.error_code or (str(n.status) if n.status else ""),
            "custom_details": custom_details(n),
        }
    )


class PagerDutyNotifier:
    """Sends each notification as one Events API v2 event (never folded, never edited)."""

    name = "pagerduty"
    digest_threshold = 0  # never fold: each alert is its own incident
    min_interval = MIN_INTERVAL
    edits_messages = False
    resend_interval = 0.0  # PagerDuty keeps an incident open until it is resolved

    def __init__(
        self,
        routing_key: str,
        events_url: str = EVENTS_URL,
        timeout: float = 10.0,
        transport: Transport | None = None,
    ) -> None:
        self._routing_key = routing_key
        self.events_url = events_url
        self.change_url = change_url(events_url)
        parts = urlsplit(events_url)
        # Host and port only: a URL's userinfo or query could hold a secret.
        self.host = parts.hostname or "?"
        if parts.port is not None:
            self.host = f"{self.host}:{parts.port}"
        # payload.source when a notification names no host (a single host's daemon).
        self._fallback_source = socket.gethostname() or "oai400d"
        self._poster = Poster(f"PagerDuty ({self.host})", timeout, transport=transport)

    def describe(self) -> str:
        return f"PagerDuty Events API v2 ({self.host})"

    def check(self) -> str:
        """The routing key's shape (an Events API v2 integration key: 32 letters and digits);
        raises PermanentDeliveryError when it cannot be one."""
        key = self._routing_key
        if not _ROUTING_KEY_SHAPE.fullmatch(key):
            wrong = (
                "is empty"
                if not key
                else f"has {len(key)} characters"
                if len(key) != ROUTING_KEY_LENGTH
                else "contains characters other than letters and digits"
            )
            raise PermanentDeliveryError(
                f"pagerduty.routing_key {wrong}, but an Events API v2 integration key is "
                f"{ROUTING_KEY_LENGTH} letters and digits: {KEY_ADVICE}"
            )
        return (
            f"routing key shaped as an Events API v2 integration key ({ROUTING_KEY_LENGTH} "
            f"letters and digits); events go to {self.host}"
        )

    # --- delivery ---------------------------------------------------------------------------

    def send(self, notification: Notification, attempt: Attempt) -> Delivered:
        if notification.kind == "backlog":
            self._post(self.change_url, self.change_event(notification), "change event")
            return Delivered()
        action = ACTIONS.get(notification.kind)
        if action is None:
            raise MessageRejected(
                f"PagerDuty: a {notification.kind!r} notification has no Events API action "
                "(this is a bug in oai400d: please report it)"
            )
        self._post(self.events_url, self.alert_event(notification, action), f"{action} event")
        return Delivered()

    def send_digest(self, notifications: Sequence[Notification], attempt: Attempt) -> Delivered:
        # Never folded (digest_threshold 0); when the outbox hands several, each in turn. A
        # retry after a failure half-way repeats the first ones: a trigger or a resolve sent
        # twice for one dedup_key changes nothing in PagerDuty.
        for notification in notifications:
            self.send(notification, attempt)
        return Delivered()

    # --- the events -------------------------------------------------------------------------

    def alert_event(self, n: Notification, action: str) -> dict[str, Any]:
        """The alert event for one notification, as PagerDuty receives it."""
        event: dict[str, Any] = {"event_action": action, "dedup_key": dedup_key(n)}
        if action == "trigger":
            shown = redact_values(
                {
                    "payload": trigger_payload(n, self._fallback_source),
                    "links": _links(n.docs),
                }
            )
            event.update(_present(shown))
            event["client"] = "oai400d"
        return {"routing_key": self._routing_key, **event}

    def change_event(self, n: Notification) -> dict[str, Any]:
        """The Change Event for a backlog summary (history: it pages nobody)."""
        payload = _present(
            {
                "summary": _cut(n.title, SUMMARY_LIMIT),
                "source": source_of(n, self._fallback_source),
                "timestamp": n.last_seen,
                "custom_details": custom_details(n),
            }
        )
        shown = redact_values({"payload": payload, "links": _links(n.docs)})
        return {"routing_key": self._routing_key, **_present(shown)}

    # --- the answers ------------------------------------------------------------------------

    def _post(self, url: str, event: dict[str, Any], what: str) -> Answer:
        body = json.dumps(event, ensure_ascii=False).encode("utf-8")
        answer = self._poster.exchange("POST", url, body)
        where = self._poster.where
        if answer.status == 429:
            wait = retry_after(answer.headers)
            raise TransientDeliveryError(
                f"{where} answered 429: this routing key sent more than PagerDuty takes "
                "(about 120 events a minute)",
                wait if wait is not None else RATE_LIMIT_WAIT,
            )
        if answer.status in (400, 413):
            raise self._refusal(answer, what)
        if answer.status == 404:
            raise PermanentDeliveryError(
                f"{where} answered 404 for {self._scrub(urlsplit(url).path)}: check "
                "pagerduty.events_url (PagerDuty's is https://events.pagerduty.com/v2/enqueue)"
            )
        if answer.status in (408, 429) or answer.status >= 500 or 300 <= answer.status < 400:
            error = status_error(answer, where)
            assert error is not None
            raise error
        if not 200 <= answer.status < 300:  # 401, 403, …: not PagerDuty's own answers
            raise PermanentDeliveryError(
                f"{where} answered {answer.status} ({'; '.join(self._errors(answer)) or 'no text'})"
                ": check pagerduty.events_url and any proxy in between"
            )
        return answer

    def _refusal(self, answer: Answer, what: str) -> PermanentDeliveryError:
        """A 400 (or 413): about the routing key → parked; about the event → given up."""
        where = self._poster.where
        errors = self._errors(answer)
        said = "; ".join(errors) or f"HTTP {answer.status}"
        if any("routing_key" in e.lower() or "routing key" in e.lower() for e in errors):
            return PermanentDeliveryError(f"{where} refused the routing key ({said}): {KEY_ADVICE}")
        if answer.status == 413:
            said = f"{said}; an event is limited to 512 KB"
        return MessageRejected(f"{where} refused the {what} ({said}); this message is given up")

    def _errors(self, answer: Answer) -> list[str]:
        """PagerDuty's `errors` (else its `message`, else the body as text), secrets hidden."""
        data = answer.json()
        found: list[str] = []
        if isinstance(data, dict):
            errors = data.get("errors")
            if isinstance(errors, list):
                found = [str(e) for e in errors]
            elif isinstance(errors, str):
                found = [errors]
            if not found and data.get("message"):
                found = [str(data["message"])]
        elif answer.text.strip():
            found = [" ".join(answer.text.split())[:300]]
        return [self._scrub(e) for e in found]

    def _scrub(self, text: str) -> str:
        """Text for a message: secrets hidden, and the routing key even if an answer echoed it."""
        text = redact(text)
        if self._routing_key:
            text = text.replace(self._routing_key, "[routing key]")
        return text

    def close(self) -> None:
        self._poster.close()


def change_url(events_url: str) -> str:
    """The Change Events URL beside an events URL: its /v2/enqueue becomes /v2/change/enqueue
    (a proxy's prefix kept); a URL not ending so gets the path PagerDuty uses."""
    parts = urlsplit(events_url)
    path = parts.path.rstrip("/")
    prefix = path.removesuffix(ENQUEUE_PATH) if path.endswith(ENQUEUE_PATH) else ""
    path = prefix + CHANGE_PATH
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
