"""The secret keys: where each value comes from, what a secret looks like, and hiding it.

A value is never shown whole: a misplaced token is named by its kind and last 4 characters,
a URL by everything but its password.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from oai400d.masking import mask_dsn, redact

SECRET_SOURCES: dict[tuple[str, str], tuple[str, str]] = {
    ("openai", "api_key"): ("OPENAI_API_KEY", "openai-api-key"),
    ("slack", "bot_token"): ("SLACK_BOT_TOKEN", "slack-bot-token"),
    ("slack", "webhook_url"): ("SLACK_WEBHOOK_URL", "slack-webhook-url"),
    ("slack", "app_token"): ("SLACK_APP_TOKEN", "slack-app-token"),
    ("state", "fleet"): ("OAI400D_FLEET_DSN", "fleet-dsn"),
}


# Each secret's environment variable, by its dotted key (for messages).
_VARIABLES = {f"{section}.{key}": var for (section, key), (var, _) in SECRET_SOURCES.items()}


@dataclass(frozen=True)
class Secret:
    """A secret's value as resolved, and where it came from (for messages that never show it)."""

    key: str  # "openai.api_key"
    value: str
    origin: str = ""  # "" (the config file), "OPENAI_API_KEY", "the openai-api-key credential"

    @property
    def where(self) -> str:
        return f"{self.key} (from {self.origin})" if self.origin else self.key


def gather_secrets(
    raw: Mapping[str, Any], env: Mapping[str, str], problems: list[str], warnings: list[str]
) -> dict[tuple[str, str], Secret]:
    """Each secret's value: the config's, else its environment variable, else its credential.

    Whitespace around a value is stripped: a key pasted with its newline fails every request
    with a message about the header, not the key. A credential file's one final newline is
    normal (`echo key > file`) and stripped silently; anything more is said.
    """
    found: dict[tuple[str, str], Secret] = {}
    for (section, key), (variable, credential) in SECRET_SOURCES.items():
        dotted = f"{section}.{key}"
        table = raw.get(section)
        if isinstance(table, Mapping) and key in table:
            value = table[key]
            if isinstance(value, str):  # anything else is the type check's to report
                found[(section, key)] = _stripped(Secret(dotted, value), warnings)
            continue
        if env.get(variable, "").strip():
            found[(section, key)] = _stripped(Secret(dotted, env[variable], variable), warnings)
            continue
        if not env.get("CREDENTIALS_DIRECTORY"):
            continue
        path = Path(env["CREDENTIALS_DIRECTORY"]) / credential
        try:
            text = path.read_text(encoding="utf-8").removesuffix("\n")
        except FileNotFoundError:
            continue
        except OSError as exc:
            problems.append(f"{dotted}: credential {path} cannot be read: {exc.strerror}")
            continue
        if text.strip():
            origin = f"the {credential} credential"
            found[(section, key)] = _stripped(Secret(dotted, text, origin), warnings)
    return found


def _stripped(secret: Secret, warnings: list[str]) -> Secret:
    value = secret.value.strip()
    if value != secret.value:
        place = secret.origin or "the config file"
        warnings.append(
            f"{secret.where}: had spaces or a line break around it, which were stripped; remove "
            f"them from {place} (the value is a secret and is not shown)"
        )
    return Secret(secret.key, value, secret.origin)


def with_secrets(raw: Mapping[str, Any], secrets: dict[tuple[str, str], Secret]) -> dict[str, Any]:
    """The document with each secret's resolved value in its place (a wrong section is left)."""
    filled = dict(raw)
    for (section, key), secret in secrets.items():
        table = filled.get(section, {})
        if isinstance(table, Mapping):
            filled[section] = {**table, key: secret.value}
    return filled


@dataclass(frozen=True)
class _Shape:
    """A kind of secret known by its look, and the key it belongs in (None: no key takes it)."""

    kind: str  # "a Slack bot token"
    shown: str  # what stays of it in a message, before its last 4 characters
    pattern: re.Pattern[str]  # the whole value
    home: str | None


