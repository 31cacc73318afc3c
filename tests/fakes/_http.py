"""The machinery the three fakes share: a real HTTP server on 127.0.0.1, a request log, faults.

Every fake is a `FakeServer`: a `ThreadingHTTPServer` bound to 127.0.0.1 on a free port, served
from a daemon thread, usable as a context manager (`with FakeSlack() as slack:`). Each request is
parsed into an `Incoming`, answered by the subclass with a `Reply`, and recorded as a
`RecordedRequest` (what came in, and what went out) in a thread-safe log that tests query or
`wait_for`. A `FaultPlan` scripts failures (error status, 429 with Retry-After, slow answers,
dropped connections, an outage) that the next requests meet, in the order they were scripted.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, Self, TypeVar, cast
from urllib.parse import parse_qs, urlsplit

HOST = "127.0.0.1"

T = TypeVar("T")

FaultKind = Literal["status", "rate_limit", "slow", "drop", "error"]


class WaitTimeout(AssertionError):
    """`FakeServer.wait_for` ran out of time; the message lists the requests seen so far."""


@dataclass(frozen=True)
class Incoming:
    """One HTTP request as the server read it. Header names are lower-case."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    received_at: float

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def content_type(self) -> str:
        return (self.header("content-type") or "").split(";")[0].strip().lower()

    def json(self) -> Any:
        """The body as JSON, or None when it is empty or not JSON."""
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def form(self) -> dict[str, str]:
        """The body as an url-encoded form (the last value of each key)."""
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError:
            return {}
        return {k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()}


@dataclass(frozen=True)
class Reply:
    """What the server answers: status, headers and body; or, with `drop`, nothing at all."""

    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    drop: bool = False

    @classmethod
    def json(cls, status: int, payload: Any, headers: Iterable[tuple[str, str]] = ()) -> Reply:
        body = json.dumps(payload).encode("utf-8")
        return cls(status, body, (("Content-Type", "application/json; charset=utf-8"), *headers))

    @classmethod
    def text(
        cls,
        status: int,
        text: str,
        content_type: str = "text/plain; charset=utf-8",
        headers: Iterable[tuple[str, str]] = (),
    ) -> Reply:
        return cls(status, text.encode("utf-8"), (("Content-Type", content_type), *headers))

    @classmethod
    def dropped(cls) -> Reply:
        return cls(status=0, drop=True)

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def with_headers(self, *headers: tuple[str, str]) -> Reply:
        return replace(self, headers=(*self.headers, *headers))

    def decoded(self) -> Any:
        """The body as JSON when it says it is JSON, else as text; None when dropped."""
        if self.drop:
            return None
        text = self.body.decode("utf-8", errors="replace")
        if "json" in (self.header("content-type") or ""):
            try:
                return json.loads(text)
            except ValueError:
                return text
        return text


@dataclass(frozen=True)
class RecordedRequest:
    """A request the fake received and how it answered.

    `endpoint` is the fake's name for what was asked ("chat.postMessage", "webhook", "models",
    "summary.json", ...); `params` the parsed body (JSON or form, merged with the query string
    where the real service does so); `fault` the injected fault that shaped the answer, if any;
    `status` the HTTP status sent (None when the connection was dropped); `answer` the body sent,
    parsed as JSON when it was JSON. Header names are lower-case.
    """

    endpoint: str
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    params: Any
    received_at: float
    fault: FaultKind | None
    status: int | None
    answer: Any

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def ok(self) -> bool:
        """The service accepted it: HTTP 2xx and, for a Slack-style answer, `"ok": true`."""
        if self.status is None or not 200 <= self.status < 300:
            return False
        if isinstance(self.answer, dict) and "ok" in self.answer:
            return self.answer["ok"] is True
        return True

    def summary(self) -> str:
        shown = "dropped" if self.status is None else str(self.status)
        fault = f" [{self.fault}]" if self.fault else ""
        return f"{self.method} {self.path} ({self.endpoint}) -> {shown}{fault}"


@dataclass(frozen=True)
class Fault:
    """One scripted failure. `slow` answers normally after `delay` seconds."""

    kind: FaultKind
    status: int = 500
    delay: float = 0.0
    retry_after: int = 1
    error: str = ""


