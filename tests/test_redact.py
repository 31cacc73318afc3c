"""Secrets never leave the classifier: redaction of keys, tokens, headers and webhook URLs."""

from __future__ import annotations

import io
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oai400d.classify import Classifier, redact
from oai400d.model import Event
from oai400d.scan import Scanner

KEY_CHARS = string.ascii_letters + string.digits
openai_keys = st.builds(
    lambda prefix, body: prefix + body,
    st.sampled_from(["sk-", "sk-proj-", "sk-svcacct-", "sk-admin-"]),
    st.text(KEY_CHARS + "_-", min_size=20, max_size=120).filter(lambda b: b[-4:].strip("-_")),
)
slack_tokens = st.builds(
    lambda kind, body: f"xox{kind}-{body}",
    st.sampled_from("bpaers"),
    st.text(KEY_CHARS + "-", min_size=12, max_size=60),
)
filler = st.text(string.printable, max_size=80)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("key sk-proj-AbCdEfGhIjKlMnOpQrStUvWx0123a1B2 ok", "key sk-…a1B2 ok"),
        (
            "Incorrect API key provided: sk-proj-************a1B2. You can",
            "Incorrect API key provided: sk-…a1B2. You can",
        ),
        (
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig",
            "Authorization: Bearer [REDACTED….sig]",
        ),
        ("api-key: 0123456789abcdef0123456789abcdef", "api-key: [REDACTED…cdef]"),
        ("token=xoxb-1234-5678-abcdefghijkl", "token=xox…ijkl"),
        (
            "hook https://hooks.slack.com/services/T0/B0/XXXXYYYY",
            "hook https://hooks.slack.com/[REDACTED]",
        ),
        ("desk-top task-force sk-8", "desk-top task-force sk-8"),
    ],
)
def test_known_secret_shapes_are_masked(text: str, expected: str) -> None:
    """Each secret shape is replaced, keeping at most its last 4 characters; look-alikes stay."""
    assert redact(text) == expected


@given(before=filler, key=openai_keys, after=filler)
def test_no_openai_key_survives_redaction(before: str, key: str, after: str) -> None:
    """Whatever surrounds it, an OpenAI key never comes out whole."""
    out = redact(f"{before} {key} {after}")
    assert key not in out
    assert key[:-4] not in out


@given(before=filler, token=slack_tokens, after=filler)
def test_no_slack_token_survives_redaction(before: str, token: str, after: str) -> None:
    """Slack tokens are masked wherever they appear."""
    assert token not in redact(f"{before} {token} {after}")


CLASSIFIER = Classifier()


@given(key=openai_keys)
@settings(max_examples=50)
def test_findings_never_carry_the_key(key: str) -> None:
    """The message and the excerpt of a finding are redacted, whatever the key looks like."""
    text = (
        "openai.AuthenticationError: Error code: 401 - {'error': {'message': 'Incorrect API key "
        f"provided: {key}. You can find your API key at https://platform.openai.com/account/api-keys.', "
        "'type': 'invalid_request_error', 'param': None, 'code': 'invalid_api_key'}}"
    )
    finding = CLASSIFIER.classify(Event("app.log", 1, 1, text))
    assert finding is not None
    assert key not in finding.message and key not in finding.excerpt
    assert key not in str(finding.to_json())


def test_scanner_output_is_redacted() -> None:
    """End to end through the scanner, a key in the log is not in the JSON finding."""
    key = "sk-proj-" + "Q" * 40 + "z9Y8"
    log = f"openai.AuthenticationError: Error code: 401 - {{'error': {{'message': 'Incorrect API key provided: {key}.', 'type': 'invalid_request_error', 'param': None, 'code': 'invalid_api_key'}}}}\n"
    findings = list(Scanner(Classifier()).scan(io.BytesIO(log.encode()), "app.log"))
    assert len(findings) == 1
    assert key not in str(findings[0].to_json())
    assert "sk-…z9Y8" in findings[0].message
