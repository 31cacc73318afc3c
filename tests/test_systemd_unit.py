"""systemd/oai400d.service and its drop-ins for container hosts (systemd/drop-ins/): what they must
contain, that systemd accepts them, and how exposed the service is."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from oai400d.config import parse_settings

UNIT = Path(__file__).parent.parent / "systemd" / "oai400d.service"
INSTALLED_BINARY = "/opt/oai400d/venv/bin/oai400d"
MAX_EXPOSURE = 1.5
DROP_INS = Path(__file__).parent.parent / "systemd" / "drop-ins"
# CAP_DAC_READ_SEARCH costs 0.2 in systemd-analyze's rating (1.4 -> 1.6 with systemd 252).
MAX_EXPOSURE_WITH_DROP_IN = 1.7
SECRETS = ("openai-api-key", "slack-bot-token", "slack-webhook-url")


def directives(section: str) -> list[tuple[str, str]]:
    """(key, value) pairs of one section, in order, repeated keys kept."""
    pairs: list[tuple[str, str]] = []
    current = ""
    for raw in UNIT.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = line.strip("[]")
        elif current == section:
            key, _, value = line.partition("=")
            pairs.append((key.strip(), value.strip()))
    return pairs


def values(key: str, section: str = "Service") -> list[str]:
    return [v for k, v in directives(section) if k == key]


def analyze() -> str:
    """The systemd-analyze binary, or skip when this host has none."""
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip("systemd-analyze is not installed")
    return found


def run(*args: str, unit_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    """systemd-analyze …; with unit_path, that directory is searched first for units and their
    `NAME.service.d/` drop-ins (SYSTEMD_UNIT_PATH; the trailing ":" keeps the default paths)."""
    env = {"SYSTEMD_PAGER": "cat", "SYSTEMD_COLORS": "0", "PATH": "/usr/bin:/bin"}
    if unit_path is not None:
        env["SYSTEMD_UNIT_PATH"] = f"{unit_path}:"
    return subprocess.run(args, capture_output=True, text=True, timeout=60, env=env, check=False)


def local_unit(directory: Path) -> Path:
    """A copy of the unit in directory whose commands point at this environment's oai400d (the
    /opt/oai400d of the unit is not installed here, and verify checks that it is executable)."""
    local = Path(sys.executable).with_name("oai400d")
    executable = str(local if local.exists() else Path(sys.executable))
    copy = directory / UNIT.name
    copy.write_text(UNIT.read_text(encoding="utf-8").replace(INSTALLED_BINARY, executable))
    return copy


def exposure(output: str) -> float:
    """The overall exposure `systemd-analyze security` printed (skip where it has no --offline)."""
    if "--offline" in output and "unrecognized option" in output:
        pytest.skip("systemd-analyze is older than 250 (no --offline)")
    found = re.search(r"Overall exposure level for oai400d\.service: (\d+(?:\.\d+)?)", output)
    assert found, output
    return float(found.group(1))


def test_unit_has_the_service_contract() -> None:
    """Type=notify with a watchdog, reload by SIGHUP, check-config first, no restart on 78."""
    assert values("Type") == ["notify"]
    assert values("NotifyAccess") == ["main"]
    assert values("WatchdogSec") and values("WatchdogSec")[0].endswith("s")
    assert any("check-config" in v for v in values("ExecStartPre"))
    assert [v for v in values("ExecStart") if " run " in f"{v} "]
    assert "/bin/kill -HUP $MAINPID" in values("ExecReload")
    assert values("Restart") == ["on-failure"]
    assert values("RestartPreventExitStatus") == ["78"]
    assert values("StateDirectory") == ["oai400d"]
    assert values("ConfigurationDirectory") == ["oai400d"]
    assert values("SupplementaryGroups") == ["adm"]
    assert values("DynamicUser") == ["yes"]


def test_every_secret_is_a_credential_that_may_be_missing() -> None:
    """Each secret is loaded as a credential, with a SetCredential= default so that a missing
    file (only a webhook, no Slack at all) does not fail the unit."""
    loaded = dict(v.split(":", 1) for v in values("LoadCredential"))
    defaults = dict(v.split(":", 1) for v in values("SetCredential"))
    for name in SECRETS:
        assert loaded[name] == f"/etc/oai400d/credentials/{name}"
        assert defaults[name] == r"\x20"  # a single space: no secret in the unit


def test_a_blank_credential_counts_as_not_set(tmp_path: Path) -> None:
    """The SetCredential= default (one space) reads as an unset secret, not as a token " "."""
    for name in SECRETS:
        (tmp_path / name).write_text(" ", encoding="utf-8")
    settings = parse_settings({}, {"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert settings.openai.api_key is None
    assert settings.slack.bot_token is None and settings.slack.webhook_url is None


def test_unit_never_maps_users_away() -> None:
    """PrivateUsers= would turn group adm into nobody inside the service: logs unreadable."""
    assert values("PrivateUsers") in ([], ["no"])


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    """`systemd-analyze verify` finds nothing wrong (ExecStart pointed at a real executable,
    as /opt/oai400d is not installed here)."""
    binary = analyze()
    copy = local_unit(tmp_path)
    result = run(binary, "verify", "--man=no", "--generators=no", str(copy))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert UNIT.name not in output, output


def test_unit_exposure_is_low() -> None:
    """`systemd-analyze security --offline=true` rates the unit's exposure 1.5 or lower."""
    binary = analyze()
    result = run(binary, "security", "--offline=true", "--no-pager", str(UNIT))
    output = result.stdout + result.stderr
    assert exposure(output) <= MAX_EXPOSURE, output


