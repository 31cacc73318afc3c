"""The fake Slack, OpenAI API and status page servers as fixtures for every test module."""

pytest_plugins = ["tests.fakes.fixtures"]
