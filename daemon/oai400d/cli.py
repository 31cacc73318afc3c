"""The `oai400d` command: argument parsing, exit codes, human and JSON output."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import stat
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, TextIO

from oai400d.arguments import build_parser
from oai400d.classify import Classifier, load_rules
from oai400d.errors import ConfigError, DeliveryError, FleetError, StateDamagedError, StateError
from oai400d.facts.findings import FindingFacts
from oai400d.facts.text import Identity
from oai400d.masking import redact, redact_values
from oai400d.model import Ack, EventLimits, Finding, ProbeResult, Silence
from oai400d.sameerror import one_per_request
from oai400d.scan import Scanner, scan_file
from oai400d.timestamps import iso

if TYPE_CHECKING:
    from oai400d.config import LoadedConfig, Settings
    from oai400d.fleet import FleetStore
    from oai400d.state import State

# Each command imports what it uses, and only then: `classify` of a small file is mostly
# start-up, so it imports no config machinery without a config file (pydantic), no state DB,
# no notifiers; the daemon's and the probes' modules (APScheduler, slack-sdk, httpx) and the
# fleet's (psycopg) load only with the commands and settings that use them
# (tests/test_startup.py checks what `classify` and `run` import).

EXIT_OK = 0
EXIT_WARNING = 1
EXIT_EXISTS = 1  # `init`: the file is there already
EXIT_USAGE = 2
EXIT_STATE = 73  # EX_CANTCREAT: the state database cannot be opened
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: the fleet store cannot be reached
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
        code: int = HANDLERS[args.command](args)
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
    return build_parser()


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
    require_fleet_driver(loaded.settings, loaded.source)
    _build_automata_aside(loaded.settings.rules)
    daemon = Daemon(loaded, config_arg=args.config)
    daemon.install_signal_handlers()
    try:
        return daemon.run()
    except StateError as exc:
        print(f"oai400d: {exc}", file=sys.stderr)
        return EXIT_STATE


def _build_automata_aside(rules: Sequence[Mapping[str, Any]]) -> None:
    """Build the classifier once in a child process first, so that a cold cache is filled
    there: compiling the automata peaks ~30 MB above the daemon's idle RSS, and a process keeps
    its high-water mark (and glibc some of that heap) for good, while the daemon then loads
    them from the cache in a few ms. Without fork, or if the child fails, the daemon builds them
    itself as before."""
    if not hasattr(os, "fork"):
        return
    child = os.fork()  # (before any thread is started)
    if child == 0:
        code = 1
        try:
            Classifier(load_rules(rules))
            code = 0
        finally:
            os._exit(code)  # no atexit handlers, no flushing of the parent's buffers
    os.waitpid(child, 0)


def cmd_probe(args: argparse.Namespace) -> int:
    """Run the probes once; exit 0/1/2/3 like a Nagios plugin."""
    from oai400d.probes import EXIT_CODES, overall, run_probes

    loaded = _load(args)
    results = run_probes(loaded.settings, args.check)
    worst = overall(results)
    if args.json:
        print(json.dumps({"status": worst, "checks": [r.to_json() for r in results]}, indent=2))
    elif args.nagios:
        print(nagios_line(worst, results))
    else:
        print("\n".join(probe_table(worst, results)))
    return EXIT_CODES[worst]


def probe_table(worst: str, results: Sequence[ProbeResult]) -> list[str]:
    """`oai400d probe`'s table: one row per check (a failed one names the URL it could not
    reach in its summary), then up to three fixes per check, then the overall status."""
    rows = [("CHECK", "STATUS", "LATENCY", "SUMMARY")]
    for r in results:
        latency = f"{r.latency_ms} ms" if r.latency_ms is not None else "-"
        rows.append((r.name, r.status.upper(), latency, r.summary))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3]
        for row in rows
    ]
    lines += [f"  {r.name}: fix: {fix}" for r in results for fix in r.fixes[:3]]
    lines.append(f"overall: {worst.upper()}")
    return lines


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
    """Send a sample alert through every configured notifier and say, one line each, whether
    and where it arrived (exit 1 when any did not)."""
    from oai400d.notify import Attempt
    from oai400d.wiring import make_notifiers, sample_notification

    loaded = _load(args)
    notifiers = make_notifiers(loaded.settings)
    sample = sample_notification()
    failed = 0
    print(f"sending a sample alert through {len(notifiers)} notifier(s)")
    for notifier, _ in notifiers:
        check = getattr(notifier, "check", None)
        try:
            checked = check() if check is not None else ""
            notifier.send(sample, Attempt(f"test-alert-{int(time.time())}"))
        except DeliveryError as exc:
            failed += 1
            again = "retrying later may help" if exc.retryable else "retrying will not help"
            print(
                f"{notifier.name}: NOT delivered to {notifier.describe()}: {exc} ({again})",
                file=sys.stderr,
            )
            continue
        note = f" ({checked})" if checked else ""
        print(
            f"{notifier.name}: delivered to {notifier.describe()}{note}: look for "
            '"oai400d test alert" there'
        )
    return EXIT_WARNING if failed else EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    loaded = _load(args)
    if args.textfile:
        return _status_textfile(loaded, args.textfile)
    path = loaded.settings.state.path
    if not os.path.exists(path):
        print(
            f"oai400d: no state database at {path} yet; has `oai400d run` run with this config?",
            file=sys.stderr,
        )
        return EXIT_OK if not args.json else _print_json_status(None)
    from oai400d.state import State

    try:
        state = State(path, readonly=True)
        try:
            report = status_report(state)
        finally:
            state.close()
    except StateDamagedError as exc:  # damaged, or not a database: no advice about users
        print(f"oai400d: {exc}", file=sys.stderr)
        return EXIT_STATE
    except StateError as exc:
        return _state_failed(exc)
    fleet = fleet_report(loaded)
    if fleet is not None:
        report["fleet"] = fleet
    report = redact_values(report)  # (titles, paths, probe summaries, what a receiver said)
    fleet = report.get("fleet")
    if args.json:
        return _print_json_status(report)
    print(f"state: {path}")
    print(f"files ({len(report['files'])}):")
    for f in report["files"]:
        print(f"  {f['path']}  offset {f['offset']:,}  line {f['line_no']:,}")
    if report["journals"]:
        print(f"journals ({len(report['journals'])}):")
        for j in report["journals"]:
            within = f" (line {j['skip'] + 1} of that entry)" if j["skip"] >= 0 else ""
            print(f"  journal:{j['name']}  cursor {j['cursor']}{within}  at {j['updated']}")
    print(f"open alerts ({len(report['alerts'])}):")
    for a in report["alerts"]:
        print(
            f"  [{a['state']}] {a['severity']} {a['title']}: {a['count']} since {a['first_seen']}"
            f" (last {a['last_seen']}) {a['fingerprint']}"
        )
        for fact in a.get("facts") or ():  # what its last notification checked
            print(f"    checked: {fact}")
    print(f"outbox: {report['outbox_depth']} notification(s) waiting")
    for name, c in report["notifiers"].items():
        print(
            f"  {name}: {c['queued']} queued ({c['failing']} failing, {c['parked']} parked), "
            f"{c['delivered']} delivered"
        )
    _print_parked_status(report)
    if report["fleet_queued"]:
        print(f"fleet: {report['fleet_queued']} finding(s) waiting for the fleet's store")
    if fleet is not None:
        _print_fleet_status(fleet)
    _print_mutes_status(report)
    if report["probes"]:
        print("probes:")
        for p in report["probes"]:
            print(f"  {p['name']}: {p['status']} - {p['summary']} ({p['checked']})")
    return EXIT_OK


def _print_parked_status(report: dict[str, Any]) -> None:
    """The notifications the receiver refuses (kept, not lost), why, and what brings them out."""
    if not report["outbox_parked"]:
        return
    from oai400d.notify.outbox import PARKED_RETRY

    every = f"{PARKED_RETRY / 60:.0f} min"
    print(
        f"  {report['outbox_parked']} of them parked: the receiver refuses them; tried again "
        f"every {every}, and at once after `systemctl reload oai400d` once it is fixed"
    )
    for reason, count in Counter(p["reason"] for p in report["parked"]).items():
        print(f"    {count} x {reason}")
    for p in report["parked"]:
        print(
            f"    #{p['id']} to {p['notifier']}: {p['kind']} {p['title']} {p['fingerprint']} "
            f"(next try {p['retry']})"
        )


def fleet_report(loaded: LoadedConfig) -> dict[str, Any] | None:
    """The fleet's open alerts (with state.fleet), or why they cannot be read; None without."""
    store = _fleet_store(loaded.settings)
    if store is None:
        return None
    try:
        store.open()
        alerts = store.open_alerts()
    except FleetError as exc:
        return {"store": store.where, "error": str(exc), "alerts": []}
    finally:
        store.close()
    return {
        "store": store.where,
        "alerts": [
            {
                "fingerprint": a.fingerprint,
                "state": a.state,
                "category": str(a.data.get("category", "")),
                "severity": str(a.data.get("severity", "")),
                "title": a.title,
                "count": a.count,
                "first_seen": iso(a.first_seen),
                "last_seen": iso(a.last_seen),
                "host_count": a.host_count,
                "hosts": [h.host for h in a.hosts],
                "owner": a.owner,
            }
            for a in alerts
        ],
    }


