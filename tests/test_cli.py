"""`oai400d classify` and the command line as a user meets it."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from oai400d import __version__

from .support import oai400d

ERROR = (
    "2026-11-25 10:00:01 ERROR worker: openai.RateLimitError: Error code: 429 - {'error': "
    "{'message': 'Rate limit reached for gpt-4o in organization org-abcdef123456 on tokens per min "
    "(TPM): Limit 30000, Used 29500, Requested 900. Please try again in 1.2s.', 'type': 'tokens', "
    "'param': None, 'code': 'rate_limit_exceeded'}}\n"
)
NOISE = "2026-11-25 10:00:00 INFO web: GET /health 200\n"


def test_version() -> None:
    """--version prints the package version."""
    result = oai400d("--version")
    assert result.returncode == 0
    assert result.stdout.decode().strip() == f"oai400d {__version__}"


def test_classify_json_contract(tmp_path: Path) -> None:
    """One JSON object per finding with exactly the DESIGN.md fields; summary on stderr."""
    log = tmp_path / "app.log"
    log.write_text(NOISE * 3 + ERROR + NOISE)
    result = oai400d("classify", "--json", str(log))
    assert result.returncode == 0
    lines = result.stdout.decode().splitlines()
    assert len(lines) == 1
    finding = json.loads(lines[0])
    assert list(finding) == [
        "path",
        "line",
        "end_line",
        "category",
        "rule",
        "severity",
        "status",
        "error_type",
        "error_code",
        "param",
        "model",
        "request_id",
        "message",
        "fingerprint",
        "fixes",
        "docs",
        "facts",
    ]
    assert (finding["line"], finding["end_line"], finding["category"]) == (4, 4, "rate_limit")
    assert finding["status"] == 429 and finding["model"] == "gpt-4o"
    err = result.stderr.decode()
    assert "1 OpenAI error(s) in 1 file(s), 5 lines" in err
    assert "rate_limit" in err and "fix:" in err


def test_classify_reads_stdin_and_gzip(tmp_path: Path) -> None:
    """`-` reads stdin; a gzip-compressed rotated log is read through."""
    piped = oai400d("classify", "--json", "-", stdin=(NOISE + ERROR).encode())
    assert json.loads(piped.stdout.decode())["line"] == 2
    rotated = tmp_path / "app.log.1.gz"
    with gzip.open(rotated, "wt") as handle:
        handle.write(NOISE * 10 + ERROR)
    result = oai400d("classify", "--json", str(rotated))
    assert json.loads(result.stdout.decode())["line"] == 11


def test_fingerprint_ignores_volatile_details(tmp_path: Path) -> None:
    """Two occurrences that differ in org, counts and retry time share one fingerprint;
    another cause does not."""
    other = ERROR.replace("org-abcdef123456", "org-zzzzzz999999").replace("29500", "29990")
    other = other.replace("1.2s", "850ms")
    quota = (
        "openai.RateLimitError: Error code: 429 - {'error': {'message': 'You exceeded your current "
        "quota, please check your plan and billing details.', 'type': 'insufficient_quota', "
        "'param': None, 'code': 'insufficient_quota'}}\n"
    )
    log = tmp_path / "app.log"
    log.write_text(ERROR + other + quota)
    findings = [json.loads(x) for x in oai400d("classify", "--json", str(log)).stdout.splitlines()]
    assert findings[0]["fingerprint"] == findings[1]["fingerprint"]
    assert findings[2]["fingerprint"] != findings[0]["fingerprint"]


def test_unreadable_input_is_reported_and_the_rest_scanned(tmp_path: Path) -> None:
    """A missing file is named on stderr with exit 2, and the other files are still scanned."""
    good = tmp_path / "good.log"
    good.write_text(ERROR)
    result = oai400d("classify", "--json", str(tmp_path / "missing.log"), str(good))
    assert result.returncode == 2
    assert f"cannot read {tmp_path / 'missing.log'}" in result.stderr.decode()
    assert len(result.stdout.splitlines()) == 1


def test_text_output_is_readable(tmp_path: Path) -> None:
    """Without --json each finding is a short block: where, what, the message, the top fix."""
    log = tmp_path / "app.log"
    log.write_text(ERROR)
    out = oai400d("classify", str(log)).stdout.decode()
    assert out.startswith(f"{log}:1: [warning] rate_limit:")
    assert "fix:" in out


def test_no_command_prints_usage() -> None:
    """Bare `oai400d` explains itself and exits 2."""
    result = oai400d()
    assert result.returncode == 2
    assert b"classify" in result.stderr
