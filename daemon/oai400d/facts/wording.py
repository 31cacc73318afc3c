"""How facts say durations, sizes and URLs: one wording for every fact kind."""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit

from oai400d.masking import redact

# A URL in an error message ends at whitespace, a quote or a bracket (an IPv6 host's brackets
# are its own); JSON's escaped `&` (`\u0026`) and HTML's `&amp;` are undone first so the query
# reads as it was sent.
_URL = re.compile(
    r"""https?://(?:\[[0-9A-Fa-f:.]+\])?[^\s"'<>\\`)\]}]*"""
    r"|data:[a-z]+/[A-Za-z0-9.+-]+;base64,[A-Za-z0-9+/=]+"
)
_ESCAPED_AMPERSAND = re.compile(r"\\u0026|&amp;")


def urls_in(text: str) -> list[str]:
    """Every http(s) or base64 data URL in the text, in order, without trailing punctuation."""
    if "://" not in text and "data:" not in text:
        return []
    unescaped = _ESCAPED_AMPERSAND.sub("&", text)
    return [match.group(0).rstrip(".,;:") for match in _URL.finditer(unescaped)]


def split(url: str) -> SplitResult | None:
    """The URL's parts, or None for one urllib cannot read (a bad port, a broken IPv6 host)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port that is no number)
    except ValueError:
        return None
    return parts


def shown(parts: SplitResult) -> str:
    """The URL as a fact shows it: host and path only. The query (where signatures and
    credentials are) and any user:password@ never appear; the rest is masked as log text is."""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    path = parts.path
    if len(path) > 60:  # the file's name is what a person recognises; the folders can go
        name = path.rsplit("/", 1)[-1]
        path = "/…/" + (name if len(name) <= 48 else "…" + name[-47:])
    return redact(f"{host}{path}")


def span(seconds: float) -> str:
    """A duration as a person says it: 45 s, 12 min, 3 h, 4 days."""
    seconds = abs(seconds)
    if seconds < 120:
        return f"{round(seconds)} s"
    if seconds < 120 * 60:
        return f"{round(seconds / 60)} min"
    if seconds < 48 * 3600:
        return f"{round(seconds / 3600)} h"
    return f"{round(seconds / 86400)} days"


def size(count: float) -> str:
    """A size in bytes as a person reads it: 512 bytes, 38 KB, 21.4 MB (decimal units, as
    OpenAI's limits are written)."""
    if count < 1000:
        return f"{int(count)} bytes"
    if count < 1_000_000:
        return f"{count / 1000:.0f} KB"
    return f"{count / 1_000_000:.1f} MB"


def number(value: int) -> str:
    """An integer with thousands separators: 131,072."""
    return f"{value:,}"


def percent(part: float, whole: float) -> str:
    """part as a percentage of whole: one decimal when small (2.4 %), whole numbers from 3 % (3 %,
    12 %): the precision a person needs to judge how far over a limit is."""
    if whole <= 0:
        return "?"
    share = 100 * part / whole
    return f"{share:.1f} %" if share < 3 else f"{share:.0f} %"
