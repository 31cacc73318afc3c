"""The fleet's shared alert book against a real PostgreSQL on 127.0.0.1 (tests/pg_harness.py)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from oai400d.errors import FleetStoreError, FleetUnavailableError
from oai400d.fleet import SCHEMA_VERSION, Contribution, FleetStore, describe_dsn
from oai400d.fleet.connection import FleetConnection
from oai400d.fleet.schema import migrate, schema_version
from oai400d.model import Ack
from tests.daemon_harness import wait_until
from tests.pg_harness import PostgresServer, free_port

T0 = 1_790_000_000.0  # a fixed epoch time for first/last seen


@pytest.fixture
def store(fleet_dsn: str) -> Iterator[FleetStore]:
    """An opened store on a fresh database; short timeouts so failures show fast."""
    with FleetStore(fleet_dsn, connect_timeout=2, statement_timeout=2) as opened:
        yield opened


def _versions(dsn: str) -> list[tuple[int, object]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT version, applied FROM fleet_schema_version ORDER BY version"
        ).fetchall()


def test_schema_is_created_once_and_migrating_again_is_a_no_op(fleet_dsn: str) -> None:
    """The first open applies every migration; later opens (also 4 at once) apply none."""
    first = FleetStore(fleet_dsn)
    assert first.open() == SCHEMA_VERSION
    assert first.schema_version() == SCHEMA_VERSION
    before = _versions(fleet_dsn)
    assert [v for v, _ in before] == list(range(1, SCHEMA_VERSION + 1))

    results: list[int] = []
    stores = [FleetStore(fleet_dsn) for _ in range(4)]
    threads = [threading.Thread(target=lambda s=s: results.append(s.open())) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == [0, 0, 0, 0]
    assert _versions(fleet_dsn) == before  # not even the applied time changed
    for s in [first, *stores]:
        s.close()


def test_a_store_newer_than_this_oai400d_is_refused_with_what_to_do(fleet_dsn: str) -> None:
    """Another host ran a newer schema: not retryable, says to upgrade."""
    with FleetStore(fleet_dsn):
        pass
    with psycopg.connect(fleet_dsn) as conn:
        conn.execute(
            "INSERT INTO fleet_schema_version (version) VALUES (%s)", (SCHEMA_VERSION + 1,)
        )
    with pytest.raises(FleetStoreError, match=r"newer than this oai400d.*upgrade") as caught:
        FleetStore(fleet_dsn).open()
    assert caught.value.retryable is False


def test_five_hosts_contributing_at_once_make_one_alert_with_every_count(fleet_dsn: str) -> None:
    """5 hosts, each its own connection, 40 adds each to one fingerprint: one row, no count lost."""
    hosts = [f"web-{i}" for i in range(1, 6)]
    stores = [FleetStore(fleet_dsn, statement_timeout=5) for _ in hosts]
    for s in stores:
        s.open()
    start = threading.Barrier(len(hosts))
    errors: list[BaseException] = []

    def host_loop(store: FleetStore, host: str, index: int) -> None:
        try:
            start.wait(timeout=10)
            for n in range(40):
                seen = T0 + index * 10 + n
                store.contribute("fp-shared", host, index + 1, seen, seen, {"title": "key revoked"})
        except BaseException as exc:  # reported by the main thread below
            errors.append(exc)

    threads = [
        threading.Thread(target=host_loop, args=(s, h, i))
        for i, (s, h) in enumerate(zip(stores, hosts, strict=True))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []

    alert = stores[0].alert("fp-shared")
    assert alert is not None
    assert alert.count == sum(40 * (i + 1) for i in range(5))
    assert [h.host for h in alert.hosts] == hosts
    assert [h.count for h in alert.hosts] == [40 * (i + 1) for i in range(5)]
    assert alert.first_seen == T0
    assert alert.last_seen == T0 + 4 * 10 + 39
    assert alert.data == {"title": "key revoked"}
    with psycopg.connect(fleet_dsn) as conn:
        rows = conn.execute("SELECT count(*) FROM fleet_alerts").fetchone()
    assert rows == (1,)
    for s in stores:
        s.close()


def test_unknown_fingerprint_has_no_alert(store: FleetStore) -> None:
    """A fingerprint no host contributed has no fleet alert (None, not an error)."""
    assert store.alert("nope") is None


def test_one_host_owns_the_message_until_it_stops_renewing(fleet_dsn: str) -> None:
    """A claims the message, B cannot; A stops renewing → B takes over after the ttl; release."""
    with FleetStore(fleet_dsn) as a, FleetStore(fleet_dsn) as b:
        a.contribute("fp", "host-a", 1, T0, T0)
        b.contribute("fp", "host-b", 1, T0, T0)
        assert a.claim(["fp"], "host-a", ttl=60) == {"fp": None}
        assert b.claim(["fp"], "host-b", ttl=60) == {}
        assert a.claim(["fp"], "host-a", ttl=60) == {"fp": "host-a"}  # renewed
        assert a.record_message("fp", "host-a", {"channel": "C1", "ts": "1.2"})
        assert not b.record_message("fp", "host-b", {"channel": "C1", "ts": "9.9"})

        # A "dies": its last renewal is short and it never renews again.
        assert a.claim(["fp"], "host-a", ttl=0.3) == {"fp": "host-a"}
        started = time.monotonic()
        wait_until(lambda: b.claim(["fp"], "host-b", ttl=60), 5, "B to take the message over")
        assert time.monotonic() - started < 2
        alert = b.alert("fp")
        assert alert is not None and alert.owner == "host-b"
        assert alert.message == {"channel": "C1", "ts": "1.2"}  # B edits A's message, no new one
        assert a.claim(["fp"], "host-a", ttl=60) == {}  # A, back, learns it lost the message
        assert not a.release_lease("fp", "host-a")

        assert b.release_lease("fp", "host-b")
        released = a.alert("fp")
        assert released is not None and released.owner is None and released.lease_until is None
        assert a.claim(["fp"], "host-a", ttl=60) == {"fp": None}  # free at once after a release


def test_nothing_to_claim_for_an_alert_nobody_opened(store: FleetStore) -> None:
    """Claiming fingerprints that no host contributed leases nothing."""
    assert store.claim(["never-seen"], "host-a", ttl=60) == {}


def test_an_alert_orphaned_for_a_whole_lease_is_claimed_by_any_host(store: FleetStore) -> None:
    """Every host that saw it stopped: another host, which never saw it, still takes it over
    (after its lease has been expired for one more ttl), so that it resolves."""
    store.contribute("fp", "host-a", 1, T0, T0)
    assert store.claim(["fp"], "host-a", ttl=0.2) == {"fp": None}
    assert store.claim([], "host-b", ttl=0.2) == {}  # not yet: A may still be renewing
    wait_until(lambda: store.claim([], "host-b", ttl=0.2), 5, "the orphan to be claimed")


def test_a_batch_sent_again_is_counted_once(store: FleetStore) -> None:
    """A batch whose answer was lost is sent again under its number: applied once. A new
    instance (a replaced state DB) numbers its batches afresh."""
    batch = [Contribution("fp", "host-a", 3, T0, T0 + 1)]
    assert store.contribute_many(batch, batch=("inst-1", 1))
    assert not store.contribute_many(batch, batch=("inst-1", 1))
    assert store.contribute_many(batch, batch=("inst-1", 2))
    assert not store.contribute_many(batch, batch=("inst-1", 1))  # an older one, late
    assert store.contribute_many(batch, batch=("inst-2", 1))
    alert = store.alert("fp")
    assert alert is not None and alert.count == 9


def test_advance_needs_the_lease_and_a_resolution_an_unchanged_count(store: FleetStore) -> None:
    """Only the lease holder advances an alert, only for its episode, and a resolution only when no host contributed since the owner looked (once)."""
    store.contribute("fp", "host-a", 2, T0, T0)
    store.claim(["fp"], "host-a", ttl=60)
    assert not store.advance("fp", "host-b", 1, "open", {"notified_count": 2})  # not the owner
    assert not store.advance("fp", "host-a", 2, "open", {"notified_count": 2})  # wrong episode
    assert store.advance("fp", "host-a", 1, "open", {"notified_count": 2})
    store.contribute("fp", "host-b", 1, T0 + 5, T0 + 5)  # came in after the owner looked
    assert not store.advance("fp", "host-a", 1, "resolved", {}, expect_count=2)
    assert store.advance("fp", "host-a", 1, "resolved", {"notified_count": 3}, expect_count=3)
    assert not store.advance("fp", "host-a", 1, "resolved", {}, expect_count=3)  # once only


def test_a_resolved_alert_that_comes_back_is_a_new_episode(store: FleetStore) -> None:
    """Count, hosts, announcement state and message start afresh; first_seen is the new one."""
    store.contribute("fp", "host-a", 2, T0, T0)
    store.contribute("fp", "host-b", 1, T0, T0)
    store.claim(["fp"], "host-a", ttl=60)
    store.record_message("fp", "host-a", {"channel": "C1", "ts": "1.2"})
    assert store.advance("fp", "host-a", 1, "resolved", {"notified_count": 3}, expect_count=3)
    store.contribute("fp", "host-c", 4, T0 + 100, T0 + 101)
    (alert,) = store.alerts(["fp"])
    assert (alert.episode, alert.state, alert.count) == (2, "pending", 4)
    assert (alert.first_seen, alert.last_seen) == (T0 + 100, T0 + 101)
    assert alert.lifecycle == {} and alert.message is None
    assert alert.host_count == 1 and [h.host for h in alert.hosts] == ["host-c"]
    store.contribute("fp", "host-a", 1, T0 + 102, T0 + 102)
    (alert,) = store.alerts(["fp"])
    assert alert.count == 5 and [h.host for h in alert.hosts] == ["host-a", "host-c"]
    detail = store.alert("fp")
    assert detail is not None and [(h.host, h.count) for h in detail.hosts] == [
        ("host-a", 1),
        ("host-c", 4),
    ]


def test_prune_forgets_alerts_resolved_long_ago(store: FleetStore, fleet_dsn: str) -> None:
    """And silences ended and acknowledgements made long ago; what is live stays."""
    store.contribute("old", "host-a", 1, T0, T0)
    store.contribute("live", "host-a", 1, T0, T0)
    store.claim(["old"], "host-a", ttl=60)
    assert store.advance("old", "host-a", 1, "resolved", {}, expect_count=1)
    store.add_silence(None, "rate_limit", T0, T0 + 60, "", "alice")  # ended long ago
    store.add_silence(None, "rate_limit", T0, time.time() + 60, "", "alice")
    store.acknowledge(Ack("old", "bob", T0))
    with psycopg.connect(fleet_dsn, autocommit=True) as conn:
        conn.execute("UPDATE fleet_alerts SET updated = now() - interval '8 days'")
    assert store.prune(older_than_days=7) == 3
    assert store.alert("old") is None and store.alert("live") is not None
    assert len(store.silences()) == 1 and store.acks() == []


def test_a_statement_over_the_timeout_is_a_retryable_error(fleet_dsn: str) -> None:
    """A row locked by another session makes contribute wait; statement_timeout ends the wait."""
    with FleetStore(fleet_dsn, statement_timeout=0.3) as store:
        store.contribute("fp", "host-a", 1, T0, T0)
        with psycopg.connect(fleet_dsn) as locker:
            locker.execute("SELECT 1 FROM fleet_alerts WHERE fingerprint = 'fp' FOR UPDATE")
            started = time.monotonic()
            with pytest.raises(FleetUnavailableError, match="statement_timeout") as caught:
                store.contribute("fp", "host-a", 1, T0, T0)
            assert time.monotonic() - started < 2
            assert caught.value.retryable is True
            locker.rollback()
        store.contribute("fp", "host-a", 1, T0, T0)  # the same call works once the lock is gone
        alert = store.alert("fp")
        assert alert is not None and alert.count == 2  # the timed-out add was rolled back whole


def test_refused_connection_is_a_clear_retryable_error(postgres: object) -> None:
    """Nothing listens on the port: refused at once, retryable, names host:port."""
    port = free_port()
    started = time.monotonic()
    with pytest.raises(FleetUnavailableError, match=f"127.0.0.1:{port}/fleet is unreachable"):
        FleetStore(f"postgresql://oai400d:s3cret@127.0.0.1:{port}/fleet").open()
    assert time.monotonic() - started < 2


def test_a_silent_server_is_given_up_after_connect_timeout() -> None:
    """A port that accepts but never answers (a hung server): connect_timeout ends the wait."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the handshake; nobody ever replies
        port = silent.getsockname()[1]
        dsn = f"postgresql://oai400d:s3cret@127.0.0.1:{port}/fleet"
        started = time.monotonic()
        with pytest.raises(FleetUnavailableError) as caught:
            FleetStore(dsn, connect_timeout=2).open()
        elapsed = time.monotonic() - started
    assert 1.5 < elapsed < 5
    assert caught.value.retryable is True
    message = str(caught.value)
    assert "unreachable" in message and "pg_hba.conf" in message
    assert "s3cret" not in message


