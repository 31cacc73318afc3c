"""Facts from an error's text alone (facts.text): the table of real error texts in
tests/data/facts.toml, each with the facts it must give and how they order the rule's fixes; the
address forms and signatures the corpus lacks; no fact ever shows a secret; and `classify`
carrying them (JSON "facts", a `checked:` line, fixes reordered)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from oai400d.facts import order_fixes
from oai400d.facts.findings import FindingFacts
from oai400d.facts.hosts import host_fact
from oai400d.facts.images import IMAGE_LIMIT_BYTES, data_url_facts
from oai400d.facts.presigned import expiry_fact
from oai400d.facts.text import ErrorText, Identity, text_facts
from oai400d.masking import redact
from oai400d.model import BEARINGS, Fact, Finding
from oai400d.timestamps import parse_iso

from .support import oai400d

TESTS = Path(__file__).parent
ROOT = TESTS.parent
CASES: list[dict[str, Any]] = tomllib.loads((TESTS / "data" / "facts.toml").read_text())["case"]
RULES = {
    rule["id"]: rule
    for rule in tomllib.loads(
        (ROOT / "daemon" / "oai400d" / "classify" / "rules.toml").read_text()
    )["rule"]
}
TEXT_KINDS = {
    "presigned_expiry",
    "private_host",
    "image_format",
    "context_tokens",
    "output_tokens",
    "rate_limit",
    "key_suffix",
    "organization",
    "project",
}


def _facts(case: dict[str, Any]) -> tuple[Fact, ...]:
    error = ErrorText(
        category=case["category"],
        rule=case["rule"],
        message=case["message"],
        excerpt=case.get("excerpt", ""),
        status=None,
        error_code=None,
        model=None,
        at=parse_iso(case["at"]),
    )
    return text_facts(error, Identity(**case.get("identity", {})))


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_each_error_text_gives_its_facts(case: dict[str, Any]) -> None:
    """The facts of the table's row, exactly: kind, bearing and sentence, in order."""
    found = [
        {"kind": fact.kind, "bearing": fact.bearing, "text": fact.text} for fact in _facts(case)
    ]
    assert found == case["facts"]


ORDERED = [case for case in CASES if "first_fix" in case]


@pytest.mark.parametrize("case", ORDERED, ids=[case["name"] for case in ORDERED])
def test_facts_put_the_fix_they_support_first(case: dict[str, Any]) -> None:
    """The rule's real fixes, ordered by the row's facts: the one they support first, the one
    they rule out last (nothing dropped)."""
    fixes = RULES[case["rule"]]["fixes"]
    ordered = order_fixes(fixes, _facts(case))
    assert sorted(ordered) == sorted(fixes)
    assert ordered[0].startswith(case["first_fix"])
    if "last_fix" in case:
        assert ordered[-1].startswith(case["last_fix"])
        assert fixes[-1] != ordered[-1]  # (it moved there)


def test_the_table_covers_every_kind_and_its_negatives() -> None:
    """Every text fact kind has a row, a presigned URL both expired and still valid, a key both
    the configured one and another, and rows where a check finds nothing (a public host name,
    OpenAI's own example data URL, a key masked to the last character)."""
    facts = [fact for case in CASES for fact in case["facts"]]
    assert {fact["kind"] for fact in facts} == TEXT_KINDS
    assert all(fact["bearing"] in BEARINGS for fact in facts)
    expiry = {fact["bearing"] for fact in facts if fact["kind"] == "presigned_expiry"}
    assert expiry == {"supports", "rules_out"}
    keys = [fact["text"] for fact in facts if fact["kind"] == "key_suffix"]
    assert any("as the key this host is configured with" in text for text in keys)
    assert any("some process runs with another key" in text for text in keys)
    empty = {case["name"] for case in CASES if not case["facts"]}
    assert {"public_host_name", "the_example_data_url_in_openai_message"} <= empty
    assert "key_fully_masked" in empty


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "The image host 127.0.0.1 is a loopback address"),
        ("2130706433", "The image host 2130706433 (127.0.0.1) is a loopback address"),
        ("0177.0.0.1", "The image host 0177.0.0.1 (127.0.0.1) is a loopback address"),
        ("0x7f.1", "The image host 0x7f.1 (127.0.0.1) is a loopback address"),
        ("10.1.2.3", "The image host 10.1.2.3 is a private address"),
        ("169.254.169.254", "The image host 169.254.169.254 is a cloud metadata address"),
        ("[::1]", "The image host [::1] is a loopback address"),
        ("[fe80::1]", "The image host [fe80::1] is a link-local address"),
        ("[::ffff:192.168.1.9]", "The image host [::ffff:192.168.1.9] is a private address"),
        ("images.internal", "The image host images.internal is a local name"),
        ("printer.local", "The image host printer.local is a local name"),
        ("LOCALHOST", "The image host localhost is a local name"),
    ],
)
def test_hosts_openai_can_never_reach(host: str, expected: str) -> None:
    """Literal private, loopback, link-local and metadata addresses in every form a URL reader
    accepts, and local-only names: OpenAI's servers can never fetch from them."""
    fact = host_fact(urlsplit(f"http://{host}:8080/a.png"))
    assert fact is not None and fact.bearing == "supports"
    assert fact.text.startswith(expected)
    assert fact.text.endswith("OpenAI's servers can never reach it.")


