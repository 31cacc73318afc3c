"""The settings' sections as pydantic models: each key's type, default and checks."""

from __future__ import annotations

import difflib
import ipaddress
import re
import socket
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from oai400d.config.units import Duration, Size
from oai400d.model import CATEGORIES, EventLimits


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Wrapper = Literal["auto", "none", "docker", "cri", "compose", "syslog"]  # unwrap.KINDS


class LogsSettings(_Section):
    paths: list[str] = Field(default_factory=lambda: ["./logs/*.log"])
    # Globs of files, or of directories whose whole tree is, never followed although `paths`
    # match them: the daemon's own output in a directory it reads (a Kubernetes node's
    # /var/log/pods/<its namespace>_*), an application's debug dump.
    exclude: list[str] = Field(default_factory=list)
    read_from: Literal["end", "beginning"] = "end"
    max_line: Size = 1024 * 1024
    reconcile_interval: Duration = 10.0
    multiline_timeout: Duration = 0.15
    max_event_lines: int = Field(default=400, ge=1, le=100_000)
    max_event_bytes: Size = 256 * 1024
    # The wrapper a container runtime or syslog puts around each line (unwrap.py): "auto"
    # (told from each file's first lines), "none", or one of them; `wrappers` names it per glob.
    wrapper: Wrapper = "auto"
    wrappers: dict[str, Wrapper] = Field(default_factory=dict)

    @field_validator("wrappers")
    @classmethod
    def _globs(cls, value: dict[str, str]) -> dict[str, str]:
        for glob in value:
            if not glob.strip():
                raise ValueError(
                    'has an empty glob; write it like "/var/log/containers/*.log" = "cri"'
                )
        return value

    @property
    def event_limits(self) -> EventLimits:
        return EventLimits(self.max_event_lines, self.max_event_bytes)


class StateSettings(_Section):
    path: str = "./oai400d-state.db"
    # The fleet's shared alert book (see [fleet]): a postgresql:// URI, also from
    # OAI400D_FLEET_DSN or the fleet-dsn credential. Secret: a DSN may hold a password.
    fleet: SecretStr | None = None


class OpenAISettings(_Section):
    base_url: str = "https://api.openai.com/v1"
    # Who serves base_url: "auto" infers it from the host name only (*.openai.azure.com and
    # *.cognitiveservices.azure.com are Azure, api.openai.com is OpenAI, any other host an
    # OpenAI-compatible proxy or server); a path such as /openai/v1 says nothing about it.
    provider: Literal["auto", "openai", "azure", "compatible"] = "auto"
    api_key: SecretStr | None = None
    organization: str = ""
    project: str = ""
    models: list[str] = Field(default_factory=lambda: ["gpt-4o-mini"])

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return _check_http_url(value)


# --- every notifier takes what is at least min_severity, of `categories` ------------------

Severity = Literal["critical", "warning", "info"]  # model.SEVERITIES, most urgent first


def _known_categories(value: list[str]) -> list[str]:
    unknown = [_unknown_category(item) for item in value if item not in CATEGORIES]
    if unknown:
        raise ValueError("; ".join(unknown))
    return value


def _unknown_category(item: str) -> str:
    """A category the taxonomy does not have, with the ones meant ("auth" → auth.*)."""
    known = sorted(CATEGORIES)
    close = [c for c in known if c.startswith(item.rstrip(".") + ".")] or (
        difflib.get_close_matches(item, known, n=3, cutoff=0.6)
    )
    if close:
        return f'"{item}" is not a taxonomy category (did you mean {" or ".join(close)}?)'
    return f'"{item}" is not a taxonomy category (the categories: {", ".join(known)})'


# Taxonomy ids (../shared/taxonomy.md); empty: every category.
Categories = Annotated[list[str], AfterValidator(_known_categories)]


