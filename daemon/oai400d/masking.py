"""Every way a secret is hidden before text leaves the daemon, in one place.

`redact` finds secret-shaped values in text that came from elsewhere (log lines, API answers)
and keeps their last 4 characters; `redact_values` does it to every string of a JSON document;
`mask_secret` shows a configured secret the same way; `mask_dsn` keeps a database URL readable
but hides its password; `mask_key` and `scrub` hide the configured OpenAI key (and anything
shaped like a key) in what the probes show. Alerts, logs, command output, metrics and the state
DB only ever see text that went through one of these.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit


@dataclass(frozen=True)
class _Shape:
    """One shape of secret: where to look for it, and what is shown in its place.

    `redact` runs on every finding's excerpt and every log record, so cheap checks come first
    and most texts skip every regex. The pattern's group "secret" is replaced; what stays
    around it keeps the text readable.
    """

    pattern: re.Pattern[str]
    # Lower-case literals one of which every text holding the shape holds.
    needs: tuple[str, ...]
    # Coarser literals, one of which must be there before the `needs` are looked for.
    gates: tuple[str, ...] = ()
    # The pattern starts with one of `needs`, and is tried only where they are: a
    # case-insensitive alternation scanned through costs some 200 µs on 4 KB (and `api-keys`
    # is in the URL of every 401).
    anchored: bool = False
    # The pattern starts with a case-sensitive literal (`AKIA`, `ghp_`) that the regex engine
    # finds as fast as `in` would: no need to look for `needs` first. (Never a `\b` in front:
    # that makes it try every position; a look-behind after the literal instead.)
    literal_first: bool = False
    # Shown instead of the secret; "" shows its kind (group "kind", else sk- or xox) and the
    # last 4 characters when the secret is long enough to spare them.
    shown: str = ""

    def wanted(self, lowered: str) -> bool:
        """Whether the text may hold this shape (a no is certain; a yes runs the regex)."""
        if self.literal_first:
            return True
        if self.gates and not any(gate in lowered for gate in self.gates):
            return False
        return any(need in lowered for need in self.needs)

    def find(self, text: str, lowered: str) -> list[re.Match[str]]:
        """The shape's matches in text, left to right, not overlapping."""
        if not self.anchored or len(lowered) != len(text):  # (a few letters lower to two)
            return list(self.pattern.finditer(text))
        starts = sorted({at for need in self.needs for at in _occurrences(lowered, need)})
        matches: list[re.Match[str]] = []
        for start in starts:
            if matches and start < matches[-1].end():
                continue
            match = self.pattern.match(text, start)
            if match is not None:
                matches.append(match)
        return matches

    def mask(self, match: re.Match[str]) -> str:
        """The whole match with its secret replaced."""
        secret = match.group("secret")
        start, end = match.span("secret")
        if self.shown:
            replacement = self.shown
        else:
            tail = secret[-4:] if len(secret) > 12 and "*" not in secret[-4:] else ""
            kind = match.group("kind") if "kind" in match.re.groupindex else _kind_of(secret)
            replacement = (
                f"{kind}…{tail}" if kind else f"[REDACTED…{tail}]" if tail else "[REDACTED]"
            )
        whole = match.group(0)
        offset = match.start(0)
        return whole[: start - offset] + replacement + whole[end - offset :]


def _occurrences(text: str, literal: str) -> list[int]:
    found = []
    at = text.find(literal)
    while at != -1:
        found.append(at)
        at = text.find(literal, at + 1)
    return found


def _kind_of(secret: str) -> str:
    """OpenAI keys and Slack tokens keep their family's prefix, wherever they were found."""
    return "sk-" if secret.startswith("sk-") else "xox" if secret.startswith("xox") else ""


# Characters of the token families below; a token ends where they end.
_TOKEN_END = r"(?![A-Za-z0-9_-])"