def test_a_public_address_rules_a_private_host_out_and_a_name_is_not_resolved() -> None:
    """8.8.8.8 is said to be public; a name gives no fact (nothing is resolved here)."""
    public = host_fact(urlsplit("https://8.8.8.8/a.png"))
    assert public is not None and public.bearing == "rules_out"
    assert host_fact(urlsplit("https://cdn.example.com/a.png")) is None


def test_gcs_v2_and_a_cloudfront_custom_policy() -> None:
    """GCS's V2 `GoogleAccessId` + `Expires`, and CloudFront's custom policy (its own base64:
    - _ ~) read for their end times; a query with no known signature gives nothing."""
    at = parse_iso("2024-12-06T09:00:00Z")
    gcs = expiry_fact(
        urlsplit(
            "https://storage.googleapis.com/b/o.webp?GoogleAccessId=sa%40p.iam.gserviceaccount.com"
            "&Expires=1733479200&Signature=abc%3D"
        ),
        at,
    )
    assert gcs is not None and gcs.bearing == "rules_out"
    assert gcs.text == (
        "The presigned GCS (V2) URL for storage.googleapis.com/b/o.webp was still valid until "
        "2024-12-06T10:00:00Z (60 min after this error): its expiry is not the cause."
    )
    # {"Statement":[{"Resource":"https://d1.cloudfront.net/*","Condition":{"DateLessThan":
    #   {"AWS:EpochTime":1733468400}}}]} in CloudFront's URL-safe base64.
    policy = (
        "eyJTdGF0ZW1lbnQiOlt7IlJlc291cmNlIjoiaHR0cHM6Ly9kMS5jbG91ZGZyb250Lm5ldC8qIiwiQ29uZGl0aW9u"
        "Ijp7IkRhdGVMZXNzVGhhbiI6eyJBV1M6RXBvY2hUaW1lIjoxNzMzNDY4NDAwfX19XX0_"
    )
    cloudfront = expiry_fact(
        urlsplit(
            f"https://d1.cloudfront.net/a.png?Policy={policy}&Signature=x~y&Key-Pair-Id=K2JCJMD"
        ),
        at,
    )
    assert cloudfront is not None and cloudfront.bearing == "supports"
    assert cloudfront.text == (
        "The presigned CloudFront (custom policy) URL for d1.cloudfront.net/a.png expired at "
        "2024-12-06T07:00:00Z, 2 h before this error."
    )
    assert expiry_fact(urlsplit("https://cdn.example.com/a.png?v=3&size=large"), at) is None


