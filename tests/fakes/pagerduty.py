"""A fake PagerDuty Events API v2: alert events and change events, incidents kept by dedup_key.

    with FakePagerDuty() as pd:
        notifier = PagerDutyNotifier(pd.routing_key, events_url=pd.events_url)
        ...
        pd.wait_for_events(2)
        [incident] = pd.incidents()
        assert incident.status == "resolved"

Endpoints (POST, JSON): `/v2/enqueue` (endpoint "enqueue": trigger / acknowledge / resolve) and
`/v2/change/enqueue` (endpoint "change"); anything else answers 404.

Answers as PagerDuty does (developer.pagerduty.com, Events API v2):
- accepted: 202 `{"status": "success", "message": "Event processed", "dedup_key": ...}`
  (a change event: `{"status": "success", "message": "Change event processed"}`);
- a malformed event: 400 `{"status": "invalid event", "message": "Event object is invalid",
  "errors": [...]}`; a malformed routing key gets PagerDuty's own words, "Length of
  'routing_key' is incorrect (should be 32 characters)" and "'routing_key' cannot contain
  non-alphanumeric characters.";
- a well-formed routing key it does not know: 400 with the plain-text body "Invalid routing
  key", as PagerDuty's answer is quoted in the wild (robusta-dev/robusta#571); with
  `unknown_key_answer="json"` the same words in the "invalid event" JSON instead;
- `faults` (a FaultPlan, both endpoints): `fail_next(n, 500)`, `rate_limit_next(n)` (429
  `{"status": "throttle event", ...}`), `respond_error_next(n, "some error")` (400 "invalid
  event" with that error), `drop_next`, `slow_next`, `down()` / `up()`.

State, as PagerDuty keeps it: an incident per open dedup_key, `triggered` → `acknowledged` →
`resolved`. A trigger on an open incident is added to it (it stays acknowledged if it was); a
trigger on a resolved key opens a new incident; acknowledge or resolve with no open incident is
accepted (202) and dropped. Query with `events()` (every accepted alert event, in order),
`change_events()`, `incidents()` (every incident, oldest first), `incident(dedup_key)` (the
latest for a key), `wait_for_events(n)`, `wait_for_incident(dedup_key, status)`.
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ._http import FakeServer, Fault, FaultPlan, Incoming, RecordedRequest, Reply

# A valid-looking Events API v2 integration key (32 letters and digits) the fake knows.
ROUTING_KEY = "R0UT1NGKEYFAKEPAGERDUTY000000001"
ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
SUMMARY_LIMIT = 1024
DEDUP_KEY_LIMIT = 255
_ALNUM = re.compile(r"^[A-Za-z0-9]*$")

IncidentStatus = Literal["triggered", "acknowledged", "resolved"]


@dataclass(frozen=True)
class Incident:
    """One PagerDuty incident as the fake holds it now.

    `number` counts incidents across keys (1, 2, …); `actions` lists the event actions it
    received, in order; `summary`, `severity` and `source` are the latest trigger's;
    `events` are those events' bodies.
    """

    number: int
    dedup_key: str
    status: IncidentStatus
    summary: str
    severity: str
    source: str
    actions: tuple[str, ...]
    events: tuple[dict[str, Any], ...] = field(repr=False)

    @property
    def triggers(self) -> int:
        return self.actions.count("trigger")


def invalid_event(*errors: str) -> Reply:
    """PagerDuty's 400 for an event it will not take."""
    return Reply.json(
        400,
        {"status": "invalid event", "message": "Event object is invalid", "errors": list(errors)},
    )


def routing_key_errors(key: Any) -> list[str]:
    """What PagerDuty says about a routing key's shape (nothing when it is well-formed)."""
    if not isinstance(key, str) or not key:
        return ["'routing_key' is missing or blank"]
    errors = []
    if len(key) != 32:
        errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    if not _ALNUM.match(key):
        errors.append("'routing_key' cannot contain non-alphanumeric characters.")
    return errors


