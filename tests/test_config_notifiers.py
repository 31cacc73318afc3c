"""The notifiers' configuration: [pagerduty], [alertmanager], [[webhook]]: defaults, errors
naming their key, secrets from the config, the environment or a credential, never shown."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from oai400d import cli
from oai400d.classify import rules
from oai400d.config import Settings, load_config, public_view, restart_needed
from oai400d.errors import ConfigError
from oai400d.model import CATEGORIES

# Made up, but shaped like the real ones; the middle is what must never be printed.
ROUTING_KEY = "e93facc0MIDDLEOFROUTINGKEY5d1a6"  # 31: one short
assert len(ROUTING_KEY) == 31
GOOD_ROUTING_KEY = ROUTING_KEY + "7"
AM_PASSWORD = "am-MIDDLEOFPASSWORD-pw42"
AM_TOKEN = "am-MIDDLEOFTOKEN-tk42"
HOOK_SECRET = "hook-MIDDLEOFSECRET-s3c4"
HEADER_VALUE = "Bearer MIDDLEOFHEADER-hd99"
OPENAI_KEY = "sk-proj-" + "MIDDLEOFKEY" * 4 + "k3Y9"
BOT_TOKEN = "xoxb-1234567890-0987654321-MIDDLEOFBOTTOKENb0T1"
SECRET_VARIABLES = (
    "PAGERDUTY_ROUTING_KEY",
    "ALERTMANAGER_PASSWORD",
    "ALERTMANAGER_TOKEN",
    "OAI400D_WEBHOOK_OPS_SECRET",
    "OAI400D_WEBHOOK_WEBHOOK_1_SECRET",
    "CREDENTIALS_DIRECTORY",
)


def assert_hidden(text: str) -> None:
    assert "MIDDLEOF" not in text, text


def load(toml: str, tmp_path: Path, environ: dict[str, str] | None = None) -> Settings:
    """The settings of a config file, through load_config (what check-config and the daemon
    call: a ConfigError there is exit 78)."""
    path = tmp_path / "config.toml"
    path.write_text(toml)
    return load_config(str(path), environ=environ or {}).settings


def problems_of(toml: str, tmp_path: Path, environ: dict[str, str] | None = None) -> list[str]:
    path = tmp_path / "config.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as caught:
        load_config(str(path), environ=environ or {})
    assert_hidden(str(caught.value))
    return caught.value.problems


# --- defaults ---------------------------------------------------------------------------------


def test_each_key_has_its_default(tmp_path: Path) -> None:
    """Nothing configured: PagerDuty and Alertmanager off with their documented defaults, no
    webhook; a webhook with only a url gets the rest by default."""
    settings = load('[[webhook]]\nurl = "https://hooks.example/a"\n', tmp_path)
    view = public_view(settings)
    assert view["pagerduty"] == {
        "routing_key": None,
        "events_url": "https://events.pagerduty.com/v2/enqueue",
        "min_severity": "critical",
        "categories": [],
        "timeout": "10s",
    }
    assert view["alertmanager"] == {
        "url": "",
        "username": "",
        "password": None,
        "bearer_token": None,
        "min_severity": "warning",
        "categories": [],
        "resend_interval": "1m",
        "timeout": "10s",
    }
    assert view["webhook"] == [
        {
            "name": "webhook-1",
            "url": "https://hooks.example/a",
            "secret": None,
            "min_severity": "warning",
            "categories": [],
            "headers": {},
            "timeout": "10s",
        }
    ]
    assert load("", tmp_path).webhook == []


def test_keys_are_read_as_written(tmp_path: Path) -> None:
    """Every key set: severities, categories, durations and headers come through typed."""
    settings = load(
        f"""
[pagerduty]
routing_key = "{GOOD_ROUTING_KEY}"
events_url = "https://events.eu.pagerduty.com/v2/enqueue"
min_severity = "warning"
categories = ["auth.invalid_api_key", "quota.insufficient"]
timeout = "5s"

[alertmanager]
url = "http://alertmanager:9093"
bearer_token = "{AM_TOKEN}"
min_severity = "critical"
resend_interval = "30s"
timeout = "2s"

