"""Required literals of a regex: text that must be present for the regex to match at all.

Checking `literal in lowered_text` is far cheaper than running a regex, so a rule's pattern is
only searched when one of its required literals is in the event. The analysis works on the
parsed pattern (the `re` module's own parser) and gives up (returns None) whenever it is not
sure, in which case the pattern is always searched.
"""

from __future__ import annotations

import re
from typing import Any

try:  # the parser behind re.compile; private, so everything here degrades to "always search"
    from re import _constants as _sre_constants  # type: ignore[attr-defined]
    from re import _parser as _sre_parser  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - other Python versions
    _sre_parser = None
    _sre_constants = None

MIN_LITERAL = 3


def required_literals(pattern: str) -> frozenset[str] | None:
    """Lower-cased strings, one of which is in every text the pattern matches; None if unknown."""
    if _sre_parser is None:
        return None
    try:
        parsed = _sre_parser.parse(pattern)
        found = _alternatives(list(parsed))
    except Exception:  # any surprise in the private parser: be safe, always search
        return None
    if not found or any(len(literal) < MIN_LITERAL for literal in found):
        return None
    return frozenset(found)


def _alternatives(items: list[Any]) -> set[str] | None:
    """The literal set of a sequence: its most selective run, or the set of a lone branch."""
    c = _sre_constants
    solid = [item for item in items if item[0] is not c.AT]
    if len(solid) == 1 and solid[0][0] in (c.BRANCH, c.SUBPATTERN):
        items = solid  # \b(a|b)\b: the zero-width parts do not change what must be present
    if len(items) == 1 and items[0][0] is c.BRANCH:
        result: set[str] = set()
        for branch in items[0][1][1]:
            sub = _alternatives(list(branch))
            if sub is None:
                return None
            result |= sub
        return result
    if len(items) == 1 and items[0][0] is c.SUBPATTERN:
        return _alternatives(list(items[0][1][3]))
    best: set[str] = set()
    run: set[str] = {""}
    for op, argument in items:
        if op is c.AT:
            continue  # \b, ^, $: zero-width, the run goes on
        choices = _choices(op, argument)
        if choices is not None and len(run) * len(choices) <= MAX_EXPANSION:
            run = {head + tail for head in run for tail in choices}
            if op is c.MAX_REPEAT or op is c.MIN_REPEAT:
                best, run = _better(best, run), {""}  # x+ : one x is certain, then the run ends
            continue
        best, run = _better(best, run), {""}
        if choices is not None:
            run = set(choices)
    best = _better(best, run)
    return {literal.lower() for literal in best} if best else None


MAX_EXPANSION = 32  # `(Read|Connect)Timeout` → {readtimeout, connecttimeout}, up to this many


def _choices(op: Any, argument: Any) -> set[str] | None:
    """The strings one item of a sequence can match, when they are few and all literal."""
    c = _sre_constants
    if op is c.LITERAL:
        return {chr(argument)}
    if op is c.IN and all(kind is c.LITERAL for kind, _ in argument) and len(argument) <= 4:
        return {chr(value) for _, value in argument}
    if op is c.MAX_REPEAT or op is c.MIN_REPEAT:
        low, _high, body = argument
        body = list(body)
        if low >= 1 and len(body) == 1 and body[0][0] is c.LITERAL:
            return {chr(body[0][1])}
        return None
    if op is c.SUBPATTERN:
        inner = list(argument[3])
        if len(inner) == 1 and inner[0][0] is c.BRANCH:
            words: set[str] = set()
            for branch in inner[0][1][1]:
                word = _pure_literal(list(branch))
                if word is None:
                    return None
                words.add(word)
            return words
        word = _pure_literal(inner)
        return {word} if word is not None else None
    return None


def _pure_literal(items: list[Any]) -> str | None:
    if all(op is _sre_constants.LITERAL for op, _ in items):
        return "".join(chr(value) for _, value in items)
    return None


def _better(best: set[str], run: set[str]) -> set[str]:
    """The more selective of two literal sets: the one whose shortest member is longer."""
    if not run or min(map(len, run)) == 0:
        return best
    if not best or min(map(len, run)) > min(map(len, best)):
        return set(run)
    return best


def compile_with_literals(pattern: str) -> tuple[re.Pattern[str], frozenset[str] | None]:
    return re.compile(pattern), required_literals(pattern)