def alert_event_errors(event: dict[str, Any]) -> list[str]:
    """What PagerDuty says about an alert event other than its routing key."""
    errors: list[str] = []
    action = event.get("event_action")
    if action not in ACTIONS:
        errors.append("'event_action' is invalid (must be one of: trigger, acknowledge, resolve)")
    key = event.get("dedup_key")
    if key is not None and not isinstance(key, str):
        errors.append("'dedup_key' must be a string")
    elif isinstance(key, str) and len(key) > DEDUP_KEY_LIMIT:
        errors.append(f"Length of 'dedup_key' is too long (maximum {DEDUP_KEY_LIMIT} characters)")
    elif action in ("acknowledge", "resolve") and not key:
        errors.append(f"'dedup_key' is required for the '{action}' event_action")
    if action == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            return [*errors, "'payload' is missing or not an object"]
        errors.extend(_summary_errors(payload))
        if not isinstance(payload.get("source"), str) or not payload["source"].strip():
            errors.append("'payload.source' is missing or blank")
        if payload.get("severity") not in SEVERITIES:
            errors.append(
                "'payload.severity' is invalid (must be one of: critical, error, warning, info)"
            )
        details = payload.get("custom_details")
        if details is not None and not isinstance(details, dict):
            errors.append("'payload.custom_details' must be an object")
    errors.extend(_links_errors(event))
    return errors


def change_event_errors(event: dict[str, Any]) -> list[str]:
    """What PagerDuty says about a change event other than its routing key."""
    payload = event.get("payload")
    if not isinstance(payload, dict):
        return ["'payload' is missing or not an object"]
    return [*_summary_errors(payload), *_links_errors(event)]


def _summary_errors(payload: dict[str, Any]) -> list[str]:
    summary = payload.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        return ["'payload.summary' is missing or blank"]
    if len(summary) > SUMMARY_LIMIT:
        return [f"Length of 'payload.summary' is too long (maximum {SUMMARY_LIMIT} characters)"]
    return []


def _links_errors(event: dict[str, Any]) -> list[str]:
    links = event.get("links", [])
    if not isinstance(links, list):
        return ["'links' must be an array"]
    return [
        f"'links[{i}].href' is missing or blank"
        for i, link in enumerate(links)
        if not isinstance(link, dict) or not link.get("href")
    ]


