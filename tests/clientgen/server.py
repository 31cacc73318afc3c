"""The loopback servers the client libraries talk to, all on 127.0.0.1 and fixed ports.

- `ScriptedOpenAI`: tests/fakes' FakeOpenAI answering every POST (chat/completions, embeddings,
  responses, images/generations, ...) with the reply of the current capture: one scenario of
  scenarios.py, the same answer to every attempt (so a library's own retries meet it again),
  or a normal success body for that path. Request ids are derived from the capture's name, so
  that a rerun writes the same ids.
- `SelfSignedTLS`: accepts TLS handshakes with a self-signed certificate (clients refuse it).
- `BadGatewayProxy`: an HTTP proxy that answers every CONNECT or request with 502.
A closed port (nothing listening) stands for connection refused.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import json
import socket
import socketserver
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.fakes import _http
from tests.fakes._http import HOST, Incoming, Reply
from tests.fakes.openai_api import FakeOpenAI, masked_key

from .scenarios import Scenario

CREATED = 1767261600  # 2026-01-01T10:00:00Z: success bodies carry a fixed time


class _Dated:
    now = float(CREATED)

    @staticmethod
    def date_time_string(_handler: Any, timestamp: float | None = None) -> str:
        return email.utils.formatdate(_Dated.now, usegmt=True)

    @staticmethod
    def version_string(_handler: Any) -> str:
        return "cloudflare"  # what api.openai.com answers in `Server`


class ScriptedOpenAI(FakeOpenAI):
    """FakeOpenAI whose answer is set per capture with `begin()`."""

    name = "clientgen-openai"

    def __init__(self, port: int, api_key: str) -> None:
        super().__init__(keys=[api_key])
        self.bind_port = port
        self._scenario: Scenario | None = None
        self._capture = ""
        self._n = 0
        self.timeout_delay = 4.0

    def begin(self, capture: str, scenario: Scenario, clock: float) -> None:
        """From now on answer as `scenario`; `clock` is the capture's time (the Date header)."""
        with self._lock:
            self._scenario = scenario
            self._capture = capture
            self._n = 0
            _Dated.now = clock
        self.clear_requests()

    def start(self) -> ScriptedOpenAI:
        # The Date header follows the capture's clock, not the wall clock, so reruns write the
        # same debug logs. Only this generator's process serves with the patched handler.
        _http._Handler.date_time_string = _Dated.date_time_string  # type: ignore[method-assign]
        _http._Handler.version_string = _Dated.version_string  # type: ignore[method-assign]
        return super().start()

    def _request_id(self) -> str:
        self._n += 1
        digest = hashlib.sha256(f"{self._capture}#{self._n}".encode()).hexdigest()
        return f"req_{digest[:32]}"

    def _std_headers(self, request_id: str) -> tuple[tuple[str, str], ...]:
        return (
            ("x-request-id", request_id),
            ("openai-organization", "org-fakefakefakefakefakefake"),
            ("openai-processing-ms", "187"),
            ("openai-version", "2020-10-01"),
        )

    def _answer(self, endpoint: str, req: Incoming, params: Any) -> Reply:
        scenario = self._scenario
        request_id = self._request_id()
        if scenario is None or scenario.status is None:
            reply = self._success(req, params, request_id)
            if scenario is not None and scenario.transport == "timeout":
                return Reply(reply.status, reply.body, reply.headers, delay=self.timeout_delay)
            return reply
        headers: list[tuple[str, str]] = []
        if scenario.json_body:
            text = json.dumps(scenario.body, indent=4)  # OpenAI pretty-prints its errors
            text = text.replace("{request_id}", request_id)
            key = self._key_of(req) or ""
            text = text.replace("{masked_key}", masked_key(key) if key else "")
            body = (text + "\n").encode()
            headers.append(("Content-Type", "application/json"))
            headers.extend(self._std_headers(request_id))
        elif scenario.body is None:
            body = b""
            headers.append(("Content-Type", "application/json"))
            headers.extend(self._std_headers(request_id))
        else:
            body = str(scenario.body).encode()
            headers.append(("Content-Type", scenario.content_type))
            if "html" in scenario.content_type:  # the edge's page, not the API's answer
                ray = hashlib.sha256(request_id.encode()).hexdigest()[:16]
                headers += [("Server", "cloudflare"), ("CF-RAY", f"{ray}-SJC")]
            else:
                headers.extend(self._std_headers(request_id))
        headers.extend(scenario.headers)
        return Reply(scenario.status, body, tuple(headers))

    def _success(self, req: Incoming, params: Any, request_id: str) -> Reply:
        path = req.path.rstrip("/")
        model = (params or {}).get("model", "gpt-4o-mini") if isinstance(params, dict) else ""
        suffix = request_id[4:28]
        payload: dict[str, Any]
        if path.endswith("/chat/completions"):
            payload = {
                "id": f"chatcmpl-{suffix}",
                "object": "chat.completion",
                "created": CREATED,
                "model": f"{model}-2024-07-18" if model == "gpt-4o-mini" else model,
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": "Your refund for order 4211 was issued on March 2.",
                            "refusal": None,
                            "annotations": [],
                        },
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": 41,
                    "completion_tokens": 13,
                    "total_tokens": 54,
                    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                    "completion_tokens_details": {
                        "reasoning_tokens": 0,
                        "audio_tokens": 0,
                        "accepted_prediction_tokens": 0,
                        "rejected_prediction_tokens": 0,
                    },
                },
                "service_tier": "default",
                "system_fingerprint": "fp_0aa8d3e20b",
            }
        elif path.endswith("/embeddings"):
            raw = params.get("input", "") if isinstance(params, dict) else ""
            count = len(raw) if isinstance(raw, list) else 1
            payload = {
                "object": "list",
                "data": [
                    {
                        "object": "embedding",
                        "index": i,
                        "embedding": [
                            0.0123,
                            -0.0456,
                            0.0789,
                            -0.0012,
                            0.0345,
                            -0.0678,
                            0.0091,
                            0.0234,
                        ],
                    }
                    for i in range(count)
                ],
                "model": model,
                "usage": {"prompt_tokens": 9, "total_tokens": 9},
            }
        elif path.endswith("/responses"):
            payload = {
                "id": f"resp_{suffix}",
                "object": "response",
                "created_at": CREATED,
                "status": "completed",
                "error": None,
                "incomplete_details": None,
                "model": model,
                "output": [
                    {
                        "type": "message",
                        "id": f"msg_{suffix}",
                        "status": "completed",
                        "role": "assistant",
                        "content": [
                            {
                                "type": "output_text",
                                "text": "Your refund for order 4211 was issued on March 2.",
                                "annotations": [],
                            }
                        ],
                    }
                ],
                "parallel_tool_calls": True,
                "tool_choice": "auto",
                "tools": [],
                "usage": {
                    "input_tokens": 41,
                    "input_tokens_details": {"cached_tokens": 0},
                    "output_tokens": 13,
                    "output_tokens_details": {"reasoning_tokens": 0},
                    "total_tokens": 54,
                },
            }
        elif path.endswith("/images/generations"):
            payload = {
                "created": CREATED,
                "data": [
                    {
                        "url": "https://images.example.com/generated/4211.png",
                        "revised_prompt": "A flat illustration of a receipt.",
                    }
                ],
            }
        else:
            message = f"Invalid URL ({req.method} {req.path})"
            body = {
                "error": {
                    "message": message,
                    "type": "invalid_request_error",
                    "param": None,
                    "code": None,
                }
            }
            return Reply.json(404, body, self._std_headers(request_id))
        headers = (
            *self._std_headers(request_id),
            ("x-ratelimit-limit-requests", "500"),
            ("x-ratelimit-limit-tokens", "200000"),
            ("x-ratelimit-remaining-requests", "499"),
            ("x-ratelimit-remaining-tokens", "199950"),
            ("x-ratelimit-reset-requests", "120ms"),
            ("x-ratelimit-reset-tokens", "15ms"),
        )
        return Reply.json(200, payload, headers)


