"""One guarded request for an image URL that OpenAI could not download (`[diagnose] fetch_urls`).

From this host, a HEAD of the URL (then a ranged GET of a few KB when HEAD is refused or says
too little) gives facts: the status, content type, size, redirects and time taken. The URL
comes from a log line, so it is fetched as a server fetching untrusted URLs must:

- http and https only; a URL with user:password is refused (nothing of the kind is sent);
- the host's addresses resolved by the resolver passed in, every one checked (facts/addresses:
  no private, loopback, link-local, multicast, unspecified, reserved or metadata address,
  IPv4 in IPv6 and inet_aton's decimal/octal/hex literals judged as the address they are)
  unless `allow_hosts` lists the host or the address; then the connection is made to the
  address checked (pinned: the URL's host goes in the Host header and TLS's SNI, and the
  certificate is verified for it), so a second resolution cannot swap in another address;
- redirects followed by hand, at most `max_redirects`, each hop checked and resolved again;
- no cookies, no auth headers, no proxy (a proxy would resolve the name itself, and reach what
  the guard keeps out), a fixed User-Agent, `Accept-Encoding: identity`;
- the whole fetch within `timeout`, at most `max_bytes` of a body read;
- one fetch per URL per alert episode (FetchCache) and `per_minute` fetches in all
  (TokenBucket, on the clock passed in).

Nothing the server sent goes further than the facts: no body text, no header but the content
type and size. The URL shown has no query or credentials and is masked (masking.redact).

A third owner of httpx (tests/test_layers.py OWNERS): the guard talks to a transport directly,
request by request, to pin the address and keep out the cookies, proxies and redirects a client
would bring; probes/http.py's client does all three by design.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urljoin, urlsplit, urlunsplit

import httpx

from oai400d import __version__
from oai400d.config.settings import DiagnoseSettings
from oai400d.config.units import format_duration
from oai400d.facts.addresses import AllowList, IPAddress, parse_ip_literal, refusal
from oai400d.masking import public_url, redact
from oai400d.model import Fact

USER_AGENT = f"oai400d/{__version__} (image URL check)"
KIND = "fetch"
# How much a ranged GET asks for: enough for the content type's magic and Content-Range.
RANGE_BYTES = 4096
# Above this, an image is a long download for OpenAI's fetch (the vision guide's limits are
# per request; a photo this large is also resized away by the model).
LARGE_IMAGE = 20 * 1024 * 1024
_SHOWN_URL_MAX = 120

# (host, port) -> getaddrinfo's answers; socket.getaddrinfo itself, or a test's fake.
Resolver = Callable[[str, int], Iterable[tuple[Any, ...]]]
Clock = Callable[[], float]

# Words from the request.image rules' fixes (classify/rules.toml, openai.invalid_image_url), for
# facts.order_fixes: "it must be public…", "Presigned links…", "Avoid the download…", "Make sure
# the URL returns the image itself (an image/* content type)…".
_PUBLIC = "must be public"
_PRESIGNED = "presigned"
_AVOID = "avoid the download"
_IMAGE_ITSELF = "image/*"


class TokenBucket:
    """A global rate limit: `per_minute` tokens, refilled continuously, on the clock given."""

    def __init__(self, per_minute: int, clock: Clock) -> None:
        self._capacity = float(per_minute)
        self._per_second = per_minute / 60.0
        self._clock = clock
        self._tokens = self._capacity
        self._last = clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Take a token if there is one; False when the limit is reached."""
        with self._lock:
            now = self._clock()
            elapsed = max(0.0, now - self._last)
            self._tokens = min(self._capacity, self._tokens + elapsed * self._per_second)
            self._last = now
            if self._tokens < 1.0:
                return False
            self._tokens -= 1.0
            return True


