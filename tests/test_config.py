"""Configuration: every problem reported at once with its key, secrets resolved and masked."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from oai400d.classify import load_rules
from oai400d.config import (
    JournalSettings,
    Settings,
    WebhookSettings,
    load_config,
    parse_duration,
    parse_settings,
    parse_size,
    public_view,
    read_settings,
)
from oai400d.errors import ConfigError

from .support import oai400d

ROOT = Path(__file__).parent.parent


def problems_of(raw: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_settings(raw, environ={})
    return caught.value.problems


def test_every_problem_is_reported_at_once_with_its_key() -> None:
    """Three mistakes → three messages, each naming its key path."""
    problems = problems_of(
        {"alerts": {"group_wait": "10x"}, "logs": {"pathz": []}, "probes": {"failure_threshold": 0}}
    )
    assert len(problems) == 3
    assert (
        'alerts.group_wait: "10x" is not a duration like "30s" (units: ms, s, m, h, d)' in problems
    )
    assert any(p.startswith("logs.pathz: unknown key") for p in problems)
    assert any(p.startswith("probes.failure_threshold:") for p in problems)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"logs": {"read_from": "middle"}}, "logs.read_from"),
        ({"openai": {"base_url": "api.openai.com"}}, "openai.base_url"),
        ({"console": {"format": "xml"}}, "console.format"),
        ({"slacks": {}}, "slacks"),
        ({"logs": {"paths": "/var/log/*.log"}}, "logs.paths"),
        ({"logs": {"max_line": "huge"}}, "logs.max_line"),
        ({"fleet": {"lease": "0s"}}, "fleet.lease"),
        ({"fleet": {"fallback_after": "soon"}}, "fleet.fallback_after"),
        ({"fleet": {"host": ""}}, "fleet.host"),
    ],
)
def test_wrong_values_name_their_key(raw: dict[str, object], key: str) -> None:
    """The message starts with the dotted key so the user knows where to look."""
    assert problems_of(raw)[0].startswith(f"{key}:")


def test_durations() -> None:
    """Durations are strings with a unit."""
    assert parse_duration("500ms") == 0.5
    assert parse_duration("5m") == 300
    assert parse_duration("1h") == 3600
    with pytest.raises(ValueError):
        parse_duration("5 minutes")


def test_secret_lookup_order(tmp_path: Path) -> None:
    """Config value wins over the environment, which wins over $CREDENTIALS_DIRECTORY."""
    (tmp_path / "openai-api-key").write_text("sk-from-credential-0000\n")
    (tmp_path / "slack-bot-token").write_text("xoxb-from-credential-1111\n")
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path), "OPENAI_API_KEY": "sk-from-env-2222"}
    settings = parse_settings({}, environ=env)
    assert settings.openai.api_key is not None
    assert settings.openai.api_key.get_secret_value() == "sk-from-env-2222"
    assert settings.slack.bot_token is not None
    assert settings.slack.bot_token.get_secret_value() == "xoxb-from-credential-1111"
    assert settings.slack.webhook_url is None
    pinned = parse_settings({"openai": {"api_key": "sk-in-config-3333"}}, environ=env)
    assert pinned.openai.api_key is not None
    assert pinned.openai.api_key.get_secret_value() == "sk-in-config-3333"


def test_example_config_is_valid_and_complete() -> None:
    """config.example.toml parses, and it mentions every key the settings have."""
    loaded = load_config(str(ROOT / "config.example.toml"), environ={})
    text = (ROOT / "config.example.toml").read_text()
    for section, model in loaded.settings:
        if section == "rules":
            continue
        lists = {"journal": JournalSettings, "webhook": WebhookSettings}  # arrays of tables
        fields = lists[section].model_fields if section in lists else type(model).model_fields
        for key in fields:
            assert f"{key} =" in text or f"# {key} =" in text, f"{section}.{key} is not documented"


def test_check_config_masks_secrets_and_exits_0(tmp_path: Path) -> None:
    """check-config prints resolved settings with secrets masked to their last 4 characters."""
    config = tmp_path / "c.toml"
    config.write_text('[openai]\nmodels = ["gpt-4o"]\n')
    key = "sk-proj-SECRETSECRETSECRETabcd"
    result = oai400d("check-config", "--config", str(config), env={"OPENAI_API_KEY": key})
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert key not in out and "SECRETSECRET" not in out
    settings = json.loads(out[out.index("{") :])
    assert settings["openai"]["api_key"] == "…abcd"
    assert settings["openai"]["models"] == ["gpt-4o"]


def test_check_config_exits_78_naming_the_key(tmp_path: Path) -> None:
    """A bad value is reported with its key, and the exit status is 78 (EX_CONFIG)."""
    config = tmp_path / "c.toml"
    config.write_text('[alerts]\ngroup_wait = "10x"\n[logs]\nread_from = "middle"\n')
    result = oai400d("check-config", "--config", str(config))
    assert result.returncode == 78
    err = result.stderr.decode()
    assert 'alerts.group_wait: "10x" is not a duration' in err
    assert "logs.read_from:" in err


def test_missing_named_config_and_bad_toml_exit_78(tmp_path: Path) -> None:
    """A config file named but missing, or not TOML, is a config error too."""
    assert oai400d("check-config", "--config", str(tmp_path / "nope.toml")).returncode == 78
    broken = tmp_path / "b.toml"
    broken.write_text("[alerts\n")
    result = oai400d("check-config", "--config", str(broken))
    assert result.returncode == 78
    assert "not valid TOML" in result.stderr.decode()


def test_user_rules_add_and_override_by_id() -> None:
    """A new user rule is tried first; an override by id changes only the keys it gives."""
    builtin = load_rules()
    first = builtin.rules[-1]
    table = load_rules(
        [
            {"id": first.id, "severity": "info"},
            {
                "id": "myapp.budget",
                "category": "quota.insufficient",
                "severity": "critical",
                "title": "Gateway budget spent",
                "patterns": ["(?i)openai budget exhausted"],
                "fixes": ["Raise the budget"],
                "docs": ["https://wiki.example.com/budget"],
            },
        ]
    )
    assert table.rules[0].id == "myapp.budget"
    overridden = next(rule for rule in table.rules if rule.id == first.id)
    assert overridden.severity == "info" and overridden.fixes == first.fixes
    assert len(table.rules) == len(builtin.rules) + 1


def test_broken_user_rule_is_a_config_error_naming_the_rule(tmp_path: Path) -> None:
    """A user rule with a bad regex or category fails check-config with the rule's id."""
    config = tmp_path / "c.toml"
    config.write_text(
        '[[rules]]\nid = "myapp.bad"\ncategory = "nope"\nseverity = "warning"\ntitle = "t"\n'
        'patterns = ["(unclosed"]\nfixes = ["f"]\n'
    )
    result = oai400d("check-config", "--config", str(config))
    assert result.returncode == 78
    assert "myapp.bad" in result.stderr.decode()
    assert "category" in result.stderr.decode()


