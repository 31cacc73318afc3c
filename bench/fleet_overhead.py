#!/usr/bin/env python3
"""What the fleet (`state.fleet`) costs: per finding in the main loop, per batch in the store.

Three batch shapes, each a batch of findings as one main-loop step hands them over:
  single   1 fingerprint x 100 findings (one problem storming: one queue row, count 100)
  twenty   20 fingerprints x 5 findings (100 findings)
  storm    500 distinct fingerprints x 1 finding (a storm of distinct problems)
The findings are real: openai-python 404 lines classified by the daemon's Classifier, one model
name per fingerprint, so each carries the ~1.2 KB of alert data the daemon queues.

1. The main loop (SQLite only, a temp state DB). Per batch, interleaved, --batches times:
   - `State.commit(files=10 positions)`: what every commit writes anyway (the baseline);
   - the same plus `fleet=` the FleetDelta rows (the extra upsert into fleet_queue), after
     building them as `Service._observe` does (alert_data of the first finding of each
     fingerprint, `replace` for the next ones), timed apart;
   - for comparison, what the daemon writes without a fleet instead: the local AlertBook's
     changed alerts (`alerts=`), after `AlertBook.observe` of each finding.
   The queue is drained (fleet_batch + fleet_sent, untimed) every --drain-every batches, so
   most upserts add to a waiting row, as between two sync rounds.
2. The store (a throwaway PostgreSQL from tests/pg_harness.py, a fresh database per case).
   A real `FleetSync` (Settings from a TOML config via load_config, the store made as the
   daemon makes it) driven round by round with `FleetSync.step(state)` on a real `State`: each
   round the "main loop" commits one batch of the shape into the queue, then one step sends it
   (contribute_many), claims, reads the owned alerts, runs their lifecycle (advance_many, one
   statement for every transition due), reads silences and acks when due. The clock is a fake
   one that moves --round-gap s (default 1 s = fleet.sync_interval) per round, so that alerts
   open after group_wait (10 s) and are updated every group_interval (60 s) within the run:
   those rounds send their transitions (one advance_many). Reported per round: wall ms (median,
   p95, max), the CPU of the calling thread, statements (FleetSync.round_trips, with a
   breakdown by store method) and the
   round trips on the wire, counted by a TCP relay in front of PostgreSQL in a separate,
   untimed pass of --count-rounds rounds (every simple Query and every extended-protocol Sync
   message the client sends waits for one answer; connection set-ups are counted apart).
   Then the same with --hosts (5) hosts at once, each a thread with its own FleetStore, state DB,
   instance and host name, all contributing the same fingerprints back to back (no pause
   between rounds: the most contention; row locks serialize their upserts; --rounds rounds in
   all, each host its share). Back to back is harsher than a storm: the sync thread runs
   once per fleet.sync_interval, so real hosts' rounds spread over each second. The
   threads share this process's GIL, so Python work of one host delays the others too.
3. Optional (--daemon): `oai400d run` with and without state.fleet under the load of
   bench/daemon_sustained.py (its writer: --daemon-rate lines/s, 1 in 1000 an error, into 10
   files for --daemon-seconds s): the daemon's CPU, and with the fleet the round trips it makes
   (the same relay) and the fleet-wide alert counts against the error lines written.

Skips (exit 0) when no PostgreSQL server binaries are found. No pass/fail, except sanity
checks (a step that fails, counts that do not add up: exit 1).

    python bench/fleet_overhead.py                   # about 1 min
    python bench/fleet_overhead.py --quick           # fewer rounds and batches
    python bench/fleet_overhead.py --daemon          # adds part 3 (about 75 s more)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import psycopg

from benchlib import DEFAULT_WORK_DIR, REPO_DIR, git_revision
from daemon_latency import error_line, host_line, percentile

sys.path.insert(0, str(REPO_DIR))  # tests.pg_harness

from tests.pg_harness import PostgresServer, PostgresUnavailable, start_postgres

from oai400d.alerts import AlertBook
from oai400d.classify.engine import Classifier
from oai400d.classify.rules import load_rules
from oai400d.config import AlertsSettings, Settings, load_config
from oai400d.fleetsync import FleetSync, alert_data
from oai400d.model import Event, FileState, Finding, FleetDelta
from oai400d.state import State
from oai400d.wiring import make_fleet_store

POSITIONS = 10  # followed files whose positions every commit writes
STORE_METHODS = (
    "contribute_many",
    "claim",
    "alerts",
    "advance_many",
    "record_message",
    "silences",
    "acks",
    "prune",
)


@dataclass(frozen=True)
class Shape:
    name: str
    fingerprints: int
    per_fingerprint: int

    @property
    def findings(self) -> int:
        return self.fingerprints * self.per_fingerprint

    @property
    def label(self) -> str:
        return f"{self.fingerprints} fp x {self.per_fingerprint}"


SHAPES = (Shape("single", 1, 100), Shape("twenty", 20, 5), Shape("storm", 500, 1))


def us(ns: float) -> float:
    return ns / 1000.0


def findings_for(shape: Shape, classifier: Classifier) -> list[Finding]:
    """One batch: each fingerprint's findings, interleaved as a storm writes them."""
    distinct: list[Finding] = []
    for i in range(shape.fingerprints):
        text = error_line(f"gpt-fleet-{i}").rstrip("\n")
        path = f"/var/log/app/app-{i % POSITIONS:02d}.log"
        found = classifier.classify(Event(path, 1 + i, 1 + i, text))
        if found is None:
            raise SystemExit(f"error: the classifier found nothing in {text!r}")
        distinct.append(found)
    if len({f.fingerprint for f in distinct}) != shape.fingerprints:
        raise SystemExit("error: the error lines did not give distinct fingerprints")
    return [f for _ in range(shape.per_fingerprint) for f in distinct]