class FetchCache:
    """The facts of each (URL, alert episode) already fetched: at most one fetch per URL per
    episode. Bounded (the oldest go first), so a storm of distinct URLs cannot grow it."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[str, str], tuple[Fact, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, url: str, episode: str) -> tuple[Fact, ...] | None:
        with self._lock:
            return self._entries.get((url, episode))

    def put(self, url: str, episode: str, facts: tuple[Fact, ...]) -> None:
        with self._lock:
            self._entries[(url, episode)] = facts
            self._entries.move_to_end((url, episode))
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)


class _Refused(Exception):
    """The guard refused a hop: the message is the fact's text, bearing and preferred words."""

    def __init__(self, text: str, bearing: str = "neutral", prefer: tuple[str, ...] = ()):
        super().__init__(text)
        self.fact = Fact(KIND, text, bearing, prefer)


@dataclass(frozen=True, slots=True)
class _Target:
    """One hop's URL, checked: where to connect (the address), what to call it (the host)."""

    url: str
    scheme: str
    host: str  # as the URL names it, lower case, IDNA-encoded
    port: int
    address: IPAddress
    target: str  # path and query, as sent


@dataclass(frozen=True, slots=True)
class _Answer:
    """What the last hop answered, reduced to what a fact may say."""

    method: str
    status: int
    content_type: str | None
    size: str  # already in words: "38.2 MiB", "more than 64 KiB", "size not given"
    size_bytes: int | None


