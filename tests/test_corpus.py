"""The classifier against the corpus of real-shaped log excerpts in tests/data/."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from oai400d.classify import load_rules
from oai400d.classify.rules import CATEGORIES

from .corpus_table import FAMILIES, README, family_of, render, sources_by_case
from .support import DATA, Case, classify_by_path, load_corpus

CASES = load_corpus()
FORMATS = {
    "openai-python v1",
    "openai-python v1 traceback",
    "openai-python 0.x",
    "openai-python 0.x logfmt",
    "openai-node",
    "openai-node stack",
    "httpx request line",
    "raw JSON body",
    "JSON-lines log",
    "LangChain",
    "LiteLLM",
    "Azure OpenAI",
    "exception repr",
    "pretty JSON body",
    "axios",
    "OpenAI-compatible server",
    "network traceback",
}


@pytest.fixture(scope="module")
def corpus_output() -> dict[str, list[dict[str, Any]]]:
    """One `oai400d classify --json` run over every corpus file, findings grouped by file."""
    return classify_by_path(sorted(str(case.file) for case in CASES))


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_case_yields_exactly_its_expected_findings(
    case: Case, corpus_output: dict[str, list[dict[str, Any]]]
) -> None:
    """Each excerpt yields its expected findings (category, code, span), and nothing else."""
    actual = [
        (f["category"], f["error_code"], (f["line"], f["end_line"]))
        for f in corpus_output.get(str(case.file), [])
    ]
    expected = [(e.category, e.code, e.lines) for e in case.findings]
    if case.known_gap and actual != expected:
        pytest.xfail(f"known gap: {case.known_gap}")
    assert not case.known_gap, f"{case.id} passes now: drop its known_gap"
    assert actual == expected, "\n" + case.file.read_text(errors="replace")[:3000]


def test_every_file_has_a_case() -> None:
    """A .log file nobody described would be silently untested."""
    described = {case.file for case in CASES}
    on_disk = set(DATA.glob("*/*.log"))
    assert on_disk == described


def test_corpus_is_broad_enough() -> None:
    """At least 450 cases, 100 negatives, 5 findings per category, 15 cases per format family,
    and every round-1 format represented."""
    positives = [case for case in CASES if case.findings]
    negatives = [case for case in CASES if not case.findings]
    assert len(CASES) >= 450
    assert len(negatives) >= 100
    per_category = Counter(f.category for case in positives for f in case.findings)
    assert {c: n for c, n in per_category.items() if n < 5} == {}
    assert set(per_category) == set(CATEGORIES)
    assert {case.format for case in positives} >= FORMATS
    per_family = Counter(family_of(case.format) for case in CASES)
    assert {family: per_family[family] for family in FAMILIES if per_family[family] < 15} == {}


def test_every_real_world_case_names_its_source() -> None:
    """A wild.* case without the address it came from cannot be checked again."""
    sources = sources_by_case()
    missing = [
        case.id
        for case in CASES
        if case.group.startswith("wild.") and not sources.get(case.id, "").startswith("https://")
    ]
    assert missing == []


def test_readme_tables_are_current() -> None:
    """tests/data/README.md shows the corpus as it is (rewrite: python -m tests.corpus_table)."""
    assert render() in README.read_text(encoding="utf-8")


def test_every_rule_has_a_sample(corpus_output: dict[str, list[dict[str, Any]]]) -> None:
    """A rule that no corpus excerpt exercises is untested knowledge: add a sample for it."""
    exercised = {f["rule"] for findings in corpus_output.values() for f in findings}
    missing = [rule for rule in load_rules().ids if rule not in exercised]
    assert missing == []


def test_findings_carry_fixes_and_docs(corpus_output: dict[str, list[dict[str, Any]]]) -> None:
    """Every finding tells the person what to do and where to read more."""
    for findings in corpus_output.values():
        for finding in findings:
            assert 2 <= len(finding["fixes"]) <= 4, finding["rule"]
            assert finding["docs"] and all(d.startswith("https://") for d in finding["docs"])