_SHAPES: tuple[_Shape, ...] = (
    # OpenAI keys: sk-…, sk-proj-…, sk-svcacct-…, sk-admin-…, also the API's own masked echo;
    # Anthropic's sk-ant-api03-… is of the same shape.
    _Shape(
        re.compile(r"(?P<secret>\bsk-(?:[A-Za-z]+-)?[A-Za-z0-9_*\-]{8,})"),
        ("sk-",),
        anchored=True,
    ),
    # Slack tokens: xoxb-, xoxp-, xoxa-, xoxr-, xoxs-, xoxe(.xoxp)-…
    _Shape(
        re.compile(r"(?P<secret>\bxox[a-z](?:\.xox[a-z])?-[A-Za-z0-9-]{6,})"),
        ("xox",),
        anchored=True,
    ),
    # Slack incoming webhooks.
    _Shape(
        re.compile(r"(?P<secret>https?://hooks\.slack(?:-gov)?\.com/[A-Za-z0-9/_-]+)"),
        ("hooks.slack",),
        shown="https://hooks.slack.com/[REDACTED]",
    ),
    # Authorization headers, whatever the scheme's token looks like.
    _Shape(
        re.compile(r"(?i)\b(?:bearer|basic)\s+(?P<secret>[A-Za-z0-9._~+/=\-]{8,})"),
        ("bearer", "basic"),
        anchored=True,
    ),
    # Azure's api-key header and key=value / "key": "value" forms.
    _Shape(
        re.compile(
            r"""(?ix)(?:api[-_]?key|subscription[-_]key|access[-_]token|client[-_]secret)
            ["']?\s*[:=]\s*["']?(?P<secret>[A-Za-z0-9._~+/=\-]{8,})"""
        ),
        (
            "api-key",
            "api_key",
            "apikey",
            "subscription-key",
            "subscription_key",
            "access-token",
            "access_token",
            "client-secret",
            "client_secret",
        ),
        ("key", "token", "secret"),
        anchored=True,
    ),
    # Slack app-level tokens (Socket Mode): xapp-1-A0…-…
    _Shape(
        re.compile(r"(?P<secret>(?P<kind>xapp-)(?<![A-Za-z0-9_]xapp-)\d-[A-Za-z0-9-]{10,})"),
        ("xapp-",),
        literal_first=True,
    ),
    # AWS access key ids: long-term AKIA…, temporary ASIA….
    _Shape(
        re.compile(
            r"(?P<secret>(?P<kind>A(?:KIA|SIA))(?<![A-Za-z0-9_]A[KS]IA)[A-Z0-9]{16}"
            + _TOKEN_END
            + ")"
        ),
        ("akia", "asia"),
        literal_first=True,
    ),
    # AWS secret access keys, as the CLI's files, the environment and STS's JSON name them.
    _Shape(
        re.compile(
            r"""(?i)secret[-_]?access[-_]?key["']?\s*[:=]\s*["']?"""
            r"(?P<secret>[A-Za-z0-9/+=]{16,})"
        ),
        ("secretaccesskey", "secret_access_key", "secret-access-key"),
        ("secret",),
        anchored=True,
    ),
    # Bare JWTs (three base64url parts, the header's JSON `{"` making it start with eyJ).
    _Shape(
        re.compile(
            r"(?P<secret>eyJ(?<![A-Za-z0-9_-]eyJ)"
            r"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*)"
        ),
        ("eyj",),
        literal_first=True,
    ),
    # Passwords in URLs: scheme://user:password@host (the user stays, as mask_dsn keeps it).
    _Shape(re.compile(r"://[^\s:/@?#]*:(?P<secret>[^\s@/?#]+)@"), ("@",), shown="…"),
    # GitHub tokens: ghp_ (classic), gho_ (OAuth), ghu_ / ghs_ (apps), ghr_ (refresh), and
    # fine-grained github_pat_….
    _Shape(
        re.compile(r"(?P<secret>(?P<kind>gh[pousr]_)(?<![A-Za-z0-9_]gh._)[A-Za-z0-9]{30,})"),
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
        literal_first=True,
    ),
    _Shape(
        re.compile(
            r"(?P<secret>(?P<kind>github_pat_)(?<![A-Za-z0-9_]github_pat_)[A-Za-z0-9_]{30,})"
        ),
        ("github_pat_",),
        literal_first=True,
    ),
    # Google API keys.
    _Shape(
        re.compile(r"(?P<secret>(?P<kind>AIza)(?<![A-Za-z0-9_-]AIza)[A-Za-z0-9_-]{30,})"),
        ("aiza",),
        literal_first=True,
    ),
    # Hugging Face access tokens.
    _Shape(
        re.compile(r"(?P<secret>(?P<kind>hf_)(?<![A-Za-z0-9_]hf_)[A-Za-z0-9]{30,})"),
        ("hf_",),
        literal_first=True,
    ),
    # Stripe secret and restricted keys (live and test).
    _Shape(
        re.compile(
            r"(?P<secret>(?P<kind>sk_(?:live|test)_)(?<![A-Za-z0-9_]sk_...._)[A-Za-z0-9]{16,})"
        ),
        ("sk_live_", "sk_test_"),
        literal_first=True,
    ),
    _Shape(
        re.compile(
            r"(?P<secret>(?P<kind>rk_(?:live|test)_)(?<![A-Za-z0-9_]rk_...._)[A-Za-z0-9]{16,})"
        ),
        ("rk_live_", "rk_test_"),
        literal_first=True,
    ),
    # Presigned URLs' signatures and session tokens (S3 SigV4 and SigV2, GCS, Azure SAS,
    # CloudFront): whoever holds the whole URL reads the object until it expires. Its expiry
    # parameters stay, for the facts (facts/presigned.py).
    _Shape(
        re.compile(
            r"(?i)[?&](?:x-amz-signature|x-amz-security-token|x-goog-signature|signature|sig)="
            r"(?P<secret>[^&\s\"'#<>]{8,})"
        ),
        ("signature=", "security-token=", "sig="),
        shown="[REDACTED]",
    ),
    # PEM private-key blocks, the body up to the END line (or the text's end, or a quote that
    # closes the string it was logged in: a JSON or Python literal with `\n` escapes).
    _Shape(
        re.compile(
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----"
            r"(?P<secret>[^\"'\-]+(?:-(?!----)[^\"'\-]*)*)"
            r"(?:-----END [A-Z0-9 ]*PRIVATE KEY-----)?"
        ),
        ("-----begin",),
        literal_first=True,
        shown="[REDACTED]",
    ),
)

