"""The `oai400d` command: argument parsing, exit codes, human and JSON output."""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import stat
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, BinaryIO, TextIO

from oai400d import __version__
from oai400d.alerts import iso
from oai400d.classify import Classifier, load_rules, redact
from oai400d.config import LoadedConfig, load_config, public_view
from oai400d.errors import ConfigError, DeliveryError, StateError
from oai400d.model import PROBE_NAMES, Finding, ProbeResult
from oai400d.scan import Scanner, scan_file
from oai400d.state import State

# The daemon's and the probes' modules (APScheduler, slack-sdk, httpx) are imported by the
# commands that use them: `classify` on a big file should not pay for them at start-up.

EXIT_OK = 0
EXIT_WARNING = 1
EXIT_USAGE = 2
EXIT_STATE = 73  # EX_CANTCREAT: the state database cannot be opened
EXIT_CONFIG = 78  # EX_CONFIG: systemd's RestartPreventExitStatus keys on it

PROGRESS_MIN_BYTES = 64 * 1024 * 1024


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        code: int = args.handler(args)
    except ConfigError as exc:
        print(f"oai400d: {exc}", file=sys.stderr)
        print("oai400d: fix the keys above and run `oai400d check-config`", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): not an error of ours; keep Python from complaining.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oai400d",
        description="Finds OpenAI API errors in application logs, explains them, alerts Slack.",
    )
    parser.add_argument("--version", action="version", version=f"oai400d {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "--config",
            metavar="PATH",
            help="config file (default: $OAI400D_CONFIG, else /etc/oai400d/config.toml)",
        )
        return sub

    classify = command("classify", "scan log files (or - for stdin) once and report OpenAI errors")
    classify.add_argument("--json", action="store_true", help="one JSON object per finding")
    classify.add_argument(
        "paths", nargs="+", metavar="PATH", help="log files, .gz too; - for stdin"
    )
    classify.set_defaults(handler=cmd_classify)

    check = command("check-config", "validate the config and print the resolved settings")
    check.set_defaults(handler=cmd_check_config)

    run = command("run", "run the daemon in the foreground (systemd Type=notify)")
    run.add_argument("-v", "--verbose", action="store_true", help="log debug details too")
    run.set_defaults(handler=cmd_run)

    probe = command("probe", "check the API key, the models and OpenAI's status page once")
    probe.add_argument("--json", action="store_true", help="one JSON document (DESIGN.md)")
    probe.add_argument("--nagios", action="store_true", help="one line for monitoring systems")
    probe.add_argument(
        "--check",
        action="append",
        choices=PROBE_NAMES,
        metavar="NAME",
        help="run only this probe (api_key, models, status_page); repeatable",
    )
    probe.set_defaults(handler=cmd_probe)

    test_alert = command("test-alert", "send one sample alert through the configured notifier")
    test_alert.set_defaults(handler=cmd_test_alert)

    status = command("status", "what the state DB says: files, open alerts, outbox, probes")
    status.add_argument("--json", action="store_true", help="one JSON document")
    status.set_defaults(handler=cmd_status)
    return parser