def test_state_fleet_is_a_masked_postgresql_uri_from_config_env_or_credential(
    tmp_path: Path,
) -> None:
    """state.fleet: validated naming the key, its password never printed, from any source."""
    config = tmp_path / "c.toml"
    config.write_text('[state]\nfleet = "postgresql://oai400d:hunter2pw@db.example:5432/fleet"\n')
    result = oai400d("check-config", "--config", str(config))
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert "hunter2pw" not in out
    settings = json.loads(out[out.index("{") :])
    assert settings["state"]["fleet"] == "postgresql://oai400d:…@db.example:5432/fleet"

    config.write_text("[state]\n")
    env = {"OAI400D_FLEET_DSN": "postgresql://u@db/fleet?password=hunter2pw&sslmode=require"}
    result = oai400d("check-config", "--config", str(config), env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert "hunter2pw" not in out
    assert "postgresql://u@db/fleet?password=…&sslmode=require" in out

    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / "fleet-dsn").write_text("mysql://root:hunter2pw@db/fleet\n")
    result = oai400d(
        "check-config", "--config", str(config), env={"CREDENTIALS_DIRECTORY": str(credentials)}
    )
    assert result.returncode == 78
    err = result.stderr.decode()
    assert "state.fleet: is not a PostgreSQL URI" in err
    assert "OAI400D_FLEET_DSN" in err and "hunter2pw" not in err


# --- secrets never shown, wherever they were put ------------------------------------------

# Made up, but shaped like the real ones; the middle is what must never be printed.
OPENAI_KEY = "sk-proj-" + "MIDDLEOFKEY" * 4 + "k3Y9"
BOT_TOKEN = "xoxb-1234567890-0987654321-MIDDLEOFBOTTOKENb0T1"
USER_TOKEN = "xoxp-1234567890-0987654321-MIDDLEOFUSERTOKENu5R1"
WEBHOOK = "https://hooks.slack.com/services/T00000000/B00000000/MIDDLEOFWEBHOOKw3B1"
SECRETS = (OPENAI_KEY, BOT_TOKEN, USER_TOKEN, WEBHOOK)