class ImageFetcher:
    """`facts(url, episode)`: the facts of one guarded fetch of an image URL, once per URL per
    alert episode. Thread-safe: calls are serialised (fetches are few: per_minute), and the
    cache answers a repeat without waiting for another URL's fetch to end."""

    def __init__(
        self,
        settings: DiagnoseSettings,
        resolver: Resolver = socket.getaddrinfo,
        transport: httpx.BaseTransport | None = None,
        clock: Clock = time.monotonic,
        cache: FetchCache | None = None,
    ) -> None:
        self._settings = settings
        self._allow = AllowList.parse(settings.allow_hosts)
        self._resolver = resolver
        # No proxy and no environment but the CA bundle (SSL_CERT_FILE): see the module's doc.
        self._transport = transport or httpx.HTTPTransport(retries=0, trust_env=True)
        self._clock = clock
        self._cache = cache if cache is not None else FetchCache()
        self._bucket = TokenBucket(settings.per_minute, clock)
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the transport's connections."""
        self._transport.close()

    def facts(self, url: str, episode: str) -> tuple[Fact, ...]:
        """What fetching url from this host showed, or why it was not fetched; () when
        `fetch_urls` is off. Never raises for anything the URL or its server does."""
        if not self._settings.fetch_urls:
            return ()
        cached = self._cache.get(url, episode)
        if cached is not None:
            return cached
        with self._lock:
            cached = self._cache.get(url, episode)
            if cached is not None:
                return cached
            try:
                _check_url(url)
            except _Refused as refused:
                facts: tuple[Fact, ...] = (refused.fact,)
                self._cache.put(url, episode, facts)
                return facts
            if not self._bucket.take():
                # Not cached: the next update of the alert may find a token.
                return (
                    Fact(
                        KIND,
                        f"{_shown(url)} not fetched: the limit of {self._settings.per_minute} "
                        "fetches a minute (diagnose.per_minute) was reached",
                    ),
                )
            facts = self._fetch(url)
            self._cache.put(url, episode, facts)
            return facts

    def _fetch(self, url: str) -> tuple[Fact, ...]:
        started = self._clock()
        deadline = started + self._settings.timeout
        chain = [url]
        answer: _Answer | None = None
        method = "HEAD"
        try:
            for _hop in range(self._settings.max_redirects + 1):
                target = self._resolve(chain[-1], deadline)
                answer, location = self._ask(target, method, deadline)
                if answer.method == "GET":
                    method = "GET"  # HEAD was refused here: later hops are asked with GET
                if location is None:
                    break
                chain.append(location)
            else:
                return (
                    _chain_fact(chain),
                    Fact(
                        KIND,
                        f"{_shown(url)}: stopped after {self._settings.max_redirects} redirects "
                        "(diagnose.max_redirects)",
                    ),
                )
        except _Refused as refused:
            return (*_chain_facts(chain), refused.fact)
        elapsed_ms = round((self._clock() - started) * 1000)
        assert answer is not None
        return (*_chain_facts(chain), _answer_fact(chain[-1], answer, elapsed_ms))

    def _resolve(self, url: str, deadline: float) -> _Target:
        """url checked, its host resolved and every address checked; the one to connect to."""
        parts = _check_url(url)
        host = (parts.hostname or "").rstrip(".")
        try:
            ascii_host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise _Refused(f"{_shown(url)} not fetched: its host is not a valid name") from None
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise _Refused(f"{_shown(url)} not fetched: its port is not a number 0-65535") from None
        literal = parse_ip_literal(ascii_host)
        if literal is not None:
            # Named as the address it spells: "2130706433" is sent as Host 127.0.0.1.
            ascii_host = str(literal)
            addresses = [literal]
            said = f"the host is {literal}"
        else:
            addresses = self._addresses(url, ascii_host, port, deadline)
            shown = ", ".join(str(address) for address in addresses[:4])
            said = f"the host resolves to {shown}{', …' if len(addresses) > 4 else ''}"
        for address in addresses:
            reason = refusal(address)
            if reason is not None and not self._allow.allows(ascii_host, address):
                # OpenAI, on the public Internet, cannot reach it either: the rule's first fix.
                which = (
                    f"{said}, {reason}" if len(addresses) == 1 else f"{said}; {address} is {reason}"
                )
                raise _Refused(
                    f"{_shown(url)} not fetched: {which} (diagnose.allow_hosts lets it through)",
                    "supports",
                    (_PUBLIC,),
                )
        target = urlunsplit(("", "", parts.path or "/", parts.query, ""))
        return _Target(url, parts.scheme, ascii_host, port, addresses[0], target)

    def _addresses(self, url: str, host: str, port: int, deadline: float) -> list[IPAddress]:
        try:
            answers = self._lookup(host, port, deadline)
        except (OSError, UnicodeError) as exc:
            raise _Refused(
                f"{_shown(url)} could not be fetched from this host either: its name did not "
                f"resolve ({_os_words(exc)})",
                "supports",
                (_PUBLIC,),
            ) from None
        addresses: list[IPAddress] = []
        for answer in answers:
            address = parse_ip_literal(str(answer[4][0]))
            if address is not None and address not in addresses:
                addresses.append(address)
        if not addresses:
            raise _Refused(
                f"{_shown(url)} could not be fetched from this host either: its name has no "
                "address",
                "supports",
                (_PUBLIC,),
            )
        return addresses

    def _lookup(self, host: str, port: int, deadline: float) -> list[tuple[Any, ...]]:
        """The resolver's answers within the fetch's time. getaddrinfo has no timeout of its
        own, so it runs on a thread of its own, left to end by itself if the lookup hangs."""
        answers: list[tuple[Any, ...]] = []
        failed: list[BaseException] = []

        def lookup() -> None:
            try:
                answers.extend(self._resolver(host, port))
            except BaseException as exc:  # handed to the caller's thread, judged there
                failed.append(exc)

        thread = threading.Thread(target=lookup, name="oai400d-fetch-lookup", daemon=True)
        thread.start()
        thread.join(max(0.0, deadline - self._clock()))
        if thread.is_alive():
            raise TimeoutError(
                f"no answer within {format_duration(self._settings.timeout)}, diagnose.timeout"
            )
        if failed:
            raise failed[0]
        return answers

    def _ask(self, target: _Target, method: str, deadline: float) -> tuple[_Answer, str | None]:
        """One hop: HEAD (unless GET already), then a ranged GET when HEAD was refused or said
        too little. The answer, and where it redirects to (None: it does not)."""
        if method == "HEAD":
            answer, location = self._request(target, "HEAD", deadline)
            if location is not None or _head_is_enough(answer):
                return answer, location
        return self._request(target, "GET", deadline)

    def _request(self, target: _Target, method: str, deadline: float) -> tuple[_Answer, str | None]:
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise self._timed_out(target)
        address = f"[{target.address}]" if target.address.version == 6 else str(target.address)
        default_port = 443 if target.scheme == "https" else 80
        host = f"[{target.host}]" if ":" in target.host else target.host
        host_header = host if target.port == default_port else f"{host}:{target.port}"
        headers = {
            "Host": host_header,
            "User-Agent": USER_AGENT,
            "Accept": "image/*, */*;q=0.5",
            "Accept-Encoding": "identity",
            # No connection is reused: a pooled TLS connection is keyed by the address, and one
            # verified for another name at the same address must not carry this request.
            "Connection": "close",
        }
        if method == "GET":
            headers["Range"] = f"bytes=0-{min(RANGE_BYTES, self._settings.max_bytes) - 1}"
        try:
            request = httpx.Request(
                method,
                f"{target.scheme}://{address}:{target.port}{target.target}",
                headers=headers,
                extensions={
                    "timeout": dict.fromkeys(("connect", "read", "write", "pool"), remaining),
                    "sni_hostname": target.host,
                },
            )
            response = self._transport.handle_request(request)
            try:
                answer = self._read(response, method, deadline)
            finally:
                response.close()
        except httpx.TimeoutException:
            raise self._timed_out(target) from None
        except httpx.InvalidURL:  # characters no request line may carry
            raise _Refused(f"{_shown(target.url)} not fetched: the URL is malformed") from None
        except httpx.HTTPError as exc:
            raise _Refused(
                f"{_shown(target.url)} could not be fetched from this host either: "
                f"{_transport_words(exc)}",
                "supports",
                (_PUBLIC,),
            ) from None
        location = response.headers.get("location")
        if 300 <= response.status_code < 400 and location:
            return answer, urljoin(target.url, location)
        return answer, None

    def _read(self, response: httpx.Response, method: str, deadline: float) -> _Answer:
        """The answer's status, type and size; a GET's body streamed, at most max_bytes of it
        counted and none of it kept."""
        limit = self._settings.max_bytes
        read, complete = 0, method == "HEAD"
        if method == "GET":
            complete = True
            for chunk in response.iter_raw():
                read += len(chunk)
                if read > limit or self._clock() > deadline:
                    complete = False
                    break
            if not complete and read <= limit:
                raise httpx.ReadTimeout("the body did not end in time")
        size_bytes = _total_size(response)
        if size_bytes is not None:
            size = _format_size(size_bytes)
        elif method == "GET" and complete:
            size_bytes, size = read, _format_size(read)
        elif method == "GET":
            size = f"more than {_format_size(limit)} (diagnose.max_bytes)"
        else:
            size = "size not given"
        content_type = response.headers.get("content-type")
        if content_type:
            content_type = content_type.split(";", 1)[0].strip().lower()[:80]
        return _Answer(method, response.status_code, content_type or None, size, size_bytes)

    def _timed_out(self, target: _Target) -> _Refused:
        return _Refused(
            f"{_shown(target.url)} could not be fetched from this host either: no complete "
            f"answer within {format_duration(self._settings.timeout)} (diagnose.timeout)",
            "supports",
            (_PUBLIC,),
        )


