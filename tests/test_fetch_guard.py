"""The image URL check (`[diagnose] fetch_urls`): what one guarded fetch reports, and the guard.

A real image server on 127.0.0.1 answers the fetches; names resolve through a resolver the test
passes in (no test resolves a name over the network). Whatever the guard refuses must never reach
the server: each SSRF case asserts on the server's own request log.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from oai400d.config.settings import DiagnoseSettings
from oai400d.facts.fetch import USER_AGENT, FetchCache, ImageFetcher
from oai400d.model import Fact

from .support import oai400d

HUGE_BODY = 50 * 1024 * 1024


@dataclass
class ImageServer:
    """The test's image server: its port, and every request it saw (method, path, headers)."""

    port: int
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def paths(self) -> list[str]:
        return [path for _, path, _ in self.seen]

    def url(self, path: str, host: str = "images.test") -> str:
        return f"http://{host}:{self.port}{path}"


class _Handler(BaseHTTPRequestHandler):
    server_state: ImageServer  # set on the class made per server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def do_GET(self) -> None:
        self._answer(head=False)

    def _answer(self, head: bool) -> None:
        state = self.server_state
        parts = urlsplit(self.path)
        state.seen.append((self.command, parts.path, dict(self.headers.items())))
        query = parse_qs(parts.query)
        route = parts.path
        if route == "/png" or (route == "/get-only" and not head):
            size = int(query.get("n", ["5000"])[0])
            wanted = self.headers.get("Range")
            if wanted and not head:
                last = min(int(wanted.rpartition("-")[2]), size - 1)
                self._send(206, "image/png", last + 1, {"Content-Range": f"bytes 0-{last}/{size}"})
            else:
                self._send(200, "image/png", size, head=head)
        elif route == "/get-only":  # a presigned URL signed for GET: HEAD is refused
            self._send(403, "application/xml", 0, head=True)
        elif route == "/403":
            self._send(403, "text/html; charset=utf-8", 120, head=head)
        elif route == "/html":
            self._send(200, "text/html", 300, head=head)
        elif route == "/redirect":
            self.send_response(302)
            self.send_header("Location", query["to"][0])
            self.send_header("Set-Cookie", "session=do-not-send-back")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif route == "/huge" and not head:  # no length: the body ends when the server closes
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            self._stream(HUGE_BODY)
        elif route == "/slow" and not head:  # 10 bytes, then nothing until the test ends
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"\x89PNG\r\n\x1a\n\0\0")
            self.wfile.flush()
            state.release.wait(20)
        else:
            self._send(405 if route in ("/huge", "/slow") else 404, "text/plain", 0, head=True)

    def _send(
        self,
        status: int,
        content_type: str,
        size: int,
        extra: dict[str, str] | None = None,
        head: bool = False,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(size))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self._stream(size)

    def _stream(self, size: int) -> None:
        block = b"\0" * 65536
        try:
            while size > 0:
                self.wfile.write(block[:size])
                size -= len(block)
        except OSError:  # the client stopped reading, as it should
            pass


def _serve(tls: ssl.SSLContext | None = None) -> Iterator[ImageServer]:
    # Over TLS the server keeps connections open (HTTP/1.1), as a CDN does.
    handler = type("Handler", (_Handler,), {"protocol_version": "HTTP/1.1" if tls else "HTTP/1.0"})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    state = ImageServer(server.server_address[1])
    handler.server_state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def module_server() -> Iterator[ImageServer]:
    yield from _serve()


@pytest.fixture
def server(module_server: ImageServer) -> ImageServer:
    module_server.seen.clear()
    return module_server