# Every literal some shape needs, in one pattern: on a short text (a field, a log record, a
# label) one scan costs less than a check per shape, and most short texts hold none of them.
_SCREEN = re.compile("|".join(re.escape(need) for shape in _SHAPES for need in shape.needs))
_SHORT = 256

# JSON's escapes (and the same in Python and JavaScript literals): a key written as
# `sk\u002dproj-…`, a URL as `https:\/\/hooks.slack.com\/…`, or a token after a `\n` would
# slip past the shapes above, which see the backslash; they are matched on the decoded text.
_ESCAPE = re.compile(r"\\(?:u[0-9a-fA-F]{4}|[\"\\/bfnrt])")
_UNESCAPED = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def redact(text: str) -> str:
    """Replace every secret-shaped value in text; `sk-proj-abc…a1B2` becomes `sk-…a1B2`.

    Shapes are matched on the text with its escapes decoded, and each secret is replaced,
    escapes and all, in the original; the rest keeps its escapes as they were.
    """
    decoded = _decode(text)
    lowered = decoded.text.lower()
    if len(lowered) < _SHORT and _SCREEN.search(lowered) is None:
        return text
    for shape in _SHAPES:
        if not shape.wanted(lowered):
            continue
        matches = shape.find(decoded.text, lowered)
        if not matches:
            continue
        pieces: list[str] = []
        done = 0
        for match in matches:
            start, end = decoded.origin(match.start()), decoded.origin(match.end())
            pieces += [text[done:start], shape.mask(match)]
            done = end
        text = "".join([*pieces, text[done:]])
        decoded = _decode(text)
        lowered = decoded.text.lower()
    return text


@dataclass(frozen=True)
class _Decoded:
    """A text with its escapes decoded, and where each decoded character came from."""

    text: str
    at: list[int]  # the decoded index of each escape's character, in order
    spans: list[tuple[int, int]]  # each escape's start and end in the original text

    def origin(self, index: int) -> int:
        """Where the decoded character at index starts in the original (or its end)."""
        k = bisect_right(self.at, index) - 1
        if k < 0:
            return index
        start, end = self.spans[k]
        return start if self.at[k] == index else end + (index - self.at[k] - 1)


def _decode(text: str) -> _Decoded:
    if "\\" not in text:
        return _Decoded(text, [], [])
    pieces: list[str] = []
    at: list[int] = []
    spans: list[tuple[int, int]] = []
    done = 0  # original characters consumed
    size = 0  # decoded characters produced
    for escape in _ESCAPE.finditer(text):
        plain = text[done : escape.start()]
        token = escape.group(0)
        char = chr(int(token[2:], 16)) if token[1] == "u" else _UNESCAPED.get(token[1], token[1])
        pieces += [plain, char]
        size += len(plain)
        at.append(size)
        spans.append(escape.span())
        size += 1
        done = escape.end()
    pieces.append(text[done:])
    return _Decoded("".join(pieces), at, spans)


def redact_values(value: Any) -> Any:
    """A JSON document (dicts, lists, scalars) with every string in it redacted: for the
    `--json` outputs, so a document stays valid whatever was masked in it."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_values(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_values(item) for item in value]
    return value


def mask_secret(value: str) -> str:
    """Show only enough of a secret to tell two apart: the last 4 characters."""
    return f"…{value[-4:]}" if len(value) > 8 else "…"


def public_url(url: str) -> str:
    """The URL without user:password or query (either may carry a secret), or fragment."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


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
