"""The rule table: built-in `rules.toml` plus the user's `[[rules]]`, validated and compiled."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from oai400d.classify.literals import required_literals
from oai400d.classify.prefilter import _cache_dir, forget_old
from oai400d.errors import ConfigError
from oai400d.model import CATEGORIES as CATEGORIES  # re-exported: cli, probes.verdicts

SEVERITIES = ("critical", "warning", "info")
_RULE_KEYS = {
    "id",
    "category",
    "severity",
    "title",
    "status",
    "types",
    "codes",
    "patterns",
    "messages",
    "not_patterns",
    "fixes",
    "docs",
}


def any_in(literals: Iterable[str], lowered: str) -> bool:
    """Whether one of the literals occurs in the lower-cased text (the test before a regex)."""
    # A plain loop: on the scan's hot path it is about twice as fast as any() over a generator.
    for literal in literals:  # noqa: SIM110
        if literal in lowered:
            return True
    return False


@dataclass(frozen=True, slots=True)
class Pattern:
    """A regex and the literals one of which must be in the text for it to match.

    The regex is compiled when first needed: of the table's ~500 regexes a run tries only those
    whose literals occur, and compiling them all took ~45 ms of every start (`classify` of a
    small file). `source` was checked to compile when the table was loaded."""

    source: str
    literals: frozenset[str] | None
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @property
    def regex(self) -> re.Pattern[str]:
        regex = self._regex
        if regex is None:
            regex = re.compile(self.source)
            # (two threads may both compile it: the same regex either way)
            object.__setattr__(self, "_regex", regex)
        return regex

    def search(self, text: str, lowered: str) -> bool:
        if self.literals is not None and not any_in(self.literals, lowered):
            return False
        regex = self._regex  # (the property's call only the first time: this is the hot path)
        return (regex or self.regex).search(text) is not None


@dataclass(frozen=True, slots=True)
class Rule:
    """One known error: what it looks like, what it means, and what fixes it."""

    id: str
    category: str
    severity: str
    title: str
    status: frozenset[int]
    types: frozenset[str]
    codes: frozenset[str]
    patterns: tuple[Pattern, ...]  # OpenAI's own wording (`messages`) first, then the rest
    not_patterns: tuple[Pattern, ...]
    fixes: tuple[str, ...]
    docs: tuple[str, ...]
    # OpenAI's own message texts for this error: each is evidence by itself that the text is an
    # OpenAI (or verbatim-compatible) error, bare or quoted inside any other tool's message.
    messages: tuple[Pattern, ...] = ()
    # Every literal of every pattern; when none is in the text, no pattern can match. None when
    # some pattern has no known literal.
    triggers: tuple[str, ...] | None = None

    def matches(
        self, text: str, lowered: str, status: int | None, error_type: str | None, code: str | None
    ) -> bool:
        """Filters (status, types) hold where the event shows them; then codes or patterns hit.
        A rule with neither codes nor patterns is a status fallback and needs the status shown."""
        if self.status and status is not None and status not in self.status:
            return False
        if self.types and error_type is not None and error_type not in self.types:
            return False
        if not self.codes and not self.patterns:
            if status is None or not self.status:  # a status fallback needs the status shown
                return False
        elif (code is None or code not in self.codes) and not (
            self.patterns and self._patterns_hit(text, lowered)
        ):
            return False
        return not any(pattern.search(text, lowered) for pattern in self.not_patterns)

    def _patterns_hit(self, text: str, lowered: str) -> bool:
        if self.triggers is not None and not any_in(self.triggers, lowered):
            return False
        return any(pattern.search(text, lowered) for pattern in self.patterns)


@dataclass(frozen=True, slots=True)
class RuleTable:
    """Rules in priority order, plus what tells an OpenAI error from anybody else's."""

    rules: tuple[Rule, ...]
    prefilter: tuple[str, ...]  # lower-case literals; an event without any is never looked at
    openai: tuple[Pattern, ...]  # at least one matches an OpenAI (or compatible) error …
    signatures: tuple[Pattern, ...]  # … or one of OpenAI's own messages (every rule's `messages`)
    other_providers: tuple[Pattern, ...]  # any hit: another provider's or service's error
    class_status: Mapping[str, int]
    # OpenAI's error that no rule explains ([unclassified]): the finding it becomes, what shows
    # an error when no rule matched (types, patterns), and every code some rule knows.
    unclassified: Rule
    error_types: frozenset[str]
    error_signs: tuple[Pattern, ...]
    known_codes: frozenset[str]
    status_names: frozenset[str]  # codes that only restate a status (lower case, no _ - or space)

    def find(
        self, text: str, lowered: str, status: int | None, error_type: str | None, code: str | None
    ) -> Rule | None:
        """The first rule that matches, or None (`lowered` is text.lower(), computed once)."""
        for rule in self.rules:
            if rule.matches(text, lowered, status, error_type, code):
                return rule
        return None

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(rule.id for rule in self.rules)


