"""The fake Slack, OpenAI API and status page servers as fixtures for every test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pg_harness import PostgresServer, PostgresUnavailable, start_postgres

pytest_plugins = ["tests.fakes.fixtures"]


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL on 127.0.0.1 for the session; skips (saying why) if none starts."""
    try:
        server = start_postgres()
    except PostgresUnavailable as exc:
        pytest.skip(f"no PostgreSQL for the fleet tests: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fleet_dsn(postgres: PostgresServer) -> str:
    """The URI of a fresh, empty database on the session's PostgreSQL."""
    return postgres.create_database()