def queue_deltas(findings: list[Finding], now: float) -> dict[str, FleetDelta]:
    """What `Service._observe` queues for the store for these findings (one row per alert)."""
    deltas: dict[str, FleetDelta] = {}
    for finding in findings:
        queued = deltas.get(finding.fingerprint)
        deltas[finding.fingerprint] = (
            FleetDelta(finding.fingerprint, 1, now, now, alert_data(finding))
            if queued is None
            else replace(queued, count=queued.count + 1, last_seen=now)
        )
    return deltas


def positions(step: int) -> list[FileState]:
    return [
        FileState(f"/var/log/app/app-{i:02d}.log", 64769, 1000 + i, "h" * 64, 64, step * 4096, step)
        for i in range(POSITIONS)
    ]


def describe(values_ns: list[float]) -> tuple[float, float]:
    """(median, p95) in µs."""
    ordered = sorted(values_ns)
    return us(statistics.median(ordered)), us(percentile(ordered, 95))


# --------------------------------------------------------------------------- 1. the main loop


@dataclass
class MainLoopResult:
    shape: Shape
    rows: int
    base_us: float  # commit of positions alone, median per batch
    fleet_us: float  # commit of positions + fleet deltas
    fleet_p95_us: float
    build_us: float  # building the deltas (Service._observe's part), per batch
    local_us: float  # commit of positions + the local book's changed alerts
    observe_us: float  # AlertBook.observe of every finding + changed(), per batch

    @property
    def upsert_us(self) -> float:
        return self.fleet_us - self.base_us

    @property
    def total_us(self) -> float:
        return self.upsert_us + self.build_us


def bench_main_loop(
    shape: Shape, findings: list[Finding], work: Path, batches: int, drain_every: int
) -> MainLoopResult:
    path = work / f"main-{shape.name}.db"
    state = State(str(path))
    book = AlertBook(AlertsSettings(), host="bench")
    base: list[float] = []
    fleet: list[float] = []
    build: list[float] = []
    local: list[float] = []
    observe: list[float] = []
    clock = time.perf_counter_ns
    now = time.time()
    rows = 0
    try:
        for i in range(batches + 5):  # the first 5 warm up
            now += 0.1
            files = positions(i)
            t0 = clock()
            state.commit(files=files, now=now)
            t1 = clock()
            deltas = queue_deltas(findings, now)
            t2 = clock()
            state.commit(files=files, fleet=deltas.values(), now=now)
            t3 = clock()
            for finding in findings:
                book.observe(finding, now)
            changed = book.changed()
            t4 = clock()
            state.commit(files=files, alerts=changed, now=now)
            t5 = clock()
            rows = len(deltas)
            if i >= 5:
                base.append(t1 - t0)
                build.append(t2 - t1)
                fleet.append(t3 - t2)
                observe.append(t4 - t3)
                local.append(t5 - t4)
            if (i + 1) % drain_every == 0:  # the sync thread takes the queue away
                while (batch := state.fleet_batch()) is not None:
                    state.fleet_sent(batch[0])
        queued = state.fleet_queued()
        if queued > shape.findings * drain_every:
            raise SystemExit(f"error: {queued} findings left in fleet_queue; the drain failed")
    finally:
        state.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    fleet_med, fleet_p95 = describe(fleet)
    return MainLoopResult(
        shape=shape,
        rows=rows,
        base_us=describe(base)[0],
        fleet_us=fleet_med,
        fleet_p95_us=fleet_p95,
        build_us=describe(build)[0],
        local_us=describe(local)[0],
        observe_us=describe(observe)[0],
    )