class FakeResolver:
    """socket.getaddrinfo's shape, from a table; counts its calls (names it was asked)."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> list[tuple[Any, ...]]:
        self.asked.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (
                socket.AF_INET6 if ":" in ip else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (ip, port),
            )
            for ip in self.table[host]
        ]


RESOLVER_TABLE = {
    "images.test": ["127.0.0.1"],
    "evil.test": ["10.0.0.1"],
    "mixed.test": ["93.184.215.14", "10.0.0.1"],
    "mapped.test": ["::ffff:127.0.0.1"],
    "metadata.test": ["169.254.169.254"],
}


def fetcher(
    allow_hosts: tuple[str, ...] = ("images.test",),
    resolver: FakeResolver | None = None,
    **bounds: Any,
) -> ImageFetcher:
    settings = DiagnoseSettings.model_validate(
        {"fetch_urls": True, "allow_hosts": list(allow_hosts), "timeout": "5s", **bounds}
    )
    return ImageFetcher(settings, resolver or FakeResolver(dict(RESOLVER_TABLE)))


def texts(facts: tuple[Fact, ...]) -> str:
    return "\n".join(fact.text for fact in facts)


# --- what a fetch reports ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "words", "bearing"),
    [
        ("/403", ["(GET): 403", "text/html", "120 B", "refused here too"], "supports"),
        ("/html", ["(HEAD): 200", "text/html", "300 B", "not an image"], "supports"),
        ("/png?n=5000", ["(HEAD): 200", "image/png", "4.9 KiB", "reachable"], "rules_out"),
        ("/missing.png", ["(GET): 404", "no image here either"], "supports"),
    ],
)
def test_a_listed_server_is_fetched_and_the_facts_say_what_it_answered(
    server: ImageServer, path: str, words: list[str], bearing: str
) -> None:
    """A host in allow_hosts is fetched from this host: status, content type, size, time."""
    facts = fetcher().facts(server.url(path), "episode-1")
    assert len(facts) == 1
    for word in words:
        assert word in facts[0].text
    assert " ms" in facts[0].text
    assert facts[0].kind == "fetch" and facts[0].bearing == bearing
    # Pinned to the checked address, named by its host; nothing of ours but the User-Agent.
    for _, _, headers in server.seen:
        assert headers["Host"] == f"images.test:{server.port}"
        assert headers["User-Agent"] == USER_AGENT
        assert "Cookie" not in headers and "Authorization" not in headers


def test_an_image_reachable_here_puts_expiry_first_and_demotes_the_not_an_image_fix(
    server: ImageServer,
) -> None:
    """A 200 image/png rules out "unreachable": its words pick the rule's fixes in order."""
    from oai400d.facts import order_fixes

    (fact,) = fetcher().facts(server.url("/png?n=20"), "e")
    fixes = [
        "It must be public (no localhost).",
        "Presigned links must still be valid.",
        "Make sure the URL returns the image itself (an image/* content type).",
    ]
    assert order_fixes(fixes, [fact]) == (fixes[1], fixes[0], fixes[2])


def test_head_refused_then_a_ranged_get_and_the_size_from_content_range(
    server: ImageServer,
) -> None:
    """A presigned URL signed for GET refuses HEAD: a ranged GET tells the type and full size."""
    (fact,) = fetcher().facts(server.url("/get-only?n=3000000"), "e")
    assert "(GET): 206 (partial), image/png, 2.9 MiB" in fact.text
    assert [method for method, _, _ in server.seen] == ["HEAD", "GET"]
    assert server.seen[1][2]["Range"] == "bytes=0-4095"


def test_the_redirect_chain_is_followed_by_hand_without_cookies(server: ImageServer) -> None:
    """Two redirects: each hop checked and fetched, the chain is a fact; no cookie sent back."""
    final = server.url("/png?n=10")
    middle = server.url(f"/redirect?to={final}")
    facts = fetcher().facts(server.url(f"/redirect?to={middle}"), "e")
    assert facts[0].text.startswith("Redirected 2 times: http://images.test:")
    assert "?" not in facts[0].text  # queries (signatures) are never shown
    assert "200, image/png, 10 B" in facts[1].text
    assert server.paths() == ["/redirect", "/redirect", "/png"]
    assert all("Cookie" not in headers for _, _, headers in server.seen)


