"""The built wheel is complete: installed into a fresh venv outside the checkout, every command
runs from there, and the man page, the completions, the example config and the systemd unit are
there without the source.

The wheel is built once per session (the xdist workers share it), offline, the way
`python -m build` does it: an sdist from a copy of the tree (so MANIFEST.in is tested too), then
the wheel from that sdist, by setuptools' own hooks with the build tools of the project's venv
(the `test` extra: no index is reached). The fresh venv gets the runtime libraries from the
project's venv through a .pth file (installing them from an index would be slow and need the
network); oai400d itself comes from the wheel only, which `test_oai400d_comes_from_the_wheel`
checks.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from oai400d.arguments import build_parser

ROOT = Path(__file__).resolve().parent.parent
# What the build reads: the sdist is made from these (and MANIFEST.in picks from them).
SOURCE_ENTRIES = (
    "pyproject.toml",
    "setup.py",
    "MANIFEST.in",
    "LICENSE",
    "README.md",
    "config.example.toml",
    "systemd",
    "daemon",
)
INSTALLED_BINARY = "/opt/oai400d/venv/bin/oai400d"  # what the shipped unit runs
SYSTEMD_PATTERNS = ("*.service", "config.toml", "drop-ins/*.conf")
TIMEOUT = 120


@dataclass(frozen=True)
class Installed:
    """A fresh venv with the wheel installed, and a scratch directory outside the checkout."""

    venv: Path
    scratch: Path

    @property
    def binary(self) -> Path:
        return self.venv / "bin" / "oai400d"

    def env(self) -> dict[str, str]:
        """No inherited variable: no config, no secret, no PYTHONPATH reaches the commands."""
        return {
            "PATH": f"{self.venv / 'bin'}:/usr/bin:/bin",
            "HOME": str(self.scratch),
            "OAI400D_CACHE_DIR": str(self.scratch / "cache"),
            "LANG": "C.UTF-8",
        }

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run_program(str(self.binary), *args)

    def python(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The fresh venv's python with these arguments."""
        return self.run_program(str(self.venv / "bin" / "python"), *args)

    def run_program(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(command),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env=self.env(),
            cwd=self.scratch,
            check=False,
        )


def _checked(args: list[str], cwd: Path) -> None:
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=TIMEOUT, cwd=cwd, check=False
    )
    assert result.returncode == 0, f"{args}:\n{result.stdout}\n{result.stderr}"


def _copy_source(target: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    for name in SOURCE_ENTRIES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=ignore)
        else:
            shutil.copy2(source, target / name)


# Under pytest-xdist each worker runs a module's fixtures: the first to come builds and installs
# in the directory the workers share, under a lock, and the others use what it left.
SHARED_BUILD = "oai400d-wheel"


@dataclass(frozen=True)
class Built:
    sdist: Path
    wheel: Path
    installed: Installed