def _print_fleet_status(fleet: dict[str, Any]) -> None:
    if "error" in fleet:
        print(f"fleet: cannot read {fleet['store']}: {fleet['error']}")
        return
    print(f"fleet alerts in {fleet['store']} ({len(fleet['alerts'])}):")
    for a in fleet["alerts"]:
        more = a["host_count"] - len(a["hosts"])
        hosts = ", ".join(a["hosts"]) + (f", +{more} more" if more > 0 else "")
        print(
            f"  [{a['state']}] {a['severity']} {a['title']}: {a['count']} since {a['first_seen']}"
            f" (last {a['last_seen']}) on {a['host_count']} host(s) ({hosts}), message by "
            f"{a['owner'] or 'nobody yet'} {a['fingerprint']}"
        )


def _status_textfile(loaded: LoadedConfig, path: str) -> int:
    """`status --textfile PATH`: the state DB's figures (alerts, outbox, probes, lag) as metrics;
    the counters (findings, lines, deliveries) live in the daemon: see metrics.textfile."""
    from oai400d.metrics import OAI400DCollector, TextfileError, make_registry, write_textfile
    from oai400d.sources.globs import source_of

    if not path.endswith(".prom"):
        print(
            f"oai400d: --textfile {path}: node_exporter's textfile collector reads only *.prom "
            "files; name it like oai400d.prom",
            file=sys.stderr,
        )
        return EXIT_USAGE
    s = loaded.settings
    names = [] if s.metrics.source_labels else list(s.logs.paths)

    def label(file: str) -> str:
        return file if s.metrics.source_labels else source_of(s.logs.paths, file)

    collector = OAI400DCollector(s.state.path, label, lambda: names)
    try:
        write_textfile(make_registry(collector, process=False), path)
    except TextfileError as exc:
        print(f"oai400d: {exc}", file=sys.stderr)
        return EXIT_STATE
    return EXIT_OK