def test_too_many_redirects_stop(server: ImageServer) -> None:
    """max_redirects bounds the chain; the hop after the last is never asked."""
    loop = server.url("/png?n=1")
    for _ in range(3):
        loop = server.url(f"/redirect?to={loop}")
    facts = fetcher(max_redirects=2).facts(loop, "e")
    assert "stopped after 2 redirects (diagnose.max_redirects)" in texts(facts)
    assert server.paths() == ["/redirect", "/redirect", "/redirect"]


def test_an_unlisted_loopback_host_is_refused_and_the_refusal_is_the_fact(
    server: ImageServer,
) -> None:
    """Not in allow_hosts: nothing is sent, and the fact says why and what would allow it."""
    (fact,) = fetcher(allow_hosts=()).facts(server.url("/png"), "e")
    assert fact.text == (
        f"http://images.test:{server.port}/png not fetched: the host resolves to 127.0.0.1, "
        "a loopback address (diagnose.allow_hosts lets it through)"
    )
    assert fact.bearing == "supports"
    assert server.seen == []


def test_a_url_masked_in_the_log_text_is_not_fetched(server: ImageServer) -> None:
    """A presigned URL reaches oai400d with its signature masked: fetching it could only be
    refused (a false "refused here too"), so it is not fetched, and the fact says why."""
    url = server.url("/png") + "?X-Amz-Expires=300&X-Amz-Signature=[REDACTED]"
    (fact,) = fetcher().facts(url, "e")
    assert "not fetched: part of it (a signature or a key) is masked" in fact.text
    assert fact.bearing == "neutral"
    assert server.seen == []


# --- the guard -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("/redirect?to=http://127.0.0.1:{port}/png", "the host is 127.0.0.1, a loopback address"),
        ("/redirect?to=http://169.254.169.254/latest/meta-data/", "a cloud metadata address"),
        ("/redirect?to=http://[::1]:{port}/png", "the host is ::1, a loopback address"),
        ("/redirect?to=http://[fd00:ec2::254]/latest/", "a cloud metadata address"),
        ("/redirect?to=http://metadata.test/latest/", "resolves to 169.254.169.254, a cloud"),
        ("/redirect?to=file:///etc/passwd", "file is not http or https"),
        ("http://evil.test/a.png", "resolves to 10.0.0.1, a private address"),
        ("http://mixed.test/a.png", "93.184.215.14, 10.0.0.1; 10.0.0.1 is a private address"),
        ("http://mapped.test/a.png", "a loopback address (as 127.0.0.1 inside IPv6)"),
        ("http://2130706433:{port}/png", "the host is 127.0.0.1, a loopback address"),
        ("http://0177.0.0.1:{port}/png", "the host is 127.0.0.1, a loopback address"),
        ("http://0x7f.0.0.1:{port}/png", "the host is 127.0.0.1, a loopback address"),
        ("http://0x7f000001:{port}/png", "the host is 127.0.0.1, a loopback address"),
        ("http://127.1:{port}/png", "the host is 127.0.0.1, a loopback address"),
        ("http://[::ffff:7f00:1]:{port}/png", "as 127.0.0.1 inside IPv6"),
        ("http://user:secret@images.test:{port}/png", "carries credentials"),
        ("file:///etc/passwd", "file is not http or https"),
        ("gopher://images.test:{port}/_GET", "gopher is not http or https"),
        ("http://unknown.test/a.png", "its name did not resolve"),
    ],
)
def test_the_guard_refuses_before_anything_is_sent(
    server: ImageServer, url: str, words: str
) -> None:
    """Each SSRF case is refused with its reason; the server never sees the refused request
    (only the redirect that led there, when there is one)."""
    url = url.replace("{port}", str(server.port))
    if url.startswith("/"):
        url = server.url(url)
    facts = fetcher().facts(url, "e")
    assert words in facts[-1].text
    assert "secret" not in texts(facts)
    assert set(server.paths()) <= {"/redirect"}


