"""What a corpus case means must not depend on what surrounds it.

Real logs put an OpenAI error between thousands of ordinary lines, after bodies that a logger cut
at a length limit, and sometimes inside a file that is read in pieces. Each test here writes the
cases of tests/data/ into one file under such conditions and checks that every case still yields
exactly what it yields alone, with its line numbers shifted.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from oai400d.assemble import Assembler
from oai400d.classify import Classifier
from oai400d.model import Line
from oai400d.sameerror import SAME_REQUEST_LINES, one_per_request
from oai400d.scan import Scanner

from .support import Case, classify_by_path, load_corpus

CASES = load_corpus()
CLASSIFIER = Classifier()

# Ordinary lines of the styles apps write, none of them an OpenAI error.
ORDINARY = (
    "2024-05-01 12:00:00,101 INFO app.web: GET /healthz 200 in 2 ms",
    '{"ts": "2024-05-01T12:00:00.102Z", "level": "info", "msg": "job finished", "job": "digest"}',
    "May  1 12:00:00 web-1 app[812]: worker 3 picked up task 91a2",
    "[2024-05-01 12:00:00] INFO: cache warmed (412 keys)",
    'level=info ts=2024-05-01T12:00:00Z msg="request served" path=/v1/summary status=200',
)

# Bodies that a logger cut at a length limit, at every nesting depth: the next record must be
# read as a record, not as more of the body.
CUT_BODIES = (
    '2024-05-01 12:00:00,200 ERROR app.llm: upstream answered {"error": {"message": "The server had',
    "2024-05-01 12:00:00,201 ERROR app.llm: upstream answered {",
    '2024-05-01 12:00:00,202 ERROR app.llm: upstream answered {"error": {',
    "2024-05-01 12:00:00,203 WARNING app.llm: request body [{'role': 'user', 'content': [{'type':",
    "2024-05-01 12:00:00,204 ERROR app.llm: response body:\n{\n  \"error\": {\n    \"message\": \"cut",
    "2024-05-01 12:00:00,205 ERROR app.llm: payload = {'messages': [{'content': '''",
)


@dataclass(frozen=True)
class Placed:
    case: Case
    first: int  # the file line of the case's line 1
    last: int


def _spacer(index: int) -> list[str]:
    """More ordinary lines than SAME_REQUEST_LINES: a secondary finding of one case (a status
    line, a retry notice) and a finding that tells more in the next would otherwise be taken for
    one request, by design (sameerror.py); what a case means alone is what it means that far
    from other errors."""
    return [ORDINARY[(index + k) % len(ORDINARY)] for k in range(SAME_REQUEST_LINES)]


def _case_lines(case: Case) -> list[str]:
    return case.file.read_bytes().decode("utf-8", "replace").rstrip("\n").split("\n")


def _findings_by_file(paths: Sequence[str], config: Path) -> dict[str, list[dict[str, Any]]]:
    return classify_by_path(paths, "--config", str(config))


def _key(finding: dict[str, Any], shift: int) -> tuple[Any, ...]:
    return (
        finding["category"],
        finding["rule"],
        finding["error_code"],
        finding["line"] - shift,
        finding["end_line"] - shift,
    )


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config that reads every file as it is: a long log of many styles is never taken for a
    container runtime's (logs.wrapper, unwrap.py), so a case alone must not be either."""
    path = tmp_path_factory.mktemp("config") / "plain.toml"
    path.write_text('[logs]\nwrapper = "none"\n')
    return path


