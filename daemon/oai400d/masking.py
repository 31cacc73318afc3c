"""Every way a secret is hidden before text leaves the daemon, in one place.

`redact` finds secret-shaped values in text that came from elsewhere (log lines, API answers)
and keeps their last 4 characters; `mask_secret` shows a configured secret the same way;
`mask_dsn` keeps a database URL readable but hides its password; `mask_key` and `scrub` hide
the configured OpenAI key (and anything shaped like a key) in what the probes show. Alerts,
logs, command output and the state DB only ever see text that went through one of these.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

# Each pattern's group "secret" is replaced; what stays around it keeps the text readable.
# With each, the lower-cased literals one of which it needs: most texts skip every regex.
_PATTERNS: tuple[tuple[tuple[str, ...], re.Pattern[str]], ...] = (
    # OpenAI keys: sk-…, sk-proj-…, sk-svcacct-…, sk-admin-…, also the API's own masked echo.
    (("sk-",), re.compile(r"(?P<secret>\bsk-(?:[A-Za-z]+-)?[A-Za-z0-9_*\-]{8,})")),
    # Slack tokens: xoxb-, xoxp-, xoxa-, xoxr-, xoxs-, xoxe(.xoxp)-…
    (("xox",), re.compile(r"(?P<secret>\bxox[a-z](?:\.xox[a-z])?-[A-Za-z0-9-]{6,})")),
    # Slack incoming webhooks.
    (
        ("hooks.slack",),
        re.compile(r"(?P<secret>https?://hooks\.slack(?:-gov)?\.com/[A-Za-z0-9/_-]+)"),
    ),
    # Authorization headers, whatever the scheme's token looks like.
    (
        ("bearer", "basic"),
        re.compile(r"(?i)\b(?:bearer|basic)\s+(?P<secret>[A-Za-z0-9._~+/=\-]{8,})"),
    ),
    # Azure's api-key header and key=value / "key": "value" forms.
    (
        ("key", "token", "secret"),
        re.compile(
            r"""(?ix)(?:api[-_]?key|subscription[-_]key|x-api-key|access[-_]token|client[-_]secret)
            ["']?\s*[:=]\s*["']?(?P<secret>[A-Za-z0-9._~+/=\-]{8,})"""
        ),
    ),
)


def _mask(match: re.Match[str]) -> str:
    secret = match.group("secret")
    start, end = match.span("secret")
    tail = secret[-4:] if len(secret) > 12 and "*" not in secret[-4:] else ""
    kind = "sk-" if secret.startswith("sk-") else "xox" if secret.startswith("xox") else ""
    replacement = f"{kind}…{tail}" if kind else f"[REDACTED…{tail}]" if tail else "[REDACTED]"
    if secret.startswith("http"):
        replacement = "https://hooks.slack.com/[REDACTED]"
    whole = match.group(0)
    offset = match.start(0)
    return whole[: start - offset] + replacement + whole[end - offset :]


def redact(text: str) -> str:
    """Replace every secret-shaped value in text; `sk-proj-abc…a1B2` becomes `sk-…a1B2`."""
    lowered = text.lower()
    for literals, pattern in _PATTERNS:
        if any(literal in lowered for literal in literals):
            text = pattern.sub(_mask, text)
    return text


def mask_secret(value: str) -> str:
    """Show only enough of a secret to tell two apart: the last 4 characters."""
    return f"…{value[-4:]}" if len(value) > 8 else "…"


def mask_dsn(value: str) -> str:
    """A DSN with its password (and any password= parameter) masked, the rest kept readable."""
    try:
        parts = urlsplit(value)
        netloc = parts.netloc
        if parts.password is not None:
            user = parts.username or ""
            netloc = f"{user}:…@{parts.netloc.rsplit('@', 1)[1]}"
        query = "&".join(
            "password=…" if item.lower().startswith("password=") else item
            for item in parts.query.split("&")
            if item
        )
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return mask_secret(value)


# Keys quoted by text from elsewhere (an API's answer, an exception), whatever else is around.
_KEYLIKE = re.compile(r"\b(sk-|rk-|sess-)[A-Za-z0-9_*\-]{4,}")


def mask_key(key: str) -> str:
    """A key as a person may see it: `sk-…abcd` at most."""
    if key.startswith("sk-") and len(key) > 12:
        return f"sk-…{key[-4:]}"
    return mask_secret(key)


def scrub(text: str, key: str | None) -> str:
    """Remove the key, and anything that looks like one, from text that came from elsewhere."""
    if key:
        text = text.replace(key, mask_key(key))
    return _KEYLIKE.sub(lambda m: f"{m.group(1)}…{m.group(0)[-4:]}", text)