@dataclass(frozen=True, slots=True)
class RuleIndex:
    """Which rules of a table can match a text, from the literals in it and its error code.

    A rule matches through its code, through a pattern (which needs one of its `triggers` in
    the text, when they are known), or, as a status fallback, through a shown status; so the
    rules that none of these reaches cannot match, and trying the others in table order gives
    the first match that trying every rule gives (`RuleTable.find`). On an error storm this is
    most of a finding's cost: ~50 rules were tried per event, each looking for its literals."""

    rules: tuple[Rule, ...]
    by_literal: Mapping[str, tuple[int, ...]]  # a trigger → the rules it may let match
    by_code: Mapping[str, tuple[int, ...]]  # an error code → the rules that know it
    always: tuple[int, ...]  # rules with a pattern of no known literal: always tried
    fallbacks: tuple[int, ...]  # status fallbacks: tried when a status is shown

    @classmethod
    def of(cls, table: RuleTable) -> RuleIndex:
        by_literal: dict[str, list[int]] = {}
        by_code: dict[str, list[int]] = {}
        always: list[int] = []
        fallbacks: list[int] = []
        for index, rule in enumerate(table.rules):
            for code in rule.codes:
                by_code.setdefault(code, []).append(index)
            if not rule.codes and not rule.patterns:
                fallbacks.append(index)
            elif rule.patterns and rule.triggers is None:
                always.append(index)
            elif rule.triggers is not None:
                for literal in rule.triggers:
                    by_literal.setdefault(literal, []).append(index)
        return cls(
            rules=table.rules,
            by_literal={literal: tuple(ids) for literal, ids in by_literal.items()},
            by_code={code: tuple(ids) for code, ids in by_code.items()},
            always=tuple(always),
            fallbacks=tuple(fallbacks),
        )

    def find(
        self,
        present: Iterable[str],
        text: str,
        lowered: str,
        status: int | None,
        error_type: str | None,
        code: str | None,
    ) -> Rule | None:
        """RuleTable.find, trying only the rules that can match: `present` holds every
        trigger literal that occurs in `lowered` (more literals are harmless)."""
        candidates = set(self.always)
        if status is not None:
            candidates.update(self.fallbacks)
        if code is not None:
            candidates.update(self.by_code.get(code, ()))
        by_literal = self.by_literal
        for literal in present:
            candidates.update(by_literal.get(literal, ()))
        rules = self.rules
        for index in sorted(candidates):
            rule = rules[index]
            if rule.matches(text, lowered, status, error_type, code):
                return rule
        return None


def builtin_document() -> dict[str, Any]:
    """The parsed `rules.toml` that ships in the package."""
    return _builtin()[0]


# What a regex of the built-in table yields when it is analysed: its literals (None: unknown).
Analysis = dict[str, frozenset[str] | None]
_ANALYSIS_FORMAT = 1  # bump when what the cache file holds changes


def _builtin() -> tuple[dict[str, Any], Analysis]:
    """The parsed `rules.toml`, and the literals of each of its regexes (each checked to compile).

    Parsing the 130 KB table and analysing its ~460 regexes takes ~90 ms, most of what `classify`
    of a small file costs; the result is kept as JSON in the automata's cache directory under a
    digest of everything it depends on (the table, the analysis' code, the Python that parsed
    them), so a stale one is never read. Anything wrong with the cache means analysing afresh."""
    # (read beside this module, as setuptools installs it: importlib.resources and pathlib
    # would cost `classify` ~10 ms of imports; tomllib is needed only without a cache)
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "rules.toml"), "rb") as handle:
        table = handle.read()
    cached = _cache_file(table, os.path.join(here, "literals.py"))
    if cached is not None:
        with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
            return _read_analysis(cached)
    import tomllib

    document = tomllib.loads(table.decode("utf-8"))
    analysis = _analyse(document)
    if cached is not None and analysis is not None:
        _write_analysis(cached, document, analysis)
    return document, analysis or {}


