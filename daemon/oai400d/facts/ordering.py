"""A rule's fixes in the order the facts make them likely."""

from __future__ import annotations

from collections.abc import Sequence

from oai400d.model import Fact


def order_fixes(fixes: Sequence[str], facts: Sequence[Fact]) -> tuple[str, ...]:
    """The fixes, those a fact prefers first and those a fact demotes last, otherwise in the
    rule's order (a stable sort: nothing is dropped, so no advice is lost on a wrong fact)."""
    prefer = [word for fact in facts for word in fact.prefer]
    demote = [word for fact in facts for word in fact.demote]
    if not prefer and not demote:
        return tuple(fixes)

    def rank(fix: str) -> int:
        lowered = fix.lower()
        if any(word in lowered for word in demote):
            return 2
        return 0 if any(word in lowered for word in prefer) else 1

    return tuple(sorted(fixes, key=rank))
