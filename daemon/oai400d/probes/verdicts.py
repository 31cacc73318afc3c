"""The verdict table: what an API error answer means, read from verdicts.toml.

The probes' knowledge of OpenAI's (and Azure's, and proxies') refusals is data, like the
classifier's rules: rows tried in order, each with its conditions and what it says. The
[[answer]] rows judge an error answer; the [[failure]] rows a request that got none (DNS, refused,
TLS, proxy, timeout), naming the URL and giving the fixes that fit. This module loads and checks
the table once, and finds the row; it knows nothing of HTTP.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from string import Formatter
from typing import Any
from urllib.parse import urlsplit

from oai400d.classify.rules import CATEGORIES, builtin_document

LEVELS = ("critical", "warning", "unknown")
PROVIDERS = ("openai", "azure", "compatible")
PLACEHOLDERS = frozenset(
    {"status", "code", "code_or_type", "request", "host", "sentence", "scope", "location"}
)
_ROW_KEYS = frozenset(
    {
        "id",
        "status",
        "status_min",
        "status_max",
        "patterns",
        "provider",
        "json",
        "level",
        "summary",
        "default_code",
        "cause",
        "fixes",
    }
)
_CONDITIONS = ("status", "status_min", "status_max", "patterns", "provider", "json")
# [[failure]] rows: a request with no answer (see verdicts.toml for what each key means).
FAILURE_KINDS = ("timeout", "proxy", "tls", "connect", "closed", "request", "invalid_url")
FAILURE_PLACEHOLDERS = frozenset({"url", "host", "port", "reason", "proxy"})
FAILURE_FIX_PLACEHOLDERS = frozenset({"host", "port", "setting", "proxy"})
_FAILURE_KEYS = frozenset({"id", "kind", "proxy", "patterns", "summary", "fixes"})
# The scope a restricted key lacks, as OpenAI names it ("… Missing scopes: api.model.read.").
_SCOPES = re.compile(r"Missing scopes?:\s*([\w.:, -]+?)\.(?:\s|$)")


@dataclass(frozen=True, slots=True)
class ApiError:
    """The parts of a non-2xx API answer the verdict needs; `message` is already scrubbed."""

    status: int
    code: str | None
    type: str | None
    message: str
    request_id: str | None
    is_json: bool
    location: str | None = None  # a redirect's target, already without secrets

    def details(self) -> dict[str, Any]:
        """For ProbeResult.details."""
        return {
            "http_status": self.status,
            "error_code": self.code,
            "error_type": self.type,
            "message": self.message,
            "request_id": self.request_id,
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    """A judged failure: status, words (without the probe's prefix), cause, fixes, and the row of
    the table that gave it (empty for the verdicts a probe gives itself)."""

    status: str
    summary: str
    cause: str | None
    fixes: tuple[str, ...]
    details: dict[str, Any] = field(default_factory=dict)
    row: str = ""


@dataclass(frozen=True, slots=True)
class AnswerRow:
    """One [[answer]] of verdicts.toml: its conditions, and the verdict when they all hold."""

    id: str
    status: frozenset[int]
    status_min: int | None
    status_max: int | None
    patterns: tuple[re.Pattern[str], ...]
    provider: frozenset[str]
    json: bool | None
    level: str
    summary: str
    default_code: str
    cause: str | None
    fix_set: str  # the [fixes] entry the row names
    fixes: tuple[str, ...]  # that entry's fixes (a rule's, when it names one)

    def matches(self, error: ApiError, lowered: str, provider: str) -> bool:
        """Whether every condition the row gives holds (`lowered`: "<code> <type> <message>")."""
        if self.status and error.status not in self.status:
            return False
        if self.status_min is not None and error.status < self.status_min:
            return False
        if self.status_max is not None and error.status > self.status_max:
            return False
        if self.provider and provider not in self.provider:
            return False
        if self.json is not None and error.is_json != self.json:
            return False
        return not self.patterns or any(p.search(lowered) for p in self.patterns)


@dataclass(frozen=True, slots=True)
class FailureRow:
    """One [[failure]] of verdicts.toml: which failed requests it is for, and what it says."""

    id: str
    kinds: frozenset[str]
    proxy: bool | None
    patterns: tuple[re.Pattern[str], ...]
    summary: str
    fix_set: str

    def matches(self, kind: str, lowered: str, proxy: str) -> bool:
        """Whether the failure is of one of the row's kinds, went through a proxy or not as the
        row says, and its words match (each condition only when given)."""
        if self.kinds and kind not in self.kinds:
            return False
        if self.proxy is not None and bool(proxy) != self.proxy:
            return False
        return not self.patterns or any(p.search(lowered) for p in self.patterns)


@dataclass(frozen=True, slots=True)
class Failure:
    """A request that got no answer, in words: the summary (naming the URL), the fixes that fit
    the way it failed (placeholders filled), and the [[failure]] row that gave them."""

    summary: str
    fixes: tuple[str, ...]
    row: str


@dataclass(frozen=True, slots=True)
class VerdictTable:
    """The [[answer]] and [[failure]] rows in order, and every named set of fixes (rule
    references resolved)."""

    rows: tuple[AnswerRow, ...]
    fix_sets: Mapping[str, tuple[str, ...]]
    rule_refs: Mapping[str, str]  # fix set name -> the rules.toml id it takes its fixes from
    failures: tuple[FailureRow, ...] = ()

    def find_failure(self, kind: str, reason: str, proxy: str = "") -> FailureRow:
        """The first [[failure]] row for a request that failed this way (the last holds for all)."""
        lowered = reason.lower()
        for row in self.failures:
            if row.matches(kind, lowered, proxy):
                return row
        raise AssertionError("verdicts.toml: the last [[failure]] must have no condition")

    def judge_failure(
        self, kind: str, reason: str, url: str, setting: str, proxy: str = ""
    ) -> Failure:
        """What a request to `url` (already without credentials or query) that got no answer
        means, and what to do; `setting` is the config key that holds the URL, `proxy` the
        proxy the request went through ("" for none)."""
        row = self.find_failure(kind, reason, proxy)
        parts = urlsplit(url)
        host = parts.hostname or url
        try:
            port = str(parts.port or (443 if parts.scheme == "https" else 80))
        except ValueError:  # a port that is not a number: the URL's own words say enough
            port = "?"
        summary = row.summary.format_map(
            {"url": url, "host": host, "port": port, "reason": reason, "proxy": proxy}
        )
        values = {"host": host, "port": port, "setting": setting, "proxy": proxy}
        fixes = tuple(fix.format_map(values) for fix in self.fixes(row.fix_set))
        return Failure(summary, fixes, row.id)

    def fixes(self, name: str) -> tuple[str, ...]:
        """A named set of fixes of [fixes] (KeyError naming the known ones if there is none)."""
        try:
            return self.fix_sets[name]
        except KeyError:
            known = ", ".join(sorted(self.fix_sets))
            raise KeyError(f"no [fixes] entry {name!r} in verdicts.toml; known: {known}") from None

    def find(self, error: ApiError, provider: str) -> AnswerRow:
        """The first row that holds for this answer (the last row holds for every answer)."""
        lowered = f"{error.code or ''} {error.type or ''} {error.message}".lower()
        for row in self.rows:
            if row.matches(error, lowered, provider):
                return row
        raise AssertionError("verdicts.toml: the last [[answer]] must have no condition")

    def judge(self, error: ApiError, provider: str, host: str) -> Verdict:
        """The verdict on a non-2xx answer to GET /models (or /models/{id}) that is not 'missing'.

        `provider` is "openai", "azure" or "compatible"; `host` is openai.base_url's host name."""
        row = self.find(error, provider)
        found = _SCOPES.search(error.message)
        values = {
            "status": error.status,
            "code": error.code or row.default_code,
            "code_or_type": error.code or error.type or "",
            "request": f" ({error.request_id})" if error.request_id else "",
            "host": host,
            "sentence": error.message.split(".")[0],
            "scope": found.group(1) if found else "api.model.read",
            "location": f" to {error.location}" if error.location else "",
        }
        summary = row.summary.format_map(values).rstrip()
        return Verdict(row.level, summary, row.cause, row.fixes, error.details(), row.id)


@cache
def verdict_table() -> VerdictTable:
    """The table that ships in the package, loaded and checked once per process."""
    text = resources.files("oai400d.probes").joinpath("verdicts.toml").read_text(encoding="utf-8")
    return parse_table(tomllib.loads(text), _builtin_rule_fixes())


def _builtin_rule_fixes() -> dict[str, tuple[str, ...]]:
    """Every built-in rule's fixes by rule id (what a `{ rule = … }` entry refers to)."""
    return {raw["id"]: tuple(raw["fixes"]) for raw in builtin_document()["rule"]}


def parse_table(
    document: Mapping[str, Any], rule_fixes: Mapping[str, tuple[str, ...]]
) -> VerdictTable:
    """Check and compile a parsed verdicts.toml; ValueError listing every problem found."""
    problems: list[str] = []
    fix_sets: dict[str, tuple[str, ...]] = {}
    rule_refs: dict[str, str] = {}
    for name, entry in dict(document.get("fixes", {})).items():
        where = f"[fixes] {name}"
        if isinstance(entry, dict) and set(entry) == {"rule"}:
            if entry["rule"] not in rule_fixes:
                problems.append(f"{where}: no rule {entry['rule']!r} in classify/rules.toml")
                continue
            rule_refs[name] = entry["rule"]
            fix_sets[name] = rule_fixes[entry["rule"]]
        elif isinstance(entry, list) and entry and all(isinstance(f, str) for f in entry):
            fix_sets[name] = tuple(entry)
        else:
            problems.append(
                f'{where}: give a non-empty list of fixes or {{ rule = "openai.…" }} naming a rule'
            )
    rows: list[AnswerRow] = []
    seen: set[str] = set()
    for position, raw in enumerate(document.get("answer", [])):
        label = f"[[answer]] {raw.get('id') or f'number {position + 1}'}"
        try:
            row = _compile_row(raw, fix_sets)
        except ValueError as exc:
            problems.append(f"{label}: {exc}")
            continue
        if row.id in seen:
            problems.append(f"{label}: the id is used by an earlier row")
        seen.add(row.id)
        rows.append(row)
    if not rows:
        problems.append("no [[answer]] rows")
    elif any(raw_condition in document["answer"][-1] for raw_condition in _CONDITIONS):
        problems.append("the last [[answer]] must have no condition: every answer needs a verdict")
    failures = _compile_failures(document.get("failure", []), fix_sets, problems)
    if problems:
        raise ValueError("verdicts.toml: " + "; ".join(problems))
    return VerdictTable(tuple(rows), fix_sets, rule_refs, failures)


def _compile_failures(
    raws: list[Mapping[str, Any]], fix_sets: Mapping[str, tuple[str, ...]], problems: list[str]
) -> tuple[FailureRow, ...]:
    """The [[failure]] rows; what is wrong with them goes into `problems`."""
    rows: list[FailureRow] = []
    for position, raw in enumerate(raws):
        label = f"[[failure]] {raw.get('id') or f'number {position + 1}'}"
        try:
            rows.append(_compile_failure(raw, fix_sets))
        except ValueError as exc:
            problems.append(f"{label}: {exc}")
    if not raws:
        problems.append("no [[failure]] rows")
    elif {"kind", "proxy", "patterns"} & set(raws[-1]):
        problems.append("the last [[failure]] must have no condition: every failure needs words")
    return tuple(rows)


def _placeholders(text: str) -> set[str]:
    """The {names} a format string uses."""
    return {f for _, f, _, _ in Formatter().parse(text) if f is not None}


def _compile_failure(raw: Mapping[str, Any], fix_sets: Mapping[str, tuple[str, ...]]) -> FailureRow:
    """One [[failure]]; ValueError saying which key is wrong and what it must be."""
    unknown = set(raw) - _FAILURE_KEYS
    if unknown:
        raise ValueError(f"unknown key(s) {sorted(unknown)}; allowed: {sorted(_FAILURE_KEYS)}")
    for key in ("id", "summary", "fixes"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise ValueError(f"`{key}` must be a non-empty string")
    if raw["fixes"] not in fix_sets:
        raise ValueError(f"`fixes` {raw['fixes']!r} is not an entry of [fixes]")
    if _placeholders(raw["summary"]) - FAILURE_PLACEHOLDERS:
        raise ValueError(f"`summary` may use only {sorted(FAILURE_PLACEHOLDERS)}")
    for fix in fix_sets[raw["fixes"]]:
        if _placeholders(fix) - FAILURE_FIX_PLACEHOLDERS:
            raise ValueError(
                f"[fixes] {raw['fixes']} may use only {sorted(FAILURE_FIX_PLACEHOLDERS)}"
            )
    kinds = raw.get("kind", [])
    if not isinstance(kinds, list) or not set(kinds) <= set(FAILURE_KINDS):
        raise ValueError(f"`kind` must be a list of {list(FAILURE_KINDS)}")
    patterns = raw.get("patterns", [])
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise ValueError("`patterns` must be a list of regexes")
    if raw.get("proxy") not in (None, True, False):
        raise ValueError("`proxy` must be true or false")
    try:
        compiled = tuple(re.compile(p, re.IGNORECASE) for p in patterns)
    except re.error as exc:
        raise ValueError(f"a `patterns` entry is not a valid regex: {exc}") from None
    return FailureRow(
        raw["id"], frozenset(kinds), raw.get("proxy"), compiled, raw["summary"], raw["fixes"]
    )


def _compile_row(raw: Mapping[str, Any], fix_sets: Mapping[str, tuple[str, ...]]) -> AnswerRow:
    """One [[answer]]; ValueError saying which key is wrong and what it must be."""
    unknown = set(raw) - _ROW_KEYS
    if unknown:
        raise ValueError(f"unknown key(s) {sorted(unknown)}; allowed: {sorted(_ROW_KEYS)}")
    for key in ("id", "level", "summary", "fixes"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise ValueError(f"`{key}` must be a non-empty string")
    if raw["level"] not in LEVELS:
        raise ValueError(f"`level` {raw['level']!r} is not one of {list(LEVELS)}")
    cause = raw.get("cause")
    if cause is not None and cause not in CATEGORIES:
        raise ValueError(f"`cause` {cause!r} is not a category of taxonomy.md")
    if raw["fixes"] not in fix_sets:
        raise ValueError(f"`fixes` {raw['fixes']!r} is not an entry of [fixes]")
    fields = {f for _, f, _, _ in Formatter().parse(raw["summary"]) if f is not None}
    if fields - PLACEHOLDERS:
        raise ValueError(
            f"`summary` has unknown placeholder(s) {sorted(fields - PLACEHOLDERS)}; "
            f"known: {sorted(PLACEHOLDERS)}"
        )
    status = raw.get("status", [])
    if not isinstance(status, list) or not all(type(s) is int for s in status):
        raise ValueError("`status` must be a list of HTTP statuses")
    bounds = [raw.get("status_min"), raw.get("status_max")]
    if not all(b is None or type(b) is int for b in bounds):
        raise ValueError("`status_min` and `status_max` must be HTTP statuses")
    provider = raw.get("provider", [])
    if not isinstance(provider, list) or not set(provider) <= set(PROVIDERS):
        raise ValueError(f"`provider` must be a list of {list(PROVIDERS)}")
    if raw.get("json") not in (None, True, False):
        raise ValueError("`json` must be true or false")
    patterns = raw.get("patterns", [])
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise ValueError("`patterns` must be a list of regexes")
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern, re.IGNORECASE))
        except re.error as exc:
            raise ValueError(f"`patterns` entry {pattern!r} is not a valid regex: {exc}") from None
    return AnswerRow(
        id=raw["id"],
        status=frozenset(status),
        status_min=bounds[0],
        status_max=bounds[1],
        patterns=tuple(compiled),
        provider=frozenset(provider),
        json=raw.get("json"),
        level=raw["level"],
        summary=raw["summary"],
        default_code=str(raw.get("default_code", "")),
        cause=cause,
        fix_set=raw["fixes"],
        fixes=fix_sets[raw["fixes"]],
    )
