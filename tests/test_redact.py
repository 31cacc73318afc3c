"""Secrets never leave the classifier: redaction of keys, tokens, headers and webhook URLs."""

from __future__ import annotations

import io
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oai400d.classify import Classifier
from oai400d.masking import redact, redact_values
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
        # The shapes of issue 16 (values assembled so that no scanner takes them for leaks).
        ("app " + "xa" + "pp-1-A0123456789-1234567890123-0a1b2c3d4e5f6a7b", "app xapp-…6a7b"),
        ("id AK" + "IAIOSFODNN7EXAMPLE, ASIA" + "Y34FZKBOKMUTVV7A.", "id AKIA…MPLE, ASIA…VV7A."),
        (
            "aws_secret_access_key = " + "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "aws_secret_access_key = [REDACTED…EKEY]",
        ),
        (
            '{"SecretAccessKey": "' + 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}',
            '{"SecretAccessKey": "[REDACTED…EKEY]"}',
        ),
        (
            "jwt eyJhbGciOiJIUzI1NiJ9." + "eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N ok",
            "jwt [REDACTED…0w5N] ok",
        ),
        (
            "via https://alice:" + "Sup3rS3cret@proxy.example:3128/ and redis://:pw@cache/0",
            "via https://alice:…@proxy.example:3128/ and redis://:…@cache/0",
        ),
        ("gh" + "p_16C7e42F292c6912E7710c838347Ae178B4a", "ghp_…8B4a"),
        ("github_" + "pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "github_pat_…wxyz"),
        ("AI" + "zaSyA-1234567890abcdefghijklmnopqrstu", "AIza…rstu"),
        ("sk-" + "ant-api03-abcdefghijklmnopqrstuvwxyz0123456789-AA", "sk-…9-AA"),
        ("hf" + "_abcdefghijklmnopqrstuvwxyzABCDEFGH", "hf_…EFGH"),
        (
            "sk" + "_live_51HqLyjWDarjtT1zdp7dcXYZ rk" + "_test_51HqLyjWDarjtT1zdp7dcABC",
            "sk_live_…cXYZ rk_test_…cABC",
        ),
        (
            "'-----BEGIN RSA PRIVATE KEY-----\\nMIIEowIBAAKCAQEA0Z3VS5J\\n"
            "-----END RSA PRIVATE KEY-----\\n' after",
            "'-----BEGIN RSA PRIVATE KEY-----[REDACTED]-----END RSA PRIVATE KEY-----\\n' after",
        ),
        # Presigned URLs: the signature (and a session token) go, the expiry stays.
        (
            "https://b.s3.amazonaws.com/u/1.png?X-Amz-Date=20240101T000000Z&X-Amz-Expires=300"
            "&X-Amz-Security-Token=IQoJb3JpZ2luX2VjEXAMPLE&X-Amz-Signature=0123456789abcdef0123",
            "https://b.s3.amazonaws.com/u/1.png?X-Amz-Date=20240101T000000Z&X-Amz-Expires=300"
            "&X-Amz-Security-Token=[REDACTED]&X-Amz-Signature=[REDACTED]",
        ),
        (
            "https://a.blob.core.windows.net/c/x.png?se=2024-01-01T00%3A00%3A00Z&sig=AbCd0123%2Bef",
            "https://a.blob.core.windows.net/c/x.png?se=2024-01-01T00%3A00%3A00Z&sig=[REDACTED]",
        ),
        (
            "https://d1.cloudfront.net/x.png?Expires=1700000000&Signature=abcDEF123~ghi&Key-Pair-Id=K2",
            "https://d1.cloudfront.net/x.png?Expires=1700000000&Signature=[REDACTED]&Key-Pair-Id=K2",
        ),
        # Look-alikes stay: words, short prefixes, e-mail addresses, ports and paths in URLs.
        (
            "ASIAN AKIAx highlight gh_ ghp_short sk_live hf_x user@example.com "
            "https://example.com:8080/a@b",
            "ASIAN AKIAx highlight gh_ ghp_short sk_live hf_x user@example.com "
            "https://example.com:8080/a@b",
        ),
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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A key split by a JSON escape is masked whole, not up to the escape.
        (
            '"Incorrect API key provided: sk\\u002dproj-AbCdEfGhIjKlMnOpQrStUvWx0123a1B2."',
            '"Incorrect API key provided: sk-…a1B2."',
        ),
        (
            '"url": "https:\\/\\/hooks.slack.com\\/services\\/T000\\/B000\\/XXXXYYYYZZZZ"',
            '"url": "https://hooks.slack.com/[REDACTED]"',
        ),
        (
            "aws_secret_access_key=wJalrXUtnFEMI\\/K7MDENG\\/bPxRfiCYEXAMPLEKEY",
            "aws_secret_access_key=[REDACTED…EKEY]",
        ),
        # After an escaped newline a key starts a word again.
        ('"line\\nsk-proj-AbCdEfGhIjKlMnOpQrStUvWx0123a1B2 x"', '"line\\nsk-…a1B2 x"'),
        # Escapes elsewhere are left as they were.
        (
            '{"caf\\u00e9": "\\/v1\\/models", "k": "sk\\u002dproj-AbCdEfGhIjKlMnOpQrStUvWx0123a1B2"}',
            '{"caf\\u00e9": "\\/v1\\/models", "k": "sk-…a1B2"}',
        ),
        ('C:\\new\\tmp \\\\u002d \\"quoted\\"', 'C:\\new\\tmp \\\\u002d \\"quoted\\"'),
    ],
)
def test_secrets_behind_json_escapes_are_masked_whole(text: str, expected: str) -> None:
    """Shapes are matched on the decoded text; the rest keeps its escapes."""
    assert redact(text) == expected