[[webhook]]
name = "ops"
url = "https://hooks.example/ops"
secret = "{HOOK_SECRET}"
headers = {{ Authorization = "{HEADER_VALUE}", X-Team = "platform" }}
categories = ["rate_limit"]
""",
        tmp_path,
    )
    pagerduty = settings.pagerduty
    assert pagerduty.routing_key.get_secret_value() == GOOD_ROUTING_KEY
    assert (pagerduty.min_severity, pagerduty.timeout) == ("warning", 5.0)
    assert pagerduty.categories == ["auth.invalid_api_key", "quota.insufficient"]
    alertmanager = settings.alertmanager
    assert alertmanager.bearer_token.get_secret_value() == AM_TOKEN
    assert (alertmanager.resend_interval, alertmanager.timeout) == (30.0, 2.0)
    (webhook,) = settings.webhook
    assert webhook.secret.get_secret_value() == HOOK_SECRET
    assert webhook.headers == {"Authorization": HEADER_VALUE, "X-Team": "platform"}


# --- errors, each naming its key --------------------------------------------------------------

HOOK = '[[webhook]]\nurl = "https://hooks.example/a"\n'


@pytest.mark.parametrize(
    ("toml", "start", "says"),
    [
        (
            '[pagerduty]\nmin_severity = "high"\n',
            "pagerduty.min_severity: 'high' is not valid",
            ["'critical', 'warning' or 'info'"],
        ),
        (
            '[pagerduty]\nevents_url = "events.pagerduty.com"\n',
            'pagerduty.events_url: "events.pagerduty.com" is not an http(s) URL',
            [],
        ),
        ('[pagerduty]\ntimeout = "0s"\n', "pagerduty.timeout: must be more than 0 s", []),
        (
            '[pagerduty]\ncategories = ["auth", "rate_limits"]\n',
            'pagerduty.categories: "auth" is not a taxonomy category (did you mean '
            "auth.invalid_api_key or auth.organization or auth.permission?)",
            ['"rate_limits" is not a taxonomy category (did you mean rate_limit?)'],
        ),
        (
            '[alertmanager]\ncategories = ["nonsense"]\n',
            'alertmanager.categories: "nonsense" is not a taxonomy category (the categories: ',
            ["auth.invalid_api_key", "unclassified"],
        ),
        (
            '[alertmanager]\nurl = "alertmanager:9093"\n',
            'alertmanager.url: "alertmanager:9093" is not an http(s) URL',
            [],
        ),
        (
            '[alertmanager]\nurl = "http://am:9093/api/v2/alerts"\n',
            "alertmanager.url: ends in /api/v2/alerts, which oai400d adds",
            ["http://alertmanager:9093"],
        ),
        (
            '[alertmanager]\nresend_interval = "0s"\n',
            "alertmanager.resend_interval: must be more than 0 s",
            [],
        ),
        (
            f'[alertmanager]\npassword = "{AM_PASSWORD}"\n',
            "alertmanager.password: is set but alertmanager.username is empty",
            ["ALERTMANAGER_PASSWORD", "username ="],
        ),
        (
            '[alertmanager]\nusername = "oai400d"\n',
            "alertmanager.password: is missing while alertmanager.username is set",
            ["ALERTMANAGER_PASSWORD", "alertmanager-password"],
        ),
        (
            f'[alertmanager]\nusername = "u"\npassword = "{AM_PASSWORD}"\n'
            f'bearer_token = "{AM_TOKEN}"\n',
            "alertmanager.bearer_token: is set together with basic auth",
            ["ALERTMANAGER_TOKEN"],
        ),
        ('[[webhook]]\nname = "ops"\n', "webhook.0.url: required key is missing", []),
        (
            HOOK + '[[webhook]]\nurl = "ftp://hooks.example/b"\n',
            'webhook.1.url: "ftp://hooks.example/b" is not an http(s) URL',
            [],
        ),
        (
            '[[webhook]]\nname = "ops tools"\nurl = "https://h.example"\n',
            'webhook.0.name: "ops tools" is not a name of letters, digits, - and _',
            [],
        ),
        (
            HOOK + 'min_severity = "debug"\n',
            "webhook.0.min_severity: 'debug' is not valid",
            [],
        ),
        (HOOK + 'timeout = "-1s"\n', 'webhook.0.timeout: "-1s" is not a duration', []),
        (
            HOOK + 'headers = { Content-Type = "text/plain" }\n',
            "webhook.0.headers: Content-Type is set by oai400d",
            [],
        ),
        (
            HOOK + 'headers = { X-OAI400D-Signature = "sha256=0" }\n',
            "webhook.0.headers: X-OAI400D-Signature: the X-Oai400d-* headers are oai400d's own",
            [],
        ),
        (
            HOOK + 'headers = { "X Team" = "platform" }\n',
            'webhook.0.headers: "X Team" is not an HTTP header name',
            [],
        ),
        (
            '[webhook]\nurl = "https://h.example"\n',
            "webhook: must be an array of tables: write each webhook as [[webhook]]",
            [],
        ),
    ],
)
def test_a_wrong_value_is_a_config_error_naming_its_key(
    toml: str, start: str, says: list[str], tmp_path: Path
) -> None:
    """load_config raises ConfigError (check-config and the daemon exit 78), the one problem
    starting with the dotted key and saying what to write."""
    (problem,) = problems_of(toml, tmp_path)
    assert problem.startswith(start), problem
    for text in says:
        assert text in problem, problem


def test_check_config_exits_78_on_a_malformed_routing_key_without_showing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`oai400d check-config`: a routing key from the environment that is not 32 letters and
    digits is exit 78, naming the key and the variable, the key's last 4 characters at most."""
    for variable in SECRET_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEY", ROUTING_KEY)
    config = tmp_path / "config.toml"
    config.write_text("[pagerduty]\n")
    assert cli.main(["check-config", "--config", str(config)]) == cli.EXIT_CONFIG
    out, err = capsys.readouterr()
    assert (
        "pagerduty.routing_key (from PAGERDUTY_ROUTING_KEY): is not an Events API v2 "
        "integration key (…1a6 has 31 characters, not 32)"
    ).replace("…1a6", "…" + ROUTING_KEY[-4:]) in err
    assert ROUTING_KEY not in out + err
    assert_hidden(out + err)


