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
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

import httpx

from oai400d import __version__
from oai400d.config import Settings, format_duration
from oai400d.masking import public_url

USER_AGENT = f"oai400d/{__version__}"

# httpx's types, as the rest of the package names them.
Client = httpx.Client
Response = httpx.Response
Transport = httpx.BaseTransport


@dataclass(frozen=True, slots=True)
class Answer:
    """What one GET produced: a response, or why there is none (already in words).

    `kind` says which way the request failed, for the [[failure]] rows of verdicts.toml:
    "timeout", "proxy" (the proxy refused the tunnel), "tls", "connect" (the OS's words say
    whether DNS, a refusal or the route), "closed", "request" or "invalid_url"; None with a
    response. `url` is the URL asked for, without credentials or query (safe to print);
    `proxy` the proxy the request went through, the same way ("" for none)."""

    response: httpx.Response | None
    failure: str | None
    elapsed_ms: int
    kind: str | None = None
    url: str = ""
    proxy: str = ""


def make_client(settings: Settings, transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """An httpx client for the probes: bounded timeouts, our User-Agent, no redirects followed.

    Redirects are reported, not followed: a moved status page or base_url is a configuration to
    fix, and following one could send the key to another host. Proxies and CA bundles come from
    the environment (HTTPS_PROXY, NO_PROXY, SSL_CERT_FILE), as for the applications; not with a
    transport of the caller's (httpx then ignores the environment's proxies, and so do we).
    """
    return httpx.Client(
        timeout=httpx.Timeout(settings.probes.timeout),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,
        transport=transport,
        trust_env=transport is None,
    )


def get(client: httpx.Client, url: str, headers: dict[str, str], timeout: float) -> Answer:
    """GET url; every transport failure becomes words, never an exception."""
    started = time.monotonic()
    failure: str | None = None
    kind: str | None = None
    response: httpx.Response | None = None
    try:
        response = client.get(url, headers=headers)
    except httpx.TimeoutException:
        kind, failure = "timeout", f"timed out after {format_duration(timeout)}"
    except httpx.ProxyError as exc:
        kind, failure = "proxy", f"proxy failed: {_innermost(exc)}"
    except httpx.ConnectError as exc:
        tls, failure = _describe_connect(exc)
        kind = "tls" if tls else "connect"
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
        kind, failure = "closed", "connection closed without an answer"
    except httpx.HTTPError as exc:
        kind, failure = "request", f"request failed: {type(exc).__name__}"
    except httpx.InvalidURL:
        kind, failure = "invalid_url", "invalid URL"
    elapsed_ms = round((time.monotonic() - started) * 1000)
    try:
        shown = public_url(url)
        proxy = proxy_for(url) if client.trust_env else ""
    except ValueError:  # (urlsplit refuses a malformed IPv6 host; httpx said "invalid URL")
        shown, proxy = "the configured URL", ""
    return Answer(response, failure, elapsed_ms, kind, shown, proxy)


def proxy_for(url: str) -> str:
    """The proxy the environment gives for url (HTTPS_PROXY, HTTP_PROXY or ALL_PROXY unless
    NO_PROXY exempts its host: httpx reads the same variables through the same stdlib
    functions), without credentials; "" for none. A failed connection is then the proxy's."""
    proxies = getproxies()
    parts = urlsplit(url)
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or proxy_bypass(parts.hostname or ""):
        return ""
    return public_url(proxy if "://" in proxy else f"http://{proxy}")


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
    """(is it TLS, the OS's or ssl's words) for a failed connection ("Connection refused",
    "Name or service not known": verdicts.toml's [[failure]] patterns read them)."""
    for cause in _chain(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return True, f"TLS certificate verify failed: {cause.verify_message}"
        if isinstance(cause, ssl.SSLError):
            reason = (cause.reason or str(cause)).lower().replace("_", " ")
            return True, f"TLS error: {reason}"
        if isinstance(cause, socket.gaierror):
            return False, cause.strerror or "name resolution failed"
    return False, _innermost(exc)


def json_body(response: httpx.Response) -> Any:
    """The body as JSON, or None when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None