# -- the drop-ins for container hosts -------------------------------------------------------------


def drop_in_directives(path: Path) -> list[tuple[str, str]]:
    """(key, value) pairs of a drop-in's [Service] section."""
    pairs = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            pairs.append((key.strip(), value.strip()))
    return pairs


@pytest.mark.parametrize("name", ["docker.conf", "kubernetes.conf"])
def test_a_container_host_drop_in_grants_reading_and_nothing_else(name: str) -> None:
    """Docker's and the kubelet's logs are root:root 0640, so each drop-in grants exactly
    CAP_DAC_READ_SEARCH (bounding and ambient), says plainly that it reads every file, hides the
    host's usual secrets, and changes no other setting of the unit's sandbox."""
    path = DROP_INS / name
    text = path.read_text(encoding="utf-8")
    pairs = drop_in_directives(path)
    assert {k for k, _ in pairs} == {"CapabilityBoundingSet", "AmbientCapabilities",
                                     "InaccessiblePaths"}, pairs
    assert dict(pairs)["CapabilityBoundingSet"] == "CAP_DAC_READ_SEARCH"
    assert dict(pairs)["AmbientCapabilities"] == "CAP_DAC_READ_SEARCH"
    hidden = {p.lstrip("-") for k, v in pairs if k == "InaccessiblePaths" for p in v.split()}
    assert {"/etc/shadow", "/etc/oai400d/credentials", "/root"} <= hidden
    assert "READ EVERY FILE" in text and "/etc/systemd/system/oai400d.service.d/" in text
    assert "[Service]" in text


@pytest.mark.parametrize("name", ["docker.conf", "kubernetes.conf"])
def test_systemd_accepts_the_unit_with_each_drop_in(tmp_path: Path, name: str) -> None:
    """`systemd-analyze verify` of the unit with the drop-in applied (found in
    `oai400d.service.d/` beside the unit, on the unit search path) finds nothing wrong, and
    `systemd-analyze security` shows the drop-in read: the capability counted, the exposure
    still low."""
    binary = analyze()
    copy = local_unit(tmp_path)
    (tmp_path / "oai400d.service.d").mkdir()
    installed = tmp_path / "oai400d.service.d" / name
    installed.write_text((DROP_INS / name).read_text(encoding="utf-8"), encoding="utf-8")
    result = run(binary, "verify", "--man=no", "--generators=no", str(copy), unit_path=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert name not in output and UNIT.name not in output, output
    security = run(
        binary, "security", "--offline=true", "--no-pager", str(copy), unit_path=tmp_path
    )
    rated = security.stdout + security.stderr
    level = exposure(rated)
    assert re.search(r"✗ CapabilityBoundingSet=~CAP_\(DAC_\*", rated), rated
    alone = run(binary, "security", "--offline=true", "--no-pager", str(UNIT))
    assert exposure(alone.stdout + alone.stderr) < level  # the drop-in was read
    assert level <= MAX_EXPOSURE_WITH_DROP_IN, rated