class SlackSettings(_Section):
    base_url: str = "https://slack.com/api/"
    channel: str = "#openai-alerts"
    bot_token: SecretStr | None = None
    webhook_url: SecretStr | None = None
    # Socket Mode (buttons on alerts): an app-level token (xapp-…) with connections:write; it
    # runs only together with bot_token. Who may press them: Slack user IDs and user group IDs
    # (both empty: everyone in the channel).
    app_token: SecretStr | None = None
    allowed_users: list[str] = Field(default_factory=list)
    allowed_groups: list[str] = Field(default_factory=list)
    max_messages_per_second: float = Field(default=1.0, gt=0)
    retry_max: Duration = 60.0
    timeout: Duration = 10.0
    min_severity: Severity = "info"  # the team's channel: every alert
    categories: Categories = Field(default_factory=list)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return _check_http_url(value)

    @field_validator("allowed_users", "allowed_groups")
    @classmethod
    def _slack_ids(cls, value: list[str], info: Any) -> list[str]:
        # IDs, not names: a display name can be changed by its owner to match someone else's.
        pattern, example = (
            (r"^[UW][A-Z0-9]{2,}$", "U012AB3CD")
            if info.field_name == "allowed_users"
            else (r"^S[A-Z0-9]{2,}$", "S0614TZR7")
        )
        for item in value:
            if not re.match(pattern, item):
                raise ValueError(
                    f'"{item}" is not a Slack ID like "{example}" (a profile\'s ⋮ menu → Copy '
                    "member ID; a group's ID is in its URL)"
                )
        return value


class ConsoleSettings(_Section):
    format: Literal["text", "json"] = "text"


