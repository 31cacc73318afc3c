"""Start-up: what `classify` and the daemon import, the rule table's cache, and the fleet's
driver as an extra (issue 18). Imports are read from real subprocesses, never timed."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

from oai400d import cli, config
from oai400d.classify import load_rules, rules
from oai400d.config import Settings
from oai400d.errors import ConfigError

from .daemon_harness import ERROR_LINE, DaemonProcess, append, write_config

# What `classify` never needs: the config's validation, the daemon's notifiers, probes, file
# watching, the state DB and the fleet.
NOT_FOR_CLASSIFY = (
    "pydantic",
    "psycopg",
    "psycopg_pool",
    "slack_sdk",
    "httpx",
    "apscheduler",
    "watchdog",
    "prometheus_client",
    "oai400d.config",
    "oai400d.state",
    "oai400d.notify",
    "oai400d.fleet",
    "oai400d.fleetsync",
    "oai400d.fleetlink",
)
# What a daemon without state.fleet, Slack, the other HTTP notifiers and probes never needs.
NOT_FOR_THIS_DAEMON = (
    "psycopg",
    "psycopg_pool",
    "oai400d.fleet",
    "oai400d.fleetsync",
    "oai400d.fleetlink",
    "slack_sdk",
    "httpx",
    "apscheduler",
)

RATE_LIMITED = (
    "2026-11-25 10:00:01 ERROR worker: openai.RateLimitError: Error code: 429 - {'error': "
    "{'message': 'Rate limit reached for gpt-4o in organization org-abcdef123456 on tokens per min "
    "(TPM): Limit 30000, Used 29500, Requested 900. Please try again in 1.2s.', 'type': 'tokens', "
    "'param': None, 'code': 'rate_limit_exceeded'}}\n"
)

# Runs `oai400d classify` in a fresh interpreter, then writes the names of every module loaded.
CLASSIFY_THEN_LIST_MODULES = """
import json, sys
from oai400d.cli import main
code = main(["classify", "--json", *sys.argv[2:]])
with open(sys.argv[1], "w") as out:
    json.dump({"code": code, "modules": sorted(sys.modules)}, out)
"""


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SLACK_"))}
    for name in ("OAI400D_CONFIG", "OAI400D_FLEET_DSN", "CREDENTIALS_DIRECTORY"):
        env.pop(name, None)
    env.update(extra)
    return env


def _loaded(names: list[str], unwanted: tuple[str, ...]) -> list[str]:
    return sorted(
        name for name in names if any(name == u or name.startswith(u + ".") for u in unwanted)
    )


def test_classify_imports_no_config_daemon_or_fleet_module(tmp_path: Path) -> None:
    """`oai400d classify` without a config file: findings as ever, and none of the heavy
    modules (pydantic, psycopg, slack_sdk, httpx, apscheduler, watchdog…) is imported."""
    if Path(cli.DEFAULT_CONFIG_PATH).exists():
        pytest.skip(f"{cli.DEFAULT_CONFIG_PATH} exists here: classify reads it, with pydantic")
    empty = tmp_path / "empty.log"
    empty.write_text("")
    log = tmp_path / "app.log"
    log.write_text("2026-11-25 10:00:00 INFO web: GET /health 200\n" + RATE_LIMITED)
    listing = tmp_path / "modules.json"
    result = subprocess.run(
        [sys.executable, "-c", CLASSIFY_THEN_LIST_MODULES, str(listing), str(empty), str(log)],
        capture_output=True,
        env=_clean_env(OAI400D_CACHE_DIR=str(tmp_path / "cache")),
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    done = json.loads(listing.read_text())
    assert done["code"] == 0
    findings = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [(f["category"], f["error_code"]) for f in findings] == [
        ("rate_limit", "rate_limit_exceeded")
    ]
    assert _loaded(done["modules"], NOT_FOR_CLASSIFY) == []


def test_classify_defaults_are_the_configs() -> None:
    """Without a config file, `classify` uses its own copy of the defaults and of where the
    config is looked for: the same as the config's."""
    assert cli.ScanOptions() == cli.ScanOptions.of(Settings())
    assert (cli.CONFIG_ENV, cli.DEFAULT_CONFIG_PATH) == (
        config.CONFIG_ENV,
        config.DEFAULT_CONFIG_PATH,
    )


