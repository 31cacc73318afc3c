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
    """The literal set of a sequence: its longest literal run, or the set of a lone branch."""
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
    best = ""
    run: list[str] = []
    for op, argument in items:
        if op is c.LITERAL:
            run.append(chr(argument))
            continue
        if op is c.MAX_REPEAT or op is c.MIN_REPEAT:
            low, _high, body = argument
            body = list(body)
            if low >= 1 and len(body) == 1 and body[0][0] is c.LITERAL:
                run.append(chr(body[0][1]))  # x+ : one x is certain, then the run ends
        if op is c.AT:
            continue  # \b, ^, $: zero-width, the run goes on
        best = max(best, "".join(run), key=len)
        run = []
    best = max(best, "".join(run), key=len)
    return {best.lower()} if best else None


def compile_with_literals(pattern: str) -> tuple[re.Pattern[str], frozenset[str] | None]:
    return re.compile(pattern), required_literals(pattern)