@dataclass
class FaultPlan:
    """Failures that the next requests to one endpoint meet, first scripted first met.

    While `down()` is in force every request fails (503, or a dropped connection), and the
    queue waits. All methods are thread-safe; each returns the plan so calls can be chained.
    """

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _queue: deque[Fault] = field(default_factory=deque)
    _outage: Fault | None = None

    def _push(self, n: int, fault: Fault) -> FaultPlan:
        if n < 0:
            raise ValueError("n must be >= 0")
        with self._lock:
            self._queue.extend([fault] * n)
        return self

    def fail_next(self, n: int = 1, status: int = 500) -> FaultPlan:
        """The next n requests get HTTP `status` with the service's error body."""
        return self._push(n, Fault("status", status=status))

    def rate_limit_next(self, n: int = 1, retry_after: int = 2) -> FaultPlan:
        """The next n requests get HTTP 429 with `Retry-After: retry_after`."""
        return self._push(n, Fault("rate_limit", status=429, retry_after=retry_after))

    def slow_next(self, n: int = 1, delay: float = 1.0) -> FaultPlan:
        """The next n requests are answered normally, but only after `delay` seconds."""
        return self._push(n, Fault("slow", delay=delay))

    def drop_next(self, n: int = 1) -> FaultPlan:
        """The next n requests are read, then the connection is closed without an answer."""
        return self._push(n, Fault("drop"))

    def respond_error_next(self, n: int, error: str, status: int | None = None) -> FaultPlan:
        """The next n requests get the service's own error `error` (see each fake)."""
        return self._push(n, Fault("error", status=status or 0, error=error))

    def down(self, how: Literal["status", "drop"] = "status", status: int = 503) -> FaultPlan:
        """Every request fails (HTTP `status`, or a dropped connection) until `up()`."""
        with self._lock:
            self._outage = Fault("drop") if how == "drop" else Fault("status", status=status)
        return self

    def up(self) -> FaultPlan:
        """End an outage started by `down()`; queued faults apply again."""
        with self._lock:
            self._outage = None
        return self

    def clear(self) -> FaultPlan:
        """Forget queued faults and any outage."""
        with self._lock:
            self._queue.clear()
            self._outage = None
        return self

    @property
    def is_down(self) -> bool:
        with self._lock:
            return self._outage is not None

    def pending(self) -> int:
        """How many queued faults are still to be met."""
        with self._lock:
            return len(self._queue)

    def take(self) -> Fault | None:
        """The fault the request now arriving meets, if any (consumes a queued one)."""
        with self._lock:
            if self._outage is not None:
                return self._outage
            return self._queue.popleft() if self._queue else None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, fake: FakeServer) -> None:
        self.fake = fake
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__((HOST, fake.bind_port), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(cast(socket.socket, request))
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(cast(socket.socket, request))
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self.connections_lock:
            connections = list(self.connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (timeout, test over) is not an error of the fake.
        return


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "oai400d-fake/1"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        fake = cast(_Server, self.server).fake
        try:
            body = self._read_body()
        except (OSError, ValueError):
            self.close_connection = True
            return
        split = urlsplit(self.path)
        incoming = Incoming(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            received_at=time.time(),
        )
        try:
            reply = fake._handle(incoming)
        except Exception as exc:  # a bug in the fake: answer 500, and fail the test on exit
            fake._server_errors.append(f"{self.command} {self.path}: {exc!r}")
            reply = Reply.text(500, f"fake server error: {exc!r}")
        if reply.delay > 0 and not fake._pause(reply.delay):
            reply = Reply.dropped()  # the fake is stopping: do not answer late
        if reply.drop:
            self.close_connection = True
            return
        try:
            self.send_response(reply.status)
            for key, value in reply.headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)
            self.wfile.flush()
        except OSError:
            self.close_connection = True


class FakeServer:
    """Base of the fakes: lifecycle, request log, waiting. Subclasses implement `_answer`."""

    name = "fake"
    # The port to bind on 127.0.0.1; 0 (the default) takes a free one. A fixed port is for tools
    # whose output shows the address and must not change between runs (tests/clientgen).
    bind_port = 0

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._log: list[RecordedRequest] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._version = 0
        self._server_errors: list[str] = []

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind 127.0.0.1 on a free port and serve from a daemon thread. Idempotent."""
        if self._server is None:
            self._stopping.clear()
            self._server = _Server(self)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.01},
                name=f"{self.name}-http",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open connections and the port. Idempotent."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None
        self._touch()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        if exc_type is None and self._server_errors:
            raise AssertionError(f"{self.name} fake failed: {'; '.join(self._server_errors)}")

    @property
    def server_errors(self) -> list[str]:
        """Exceptions raised inside the fake while answering (each got a 500)."""
        return list(self._server_errors)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{self.name} is not started")
        return int(self._server.server_address[1])

    @property
    def origin(self) -> str:
        """`http://127.0.0.1:PORT`, no trailing slash."""
        return f"http://{HOST}:{self.port}"

    # -- the request log -----------------------------------------------------------------------

    def requests(self, endpoint: str | None = None) -> list[RecordedRequest]:
        """Every request received so far (optionally only one endpoint's), oldest first."""
        with self._lock:
            return [r for r in self._log if endpoint is None or r.endpoint == endpoint]

    def clear_requests(self) -> None:
        with self._changed:
            self._log.clear()
            self._version += 1
            self._changed.notify_all()

    def wait_for(
        self, predicate: Callable[[], T], timeout: float = 5.0, what: str | None = None
    ) -> T:
        """Poll `predicate` until it returns a truthy value, and return that value.

        Re-checks whenever the fake records a request or changes state, and at least every
        50 ms, until `timeout` seconds have passed; then raises `WaitTimeout` (an
        AssertionError) listing what was received.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                version = self._version
            value = predicate()  # without the lock: it may even call the fake over HTTP
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                with self._lock:
                    seen = "\n  ".join(r.summary() for r in self._log[-15:]) or "(none)"
                raise WaitTimeout(
                    f"{self.name}: not satisfied after {timeout:g}s: "
                    f"{what or getattr(predicate, '__name__', 'predicate')}\n"
                    f"last requests received:\n  {seen}"
                )
            with self._changed:
                if self._version == version:
                    self._changed.wait(min(remaining, 0.05))

    def wait_for_requests(
        self, n: int, endpoint: str | None = None, timeout: float = 5.0
    ) -> list[RecordedRequest]:
        """Wait until at least n requests (to `endpoint`, if given) arrived; return them all."""

        def enough() -> list[RecordedRequest]:
            found = self.requests(endpoint)
            return found if len(found) >= n else []

        return self.wait_for(enough, timeout, f"{n} request(s) to {endpoint or 'any endpoint'}")

    # -- for subclasses ------------------------------------------------------------------------

    def _touch(self) -> None:
        """Wake `wait_for` callers after a state change made outside a request."""
        with self._changed:
            self._version += 1
            self._changed.notify_all()

    def _pause(self, seconds: float) -> bool:
        """Sleep in a request thread; False when the fake is stopping meanwhile."""
        return not self._stopping.wait(seconds)

    def _route(self, req: Incoming) -> tuple[str, Any]:
        """Name the endpoint and parse the parameters. Default: the path, the JSON body."""
        return req.path, req.json()

    def _faults_for(self, endpoint: str) -> FaultPlan | None:
        return None

    def _answer(self, endpoint: str, req: Incoming, params: Any) -> Reply:
        raise NotImplementedError

    def _fault_reply(self, endpoint: str, req: Incoming, params: Any, fault: Fault) -> Reply:
        """The answer to a status / rate_limit / error fault. Subclasses speak their service."""
        if fault.kind == "rate_limit":
            return Reply.text(429, "Too Many Requests").with_headers(
                ("Retry-After", str(fault.retry_after))
            )
        status = fault.status or 500
        return Reply.text(status, HTTPStatus(status).phrase if status in _PHRASES else "error")

    def _handle(self, req: Incoming) -> Reply:
        with self._changed:
            endpoint, params = self._route(req)
            plan = self._faults_for(endpoint)
            fault = plan.take() if plan is not None else None
            if fault is None:
                reply = self._answer(endpoint, req, params)
            elif fault.kind == "drop":
                reply = Reply.dropped()
            elif fault.kind == "slow":
                reply = replace(self._answer(endpoint, req, params), delay=fault.delay)
            else:
                reply = self._fault_reply(endpoint, req, params, fault)
            self._log.append(
                RecordedRequest(
                    endpoint=endpoint,
                    method=req.method,
                    path=req.path,
                    query=req.query,
                    headers=req.headers,
                    body=req.body,
                    params=params,
                    received_at=req.received_at,
                    fault=fault.kind if fault is not None else None,
                    status=None if reply.drop else reply.status,
                    answer=reply.decoded(),
                )
            )
            self._version += 1
            self._changed.notify_all()
            return reply


_PHRASES = {s.value for s in HTTPStatus}


def merged_params(req: Incoming) -> dict[str, Any]:
    """Query string, then a form or JSON object body on top (how Slack reads arguments)."""
    params: dict[str, Any] = {k: v[-1] for k, v in req.query.items()}
    if req.content_type == "application/json":
        body = req.json()
        if isinstance(body, Mapping):
            params.update(body)
    elif req.body:
        params.update(req.form())
    return params