escapable = st.sampled_from(["-", "/", "_"])


@given(
    before=filler,
    body=st.text(KEY_CHARS, min_size=24, max_size=60),
    at=st.integers(min_value=0, max_value=31),
    after=filler,
)
def test_no_key_survives_an_escape_anywhere_in_it(
    before: str, body: str, at: int, after: str
) -> None:
    """`\\u00XX` for any one character of a key: masked whole, whatever surrounds it."""
    key = "sk-proj-" + body
    escaped = key[:at] + f"\\u{ord(key[at]):04x}" + key[at + 1 :]
    out = redact(f"{before} {escaped} {after}")
    around = f"{before} {after}"
    windows = {body[:-4][i : i + 8] for i in range(len(body) - 11)}
    assert not [w for w in windows if w in out and w not in around]


new_tokens = st.one_of(
    st.builds(
        lambda b: "AK" + "IA" + b,
        st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", min_size=16, max_size=16),
    ),
    st.builds(
        lambda k, b: "gh" + k + "_" + b,
        st.sampled_from("pousr"),
        st.text(KEY_CHARS, min_size=36, max_size=40),
    ),
    st.builds(lambda b: "hf" + "_" + b, st.text(KEY_CHARS, min_size=34, max_size=40)),
    st.builds(lambda b: "AI" + "za" + b, st.text(KEY_CHARS + "_-", min_size=35, max_size=35)),
    st.builds(lambda b: "xa" + "pp-1-" + b, st.text(KEY_CHARS + "-", min_size=40, max_size=80)),
    st.builds(lambda b: "sk" + "_live_" + b, st.text(KEY_CHARS, min_size=24, max_size=99)),
)


@given(before=filler, token=new_tokens, after=filler)
def test_no_token_of_the_new_shapes_survives(before: str, token: str, after: str) -> None:
    """Whatever surrounds them, none of these tokens comes out whole."""
    out = redact(f"{before} {token} {after}")
    assert token not in out
    assert redact(out) == out


def test_redact_values_masks_every_string_of_a_document() -> None:
    key = "sk-proj-" + "Q" * 40 + "z9Y8"
    document = {"a": [key, {"b": f"x {key}", "n": 3, "none": None}], "ok": "plain"}
    assert redact_values(document) == {
        "a": ["sk-…z9Y8", {"b": "x sk-…z9Y8", "n": 3, "none": None}],
        "ok": "plain",
    }


def test_findings_mask_what_evidence_read_from_the_log() -> None:
    """A token where a model name or request id should be is masked in the finding too."""
    token = "gh" + "p_16C7e42F292c6912E7710c838347Ae178B4a"
    text = (
        f"openai.NotFoundError: Error code: 404 - {{'error': {{'message': 'The model `{token}` "
        "does not exist or you do not have access to it.', 'type': 'invalid_request_error', "
        f"'param': '{token}', 'code': 'model_not_found'}}}} request_id={token}"
    )
    finding = CLASSIFIER.classify(Event("app.log", 1, 1, text))
    assert finding is not None
    assert token not in str(finding.to_json()) and token not in finding.excerpt
