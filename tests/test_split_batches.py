"""The second process's findings come back in lists (split.PICKLE_BATCH): every list, the last
one short, in order, with the same line numbers as one process's scan."""

from __future__ import annotations

from pathlib import Path

import pytest

from oai400d.classify import Classifier
from oai400d.scan import split
from oai400d.scan.scanner import Scanner

ERROR = (
    "2026-11-25 10:00:0{n} ERROR app: openai.RateLimitError: Error code: 429 - {{'error': "
    "{{'message': 'Rate limit reached for gpt-4o in organization org-abc on tokens per min "
    "(TPM): Limit 30000, Used 29000, Requested 1{n}00.', 'type': 'tokens', 'param': None, "
    "'code': 'rate_limit_exceeded'}}}}\n"
)
NOISE = "2026-11-25T10:00:00Z INFO GET /health 200 1ms\n"


@pytest.mark.parametrize("batch", [1, 7, 256])
def test_batched_second_half_equals_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    monkeypatch.setattr(split, "PICKLE_BATCH", batch)  # (read by the forked worker too)
    log = tmp_path / "storm.log"
    log.write_text("".join(NOISE * 3 + ERROR.format(n=i % 10) for i in range(200)))
    size = log.stat().st_size
    classifier = Classifier()
    with log.open("rb") as handle:
        one = [(f.line, f.end_line, f.message) for f in Scanner(classifier).scan(handle, str(log))]
    parallel = Scanner(classifier)
    two = [
        (f.line, f.end_line, f.message)
        for f in split.scan_file(parallel, str(log), size, parallel_min=1)
    ]
    assert split.split_point(str(log), size) is not None
    assert len(one) == 200
    assert two == one