def test_an_ip_literal_is_checked_as_the_address_it_spells(server: ImageServer) -> None:
    """2130706433 is 127.0.0.1: listed as 127.0.0.0/8, it is fetched there (the same reading)."""
    (fact,) = fetcher(allow_hosts=("127.0.0.0/8",)).facts(
        f"http://2130706433:{server.port}/png?n=7", "e"
    )
    assert "200, image/png, 7 B" in fact.text
    assert server.seen[0][2]["Host"] == f"127.0.0.1:{server.port}"


def test_the_address_checked_is_the_one_connected_to(server: ImageServer) -> None:
    """Resolved once per hop (HEAD and GET share it); a second answer (rebinding to 10.0.0.1)
    is never asked for, because the connection goes to the address checked."""
    answers = iter([["127.0.0.1"], ["10.0.0.1"]])

    class Rebinding(FakeResolver):
        def __call__(self, host: str, port: int) -> list[tuple[Any, ...]]:
            self.table[host] = next(answers)
            return super().__call__(host, port)

    resolver = Rebinding({})
    facts = fetcher(allow_hosts=("127.0.0.0/8",), resolver=resolver).facts(
        server.url("/get-only?n=10", host="rebind.test"), "e"
    )
    assert "206 (partial), image/png" in facts[0].text
    assert resolver.asked == ["rebind.test"]
    assert [headers["Host"] for _, _, headers in server.seen] == [f"rebind.test:{server.port}"] * 2


def test_a_huge_body_stops_at_max_bytes(server: ImageServer) -> None:
    """A 50 MiB answer without a length: reading stops after max_bytes."""
    started = time.monotonic()
    (fact,) = fetcher(max_bytes="64KiB").facts(server.url("/huge"), "e")
    assert "200, application/octet-stream, more than 64.0 KiB (diagnose.max_bytes)" in fact.text
    assert time.monotonic() - started < 4


def test_a_slow_body_stops_at_the_timeout(server: ImageServer) -> None:
    """Headers, 10 bytes, then silence: the fetch ends at its timeout, and says so."""
    started = time.monotonic()
    (fact,) = fetcher(timeout="500ms").facts(server.url("/slow"), "e")
    elapsed = time.monotonic() - started
    assert "no complete answer within 500ms (diagnose.timeout)" in fact.text
    assert fact.bearing == "supports"
    assert 0.4 < elapsed < 3


def test_a_hanging_lookup_stops_at_the_timeout(server: ImageServer) -> None:
    """A resolver that never answers (a dead DNS server): the fetch ends at its timeout."""
    release = threading.Event()

    def hanging(host: str, port: int) -> list[tuple[Any, ...]]:
        release.wait(20)
        return []

    settings = DiagnoseSettings.model_validate({"fetch_urls": True, "timeout": "300ms"})
    started = time.monotonic()
    try:
        (fact,) = ImageFetcher(settings, hanging).facts("http://dead-dns.test/a.png", "e")
    finally:
        release.set()
    assert "its name did not resolve (no answer within 300ms, diagnose.timeout)" in fact.text
    assert time.monotonic() - started < 2


def test_one_fetch_per_url_per_episode(server: ImageServer) -> None:
    """The same URL in the same episode is answered from the cache; a new episode fetches."""
    guarded = fetcher()
    url = server.url("/png?n=10")
    first = guarded.facts(url, "episode-1")
    assert guarded.facts(url, "episode-1") == first
    assert server.paths() == ["/png"]
    guarded.facts(url, "episode-2")
    assert server.paths() == ["/png", "/png"]