def _check_url(url: str) -> SplitResult:
    """The URL's parts when its scheme and form are fetchable at all (before any lookup)."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 (urlsplit checks the port only when asked)
    except ValueError:
        raise _Refused(f"{_shown(url)} not fetched: the URL is malformed") from None
    if parts.scheme.lower() not in ("http", "https"):
        scheme = f"{parts.scheme} is" if parts.scheme else "it has no scheme,"
        raise _Refused(f"{_shown(url)} not fetched: {scheme} not http or https")
    if not parts.hostname:
        raise _Refused(f"{_shown(url)} not fetched: the URL has no host")
    if "@" in parts.netloc:
        raise _Refused(
            f"{_shown(url)} not fetched: the URL carries credentials (user:password@), which "
            "this check never sends"
        )
    if "[REDACTED" in url or "…" in url:
        # The log text reaches us masked (masking.redact): a presigned URL without its
        # signature would only be refused, a false "refused here too".
        raise _Refused(
            f"{_shown(url)} not fetched: part of it (a signature or a key) is masked in what "
            "oai400d keeps, and without it the server could only refuse"
        )
    return parts._replace(scheme=parts.scheme.lower())


def _head_is_enough(answer: _Answer) -> bool:
    """A HEAD answer that tells type and size; anything else is asked again with GET (a
    presigned URL is signed for GET and refuses HEAD with a 403, some servers answer 405)."""
    return (
        200 <= answer.status < 300 and bool(answer.content_type) and answer.size_bytes is not None
    )


def _total_size(response: httpx.Response) -> int | None:
    """The resource's size: Content-Range's total on a 206, else Content-Length."""
    if response.status_code == 206:
        total = response.headers.get("content-range", "").rpartition("/")[2].strip()
        return int(total) if total.isdigit() else None
    length = response.headers.get("content-length", "").strip()
    return int(length) if length.isdigit() else None


def _answer_fact(url: str, answer: _Answer, elapsed_ms: int) -> Fact:
    """The fetch's outcome, and how it bears on "the URL is not a reachable image"."""
    status = f"{answer.status}{' (partial)' if answer.status == 206 else ''}"
    content_type = answer.content_type or "no content type"
    text = (
        f"{_shown(url)} fetched from this host ({answer.method}): {status}, {content_type}, "
        f"{answer.size}, in {elapsed_ms} ms"
    )
    is_image = (answer.content_type or "").startswith("image/")
    if answer.status in (401, 403):
        return Fact(
            KIND,
            f"{text}: refused here too (an expired link, a login or bot protection)",
            "supports",
            (_IMAGE_ITSELF, _PRESIGNED),
        )
    if answer.status >= 400:
        return Fact(KIND, f"{text}: no image here either", "supports", (_IMAGE_ITSELF,))
    if 300 <= answer.status < 400:
        return Fact(KIND, f"{text}: a redirect without a Location", "supports", (_IMAGE_ITSELF,))
    if answer.content_type and not is_image:
        return Fact(
            KIND,
            f"{text}: not an image (OpenAI needs an image/* answer)",
            "supports",
            (_IMAGE_ITSELF,),
        )
    if answer.size_bytes is not None and answer.size_bytes > LARGE_IMAGE:
        return Fact(KIND, f"{text}: a large download for OpenAI's fetch", "supports", (_AVOID,))
    if is_image:
        # Reachable, and an image: not "unreachable from anywhere". What is left is OpenAI's
        # side (its fetch timed out, its addresses are blocked) or a link that expired since.
        return Fact(
            KIND,
            f"{text}: an image, reachable from here (so the link expired since, or OpenAI's "
            "fetch failed on its side)",
            "rules_out",
            (_PRESIGNED, _AVOID),
            (_IMAGE_ITSELF,),
        )
    return Fact(KIND, text)