def _build_and_install(base: Path) -> Built:
    source = base / "source"
    source.mkdir()
    _copy_source(source)
    dist = base / "dist"
    # setuptools' own hooks, as `python -m build` calls them: the sdist from the tree, then the
    # wheel from the unpacked sdist. No index is reached: the build tools are the venv's.
    sdist_hook = "import sys, setuptools.build_meta as b; b.build_sdist(sys.argv[1])"
    _checked([sys.executable, "-c", sdist_hook, str(dist)], cwd=source)
    (sdist,) = dist.glob("oai400d-*.tar.gz")
    with tarfile.open(sdist) as archive:
        archive.extractall(base / "unpacked", filter="data")
    (unpacked,) = (base / "unpacked").iterdir()
    wheel_hook = "import sys, setuptools.build_meta as b; b.build_wheel(sys.argv[1])"
    _checked([sys.executable, "-c", wheel_hook, str(dist)], cwd=unpacked)
    (wheel,) = dist.glob("oai400d-*.whl")

    venv = base / "venv"
    _checked([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=base)
    install = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install"]
    _checked([*install, "--no-deps", "--no-index", "--no-compile", "-q", str(wheel)], cwd=base)
    # The runtime libraries from the project's venv, after the fresh venv's own site-packages:
    # a .pth line only appends a directory, so the project venv's own .pth files (its editable
    # oai400d) are not read, and the wheel's oai400d is the only one found.
    fresh_site = Path(
        sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)})
    )
    (fresh_site / "project-libraries.pth").write_text(
        f"{sysconfig.get_path('purelib')}\n", encoding="utf-8"
    )
    scratch = base / "scratch"
    scratch.mkdir()
    return Built(sdist, wheel, Installed(venv, scratch))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The sdist, the wheel and a fresh venv (outside the checkout) with the wheel installed."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the directory every worker's base is in
    base = shared / SHARED_BUILD
    with open(shared / f"{SHARED_BUILD}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = base / "done"
        if not done.exists():
            shutil.rmtree(base, ignore_errors=True)
            base.mkdir()
            _build_and_install(base)
            done.touch()
    (sdist,) = (base / "dist").glob("oai400d-*.tar.gz")
    (wheel,) = (base / "dist").glob("oai400d-*.whl")
    return Built(sdist, wheel, Installed(base / "venv", base / "scratch"))


@pytest.fixture
def sdist(built: Built) -> Path:
    return built.sdist


@pytest.fixture
def wheel(built: Built) -> Path:
    return built.wheel


@pytest.fixture
def installed(built: Built, tmp_path: Path) -> Installed:
    """The installed wheel, with a scratch directory of the test's own."""
    return Installed(built.installed.venv, tmp_path)


def test_sdist_carries_what_the_wheel_is_built_from(sdist: Path) -> None:
    """MANIFEST.in: the example config, the systemd files and the licence are in the sdist."""
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    expected = {"LICENSE", "config.example.toml", "setup.py"}
    expected |= {f"systemd/{p.relative_to(ROOT / 'systemd')}" for p in _repo_systemd_files().values()}
    assert expected <= names, sorted(expected - names)


def test_oai400d_comes_from_the_wheel(installed: Installed) -> None:
    """The fresh venv's python imports oai400d from its own site-packages, not the checkout."""
    result = installed.python("-c", "import oai400d; print(oai400d.__file__)")
    assert result.returncode == 0, result.stderr
    where = Path(result.stdout.strip()).resolve()
    assert where.is_relative_to(installed.venv.resolve()), where
    assert not where.is_relative_to(ROOT), where


def test_version_and_help(installed: Installed) -> None:
    """`--version` names the version; `--help` lists every command, init and unit among them."""
    from oai400d import __version__

    version = installed.run("--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"oai400d {__version__}"
    top = installed.run("--help")
    assert top.returncode == 0, top.stderr
    for name in _command_names():
        assert name in top.stdout


def test_every_command_has_help_that_stands_alone(installed: Installed) -> None:
    """Each command's `--help` works from the installed wheel and refers to nothing the wheel
    does not carry (DESIGN.md is the project's, not the operator's)."""
    names = _command_names()
    texts = _in_one_process(installed, [[name, "--help"] for name in names])
    for name in names:
        code, text = texts[f"{name} --help"]
        assert code == 0
        assert text.startswith(f"usage: oai400d {name}"), text
        assert "DESIGN.md" not in text, f"{name} --help refers to DESIGN.md"


def test_man_page_and_completions_are_installed(installed: Installed) -> None:
    """share/man/man1/oai400d.1, bash's and zsh's completions, generated from the parser: each
    names every command."""
    share = installed.venv / "share"
    man = (share / "man" / "man1" / "oai400d.1").read_text(encoding="utf-8")
    bash = (share / "bash-completion" / "completions" / "oai400d").read_text(encoding="utf-8")
    zsh = (share / "zsh" / "site-functions" / "_oai400d").read_text(encoding="utf-8")
    assert man.startswith(".TH OAI400D")
    assert zsh.startswith("#compdef oai400d")
    assert "complete" in bash and "oai400d" in bash
    for name in _command_names():
        assert name.replace("-", "\\-") in man  # (roff escapes a hyphen)
        assert name in bash and name in zsh
    assert "DESIGN.md" not in man


def test_bash_completion_completes_the_commands(installed: Installed) -> None:
    """Sourced into bash, the installed completion offers the commands a prefix starts."""
    completion = installed.venv / "share" / "bash-completion" / "completions" / "oai400d"
    script = (
        f"source {completion}\n"
        'function_name=$(complete -p oai400d | sed "s/.* -F \\([^ ]*\\).*/\\1/")\n'
        'COMP_WORDS=(oai400d un); COMP_CWORD=1; COMP_LINE="oai400d un"; COMP_POINT=10\n'
        '"$function_name" oai400d un oai400d\n'
        'echo "${COMPREPLY[@]}"\n'
    )
    result = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=installed.env(),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["unsilence", "unit"]


def test_example_config_is_the_repositorys_and_checks(installed: Installed) -> None:
    """`oai400d init` writes config.example.toml byte for byte, and `check-config` accepts it
    with no environment (no secret set); `--systemd` gives the unit's config, valid too."""
    scratch = installed.scratch
    for flags, source in (([], ROOT / "config.example.toml"), (["--systemd"], ROOT / "systemd" / "config.toml")):
        target = scratch / "etc" / f"config{len(flags)}.toml"
        written = installed.run("init", *flags, "--config", str(target))
        assert written.returncode == 0, written.stderr
        assert target.read_bytes() == source.read_bytes()
        assert target.stat().st_mode & 0o777 == 0o644
        checked = installed.run("check-config", "--config", str(target))
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert ": valid" in checked.stdout


def test_init_keeps_an_existing_file_unless_forced(installed: Installed) -> None:
    """A second `init` exits 1 and leaves the operator's file as it was; --force replaces it."""
    target = installed.scratch / "mine.toml"
    target.write_text("# mine\n", encoding="utf-8")
    refused = installed.run("init", "--config", str(target))
    assert refused.returncode == 1
    assert "already exists" in refused.stderr and "--force" in refused.stderr
    assert target.read_text(encoding="utf-8") == "# mine\n"
    forced = installed.run("init", "--force", "--config", str(target))
    assert forced.returncode == 0, forced.stderr
    assert target.read_bytes() == (ROOT / "config.example.toml").read_bytes()


def test_init_says_where_it_cannot_write(installed: Installed) -> None:
    """A place that cannot be written: exit 73, naming the path and what to do."""
    blocker = installed.scratch / "a-file"
    blocker.write_text("", encoding="utf-8")
    target = blocker / "config.toml"  # a directory that is a file
    result = installed.run("init", "--config", str(target))
    assert result.returncode == 73
    assert str(target) in result.stderr and "--config PATH" in result.stderr


def test_unit_files_are_the_repositorys(installed: Installed) -> None:
    """`oai400d unit --list` names every systemd file of the repository (the unit, its config,
    the drop-ins; the unit first), and `oai400d unit NAME` prints each byte for byte: the
    wheel's copies cannot drift."""
    repo = _repo_systemd_files()
    listed = installed.run("unit", "--list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split()[0] == "oai400d.service"
    assert sorted(listed.stdout.split()) == sorted(repo)
    printed = _in_one_process(installed, [["unit", name] for name in repo])
    for name, path in repo.items():
        assert printed[f"unit {name}"] == [0, path.read_text(encoding="utf-8")]
    assert installed.run("unit").stdout == repo["oai400d.service"].read_text(encoding="utf-8")
    unknown = installed.run("unit", "../pyproject.toml")
    assert unknown.returncode == 2
    assert "no systemd file named" in unknown.stderr and "--list" in unknown.stderr


def test_systemd_accepts_the_installed_unit(installed: Installed) -> None:
    """The unit that `oai400d unit` prints passes `systemd-analyze verify`, with ExecStart
    pointed at the fresh venv's oai400d (as tests/test_systemd_unit.py does for the repo's)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    printed = installed.run("unit")
    assert printed.returncode == 0, printed.stderr
    unit = installed.scratch / "units" / "oai400d.service"
    unit.parent.mkdir(exist_ok=True)
    unit.write_text(printed.stdout.replace(INSTALLED_BINARY, str(installed.binary)))
    env = {"SYSTEMD_PAGER": "cat", "SYSTEMD_COLORS": "0", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [analyze, "verify", "--man=no", "--generators=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert unit.name not in output, output


def _in_one_process(installed: Installed, commands: list[list[str]]) -> dict[str, list[Any]]:
    """Each command's [exit status, standard output], from the installed oai400d.cli.main, all
    in one process of the fresh venv (a process each would cost seconds)."""
    script = (
        "import contextlib, io, json, sys\n"
        "from oai400d.cli import main\n"
        "answers = {}\n"
        "for command in json.loads(sys.argv[1]):\n"
        "    out = io.StringIO()\n"
        "    with contextlib.redirect_stdout(out):\n"
        "        try:\n"
        "            code = main(command)\n"
        "        except SystemExit as exc:\n"
        "            code = exc.code\n"
        "    answers[' '.join(command)] = [code, out.getvalue()]\n"
        "print(json.dumps(answers))\n"
    )
    result = installed.python("-c", script, json.dumps(commands))
    assert result.returncode == 0, result.stderr
    answers: dict[str, list[Any]] = json.loads(result.stdout)
    return answers


def _repo_systemd_files() -> dict[str, Path]:
    """The repository's systemd files by name (the unit, its config, every drop-in)."""
    directory = ROOT / "systemd"
    return {p.name: p for pattern in SYSTEMD_PATTERNS for p in directory.glob(pattern)}


def _command_names() -> list[str]:
    """Every subcommand of the parser the wheel's man page and completions are made from."""
    parser = build_parser()
    (commands,) = [a for a in parser._actions if a.dest == "command"]
    assert commands.choices is not None
    return sorted(commands.choices)


def test_the_wheel_has_a_licence(wheel: Path) -> None:
    """The MIT licence named in pyproject.toml is in the wheel's metadata."""
    import zipfile

    with zipfile.ZipFile(wheel) as archive:
        licences = [n for n in archive.namelist() if n.endswith("/LICENSE")]
        assert licences, archive.namelist()
        text = archive.read(licences[0]).decode("utf-8")
    assert text.startswith("MIT License") and "the oai400d authors" in text
