"""A fake Prometheus Alertmanager: `POST /api/v2/alerts` and `GET /api/v2/status`.

    with FakeAlertmanager(clock=lambda: now[0]) as am:
        notifier = AlertmanagerNotifier(am.origin, clock=lambda: now[0])
        notifier.send(notification, Attempt("e1"))
        am.wait_for_posts(1)
        assert am.firing()[0].labels["fingerprint"] == notification.fingerprint

What it checks, as Alertmanager 0.27+ does:
- the body is a JSON list of objects with `labels`, a map of strings (`annotations` too), and
  `startsAt` / `endsAt`, when given, RFC 3339 date-times; otherwise 400
  `{"code": 400, "message": ...}` (the API's schema check) and nothing is stored;
- each alert then as Alertmanager's own validation does: empty label values are dropped, at
  least one label must remain, label names match `[a-zA-Z_][a-zA-Z0-9_]*`, endsAt is not
  before startsAt. The valid alerts of the list are stored, and if any was invalid the answer is
  400 with the reasons as a JSON string (so a 400 may still have stored some);
- optional auth: with `username`/`password` only that basic auth passes, with `bearer_token`
  only that bearer token; else 401 "Unauthorized" (as a proxy in front of Alertmanager does).
Any other path answers 404 "404 page not found" (/api/v1/alerts too: API v1 is gone).

It keeps alerts by label set as Alertmanager merges them: a missing startsAt is now (or endsAt),
a missing endsAt is now + `resolve_timeout`; a post for a stored label set whose activity
overlaps the stored one is merged into it (the earliest startsAt is kept, the newer endsAt
wins, a resolving endsAt ends it), otherwise it replaces it (the same problem back later is a
new alert). An alert is firing while its endsAt is after the fake's clock (`clock`, default
time.time: a test may pass its own), resolved after. Every POST is kept in order (`posts()`,
each with the parsed list it carried). `faults` scripts failures for every endpoint.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ._http import FakeServer, Fault, FaultPlan, Incoming, Reply

ALERTS_PATH = "/api/v2/alerts"
STATUS_PATH = "/api/v2/status"
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# RFC 3339 date-time, as go-openapi's strfmt.DateTime reads it.
_RFC3339 = re.compile(r"^\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(?:\.\d+)?(?:[Zz]|[+-]\d\d:\d\d)$")

LabelKey = tuple[tuple[str, str], ...]


def label_key(labels: Mapping[str, str]) -> LabelKey:
    """A label set as the key Alertmanager knows an alert by."""
    return tuple(sorted(labels.items()))


@dataclass(frozen=True)
class StoredAlert:
    """An alert as the fake holds it now (times in epoch seconds)."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: float
    ends_at: float
    updated_at: float
    # endsAt was not sent: it is now + resolve_timeout, and a sent endsAt overrides it.
    timeout: bool = False
    generator_url: str = ""

    def firing(self, now: float) -> bool:
        return self.ends_at > now


@dataclass(frozen=True)
class AlertPost:
    """One POST /api/v2/alerts and what came of it."""

    alerts: list[dict[str, Any]]  # the list as sent
    status: int
    received_at: float  # by the fake's clock


def parse_time(text: str) -> float:
    """RFC 3339 → epoch seconds (ValueError when it is not one)."""
    if not _RFC3339.match(text):
        raise ValueError(text)
    cleaned = text.upper().replace("Z", "+00:00")
    # Python before 3.11 reads at most 6 fraction digits; Go sends 9.
    cleaned = re.sub(r"(\.\d{6})\d+", r"\1", cleaned)
    return datetime.fromisoformat(cleaned).timestamp()