class ProbesSettings(_Section):
    enabled: bool = True
    api_key_interval: Duration = 300.0
    status_interval: Duration = 120.0
    status_url: str = "https://status.openai.com/api/v2/summary.json"
    status_components: list[str] = Field(default_factory=list)
    failure_threshold: int = Field(default=2, ge=1)
    success_threshold: int = Field(default=1, ge=1)
    timeout: Duration = 10.0

    @field_validator("status_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return _check_http_url(value)


class AlertsSettings(_Section):
    group_wait: Duration = 10.0
    group_interval: Duration = 60.0
    repeat_interval: Duration = 4 * 3600.0
    resolve_after: Duration = 15 * 60.0
    backlog_window: Duration | None = None


class FleetSettings(_Section):
    """`[fleet]`: how this host takes part in the shared alert book of `state.fleet`."""

    host: str = Field(default_factory=socket.gethostname, min_length=1, max_length=255)
    fallback_after: Duration = 120.0
    lease: Duration = 30.0
    sync_interval: Duration = 1.0
    connect_timeout: Duration = 5.0
    statement_timeout: Duration = 5.0

    @field_validator("lease", "sync_interval", "connect_timeout", "statement_timeout")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be more than 0 s")
        return value


class MetricsSettings(_Section):
    """`[metrics]`: Prometheus metrics over HTTP and/or a node_exporter textfile; off by default."""

    listen: str = ""  # "127.0.0.1:9400", "[::1]:9400"; empty: no HTTP endpoint
    textfile: str = ""  # e.g. /var/lib/node_exporter/textfile_collector/oai400d.prom
    interval: Duration = Field(default=15.0, gt=0)  # how often the textfile is rewritten
    # A file's path as its `source` label; by default the logs.paths glob that matched it, so
    # the number of series stays bounded however many files rotate through a directory.
    source_labels: bool = False

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        if value:
            split_listen(value)
        return value

    @field_validator("textfile")
    @classmethod
    def _prom(cls, value: str) -> str:
        if value and not value.endswith(".prom"):
            raise ValueError(
                f'"{value}" does not end in .prom; node_exporter\'s textfile collector reads '
                "only *.prom files"
            )
        return value

    @property
    def address(self) -> tuple[str, int] | None:
        """(host, port) to listen on, or None when the HTTP endpoint is off."""
        return split_listen(self.listen) if self.listen else None


def split_listen(value: str) -> tuple[str, int]:
    """'127.0.0.1:9400' / '[::1]:9400' / ':9400' → (host, port); ValueError otherwise."""
    match = re.fullmatch(r"\s*(?:\[([0-9A-Fa-f:.]+)\]|([^\s:\[\]]*)):(\d{1,5})\s*", value)
    if not match or int(match.group(3)) > 65535:  # port 0: any free port (logged)
        raise ValueError(
            f'"{value}" is not an address like "127.0.0.1:9400" (HOST:PORT, [IPv6]:PORT)'
        )
    host = match.group(1) or match.group(2) or "0.0.0.0"
    return host, int(match.group(3))


# A journalctl match: FIELD=value, FIELD being what journald allows (A-Z, 0-9, _, not a digit
# first), or "+" between groups (OR).
_JOURNAL_MATCH = re.compile(r"^(?:[A-Z_][A-Z0-9_]*=.*|\+)$", re.DOTALL)


class JournalSettings(_Section):
    """One `[[journal]]`: a unit's, an identifier's or a match's entries, read by journalctl."""

    unit: str | None = None  # journalctl --unit
    identifier: str | None = None  # journalctl --identifier (SYSLOG_IDENTIFIER)
    match: list[str] | None = None  # journalctl FIELD=value matches
    name: str = ""  # "where" in alerts, as journal:NAME; default: the unit or identifier
    directory: str | None = None  # journalctl --directory (another machine's or a test journal)
    files: list[str] | None = None  # journalctl --file: archived journals, re-read for new entries
    read_from: Literal["end", "beginning"] | None = None  # first time; default: logs.read_from

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("name"):
            for key in ("unit", "identifier"):
                if isinstance(data.get(key), str) and data[key].strip():
                    return {**data, "name": data[key].strip()}
            if isinstance(data.get("match"), list):
                return {**data, "name": " ".join(str(m) for m in data["match"])}
        return data

    @field_validator("unit", "identifier", "directory")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or "\n" in value):
            raise ValueError(f"{value!r} is blank or holds a line break; give a name or remove it")
        return value

    @field_validator("match")
    @classmethod
    def _matches(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError('is empty; give matches like ["_SYSTEMD_UNIT=app.service"]')
        for item in value:
            if not _JOURNAL_MATCH.match(item):
                raise ValueError(
                    f'"{item}" is not a journal match: FIELD=value with FIELD in upper case '
                    '(A-Z, 0-9, _), e.g. "_SYSTEMD_UNIT=app.service", "PRIORITY=3", or "+" '
                    "between alternatives"
                )
        return value

    @field_validator("files")
    @classmethod
    def _some_files(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("is empty; list journal files, or remove the key (system journal)")
        return value

    @model_validator(mode="after")
    def _one_selector(self) -> JournalSettings:
        given = [k for k in ("unit", "identifier", "match") if getattr(self, k) is not None]
        if len(given) != 1:
            found = f"found {', '.join(given)}" if given else "found none"
            raise ValueError(
                f"set exactly one of unit, identifier or match ({found}), e.g. "
                'unit = "myapp.service"'
            )
        if self.directory is not None and self.files is not None:
            raise ValueError("set directory or files, not both")
        if not self.name.strip() or "\n" in self.name:
            raise ValueError(f"name {self.name!r} is blank or holds a line break")
        return self

    def journalctl_args(self) -> list[str]:
        """Which journal and which entries, as journalctl arguments."""
        args: list[str] = []
        if self.directory is not None:
            args.append(f"--directory={self.directory}")
        for path in self.files or ():
            args.append(f"--file={path}")
        if self.unit is not None:
            args.append(f"--unit={self.unit}")
        if self.identifier is not None:
            args.append(f"--identifier={self.identifier}")
        args.extend(self.match or ())
        return args


def _distinct_journal_names(journals: list[JournalSettings]) -> list[JournalSettings]:
    seen: set[str] = set()
    for journal in journals:
        if journal.name in seen:
            raise ValueError(
                f'two [[journal]] entries are named "{journal.name}"; give each a distinct name'
            )
        seen.add(journal.name)
    return journals


def _positive(value: float) -> float:
    if value <= 0:
        raise ValueError("must be more than 0 s")
    return value


PositiveDuration = Annotated[Duration, AfterValidator(_positive)]


def _blank_is_unset(value: Any) -> Any:
    # `secret = ""` (as DESIGN.md shows the key) means "not set here": the environment or the
    # credential may still set it (gather_secrets looks there), else there is none.
    return None if isinstance(value, str) and not value.strip() else value


# A notifier's secret: None when not set anywhere; blank in the config counts as not set.
OptionalSecret = Annotated[SecretStr | None, BeforeValidator(_blank_is_unset)]


class PagerDutySettings(_Section):
    """`[pagerduty]`: incidents through the Events API v2; on when a routing key is set."""

    # An Events API v2 integration key (32 letters and digits); also PAGERDUTY_ROUTING_KEY or
    # the pagerduty-routing-key credential. Its shape is checked in secretkeys.malformed.
    routing_key: OptionalSecret = None
    events_url: str = "https://events.pagerduty.com/v2/enqueue"
    min_severity: Severity = "critical"  # a page wakes someone up
    categories: Categories = Field(default_factory=list)
    timeout: PositiveDuration = 10.0

    @field_validator("events_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return _check_http_url(value)


class AlertmanagerSettings(_Section):
    """`[alertmanager]`: alerts POSTed to {url}/api/v2/alerts; off while url is empty."""

    url: str = ""
    # Basic auth (username with password) or a bearer token, or neither; the secrets also come
    # from ALERTMANAGER_PASSWORD / ALERTMANAGER_TOKEN or their credentials.
    username: str = ""
    password: OptionalSecret = Field(default=None, validate_default=True)
    bearer_token: OptionalSecret = Field(default=None, validate_default=True)
    min_severity: Severity = "warning"  # DESIGN.md's contract
    categories: Categories = Field(default_factory=list)
    # An open alert is sent again this often, so Alertmanager (resolve_timeout, 5m by default)
    # never lets it expire while the problem lasts.
    resend_interval: PositiveDuration = 60.0
    timeout: PositiveDuration = 10.0

    @field_validator("url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if not value:
            return value
        _check_http_url(value)
        if value.rstrip("/").endswith("/api/v2/alerts"):
            raise ValueError(
                "ends in /api/v2/alerts, which oai400d adds; give Alertmanager's base URL, "
                'like "http://alertmanager:9093"'
            )
        return value

    # Checked on the fields (not the model) so each message starts with the key to change;
    # fields are validated in order, so username (and password) are in info.data.
    @field_validator("password")
    @classmethod
    def _password_with_username(cls, value: SecretStr | None, info: Any) -> SecretStr | None:
        username = info.data.get("username", "")
        if value is not None and not username:
            raise ValueError(
                "is set but alertmanager.username is empty; basic auth needs both: set username = "
                '"…", or remove the password (from the config, ALERTMANAGER_PASSWORD or the '
                "alertmanager-password credential)"
            )
        if value is None and username:
            raise ValueError(
                "is missing while alertmanager.username is set; basic auth needs both: set it in "
                "ALERTMANAGER_PASSWORD or the alertmanager-password credential (or password = "
                '"…", discouraged), or remove username'
            )
        return value

    @field_validator("bearer_token")
    @classmethod
    def _one_way_in(cls, value: SecretStr | None, info: Any) -> SecretStr | None:
        if value is not None and (info.data.get("username") or info.data.get("password")):
            raise ValueError(
                "is set together with basic auth (username and password); Alertmanager takes "
                "one: remove the bearer token (from the config, ALERTMANAGER_TOKEN or the "
                "alertmanager-token credential) or username and password"
            )
        return value


# A webhook's name: in messages, metrics, its secret's variable and credential names.
_WEBHOOK_NAME = re.compile(r"[A-Za-z0-9_-]+")
# HTTP's token characters (RFC 9110 field names).
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Set by the notifier itself: the body's type and framing, and the signature.
_OWN_HEADERS = {"content-type", "content-length", "transfer-encoding"}
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def webhook_name(entry: Mapping[str, Any], index: int) -> str:
    """The name of the `[[webhook]]` at `index` (from 0): its own, else "webhook-<n>"."""
    name = entry.get("name")
    return name if isinstance(name, str) else f"webhook-{index + 1}"


def webhook_secret_sources(name: str) -> tuple[str, str] | None:
    """The environment variable and credential of a webhook's secret, None for a name that
    cannot be one (the name's own check says so; a credential path must not come from it)."""
    if not _WEBHOOK_NAME.fullmatch(name):
        return None
    variable = "OAI400D_WEBHOOK_" + re.sub(r"[^A-Z0-9]", "_", name.upper()) + "_SECRET"
    return variable, f"webhook-{name}-secret"


class WebhookSettings(_Section):
    """One `[[webhook]]`: the notification's JSON POSTed to url, signed when a secret is set."""

    name: str  # default "webhook-<position>", filled in by Settings (it knows the position)
    url: str
    # Signs each request (X-Oai400d-Signature: HMAC-SHA256); also from the environment variable
    # OAI400D_WEBHOOK_<NAME>_SECRET or the credential webhook-<name>-secret.
    secret: OptionalSecret = None
    min_severity: Severity = "warning"  # DESIGN.md's contract
    categories: Categories = Field(default_factory=list)
    headers: dict[str, str] = Field(default_factory=dict)  # values may be secrets: never shown
    timeout: PositiveDuration = 10.0

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _WEBHOOK_NAME.fullmatch(value):
            raise ValueError(
                f'"{value}" is not a name of letters, digits, - and _ (like "ops-tools"); it '
                "names the webhook's secret variable and credential"
            )
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return _check_http_url(value)

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        # A header's value is never quoted: it is often a token.
        for name, text in value.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(
                    f'"{name}" is not an HTTP header name (letters, digits and '
                    '!#$%&\'*+-.^_`|~; no spaces or colons), like "X-Team"'
                )
            if name.lower() in _OWN_HEADERS:
                raise ValueError(
                    f"{name} is set by oai400d (the body is JSON it frames itself); remove it"
                )
            if name.lower().startswith("x-oai400d-"):
                raise ValueError(
                    f"{name}: the X-Oai400d-* headers are oai400d's own (the signature and its "
                    "timestamp); remove it or give the header another name"
                )
            if _CONTROL.search(text):
                raise ValueError(
                    f"the value of {name} holds a line break or a control character (the value "
                    "is not shown); write it on one line"
                )
        return value


def _name_webhooks(value: Any) -> Any:
    """Each `[[webhook]]` without a name gets "webhook-<n>" by its position (from 1)."""
    if not isinstance(value, list):
        return value
    return [
        {**entry, "name": webhook_name(entry, index)} if isinstance(entry, Mapping) else entry
        for index, entry in enumerate(value)
    ]


def _distinct_webhook_names(webhooks: list[WebhookSettings]) -> list[WebhookSettings]:
    seen: dict[str, str] = {}  # secret variable → name
    for webhook in webhooks:
        sources = webhook_secret_sources(webhook.name)
        variable = sources[0] if sources else webhook.name
        if variable in seen:
            other = seen[variable]
            if other == webhook.name:
                raise ValueError(
                    f'two [[webhook]] entries are named "{other}" (an entry without a name is '
                    '"webhook-<its position>"); give each a distinct name = "…"'
                )
            raise ValueError(
                f'the [[webhook]] names "{other}" and "{webhook.name}" both read their secret '
                f"from {variable}; rename one"
            )
        seen[variable] = webhook.name
    return webhooks


# A DNS name: labels of letters, digits, hyphens (and underscores, which internal zones use).
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")


def _allow_host(entry: str) -> str:
    """One diagnose.allow_hosts entry: a host name, an IP address or a network (CIDR)."""
    text = entry.strip().lower().rstrip(".")
    if not text:
        raise ValueError("an empty entry; write a host name, an IP address or a network (CIDR)")
    if "://" in text:
        raise ValueError(f'"{entry}" is a URL; write its host alone ("images.internal.example")')
    if "/" in text or ":" in text or text.replace(".", "").isdigit():
        try:
            ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(
                f'"{entry}" is not an IP address or network; write one like "10.1.2.3" or '
                '"10.1.0.0/16", or a host name'
            ) from None
        return text
    if not _HOST_NAME.match(text):
        raise ValueError(
            f'"{entry}" is not a host name (letters, digits, hyphens and dots, no scheme, port '
            'or path: "images.internal.example")'
        )
    return text


class DiagnoseSettings(_Section):
    """`[diagnose]`: the one guarded request for an image URL OpenAI could not download
    (facts/fetch.py). Off by default: it sends a request to a host named by a log line."""

    fetch_urls: bool = False
    # Host names, IP addresses or networks the guard lets through although they resolve to a
    # private, loopback or link-local address (tests, internal CDNs).
    allow_hosts: list[Annotated[str, AfterValidator(_allow_host)]] = Field(default_factory=list)
    timeout: PositiveDuration = 5.0  # the whole fetch, redirects included
    max_bytes: Size = 64 * 1024  # of a body read; the rest is never read
    max_redirects: int = Field(default=3, ge=0, le=10)
    per_minute: int = Field(default=10, ge=1)  # fetches from this host, all URLs together


class Settings(_Section):
    logs: LogsSettings = Field(default_factory=LogsSettings)
    journal: Annotated[list[JournalSettings], AfterValidator(_distinct_journal_names)] = Field(
        default_factory=list
    )
    state: StateSettings = Field(default_factory=StateSettings)
    openai: OpenAISettings = Field(default_factory=OpenAISettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    pagerduty: PagerDutySettings = Field(default_factory=PagerDutySettings)
    alertmanager: AlertmanagerSettings = Field(default_factory=AlertmanagerSettings)
    webhook: Annotated[
        list[WebhookSettings],
        BeforeValidator(_name_webhooks),
        AfterValidator(_distinct_webhook_names),
    ] = Field(default_factory=list)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    probes: ProbesSettings = Field(default_factory=ProbesSettings)
    alerts: AlertsSettings = Field(default_factory=AlertsSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    fleet: FleetSettings = Field(default_factory=FleetSettings)
    diagnose: DiagnoseSettings = Field(default_factory=DiagnoseSettings)
    rules: list[dict[str, Any]] = Field(default_factory=list)


def _check_http_url(value: str) -> str:
    if not re.match(r"^https?://[^\s/]+", value):
        raise ValueError(f'"{value}" is not an http(s) URL')
    return value
