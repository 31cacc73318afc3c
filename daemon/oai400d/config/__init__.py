"""TOML config → validated, typed settings; secrets from config, environment or credentials.

A package: the sections' models (settings), durations and sizes (units), the secret keys'
sources and shapes (secretkeys), and validation errors as messages (problems); this module
reads, validates and shows the whole.
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from oai400d.config.problems import describe, dotted
from oai400d.config.secretkeys import (
    SECRET_SOURCES,
    Secret,
    SecretLoc,
    gather_secrets,
    hide,
    malformed,
    mask_url_passwords,
    misplaced,
    plain_strings,
    with_secrets,
)
from oai400d.config.settings import (
    AlertmanagerSettings,
    AlertsSettings,
    ConsoleSettings,
    FleetSettings,
    JournalSettings,
    LogsSettings,
    MetricsSettings,
    OpenAISettings,
    PagerDutySettings,
    ProbesSettings,
    Settings,
    SlackSettings,
    StateSettings,
    WebhookSettings,
    split_listen,
)
from oai400d.config.units import (
    Duration,
    Size,
    format_duration,
    parse_duration,
    parse_size,
)
from oai400d.errors import ConfigError
from oai400d.masking import mask_dsn, mask_secret

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG_PATH",
    "SECRET_SOURCES",
    "AlertmanagerSettings",
    "AlertsSettings",
    "ConsoleSettings",
    "Duration",
    "FleetSettings",
    "JournalSettings",
    "LoadedConfig",
    "LogsSettings",
    "MetricsSettings",
    "OpenAISettings",
    "PagerDutySettings",
    "ProbesSettings",
    "Settings",
    "Size",
    "SlackSettings",
    "StateSettings",
    "WebhookSettings",
    "config_path",
    "format_duration",
    "load_config",
    "parse_duration",
    "parse_settings",
    "parse_size",
    "public_view",
    "read_settings",
    "read_toml",
    "restart_needed",
    "split_listen",
]

DEFAULT_CONFIG_PATH = "/etc/oai400d/config.toml"
CONFIG_ENV = "OAI400D_CONFIG"

log = logging.getLogger("oai400d.config")


@dataclass(frozen=True)
class LoadedConfig:
    """Validated settings and where they came from."""

    settings: Settings
    source: str  # the file path, or "built-in defaults"
    # What was taken but should be fixed (a secret with a trailing newline); also logged.
    warnings: tuple[str, ...] = ()


def config_path(explicit: str | None, environ: Mapping[str, str] | None = None) -> tuple[str, bool]:
    """The config file to read, and whether the user named it (a named file must exist)."""
    env = os.environ if environ is None else environ
    if explicit:
        return explicit, True
    if env.get(CONFIG_ENV):
        return env[CONFIG_ENV], True
    return DEFAULT_CONFIG_PATH, False


def restart_needed(old: Settings, new: Settings) -> list[str]:
    """What a reload (SIGHUP) from `old` to `new` cannot take up: said, then left as it was.

    Everything else is taken up, the notifiers' sections too ([slack], [pagerduty],
    [alertmanager], [[webhook]], [console]): the delivery is rebuilt from the new settings.
    """
    said = []
    if (new.state.fleet, new.fleet) != (old.state.fleet, old.fleet):
        said.append("state.fleet or [fleet] changed: takes effect at the next restart")
    if new.state.path != old.state.path:
        said.append(f"state.path changed to {new.state.path}: takes effect at the next restart")
    return said


def load_config(
    explicit: str | None = None, environ: Mapping[str, str] | None = None
) -> LoadedConfig:
    """Read, validate and resolve the configuration; raise ConfigError listing every problem."""
    env = os.environ if environ is None else environ
    path, named = config_path(explicit, env)
    if not named and not Path(path).exists():
        raw: dict[str, Any] = {}
        source = "built-in defaults"
    else:
        raw = read_toml(path)
        source = path
    settings, warnings = read_settings(raw, env, source)
    _log_warnings(warnings)
    return LoadedConfig(settings, source, warnings)


def read_toml(path: str) -> dict[str, Any]:
    """Parse a TOML config file, turning every failure into a ConfigError naming the file."""
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(
            [f"{path}: no such file; create it (see config.example.toml) or pass --config"], path
        ) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot be read: {exc.strerror}"], path) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"], path) from None


def parse_settings(
    raw: Mapping[str, Any], environ: Mapping[str, str] | None = None, source: str = ""
) -> Settings:
    """Validate a parsed TOML document and fill secrets; warnings go to the log."""
    settings, warnings = read_settings(raw, environ, source)
    _log_warnings(warnings)
    return settings


def read_settings(
    raw: Mapping[str, Any], environ: Mapping[str, str] | None = None, source: str = ""
) -> tuple[Settings, tuple[str, ...]]:
    """Validate a parsed TOML document, secrets filled from the environment and credentials.

    Returns the settings and the warnings; raises ConfigError listing every problem, each
    naming its key and none showing a secret.
    """
    env = os.environ if environ is None else environ
    problems: list[str] = []
    warnings: list[str] = []
    secrets = gather_secrets(raw, env, problems, warnings)
    flagged: set[tuple[str | int, ...]] = set()  # keys holding a misplaced secret
    for loc, value in plain_strings(raw):
        problem = misplaced(dotted(loc), None, value)
        if problem:
            problems.append(problem)
            flagged.add(loc)
    for secret in secrets.values():
        problem = misplaced(secret.where, secret.field, secret.value) or malformed(secret)
        if problem:
            problems.append(problem)
    try:
        settings = Settings.model_validate(with_secrets(raw, secrets))
    except ValidationError as exc:
        # A misplaced value is said once, by what it is, not again by the type it lacks (at
        # its own key, or at the list that holds it).
        problems.extend(
            describe(error)
            for error in exc.errors()
            if not any(_nested(tuple(error["loc"]), loc) for loc in flagged)
        )
    if problems:  # each says its value masked; a URL's password is masked in any of them
        raise ConfigError([mask_url_passwords(p) for p in problems], source) from None
    warnings.extend(_notifier_warnings(raw, settings, secrets))
    return settings, tuple(warnings)


# Alertmanager's default resolve_timeout: an alert not sent again within it is resolved.
_ALERTMANAGER_RESOLVE_TIMEOUT = 300.0


def _notifier_warnings(
    raw: Mapping[str, Any], settings: Settings, secrets: dict[SecretLoc, Secret]
) -> list[str]:
    """What is valid but cannot be what was meant: a notifier's secret or settings that nothing
    uses, an interval at which Alertmanager lets an open alert expire."""
    said = []
    alertmanager = settings.alertmanager
    if not alertmanager.url:
        for key in ("password", "bearer_token"):
            secret = secrets.get(("alertmanager", key))
            if secret is not None:
                said.append(
                    f"{secret.where}: is set but alertmanager.url is empty, so nothing is sent to "
                    'Alertmanager; set url = "http://alertmanager:9093" in [alertmanager], or '
                    "remove the secret"
                )
    elif alertmanager.resend_interval >= _ALERTMANAGER_RESOLVE_TIMEOUT:
        said.append(
            f"alertmanager.resend_interval: {format_duration(alertmanager.resend_interval)} is "
            "not shorter than Alertmanager's default resolve_timeout (5m), which may resolve an "
            'open alert between two sends; use "1m" unless your resolve_timeout is longer'
        )
    table = raw.get("pagerduty")
    if settings.pagerduty.routing_key is None and isinstance(table, Mapping) and table:
        said.append(
            "[pagerduty] is configured but no routing key is set, so nothing is sent to "
            "PagerDuty; set PAGERDUTY_ROUTING_KEY or the pagerduty-routing-key credential"
        )
    return said


def _nested(one: tuple[str | int, ...], other: tuple[str | int, ...]) -> bool:
    """Whether one key is the other or holds it."""
    shorter = min(len(one), len(other))
    return one[:shorter] == other[:shorter]


def _log_warnings(warnings: tuple[str, ...]) -> None:
    for warning in warnings:
        log.warning("%s", warning)


def public_view(settings: Settings) -> dict[str, Any]:
    """The settings as plain data with every secret masked (for check-config)."""
    data = settings.model_dump(mode="python")
    # A password in a URL (openai.base_url = "https://user:PASSWORD@proxy/v1") and anything
    # shaped like a secret elsewhere are masked; the secrets' own keys follow.
    for loc, value in plain_strings(data):
        _put(data, loc, hide(value))
    for (section, key), _ in SECRET_SOURCES.items():
        secret = getattr(getattr(settings, section), key)
        data[section][key] = None if secret is None else mask_secret(secret.get_secret_value())
    for webhook, shown in zip(settings.webhook, data["webhook"], strict=True):
        secret = webhook.secret
        shown["secret"] = None if secret is None else mask_secret(secret.get_secret_value())
        # A header's value is often a token: shown as a secret is.
        shown["headers"] = {name: mask_secret(value) for name, value in webhook.headers.items()}
        _show_durations(webhook, shown)
    if settings.state.fleet is not None:  # where the store is helps; only its password is hidden
        data["state"]["fleet"] = mask_dsn(settings.state.fleet.get_secret_value())
    for section in ("alerts", "probes", "logs", "metrics", "pagerduty", "alertmanager"):
        _show_durations(getattr(settings, section), data[section])
    return data


def _show_durations(model: Any, shown: dict[str, Any]) -> None:
    """A section's durations as the config writes them ("1m"), in place."""
    for key, value in shown.items():
        field = type(model).model_fields[key]
        if field.metadata and isinstance(value, float) and key not in {"failure_threshold"}:
            shown[key] = format_duration(value)


def _put(data: Any, loc: tuple[str | int, ...], value: str) -> None:
    """Set the value at a key path of nested tables and arrays."""
    for part in loc[:-1]:
        data = data[part]
    data[loc[-1]] = value
