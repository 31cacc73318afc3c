"""A fake Slack Socket Mode endpoint: a minimal RFC 6455 websocket server on 127.0.0.1.

    sockets = FakeSocketMode().start()
    url = sockets.url            # what apps.connections.open answers
    sockets.wait_connected()
    sockets.push(envelope)       # an `interactive` envelope, as Slack sends a button press
    sockets.wait_for_ack(envelope["envelope_id"])

On connect it sends `{"type": "hello", ...}` as Slack does; it answers pings with pongs and
records every text frame the client sends (acks are `{"envelope_id": ...}`). Plain ws:// only:
slack-sdk's built-in client uses TLS on port 443 alone.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import socket
import struct
import threading
import time
from typing import Any

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
HOST = "127.0.0.1"


class _Peer:
    """One client connection."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.send_lock = threading.Lock()
        self.open = True

    def send_frame(self, opcode: int, payload: bytes) -> None:
        size = len(payload)
        if size < 126:
            head = struct.pack("!BB", 0x80 | opcode, size)
        elif size < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 126, size)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 127, size)
        with self.send_lock:
            self.sock.sendall(head + payload)

    def read_exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    def read_frame(self) -> tuple[int, bytes]:
        first, second = self.read_exact(2)
        opcode = first & 0x0F
        size = second & 0x7F
        if size == 126:
            size = struct.unpack("!H", self.read_exact(2))[0]
        elif size == 127:
            size = struct.unpack("!Q", self.read_exact(8))[0]
        mask = self.read_exact(4) if second & 0x80 else b"\0\0\0\0"
        data = self.read_exact(size)
        return opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


class FakeSocketMode:
    """The websocket Slack's apps.connections.open points at; tests push envelopes through it."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._listener: socket.socket | None = None
        self._peers: list[_Peer] = []
        self.received: list[dict[str, Any]] = []
        self.connections = 0
        self._stopping = False

    def start(self) -> FakeSocketMode:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, 0))
        listener.listen(8)
        self._listener = listener
        threading.Thread(target=self._accept, name="fake-socket-mode", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping = True
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            peers = list(self._peers)
        for peer in peers:
            peer.open = False
            with contextlib.suppress(OSError):
                peer.sock.shutdown(socket.SHUT_RDWR)
            peer.sock.close()

    @property
    def url(self) -> str:
        assert self._listener is not None, "FakeSocketMode is not started"
        return f"ws://{HOST}:{self._listener.getsockname()[1]}/link/?ticket=fake-ticket"

    # -- what tests do -------------------------------------------------------------------------

    def connected(self) -> bool:
        with self._lock:
            return any(p.open for p in self._peers)

    def open_connections(self) -> int:
        with self._lock:
            return sum(1 for p in self._peers if p.open)

    def wait_connected(self, timeout: float = 5.0) -> None:
        self._wait(self.connected, timeout, "a Socket Mode client to connect")

    def push(self, envelope: dict[str, Any]) -> None:
        """Send an envelope to the newest open connection."""
        with self._lock:
            peers = [p for p in self._peers if p.open]
        assert peers, "no Socket Mode client is connected"
        peers[-1].send_frame(0x1, json.dumps(envelope).encode())

    def acks(self) -> list[str]:
        with self._lock:
            return [str(m["envelope_id"]) for m in self.received if "envelope_id" in m]

    def wait_for_ack(self, envelope_id: str, timeout: float = 5.0) -> None:
        self._wait(lambda: envelope_id in self.acks(), timeout, f"the ack of {envelope_id}")

    def _wait(self, condition: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not condition():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
                self._lock.wait(left)

    # -- serving -------------------------------------------------------------------------------

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stopping:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        peer = _Peer(sock)
        try:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = sock.recv(4096)
                if not chunk:
                    return
                request += chunk
            headers = {}
            for line in request.decode("latin-1").split("\r\n")[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            accept = base64.b64encode(
                hashlib.sha1((headers.get("sec-websocket-key", "") + _GUID).encode()).digest()
            ).decode()
            sock.sendall(
                (
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                ).encode()
            )
            with self._lock:
                self._peers.append(peer)
                self.connections += 1
                self._lock.notify_all()
            hello = {
                "type": "hello",
                "num_connections": 1,
                "debug_info": {"host": "fake", "approximate_connection_time": 18060},
                "connection_info": {"app_id": "A0FAKEAPP1"},
            }
            peer.send_frame(0x1, json.dumps(hello).encode())
            while peer.open:
                opcode, data = peer.read_frame()
                if opcode == 0x9:  # ping
                    peer.send_frame(0xA, data)
                elif opcode == 0x8:  # close
                    peer.send_frame(0x8, data[:2])
                    return
                elif opcode == 0x1:
                    try:
                        message = json.loads(data)
                    except ValueError:
                        message = {"raw": data.decode("utf-8", "replace")}
                    with self._lock:
                        self.received.append(message)
                        self._lock.notify_all()
        except (OSError, ConnectionError, ValueError):
            return
        finally:
            peer.open = False
            with self._lock:
                self._lock.notify_all()
            sock.close()


def block_action(
    envelope_id: str,
    action_id: str,
    fingerprint: str,
    user_id: str,
    channel: str,
    message_ts: str,
    user_name: str = "",
    action_ts: str | None = None,
    trigger_id: str | None = None,
) -> dict[str, Any]:
    """An `interactive` envelope as Slack sends it when someone presses a button."""
    stamp = action_ts or f"{time.time():.6f}"
    user: dict[str, Any] = {"id": user_id, "team_id": "T000"}
    if user_name:
        user.update(username=user_name, name=user_name)
    return {
        "envelope_id": envelope_id,
        "type": "interactive",
        "accepts_response_payload": False,
        "payload": {
            "type": "block_actions",
            "user": user,
            "api_app_id": "A0FAKEAPP1",
            "team": {"id": "T000", "domain": "fake"},
            "container": {
                "type": "message",
                "message_ts": message_ts,
                "channel_id": channel,
                "is_ephemeral": False,
            },
            "trigger_id": trigger_id or f"trigger-{envelope_id}",
            "channel": {"id": channel, "name": "openai-alerts"},
            "message": {"type": "message", "ts": message_ts},
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": "oai400d_actions",
                    "value": fingerprint,
                    "action_ts": stamp,
                    "text": {"type": "plain_text", "text": action_id},
                }
            ],
        },
    }