class FakeAlertmanager(FakeServer):
    """An Alertmanager on 127.0.0.1 (`origin` is the base URL to configure)."""

    name = "alertmanager"

    def __init__(
        self,
        *,
        username: str = "",
        password: str = "",
        bearer_token: str = "",
        resolve_timeout: float = 300.0,
        clock: Callable[[], float] = time.time,
        version: str = "0.28.1",
    ) -> None:
        super().__init__()
        self.username = username
        self.password = password
        self.bearer_token = bearer_token
        self.resolve_timeout = resolve_timeout
        self.clock = clock
        self.version = version
        self.faults = FaultPlan()
        self._alerts: dict[LabelKey, StoredAlert] = {}
        self._posts: list[AlertPost] = []

    # -- what it holds -------------------------------------------------------------------------

    def posts(self) -> list[AlertPost]:
        """Every POST /api/v2/alerts that reached the handler (not faults), oldest first."""
        with self._lock:
            return list(self._posts)

    def accepted_posts(self) -> list[AlertPost]:
        """The POSTs answered 200."""
        return [p for p in self.posts() if p.status == 200]

    def alerts(self) -> list[StoredAlert]:
        """Every alert held, firing or resolved, by label set."""
        with self._lock:
            return [self._alerts[k] for k in sorted(self._alerts)]

    def alert(self, **labels: str) -> StoredAlert | None:
        """The one alert whose labels include these, or None; AssertionError if several."""
        found = [a for a in self.alerts() if all(a.labels.get(k) == v for k, v in labels.items())]
        if len(found) > 1:
            raise AssertionError(f"{len(found)} alerts match {labels}")
        return found[0] if found else None

    def firing(self) -> list[StoredAlert]:
        """Alerts whose endsAt is after the fake's clock now."""
        now = self.clock()
        return [a for a in self.alerts() if a.firing(now)]

    def resolved(self) -> list[StoredAlert]:
        """Alerts whose endsAt has passed by the fake's clock."""
        now = self.clock()
        return [a for a in self.alerts() if not a.firing(now)]

    def forget(self) -> None:
        """Drop every alert and post (an Alertmanager restarted without its data)."""
        with self._lock:
            self._alerts.clear()
            self._posts.clear()
        self._touch()

    def wait_for_posts(self, n: int, timeout: float = 5.0) -> list[AlertPost]:
        """Wait until at least n POSTs were answered 200; return them all."""

        def enough() -> list[AlertPost]:
            found = self.accepted_posts()
            return found if len(found) >= n else []

        return self.wait_for(enough, timeout, f"{n} accepted POST {ALERTS_PATH}")

    def wait_for_firing(self, n: int, timeout: float = 5.0) -> list[StoredAlert]:
        """Wait until at least n alerts are firing; return them."""

        def enough() -> list[StoredAlert]:
            found = self.firing()
            return found if len(found) >= n else []

        return self.wait_for(enough, timeout, f"{n} firing alert(s)")

    # -- serving -------------------------------------------------------------------------------

    def _route(self, req: Incoming) -> tuple[str, Any]:
        if req.path == ALERTS_PATH and req.method == "POST":
            return "alerts", req.json()
        if req.path == STATUS_PATH and req.method == "GET":
            return "status", None
        return "unknown", None

    def _faults_for(self, endpoint: str) -> FaultPlan:
        return self.faults

    def _fault_reply(self, endpoint: str, req: Incoming, params: Any, fault: Fault) -> Reply:
        if fault.kind == "rate_limit":  # a proxy's; Alertmanager itself never says 429
            return Reply.text(429, "Too Many Requests").with_headers(
                ("Retry-After", str(fault.retry_after))
            )
        if fault.kind == "error":
            return Reply.json(fault.status or 400, fault.error)
        return Reply.json(fault.status, "failed to create alerts")

    def _answer(self, endpoint: str, req: Incoming, params: Any) -> Reply:
        if not self._authorised(req):
            return Reply.text(401, "Unauthorized").with_headers(
                ("WWW-Authenticate", 'Basic realm="alertmanager"')
            )
        if endpoint == "status":
            return Reply.json(200, self._status())
        if endpoint == "alerts":
            return self._post_alerts(req, params)
        return Reply.text(404, "404 page not found")

    def _authorised(self, req: Incoming) -> bool:
        given = req.header("authorization") or ""
        if self.bearer_token:
            return given == f"Bearer {self.bearer_token}"
        if self.username or self.password:
            pair = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            return given == f"Basic {pair}"
        return True

    def _status(self) -> dict[str, Any]:
        return {
            "cluster": {"status": "disabled", "peers": []},
            "versionInfo": {
                "version": self.version,
                "revision": "fake",
                "branch": "HEAD",
                "buildUser": "fake@oai400d",
                "buildDate": "20250307-15:05:18",
                "goVersion": "go1.23.7",
            },
            "config": {"original": "global:\n  resolve_timeout: 5m\n"},
            "uptime": "2025-01-01T00:00:00.000Z",
        }

    def _post_alerts(self, req: Incoming, body: Any) -> Reply:
        now = self.clock()
        problem = _schema_problem(body)
        if problem is not None:
            self._posts.append(AlertPost(body if isinstance(body, list) else [], 400, now))
            return Reply.json(400, {"code": 400, "message": problem})
        reasons: list[str] = []
        for raw in body:
            alert, reason = self._validated(raw, now)
            if alert is None:
                reasons.append(reason)
                continue
            self._store(alert)
        status = 400 if reasons else 200
        self._posts.append(AlertPost(body, status, now))
        if reasons:
            return Reply.json(400, "\n".join(reasons))
        return Reply(200)

    def _validated(self, raw: Mapping[str, Any], now: float) -> tuple[StoredAlert | None, str]:
        """An alert as Alertmanager's handler makes it (defaults filled), or why it is invalid."""
        labels = {k: v for k, v in raw["labels"].items() if v != ""}
        annotations = dict(raw.get("annotations") or {})
        starts = parse_time(raw["startsAt"]) if raw.get("startsAt") else 0.0
        ends = parse_time(raw["endsAt"]) if raw.get("endsAt") else 0.0
        if not starts:
            starts = ends or now
        timeout = not ends
        if timeout:
            ends = now + self.resolve_timeout
        bad = [name for name in labels if not _LABEL_NAME.match(name)]
        if bad:
            return None, f'invalid label set: invalid name "{bad[0]}"'
        if not labels:
            return None, "at least one label pair required"
        bad = [name for name in annotations if not _LABEL_NAME.match(name)]
        if bad:
            return None, f'invalid annotations: invalid name "{bad[0]}"'
        if ends < starts:
            return None, "start time must be before end time"
        return (
            StoredAlert(
                labels, annotations, starts, ends, now, timeout, str(raw.get("generatorURL") or "")
            ),
            "",
        )

    def _store(self, alert: StoredAlert) -> None:
        """As Alertmanager's mem store Put: merge into an overlapping alert of the same labels,
        else replace it."""
        key = label_key(alert.labels)
        old = self._alerts.get(key)
        if old is not None and (
            old.starts_at < alert.ends_at < old.ends_at
            or old.starts_at < alert.starts_at < old.ends_at
        ):
            alert = _merge(old, alert, self.clock())
        self._alerts[key] = alert


