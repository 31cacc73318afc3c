"""Facts from an error's text alone (and the configured identity): no network, no state."""

from __future__ import annotations

from dataclasses import dataclass

from oai400d.model import Fact


@dataclass(frozen=True, slots=True)
class Identity:
    """What the configuration says about who calls OpenAI, for comparing with an error's text.
    Only the last four characters of the key are ever kept."""

    key_suffix: str | None = None
    organization: str | None = None
    project: str | None = None


@dataclass(frozen=True, slots=True)
class ErrorText:
    """What a fact reads: one finding's (or alert's) fields. `at`: when the error happened
    (the log line's time, else when it was read), seconds since the epoch."""

    category: str
    rule: str
    message: str
    excerpt: str
    status: int | None
    error_code: str | None
    model: str | None
    at: float


def text_facts(error: ErrorText, identity: Identity = Identity()) -> tuple[Fact, ...]:
    """Every fact the text alone gives, in the order a person should read them."""
    return ()