def _print_json_status(report: dict[str, Any] | None) -> int:
    empty = {"files": [], "alerts": [], "outbox_depth": 0, "probes": [], "silences": [], "acks": []}
    empty["fleet_queued"] = 0
    empty["outbox_parked"] = 0
    empty["notifiers"] = {}
    empty["parked"] = []
    empty["journals"] = []
    print(json.dumps(report or empty, indent=2))
    return EXIT_OK


def status_report(state: State) -> dict[str, Any]:
    """What `status --json` prints."""
    return {
        "files": [
            {"path": f.path, "offset": f.offset, "line_no": f.line_no, "dev": f.dev, "ino": f.ino}
            for f in state.files()
        ],
        "journals": [
            {"name": j.name, "cursor": j.cursor, "skip": j.skip, "updated": iso(updated)}
            for j, updated in state.journal_positions()
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
                "facts": list(a.facts),
            }
            for a in state.alerts()
        ],
        "outbox_depth": state.outbox_depth(),
        # Of outbox_depth, those the receiver refuses for its configuration (kept; see
        # notify.outbox), and the oldest 100 of them, each with the reason.
        "outbox_parked": sum(state.outbox_parked_reasons().values()),
        "parked": [
            {
                "id": e.id,
                "notifier": e.target,
                "fingerprint": e.notification.fingerprint,
                "kind": e.notification.kind,
                "title": e.notification.title,
                "reason": e.parked,
                "attempts": e.attempts,
                "retry": iso(e.next_attempt),
            }
            for e in state.outbox_parked()
        ],
        # Each notifier's own queue: waiting (of which failing, parked) and delivered.
        "notifiers": {
            name: {
                "queued": c.queued,
                "failing": c.failing,
                "parked": c.parked,
                "delivered": c.delivered,
            }
            for name, c in state.outbox_by_target().items()
        },
        "fleet_queued": state.fleet_queued(),
        **mutes_report(state),
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
    from oai400d.config import load_config

    return load_config(args.config)