def test_no_such_database_is_not_retryable(postgres: object, fleet_dsn: str) -> None:
    """A DSN naming a missing database fails at once, says how to create it, and is not retried."""
    missing = fleet_dsn.rsplit("/", 1)[0] + "/no_such_db"
    with pytest.raises(FleetStoreError, match=r"no such database.*createdb") as caught:
        FleetStore(missing).open()
    assert caught.value.retryable is False


def test_fleet_wide_silences_and_acks(store: FleetStore) -> None:
    """Silences (by fingerprint or category) and acks are shared by the fleet: listed, filtered by end, lifted once, the last ack kept."""
    sid = store.add_silence("fp", None, T0, T0 + 3600, "deploy", "alice").id
    store.add_silence(None, "auth.invalid_api_key", T0, T0 + 60, "", "bob", via="slack")
    assert [s.id for s in store.silences()] == [sid, sid + 1]
    assert [s.created_by for s in store.silences(after=T0 + 120)] == ["alice"]
    assert store.silences(after=T0 + 120)[0].ends == T0 + 3600
    with pytest.raises(ValueError):
        store.add_silence("fp", "cat", T0, T0 + 1, "", "x")
    store.acknowledge(Ack("fp", "alice", T0))
    store.acknowledge(Ack("fp", "bob", T0 + 5, "on it", "slack"))
    assert store.acks() == [Ack("fp", "bob", T0 + 5, "on it", "slack")]
    lifted = store.lift_silence(sid, "carol", T0 + 10)
    assert lifted is not None and (lifted.ends, lifted.removed_by) == (T0 + 10, "carol")
    assert store.lift_silence(sid, "dave", T0 + 20) == lifted  # already lifted: unchanged
    assert store.silence(999) is None


