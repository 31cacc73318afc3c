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

from oai400d.config.settings import webhook_name, webhook_secret_sources
from oai400d.masking import mask_dsn, mask_secret, redact

SECRET_SOURCES: dict[tuple[str, str], tuple[str, str]] = {
    ("openai", "api_key"): ("OPENAI_API_KEY", "openai-api-key"),
    ("slack", "bot_token"): ("SLACK_BOT_TOKEN", "slack-bot-token"),
    ("slack", "webhook_url"): ("SLACK_WEBHOOK_URL", "slack-webhook-url"),
    ("slack", "app_token"): ("SLACK_APP_TOKEN", "slack-app-token"),
    ("state", "fleet"): ("OAI400D_FLEET_DSN", "fleet-dsn"),
    ("pagerduty", "routing_key"): ("PAGERDUTY_ROUTING_KEY", "pagerduty-routing-key"),
    ("alertmanager", "password"): ("ALERTMANAGER_PASSWORD", "alertmanager-password"),
    ("alertmanager", "bearer_token"): ("ALERTMANAGER_TOKEN", "alertmanager-token"),
}
# Each [[webhook]]'s `secret` too, its sources named after the webhook
# (settings.webhook_secret_sources): OAI400D_WEBHOOK_<NAME>_SECRET, webhook-<name>-secret.

# The notifiers' secrets that are not set by a blank config value (`secret = ""`, as DESIGN.md
# shows it): the environment and the credential are still looked at. The older keys keep
# taking a blank value as given.
_BLANK_IS_UNSET = {
    ("pagerduty", "routing_key"),
    ("alertmanager", "password"),
    ("alertmanager", "bearer_token"),
}

# Where a secret sits in the document: ("openai", "api_key"), ("webhook", 0, "secret").
SecretLoc = tuple[str | int, ...]


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

    @property
    def field(self) -> str:
        """The key without list positions: webhook.0.secret → webhook.secret."""
        return re.sub(r"\.\d+(?=\.|$)", "", self.key)


def gather_secrets(
    raw: Mapping[str, Any], env: Mapping[str, str], problems: list[str], warnings: list[str]
) -> dict[SecretLoc, Secret]:
    """Each secret's value: the config's, else its environment variable, else its credential.

    Whitespace around a value is stripped: a key pasted with its newline fails every request
    with a message about the header, not the key. A credential file's one final newline is
    normal (`echo key > file`) and stripped silently; anything more is said.
    """
    found: dict[SecretLoc, Secret] = {}
    for (section, key), (variable, credential) in SECRET_SOURCES.items():
        table = raw.get(section)
        secret = _resolve(
            f"{section}.{key}",
            table.get(key) if isinstance(table, Mapping) else None,
            (section, key) in _BLANK_IS_UNSET,
            (variable, credential),
            env,
            problems,
            warnings,
        )
        if secret is not None:
            found[(section, key)] = secret
    webhooks = raw.get("webhook")
    for index, entry in enumerate(webhooks if isinstance(webhooks, list) else ()):
        if not isinstance(entry, Mapping):
            continue  # the type check's to report
        # A name that cannot name a variable or a file has no sources but the config (the
        # name's own check reports it): a credential path is never made of it.
        sources = webhook_secret_sources(webhook_name(entry, index))
        secret = _resolve(
            f"webhook.{index}.secret", entry.get("secret"), True, sources, env, problems, warnings
        )
        if secret is not None:
            found[("webhook", index, "secret")] = secret
    return found


def _resolve(
    dotted: str,
    configured: object,
    blank_is_unset: bool,
    sources: tuple[str, str] | None,
    env: Mapping[str, str],
    problems: list[str],
    warnings: list[str],
) -> Secret | None:
    """One secret from the config's value (None: absent), its variable or its credential."""
    if configured is not None and not (
        blank_is_unset and isinstance(configured, str) and not configured.strip()
    ):
        if not isinstance(configured, str):
            return None  # the type check's to report
        return _stripped(Secret(dotted, configured), warnings)
    if sources is None:
        return None
    variable, credential = sources
    if env.get(variable, "").strip():
        return _stripped(Secret(dotted, env[variable], variable), warnings)
    if not env.get("CREDENTIALS_DIRECTORY"):
        return None
    path = Path(env["CREDENTIALS_DIRECTORY"]) / credential
    try:
        text = path.read_text(encoding="utf-8").removesuffix("\n")
    except FileNotFoundError:
        return None
    except OSError as exc:
        problems.append(f"{dotted}: credential {path} cannot be read: {exc.strerror}")
        return None
    if not text.strip():
        return None
    return _stripped(Secret(dotted, text, f"the {credential} credential"), warnings)


