"""pytest fixtures for the fakes: each starts a fresh server and stops it after the test.

Use them from a test module or a conftest.py with

    pytest_plugins = ["tests.fakes.fixtures"]

or import the fixture functions by name. Tests that need another configuration build the fake
themselves: `with FakeSlack(channels={"alerts": "C123"}) as slack: ...`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .openai_api import FakeOpenAI
from .slack import FakeSlack
from .status_page import FakeStatusPage


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    """A FakeSlack: token "xoxb-test-token", webhook at `.webhook_url`, any channel accepted."""
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A FakeOpenAI accepting `.key`, listing DEFAULT_MODELS, in mode "ok"."""
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def fake_status() -> Iterator[FakeStatusPage]:
    """A FakeStatusPage with OpenAI's components, all operational, no incidents."""
    with FakeStatusPage() as fake:
        yield fake
