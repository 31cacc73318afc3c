"""Prometheus Alertmanager (API v2): every alert of oai400d as an Alertmanager alert.

Each notification becomes one postableAlert, POSTed in a JSON list to `{url}/api/v2/alerts`.
Alertmanager knows an alert by its label set alone, so the labels are what never changes while
one problem lasts: `alertname="OpenAIAPIError"`, `category`, `severity`, `fingerprint`,
`source` (`file`, `journal:NAME`, `probe`) and `host`, or for a fleet alert `scope="fleet"`
(a count of hosts changes as hosts join, and each change would be a new alert). Everything else
(title, cause, fixes, docs, counts, times, the excerpt, the hosts) goes in annotations, which
Alertmanager replaces on every post.

As Prometheus does, a firing alert says when it expires (`endsAt` = now + 4 × resend_interval):
the outbox re-sends the latest notification of every open alert each `resend_interval`, so
Alertmanager never expires an alert while the problem lasts, whatever its `resolve_timeout`,
and an alert oai400d stops talking about (the daemon stopped for good) ends on its own a few
minutes later. `resolved` sets `endsAt` to now. Silences, inhibitions and routes are
Alertmanager's business.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from oai400d.errors import DeliveryError, PermanentDeliveryError
from oai400d.masking import redact, redact_values
from oai400d.model import Notification
from oai400d.notify import posting
from oai400d.notify.base import Attempt, Delivered, MessageRejected
from oai400d.timestamps import parse_iso

ALERTNAME = "OpenAIAPIError"
ALERTS_PATH = "/api/v2/alerts"
STATUS_PATH = "/api/v2/status"
# A firing alert expires this many resend intervals after its last post (Prometheus' rule): a
# post or two may fail or be late without the alert flapping to resolved.
EXPIRY_RESENDS = 4
# Kinds that end the alert's label set in Alertmanager. `merged`: this host's own alert (label
# `host`) was folded into the fleet's (label `scope="fleet"`, another label set) when the fleet
# store came back; left alone, the local copy would stay firing until it expired.
RESOLVING_KINDS = frozenset({"resolved", "merged"})
# Kinds that post nothing: a backlog summary is history, not a live problem to route or page.
SILENT_KINDS = frozenset({"backlog"})
# Annotation sizes: Alertmanager takes any size, but its templates put annotations into
# e-mails, chat messages and pages, where a whole traceback is noise.
EXCERPT_SHOWN = 2000
MESSAGE_SHOWN = 500
HOSTS_SHOWN = 20
FILES_SHOWN = 20
FIXES_SHOWN = 10


def _rfc3339(seconds: float) -> str:
    """Epoch seconds → RFC 3339 in UTC with milliseconds ('2026-11-25T10:00:01.250Z')."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _first(items: Sequence[str], limit: int) -> list[str]:
    """The first `limit` items, and how many more there are."""
    shown = list(items[:limit])
    return [*shown, f"(+{len(items) - limit} more)"] if len(items) > limit else shown


def source_of(n: Notification) -> str:
    """Where the alert's errors come from, as a label value that stays the same while it
    lasts: `probe` for a probe's alert, `journal:NAME` when its first place is a journal,
    else `file`. The first place, because an alert's places only grow (a later one is
    appended), so the label never moves."""
    if n.fingerprint.startswith("probe:") or n.rule.startswith("probe."):
        return "probe"
    first = n.files[0] if n.files else ""
    return first if first.startswith("journal:") else "file"


def labels_of(n: Notification) -> dict[str, str]:
    """The alert's identity in Alertmanager: the same for every notification of one problem.
    Values are masked (deterministically, so they stay the same); empty ones are left out, as
    Alertmanager drops them."""
    labels = {
        "alertname": ALERTNAME,
        "category": n.category,
        "severity": n.severity,
        "fingerprint": n.fingerprint,
        "source": source_of(n),
    }
    if n.host_count > 0:
        labels["scope"] = "fleet"  # the hosts go in an annotation: they change, labels must not
    else:
        labels["host"] = n.host
    return {k: redact(v) for k, v in labels.items() if v}


