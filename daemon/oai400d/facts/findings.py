"""Facts for `oai400d classify`'s findings: each finding gets its text facts and its fixes in
the order they make likely, computed once per distinct error and cached (an error storm repeats
a few dozen texts tens of thousands of times; a finding costs a dictionary lookup)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace

from oai400d.facts.ordering import order_fixes
from oai400d.facts.text import ErrorText, Identity, about_an_image, text_facts
from oai400d.model import Finding
from oai400d.timestamps import line_time

log = logging.getLogger("oai400d")

# Distinct (rule, message, second) kept; past it the cache starts again (a long file of ever
# new messages must not grow memory without bound).
MAX_CACHED = 20_000

_Answer = tuple[tuple[str, ...], tuple[str, ...]]  # (fact texts, fixes in order)


class FindingFacts:
    """Callable: a finding → the same finding with `facts` set and its fixes ordered (the very
    object when nothing was found). The error's time is its line's timestamp when the line
    starts with one, else `now()` (when it is read)."""

    def __init__(self, identity: Identity, now: Callable[[], float] = time.time) -> None:
        self.identity = identity
        self._now = now
        self._cache: dict[tuple[str, str, tuple[str, ...], str, int], _Answer] = {}
        self._plans: dict[tuple[str, str], tuple[bool, bool]] = {}

    def __call__(self, finding: Finding) -> Finding:
        uses_excerpt, timed = self._plan(finding)
        # Only a URL's facts depend on the time (a presigned URL's expiry, which must never be
        # said on the wrong side of the error): they are cached per second, the rest for good,
        # and the line's time is read only for them (a zone-less timestamp costs a mktime).
        at, at_read = self._time_of(finding) if timed else (0.0, False)
        key = (
            finding.rule,
            finding.message,
            finding.fixes,
            finding.excerpt if uses_excerpt else "",
            int(at),
        )
        answer = self._cache.get(key)
        if answer is None:
            answer = self._check(finding, at if timed else self._now(), at_read)
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            self._cache[key] = answer
        texts, fixes = answer
        if not texts:
            return finding
        return replace(finding, facts=texts, fixes=fixes)

    def _plan(self, finding: Finding) -> tuple[bool, bool]:
        """(whether the excerpt is read: an image error whose message names no URL; whether the
        time matters: URLs are read, for an image error only), once per (rule, message)."""
        plan = self._plans.get((finding.rule, finding.message))
        if plan is None:
            image = about_an_image(finding)
            plan = (image and "://" not in finding.message, image)
            if len(self._plans) >= MAX_CACHED:
                self._plans.clear()
            self._plans[(finding.rule, finding.message)] = plan
        return plan

    def _time_of(self, finding: Finding) -> tuple[float, bool]:
        """(the error's time, whether that is only when it was read)."""
        at = line_time(finding.excerpt)
        return (self._now(), True) if at is None else (at, False)

    def _check(self, finding: Finding, at: float, at_read: bool = False) -> _Answer:
        error = ErrorText.of(finding, at, at_read)
        try:
            facts = text_facts(error, self.identity)
        except Exception:  # a bug in a check costs the finding its facts, never the scan
            log.exception("checking the facts of %s:%d failed", finding.path, finding.line)
            return (), finding.fixes
        return tuple(fact.text for fact in facts), order_fixes(finding.fixes, facts)