def assert_hidden(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text
    assert "MIDDLEOF" not in text and "PASSWORD" not in text


def test_a_secret_of_the_wrong_type_is_named_not_echoed() -> None:
    """`api_key = ["sk-…"]`: the key and the right form are said, not the value."""
    (problem,) = problems_of({"openai": {"api_key": [OPENAI_KEY]}})
    assert problem.startswith('openai.api_key: must be a string like api_key = "…", not an array')
    assert_hidden(problem)
    (problem,) = problems_of({"slack": {"bot_token": 12345678901234}})
    assert (
        problem.startswith("slack.bot_token: must be a string") and "12345678901234" not in problem
    )


@pytest.mark.parametrize(
    ("raw", "start", "names"),
    [
        # A key pasted into a URL: named by its kind, with where it belongs.
        (
            {"openai": {"base_url": OPENAI_KEY}},
            "openai.base_url: holds an OpenAI API key (sk-…k3Y9)",
            ["openai.api_key", "OPENAI_API_KEY"],
        ),
        (
            {"slack": {"channel": BOT_TOKEN}},
            "slack.channel: holds a Slack bot token (xoxb-…b0T1)",
            ["slack.bot_token", "#openai-alerts"],
        ),
        (
            {"slack": {"bot_token": WEBHOOK}},
            "slack.bot_token: holds a Slack incoming webhook URL (https://hooks.slack.com/…w3B1)",
            ["slack.webhook_url", "xoxb-"],
        ),
        (
            {"slack": {"bot_token": OPENAI_KEY}},
            "slack.bot_token: holds an OpenAI API key (sk-…k3Y9)",
            ["openai.api_key", "xoxb-"],
        ),
        (
            {"openai": {"api_key": BOT_TOKEN}},
            "openai.api_key: holds a Slack bot token (xoxb-…b0T1)",
            ["slack.bot_token"],
        ),
        (
            {"slack": {"bot_token": USER_TOKEN}},
            "slack.bot_token: holds a Slack user token (xoxp-…u5R1)",
            ["a bot token (xoxb-", "Bot User OAuth Token"],
        ),
        (
            {"slack": {"webhook_url": BOT_TOKEN}},
            "slack.webhook_url: holds a Slack bot token (xoxb-…b0T1)",
            ["slack.bot_token", "https://hooks.slack.com/services/…"],
        ),
        # In a list, the element is named, and the type error of the list is not said again.
        (
            {"slack": {"channel": [BOT_TOKEN]}},
            "slack.channel.0: holds a Slack bot token (xoxb-…b0T1)",
            ["slack.bot_token"],
        ),
        (
            {"openai": {"models": ["gpt-4o", OPENAI_KEY]}},
            "openai.models.1: holds an OpenAI API key (sk-…k3Y9)",
            ["openai.api_key", "remove it from here"],
        ),
    ],
)
def test_a_value_in_the_wrong_field_names_both_fields_masked(
    raw: dict[str, object], start: str, names: list[str]
) -> None:
    """A token's shape tells where it belongs; the message names both keys and masks it."""
    problems = problems_of(raw)
    assert len(problems) == 1, problems
    assert problems[0].startswith(start), problems[0]
    for name in names:
        assert name in problems[0]
    assert_hidden(problems[0])


def test_a_misplaced_secret_from_the_environment_names_its_variable(tmp_path: Path) -> None:
    """SLACK_BOT_TOKEN holding the webhook URL is an error naming the variable, never the value."""
    with pytest.raises(ConfigError) as caught:
        parse_settings({}, environ={"SLACK_BOT_TOKEN": WEBHOOK})
    (problem,) = caught.value.problems
    assert problem.startswith("slack.bot_token (from SLACK_BOT_TOKEN): holds a Slack incoming")
    assert "slack.webhook_url" in problem
    assert_hidden(str(caught.value))
    (tmp_path / "openai-api-key").write_text(USER_TOKEN + "\n")
    with pytest.raises(ConfigError) as caught:
        parse_settings({}, environ={"CREDENTIALS_DIRECTORY": str(tmp_path)})
    (problem,) = caught.value.problems
    assert problem.startswith("openai.api_key (from the openai-api-key credential): holds a Slack")
    assert_hidden(problem)


def test_every_problem_at_once_with_secrets_among_them() -> None:
    """Misplaced secrets, a wrong type and a bad duration are reported together, none echoed."""
    problems = problems_of(
        {
            "openai": {"base_url": OPENAI_KEY, "api_key": [OPENAI_KEY]},
            "slack": {"channel": BOT_TOKEN, "bot_token": USER_TOKEN},
            "alerts": {"group_wait": "10x"},
        }
    )
    assert sorted(p.split(":")[0] for p in problems) == [
        "alerts.group_wait",
        "openai.api_key",
        "openai.base_url",
        "slack.bot_token",
        "slack.channel",
    ]
    assert_hidden("\n".join(problems))


def test_url_passwords_are_masked_in_errors_and_in_the_settings_shown() -> None:
    """`https://user:PASSWORD@…` keeps its user and host, never its password."""
    (problem,) = problems_of({"openai": {"base_url": "htps://proxy:PASSWORD1@llm.example/v1"}})
    assert problem == 'openai.base_url: "htps://proxy:…@llm.example/v1" is not an http(s) URL'
    (problem,) = problems_of({"probes": {"status_url": ["https://u:PASSWORD2@status.example"]}})
    assert problem.startswith("probes.status_url: ['https://u:…@status.example'] is not valid")
    settings = parse_settings(
        {
            "openai": {"base_url": "https://proxy:PASSWORD1@llm.example/v1"},
            "probes": {"status_url": "https://u:PASSWORD2@status.example/api/v2/summary.json"},
        },
        environ={},
    )
    assert settings.openai.base_url == "https://proxy:PASSWORD1@llm.example/v1"  # used as given
    view = public_view(settings)
    assert view["openai"]["base_url"] == "https://proxy:…@llm.example/v1"
    assert view["probes"]["status_url"] == "https://u:…@status.example/api/v2/summary.json"
    assert_hidden(json.dumps(view))


def test_check_config_masks_a_url_password_and_a_bad_one_exits_78(tmp_path: Path) -> None:
    """End to end: the printed settings and the error both hide the password."""
    config = tmp_path / "c.toml"
    config.write_text('[openai]\nbase_url = "https://proxy:PASSWORD@llm.example/v1"\n')
    result = oai400d("check-config", "--config", str(config))
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    settings = json.loads(out[out.index("{") :])
    assert settings["openai"]["base_url"] == "https://proxy:…@llm.example/v1"
    assert_hidden(out + result.stderr.decode())

    config.write_text(
        f'[openai]\nbase_url = "ftp://proxy:PASSWORD@llm.example/v1"\n[slack]\nchannel = "{BOT_TOKEN}"\n'
    )
    result = oai400d("check-config", "--config", str(config))
    assert result.returncode == 78
    err = result.stderr.decode()
    assert 'openai.base_url: "ftp://proxy:…@llm.example/v1" is not an http(s) URL' in err
    assert "slack.channel: holds a Slack bot token (xoxb-…b0T1)" in err
    assert_hidden(result.stdout.decode() + err)


def test_whitespace_around_a_secret_is_stripped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A pasted newline is removed and said (never with the value); a credential's one final
    newline is normal and stripped silently."""
    settings, warnings = read_settings({"openai": {"api_key": OPENAI_KEY + "\n"}}, environ={})
    assert settings.openai.api_key is not None
    assert settings.openai.api_key.get_secret_value() == OPENAI_KEY
    assert warnings == (
        "openai.api_key: had spaces or a line break around it, which were stripped; remove "
        "them from the config file (the value is a secret and is not shown)",
    )
    with caplog.at_level(logging.WARNING, logger="oai400d.config"):
        settings = parse_settings({}, environ={"SLACK_BOT_TOKEN": " " + BOT_TOKEN + "\r\n"})
    assert settings.slack.bot_token is not None
    assert settings.slack.bot_token.get_secret_value() == BOT_TOKEN
    assert [r.getMessage() for r in caplog.records] == [
        "slack.bot_token (from SLACK_BOT_TOKEN): had spaces or a line break around it, which "
        "were stripped; remove them from SLACK_BOT_TOKEN (the value is a secret and is not shown)"
    ]
    (tmp_path / "slack-bot-token").write_text(BOT_TOKEN + "\n")
    (tmp_path / "openai-api-key").write_text(OPENAI_KEY + " \n")
    settings, warnings = read_settings({}, environ={"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert settings.slack.bot_token is not None and settings.openai.api_key is not None
    assert settings.slack.bot_token.get_secret_value() == BOT_TOKEN
    assert settings.openai.api_key.get_secret_value() == OPENAI_KEY
    assert len(warnings) == 1 and warnings[0].startswith(
        "openai.api_key (from the openai-api-key credential): had spaces"
    )
    config = tmp_path / "c.toml"
    config.write_text(f'[slack]\nwebhook_url = "{WEBHOOK}\\n"\n')
    loaded = load_config(str(config), environ={})
    assert loaded.warnings[0].startswith("slack.webhook_url: had spaces or a line break")
    assert_hidden(" ".join(loaded.warnings))


# --- unknown keys: did you mean --------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (
            {"alerts": {"grop_wait": "10s"}},
            "alerts.grop_wait: unknown key; did you mean alerts.group_wait?",
        ),
        ({"alert": {"group_wait": "10s"}}, "alert: unknown section; did you mean [alerts]?"),
        ({"paths": ["/var/log/app/*.log"]}, "paths: unknown key; did you mean logs.paths?"),
        (
            {"alerts": {"paths": ["/var/log/app/*.log"]}},
            "alerts.paths: unknown key; did you mean logs.paths?",
        ),
        ({"group_wait": "10s"}, "group_wait: unknown key; did you mean alerts.group_wait?"),
        (
            {"journal": [{"unit": "app.service", "indentifier": "x"}]},
            "journal.0.indentifier: unknown key; did you mean journal.0.identifier?",
        ),
        (
            {"logs": {"colour": "red"}},
            "logs.colour: unknown key (check its spelling against config.example.toml)",
        ),
    ],
)
def test_unknown_keys_and_sections_get_the_nearest_known_one(
    raw: dict[str, object], problem: str
) -> None:
    """A misspelling or a key in the wrong table is answered with the key meant."""
    (said,) = problems_of(raw)
    assert said.startswith(problem), said


def test_every_section_suggests_its_own_keys() -> None:
    """Each table's misspelt first key is answered (no section is missing from the lookup)."""
    for section, field in Settings.model_fields.items():
        if section == "rules":
            continue
        # Arrays of tables, with what an entry needs besides the misspelt key.
        lists = {"journal": (JournalSettings, "unit"), "webhook": (WebhookSettings, "url")}
        model = lists[section][0] if section in lists else field.annotation
        assert isinstance(model, type)
        first = next(iter(model.model_fields))
        wrong = first[:-1] + ("x" if first[-1] != "x" else "y")
        raw: dict[str, object] = (
            {section: [{lists[section][1]: "https://h.example", wrong: "x"}]}
            if section in lists
            else {section: {wrong: "1"}}
        )
        said = [p for p in problems_of(raw) if "unknown key" in p]
        assert len(said) == 1 and f"{first}?" in said[0], (section, said)


# --- durations and sizes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1h30m", 5400.0), ("1m30s", 90.0), ("1h 30m", 5400.0), ("1d12h", 129600.0), ("2s500ms", 2.5)],
)
def test_compound_durations(text: str, seconds: float) -> None:
    """Parts largest first add up; the settings take them as any duration."""
    assert parse_duration(text) == seconds
    settings = parse_settings({"alerts": {"repeat_interval": text}}, environ={})
    assert settings.alerts.repeat_interval == seconds