def _hosts(n: Notification) -> str:
    """'web-1' or, for a fleet, 'web-1, web-2, +3 more'."""
    if n.host_count <= 0:
        return n.host
    named = list(n.hosts[:HOSTS_SHOWN])
    more = n.host_count - len(named)
    return ", ".join([*named, f"+{more} more"] if more > 0 else named)


def description_of(n: Notification) -> str:
    """The cause in a sentence: category and where, the error's own words, the first fix."""
    where = (
        f" on {n.host_count} host(s)" if n.host_count > 0 else (f" on {n.host}" if n.host else "")
    )
    text = f"{n.category}{where}"
    if n.message:
        text += f": {_cut(' '.join(n.message.split()), MESSAGE_SHOWN).rstrip('.')}"
    if n.fixes:
        text += f". Fix: {_cut(n.fixes[0], MESSAGE_SHOWN)}"
    return text


def annotations_of(n: Notification) -> dict[str, str]:
    """What Alertmanager shows about the alert (replaced on every post); empty ones left out."""
    annotations = {
        "summary": n.title,
        "description": description_of(n),
        "fixes": "\n".join(_first(n.fixes, FIXES_SHOWN)),
        "docs": "\n".join(n.docs[:FIXES_SHOWN]),
        "runbook_url": n.docs[0] if n.docs else "",
        "count": str(n.count),
        "first_seen": n.first_seen,
        "last_seen": n.last_seen,
        "files": "\n".join(_first(n.files, FILES_SHOWN)),
        "excerpt": _cut(n.excerpt, EXCERPT_SHOWN),
        "hosts": _hosts(n),
        "host_count": str(n.host_count) if n.host_count > 0 else "",
        "context": n.context,
        "facts": "\n".join(n.facts),  # what was checked, one sentence a line
        "note": n.note,
        "acknowledged_by": n.acked_by or "",
        "acknowledged_at": (n.acked_at or "") if n.acked_by else "",
    }
    # Masked here too: a notification also carries what the classifier does not mask (file
    # names, probes' context, the message).
    masked: dict[str, str] = redact_values({k: v for k, v in annotations.items() if v})
    return masked