@pytest.mark.parametrize(
    ("value", "wrong"),
    [
        (ROUTING_KEY, f"…{ROUTING_KEY[-4:]} has 31 characters, not 32"),
        (ROUTING_KEY + "-", f"…{ROUTING_KEY[-3:]}- holds characters other than letters"),
        ("short", "it has 5 characters, not 32"),
    ],
)
def test_a_malformed_routing_key_is_named_with_its_source_never_shown(
    value: str, wrong: str, tmp_path: Path
) -> None:
    """From the config, the environment or a credential, the message says where it came from
    and what is wrong with it, never the key."""
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "pagerduty-routing-key").write_text(value + "\n")
    for toml, environ, where in [
        (f'[pagerduty]\nrouting_key = "{value}"\n', {}, "pagerduty.routing_key"),
        (
            "",
            {"PAGERDUTY_ROUTING_KEY": value},
            "pagerduty.routing_key (from PAGERDUTY_ROUTING_KEY)",
        ),
        (
            "",
            {"CREDENTIALS_DIRECTORY": str(credentials)},
            "pagerduty.routing_key (from the pagerduty-routing-key credential)",
        ),
    ]:
        (problem,) = problems_of(toml, tmp_path, environ)
        assert problem.startswith(f"{where}: is not an Events API v2 integration key ({wrong}")
        assert value not in problem
        assert len(value) <= 8 or value[:-4] not in problem  # at most the last 4 shown


# --- secrets: config, environment, credential; never shown ------------------------------------

# Each secret: its config (VALUE in its place), its variable, its credential, where it is in
# the settings, and the same config without it.
SECRET_CASES: list[tuple[str, str, str, Callable[[Settings], SecretStr | None], str]] = [
    (
        '[pagerduty]\nrouting_key = "VALUE"\n',
        "PAGERDUTY_ROUTING_KEY",
        "pagerduty-routing-key",
        lambda s: s.pagerduty.routing_key,
        "",
    ),
    (
        '[alertmanager]\nurl = "http://am:9093"\nusername = "u"\npassword = "VALUE"\n',
        "ALERTMANAGER_PASSWORD",
        "alertmanager-password",
        lambda s: s.alertmanager.password,
        '[alertmanager]\nurl = "http://am:9093"\nusername = "u"\n',
    ),
    (
        '[alertmanager]\nurl = "http://am:9093"\nbearer_token = "VALUE"\n',
        "ALERTMANAGER_TOKEN",
        "alertmanager-token",
        lambda s: s.alertmanager.bearer_token,
        '[alertmanager]\nurl = "http://am:9093"\n',
    ),
    (
        '[[webhook]]\nname = "ops"\nurl = "https://h.example"\nsecret = "VALUE"\n',
        "OAI400D_WEBHOOK_OPS_SECRET",
        "webhook-ops-secret",
        lambda s: s.webhook[0].secret,
        '[[webhook]]\nname = "ops"\nurl = "https://h.example"\n',
    ),
    (  # no name: "webhook-1"
        '[[webhook]]\nurl = "https://h.example"\nsecret = "VALUE"\n',
        "OAI400D_WEBHOOK_WEBHOOK_1_SECRET",
        "webhook-webhook-1-secret",
        lambda s: s.webhook[0].secret,
        '[[webhook]]\nurl = "https://h.example"\n',
    ),
]