# First match wins: the specific Slack tokens before the catch-all.
_SHAPES = (
    _Shape(
        "a Slack incoming webhook URL",
        "https://hooks.slack.com/",
        re.compile(r"https?://hooks\.slack(?:-gov)?\.com/\S+"),
        "slack.webhook_url",
    ),
    _Shape("a Slack bot token", "xoxb-", re.compile(r"xoxb-[A-Za-z0-9-]{6,}"), "slack.bot_token"),
    _Shape("a Slack user token", "xoxp-", re.compile(r"xoxp-[A-Za-z0-9-]{6,}"), None),
    _Shape(
        "a Slack app-level token", "xapp-", re.compile(r"xapp-[A-Za-z0-9-]{6,}"), "slack.app_token"
    ),
    _Shape("a Slack token", "xox", re.compile(r"xox[a-z](?:\.xox[a-z])?-[A-Za-z0-9-]{6,}"), None),
    # sk-ant- is Anthropic's; an OpenAI-compatible server may take any key, so only the
    # OpenAI shape is placed.
    _Shape(
        "an OpenAI API key",
        "sk-",
        re.compile(r"sk-(?!ant-)[A-Za-z0-9_-]{8,}"),
        "openai.api_key",
    ),
)

# What a key takes, said when it holds something else.
_TAKES = {
    "openai.api_key": "an OpenAI API key (sk-…) or your server's key",
    "slack.bot_token": "a bot token (xoxb-…, under OAuth & Permissions → Bot User OAuth Token)",
    "slack.webhook_url": "an incoming webhook URL (https://hooks.slack.com/services/…)",
    "slack.app_token": "an app-level token (xapp-…, under Basic Information → App-Level Tokens)",
    "state.fleet": "a PostgreSQL URI (postgresql://…)",
    "openai.base_url": "the API's URL, like https://api.openai.com/v1",
    "slack.base_url": "the Web API's URL, like https://slack.com/api/",
    "slack.channel": 'a channel name like "#openai-alerts" or an ID like "C0123ABCD"',
}


def misplaced(where: str, key: str | None, value: str) -> str:
    """A secret of a known shape in a key that does not take it: the problem, naming both."""
    text = value.strip()
    shape = next((shape for shape in _SHAPES if shape.pattern.fullmatch(text)), None)
    key = key or re.sub(r"\.\d+(?=\.|$)", "", where)  # openai.models.0 → openai.models
    if shape is None or shape.home == key:
        return ""
    tail = text[-4:] if len(text) > 12 else ""
    problem = f"{where}: holds {shape.kind} ({shape.shown}…{tail})"
    if shape.home is not None:
        variable = _VARIABLES[shape.home]
        problem += f", which belongs in {shape.home} (or the {variable} environment variable)"
    takes = _TAKES.get(key)
    problem += f"; {key} takes {takes}" if takes else "; remove it from here"
    return problem


def malformed(secret: Secret) -> str:
    """What is wrong with a secret of no known shape in a key with a fixed shape.

    The message names the key, not the source: it lists every place the value can be set.
    """
    if secret.key == "slack.app_token" and not secret.value.startswith("xapp-"):
        return (
            f"{secret.key}: is not an app-level token (it must start with xapp-); create one "
            "under Basic Information → App-Level Tokens with the connections:write scope, and "
            "set it in SLACK_APP_TOKEN or the slack-app-token credential"
        )
    if secret.key == "state.fleet":
        problem = ""
        if not secret.value.startswith(("postgresql://", "postgres://")):
            problem = "is not a PostgreSQL URI (it must start with postgresql://)"
        else:
            try:
                urlsplit(secret.value).port  # noqa: B018 (parsing the port is the check)
            except ValueError:
                problem = "has a port that is not a number from 0 to 65535"
        if problem:
            return (
                f"{secret.key}: {problem}; write it like postgresql://oai400d:PASSWORD@"
                "db.example:5432/oai400d, in the config, in OAI400D_FLEET_DSN or in the "
                "fleet-dsn credential"
            )
    return ""


def plain_strings(raw: Mapping[str, Any]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Every string of the document outside the secrets' own keys and the user rules, by key."""
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), raw)]
    while stack:
        loc, value = stack.pop()
        if isinstance(value, str):
            yield loc, value
        elif isinstance(value, Mapping):
            stack.extend(
                ((*loc, str(key)), item)
                for key, item in value.items()
                if (*loc, key) not in SECRET_SOURCES and (*loc, key) != ("rules",)
            )
        elif isinstance(value, list):
            stack.extend(((*loc, index), item) for index, item in enumerate(value))


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")


def mask_url_passwords(text: str) -> str:
    """Every URL in text with its password (user:PASSWORD@, password=…) masked."""
    return _URL.sub(
        lambda m: (
            mask_dsn(m.group(0))
            if "@" in m.group(0) or "password=" in m.group(0).lower()
            else m.group(0)
        ),
        text,
    )


def hide(text: str) -> str:
    """A message as it may be shown: no secret-shaped value, no URL password."""
    return redact(mask_url_passwords(text))
