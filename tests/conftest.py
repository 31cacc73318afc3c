"""The fake Slack, OpenAI API and status page servers as fixtures for every test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pg_harness import PostgresServer, PostgresUnavailable, start_postgres

pytest_plugins = ["tests.fakes.fixtures"]


def _throwaway_postgres() -> Iterator[PostgresServer]:
    """A started server, stopped and deleted afterwards; skips (saying why) if none starts."""
    try:
        server = start_postgres()
    except PostgresUnavailable as exc:
        pytest.skip(f"no PostgreSQL for the fleet tests: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL on 127.0.0.1 for the session."""
    yield from _throwaway_postgres()


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL of this test's own, for tests that stop and start it (an outage): halting
    the session's server would hit the other tests."""
    yield from _throwaway_postgres()


@pytest.fixture
def fleet_dsn(postgres: PostgresServer) -> str:
    """The URI of a fresh, empty database on the session's PostgreSQL."""
    return postgres.create_database()