class FakePagerDuty(FakeServer):
    """PagerDuty's Events API v2 on 127.0.0.1, knowing the routing keys it is given."""

    name = "pagerduty"

    def __init__(
        self,
        routing_keys: Iterable[str] = (ROUTING_KEY,),
        *,
        unknown_key_answer: Literal["text", "json"] = "text",
    ) -> None:
        super().__init__()
        keys = list(routing_keys)
        # The key to configure: the first one given.
        self.routing_key = keys[0] if keys else ROUTING_KEY
        self.routing_keys = set(keys)
        self.unknown_key_answer = unknown_key_answer
        self.faults = FaultPlan()
        self._incidents: list[Incident] = []
        self._open: dict[str, int] = {}  # dedup_key → index in _incidents of its open incident
        self._events: list[dict[str, Any]] = []
        self._changes: list[dict[str, Any]] = []
        self._numbers = itertools.count(1)

    # -- addresses -----------------------------------------------------------------------------

    @property
    def events_url(self) -> str:
        """`http://127.0.0.1:PORT/v2/enqueue`, for `pagerduty.events_url`."""
        return f"{self.origin}/v2/enqueue"

    @property
    def change_url(self) -> str:
        return f"{self.origin}/v2/change/enqueue"

    # -- what it received ----------------------------------------------------------------------

    def events(self) -> list[dict[str, Any]]:
        """Every alert event PagerDuty accepted (202), oldest first, as sent."""
        with self._lock:
            return list(self._events)

    def change_events(self) -> list[dict[str, Any]]:
        """Every change event accepted, oldest first, as sent."""
        with self._lock:
            return list(self._changes)

    def incidents(self) -> list[Incident]:
        """Every incident, oldest first."""
        with self._lock:
            return list(self._incidents)

    def incident(self, dedup_key: str) -> Incident | None:
        """The latest incident of a dedup_key, if any."""
        with self._lock:
            found = [i for i in self._incidents if i.dedup_key == dedup_key]
            return found[-1] if found else None

    def enqueue_requests(self) -> list[RecordedRequest]:
        """Every request to /v2/enqueue, whatever the answer."""
        return self.requests("enqueue")

    def wait_for_events(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until at least n alert events were accepted; return them all."""

        def enough() -> list[dict[str, Any]]:
            found = self.events()
            return found if len(found) >= n else []

        return self.wait_for(enough, timeout, f"{n} accepted alert event(s)")

    def wait_for_change_events(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until at least n change events were accepted; return them all."""

        def enough() -> list[dict[str, Any]]:
            found = self.change_events()
            return found if len(found) >= n else []

        return self.wait_for(enough, timeout, f"{n} accepted change event(s)")

    def wait_for_incident(
        self, dedup_key: str, status: IncidentStatus, timeout: float = 5.0
    ) -> Incident:
        """Wait until the latest incident of `dedup_key` has `status`; return it."""

        def reached() -> Incident | None:
            found = self.incident(dedup_key)
            return found if found is not None and found.status == status else None

        found = self.wait_for(reached, timeout, f"incident {dedup_key!r} {status}")
        assert found is not None  # wait_for returns only a truthy value
        return found

    # -- serving -------------------------------------------------------------------------------

    def _route(self, req: Incoming) -> tuple[str, Any]:
        path = req.path.rstrip("/")
        endpoint = {"/v2/enqueue": "enqueue", "/v2/change/enqueue": "change"}.get(path, "unknown")
        return endpoint, req.json()

    def _faults_for(self, endpoint: str) -> FaultPlan:
        return self.faults

    def _fault_reply(self, endpoint: str, req: Incoming, params: Any, fault: Fault) -> Reply:
        if fault.kind == "rate_limit":
            return Reply.json(
                429,
                {
                    "status": "throttle event",
                    "message": "Requests for this service are arriving too quickly. "
                    "Please retry later.",
                },
                (("Retry-After", str(fault.retry_after)),),
            )
        if fault.kind == "error":
            reply = invalid_event(fault.error)
            return replace(reply, status=fault.status) if fault.status else reply
        return Reply.json(fault.status, {"status": "error", "message": "Internal Server Error"})

    def _answer(self, endpoint: str, req: Incoming, params: Any) -> Reply:
        if endpoint == "unknown" or req.method != "POST":
            return Reply.text(404, "Not Found")
        if not isinstance(params, dict):
            return invalid_event("Event object is not valid JSON")
        key_errors = routing_key_errors(params.get("routing_key"))
        if key_errors:
            return invalid_event(*key_errors)
        if params["routing_key"] not in self.routing_keys:
            if self.unknown_key_answer == "json":
                return invalid_event("Invalid routing key")
            return Reply.text(400, "Invalid routing key")
        if endpoint == "change":
            errors = change_event_errors(params)
            if errors:
                return invalid_event(*errors)
            self._changes.append(params)
            return Reply.json(202, {"status": "success", "message": "Change event processed"})
        errors = alert_event_errors(params)
        if errors:
            return invalid_event(*errors)
        key = params.get("dedup_key") or uuid.uuid4().hex
        self._events.append(params)
        self._apply(str(params["event_action"]), key, params)
        return Reply.json(
            202, {"status": "success", "message": "Event processed", "dedup_key": key}
        )

    def _apply(self, action: str, key: str, event: dict[str, Any]) -> None:
        """An accepted event on the incidents, as PagerDuty applies it."""
        index = self._open.get(key)
        payload = event.get("payload") or {}
        if index is None:
            if action != "trigger":
                return  # nothing open for this key: PagerDuty drops it
            self._incidents.append(
                Incident(
                    number=next(self._numbers),
                    dedup_key=key,
                    status="triggered",
                    summary=str(payload.get("summary", "")),
                    severity=str(payload.get("severity", "")),
                    source=str(payload.get("source", "")),
                    actions=("trigger",),
                    events=(event,),
                )
            )
            self._open[key] = len(self._incidents) - 1
            return
        old = self._incidents[index]
        new = replace(old, actions=(*old.actions, action), events=(*old.events, event))
        if action == "trigger":
            new = replace(
                new,
                summary=str(payload.get("summary", old.summary)),
                severity=str(payload.get("severity", old.severity)),
                source=str(payload.get("source", old.source)),
            )
        elif action == "acknowledge":
            new = replace(new, status="acknowledged")
        else:
            new = replace(new, status="resolved")
            del self._open[key]
        self._incidents[index] = new
