"""Image hosts OpenAI's servers can never reach: literal private, loopback, link-local (cloud
metadata), multicast or reserved addresses, in any form a URL reader accepts (IPv6, `127.1`,
decimal `2130706433`, octal `0177.0.0.1`, hex `0x7f000001`: facts.addresses, which the guarded
fetch uses too, reads them), and local-only names (`localhost`, `*.local`, `*.internal`…).

No name is resolved: a public-looking name gives no fact (where it points is for the opt-in
fetch to find out, from this host).
"""

from __future__ import annotations

from urllib.parse import SplitResult

from oai400d.facts.addresses import parse_ip_literal, refusal
from oai400d.model import Fact

KIND = "private_host"

# Words of invalid_image_url's first fix ("it must be public (no localhost, VPN or private IP…").
_PUBLIC_FIX = ("must be public",)
# Names that only resolve inside a host or a private network (RFC 6761, 6762, 8375; `.internal`
# is ICANN's reserved private TLD and the clouds' internal DNS zone).
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa", ".lan")


def host_fact(parts: SplitResult) -> Fact | None:
    """The fact about the URL's host: unreachable from OpenAI, or (a literal public address)
    not private; None for a name, which is not resolved here."""
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        return None
    if host == "localhost" or host.endswith(_LOCAL_SUFFIXES):
        return Fact(
            KIND,
            f"The image host {host} is a local name: OpenAI's servers can never reach it.",
            "supports",
            prefer=_PUBLIC_FIX,
        )
    address = parse_ip_literal(host)
    if address is None:
        return None
    # As the URL writes it, with the address it stands for when that reads otherwise (2130706433
    # is 127.0.0.1).
    shown = f"[{host}]" if ":" in host else host
    if address.version == 4 and str(address) != host:
        shown += f" ({address})"
    reason = refusal(address)
    if reason:
        return Fact(
            KIND,
            f"The image host {shown} is {reason}: OpenAI's servers can never reach it.",
            "supports",
            prefer=_PUBLIC_FIX,
        )
    return Fact(
        KIND,
        f"The image host {shown} is a public address, not a private one.",
        "rules_out",
    )