class _RedactingFormatter(logging.Formatter):
    """Log records pass through redaction: no secret reaches stderr or the journal."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def _setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    # journald stamps each line itself; under a terminal the time helps.
    stamp = "" if os.environ.get("JOURNAL_STREAM") else "%(asctime)s "
    handler.setFormatter(_RedactingFormatter(f"{stamp}%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("watchdog", "httpx", "httpcore", "apscheduler", "slack_sdk", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def cmd_run(args: argparse.Namespace) -> int:
    from oai400d.service import Daemon

    _setup_logging(args.verbose)
    loaded = _load(args)
    load_rules(loaded.settings.rules)  # a broken user rule is a config error before anything starts
    daemon = Daemon(loaded, config_arg=args.config)
    daemon.install_signal_handlers()
    try:
        return daemon.run()
    except StateError as exc:
        print(f"oai400d: {exc}", file=sys.stderr)
        return EXIT_STATE


NAGIOS_EXIT = {"ok": 0, "warning": 1, "critical": 2, "unknown": 3}


def cmd_probe(args: argparse.Namespace) -> int:
    """Run the probes once; exit 0/1/2/3 like a Nagios plugin."""
    from oai400d.probes import overall, run_probes

    loaded = _load(args)
    results = run_probes(loaded.settings, args.check)
    worst = overall(results)
    if args.json:
        print(json.dumps({"status": worst, "checks": [r.to_json() for r in results]}, indent=2))
    elif args.nagios:
        print(nagios_line(worst, results))
    else:
        rows = [("CHECK", "STATUS", "LATENCY", "SUMMARY")]
        for r in results:
            latency = f"{r.latency_ms} ms" if r.latency_ms is not None else "-"
            rows.append((r.name, r.status.upper(), latency, r.summary))
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        for row in rows:
            print(
                "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3]
            )
        for r in results:
            for fix in r.fixes[:3]:
                print(f"  {r.name}: fix: {fix}")
        print(f"overall: {worst.upper()}")
    return NAGIOS_EXIT[worst]


def nagios_line(worst: str, results: Sequence[ProbeResult]) -> str:
    """`OAI400D CRITICAL - api_key: key rejected … | api_key_latency=0.213s;;;0 …`"""
    text = (
        "; ".join(f"{r.name}: {r.summary}" for r in results if r.status == worst) or "all checks ok"
    )
    perf = " ".join(
        f"{r.name}_latency={r.latency_ms / 1000:.3f}s;;;0"
        for r in results
        if r.latency_ms is not None
    )
    line = f"OAI400D {worst.upper()} - {text}".replace("|", "/")
    return f"{line} | {perf}" if perf else line


def cmd_test_alert(args: argparse.Namespace) -> int:
    """Send a sample alert and say plainly whether and where it arrived."""
    from oai400d.service import make_notifier, sample_notification

    loaded = _load(args)
    notifier = make_notifier(loaded.settings)
    print(f"sending a sample alert to {notifier.describe()}")
    check = getattr(notifier, "check", None)
    with tempfile.TemporaryDirectory(prefix="oai400d-test-alert-") as scratch:
        state = State(os.path.join(scratch, "state.db"))
        try:
            if check is not None:
                print(f"  token check: {check()}")
            notifier.bind(state)
            notifier.send(sample_notification(), f"test-alert-{int(time.time())}")
        except DeliveryError as exc:
            again = "retrying later may help" if exc.retryable else "retrying will not help"
            print(f"NOT delivered: {exc} ({again})", file=sys.stderr)
            return EXIT_WARNING
        finally:
            state.close()
    where = notifier.describe()
    print(f'delivered to {where}: look for "oai400d test alert" there')
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    loaded = _load(args)
    path = loaded.settings.state.path
    if not os.path.exists(path):
        print(
            f"oai400d: no state database at {path} yet; has `oai400d run` run with this config?",
            file=sys.stderr,
        )
        return EXIT_OK if not args.json else _print_json_status(None)
    state = State(path, readonly=True)
    try:
        report = status_report(state)
    finally:
        state.close()
    if args.json:
        return _print_json_status(report)
    print(f"state: {path}")
    print(f"files ({len(report['files'])}):")
    for f in report["files"]:
        print(f"  {f['path']}  offset {f['offset']:,}  line {f['line_no']:,}")
    print(f"open alerts ({len(report['alerts'])}):")
    for a in report["alerts"]:
        print(
            f"  [{a['state']}] {a['severity']} {a['title']}: {a['count']} since {a['first_seen']}"
            f" (last {a['last_seen']}) {a['fingerprint']}"
        )
    print(f"outbox: {report['outbox_depth']} notification(s) waiting")
    if report["probes"]:
        print("probes:")
        for p in report["probes"]:
            print(f"  {p['name']}: {p['status']} - {p['summary']} ({p['checked']})")
    return EXIT_OK


def _print_json_status(report: dict[str, Any] | None) -> int:
    print(
        json.dumps(report or {"files": [], "alerts": [], "outbox_depth": 0, "probes": []}, indent=2)
    )
    return EXIT_OK


def status_report(state: State) -> dict[str, Any]:
    """What `status --json` prints."""
    return {
        "files": [
            {"path": f.path, "offset": f.offset, "line_no": f.line_no, "dev": f.dev, "ino": f.ino}
            for f in state.files()
        ],
        "alerts": [
            {
                "fingerprint": a.fingerprint,
                "state": a.state,
                "category": a.category,
                "severity": a.severity,
                "title": a.title,
                "count": a.count,
                "first_seen": iso(a.first_seen),
                "last_seen": iso(a.last_seen),
                "files": list(a.files),
            }
            for a in state.alerts()
        ],
        "outbox_depth": state.outbox_depth(),
        "probes": [
            {
                "name": p.name,
                "status": p.status,
                "summary": p.summary,
                "latency_ms": p.latency_ms,
                "checked": iso(p.checked),
            }
            for p in state.probes()
        ],
    }


def _load(args: argparse.Namespace) -> LoadedConfig:
    return load_config(args.config)


def cmd_check_config(args: argparse.Namespace) -> int:
    loaded = _load(args)
    table = load_rules(loaded.settings.rules)
    view = public_view(loaded.settings)
    print(f"# configuration from {loaded.source}: valid")
    print(f"# {len(table.rules)} rules ({len(loaded.settings.rules)} from the config)")
    print(json.dumps(view, indent=2, ensure_ascii=False))
    return EXIT_OK


def cmd_classify(args: argparse.Namespace) -> int:
    loaded = _load(args)
    classifier = Classifier(load_rules(loaded.settings.rules))
    out = sys.stdout
    counts: Counter[str] = Counter()
    first_fix: dict[str, str] = {}
    unreadable = 0
    total_bytes = 0
    total_lines = 0
    started = time.perf_counter()
    for path in args.paths:
        try:
            with _open_input(path) as (stream, size):
                scanner = Scanner(
                    classifier,
                    max_line=loaded.settings.logs.max_line,
                    limits=loaded.settings.logs.event_limits,
                )
                with _progress(path, size) as progress:
                    scanner.progress = progress
                    findings = (
                        scan_file(scanner, path, size)
                        if size is not None
                        else scanner.scan(stream, path)
                    )
                    for finding in findings:
                        counts[finding.category] += 1
                        first_fix.setdefault(
                            finding.category, finding.fixes[0] if finding.fixes else ""
                        )
                        _print_finding(out, finding, args.json)
                total_bytes += scanner.stats.bytes_read
                total_lines += scanner.stats.lines
        except OSError as exc:
            unreadable += 1
            reason = exc.strerror or str(exc)
            print(
                f"oai400d: cannot read {path}: {reason}; check the path and permissions",
                file=sys.stderr,
            )
    out.flush()
    elapsed = max(time.perf_counter() - started, 1e-9)
    _print_summary(
        counts, first_fix, len(args.paths) - unreadable, total_lines, total_bytes, elapsed
    )
    return EXIT_USAGE if unreadable else EXIT_OK


@contextmanager
def _open_input(path: str) -> Iterator[tuple[BinaryIO, int | None]]:
    """Open a file, a .gz file (by its magic bytes) or stdin for binary reading."""
    if path == "-":
        yield sys.stdin.buffer, None
        return
    if os.path.isdir(path):
        raise IsADirectoryError(21, "is a directory, not a log file", path)
    with open(path, "rb") as raw:
        info = os.fstat(raw.fileno())
        size = info.st_size if stat.S_ISREG(info.st_mode) else None
        if raw.read(2) == b"\x1f\x8b":
            raw.seek(0)
            with gzip.open(raw, "rb") as unzipped:
                yield unzipped, None  # type: ignore[misc]
                return
        raw.seek(0)
        yield raw, size


@contextmanager
def _progress(path: str, size: int | None) -> Iterator[Callable[[int], None] | None]:
    """A progress line on a terminal for big inputs; nothing otherwise."""
    if not sys.stderr.isatty() or not size or size < PROGRESS_MIN_BYTES:
        yield None
        return
    done = 0
    started = time.perf_counter()

    def advance(count: int) -> None:
        nonlocal done
        done += count
        rate = done / max(time.perf_counter() - started, 1e-9) / 1e6
        width = 30
        filled = int(width * done / size)
        bar = "#" * filled + "-" * (width - filled)
        print(
            f"\r{path} [{bar}] {100 * done // size:3d}% {rate:6.0f} MB/s", end="", file=sys.stderr
        )

    try:
        yield advance
    finally:
        print("\r" + " " * (len(path) + 60) + "\r", end="", file=sys.stderr)


def _print_finding(out: TextIO, finding: Finding, as_json: bool) -> None:
    if as_json:
        out.write(json.dumps(finding.to_json(), ensure_ascii=False) + "\n")
        return
    span = (
        f"{finding.line}"
        if finding.line == finding.end_line
        else f"{finding.line}-{finding.end_line}"
    )
    detail = " ".join(
        part
        for part in (
            str(finding.status) if finding.status else "",
            finding.error_code or "",
            f"model={finding.model}" if finding.model else "",
            f"request={finding.request_id}" if finding.request_id else "",
        )
        if part
    )
    out.write(f"{finding.path}:{span}: [{finding.severity}] {finding.category}: {finding.title}")
    out.write(f" ({detail})\n" if detail else "\n")
    out.write(f"    {finding.message[:300]}\n")
    if finding.fixes:
        out.write(f"    fix: {finding.fixes[0]}\n")


def _print_summary(
    counts: Counter[str],
    first_fix: dict[str, str],
    files: int,
    lines: int,
    size: int,
    elapsed: float,
) -> None:
    err = sys.stderr
    total = sum(counts.values())
    rate = size / elapsed / 1e6
    print(
        f"\noai400d: {total} OpenAI error(s) in {files} file(s), {lines:,} lines, "
        f"{size / 1e6:,.1f} MB in {elapsed:.2f} s ({rate:,.0f} MB/s)",
        file=err,
    )
    for category, count in counts.most_common():
        print(f"  {count:6d}  {category}", file=err)
        if first_fix.get(category):
            print(f"          fix: {first_fix[category]}", file=err)


if __name__ == "__main__":
    raise SystemExit(main())