def test_describe_dsn_never_shows_the_password() -> None:
    """The store is described by host, port and database only, never the password."""
    assert describe_dsn("postgresql://u:pw@db.example:6432/fleet") == "db.example:6432/fleet"
    assert describe_dsn("postgresql:///fleet") == "localhost:5432/fleet"


def test_an_unknown_role_is_not_retryable_and_says_what_to_fix(fleet_dsn: str) -> None:
    """A role the server refuses fails at once, names the fleet DSN to fix, and is not retried."""
    wrong = fleet_dsn.replace("postgresql://postgres@", "postgresql://nobody_here@")
    with pytest.raises(FleetStoreError, match=r"refused oai400d.*fleet-dsn") as caught:
        FleetStore(wrong).open()
    assert caught.value.retryable is False


def test_an_outage_is_retryable_and_the_store_is_used_again_when_it_returns(
    own_postgres: PostgresServer,
) -> None:
    """Server halted: each call fails fast and retryable; restarted: the pool reconnects."""
    server = own_postgres
    with FleetStore(server.create_database(), connect_timeout=2) as store:
        store.contribute("fp", "host-a", 1, T0, T0)
        server.halt()
        started = time.monotonic()
        with pytest.raises(FleetUnavailableError, match="unreachable") as caught:
            store.contribute("fp", "host-a", 5, T0, T0 + 1)
        assert time.monotonic() - started < 5  # the pool's wait is bounded too
        assert caught.value.retryable is True
        server.resume()

        def retried() -> bool:
            try:
                store.contribute("fp", "host-a", 5, T0, T0 + 1)
            except FleetUnavailableError:
                return False
            return True

        wait_until(retried, 20, "the store to be used again after the outage")
        alert = store.alert("fp")
        assert alert is not None and alert.count == 6  # the failed add left no trace


