"""The command line's grammar: every command, its options and their help texts.

Standard library and oai400d's stdlib-only modules only: the wheel's build imports this module
(setup.py), in an environment without the runtime libraries that cli.py's imports need, to
generate the man page and the bash/zsh completions from the same parser the program uses.
Each help text stands on its own: the man page and `--help` are all an installed wheel has.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from oai400d import __version__
from oai400d.model import PROBE_NAMES

PROG = "oai400d"
DESCRIPTION = "Finds OpenAI API errors in application logs, explains them, alerts Slack."
# `command(name, help)`: a subcommand with the common --config option
_Command = Callable[[str, str], argparse.ArgumentParser]
EPILOG = (
    "The config file is --config PATH, else $OAI400D_CONFIG, else /etc/oai400d/config.toml, "
    "else the built-in defaults; `oai400d init` writes an example of it and `oai400d unit` "
    "prints the systemd unit. Any command exits 78 on an invalid config. "
    "`oai400d COMMAND --help` describes each command; the README (in the source "
    "distribution) every config key and output format."
)
# shtab's file completion (shtab.FILE), named here so that the program never imports shtab: the
# build reads this attribute of an option to complete it with file names.
FILE_COMPLETION = {"bash": "_shtab_compgen_files", "zsh": "_files", "tcsh": "f"}
CONFIG_HELP = "config file (default: $OAI400D_CONFIG, else /etc/oai400d/config.toml)"


def build_parser() -> argparse.ArgumentParser:
    """The parser of `oai400d`: `args.command` names the command that was given (None: none)."""
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"oai400d {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        _completes_files(sub.add_argument("--config", metavar="PATH", help=CONFIG_HELP))
        return sub

    classify = command("classify", "scan log files (or - for stdin) once and report OpenAI errors")
    classify.add_argument("--json", action="store_true", help="one JSON object per finding")
    _completes_files(
        classify.add_argument(
            "paths", nargs="+", metavar="PATH", help="log files, .gz too; - for stdin"
        )
    )

    command("check-config", "validate the config and print the resolved settings")

    run = command("run", "run the daemon in the foreground (systemd Type=notify)")
    run.add_argument("-v", "--verbose", action="store_true", help="log debug details too")

    probe = command("probe", "check the API key, the models and OpenAI's status page once")
    probe.add_argument(
        "--json",
        action="store_true",
        help='one JSON document: {"status": overall, "checks": [{"name", "status", "summary", '
        '"latency_ms", "fixes", "details"}, ...]}',
    )
    probe.add_argument("--nagios", action="store_true", help="one line for monitoring systems")
    probe.add_argument(
        "--check",
        action="append",
        choices=PROBE_NAMES,
        metavar="NAME",
        help="run only this probe (api_key, models, status_page); repeatable",
    )

    command("test-alert", "send one sample alert through the configured notifier")

    status = command("status", "what the state DB says: files, open alerts, outbox, probes")
    status.add_argument("--json", action="store_true", help="one JSON document")
    textfile = status.add_argument(
        "--textfile",
        metavar="PATH",
        help="instead, write these figures as Prometheus metrics to PATH (*.prom, atomically) "
        "for node_exporter's textfile collector",
    )
    _completes_files(textfile)
    _add_mute_commands(command)
    _add_shipped_file_commands(commands)
    return parser


def _completes_files(action: argparse.Action) -> None:
    action.complete = FILE_COMPLETION  # type: ignore[attr-defined]


def _add_mute_commands(command: _Command) -> None:
    silence = command(
        "silence", "no messages about an alert (or a whole category) for a while; counting goes on"
    )
    silence.add_argument(
        "fingerprint", nargs="?", metavar="FINGERPRINT", help="the alert's id (see `status`)"
    )
    silence.add_argument("--category", metavar="C", help="every alert of this category instead")
    silence.add_argument(
        "--for", dest="duration", required=True, metavar="DURATION", help="e.g. 30m, 2h, 1d"
    )
    silence.add_argument("--comment", default="", help="why, for the people who see it")
    silence.add_argument("--json", action="store_true", help="the silence as one JSON document")

    silences = command("silences", "list the active silences")
    silences.add_argument("--all", action="store_true", help="ended and lifted ones too")
    silences.add_argument("--json", action="store_true", help="one JSON document")

    unsilence = command("unsilence", "lift a silence before it ends")
    unsilence.add_argument("id", type=int, metavar="ID", help="the silence's id (see `silences`)")

    ack = command("ack", "acknowledge an alert: its reminders stop, Slack shows who and when")
    ack.add_argument("fingerprint", metavar="FINGERPRINT", help="the alert's id (see `status`)")
    ack.add_argument("--comment", default="", help="a note kept with the acknowledgement")


def _add_shipped_file_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """`init` and `unit`: the example config and the systemd files the package carries, so that
    an installed wheel needs no checkout of the source."""
    init_help = "write an example config file (never over an existing one without --force)"
    init = commands.add_parser(
        "init",
        help=init_help,
        description=f"{init_help}, where `run` looks for the config. Exit status: 0 written, "
        "1 the file exists (kept), 73 cannot write.",
    )
    init_config = init.add_argument(
        "--config",
        metavar="PATH",
        help="where to write it (default: $OAI400D_CONFIG, else /etc/oai400d/config.toml); "
        "- prints it instead",
    )
    _completes_files(init_config)
    init.add_argument("--force", action="store_true", help="replace an existing file")
    init.add_argument(
        "--systemd",
        action="store_true",
        help="the config for the systemd unit (state in /var/lib/oai400d, logs under /var/log) "
        "instead of the example that lists every key with its default",
    )

    unit_help = "print the systemd unit, or a file shipped with it, to standard output"
    unit = commands.add_parser(
        "unit",
        help=unit_help,
        description=f"{unit_help}: oai400d.service (install it as "
        "/etc/systemd/system/oai400d.service), its config.toml and drop-ins (*.conf, for "
        "/etc/systemd/system/oai400d.service.d/). Exit status: 0 printed, 2 no such file.",
    )
    unit.add_argument(
        "name",
        nargs="?",
        default="oai400d.service",
        metavar="NAME",
        help="which file (default: oai400d.service; --list names them)",
    )
    unit.add_argument("--list", action="store_true", help="name the files that can be printed")
