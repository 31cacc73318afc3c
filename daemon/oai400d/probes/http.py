"""The probes' HTTP: the client they share and one GET whose every failure comes back as words.

This is the one module of the package that imports httpx (tests/test_layers.py holds it to that):
the others name its types through the aliases below, so a transport error never escapes as an
httpx exception and a change of HTTP library stays in this file.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from oai400d import __version__
from oai400d.config import Settings, format_duration

USER_AGENT = f"oai400d/{__version__}"

# httpx's types, as the rest of the package names them.
Client = httpx.Client
Response = httpx.Response
Transport = httpx.BaseTransport


@dataclass(frozen=True, slots=True)
class Answer:
    """What one GET produced: a response, or why there is none (already in words)."""

    response: httpx.Response | None
    failure: str | None
    tls: bool
    elapsed_ms: int


def make_client(settings: Settings, transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """An httpx client for the probes: bounded timeouts, our User-Agent, no redirects followed.

    Redirects are reported, not followed: a moved status page or base_url is a configuration to
    fix, and following one could send the key to another host. Proxies and CA bundles come from
    the environment (HTTPS_PROXY, NO_PROXY, SSL_CERT_FILE), as for the applications.
    """
    return httpx.Client(
        timeout=httpx.Timeout(settings.probes.timeout),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,
        transport=transport,
    )


def get(client: httpx.Client, url: str, headers: dict[str, str], timeout: float) -> Answer:
    """GET url; every transport failure becomes words, never an exception."""
    started = time.monotonic()
    failure: str | None = None
    tls = False
    response: httpx.Response | None = None
    try:
        response = client.get(url, headers=headers)
    except httpx.TimeoutException:
        failure = f"timed out after {format_duration(timeout)}"
    except httpx.ProxyError as exc:
        failure = f"proxy failed: {_innermost(exc)}"
    except httpx.ConnectError as exc:
        tls, failure = _describe_connect(exc)
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
        failure = "connection closed without an answer"
    except httpx.HTTPError as exc:
        failure = f"request failed: {type(exc).__name__}"
    except httpx.InvalidURL:
        failure = "invalid URL"
    elapsed_ms = round((time.monotonic() - started) * 1000)
    return Answer(response, failure, tls, elapsed_ms)


def _chain(exc: BaseException) -> Iterable[BaseException]:
    """The exception and its causes (httpx wraps httpcore, which wraps the socket's OSError)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _innermost(exc: BaseException) -> str:
    """The deepest cause's message (the OS's words: "Connection refused")."""
    last = list(_chain(exc))[-1]
    if isinstance(last, OSError) and last.strerror:
        return last.strerror
    return str(last) or type(last).__name__


def _describe_connect(exc: httpx.ConnectError) -> tuple[bool, str]:
    """(is it TLS, words) for a failed connection."""
    for cause in _chain(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return True, f"TLS certificate verify failed: {cause.verify_message}"
        if isinstance(cause, ssl.SSLError):
            reason = (cause.reason or str(cause)).lower().replace("_", " ")
            return True, f"TLS error: {reason}"
        if isinstance(cause, socket.gaierror):
            return False, f"cannot connect: {cause.strerror or 'name resolution failed'}"
    return False, f"cannot connect: {_innermost(exc)}"


def public_url(url: str) -> str:
    """The URL without user:password or query (either may carry a secret)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def json_body(response: httpx.Response) -> Any:
    """The body as JSON, or None when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None