FLEET_INSTALL = "pip install 'oai400d[fleet]'"


def require_fleet_driver(settings: Settings, source: str = "") -> None:
    """With state.fleet, the fleet's modules and their PostgreSQL driver (psycopg and its pool,
    the `fleet` extra that a single host does without) must import: a ConfigError naming the
    key and the install command (exit 78) rather than a traceback once the daemon has started."""
    if settings.state.fleet is None:
        return
    try:
        import oai400d.fleet  # noqa: F401  (imports psycopg and psycopg_pool)
    except ImportError as exc:
        missing = f" ({exc.name} is missing)" if exc.name else f" ({exc})"
        raise ConfigError(
            [
                "state.fleet: is set, but the fleet's PostgreSQL driver is not installed"
                f"{missing}; install it with `{FLEET_INSTALL}`, or remove state.fleet"
            ],
            source,
        ) from None


def cmd_check_config(args: argparse.Namespace) -> int:
    from oai400d.config import public_view

    loaded = _load(args)
    table = load_rules(loaded.settings.rules)
    require_fleet_driver(loaded.settings, loaded.source)
    view = public_view(loaded.settings)
    print(f"# configuration from {loaded.source}: valid")
    print(f"# {len(table.rules)} rules ({len(loaded.settings.rules)} from the config)")
    print(json.dumps(view, indent=2, ensure_ascii=False))
    return EXIT_OK


# Where the config is looked for, as config.config_path does (tests/test_startup.py checks they
# are config's own): `classify` reads no config module when there is no file to read.
CONFIG_ENV = "OAI400D_CONFIG"
DEFAULT_CONFIG_PATH = "/etc/oai400d/config.toml"


@dataclass(frozen=True, slots=True)
class ScanOptions:
    """What `classify` takes from the settings; the defaults are logs' and rules' built-in ones
    (tests/test_startup.py checks they are the same as config's)."""

    rules: tuple[Mapping[str, Any], ...] = ()
    max_line: int = 1024 * 1024
    limits: EventLimits = field(default_factory=EventLimits)
    wrapper: str = "auto"
    wrappers: Mapping[str, str] = field(default_factory=dict)
    identity: Identity = field(default_factory=Identity)  # facts compare key, org, project

    @classmethod
    def of(cls, settings: Settings) -> ScanOptions:
        logs = settings.logs
        return cls(
            tuple(settings.rules),
            logs.max_line,
            logs.event_limits,
            logs.wrapper,
            logs.wrappers,
            Identity.from_settings(settings),
        )


def scan_options(args: argparse.Namespace) -> ScanOptions:
    """The config's, or the built-in defaults when no config file is named and none is at the
    default path: then no config machinery is imported (the config's pydantic models take
    ~100 ms to import, most of a small file's run) and no secret is read (classify sends
    nothing)."""
    if (
        not args.config
        and not os.environ.get(CONFIG_ENV)
        and not os.path.exists(DEFAULT_CONFIG_PATH)
    ):
        return ScanOptions()
    return ScanOptions.of(_load(args).settings)


def cmd_classify(args: argparse.Namespace) -> int:
    options = scan_options(args)
    classifier = Classifier(load_rules(options.rules))
    with_facts = FindingFacts(options.identity)
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
                    max_line=options.max_line,
                    limits=options.limits,
                    wrapper=_wrapper_for(options, path),
                )
                with _progress(path, size) as progress:
                    scanner.progress = progress
                    findings = one_per_request(
                        scan_file(scanner, path, size)
                        if size is not None
                        else scanner.scan(stream, path)
                    )
                    for found in findings:
                        finding = with_facts(found)
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