def test_data_urls_against_the_documented_limit() -> None:
    """A base64 data URL's media type and decoded size (from its length) against the API's:
    SVG refused, over 20 MB said to be over, a large PNG under it said to be under."""
    over = "data:image/svg+xml;base64," + "A" * (IMAGE_LIMIT_BYTES * 4 // 3 + 400)
    kinds = [(fact.kind, fact.bearing) for fact in data_url_facts(over)]
    assert kinds == [("image_format", "supports"), ("image_size", "supports")]
    assert "over the API's 20.0 MB per-image limit" in data_url_facts(over)[1].text
    under = data_url_facts("data:image/png;base64," + "A" * 4000)
    assert [fact.text for fact in under] == [
        "The data URL's media type is image/png: PNG, a format the API takes.",
        "The data URL decodes to 3 KB, under the API's 20.0 MB per-image limit.",
    ]


# Secrets in the text a fact could be built from: an S3 SigV4 credential and signature, an
# Azure SAS signature, a CloudFront signature, a key, basic-auth credentials in the URL.
SECRET_LADEN = (
    "Error while downloading https://user:hunter2pass@bucket.s3.amazonaws.com/u/1.png?"
    "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20250805%2F"
    "us-east-1%2Fs3%2Faws4_request&X-Amz-Date=20250805T085318Z&X-Amz-Expires=300&"
    "X-Amz-SignedHeaders=host&X-Amz-Signature=19baae3b7025958831515580b5d2b5f07871cf40b5510e6cc6"
    " and https://acct.blob.core.windows.net/c/i.png?se=2025-08-05T09%3A00%3A00Z&sv=2024-08-04&"
    "sig=S3cr3tS1gnatureValueXYZ%3D and https://d1.cloudfront.net/b.png?Expires=1754384000&"
    "Signature=S3cr3tCloudFrontSig~~&Key-Pair-Id=APKAEIBAERJR2EXAMPLE. Incorrect API key "
    "provided: sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD."
)


def test_no_fact_shows_a_secret() -> None:
    """Every fact of the table, and of a text full of signatures and a key, is what masking
    leaves unchanged, and holds no query string, signature, credential or password."""
    error = ErrorText("request.image", "openai.invalid_image_url", SECRET_LADEN, "", 400,
                      None, None, parse_iso("2025-08-05T10:00:00Z"))  # fmt: skip
    laden = text_facts(error, Identity(key_suffix="WXYZ"))
    assert {fact.kind for fact in laden} >= {"presigned_expiry", "key_suffix"}
    texts = [fact.text for fact in laden] + [f["text"] for case in CASES for f in case["facts"]]
    for text in texts:
        assert redact(text) == text
        for secret in ("Signature", "sig=", "Credential", "AKIA", "hunter2", "abcdefghij", "?"):
            assert secret not in text, (secret, text)


def test_classify_caches_by_message_and_keeps_the_time_exact() -> None:
    """The same image error a second before and after its URL's expiry: one says expired, the
    other still valid (the cache is per second for URLs); a repeated text is one computation."""
    message = (
        "Error while downloading https://b.s3.amazonaws.com/u/1.png?X-Amz-Date=20250805T085318Z"
        "&X-Amz-Expires=300&X-Amz-Signature=ab."
    )
    finding = Finding(
        path="app.log", line=1, end_line=1, category="request.image",
        rule="openai.invalid_image_url", severity="warning", title="t", status=400,
        error_type=None, error_code="invalid_image_url", param=None, model=None,
        request_id=None, message=message, fingerprint="f",
        fixes=tuple(RULES["openai.invalid_image_url"]["fixes"]), docs=(),
        excerpt="2025-08-05T08:58:17Z ERROR " + message,
    )  # fmt: skip
    with_facts = FindingFacts(Identity())
    before = with_facts(finding)
    after = with_facts(Finding(**{**_fields(finding), "excerpt": "2025-08-05T08:58:19Z x"}))
    assert "was still valid until 2025-08-05T08:58:18Z (1 s after" in before.facts[0]
    assert "expired at 2025-08-05T08:58:18Z, 1 s before" in after.facts[0]
    assert after.fixes[0].startswith("Presigned links")
    assert before.fixes[-1].startswith("Presigned links")
    rate = Finding(**{**_fields(finding), "category": "rate_limit", "rule": "r", "fixes": (),
                      "message": CASES_BY_NAME["tpm_rate"]["message"]})  # fmt: skip
    assert with_facts(rate) == with_facts(rate) and with_facts(rate).facts
    assert len([key for key in with_facts._cache if key[0] == "r"]) == 1


CASES_BY_NAME = {case["name"]: case for case in CASES}


def test_a_line_without_a_time_is_not_said_to_have_failed_after_expiry() -> None:
    """A line with no timestamp (an old log classified today): its link is said to have expired
    before the log was read, not before the error, and that supports no fix."""
    case = CASES_BY_NAME["s3_sigv4_expired"]
    finding = Finding(
        path="app.log", line=1, end_line=1, category="request.image",
        rule="openai.invalid_image_url", severity="warning", title="t", status=400,
        error_type=None, error_code=None, param=None, model=None, request_id=None,
        message=case["message"], fingerprint="f",
        fixes=tuple(RULES["openai.invalid_image_url"]["fixes"]), docs=(),
        excerpt="[log-id: af4c] node execute failed",
    )  # fmt: skip
    read_later = FindingFacts(Identity(), now=lambda: parse_iso("2025-08-12T10:53:18Z"))(finding)
    assert read_later.facts[0].endswith(
        "expired at 2025-08-12T08:53:18Z, 2 h before this log was read (its line has no time "
        "to compare with)."
    )
    assert read_later.fixes[0].startswith("OpenAI fetches the URL")  # (the private host's fix)
    assert read_later.fixes[1].startswith("Presigned links")  # (not moved by the expiry)


def _fields(finding: Finding) -> dict[str, Any]:
    return {name: getattr(finding, name) for name in Finding.__dataclass_fields__}


def test_classify_prints_the_facts(tmp_path: Path) -> None:
    """`classify --json`: "facts" after "docs", the fixes ordered by them, the configured key's
    suffix compared (from the config file); the text output has a `checked:` line per fact."""
    log = tmp_path / "app.log"
    log.write_text(
        "2026-11-25 10:00:01 ERROR worker: openai.AuthenticationError: Error code: 401 - "
        "{'error': {'message': 'Incorrect API key provided: sk-FAKE**********************ab34. "
        "You can find your API key at https://platform.openai.com/account/api-keys.', "
        "'type': 'invalid_request_error', 'param': None, 'code': 'invalid_api_key'}}\n"
    )
    config = tmp_path / "config.toml"
    config.write_text('[openai]\napi_key = "sk-proj-configuredconfiguredconfigured0000yz12"\n')
    result = oai400d("classify", "--json", "--config", str(config), str(log))
    assert result.returncode == 0, result.stderr.decode()
    finding = json.loads(result.stdout)
    assert list(finding)[-2:] == ["docs", "facts"]
    assert finding["facts"] == [
        "The refused key ends in ab34, the key this host is configured with in yz12: some "
        "process runs with another key (an old one, or another project's)."
    ]
    assert finding["fixes"][0].startswith("After rotating a key, restart every worker")
    assert "configuredconfigured" not in result.stdout.decode()
    text = oai400d("classify", str(log)).stdout.decode()
    assert "    checked: The refused key ends in ab34; no OpenAI key is configured here" in text