def _cache_file(table: bytes, analyser_path: str) -> str | None:
    """Where the analysis of this table by this analyser's code and this Python is kept; None
    without a cache directory, or without the analyser's source to tell its version by."""
    folder = _cache_dir()
    if folder is None:
        return None
    try:
        with open(analyser_path, "rb") as handle:
            analyser = handle.read()
    except OSError:
        return None
    digest = hashlib.sha256()
    for part in (table, analyser, sys.version.encode("utf-8"), bytes([_ANALYSIS_FORMAT])):
        digest.update(hashlib.sha256(part).digest())
    return os.path.join(folder, f"rules-{digest.hexdigest()[:32]}.json")


def _analyse(document: Mapping[str, Any]) -> Analysis | None:
    """The literals of every regex of the built-in table; None when one does not compile (the
    table is then refused as a user rule would be, by load_rules, and nothing is cached)."""
    sources: list[str] = []
    for raw in document["rule"]:
        for key in ("messages", "patterns", "not_patterns"):
            sources.extend(raw.get(key, []))
    sources.extend(document["unclassified"].get("patterns", []))
    for key in ("openai", "other_providers"):
        sources.extend(document["attribution"].get(key, []))
    analysis: Analysis = {}
    for source in sources:
        try:
            re.compile(source)
        except (re.error, TypeError):
            return None
        analysis[source] = required_literals(source)
    re.purge()  # (the compiled forms are not kept: Pattern compiles its own when first used)
    return analysis


def _read_analysis(path: str) -> tuple[dict[str, Any], Analysis]:
    with open(path, encoding="utf-8") as handle:
        stored = json.load(handle)
    document = stored["document"]
    literals = stored["literals"]
    if not isinstance(document, dict) or not isinstance(literals, dict):
        raise ValueError(f"{path}: not an analysis of the rule table")
    analysis: Analysis = {
        source: None if found is None else frozenset(str(literal) for literal in found)
        for source, found in literals.items()
    }
    return document, analysis


def _write_analysis(path: str, document: Mapping[str, Any], analysis: Analysis) -> None:
    stored = {
        "document": document,
        "literals": {
            source: None if found is None else sorted(found) for source, found in analysis.items()
        },
    }
    with contextlib.suppress(OSError, TypeError, ValueError):
        temporary = f"{path}.{os.getpid()}.tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(stored, handle, ensure_ascii=False)
        os.replace(temporary, path)
        forget_old(os.path.dirname(path), keep=path, prefix="rules-")


def load_rules(user_rules: Sequence[Mapping[str, Any]] = ()) -> RuleTable:
    """Built-in rules with the user's merged in: a known id overrides that rule in place (keys
    not given are kept), a new id is evaluated before every built-in rule."""
    document, analysed = _builtin()
    builtin = [dict(raw) for raw in document["rule"]]
    by_id = {raw["id"]: index for index, raw in enumerate(builtin)}
    added: list[dict[str, Any]] = []
    problems: list[str] = []
    for position, raw in enumerate(user_rules):
        rule_id = raw.get("id")
        if not isinstance(rule_id, str) or not rule_id:
            problems.append(
                f"rules[{position}]: missing `id` (a user rule needs an id to add or override)"
            )
            continue
        if rule_id in by_id:
            builtin[by_id[rule_id]] = {**builtin[by_id[rule_id]], **raw}
        else:
            added.append(dict(raw))
    compiled: list[Rule] = []
    for raw in [*added, *builtin]:
        try:
            compiled.append(compile_rule(raw, analysed))
        except ValueError as exc:
            problems.append(f"rules: rule {raw.get('id')!r}: {exc}")
    if problems:
        raise ConfigError(problems)
    attribution = document["attribution"]
    signatures = tuple(pattern for rule in compiled for pattern in rule.messages)
    class_status = dict(document["exception_status"])
    unknown = dict(document["unclassified"])
    error_types = frozenset(unknown.pop("types"))
    error_signs = _compile_all(unknown.pop("patterns"), "unclassified.patterns", analysed)
    status_names = frozenset(unknown.pop("status_names"))
    unclassified = compile_rule({**unknown, "category": "unclassified"}, analysed)
    # What can show an unknown error: its sign patterns, and the error types that cannot be
    # ordinary words ("requests" and "tokens" come with a status form or a code anyway).
    extra = {name for name in error_types if "_" in name}
    for pattern in error_signs:
        extra |= pattern.literals or set()
    return RuleTable(
        rules=tuple(compiled),
        prefilter=prefilter_literals(compiled, class_status, extra),
        openai=_compile_all(attribution["openai"], "openai", analysed),
        signatures=signatures,
        other_providers=_compile_all(attribution["other_providers"], "other_providers", analysed),
        class_status=class_status,
        unclassified=unclassified,
        error_types=error_types,
        error_signs=error_signs,
        known_codes=frozenset(code for rule in compiled for code in rule.codes),
        status_names=status_names,
    )