def _merge(a: StoredAlert, o: StoredAlert, now: float) -> StoredAlert:
    """Alertmanager's Alert.Merge: `o` is the newer; the earliest start is kept; a resolved
    newer alert ends it; else an explicit later end wins over a timeout."""
    if o.updated_at < a.updated_at:
        a, o = o, a
    starts = min(a.starts_at, o.starts_at)
    ends = o.ends_at
    if not o.firing(now):
        if not a.firing(now) and a.ends_at > o.ends_at:
            ends = a.ends_at
    elif a.ends_at > o.ends_at and not a.timeout:
        ends = a.ends_at
    return StoredAlert(
        o.labels, o.annotations, starts, ends, o.updated_at, o.timeout, o.generator_url
    )


def _schema_problem(body: Any) -> str | None:
    """What the API's schema check (postableAlerts) refuses, in go-openapi's words."""
    if not isinstance(body, list):
        return "alerts in body must be of type array"
    for i, raw in enumerate(body):
        if not isinstance(raw, dict):
            return f"{i} in body must be of type object"
        if "labels" not in raw:
            return f"{i}.labels in body is required"
        for part in ("labels", "annotations"):
            value = raw.get(part)
            if part == "annotations" and value is None:
                continue
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                return f"{i}.{part} in body must be a map of strings"
        for when in ("startsAt", "endsAt"):
            value = raw.get(when)
            if value is None:
                continue
            try:
                parse_time(value if isinstance(value, str) else "")
            except ValueError:
                return f"{i}.{when} in body must be of type date-time: {value!r}"
        url = raw.get("generatorURL")
        if url is not None and not isinstance(url, str):
            return f"{i}.generatorURL in body must be of type uri"
    return None