def test_daemon_without_fleet_imports_no_psycopg(tmp_path: Path) -> None:
    """The daemon without state.fleet (console only, probes off) finds and notifies as ever,
    and never imports psycopg, the fleet's modules, slack_sdk, httpx or APScheduler."""
    config = write_config(tmp_path)
    daemon = DaemonProcess(
        config,
        env=_clean_env(PYTHONPROFILEIMPORTTIME="1", OAI400D_CACHE_DIR=str(tmp_path / "cache")),
    )
    try:
        daemon.wait_ready()
        append(tmp_path / "logs" / "app.log", ERROR_LINE)
        daemon.wait_for(lambda n: n.get("kind") == "opened")
    finally:
        daemon.stop()
    imported = [
        line.rsplit("|", 1)[1].strip()
        for line in daemon.log().splitlines()
        if line.startswith("import time:") and "|" in line
    ]
    assert "oai400d.service" in imported  # (the listing is the daemon's, and whole)
    assert _loaded(imported, NOT_FOR_THIS_DAEMON) == []


@pytest.fixture
def fleet_driver_missing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """psycopg and its pool cannot be imported, as where the `fleet` extra is not installed;
    the fleet's modules are forgotten so that importing them is tried again."""
    ours = [name for name in sys.modules if name.split(".")[:2] == ["oai400d", "fleet"]]
    for name in ours:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.setitem(sys.modules, "psycopg_pool", None)
    try:
        yield
    finally:  # what the failed import left half-made (monkeypatch then puts ours back)
        for name in [n for n in sys.modules if n.split(".")[:2] == ["oai400d", "fleet"]]:
            del sys.modules[name]


@pytest.mark.parametrize("command", ["check-config", "run"])
def test_fleet_without_its_driver_says_how_to_install_it(
    command: str,
    tmp_path: Path,
    fleet_driver_missing: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """state.fleet set, psycopg not installed: exit 78 naming state.fleet and the install
    command, no traceback, the DSN's password not shown."""
    config_path = write_config(
        tmp_path, state={"fleet": "postgresql://oai400d:hunter2-secret@127.0.0.1:1/oai400d"}
    )
    root = logging.getLogger()  # `run` sets up the process's logging: put it back afterwards
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
    monkeypatch.delenv("OAI400D_FLEET_DSN", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.setenv("OAI400D_CACHE_DIR", str(tmp_path / "cache"))

    code = cli.main([command, "--config", str(config_path)])

    err = capsys.readouterr().err
    assert code == cli.EXIT_CONFIG == 78, err
    assert "state.fleet" in err
    assert "pip install 'oai400d[fleet]'" in err
    assert "psycopg" in err
    assert "Traceback" not in err
    assert "hunter2" not in err
    assert not (tmp_path / "state.db").exists()  # nothing started


def test_rule_table_from_its_cache_is_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The built-in table's analysis, cached, gives the very table an analysis afresh gives;
    a damaged cache file is not trusted but replaced."""
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    monkeypatch.setenv("OAI400D_CACHE_DIR", str(not_a_dir / "cache"))  # no cache: afresh
    fresh = load_rules()
    cache = tmp_path / "cache"
    monkeypatch.setenv("OAI400D_CACHE_DIR", str(cache))
    first = load_rules()  # analysed, then written
    [stored] = cache.glob("rules-*.json")
    second = load_rules()  # read from the cache
    assert fresh == first == second
    assert fresh.prefilter == second.prefilter
    assert [p.literals for r in fresh.rules for p in r.patterns] == [
        p.literals for r in second.rules for p in r.patterns
    ]
    table = resources.files("oai400d.classify").joinpath("rules.toml").read_text("utf-8")
    assert rules.builtin_document() == tomllib.loads(table)

    stored.write_text('{"document": {"rule": [')  # cut short
    assert load_rules() == fresh
    assert json.loads(stored.read_text())["document"] == tomllib.loads(table)


def test_rule_regexes_compile_when_first_used_and_user_ones_at_once() -> None:
    """A built-in pattern is compiled on its first search; a user's broken regex is still a
    config error when the table is loaded."""
    table = load_rules()
    pattern = next(p for r in table.rules for p in r.patterns if p.literals)
    assert pattern._regex is None
    assert pattern.search("zzzz", "zzzz") is False
    assert pattern._regex is None  # (none of its literals: the regex was not needed)
    assert pattern.regex.pattern == pattern.source
    assert pattern._regex is pattern.regex
    user = {
        "id": "my_rule",
        "category": "rate_limit",
        "severity": "warning",
        "title": "Mine",
        "patterns": ["(unclosed"],
        "fixes": ["fix it"],
    }
    with pytest.raises(ConfigError, match=r"my_rule.*not a valid regex"):
        load_rules([user])
