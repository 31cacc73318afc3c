"""A fleet of daemons on one PostgreSQL store: one Slack message per problem, whatever happens.

Every test runs real `oai400d run` processes (one per "host", each with its own state DB and
log directory), a real PostgreSQL server and the fake Slack on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.daemon_harness import ERROR_LINE, DaemonProcess, append, wait_until, write_config
from tests.fakes.slack import FakeSlack, SlackMessage
from tests.pg_harness import PostgresServer, PostgresUnavailable, start_postgres


def start_host(
    tmp: Path,
    name: str,
    dsn: str,
    slack: FakeSlack,
    alerts: dict[str, str] | None = None,
    **fleet: str,
) -> DaemonProcess:
    """`oai400d run` as host `name`: its own directory, state DB and logs; the shared store."""
    home = tmp / name
    home.mkdir()
    config = write_config(
        home,
        state={"path": str(home / "state.db"), "fleet": dsn},
        fleet={
            "host": name,
            "lease": "2s",
            "sync_interval": "200ms",
            "connect_timeout": "2s",
            **fleet,
        },
        slack={"base_url": slack.base_url, "channel": "#openai-alerts", "retry_max": "2s"},
        alerts={"group_wait": "1s", "group_interval": "500ms", **(alerts or {})},
    )
    return DaemonProcess(config, env={"SLACK_BOT_TOKEN": slack.token})


def log_of(tmp: Path, name: str) -> Path:
    return tmp / name / "logs" / "app.log"


def top_level(slack: FakeSlack) -> list[SlackMessage]:
    return [m for m in slack.messages() if not m.is_reply]


def text_of(message: SlackMessage) -> str:
    return message.text + json.dumps(message.blocks)


def fleet_row(dsn: str, *columns: str) -> tuple[Any, ...] | None:
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        return conn.execute(f"SELECT {', '.join(columns)} FROM fleet_alerts").fetchone()


@pytest.fixture
def hosts() -> Iterator[dict[str, DaemonProcess]]:
    """The daemons a test starts, stopped at its end whatever happened."""
    running: dict[str, DaemonProcess] = {}
    try:
        yield running
    finally:
        for name, daemon in running.items():
            if daemon.proc.poll() is None:
                daemon.stop(timeout=10)
            print(f"--- {name} ---\n{daemon.log()}")  # shown when the test failed


def test_five_hosts_make_one_message_that_survives_its_owner_and_resolves_once(
    tmp_path: Path, fleet_dsn: str, fake_slack: FakeSlack, hosts: dict[str, DaemonProcess]
) -> None:
    """The same error on 5 hosts is one Slack message counting all of them and naming the 5
    hosts; kill -9 of the host that owns it: another takes the message over within the lease and
    edits it (no second message); when the errors stop it resolves once."""
    names = [f"web-{i}" for i in range(1, 6)]
    for name in names:
        hosts[name] = start_host(tmp_path, name, fleet_dsn, fake_slack, {"resolve_after": "5s"})
    for daemon in hosts.values():
        daemon.wait_ready()
    for index, name in enumerate(names):
        append(log_of(tmp_path, name), *[ERROR_LINE] * (index + 1))  # 1 + 2 + … + 5 = 15

    def message_says(*parts: str) -> SlackMessage | None:
        messages = top_level(fake_slack)
        latest = messages[0] if messages else None
        return latest if latest and all(p in text_of(latest) for p in parts) else None

    wait_until(lambda: message_says("15", "5 hosts"), timeout=20, what="one message: 15 on 5 hosts")
    message = top_level(fake_slack)[0]
    for name in names:
        assert name in text_of(message)
    assert len(top_level(fake_slack)) == 1

    # Kill the owner once the store knows where its message is (it records that after posting).
    owner = wait_until(
        lambda: (row := fleet_row(fleet_dsn, "owner", "message")) and row[1] and row[0],
        timeout=10,
        what="the owner to record its message in the store",
    )
    hosts[owner].kill()
    survivor = next(n for n in names if n != owner)
    append(log_of(tmp_path, survivor), ERROR_LINE, ERROR_LINE, ERROR_LINE)
    wait_until(
        lambda: message_says("18"), timeout=15, what="the message edited to 18 by another host"
    )
    new_owner = fleet_row(fleet_dsn, "owner")
    assert new_owner is not None and new_owner[0] not in (None, owner)
    assert len(top_level(fake_slack)) == 1

    # Quiet for resolve_after: resolved once, by one host: the message turns green, one reply.
    wait_until(
        lambda: fleet_row(fleet_dsn, "state") == ("resolved",), timeout=20, what="resolution"
    )
    message = wait_until(lambda: message_says("Resolved"), timeout=10, what="the resolved message")
    replies = wait_until(
        lambda: [r for r in fake_slack.replies(message.channel, message.ts) if "esolved" in r.text],
        timeout=10,
        what="the resolved reply",
    )
    assert len(replies) == 1, [r.text for r in replies]
    assert len(top_level(fake_slack)) == 1
    for name, daemon in hosts.items():
        if name != owner:
            assert daemon.stop(timeout=10) == 0
            assert "Traceback" not in daemon.log(), daemon.log()


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL of this test's own: it is stopped and started again during the test."""
    try:
        server = start_postgres()
    except PostgresUnavailable as exc:
        pytest.skip(f"no PostgreSQL for the fleet tests: {exc}")
    try:
        yield server
    finally:
        server.stop()