def _stripped(secret: Secret, warnings: list[str]) -> Secret:
    value = secret.value.strip()
    if value != secret.value:
        place = secret.origin or "the config file"
        warnings.append(
            f"{secret.where}: had spaces or a line break around it, which were stripped; remove "
            f"them from {place} (the value is a secret and is not shown)"
        )
    return Secret(secret.key, value, secret.origin)


def with_secrets(raw: Mapping[str, Any], secrets: dict[SecretLoc, Secret]) -> dict[str, Any]:
    """The document with each secret's resolved value in its place (a wrong section is left)."""
    filled = dict(raw)
    for loc, secret in secrets.items():
        if len(loc) == 2:
            section, key = loc
            table = filled.get(str(section), {})
            if isinstance(table, Mapping):
                filled[str(section)] = {**table, key: secret.value}
        else:  # ("webhook", index, "secret"): gathered only from a list of tables
            section, index, key = loc
            entries = list(filled[str(section)])
            entries[int(index)] = {**entries[int(index)], key: secret.value}
            filled[str(section)] = entries
    return filled


def holds_secret(loc: tuple[str | int, ...]) -> bool:
    """Whether the value at a key is a secret or may hold one (a webhook's header values):
    never quoted in a message."""
    if loc[:2] in SECRET_SOURCES:
        return True
    return len(loc) >= 3 and loc[0] == "webhook" and loc[2] in {"secret", "headers"}


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
    "pagerduty.routing_key": (
        "an Events API v2 integration key (32 letters and digits, from a service's "
        "Integrations tab)"
    ),
    "pagerduty.events_url": "the Events API's URL, like https://events.pagerduty.com/v2/enqueue",
    "alertmanager.url": "Alertmanager's base URL, like http://alertmanager:9093",
    "alertmanager.password": "the password of alertmanager.username (basic auth)",
    "alertmanager.bearer_token": "a bearer token your Alertmanager (or its proxy) accepts",
    "webhook.url": "the receiver's URL, like https://hooks.example.com/oai400d",
    "webhook.secret": "a secret of your choosing, shared with the receiver (it signs requests)",
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


# An Events API v2 integration (routing) key.
_ROUTING_KEY = re.compile(r"[A-Za-z0-9]{32}")


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
    if secret.key == "pagerduty.routing_key" and not _ROUTING_KEY.fullmatch(secret.value):
        # Said with where it came from: a key that is fine in the config but wrong in a
        # forgotten variable is found at once. At most its last 4 characters are shown.
        size = len(secret.value)
        shown = mask_secret(secret.value)
        wrong = (
            f"{'it' if shown == '…' else shown} has {size} characters, not 32"
            if size != 32
            else f"{shown} holds characters other than letters and digits"
        )
        return (
            f"{secret.where}: is not an Events API v2 integration key ({wrong}); copy the "
            "Integration Key of the service's Events API v2 integration (Service → "
            "Integrations) into PAGERDUTY_ROUTING_KEY, the pagerduty-routing-key credential or "
            "pagerduty.routing_key"
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
                if not _own_secret((*loc, key)) and (*loc, key) != ("rules",)
            )
        elif isinstance(value, list):
            stack.extend(((*loc, index), item) for index, item in enumerate(value))


def _own_secret(loc: tuple[str | int, ...]) -> bool:
    """A secret's own key (checked as a secret, not as a plain string): a header's value is
    not one, so a token of a known shape pasted there is still reported as misplaced."""
    return loc in SECRET_SOURCES or (len(loc) == 3 and loc[0] == "webhook" and loc[2] == "secret")


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