def test_two_instances_under_one_host_name_see_each_other(store: FleetStore) -> None:
    """Two daemons that call themselves web-1 would share leases: each learns of the other."""
    assert store.register("inst-a", "web-1") == []
    assert store.register("inst-b", "web-2") == []
    assert store.register("inst-c", "web-1") == ["inst-a"]
    assert store.register("inst-a", "web-1") == ["inst-c"]
    assert store.register("inst-a", "web-1", within=0) == []  # long silent: not a namesake


def test_a_slack_press_is_handled_once_by_the_whole_fleet(fleet_dsn: str) -> None:
    """Its ids recorded by one host, the same press arriving at another is a replay."""
    with FleetStore(fleet_dsn) as a, FleetStore(fleet_dsn) as b:
        assert a.claim_action(["envelope:e1", "action:U1:ack:1.0"])
        assert not b.claim_action(["envelope:e2", "action:U1:ack:1.0"])  # the same action
        assert not a.claim_action(["envelope:e1"])
        assert b.claim_action(["envelope:e3"])


def test_the_schema_is_read_and_migrated_on_a_plain_connection(fleet_dsn: str) -> None:
    """schema.migrate and schema.schema_version need only a connection: version 0 before,
    every migration once, then none."""
    with psycopg.connect(fleet_dsn, autocommit=True) as conn:
        assert schema_version(conn) == 0
        assert migrate(conn, "db:5432/fleet") == SCHEMA_VERSION
        assert migrate(conn, "db:5432/fleet") == 0
        assert schema_version(conn) == SCHEMA_VERSION