def _wrapper_for(options: ScanOptions, path: str) -> str:
    """logs.wrappers' kind for the first glob matching the path, else logs.wrapper."""
    if path == "-" or not options.wrappers:
        return options.wrapper
    from oai400d.sources import globs  # (watchdog comes with sources: only when needed)

    table = [(globs.normalize(pattern), kind) for pattern, kind in options.wrappers.items()]
    return globs.choose(table, options.wrapper, os.path.abspath(path))


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
            import gzip  # (only for a .gz input)

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
    # The classifier masked what it read from the log (message, excerpt, model, request id,
    # param); the path is masked here. (Per field, not the whole of each finding: a file with
    # thousands of findings would pay for it in throughput.)
    if as_json:
        out.write(_finding_json(finding))
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
    head = f"{finding.path}:{span}: [{finding.severity}] {finding.category}: {finding.title}"
    out.write(redact(head + (f" ({detail})" if detail else "")) + "\n")
    out.write(f"    {finding.message[:300]}\n")
    if finding.fixes:
        out.write(f"    fix: {finding.fixes[0]}\n")
    for fact in finding.facts:
        out.write(f"    checked: {fact}\n")


# The JSON of a str, as json.dumps(ensure_ascii=False) writes it (the same encoder function).
_json_str: Callable[[str], str] = json.encoder.encode_basestring


def _finding_json(finding: Finding) -> str:
    """`json.dumps(finding.to_json(), ensure_ascii=False)` with the path masked, and a newline.

    The same bytes, built by hand: a storm of findings spends most of the first process here
    (~9 µs each through json.dumps), and all but the per-finding fields repeat, so each rule's
    fixed part (category, rule, severity; fixes and docs; facts) is encoded once, keyed by its
    values.
    """
    return (
        f'{{"path": {_json_path(finding.path)}, "line": {finding.line}, '
        f'"end_line": {finding.end_line}, '
        f"{_json_rule_part(finding.category, finding.rule, finding.severity)}"
        f'"status": {"null" if finding.status is None else int.__repr__(finding.status)}, '
        f'"error_type": {_json_optional(finding.error_type)}, '
        f'"error_code": {_json_optional(finding.error_code)}, '
        f'"param": {_json_optional(finding.param)}, '
        f'"model": {_json_optional(finding.model)}, '
        f'"request_id": {_json_optional(finding.request_id)}, '
        f'"message": {_json_str(finding.message)}, '
        f'"fingerprint": {_json_str(finding.fingerprint)}, '
        f"{_json_advice(finding.fixes, finding.docs)}, "
        f'"facts": {_json_facts(finding.facts) if finding.facts else "[]"}}}\n'
    )


def _json_optional(value: str | None) -> str:
    return "null" if value is None else _json_str(value)


@functools.lru_cache(maxsize=256)
def _json_path(path: str) -> str:
    # Masked here rather than by the classifier; one file's findings all share its path.
    return _json_str(redact(path))


@functools.lru_cache(maxsize=1024)
def _json_rule_part(category: str, rule: str, severity: str) -> str:
    return (
        f'"category": {_json_str(category)}, "rule": {_json_str(rule)}, '
        f'"severity": {_json_str(severity)}, '
    )


@functools.lru_cache(maxsize=1024)
def _json_advice(fixes: tuple[str, ...], docs: tuple[str, ...]) -> str:
    return (
        f'"fixes": {json.dumps(list(fixes), ensure_ascii=False)}, '
        f'"docs": {json.dumps(list(docs), ensure_ascii=False)}'
    )


@functools.lru_cache(maxsize=1024)
def _json_facts(facts: tuple[str, ...]) -> str:
    # Facts are cached per distinct error (facts.findings): a storm repeats the same tuples.
    return json.dumps(list(facts), ensure_ascii=False)


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


# --- silence, silences, unsilence, ack ---------------------------------------------------------
# Exit codes: 0 done; 1 nothing to act on (no such alert or silence, no state DB yet);
# 2 a malformed argument (duration, unknown category); 73 the state DB cannot be written.