def prefilter_literals(
    rules: Iterable[Rule], class_status: Mapping[str, int], extra: Iterable[str] = ()
) -> tuple[str, ...]:
    """Every text through which some rule can match, lower-cased: the literals of its patterns
    and messages, its error codes, the exception names that imply a status, and `extra` (what
    shows an error no rule knows). (Statuses shown as numbers are the evidence reader's
    STATUS_TRIGGERS.) Without one of these in an event, no finding can come of it, so the
    scanner need not look at it."""
    literals = {name.lower() for name in class_status} | {lit.lower() for lit in extra}
    for rule in rules:
        literals |= {code.lower() for code in rule.codes}
        for pattern in rule.patterns:
            literals |= pattern.literals or set()
    ordered = sorted(literals, key=lambda lit: (len(lit), lit))
    kept: list[str] = []
    for literal in ordered:  # a literal that contains another one is found through it
        if not any(shorter in literal for shorter in kept):
            kept.append(literal)
    return tuple(kept)


def compile_rule(raw: Mapping[str, Any], analysed: Analysis | None = None) -> Rule:
    """Validate one rule table; raise ValueError saying which key is wrong and why. `analysed`:
    regexes already checked (the built-in table's), with their literals."""
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        raise ValueError(f"unknown key(s) {sorted(unknown)}; allowed: {sorted(_RULE_KEYS)}")
    for key in ("id", "category", "severity", "title"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise ValueError(f"`{key}` must be a non-empty string")
    if raw["category"] not in CATEGORIES:
        raise ValueError(f"`category` {raw['category']!r} is not one of {sorted(CATEGORIES)}")
    if raw["severity"] not in SEVERITIES:
        raise ValueError(f"`severity` {raw['severity']!r} is not one of {list(SEVERITIES)}")
    status = _list_of(raw, "status", int)
    if any(not 100 <= s <= 599 for s in status):
        raise ValueError("`status` entries must be HTTP statuses (100–599)")
    fixes = _list_of(raw, "fixes", str)
    if not fixes:
        raise ValueError("`fixes` must list at least one fix")
    messages = _compile_all(_list_of(raw, "messages", str), "messages", analysed)
    for pattern in messages:
        if pattern.literals is None:
            raise ValueError(
                f"`messages` entry {pattern.source!r} has no literal text of 3 or more "
                "characters that every match contains (the prefilter looks for it): spell out "
                "a fixed part of the message"
            )
    patterns = messages + _compile_all(_list_of(raw, "patterns", str), "patterns", analysed)
    for pattern in patterns[len(messages) :]:
        if pattern.literals is None:
            raise ValueError(
                f"`patterns` entry {pattern.source!r} has no literal text of 3 or more "
                "characters that every match contains (the prefilter looks for it): spell out "
                "a fixed part, e.g. `Rate limit (reached|exceeded)` rather than `Rate.*limit`"
            )
    known = [p.literals for p in patterns]
    triggers = (
        tuple(sorted({lit for literals in known if literals for lit in literals}))
        if patterns and all(literals is not None for literals in known)
        else None
    )
    return Rule(
        id=raw["id"],
        category=raw["category"],
        severity=raw["severity"],
        title=raw["title"],
        status=frozenset(status),
        types=frozenset(_list_of(raw, "types", str)),
        codes=frozenset(_list_of(raw, "codes", str)),
        patterns=patterns,
        not_patterns=_compile_all(_list_of(raw, "not_patterns", str), "not_patterns", analysed),
        fixes=tuple(fixes),
        docs=tuple(_list_of(raw, "docs", str)),
        messages=messages,
        triggers=triggers,
    )


def _list_of(raw: Mapping[str, Any], key: str, kind: type) -> list[Any]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(
        isinstance(item, kind) and not isinstance(item, bool) for item in value
    ):
        raise ValueError(f"`{key}` must be a list of {kind.__name__}")
    return value


def _compile_all(
    patterns: Iterable[str], key: str, analysed: Analysis | None = None
) -> tuple[Pattern, ...]:
    """Patterns of the given regexes: those `analysed` are compiled when first used, any other
    (a user's) now, so that a broken one is a config error before anything starts."""
    compiled = []
    for pattern in patterns:
        if analysed is not None and pattern in analysed:
            compiled.append(Pattern(pattern, analysed[pattern]))
            continue
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"`{key}` entry {pattern!r} is not a valid regex: {exc}") from None
        compiled.append(Pattern(pattern, required_literals(pattern), regex))
    return tuple(compiled)