class AlertmanagerNotifier:
    """POSTs alerts to Alertmanager's API v2, with basic auth or a bearer token."""

    name = "alertmanager"
    # Alertmanager takes a list: two or more due notifications go as one POST.
    digest_threshold = 2
    min_interval = 0.0
    edits_messages = False

    def __init__(
        self,
        url: str,
        timeout: float = 10.0,
        username: str = "",
        password: str = "",
        bearer_token: str = "",
        resend_interval: float = 60.0,
        transport: posting.Transport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if bearer_token and (username or password):
            raise ValueError(
                "alertmanager: set either alertmanager.username and alertmanager.password "
                "(basic auth) or alertmanager.bearer_token, not both"
            )
        self.base_url = url.rstrip("/")
        self.resend_interval = resend_interval
        self.clock = clock
        self._where = f"Alertmanager ({_host_port(self.base_url)})"
        self._auth = "basic" if (username or password) else "bearer" if bearer_token else ""
        headers: dict[str, str] = {}
        if bearer_token:
            headers["Authorization"] = f"Bearer {bearer_token}"
        elif username or password:
            pair = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {pair}"
        self._poster = posting.Poster(self._where, timeout, headers, transport)

    def describe(self) -> str:
        return self._where

    def close(self) -> None:
        self._poster.close()

    # --- checks (`oai400d test-alert`) ------------------------------------------------------

    def check(self) -> str:
        """GET /api/v2/status: Alertmanager's version and cluster state; raises DeliveryError
        when it cannot be reached or refuses our credentials."""
        answer = self._poster.exchange("GET", self.base_url + STATUS_PATH)
        if not 200 <= answer.status < 300:
            raise self._error(answer, STATUS_PATH)
        data = answer.json()
        version = data.get("versionInfo") if isinstance(data, dict) else None
        if not isinstance(version, dict) or not version.get("version"):
            raise PermanentDeliveryError(
                f"{self._where}: GET {STATUS_PATH} answered {answer.status} without "
                "Alertmanager's versionInfo: check that alertmanager.url is Alertmanager's "
                "base URL (e.g. http://alertmanager:9093)"
            )
        cluster = data.get("cluster")
        state = cluster.get("status") if isinstance(cluster, dict) else None
        clustered = f", cluster {state}" if state else ""
        return f"Alertmanager {redact(str(version['version']))}{clustered}"

    # --- delivery ---------------------------------------------------------------------------

    def send(self, notification: Notification, attempt: Attempt) -> Delivered:
        return self.send_digest([notification], attempt)

    def send_digest(self, notifications: Sequence[Notification], attempt: Attempt) -> Delivered:
        """One POST with one alert per label set; of several notifications of one alert in the
        batch (opened, then resolved) only the last counts. Nothing to post: no POST."""
        now = self.clock()
        latest: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
        for n in notifications:
            if n.kind in SILENT_KINDS:
                continue
            alert = self.alert_of(n, now)
            key = tuple(sorted(alert["labels"].items()))
            latest.pop(key, None)  # the later one takes its place, and its place in the order
            latest[key] = alert
        if not latest:
            return Delivered()
        body = json.dumps(list(latest.values())).encode("utf-8")
        answer = self._poster.exchange("POST", self.base_url + ALERTS_PATH, body)
        if not 200 <= answer.status < 300:
            raise self._error(answer, ALERTS_PATH)
        return Delivered()

    def alert_of(self, n: Notification, now: float) -> dict[str, Any]:
        """One notification as a postableAlert, at clock time `now`."""
        starts = _starts(n, now)
        alert: dict[str, Any] = {
            "labels": labels_of(n),
            "annotations": annotations_of(n),
            "startsAt": _rfc3339(starts),
        }
        if n.kind in RESOLVING_KINDS:
            alert["endsAt"] = _rfc3339(max(now, starts))
        elif self.resend_interval > 0:
            alert["endsAt"] = _rfc3339(max(now, starts) + EXPIRY_RESENDS * self.resend_interval)
        # No resending: no endsAt, and Alertmanager's resolve_timeout decides.
        return alert

    def _error(self, answer: posting.Answer, path: str) -> DeliveryError:
        """What a non-2xx answer means here, and what to do about it."""
        status = answer.status
        said = _said(answer)
        if status in (400, 422):
            return MessageRejected(
                f"{self._where} refused the alerts (HTTP {status}): {said or 'no reason given'}"
            )
        if status in (401, 403):
            keys = {
                "basic": "alertmanager.username and alertmanager.password",
                "bearer": "alertmanager.bearer_token",
                "": "alertmanager.username and alertmanager.password, or "
                "alertmanager.bearer_token (none is set)",
            }[self._auth]
            return PermanentDeliveryError(
                f"{self._where} refused the credentials (HTTP {status}): check {keys} against "
                "what the Alertmanager (or the proxy in front of it) expects"
            )
        if status in (404, 405, 410):
            return PermanentDeliveryError(
                f"{self._where} has no {path} (HTTP {status}): alertmanager.url must be "
                "Alertmanager's base URL, without /api/... (e.g. http://alertmanager:9093, "
                "plus the --web.route-prefix if it has one); API v1 is gone since "
                "Alertmanager 0.27, and oai400d speaks API v2"
            )
        error = posting.status_error(answer, self._where)
        assert error is not None  # a non-2xx always has one
        return error


def _host_port(url: str) -> str:
    """host:port of a URL, and nothing else: it may carry credentials (user:password@) or a
    token in its path."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # not a number: the config check names it; here only say where
        port = None
    return f"{parts.hostname or '?'}{f':{port}' if port else ''}"


def _starts(n: Notification, now: float) -> float:
    try:
        return parse_iso(n.first_seen)
    except ValueError:
        return now  # never expected (the daemon writes first_seen); Alertmanager needs a time


def _said(answer: posting.Answer) -> str:
    """Alertmanager's reason: a JSON string (its own validation), {"code", "message"} (the
    API's schema check), or text; short, on one line, secrets hidden."""
    data = answer.json()
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        text = data["message"]
    elif isinstance(data, str):
        text = data
    else:
        return answer.shown
    return redact(" ".join(text.split())[: posting.ANSWER_SHOWN])
