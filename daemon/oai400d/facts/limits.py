"""Token and rate-limit arithmetic from an error's own numbers: how far over the context
window or the output cap a request was; which rate limit was hit (RPM, TPM, RPD, TPD, images),
by how much, and whether retrying can work at all ("Request too large": never)."""

from __future__ import annotations

import re

from oai400d.facts.wording import number, percent, span
from oai400d.model import Fact

CONTEXT_KIND = "context_tokens"
OUTPUT_KIND = "output_tokens"
RATE_KIND = "rate_limit"

_CONTEXT = re.compile(
    r"maximum context length (?:is|of \S+ is) (\d+)(?: tokens)?[.,]? however,? "
    r"(?:your messages resulted in|you requested|answering your request will take) "
    r"(over )?(\d+) tokens"
    r"(?: \((\d+) in (?:the messages|your prompt)[,;] (\d+) (?:in|for) the completion\))?",
    re.IGNORECASE,
)
_OUTPUT = re.compile(
    r"supports at most (\d+) completion tokens, whereas you provided (\d+)", re.IGNORECASE
)
_RATE = re.compile(
    r"(Request too large for .{0,200}?)?"
    r"on (tokens|requests|images) per (min|minute|day) \((TPM|RPM|RPD|TPD|IPM)\): "
    r"Limit (\d+)(?:, Used (\d+))?, Requested ~?(\d+)",
    re.IGNORECASE,
)
_RETRY_IN = re.compile(r"try again in ((?:\d+(?:\.\d+)?(?:ms|h|m|s))+)", re.IGNORECASE)
_RETRY_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

_LIMIT_NAMES = {
    "TPM": "tokens per minute",
    "RPM": "requests per minute",
    "TPD": "tokens per day",
    "RPD": "requests per day",
    "IPM": "images per minute",
}

# Words of context_length_exceeded's fixes: "If the completion part pushes it over, lower
# max_tokens…" and "Trim the input…".
_COMPLETION_FIX = ("lower max_tokens",)
_TRIM_FIX = ("trim the input",)
# rate_limit_reached's and rate_limited_429's: backoff is what a too-large request cannot use.
_BACKOFF_FIX = ("backoff", "back off")


def limit_facts(message: str) -> list[Fact]:
    """Every arithmetic fact the message's numbers give."""
    facts = []
    lowered = message.lower()
    if "context length" in lowered:
        found = _context_fact(message)
        if found is not None:
            facts.append(found)
    if "completion tokens" in lowered:
        found = _output_fact(message)
        if found is not None:
            facts.append(found)
    if "limit" in lowered:
        found = _rate_fact(message)
        if found is not None:
            facts.append(found)
    return facts


def _context_fact(message: str) -> Fact | None:
    match = _CONTEXT.search(message)
    if match is None:
        return None
    window, at_least, total = int(match.group(1)), match.group(2), int(match.group(3))
    over = total - window
    if over <= 0:
        return None
    head = (
        f"The request came to {'over ' if at_least else ''}{number(total)} tokens against the "
        f"model's {number(window)}-token context: {number(over)} tokens "
        f"({percent(over, window)}) over"
    )
    if match.group(4) is None:
        return Fact(CONTEXT_KIND, head + ".", "neutral", prefer=_TRIM_FIX)
    prompt, completion = int(match.group(4)), int(match.group(5))
    if prompt < window:
        return Fact(
            CONTEXT_KIND,
            f"{head}; the prompt ({number(prompt)}) fits, the {number(completion)} tokens "
            "asked for the completion push it over: a lower max_tokens is enough.",
            "neutral",
            prefer=_COMPLETION_FIX,
        )
    return Fact(
        CONTEXT_KIND,
        f"{head}; the prompt alone ({number(prompt)}) is over: lowering max_tokens cannot "
        "be enough, the input must shrink.",
        "neutral",
        prefer=_TRIM_FIX,
        demote=_COMPLETION_FIX,
    )


def _output_fact(message: str) -> Fact | None:
    match = _OUTPUT.search(message)
    if match is None:
        return None
    cap, asked = int(match.group(1)), int(match.group(2))
    if asked <= cap:
        return None
    return Fact(
        OUTPUT_KIND,
        f"max_tokens was {number(asked)} against the model's {number(cap)}-token output cap: "
        f"{number(asked - cap)} over; any value up to {number(cap)} works.",
    )


def _rate_fact(message: str) -> Fact | None:
    match = _RATE.search(message)
    if match is None:
        return None
    too_large = match.group(1) is not None
    kind = match.group(4).upper()
    limit, requested = int(match.group(5)), int(match.group(7))
    used = None if match.group(6) is None else int(match.group(6))
    what = "images" if kind == "IPM" else "requests" if kind in ("RPM", "RPD") else "tokens"
    article = "a" if kind.startswith("T") else "an"  # a TPM, an RPM, an IPM
    name = f"{article} {kind} limit ({_LIMIT_NAMES[kind]}) of {number(limit)}"
    if too_large or (used is None and requested > limit):
        over = requested - limit
        return Fact(
            RATE_KIND,
            f"This is {name}, and one request of {number(requested)} {what} is over the whole "
            f"limit by {number(over)} ({percent(over, limit)}): retrying can never work, only a "
            "smaller request (or a higher limit) can.",
            "neutral",
            demote=_BACKOFF_FIX,
        )
    single = "one request" if what == "requests" else f"one request of {number(requested)} {what}"
    if used is None:
        return Fact(RATE_KIND, f"This is {name}; {single} was refused.")
    over = used + requested - limit
    if used >= limit:
        over_text = ", the limit already used up"
    elif over > 0:
        over_text = f", {number(over)} ({percent(over, limit)}) over"
    else:
        over_text = ", at the limit"
    retry = _retry_after(message)
    period = "day" if kind in ("RPD", "TPD") else "minute"
    when = (
        f"retrying in {retry} works"
        if retry
        else f"a retry works once the {period}'s usage frees up"
    )
    return Fact(
        RATE_KIND,
        f"This is {name}: {number(used)} used and {single}{over_text}; {when}.",
    )


def _retry_after(message: str) -> str:
    """'Please try again in 1m30s' → '90 s'; '' when the message does not say."""
    match = _RETRY_IN.search(message)
    if match is None:
        return ""
    seconds = sum(
        float(value) * _UNIT_SECONDS[unit] for value, unit in _RETRY_PART.findall(match.group(1))
    )
    return "under a second" if seconds < 1 else span(seconds)