@pytest.fixture(scope="module")
def alone(plain: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Each case classified alone, as test_corpus does (read as it is)."""
    grouped = _findings_by_file([str(case.file) for case in CASES], plain)
    return {str(case.file): [_key(f, 0) for f in grouped.get(str(case.file), [])] for case in CASES}


def _combine(path: Path, before: Callable[[int], list[str]]) -> list[Placed]:
    """Write every case into one file, each preceded by the lines `before(index)` gives."""
    lines: list[str] = []
    placed = []
    for index, case in enumerate(CASES):
        lines.extend(before(index))
        body = _case_lines(case)
        placed.append(Placed(case, len(lines) + 1, len(lines) + len(body)))
        lines.extend(body)
    lines.append(ORDINARY[0])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return placed


def _assert_same(
    path: Path, placed: list[Placed], alone: dict[str, list[tuple[Any, ...]]], plain: Path
) -> None:
    findings = _findings_by_file([str(path)], plain).get(str(path), [])
    mismatches = []
    cursor = 0
    for item in placed:
        inside = []
        while cursor < len(findings) and findings[cursor]["line"] <= item.last:
            finding = findings[cursor]
            if finding["line"] < item.first:
                mismatches.append(f"a finding outside every case at line {finding['line']}")
            else:
                inside.append(_key(finding, item.first - 1))
            cursor += 1
        expected = alone[str(item.case.file)]
        if inside != expected:
            mismatches.append(f"{item.case.id}: alone {expected}, in the long log {inside}")
    mismatches.extend(f"a finding after the last case: {f}" for f in findings[cursor:])
    assert not mismatches, "\n".join(mismatches)


def test_every_case_means_the_same_between_ordinary_lines(
    tmp_path: Path, alone: dict[str, list[tuple[Any, ...]]], plain: Path
) -> None:
    """All corpus cases in one long log, separated by ordinary lines of several styles, give
    exactly the findings each gives alone (same category, rule, code; spans shifted)."""
    path = tmp_path / "all-cases.log"
    # A blank line last: some cases begin with an indented line or a bare `Traceback`, which
    # would rightly continue the record right above them.
    placed = _combine(path, lambda i: [*_spacer(i), ORDINARY[(i + 2) % 5], ""])
    _assert_same(path, placed, alone, plain)


def test_a_body_cut_short_never_hides_the_error_after_it(
    tmp_path: Path, alone: dict[str, list[tuple[Any, ...]]], plain: Path
) -> None:
    """Each case right after a body that a logger cut at some nesting depth (and the next
    record) still yields its findings: an unclosed bracket or quote ends at the next record."""
    path = tmp_path / "cut-bodies.log"
    placed = _combine(
        path,
        lambda i: [*_spacer(i), *CUT_BODIES[i % len(CUT_BODIES)].split("\n"), ORDINARY[i % 5], ""],
    )
    _assert_same(path, placed, alone, plain)


def test_every_case_means_the_same_read_in_small_chunks(
    alone: dict[str, list[tuple[Any, ...]]],
) -> None:
    """The scanner finds the same in a case whatever its read size (boundaries in every line)."""
    for case in CASES:
        data = case.file.read_bytes()
        small = one_per_request(
            Scanner(CLASSIFIER, chunk_size=97, wrapper="none").scan(
                io.BytesIO(data), str(case.file)
            )
        )
        assert [
            (f.category, f.rule, f.error_code, f.line, f.end_line) for f in small
        ] == alone[str(case.file)], case.id


# The scanner looks only at the lines around a prefilter hit and walks back to where their event
# starts; reading every line in order through the Assembler must give the same events.
LINE_KINDS = [
    "2024-05-01 12:00:00,000 INFO app: ordinary",
    "2024-05-01 12:00:00,000 ERROR app: call failed",
    '{"level": "error", "msg": "Error code: 429 - insufficient_quota openai"}',
    "ERROR:root:openai.RateLimitError: Error code: 429 - {'error': {'code': 'rate_limit_exceeded'",
    "Traceback (most recent call last):",
    '  File "/app/openai/_base_client.py", line 1, in request',
    "    raise self._make_status_error(err.response) from None",
    "openai.AuthenticationError: Error code: 401 - {'error': {'code': 'invalid_api_key'}}",
    "During handling of the above exception, another exception occurred:",
    "",
    "{",
    '  "error": {',
    '    "message": "You exceeded your current quota", "code": "insufficient_quota"',
    "  }",
    "}",
    '2024-05-01 12:00:00,000 ERROR app: body {"error": {"message": "The server had an error',
    "Error: 429 You exceeded your current quota, please check your plan and billing details.",
    "    at OpenAI.makeStatusError (node_modules/openai/core.js:1:1)",
    "plain words",
    "Microsoft.SemanticKernel.HttpOperationException: Service request failed.",
    "Status: 404 (Not Found)",
    "ErrorCode: DeploymentNotFound",
    "Content:",
    '{"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist."}}',
    "Headers:",
    "openai-organization: user-abc",
    "---> Azure.RequestFailedException: The API deployment for this resource does not exist.",
    "Caused by: java.net.SocketTimeoutException: timeout",
    "at dev.ai4j.openai4j.Utils.toException(Utils.java:8) ~[openai4j-0.27.0.jar:na]",
    "<html><head><title>502 Bad Gateway</title></head>",
    "<center>cloudflare</center> api.openai.com",
    "</html>",
    "2024-01-17 11:55:21                    RateLimitError: Error code: 429 -",
    "2024-01-17 11:55:21                    {'error': {'message': 'You exceeded",
    "2024-01-17 11:55:21                    your current quota, please check",
    "/app/node_modules/openai/core/error.mjs:40",
    "            return new RateLimitError(status, error, message, headers);",
    "                   ^",
    "RateLimitError: 429 You exceeded your current quota, please check your plan and billing details.",
]


def _sequential(lines: list[str]) -> list[tuple[int, int, str]]:
    assembler = Assembler("t.log")
    events = []
    for number, text in enumerate(lines, 1):
        events.extend(assembler.feed(Line("t.log", number, 0, text)))
    events.extend(assembler.flush())
    findings = (CLASSIFIER.classify(event) for event in events)
    return [(f.line, f.end_line, f.category) for f in findings if f is not None]


@given(st.lists(st.sampled_from(LINE_KINDS), max_size=50), st.integers(32, 4096))
@settings(max_examples=600, deadline=None)
# Found by Hypothesis: an open body, .NET's `Content:`, a blank line, then a record whose
# continuation has the error. The assembler took the record for the body after `Content:`.
@example(
    lines=[
        '2024-05-01 12:00:00,000 ERROR app: body {"error": {"message": "The server had an error',
        "Content:",
        "",
        "2024-05-01 12:00:00,000 INFO app: ordinary",
        '    "message": "You exceeded your current quota", "code": "insufficient_quota"',
    ],
    chunk=32,
)
def test_scanner_finds_what_reading_every_line_finds(lines: list[str], chunk: int) -> None:
    """The scanner's jump to each hit and walk back gives the same findings as assembling every
    line in order, the daemon's way."""
    data = ("\n".join(lines) + "\n").encode() if lines else b""
    scanned = Scanner(CLASSIFIER, chunk_size=chunk).scan(io.BytesIO(data), "t.log")
    assert [(f.line, f.end_line, f.category) for f in scanned] == _sequential(lines)