@pytest.mark.parametrize(("with_value", "variable", "credential", "get", "without"), SECRET_CASES)
def test_each_secret_from_config_environment_or_credential_config_first(
    with_value: str,
    variable: str,
    credential: str,
    get: Callable[[Settings], SecretStr | None],
    without: str,
    tmp_path: Path,
) -> None:
    """The config's value wins over the variable, which wins over the credential; a blank
    config value (`secret = ""`) counts as not set; none of it is shown by check-config."""
    pagerduty = variable == "PAGERDUTY_ROUTING_KEY"
    in_config, in_env, in_credential = (
        ("A" * 31 + "1", "B" * 31 + "2", "C" * 31 + "3")
        if pagerduty
        else ("MIDDLEOF-config-1111", "MIDDLEOF-env-2222", "MIDDLEOF-credential-3333")
    )
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / credential).write_text(in_credential + "\n")
    everywhere = {variable: in_env, "CREDENTIALS_DIRECTORY": str(credentials)}
    for toml, environ, expected in [
        (with_value.replace("VALUE", in_config), everywhere, in_config),
        (without, everywhere, in_env),
        (with_value.replace("VALUE", ""), everywhere, in_env),  # blank: not set here
        (without, {"CREDENTIALS_DIRECTORY": str(credentials)}, in_credential),
    ]:
        settings = load(toml, tmp_path, environ)
        secret = get(settings)
        assert secret is not None and secret.get_secret_value() == expected, (toml, environ)
        view = json.dumps(public_view(settings), ensure_ascii=False)
        assert expected not in view and f"…{expected[-4:]}" in view
    if variable == "ALERTMANAGER_PASSWORD":  # a username needs its password from somewhere
        (problem,) = problems_of(without, tmp_path)
        assert problem.startswith("alertmanager.password: is missing while")
    elif not pagerduty:  # nowhere: None (PagerDuty's is covered by the defaults)
        assert get(load(without, tmp_path)) is None


def test_whitespace_around_a_webhook_secret_is_stripped_with_a_warning(tmp_path: Path) -> None:
    """gather_secrets' rule holds for a list of tables: stripped, said, never shown."""
    path = tmp_path / "config.toml"
    path.write_text('[[webhook]]\nname = "ops"\nurl = "https://h.example"\n')
    loaded = load_config(str(path), environ={"OAI400D_WEBHOOK_OPS_SECRET": HOOK_SECRET + "\n"})
    assert loaded.settings.webhook[0].secret is not None
    assert loaded.settings.webhook[0].secret.get_secret_value() == HOOK_SECRET
    assert loaded.warnings == (
        "webhook.0.secret (from OAI400D_WEBHOOK_OPS_SECRET): had spaces or a line break around "
        "it, which were stripped; remove them from OAI400D_WEBHOOK_OPS_SECRET (the value is a "
        "secret and is not shown)",
    )


def test_a_webhook_name_that_cannot_name_a_file_reads_no_credential(tmp_path: Path) -> None:
    """A bad name is reported by the name's check, and no credential path is made of it."""
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (tmp_path / "webhook-..").mkdir()
    problems = problems_of(
        '[[webhook]]\nname = "../x"\nurl = "https://h.example"\n',
        tmp_path,
        {"CREDENTIALS_DIRECTORY": str(credentials)},
    )
    assert problems == [
        'webhook.0.name: "../x" is not a name of letters, digits, - and _ (like "ops-tools"); '
        "it names the webhook's secret variable and credential"
    ]