EXIT_NOT_FOUND = 1


def whoami() -> str:
    """The OS user running the command: who a silence or an acknowledgement is recorded as."""
    try:
        import getpass  # (termios with it: only for the commands that record a user)

        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return f"uid {os.getuid()}"


class _Described(Protocol):
    @property
    def state(self) -> str: ...
    @property
    def title(self) -> str: ...


class MuteBook(Protocol):
    """Where silences and acknowledgements live: the state DB, or with state.fleet the store."""

    @property
    def where(self) -> str: ...
    def alert(self, fingerprint: str) -> _Described | None: ...
    def add_silence(
        self,
        fingerprint: str | None,
        category: str | None,
        starts: float,
        ends: float,
        comment: str,
        created_by: str,
        via: str,
    ) -> Silence: ...
    def silence(self, silence_id: int) -> Silence | None: ...
    def silences(self, after: float | None = None) -> list[Silence]: ...
    def lift_silence(self, silence_id: int, by: str, now: float) -> Silence | None: ...
    def acknowledge(self, ack: Ack) -> None: ...


def _fleet_store(settings: Settings) -> FleetStore | None:
    """The fleet's store as the daemon makes it ([fleet] timeouts), not opened; None without
    state.fleet. Imported here only: psycopg and the daemon's modules only where needed."""
    if settings.state.fleet is None:
        return None
    require_fleet_driver(settings)
    from oai400d.wiring import make_fleet_store

    return make_fleet_store(settings)


@contextmanager
def _mute_book(args: argparse.Namespace) -> Iterator[MuteBook | None]:
    """The fleet store (fleet-wide) with state.fleet, else the state DB; None (after saying
    why) when there is none yet. Errors of either surface as StateError or FleetError."""
    settings = _load(args).settings
    store = _fleet_store(settings)
    if store is not None:
        store.open()
        try:
            yield store
        finally:
            store.close()
        return
    with _writable_state(settings.state.path) as state:
        yield state


@contextmanager
def _writable_state(path: str) -> Iterator[State | None]:
    """The state DB for a change; None (after saying why) when there is none yet."""
    if not os.path.exists(path):
        print(
            f"oai400d: no state database at {path}; start `oai400d run` with this config "
            "first (or pass the daemon's --config)",
            file=sys.stderr,
        )
        yield None
        return
    from oai400d.state import State

    state = State(path)
    try:
        yield state
    finally:
        state.close()


def _state_failed(exc: StateError | FleetError) -> int:
    print(f"oai400d: {exc}", file=sys.stderr)
    if isinstance(exc, FleetError):
        return EXIT_UNAVAILABLE
    print(
        "oai400d: run the command as the user the daemon runs as (e.g. sudo -u oai400d …)",
        file=sys.stderr,
    )
    return EXIT_STATE


def silence_json(silence: Silence, now: float) -> dict[str, Any]:
    """One silence as `silences --json` prints it."""
    if silence.removed_by is not None:
        state = "lifted"
    elif silence.active(now):
        state = "active"
    else:
        state = "ended" if silence.ends <= now else "pending"
    return {
        "id": silence.id,
        "state": state,
        "fingerprint": silence.fingerprint,
        "category": silence.category,
        "starts": iso(silence.starts),
        "ends": iso(silence.ends),
        "comment": silence.comment,
        "created_by": silence.created_by,
        "created": iso(silence.created),
        "via": silence.via,
        "removed_by": silence.removed_by,
    }


