"""A fake webhook receiver that checks every request as the README tells a receiver to.

    with FakeWebhook(secret="s3cret") as hook:
        notifier = WebhookNotifier("ops", hook.url, secret="s3cret")
        notifier.send(notification, Attempt(ref="42"))
        (delivery,) = hook.wait_for_deliveries(1)
        assert delivery.body["kind"] == "opened" and delivery.id == "42"

It listens on `path` (default /hooks/T0K3N: a token in the path, as many receivers have) and
answers any other path 404 ("no webhook at PATH?QUERY", echoing it as a careless receiver would).
A POST there is accepted (200 {"ok": true}) when:
- Content-Type is application/json and the body is a JSON object with "version": 1 (else 415 or
  400, as a receiver that reads the body would);
- X-Oai400d-Delivery is set and X-Oai400d-Event equals the body's "kind" (else 400);
- given a `secret`: X-Oai400d-Timestamp is at most `max_age` seconds (default 300) from the fake's
  `clock` and X-Oai400d-Signature is sha256=HMAC-SHA256(secret, timestamp + "." + body) over the
  bytes received (else 401 {"error": "..."} saying which: a forged body, another secret and a
  replayed old request are refused). Without a secret, signatures are not looked at;
- `expect_headers` (name → value) are all present with those values (else 401).

Accepted requests are recorded in order as `Delivery` records (`deliveries()`, `bodies()`),
repeats included: delivery is at least once, and `distinct()` keeps the first of each delivery
id, as a receiver that drops repeats would. Refused ones are in `refused()` with the reason.
`respond(status)` makes every later request get that status (None: back to normal);
`faults` is a FaultPlan (fail_next(n, status), rate_limit_next, slow_next, drop_next, down/up).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode

from ._http import FakeServer, Fault, FaultPlan, Incoming, RecordedRequest, Reply

ENDPOINT = "webhook"


@dataclass(frozen=True)
class Delivery:
    """One accepted request: its delivery id, event, parsed body, raw bytes and signature."""

    id: str
    event: str
    body: dict[str, Any]
    raw: bytes
    timestamp: str | None
    signature: str | None
    headers: dict[str, str]  # lower-case names


class FakeWebhook(FakeServer):
    """A webhook receiver on 127.0.0.1 verifying signatures; see the module docstring."""

    name = "fake-webhook"

    def __init__(
        self,
        secret: str = "",
        path: str = "/hooks/T0K3N",
        clock: Callable[[], float] = time.time,
        max_age: float = 300.0,
        expect_headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.secret = secret
        self.path = path
        self.clock = clock
        self.max_age = max_age
        self.expect_headers = {k.lower(): v for k, v in (expect_headers or {}).items()}
        self.faults = FaultPlan()
        self._deliveries: list[Delivery] = []
        self._status: int | None = None

    @property
    def url(self) -> str:
        """Where to point a WebhookNotifier: origin + path."""
        return f"{self.origin}{self.path}"

    # -- telling it what to answer -------------------------------------------------------------

    def respond(self, status: int | None) -> None:
        """Answer every later request with `status` (its error body); None: accept again."""
        with self._lock:
            self._status = status
        self._touch()

    # -- what it received ----------------------------------------------------------------------

    def deliveries(self) -> list[Delivery]:
        """Every accepted request, in order, repeats (retries of one delivery id) included."""
        with self._lock:
            return list(self._deliveries)

    def distinct(self) -> list[Delivery]:
        """The first accepted request of each delivery id, in order: what a receiver that drops
        repeats acts on."""
        seen: set[str] = set()
        kept: list[Delivery] = []
        for delivery in self.deliveries():
            if delivery.id not in seen:
                seen.add(delivery.id)
                kept.append(delivery)
        return kept

    def bodies(self) -> list[dict[str, Any]]:
        """The accepted bodies, parsed, in order (repeats included)."""
        return [d.body for d in self.deliveries()]

    def refused(self) -> list[RecordedRequest]:
        """The requests answered with anything but 2xx (faults included); `answer` says why."""
        return [r for r in self.requests() if not r.ok]

    def wait_for_deliveries(self, n: int, timeout: float = 5.0) -> list[Delivery]:
        """Wait until at least n requests were accepted; return them all."""

        def enough() -> list[Delivery]:
            found = self.deliveries()
            return found if len(found) >= n else []

        return self.wait_for(enough, timeout, f"{n} accepted webhook delivery(ies)")

    # -- serving -------------------------------------------------------------------------------

    def _route(self, req: Incoming) -> tuple[str, Any]:
        if req.method == "POST" and req.path == self.path:
            return ENDPOINT, req.json()
        return f"{req.method} {req.path}", None

    def _faults_for(self, endpoint: str) -> FaultPlan:
        return self.faults

    def _fault_reply(self, endpoint: str, req: Incoming, params: Any, fault: Fault) -> Reply:
        if fault.kind == "rate_limit":
            return Reply.json(
                429, {"error": "slow down"}, (("Retry-After", str(fault.retry_after)),)
            )
        return self._error(fault.status or 500, req)

    def _error(self, status: int, req: Incoming, reason: str = "") -> Reply:
        if status == 404:
            query = f"?{urlencode(req.query, doseq=True)}" if req.query else ""
            reason = reason or f"no webhook at {req.path}{query}"
        phrase = HTTPStatus(status).phrase if status in {s.value for s in HTTPStatus} else "error"
        return Reply.json(status, {"error": reason or phrase})

    def _answer(self, endpoint: str, req: Incoming, params: Any) -> Reply:
        if self._status is not None:
            return self._error(self._status, req)
        if endpoint != ENDPOINT:
            return self._error(404, req)
        for name, value in self.expect_headers.items():
            if req.header(name) != value:
                return self._error(401, req, f"header {name} missing or wrong")
        if req.content_type != "application/json":
            return self._error(415, req, f"content type {req.content_type!r}, not JSON")
        problem = self._signature_problem(req) if self.secret else ""
        if problem:
            return self._error(401, req, problem)
        body = params
        if not isinstance(body, dict) or body.get("version") != 1:
            return self._error(400, req, "the body is not a JSON object with version 1")
        delivery, event = req.header("x-oai400d-delivery"), req.header("x-oai400d-event")
        if not delivery or event != body.get("kind"):
            return self._error(400, req, "X-Oai400d-Delivery missing or X-Oai400d-Event wrong")
        self._deliveries.append(
            Delivery(
                id=delivery,
                event=event,
                body=body,
                raw=req.body,
                timestamp=req.header("x-oai400d-timestamp"),
                signature=req.header("x-oai400d-signature"),
                headers=dict(req.headers),
            )
        )
        return Reply.json(200, {"ok": True})

    def _signature_problem(self, req: Incoming) -> str:
        """Why a receiver holding the secret refuses this request ("" when it does not)."""
        timestamp = req.header("x-oai400d-timestamp") or ""
        signature = req.header("x-oai400d-signature") or ""
        if not timestamp or not signature:
            return "unsigned request"
        if not timestamp.isdigit() or abs(self.clock() - int(timestamp)) > self.max_age:
            return "timestamp too old or in the future: a replayed request?"
        mac = hmac.new(
            self.secret.encode(), timestamp.encode() + b"." + req.body, hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(f"sha256={mac}", signature):
            return "bad signature"
        return ""