def test_a_compound_duration_out_of_order_names_the_key() -> None:
    (problem,) = problems_of({"alerts": {"group_wait": "30m1h"}})
    assert problem == (
        'alerts.group_wait: "30m1h" repeats a unit or puts a smaller one first; write it '
        'largest first, like "1h30m"'
    )
    (problem,) = problems_of({"alerts": {"group_wait": "1m1m"}})
    assert problem.startswith('alerts.group_wait: "1m1m" repeats a unit')


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("64k", 65536),
        ("64K", 65536),
        ("1.5MiB", 1572864),
        ("1MiB", 1048576),
        ("2M", 2097152),
        ("64KB", 64000),
        ("0.5k", 512),
        ("4096", 4096),
        ("1G", 1024**3),
    ],
)
def test_sizes(text: str, size: int) -> None:
    """Short and decimal sizes, k/M/G in 1024s (as nginx and systemd), KB/MB/GB in 1000s."""
    assert parse_size(text) == size
    assert parse_settings({"logs": {"max_line": text}}, environ={}).logs.max_line == size


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("1.5B", '"1.5B" is not a whole number of bytes more than 0'),
        ("0k", '"0k" is not a whole number of bytes more than 0'),
        ("64x", '\'64x\' is not a size like "64k" or "1.5MiB"'),
        ("big", "'big' is not a size like"),
    ],
)
def test_a_bad_size_names_the_key(text: str, said: str) -> None:
    (problem,) = problems_of({"logs": {"max_event_bytes": text}})
    assert problem.startswith(f"logs.max_event_bytes: {said}"), problem