class _TLSHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        context: ssl.SSLContext = self.server.context  # type: ignore[attr-defined]
        with contextlib.suppress(OSError, ssl.SSLError):
            tls = context.wrap_socket(self.request, server_side=True)
            tls.settimeout(2)
            tls.recv(1)
            tls.close()


class SelfSignedTLS(socketserver.ThreadingTCPServer):
    """Completes the server side of a TLS handshake with a self-signed certificate."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, certdir: Path) -> None:
        cert, key = certdir / "cert.pem", certdir / "key.pem"
        if not cert.exists():
            certdir.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [
                    "openssl",
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "3650",
                    "-subj",
                    "/CN=127.0.0.1",
                    "-keyout",
                    str(key),
                    "-out",
                    str(cert),
                ],
                check=True,
                capture_output=True,
            )
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        super().__init__((HOST, port), _TLSHandler)


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "squid/6.10"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        return

    def date_time_string(self, timestamp: float | None = None) -> str:
        return _Dated.date_time_string(self, timestamp)

    def _bad_gateway(self) -> None:
        body = (
            b"<html><head><title>502 Bad Gateway</title></head>\n"
            b"<body><h1>Bad Gateway</h1><p>The proxy could not connect upstream.</p></body></html>\n"
        )
        self.send_response(502, "Bad Gateway")
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    do_CONNECT = do_GET = do_POST = _bad_gateway


class BadGatewayProxy(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int) -> None:
        super().__init__((HOST, port), _ProxyHandler)


def serve(server: socketserver.BaseServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    return thread


def port_is_closed(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((HOST, port)) != 0