def cmd_silence(args: argparse.Namespace) -> int:
    from oai400d.classify.rules import CATEGORIES
    from oai400d.config import format_duration, parse_duration

    if (args.fingerprint is None) == (args.category is None):
        print("oai400d silence: give a FINGERPRINT or --category C (one of them)", file=sys.stderr)
        return EXIT_USAGE
    try:
        seconds = parse_duration(args.duration)
    except ValueError as exc:
        print(f"oai400d silence: --for: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if seconds <= 0:
        print("oai400d silence: --for: give a duration above zero, e.g. 2h", file=sys.stderr)
        return EXIT_USAGE
    if args.category is not None and args.category not in CATEGORIES:
        print(
            f"oai400d silence: --category: unknown category {args.category!r}; "
            f"the categories are: {', '.join(sorted(CATEGORIES))}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        with _mute_book(args) as state:
            if state is None:
                return EXIT_NOT_FOUND
            if args.fingerprint is not None and state.alert(args.fingerprint) is None:
                print(
                    f"oai400d silence: no alert with fingerprint {args.fingerprint} in "
                    f"{state.where}; `oai400d status` lists the open ones (to mute what has not "
                    "happened yet, use --category)",
                    file=sys.stderr,
                )
                return EXIT_NOT_FOUND
            now = time.time()
            silence = state.add_silence(
                args.fingerprint, args.category, now, now + seconds, args.comment, whoami(), "cli"
            )
    except (StateError, FleetError) as exc:
        return _state_failed(exc)
    if args.json:
        print(json.dumps(silence_json(silence, now), indent=2))
    else:
        print(silence.id)
    print(
        f"silenced {silence.matcher} until {iso(silence.ends)} ({format_duration(seconds)}) as "
        f"silence {silence.id}; lift it with `oai400d unsilence {silence.id}`",
        file=sys.stderr,
    )
    return EXIT_OK


def cmd_silences(args: argparse.Namespace) -> int:
    settings = _load(args).settings
    path = settings.state.path
    now = time.time()
    found: list[Silence] = []
    if settings.state.fleet is not None:
        try:
            with _mute_book(args) as book:
                assert book is not None
                found = book.silences(after=None if args.all else now)
        except FleetError as exc:
            return _state_failed(exc)
    elif os.path.exists(path):
        from oai400d.state import State

        state = State(path, readonly=True)
        try:
            found = state.silences(after=None if args.all else now)
        finally:
            state.close()
    if args.json:
        print(json.dumps([silence_json(x, now) for x in found], indent=2))
        return EXIT_OK
    if not found:
        print("no silences" if args.all else "no active silences")
        return EXIT_OK
    rows = [("ID", "STATE", "MATCHER", "ENDS", "BY", "COMMENT")]
    for x in found:
        view = silence_json(x, now)
        by = x.created_by + (f" (lifted by {x.removed_by})" if x.removed_by else "")
        rows.append((str(x.id), view["state"], x.matcher, view["ends"], by, x.comment))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:5])) + "  " + row[5])
    return EXIT_OK


def cmd_unsilence(args: argparse.Namespace) -> int:
    try:
        with _mute_book(args) as state:
            if state is None:
                return EXIT_NOT_FOUND
            now = time.time()
            before = state.silence(args.id)
            if before is None:
                print(
                    f"oai400d unsilence: no silence {args.id} in {state.where}; "
                    "`oai400d silences --all` lists them",
                    file=sys.stderr,
                )
                return EXIT_NOT_FOUND
            if before.ends <= now:
                how = f"lifted by {before.removed_by}" if before.removed_by else "ended"
                print(f"silence {args.id} ({before.matcher}) already {how} at {iso(before.ends)}")
                return EXIT_OK
            state.lift_silence(args.id, whoami(), now)
    except (StateError, FleetError) as exc:
        return _state_failed(exc)
    print(f"lifted silence {args.id} ({before.matcher}): messages resume")
    return EXIT_OK


def cmd_ack(args: argparse.Namespace) -> int:
    try:
        with _mute_book(args) as state:
            if state is None:
                return EXIT_NOT_FOUND
            alert = state.alert(args.fingerprint)
            if alert is None:
                print(
                    f"oai400d ack: no alert with fingerprint {args.fingerprint} in {state.where}; "
                    "`oai400d status` lists the open ones",
                    file=sys.stderr,
                )
                return EXIT_NOT_FOUND
            if alert.state == "resolved":
                print(
                    f"oai400d ack: alert {args.fingerprint} ({alert.title}) is resolved; "
                    "nothing to acknowledge",
                    file=sys.stderr,
                )
                return EXIT_NOT_FOUND
            who = whoami()
            state.acknowledge(Ack(args.fingerprint, who, time.time(), args.comment, "cli"))
    except (StateError, FleetError) as exc:
        return _state_failed(exc)
    print(f"acknowledged {args.fingerprint} ({alert.title}) as {who}: its reminders stop")
    return EXIT_OK


