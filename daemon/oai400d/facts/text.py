"""Facts from an error's text alone (and the configured identity): no network, no state.

Each kind is its own module (presigned, hosts, images, limits, accounts); this one decides
which apply to an error and in which order a person reads them. The message is what is read;
the excerpt only for an image error whose message names no URL (the request body logged with
it may: facts.findings caches by message, and by excerpt only then).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from oai400d.facts.accounts import id_facts, key_fact
from oai400d.facts.hosts import host_fact
from oai400d.facts.images import data_url_facts, format_fact
from oai400d.facts.limits import limit_facts
from oai400d.facts.presigned import expiry_fact
from oai400d.facts.wording import split, urls_in
from oai400d.model import Alert, Fact, Finding

if TYPE_CHECKING:
    from oai400d.config.settings import Settings

# At most this many URLs of one message are checked (a message listing many images is rare; its
# facts would drown the alert).
MAX_URLS = 3


@dataclass(frozen=True, slots=True)
class Identity:
    """What the configuration says about who calls OpenAI, for comparing with an error's text.
    Only the last four characters of the key are ever kept."""

    key_suffix: str | None = None
    organization: str | None = None
    project: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Identity:
        """The config's `openai.api_key` (its last four characters), `openai.organization` and
        `openai.project`; None for what is not set."""
        openai = settings.openai
        key = openai.api_key.get_secret_value().strip() if openai.api_key else ""
        return cls(
            key_suffix=key[-4:] if len(key) >= 8 else None,
            organization=openai.organization.strip() or None,
            project=openai.project.strip() or None,
        )


@dataclass(frozen=True, slots=True)
class ErrorText:
    """What a fact reads: one finding's (or alert's) fields. `at`: when the error happened
    (the log line's time, else when it was read), seconds since the epoch; `at_read`: `at` is
    only when an old line without a timestamp was read (`classify` of a file), so "before this
    error" cannot be said of it."""

    category: str
    rule: str
    message: str
    excerpt: str
    status: int | None
    error_code: str | None
    model: str | None
    at: float
    at_read: bool = False

    @classmethod
    def of(cls, record: Finding | Alert, at: float, at_read: bool = False) -> ErrorText:
        """A finding's (classify) or an alert's (the daemon) fields, at the error's time."""
        return cls(
            category=record.category,
            rule=record.rule,
            message=record.message,
            excerpt=record.excerpt,
            status=record.status,
            error_code=record.error_code,
            model=record.model,
            at=at,
            at_read=at_read,
        )


def text_facts(error: ErrorText, identity: Identity = Identity()) -> tuple[Fact, ...]:
    """Every fact the text alone gives, in the order a person should read them: the image URL's
    (expiry, host, format, size), the numbers' (tokens, rate limit), then who called."""
    message = error.message
    facts: list[Fact] = []
    if about_an_image(error):
        facts.extend(_url_facts(image_urls(error), error, _format_in_question(error)))
    facts.extend(limit_facts(message))
    refused = key_fact(message, identity.key_suffix)
    if refused is not None:
        facts.append(refused)
    facts.extend(
        id_facts(
            message,
            identity.organization,
            identity.project,
            about_accounts=error.category.startswith("auth."),
        )
    )
    return tuple(facts)


def about_an_image(error: ErrorText | Finding) -> bool:
    """URLs are checked as images OpenAI fetched only when the error is about one: a private
    host in a connection error's message is the client's own base URL, fine to be private."""
    return (
        error.category == "request.image"
        or "image" in error.rule
        or "downloading" in error.message.lower()
    )


def image_urls(error: ErrorText | Finding) -> list[str]:
    """The URLs an image error names: its message's, else its excerpt's other than OpenAI's own
    (a logged request body names the endpoint too)."""
    found = urls_in(error.message)
    if not found:
        found = [url for url in urls_in(error.excerpt) if not _openai_endpoint(url)]
    return found[:MAX_URLS]


def _openai_endpoint(url: str) -> bool:
    host = url.split("/", 3)[2].split(":", 1)[0].lower() if url.count("/") >= 2 else ""
    return host.endswith(("openai.com", "openai.azure.com"))


def _format_in_question(error: ErrorText) -> bool:
    """The rule is about the image's format or bytes (invalid_image_format, image_data_invalid,
    image_file_mimetype…): then an accepted format is worth saying too."""
    return any(word in error.rule for word in ("format", "mimetype", "image_data", "image_file"))


def _url_facts(urls: list[str], error: ErrorText, format_in_question: bool) -> list[Fact]:
    facts: list[Fact] = []
    for url in urls:
        if url.startswith("data:"):
            facts.extend(data_url_facts(url))
            continue
        parts = split(url)
        if parts is None:
            continue
        checks = (
            expiry_fact(parts, error.at, error.at_read),
            host_fact(parts),
            format_fact(parts, say_accepted=format_in_question),
        )
        for fact in checks:
            if fact is not None:
                facts.append(fact)
    return facts