def test_a_statement_the_server_rejects_is_reported_as_a_bug_not_retried(fleet_dsn: str) -> None:
    """A statement PostgreSQL refuses (not a connection or lock problem) is a FleetStoreError
    that asks for a report, and the pooled connection stays usable."""
    connection = FleetConnection(fleet_dsn, 2, 2, 1)
    connection.open()
    try:
        with pytest.raises(FleetStoreError, match=r"rejected a statement.*report it") as caught:
            connection.call(lambda conn: conn.execute("SELEC 1"))
        assert caught.value.retryable is False
        assert connection.call(lambda conn: conn.execute("SELECT 1").fetchone()) == (1,)
    finally:
        connection.close()


def test_open_alerts_are_the_unresolved_ones_most_recently_seen_first(store: FleetStore) -> None:
    """`oai400d status` with state.fleet: resolved alerts are left out, the others come newest
    first with how many hosts saw them."""
    store.contribute("older", "host-a", 1, T0, T0)
    store.contribute("newer", "host-a", 1, T0 + 5, T0 + 5)
    store.contribute("newer", "host-b", 2, T0 + 6, T0 + 6)
    store.contribute("gone", "host-a", 1, T0 + 9, T0 + 9)
    store.claim(["gone"], "host-a", ttl=60)
    assert store.advance("gone", "host-a", 1, "resolved", {}, expect_count=1)
    listed = store.open_alerts()
    assert [(a.fingerprint, a.count, a.host_count) for a in listed] == [
        ("newer", 3, 2),
        ("older", 1, 1),
    ]
    assert [h.host for h in listed[0].hosts] == ["host-a", "host-b"]