def test_the_rate_limit_on_a_fake_clock(server: ImageServer) -> None:
    """per_minute = 2: a third URL at once is not fetched (and not cached); 30 s later one
    token has come back."""
    now = [1000.0]
    settings = DiagnoseSettings.model_validate(
        {"fetch_urls": True, "allow_hosts": ["images.test"], "per_minute": 2}
    )
    guarded = ImageFetcher(settings, FakeResolver(dict(RESOLVER_TABLE)), clock=lambda: now[0])
    guarded.facts(server.url("/png?n=1"), "e")
    guarded.facts(server.url("/png?n=2"), "e")
    (limited,) = guarded.facts(server.url("/png?n=3"), "e")
    assert "not fetched: the limit of 2 fetches a minute (diagnose.per_minute)" in limited.text
    assert len(server.seen) == 2
    now[0] += 30
    (fetched,) = guarded.facts(server.url("/png?n=3"), "e")
    assert "image/png, 3 B" in fetched.text
    (limited,) = guarded.facts(server.url("/png?n=4"), "e")
    assert "not fetched" in limited.text


def test_off_by_default_nothing_is_fetched(server: ImageServer) -> None:
    """fetch_urls = false (the default): no facts, no request."""
    settings = DiagnoseSettings.model_validate({"allow_hosts": ["images.test"]})
    assert (
        ImageFetcher(settings, FakeResolver(dict(RESOLVER_TABLE))).facts(server.url("/png"), "e")
        == ()
    )
    assert server.seen == []


def test_a_shared_cache_is_passed_in(server: ImageServer) -> None:
    """Two fetchers (a reload) sharing a FetchCache do not fetch the same URL twice."""
    cache = FetchCache()
    settings = DiagnoseSettings.model_validate({"fetch_urls": True, "allow_hosts": ["images.test"]})
    for _ in range(2):
        ImageFetcher(settings, FakeResolver(dict(RESOLVER_TABLE)), cache=cache).facts(
            server.url("/png?n=1"), "e"
        )
    assert server.paths() == ["/png"]


# --- TLS: the connection goes to the address, the certificate is checked for the name --------


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ImageServer, Path]]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (it makes the test's certificate)")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
         "-subj", "/CN=images.test", "-addext", "subjectAltName=DNS:images.test"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    for state in _serve(context):
        yield state, cert


def test_https_is_pinned_with_sni_and_the_certificate_checked_for_the_name(
    tls_server: tuple[ImageServer, Path],
) -> None:
    """https://images.test resolves to 127.0.0.1: the connection goes there, the certificate
    is verified for images.test (SNI); a name the certificate does not carry fails, unsent."""
    server, cert = tls_server
    server.seen.clear()
    settings = DiagnoseSettings.model_validate(
        {"fetch_urls": True, "allow_hosts": ["images.test", "other.test"]}
    )
    resolver = FakeResolver({"images.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    transport = httpx.HTTPTransport(verify=ssl.create_default_context(cafile=str(cert)))
    guarded = ImageFetcher(settings, resolver, transport)
    (fact,) = guarded.facts(f"https://images.test:{server.port}/png?n=9", "e")
    assert "200, image/png, 9 B" in fact.text
    assert server.seen[0][2]["Host"] == f"images.test:{server.port}"
    (fact,) = guarded.facts(f"https://other.test:{server.port}/png?n=9", "e")
    assert "could not connect" in fact.text and "certificate" in fact.text.lower()
    assert len(server.seen) == 1
    guarded.close()


# --- config ----------------------------------------------------------------------------------


def test_check_config_names_a_bad_allow_hosts_entry(tmp_path: Path) -> None:
    """A URL or a bad network in allow_hosts: exit 78, the key named."""
    config = tmp_path / "c.toml"
    config.write_text(
        '[diagnose]\nallow_hosts = ["images.test", "http://cdn.test/", "10.0.0.0/33"]\n'
    )
    result = oai400d("check-config", "--config", str(config))
    assert result.returncode == 78
    err = result.stderr.decode()
    assert "diagnose.allow_hosts" in err and "is a URL; write its host alone" in err
    assert '"10.0.0.0/33" is not an IP address or network' in err
