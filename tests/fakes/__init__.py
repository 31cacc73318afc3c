"""Real HTTP servers on 127.0.0.1 standing in for Slack, the OpenAI API and OpenAI's status page.

Each fake is a context manager (`with FakeSlack() as slack: ...`) and has a pytest fixture in
`tests.fakes.fixtures` (`fake_slack`, `fake_openai`, `fake_status`). slack-sdk and httpx talk to
them as they would to the real services; tests script faults and read what was received.
"""

from ._http import FakeServer, Fault, FaultPlan, RecordedRequest, WaitTimeout
from .openai_api import FakeOpenAI
from .slack import FakeSlack, SlackMessage
from .status_page import FakeStatusPage

__all__ = [
    "FakeOpenAI",
    "FakeServer",
    "FakeSlack",
    "FakeStatusPage",
    "Fault",
    "FaultPlan",
    "RecordedRequest",
    "SlackMessage",
    "WaitTimeout",
]