def mutes_report(state: State) -> dict[str, Any]:
    """The active silences and the acknowledgements of unresolved alerts, for `status`."""
    now = time.time()
    active = {a.fingerprint: a for a in state.alerts()}
    acks = []
    for ack in state.acks():
        alert = active.get(ack.fingerprint)
        if alert is not None and ack.at >= alert.first_seen:  # this episode's, not an old one's
            acks.append(
                {
                    "fingerprint": ack.fingerprint,
                    "by": ack.by,
                    "at": iso(ack.at),
                    "comment": ack.comment,
                    "via": ack.via,
                    "title": alert.title,
                }
            )
    return {
        "silences": [silence_json(x, now) for x in state.silences(after=now) if x.active(now)],
        "acks": acks,
    }


def _print_mutes_status(report: dict[str, Any]) -> None:
    if report["silences"]:
        print(f"silences ({len(report['silences'])}):")
        for x in report["silences"]:
            matcher = (
                f"fingerprint={x['fingerprint']}"
                if x["fingerprint"]
                else f"category={x['category']}"
            )
            note = f": {x['comment']}" if x["comment"] else ""
            print(f"  #{x['id']} {matcher} until {x['ends']} by {x['created_by']}{note}")
    if report["acks"]:
        print(f"acknowledged ({len(report['acks'])}):")
        for a in report["acks"]:
            note = f": {a['comment']}" if a["comment"] else ""
            print(f"  {a['fingerprint']} by {a['by']} at {a['at']} ({a['title']}){note}")


def cmd_init(args: argparse.Namespace) -> int:
    """Write the example config where `run` will look for it (or print it with --config -).
    An existing file is kept unless --force: an operator's config is never overwritten by
    accident. The file holds no secret, so it is world-readable (0644) like /etc's."""
    from oai400d.shipped import ShippedFileMissing, example_config

    try:
        text = example_config(for_systemd=args.systemd)
    except ShippedFileMissing as exc:
        print(f"oai400d: {exc}", file=sys.stderr)
        return EXIT_STATE
    target = args.config or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH
    if target == "-":
        sys.stdout.write(text)
        return EXIT_OK
    if os.path.lexists(target) and not args.force:
        print(
            f"oai400d: {target}: already exists; kept as it is (--force replaces it, "
            "--config PATH writes elsewhere)",
            file=sys.stderr,
        )
        return EXIT_EXISTS
    try:
        _write_config(target, text)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        print(
            f"oai400d: {target}: cannot write the example config ({reason}); run as a user who "
            "may write there, or choose another place with --config PATH",
            file=sys.stderr,
        )
        return EXIT_STATE
    print(f"wrote {target}; edit it, then check it with: oai400d check-config --config {target}")
    return EXIT_OK


def _write_config(target: str, text: str) -> None:
    """Atomically (a reader never sees half a file), with the directory made if missing."""
    directory = os.path.dirname(os.path.abspath(target))
    os.makedirs(directory, mode=0o755, exist_ok=True)
    temporary = f"{target}.tmp-{os.getpid()}"
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)  # whatever the umask: the service's user must read it
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def cmd_unit(args: argparse.Namespace) -> int:
    """Print a shipped systemd file (the unit by default), or their names with --list."""
    from oai400d.shipped import ShippedFileMissing, systemd_file, systemd_names

    if args.list:
        for name in systemd_names():
            print(name)
        return EXIT_OK
    try:
        sys.stdout.write(systemd_file(args.name))
    except ShippedFileMissing as exc:
        print(f"oai400d: {exc} (oai400d unit --list names them)", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


# Each command's function, by the name arguments.build_parser gives it.
HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "classify": cmd_classify,
    "check-config": cmd_check_config,
    "run": cmd_run,
    "probe": cmd_probe,
    "test-alert": cmd_test_alert,
    "status": cmd_status,
    "silence": cmd_silence,
    "silences": cmd_silences,
    "unsilence": cmd_unsilence,
    "ack": cmd_ack,
    "init": cmd_init,
    "unit": cmd_unit,
}


if __name__ == "__main__":
    raise SystemExit(main())