def _chain_facts(chain: list[str]) -> tuple[Fact, ...]:
    return (_chain_fact(chain),) if len(chain) > 1 else ()


def _chain_fact(chain: list[str]) -> Fact:
    hops = len(chain) - 1
    return Fact(
        KIND,
        f"Redirected {hops} time{'s' if hops != 1 else ''}: "
        + " → ".join(_shown(url) for url in chain),
    )


def _shown(url: str) -> str:
    """The URL as a fact may show it: no user:password, query or fragment, masked, short."""
    try:
        shown = public_url(url.strip())
    except ValueError:
        shown = "the URL"
    # A log line's bytes: control characters never reach a message.
    shown = "".join(char if char.isprintable() else "?" for char in redact(shown)) or "the URL"
    return shown if len(shown) <= _SHOWN_URL_MAX else shown[: _SHOWN_URL_MAX - 1] + "…"


def _format_size(size: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def _os_words(exc: BaseException) -> str:
    return str(exc.args[-1]) if exc.args else type(exc).__name__


def _transport_words(exc: httpx.HTTPError) -> str:
    """A transport failure in words: the innermost cause (the OS's or TLS's own message)."""
    current: BaseException = exc
    seen: set[int] = set()
    while (current.__cause__ or current.__context__) is not None and id(current) not in seen:
        seen.add(id(current))
        current = current.__cause__ or current.__context__  # type: ignore[assignment]
    words = str(current) or type(current).__name__
    if isinstance(exc, httpx.ConnectError):
        return f"could not connect ({redact(words)[:160]})"
    return f"the connection failed ({redact(words)[:160]})"