OUTAGE_S = float(os.environ.get("OAI400D_TEST_OUTAGE_S", "60"))  # shorter only while developing


def test_a_store_outage_loses_no_count_and_the_local_alerts_are_merged_back(
    tmp_path: Path,
    own_postgres: PostgresServer,
    fake_slack: FakeSlack,
    hosts: dict[str, DaemonProcess],
) -> None:
    """The store stopped for 60 s while errors go on: each host queues its findings, alerts on
    its own (once, saying why) after fleet.fallback_after, and when the store is back every
    queued finding is added to the fleet's alert and each local message says it was merged."""
    dsn = own_postgres.create_database()
    names = ["web-1", "web-2"]
    for name in names:
        hosts[name] = start_host(
            tmp_path, name, dsn, fake_slack, {"resolve_after": "10m"}, fallback_after="15s"
        )
    for daemon in hosts.values():
        daemon.wait_ready()
    for name in names:
        append(log_of(tmp_path, name), ERROR_LINE, ERROR_LINE)
    wait_until(
        lambda: (
            (m := top_level(fake_slack)) and "4" in text_of(m[0]) and "2 hosts" in text_of(m[0])
        ),
        timeout=20,
        what="the fleet message: 4 on 2 hosts",
    )

    own_postgres.halt()
    halted = time.monotonic()
    for name in names:
        append(log_of(tmp_path, name), *[ERROR_LINE] * 10)
    # Past fallback_after each host alerts on its own, once, and says why.
    local = wait_until(
        lambda: len(m := top_level(fake_slack)) == 3 and m,
        timeout=40,
        what="one local alert per host",
    )
    for message in local[1:]:
        assert "unreachable" in text_of(message)
    for name in names:
        append(log_of(tmp_path, name), *[ERROR_LINE] * 10)
    wait_until(
        lambda: time.monotonic() - halted >= OUTAGE_S, timeout=OUTAGE_S + 5, what="the outage"
    )
    own_postgres.resume()

    wait_until(
        lambda: fleet_row(dsn, "count") == (44,), timeout=30, what="every queued finding counted"
    )
    wait_until(
        lambda: "44" in text_of(top_level(fake_slack)[0]), timeout=15, what="the fleet message: 44"
    )
    wait_until(
        lambda: (
            sum("Merged into the fleet alert" in text_of(m) for m in top_level(fake_slack)) == 2
        ),
        timeout=15,
        what="both local messages marked merged",
    )
    assert len(top_level(fake_slack)) == 3  # no more than one local alert per host
    for daemon in hosts.values():
        assert daemon.stop(timeout=10) == 0
        assert "Traceback" not in daemon.log(), daemon.log()