@pytest.mark.parametrize(
    ("toml", "start", "hint"),
    [
        (
            f'[pagerduty]\nrouting_key = "{OPENAI_KEY}"\n',
            "pagerduty.routing_key: holds an OpenAI API key (sk-…k3Y9), which belongs in "
            "openai.api_key",
            "pagerduty.routing_key takes an Events API v2 integration key",
        ),
        (
            f'[alertmanager]\nusername = "{BOT_TOKEN}"\n',
            "alertmanager.username: holds a Slack bot token (xoxb-…b0T1)",
            "slack.bot_token",
        ),
        (
            f'[alertmanager]\nurl = "http://am:9093"\nbearer_token = "{BOT_TOKEN}"\n',
            "alertmanager.bearer_token: holds a Slack bot token (xoxb-…b0T1)",
            "alertmanager.bearer_token takes a bearer token",
        ),
        (
            HOOK + f'secret = "{OPENAI_KEY}"\n',
            "webhook.0.secret: holds an OpenAI API key (sk-…k3Y9)",
            "webhook.secret takes a secret of your choosing",
        ),
        (
            HOOK + f'headers = {{ Authorization = "{OPENAI_KEY}" }}\n',
            "webhook.0.headers.Authorization: holds an OpenAI API key (sk-…k3Y9)",
            "remove it from here",
        ),
    ],
)
def test_a_secret_of_a_known_shape_in_a_notifier_key_is_misplaced(
    toml: str, start: str, hint: str, tmp_path: Path
) -> None:
    """An OpenAI key or a Slack token pasted into a notifier's key is named by its kind and
    where it belongs, masked."""
    problems = problems_of(toml, tmp_path)
    assert any(p.startswith(start) and hint in p for p in problems), problems
    assert not any(OPENAI_KEY in p or BOT_TOKEN in p for p in problems)


@pytest.mark.parametrize(
    "toml",
    [
        HOOK + f'secret = ["{HOOK_SECRET}"]\n',
        HOOK + f'headers = "{HEADER_VALUE}"\n',
        HOOK + "headers = { Authorization = 12345678 }\n",
        HOOK + 'headers = { Authorization = "Bearer MIDDLEOF\\nX-Injected: 1" }\n',
        HOOK + f'headers = {{ Content-Type = "json", Authorization = "{HEADER_VALUE}" }}\n',
        f'[webhook]\nurl = "https://h.example"\nsecret = "{HOOK_SECRET}"\n',
        # The key written as the section: a string or an array where a table belongs.
        f'pagerduty = "{GOOD_ROUTING_KEY[:8]}MIDDLEOF{GOOD_ROUTING_KEY[16:]}"\n',
        f'pagerduty = ["{GOOD_ROUTING_KEY[:8]}MIDDLEOF{GOOD_ROUTING_KEY[16:]}"]\n',
        f'webhook = ["https://h.example", "{HOOK_SECRET}"]\n',
        f'[alertmanager]\npassword = ["{AM_PASSWORD}"]\n',
        f'alertmanager = {{ url = 5, bearer_token = "{AM_TOKEN}" }}\n',
    ],
)
def test_no_error_shows_a_notifier_secret_or_header_value(toml: str, tmp_path: Path) -> None:
    """A secret or a header value of the wrong type, with a line break, or inside a table
    given where something else belongs: the problem is said, the value never."""
    problems = problems_of(toml, tmp_path)  # asserts nothing of MIDDLEOF is in them
    assert problems
    assert "12345678" not in " ".join(problems)


