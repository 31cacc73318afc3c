"""Which addresses a guarded fetch may connect to: IP literals as a browser or curl reads them,
the kinds of address that are never fetched, and `[diagnose] allow_hosts`.

A URL from a log line is untrusted: fetching it from this host must not reach this host's own
services, its private network or a cloud's metadata endpoint (server-side request forgery).
The check is on the addresses a host resolves to, every one of them, so a name pointing at
10.0.0.5 is refused like the literal, and the connection is then made to the address checked
(facts/fetch.py pins it), so a second resolution cannot swap it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Cloud metadata endpoints, named as such in a refusal (most are link-local or private anyway):
# AWS, GCP, Azure, OpenStack and DigitalOcean (169.254.169.254), AWS over IPv6
# (fd00:ec2::254), Alibaba (100.100.100.200), Oracle (192.0.0.192), AWS ECS task metadata
# (169.254.170.2).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(text)
    for text in (
        "169.254.169.254",
        "169.254.170.2",
        "fd00:ec2::254",
        "100.100.100.200",
        "192.0.0.192",
    )
)

# One part of an IPv4 literal as inet_aton reads it: decimal, 0x hex, or 0-led octal.
_IPV4_PART = re.compile(r"^(?:0x[0-9a-f]*|0[0-7]*|[1-9][0-9]*)$")


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address a URL's host stands for when it is an IP literal, else None (a name).

    IPv4 is read as inet_aton (and so curl, browsers, and the C library behind a fetch) reads
    it, so "2130706433", "0177.0.0.1", "0x7f.1" and "127.1" are all 127.0.0.1: a check on the
    dotted-quad form alone would let them through. IPv6 comes without brackets (urlsplit's
    hostname); a zone ("fe80::1%eth0") is dropped, the address is what is checked.
    """
    text = host.strip().lower().rstrip(".")
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text.split("%", 1)[0])
        except ValueError:
            return None
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or not all(_IPV4_PART.match(part) for part in parts):
        return None
    numbers = [_ipv4_part(part) for part in parts]
    # The last part fills the bytes the others leave: "127.1" is 127.0.0.1, "2130706433" all four.
    head, last = numbers[:-1], numbers[-1]
    if any(not 0 <= number <= 255 for number in head) or not 0 <= last < 256 ** (4 - len(head)):
        return None
    value = 0
    for number in head:
        value = value << 8 | number
    return ipaddress.IPv4Address(value << 8 * (4 - len(head)) | last)


def _ipv4_part(part: str) -> int:
    """One part's value (-1 for a bare "0x", which no reader takes as a number)."""
    if part.startswith("0x"):
        return int(part[2:], 16) if len(part) > 2 else -1
    if part.startswith("0") and len(part) > 1:
        return int(part, 8)
    return int(part)


def refusal(address: IPAddress) -> str | None:
    """Why a fetch must not connect to address ("a private address"), or None when it is a
    public one. IPv4 inside IPv6 (mapped ::ffff:a.b.c.d, 6to4, NAT64) is judged as the IPv4
    address it carries, as a dual-stack socket would reach it."""
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            reason = refusal(inner)
            return f"{reason} (as {inner} inside IPv6)" if reason else None
    for reason, matches in (
        ("a loopback address", address.is_loopback),
        ("a link-local address", address.is_link_local),
        ("an unspecified address", address.is_unspecified),
        ("a multicast address", address.is_multicast),
        ("a private address", address.is_private),
        ("a reserved address", address.is_reserved),
    ):
        if matches:
            return reason
    # What is left and still not global: shared address space (100.64.0.0/10, carrier NAT),
    # documentation and benchmarking ranges. None of it is the public Internet OpenAI fetches from.
    return None if address.is_global else "not a public address"


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


@dataclass(frozen=True, slots=True)
class AllowList:
    """`[diagnose] allow_hosts`: host names (exact, case-insensitive) and IP networks that the
    guard lets through although their addresses are private."""

    names: frozenset[str]
    networks: tuple[IPNetwork, ...]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        """From the config's entries (already checked by config/settings.py)."""
        names: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in entries:
            text = entry.strip().lower().rstrip(".")
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                names.add(text)
        return cls(frozenset(names), tuple(networks))

    def allows(self, host: str, address: IPAddress) -> bool:
        """Whether host (as the URL names it) or the address it resolved to is listed."""
        if host.lower().rstrip(".") in self.names:
            return True
        inner = _embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
        return any(
            candidate.version == network.version and candidate in network
            for network in self.networks
            for candidate in (address, inner)
            if candidate is not None
        )
