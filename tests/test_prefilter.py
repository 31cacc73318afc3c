"""The prefilter: the first pass that decides which lines of a stream are decoded at all."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oai400d.classify import Classifier, load_rules
from oai400d.classify.evidence import extract
from oai400d.classify.prefilter import Prefilter, hyperscan
from oai400d.errors import ConfigError

from .support import load_corpus

TABLE = load_rules()
ENGINES = ["re", "hyperscan"] if hyperscan is not None else ["re"]
CLASSIFIER = Classifier()
PATTERNS = CLASSIFIER.prefilter.patterns
SLOW = Prefilter(TABLE.prefilter, PATTERNS, engine="re")
FAST = Prefilter(TABLE.prefilter, PATTERNS, engine="hyperscan") if hyperscan is not None else SLOW


@pytest.mark.parametrize("engine", ENGINES)
def test_finds_each_hit_line_once_in_order(engine: str) -> None:
    """Every line holding a literal (any case) or a pattern is reported once, by its start."""
    prefilter = Prefilter(["rate_limit_exceeded", "quota"], [r"http/1\.1 [45]\d\d"], engine=engine)
    data = (
        b"ok line\n"
        b"code RATE_LIMIT_EXCEEDED and quota twice rate_limit_exceeded\n"
        b'POST /v1/x "HTTP/1.1 200 OK"\n'
        b'POST /v1/x "HTTP/1.1 429 Too Many Requests"\n'
        b"last QUOTA"
    )
    assert prefilter.hit_lines(data) == [8, 98, 142]
    assert prefilter.hit_lines(data, 69, 141) == [98]
    assert prefilter.any_in("over QuOtA") and not prefilter.any_in("HTTP/1.1 200 OK")


@pytest.mark.skipif(len(ENGINES) < 2, reason="the hyperscan wheel is not installed here")
@given(st.lists(st.sampled_from([b"x", b"quota", b"Error code: 429", b"\n", b"\xff", b"  "])))
@settings(max_examples=200)
def test_both_engines_agree(pieces: list[bytes]) -> None:
    """Hyperscan and the `re` fallback report the same lines for any bytes."""
    data = b"".join(pieces)
    assert FAST.hit_lines(data) == SLOW.hit_lines(data)


def test_no_corpus_finding_is_filtered_out() -> None:
    """Every event that yields a finding contains a prefilter hit: the prefilter only ever
    skips text that no rule could match (checked on every expected finding of the corpus that
    the classifier finds: a known gap may be one no rule matches yet)."""
    classifier = CLASSIFIER
    for case in load_corpus():
        if case.known_gap:
            continue
        lines = case.file.read_text(encoding="utf-8", errors="replace").split("\n")
        for expected in case.findings:
            text = "\n".join(lines[expected.lines[0] - 1 : expected.lines[1]])
            assert classifier.prefilter.any_in(text), case.id


@pytest.mark.parametrize(
    "text",
    [
        "Error code: 429 - {}",
        'HTTP Request: POST https://api.openai.com/v1/chat/completions "HTTP/1.1 503 Service Unavailable"',
        "Request failed with status code 401",
        "error, status code: 404, message: x",
        "http_status=400",
        '{"status": 413}',
        "APIError: 502 upstream",
        "429 Too Many Requests",
        "{'code': '500', 'message': 'x'}",
    ],
)
def test_every_status_form_is_a_hit(text: str) -> None:
    """A status the evidence reader understands is never skipped by the prefilter."""
    assert extract(text).status is not None
    assert CLASSIFIER.prefilter.any_in(text)


def test_a_user_pattern_without_a_literal_is_refused() -> None:
    """A pattern the prefilter cannot look for would silently never match: a config error."""
    with pytest.raises(ConfigError, match="no literal text"):
        load_rules(
            [
                {
                    "id": "x.y",
                    "category": "network",
                    "severity": "warning",
                    "title": "t",
                    "fixes": ["f"],
                    "patterns": [r"\d+\s\w+"],
                }
            ]
        )



@pytest.mark.skipif(hyperscan is None, reason="the hyperscan wheel is not installed here")
def test_the_re_engine_classifies_the_corpus_alike() -> None:
    """Where Hyperscan has no wheel, the `re` engines give every corpus case the same findings."""
    import io

    from oai400d.scan import Scanner

    slow = Classifier(engine="re")
    for case in load_corpus():
        data = case.file.read_bytes()
        found = [
            [(f.category, f.rule, f.error_code, f.line, f.end_line) for f in
             Scanner(classifier).scan(io.BytesIO(data), str(case.file))]
            for classifier in (CLASSIFIER, slow)
        ]
        assert found[0] == found[1], case.id


def test_compiled_automata_are_cached_and_a_bad_cache_is_never_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compiled database is kept in the user's cache directory and loaded next time; a
    damaged file is compiled over; a directory others can write to is never used."""
    if CLASSIFIER.prefilter.engine != "hyperscan":
        pytest.skip("the re engine compiles nothing to cache")
    cache = tmp_path / "cache"
    monkeypatch.setenv("OAI400D_CACHE_DIR", str(cache))
    first = Prefilter(["insufficient_quota", "model_not_found"])
    files = sorted(cache.glob("hs-*.db"))
    assert len(files) == 1 and (cache.stat().st_mode & 0o777) == 0o700
    loaded = Prefilter(["insufficient_quota", "model_not_found"])
    line = b"ok\n" + b"openai: insufficient_quota\n"
    assert loaded.hit_lines(line) == first.hit_lines(line) == [3]
    files[0].write_bytes(b"not a database")
    again = Prefilter(["insufficient_quota", "model_not_found"])
    assert again.hit_lines(line) == [3]
    assert files[0].read_bytes() != b"not a database"  # compiled over
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    monkeypatch.setenv("OAI400D_CACHE_DIR", str(shared))
    assert Prefilter(["insufficient_quota"]).hit_lines(line) == [3]
    assert list(shared.iterdir()) == []  # nothing written, nothing read


# Patterns whose shortest prefilter literal is short, and why that is cheap enough.
SHORT_LITERALS_ALLOWED = {
    "proxy": "a proxy failure's wording varies; the word is rare outside proxy errors",
    "下对于模型": "one-api's message: five CJK characters are 15 bytes",
    "n_keep": "llama.cpp's own parameter name: not in other logs",
    "_policy": "the suffix of a policy code (`cyber_policy`), not a word",
    "throttl": "throttled / throttling: said of requests that were refused",
}


def test_no_rule_pattern_makes_the_prefilter_hit_on_a_common_word() -> None:
    """Every pattern's required literal (what the prefilter looks for) is at least 8
    characters, or allowed above with a reason: a literal like `connect` makes every httpcore
    DEBUG line a candidate event (measured: 15 x the CPU on the openai-heavy shape)."""
    from oai400d.classify.literals import required_literals
    from oai400d.classify.rules import load_rules

    short = []
    for rule in load_rules().rules:
        for pattern in rule.patterns:
            literals = required_literals(pattern.regex.pattern)
            if literals and min(len(x) for x in literals) < 8:
                shortest = min(literals, key=len)
                if shortest not in SHORT_LITERALS_ALLOWED:
                    short.append((rule.id, pattern.regex.pattern, shortest))
    assert short == []