def print_main_loop(results: list[MainLoopResult]) -> list[str]:
    """Print the main loop's figures; return the Markdown table rows."""
    print()
    print("1. Main loop: State.commit of one batch (SQLite, WAL, synchronous=NORMAL), medians")
    print(
        f"{'shape':>11} {'findings':>8} {'rows':>5} {'positions':>10} {'+fleet':>9} "
        f"{'p95':>9} {'upsert':>9} {'upsert/f':>9} {'build/f':>8} {'fleet/f':>8} "
        f"{'(no fleet: +alerts':>19} {'observe)':>9}"
    )
    print(
        f"{'':>11} {'':>8} {'':>5} {'µs':>10} {'µs':>9} {'µs':>9} {'µs':>9} {'µs':>9} "
        f"{'µs':>8} {'µs':>8} {'µs':>19} {'µs':>9}"
    )
    rows: list[str] = []
    for r in results:
        n = r.shape.findings
        print(
            f"{r.shape.label:>11} {n:>8} {r.rows:>5} {r.base_us:>10.0f} {r.fleet_us:>9.0f} "
            f"{r.fleet_p95_us:>9.0f} {r.upsert_us:>9.0f} {r.upsert_us / n:>9.2f} "
            f"{r.build_us / n:>8.2f} {r.total_us / n:>8.2f} {r.local_us:>19.0f} "
            f"{r.observe_us:>9.0f}"
        )
        rows.append(
            f"| {r.shape.label} | {n} | {r.rows} | {r.base_us:.0f} µs | {r.fleet_us:.0f} µs | "
            f"{r.upsert_us:.0f} µs = {r.upsert_us / n:.1f} µs | {r.build_us / n:.1f} µs | "
            f"**{r.total_us / n:.1f} µs** | {r.local_us:.0f} µs + {r.observe_us:.0f} µs |"
        )
    print(
        "positions: commit of 10 file positions alone; +fleet: the same with the batch's "
        "FleetDelta rows; upsert = +fleet - positions; build: making the deltas as "
        "Service._observe does; fleet/f = (upsert + build) per finding. For comparison, "
        "without a fleet the daemon writes the local AlertBook's changed alerts instead "
        "(+alerts, a commit with the positions) after AlertBook.observe of each finding."
    )
    return rows


# --------------------------------------------------------------------------- the wire counter


class _Stream:
    """Where the parser is in one client's byte stream (PostgreSQL protocol v3)."""

    def __init__(self) -> None:
        self.startup = True  # untyped messages until the StartupMessage
        self.header = bytearray()
        self.skip = 0