def test_check_config_shows_the_notifiers_with_secrets_and_header_values_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`oai400d check-config` exits 0 and prints each notifier; a secret or a header value is
    its last 4 characters at most."""
    for variable in SECRET_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("ALERTMANAGER_PASSWORD", AM_PASSWORD)
    monkeypatch.setenv("OAI400D_WEBHOOK_OPS_SECRET", HOOK_SECRET)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[pagerduty]\nrouting_key = "{GOOD_ROUTING_KEY}"\n'
        '[alertmanager]\nurl = "http://am:9093"\nusername = "oai400d"\n'
        '[[webhook]]\nname = "ops"\nurl = "https://h.example"\n'
        f'headers = {{ Authorization = "{HEADER_VALUE}" }}\n'
    )
    assert cli.main(["check-config", "--config", str(config)]) == cli.EXIT_OK
    out, err = capsys.readouterr()
    for secret in (GOOD_ROUTING_KEY, AM_PASSWORD, HOOK_SECRET, HEADER_VALUE):
        assert secret not in out + err
    assert_hidden(out + err)
    view = json.loads(out[out.index("{") :])
    assert view["pagerduty"]["routing_key"] == "…" + GOOD_ROUTING_KEY[-4:]
    assert view["alertmanager"]["password"] == "…pw42"
    assert view["webhook"][0]["secret"] == "…s3c4"
    assert view["webhook"][0]["headers"] == {"Authorization": "…hd99"}


# --- webhook names ----------------------------------------------------------------------------


def test_webhook_names_default_by_position(tmp_path: Path) -> None:
    """An entry without a name is "webhook-<its position from 1>"; a named one keeps its own."""
    settings = load(
        HOOK + '[[webhook]]\nname = "ops"\nurl = "https://h.example/b"\n'
        '[[webhook]]\nurl = "https://h.example/c"\n',
        tmp_path,
    )
    assert [w.name for w in settings.webhook] == ["webhook-1", "ops", "webhook-3"]


@pytest.mark.parametrize(
    ("names", "problem"),
    [
        (
            ['"ops"', '"ops"'],
            'webhook: two [[webhook]] entries are named "ops"',
        ),
        (
            [None, '"webhook-1"'],  # the first one's default
            'webhook: two [[webhook]] entries are named "webhook-1" (an entry without a name '
            'is "webhook-<its position>")',
        ),
        (
            ['"ops-tools"', '"OPS_tools"'],
            'webhook: the [[webhook]] names "ops-tools" and "OPS_tools" both read their secret '
            "from OAI400D_WEBHOOK_OPS_TOOLS_SECRET; rename one",
        ),
    ],
)
def test_webhook_names_are_distinct(names: list[str | None], problem: str, tmp_path: Path) -> None:
    """Two entries with one name, or names that share a secret variable, are an error."""
    toml = "".join(
        "[[webhook]]\n"
        + (f"name = {name}\n" if name is not None else "")
        + f'url = "https://h.example/{index}"\n'
        for index, name in enumerate(names)
    )
    (said,) = problems_of(toml, tmp_path)
    assert said.startswith(problem), said


# --- warnings: valid, but not what was meant --------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "environ", "warning"),
    [
        (
            "",
            {"ALERTMANAGER_TOKEN": AM_TOKEN},
            "alertmanager.bearer_token (from ALERTMANAGER_TOKEN): is set but alertmanager.url is "
            "empty, so nothing is sent to Alertmanager",
        ),
        (
            f'[alertmanager]\nusername = "u"\npassword = "{AM_PASSWORD}"\n',
            {},
            "alertmanager.password: is set but alertmanager.url is empty",
        ),
        (
            '[alertmanager]\nurl = "http://am:9093"\nresend_interval = "5m"\n',
            {},
            "alertmanager.resend_interval: 5m is not shorter than Alertmanager's default "
            "resolve_timeout (5m)",
        ),
        (
            '[pagerduty]\nmin_severity = "warning"\n',
            {},
            "[pagerduty] is configured but no routing key is set, so nothing is sent to PagerDuty",
        ),
    ],
)
def test_what_nothing_uses_is_a_warning_not_an_error(
    toml: str, environ: dict[str, str], warning: str, tmp_path: Path
) -> None:
    """A credential without its url, an interval Alertmanager outlasts, a [pagerduty] without
    a key: loaded, and said (never with the value)."""
    path = tmp_path / "config.toml"
    path.write_text(toml)
    loaded = load_config(str(path), environ=environ)
    (said,) = loaded.warnings
    assert said.startswith(warning), said
    assert_hidden(said)


def test_a_plain_config_warns_of_nothing(tmp_path: Path) -> None:
    """No notifier configured, or one configured fully: no warning."""
    path = tmp_path / "config.toml"
    path.write_text("")
    assert load_config(str(path), environ={}).warnings == ()
    path.write_text('[alertmanager]\nurl = "http://am:9093"\n' + HOOK)
    environ = {"PAGERDUTY_ROUTING_KEY": GOOD_ROUTING_KEY}
    assert load_config(str(path), environ=environ).warnings == ()


# --- reload -----------------------------------------------------------------------------------


def test_notifier_changes_are_taken_up_by_a_reload(tmp_path: Path) -> None:
    """restart_needed says nothing when only the notifiers' sections change (SIGHUP applies
    them)."""
    old = load("", tmp_path)
    new = load(
        f'[pagerduty]\nrouting_key = "{GOOD_ROUTING_KEY}"\nmin_severity = "warning"\n'
        '[alertmanager]\nurl = "http://am:9093"\nresend_interval = "30s"\n' + HOOK,
        tmp_path,
    )
    assert old != new
    assert restart_needed(old, new) == []
    assert restart_needed(new, old) == []


def test_the_categories_live_in_the_model_and_are_still_importable_from_rules() -> None:
    """The config (layer 1) checks categories against model.CATEGORIES; the rules' name stays."""
    assert rules.CATEGORIES is CATEGORIES
    assert "auth.invalid_api_key" in CATEGORIES and "not_openai" not in CATEGORIES
