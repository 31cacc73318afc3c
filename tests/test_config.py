"""Configuration: every problem reported at once with its key, secrets resolved and masked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oai400d.classify import load_rules
from oai400d.config import JournalSettings, load_config, parse_duration, parse_settings
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
        fields = JournalSettings.model_fields if section == "journal" else type(model).model_fields
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