class CountingRelay:
    """A TCP relay in front of PostgreSQL that counts what its clients send.

    Every simple Query ('Q') and every extended-protocol Sync ('S') message makes the client
    wait for the server's ReadyForQuery: one round trip each. Connection set-ups (a
    StartupMessage; the SSLRequest before it is refused by the test server) are counted apart.
    """

    SSL_REQUEST = 80877103
    GSSENC_REQUEST = 80877104
    CANCEL_REQUEST = 80877102

    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.queries = 0
        self.syncs = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._closed = False
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, name="relay-accept", daemon=True).start()

    def dsn(self, dsn: str) -> str:
        return dsn.replace(f":{self.upstream[1]}/", f":{self.port}/", 1)

    @property
    def round_trips(self) -> int:
        with self._lock:
            return self.queries + self.syncs

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self.listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(server, client, None), daemon=True).start()
            threading.Thread(
                target=self._pump, args=(client, server, _Stream()), daemon=True
            ).start()

    def _pump(self, src: socket.socket, dst: socket.socket, stream: _Stream | None) -> None:
        try:
            while data := src.recv(1 << 16):
                if stream is not None:
                    self._count(stream, data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _count(self, st: _Stream, data: bytes) -> None:
        pos, end = 0, len(data)
        while pos < end:
            if st.skip:
                n = min(st.skip, end - pos)
                st.skip -= n
                pos += n
                continue
            need = 8 if st.startup else 5
            take = min(need - len(st.header), end - pos)
            st.header += data[pos : pos + take]
            pos += take
            if len(st.header) < need:
                break
            if st.startup:
                length, code = struct.unpack("!ii", st.header)
                st.skip = length - 8
                if code not in (self.SSL_REQUEST, self.GSSENC_REQUEST):
                    st.startup = False
                    if code != self.CANCEL_REQUEST:
                        with self._lock:
                            self.connections += 1
            else:
                kind = st.header[0]
                st.skip = int.from_bytes(st.header[1:5], "big") - 4
                if kind in (ord("Q"), ord("S")):
                    with self._lock:
                        if kind == ord("Q"):
                            self.queries += 1
                        else:
                            self.syncs += 1
            st.header.clear()


# --------------------------------------------------------------------------- 2. the store


class FakeClock:
    def __init__(self, start: float) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t


@dataclass
class Host:
    """One daemon's FleetSync with its own state DB, fake clock and counted store methods."""

    sync: FleetSync
    state: State
    clock: FakeClock
    calls: Counter[str] = field(default_factory=Counter)

    def close(self) -> None:
        self.sync.store.close()
        self.state.close()


def host_config(work: Path, dsn: str, name: str) -> Settings:
    """Real Settings for one host, read from a config file as the daemon reads it."""
    work.mkdir(parents=True, exist_ok=True)
    config = work / "config.toml"
    config.write_text(
        f'[logs]\npaths = ["{work}/*.log"]\n\n'
        f'[state]\npath = "{work / "state.db"}"\nfleet = "{dsn}"\n\n'
        f'[fleet]\nhost = "{name}"\n\n[probes]\nenabled = false\n'
    )
    return load_config(str(config), environ={}).settings


def make_host(work: Path, dsn: str, name: str, start: float) -> Host:
    """Must run in the thread that uses it (one SQLite connection per thread)."""
    settings = host_config(work, dsn, name)
    store = make_fleet_store(settings)  # as the daemon makes it (fleetlink.make_fleet_link)
    assert store is not None
    sync = FleetSync(settings, store, lambda: None)
    clock = FakeClock(start)
    sync.clock = clock
    state = State(settings.state.path)
    sync.instance = state.fleet_instance()  # what FleetSync._run sets
    host = Host(sync, state, clock)
    store: Any = sync.store
    for method in STORE_METHODS:  # count the statements by kind (instance attributes only)
        setattr(store, method, _counted(getattr(store, method), method, host.calls))
    return host


def _counted(method: Callable[..., Any], name: str, calls: Counter[str]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        calls[name] += 1
        return method(*args, **kwargs)

    return call


@dataclass
class Round:
    wall_ns: int
    cpu_ns: int
    statements: int
    calls: Counter[str]
    wire: int = 0  # round trips on the wire (counting pass only)
    connects: int = 0


def run_round(
    host: Host, findings: list[Finding], gap: float, relay: CountingRelay | None
) -> Round:
    """The main loop commits one batch into the queue, then one FleetSync step."""
    now = host.clock.t
    host.state.commit(fleet=queue_deltas(findings, now).values(), now=now)
    calls0 = Counter(host.calls)
    statements0 = host.sync.round_trips
    wire0 = relay.round_trips if relay else 0
    connects0 = relay.connections if relay else 0
    c0 = time.thread_time_ns()
    t0 = time.perf_counter_ns()
    host.sync.step(host.state)
    t1 = time.perf_counter_ns()
    c1 = time.thread_time_ns()
    if host.sync.failing_since is not None:
        raise RuntimeError(f"a FleetSync step failed on {host.sync.host}; see the log above")
    host.clock.t += gap
    calls = host.calls - calls0
    statements = host.sync.round_trips - statements0
    if sum(calls.values()) != statements:
        raise RuntimeError(
            f"FleetSync.round_trips counted {statements} statements, the store got "
            f"{sum(calls.values())} calls ({dict(calls)})"
        )
    return Round(
        wall_ns=t1 - t0,
        cpu_ns=c1 - c0,
        statements=statements,
        calls=calls,
        wire=(relay.round_trips - wire0) if relay else 0,
        connects=(relay.connections - connects0) if relay else 0,
    )


@dataclass
class StoreResult:
    shape: Shape
    hosts: int
    rounds: list[Round]  # every host's measured rounds
    count_rounds: list[Round] = field(default_factory=list)  # the counting pass
    store_count: int = 0
    expected_count: int = 0

    def wall_ms(self) -> tuple[float, float]:
        """(median, p95) of the wall time of a round, ms."""
        ordered = sorted(float(r.wall_ns) for r in self.rounds)
        return statistics.median(ordered) / 1e6, percentile(ordered, 95) / 1e6

    def max_ms(self, transition: bool) -> float | None:
        """The slowest round without (or with) a lifecycle transition (advance_many), ms."""
        walls = [r.wall_ns for r in self.rounds if bool(r.calls["advance_many"]) == transition]
        return max(walls) / 1e6 if walls else None

    def cpu_ms(self) -> float:
        return statistics.median(r.cpu_ns for r in self.rounds) / 1e6

    def per_finding_us(self) -> float:
        return self.wall_ms()[0] * 1000 / self.shape.findings

    def mean_statements(self) -> float:
        return statistics.fmean(r.statements for r in self.rounds)

    def breakdown(self) -> str:
        total: Counter[str] = Counter()
        for r in self.rounds:
            total.update(r.calls)
        n = len(self.rounds)
        return ", ".join(f"{name} {total[name] / n:.2f}" for name in STORE_METHODS if total[name])

    def counted(self, transition: bool) -> str:
        """'statements / wire round trips' of the counting pass's rounds (the first, which
        opens the store, left out): their range; with `transition`, the rounds with advance_many."""
        rounds = [r for r in self.count_rounds[1:] if bool(r.calls["advance_many"]) == transition]
        if not rounds:
            return "-"

        def span(values: list[int]) -> str:
            lo, hi = min(values), max(values)
            return f"{lo}" if lo == hi else f"{lo}-{hi}"

        return f"{span([r.statements for r in rounds])} / {span([r.wire for r in rounds])}"

    def wire_per_statement(self) -> float:
        rounds = self.count_rounds[1:]
        statements = sum(r.statements for r in rounds)
        return sum(r.wire for r in rounds) / statements if statements else float("nan")


def store_count(dsn: str) -> int:
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        row = conn.execute("SELECT coalesce(sum(count), 0) FROM fleet_alerts").fetchone()
        return int(row[0]) if row else 0


def bench_store(
    server: PostgresServer,
    shape: Shape,
    findings: list[Finding],
    work: Path,
    rounds: int,
    count_rounds: int,
    gap: float,
    warmup: int = 3,
) -> StoreResult:
    """One host: a timed pass, then a counting pass through the relay (fresh databases)."""
    start = time.time()
    dsn = server.create_database()
    host = make_host(work / f"{shape.name}-1", dsn, "bench-0", start)
    measured: list[Round] = []
    try:
        for i in range(warmup + rounds):
            r = run_round(host, findings, gap, None)
            if i >= warmup:
                measured.append(r)
    finally:
        host.close()
    result = StoreResult(shape, 1, measured)
    result.store_count = store_count(dsn)
    result.expected_count = (warmup + rounds) * shape.findings

    relay = CountingRelay(server.port)
    counting = make_host(
        work / f"{shape.name}-count", relay.dsn(server.create_database()), "c", start
    )
    try:
        result.count_rounds = [
            run_round(counting, findings, gap, relay) for _ in range(count_rounds)
        ]
    finally:
        counting.close()
        relay.close()
    return result


def bench_hosts(
    server: PostgresServer,
    shape: Shape,
    findings: list[Finding],
    work: Path,
    rounds: int,
    hosts: int,
    gap: float,
    warmup: int = 3,
) -> StoreResult:
    """`hosts` FleetSyncs at once on one store, the same fingerprints, rounds back to back;
    `rounds` in all (each host its share)."""
    dsn = server.create_database()
    start = time.time()
    per_host_rounds = -(-rounds // hosts)
    barrier = threading.Barrier(hosts)
    per_host: list[list[Round]] = [[] for _ in range(hosts)]
    errors: list[BaseException] = []

    def run(i: int) -> None:
        host = None
        try:
            host = make_host(work / f"{shape.name}-{hosts}h-{i}", dsn, f"bench-{i}", start)
            run_round(host, findings, gap, None)  # opens the store (migrates once)
            barrier.wait(60)
            for j in range(warmup + per_host_rounds):
                r = run_round(host, findings, gap, None)
                if j >= warmup:
                    per_host[i].append(r)
        except BaseException as exc:  # reported by the caller
            errors.append(exc)
            barrier.abort()
        finally:
            if host is not None:
                host.close()

    threads = [threading.Thread(target=run, args=(i,), name=f"host-{i}") for i in range(hosts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"a host failed: {errors[0]!r}") from errors[0]
    result = StoreResult(shape, hosts, [r for rs in per_host for r in rs])
    result.store_count = store_count(dsn)
    result.expected_count = hosts * (1 + warmup + per_host_rounds) * shape.findings
    return result


def print_store(results: list[StoreResult], hosts: int) -> list[str]:
    """Print the store's figures; return the Markdown table rows."""

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    print()
    print(
        "2. The store: one FleetSync.step per batch (contribute_many, claim, alerts, advance "
        "when a transition is due, silences + acks every 2 s), real PostgreSQL on 127.0.0.1"
    )
    print(
        f"{'shape':>11} {'hosts':>5} {'rounds':>6} {'wall ms':>8} {'p95':>6} {'max':>7} "
        f"{'transition':>10} {'CPU ms':>6} {'µs/finding':>10} {'stmts':>6} "
        f"{'stmts / wire':>13} {'transition':>15}"
    )
    rows: list[str] = []
    for r in results:
        med, p95 = r.wall_ms()
        print(
            f"{r.shape.label:>11} {r.hosts:>5} {len(r.rounds):>6} {med:>8.2f} {p95:>6.1f} "
            f"{ms(r.max_ms(False)):>7} {ms(r.max_ms(True)):>10} {r.cpu_ms():>6.1f} "
            f"{r.per_finding_us():>10.1f} {r.mean_statements():>6.2f} "
            f"{r.counted(False):>13} {r.counted(True):>15}"
        )
        hosts_text = "1" if r.hosts == 1 else f"{r.hosts}, at once"
        wire = f"{r.counted(False)}; transition round {r.counted(True)}" if r.count_rounds else ""
        rows.append(
            f"| {r.shape.label} ({r.shape.findings} findings) | {hosts_text} | {med:.1f} / "
            f"{p95:.1f} ms | {ms(r.max_ms(False))} ms | {ms(r.max_ms(True))} ms | "
            f"{r.cpu_ms():.1f} ms | {r.per_finding_us():.0f} µs | {r.mean_statements():.2f} | "
            f"{wire} |"
        )
    print(
        "wall ms: median per round and host, p95, the slowest round without a lifecycle "
        "transition (max) and with one (transition: the round that sends advance_many for the "
        "alerts opened or updated); CPU ms: median CPU of the calling thread per round; "
        "µs/finding: median wall / findings in the host's batch; stmts: statements per round "
        "(FleetSync.round_trips), mean; stmts / wire: statements and round trips on the wire "
        "per round in the counting pass (first round left out), rounds without and with a "
        f"transition. The {hosts}-host rows: every host's rounds, back to back, same "
        "fingerprints."
    )
    for r in results:
        mismatch = "" if r.store_count == r.expected_count else "  <- differs"
        print(
            f"  {r.shape.label:>11} x{r.hosts}: statements per round by kind: {r.breakdown()}; "
            f"fleet-wide count {r.store_count:,} = {r.expected_count:,} findings sent{mismatch}"
        )
        transitions = [x for x in r.rounds if x.calls["advance_many"]]
        if transitions:
            worst = max(transitions, key=lambda x: x.wall_ns)
            print(
                f"  {'':>11}     slowest transition round: "
                f"{worst.calls['advance_many']} advance_many, "
                f"{worst.statements} statements, wall {worst.wall_ns / 1e6:.1f} ms, CPU "
                f"{worst.cpu_ns / 1e6:.1f} ms"
            )
        if r.count_rounds:
            first = r.count_rounds[0]
            print(
                f"  {'':>11}     counting pass, {len(r.count_rounds)} rounds: "
                f"{sum(x.statements for x in r.count_rounds)} statements, "
                f"{sum(x.wire for x in r.count_rounds)} round trips on the wire "
                f"({r.wire_per_statement():.2f} per statement after the first round; the "
                f"first: {first.statements} statements, {first.wire} round trips, "
                f"{first.connects} connections, with the schema migration)"
            )
    return rows


# --------------------------------------------------------------------------- 3. the daemon


def bench_daemon(
    server: PostgresServer, args: argparse.Namespace, work: Path, lines: list[str]
) -> bool:
    """`oai400d run` under daemon_sustained.py's load, without and with state.fleet."""
    import daemon_sustained as ds
    from daemon_latency import Daemon, resolve_or_fail, write_config

    cmd = resolve_or_fail(args.cmd)
    if cmd is None:
        return False
    print()
    print(
        f"3. oai400d run: {args.daemon_rate:,.0f} lines/s (1 in 1000 an error) into 10 files "
        f"for {args.daemon_seconds:g} s, without and with state.fleet"
    )
    ok = True
    for fleet in (False, True):
        d = work / ("daemon-fleet" if fleet else "daemon-local")
        logs = d / "logs"
        logs.mkdir(parents=True)
        paths = ds.log_paths(logs, 10)
        for path in paths:
            path.write_bytes(b"")
        config = write_config(d)
        relay: CountingRelay | None = None
        dsn = ""
        if fleet:
            dsn = server.create_database()
            relay = CountingRelay(server.port)
            text = config.read_text().replace(
                "[state]\n", f'[state]\nfleet = "{relay.dsn(dsn)}"\n', 1
            )
            config.write_text(text + '\n[fleet]\nhost = "bench-daemon"\n')
        daemon = Daemon(cmd, config)
        summary: dict[str, Any] = {}
        try:
            if not daemon.boot(10):
                ok = False
                print(daemon.stderr_tail())
                continue
            time.sleep(1.0)
            cpu0, t0 = daemon.cpu_seconds(), time.monotonic()
            wire0 = relay.round_trips if relay else 0
            writer = subprocess.run(
                [
                    sys.executable,
                    str(Path(ds.__file__).resolve()),
                    ds.WRITER_MODE,
                    f"--logs={logs}",
                    "--files=10",
                    f"--rate={args.daemon_rate}",
                    f"--seconds={args.daemon_seconds}",
                    "--error-every=1000",
                    "--seed=400",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            cpu1, t1 = daemon.cpu_seconds(), time.monotonic()
            wire1 = relay.round_trips if relay else 0
            if writer.returncode != 0:
                print(f"ERROR: the writer exited {writer.returncode}: {writer.stderr[-500:]}")
                ok = False
                continue
            summary = json.loads(writer.stdout.strip().splitlines()[-1])
            expected = sum(int(n) for n in summary["errors"].values())
            counted = -1
            deadline = time.monotonic() + 15.0
            while time.monotonic() < deadline:
                if fleet:
                    counted = store_count(dsn)
                else:
                    counted = sum(int(a["count"]) for a in daemon.status().get("alerts", []))
                if counted >= expected:
                    break
                time.sleep(0.3)
            alive = daemon.alive()
        finally:
            stopped = daemon.stop()
            if relay is not None:
                relay.close()
        if not (alive and stopped.clean):
            print(f"ERROR: the daemon died or did not stop cleanly\n{daemon.stderr_tail()}")
            ok = False
        seconds = t1 - t0
        pct = (cpu1 - cpu0) / seconds * 100
        rate = int(summary["lines"]) / (float(summary["end"]) - float(summary["start"]))
        where = "fleet-wide alert counts" if fleet else "local alert counts"
        wire = (
            f", {wire1 - wire0:,} round trips to PostgreSQL = {(wire1 - wire0) / seconds:.1f}/s"
            if fleet
            else ""
        )
        line = (
            f"{'with' if fleet else 'without'} state.fleet: {rate:,.0f} lines/s, daemon CPU "
            f"{cpu1 - cpu0:.2f} s in {seconds:.1f} s = {pct:.1f} % of one core{wire}; "
            f"{where} {counted}/{expected} error lines"
        )
        print(line)
        lines.append(line)
        if counted != expected:
            print("ERROR: the alert counts do not add up to the error lines written")
            ok = False
    return ok


# --------------------------------------------------------------------------- main


@contextlib.contextmanager
def work_dir(keep: bool) -> Iterator[Path]:
    DEFAULT_WORK_DIR.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="fleet-overhead-", dir=DEFAULT_WORK_DIR))
    try:
        yield path
    finally:
        if keep:
            print(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=200, help="timed store rounds per case (200)")
    ap.add_argument("--batches", type=int, default=300, help="timed main-loop batches (300)")
    ap.add_argument("--count-rounds", type=int, default=30, help="rounds of the counting pass (30)")
    ap.add_argument("--hosts", type=int, default=5, help="hosts of the concurrent case (5)")
    ap.add_argument(
        "--round-gap", type=float, default=1.0, help="fake seconds between rounds (1.0)"
    )
    ap.add_argument(
        "--drain-every", type=int, default=10, help="main-loop batches per queue drain (10)"
    )
    ap.add_argument(
        "--shape", choices=[s.name for s in SHAPES] + ["all"], default="all", help="(all)"
    )
    ap.add_argument("--quick", action="store_true", help="50 rounds, 100 batches")
    ap.add_argument("--daemon", action="store_true", help="also part 3: oai400d run, 2 runs")
    ap.add_argument("--daemon-seconds", type=float, default=30.0, help="writing time (30)")
    ap.add_argument("--daemon-rate", type=float, default=10_000, help="lines/s (10000)")
    ap.add_argument("--cmd", help="oai400d command for --daemon (default: as daemon_*.py)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds, args.batches, args.count_rounds = 50, 100, 15
    if min(args.rounds, args.batches, args.count_rounds, args.hosts, args.drain_every) < 1:
        ap.error("--rounds, --batches, --count-rounds, --hosts, --drain-every must be >= 1")
    shapes = [s for s in SHAPES if args.shape in ("all", s.name)]

    try:
        server = start_postgres()
    except PostgresUnavailable as exc:
        print(f"skipped: no PostgreSQL server to measure the fleet store against: {exc}")
        return 0
    started = time.monotonic()
    ok = True
    try:
        print(f"host: {host_line()}; {git_revision()}; {date.today()}")
        version = server.bindir.parent.name
        print(f"PostgreSQL {version} ({server.bindir}), fsync=off, on 127.0.0.1:{server.port}")
        t = time.perf_counter()
        classifier = Classifier(load_rules())
        batches = {s.name: findings_for(s, classifier) for s in shapes}
        print(f"findings classified in {time.perf_counter() - t:.2f} s")
        with work_dir(args.keep) as work:
            main_results = [
                bench_main_loop(s, batches[s.name], work, args.batches, args.drain_every)
                for s in shapes
            ]
            md_main = print_main_loop(main_results)

            store_results: list[StoreResult] = []
            for s in shapes:
                t = time.perf_counter()
                store_results.append(
                    bench_store(
                        server,
                        s,
                        batches[s.name],
                        work,
                        args.rounds,
                        args.count_rounds,
                        args.round_gap,
                    )
                )
                store_results.append(
                    bench_hosts(
                        server, s, batches[s.name], work, args.rounds, args.hosts, args.round_gap
                    )
                )
                print(f"  store, {s.label}: {time.perf_counter() - t:.1f} s", flush=True)
            md_rows = print_store(store_results, args.hosts)
            for r in store_results:
                if r.store_count != r.expected_count:
                    print(f"ERROR: the fleet-wide count of {r.shape.label} x{r.hosts} differs")
                    ok = False

            daemon_lines: list[str] = []
            if args.daemon:
                ok = bench_daemon(server, args, work, daemon_lines) and ok
        print()
        print("Markdown for BENCHMARKS.md:")
        print(
            "| batch | findings | queue rows | commit: positions | + fleet | fleet upsert: "
            "per batch = per finding | building deltas, per finding | fleet, per finding | "
            "no fleet: alerts commit + AlertBook.observe |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        print("\n".join(md_main))
        print()
        print(
            "| batch | hosts | round: median / p95 | slowest round | slowest transition round "
            "| CPU per round | per finding | statements per round | statements / round trips "
            "on the wire per round |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        print("\n".join(md_rows))
        for line in daemon_lines:
            print(f"- {line}")
    finally:
        server.stop()
    print(f"\ndone in {time.monotonic() - started:.0f} s at {datetime.now():%H:%M:%S}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
