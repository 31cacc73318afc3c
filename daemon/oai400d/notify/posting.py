"""One JSON POST to a receiver (PagerDuty, Alertmanager, a webhook), its failures as
DeliveryErrors that say whether a retry can help.

The notifiers' one use of httpx (tests/test_layers.py holds them to it): a transport failure
never escapes as an httpx exception. What an answer means is each receiver's business; this
module only says the generic part, as healthchecks' transports do:

- no answer (refused, reset, timed out, DNS, TLS): TransientDeliveryError, retried;
- 408, 429 and 5xx: TransientDeliveryError, honouring Retry-After;
- 3xx: PermanentDeliveryError (redirects are not followed: the URL in the config is wrong);
- any other 4xx: `Refused` (a PermanentDeliveryError) with the receiver's own words and its
  answer (a notifier may refine it into a MessageRejected when the receiver says the message
  itself is at fault).
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from oai400d import __version__
from oai400d.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from oai400d.masking import redact

USER_AGENT = f"oai400d/{__version__}"
# How much of a receiver's answer is kept for a message (its error text, not a whole page).
ANSWER_SHOWN = 300

Transport = httpx.BaseTransport


@dataclass(frozen=True, slots=True)
class Answer:
    """A receiver's answer to one POST: status, headers (lower-case names), body text."""

    status: int
    headers: Mapping[str, str]
    text: str

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.text)
        except ValueError:
            return None

    @property
    def shown(self) -> str:
        """The body as it may appear in a message: short, on one line, secrets hidden."""
        return redact(" ".join(self.text.split())[:ANSWER_SHOWN])


class Refused(PermanentDeliveryError):
    """A 4xx other than 408 and 429: `answer` lets a notifier say what its receiver means by
    that status (a MessageRejected for a refused body, the key to check for a refused login)."""

    def __init__(self, message: str, answer: Answer) -> None:
        super().__init__(message)
        self.answer = answer


class Poster:
    """POSTs JSON bodies to one receiver with bounded timeouts and no redirects followed."""

    def __init__(
        self,
        where: str,
        timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
        transport: Transport | None = None,
    ) -> None:
        # `where` names the receiver in messages ("PagerDuty (events.pagerduty.com)"); never
        # a URL with a token in it.
        self.where = where
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            headers={"User-Agent": USER_AGENT, **(headers or {})},
            follow_redirects=False,
            transport=transport,
        )

    def post(
        self, url: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> Answer:
        """POST `body` (JSON bytes) to `url`; the answer when it is a 2xx, else the
        DeliveryError that says what happened and whether a retry can help."""
        return self._checked(self.exchange("POST", url, body, headers))

    def get(self, url: str, headers: Mapping[str, str] | None = None) -> Answer:
        """GET `url` (a receiver's status page, for `check()`); the answer when it is a 2xx,
        else the DeliveryError that says what happened and whether a retry can help."""
        return self._checked(self.exchange("GET", url, None, headers))

    def exchange(
        self,
        method: str,
        url: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """One request and whatever the receiver answered, any status: for a notifier that
        reads some answers itself (Alertmanager's 400 names the message's fault) before
        handing the rest to `status_error`. Raises only when no answer came."""
        sent = {"Content-Type": "application/json"} if body is not None else {}
        sent.update(headers or {})
        try:
            response = self._client.request(method, url, content=body, headers=sent)
        except httpx.TimeoutException as exc:
            raise TransientDeliveryError(
                f"{self.where} did not answer in time ({type(exc).__name__})"
            ) from exc
        except httpx.HTTPError as exc:  # refused, reset, DNS, TLS, a proxy's failure
            raise TransientDeliveryError(
                f"{self.where} could not be reached: {redact(str(exc)) or type(exc).__name__}"
            ) from exc
        return Answer(
            response.status_code,
            {k.lower(): v for k, v in response.headers.items()},
            response.text,
        )

    def _checked(self, answer: Answer) -> Answer:
        error = status_error(answer, self.where)
        if error is not None:
            raise error
        return answer

    def close(self) -> None:
        self._client.close()


def status_error(answer: Answer, where: str) -> DeliveryError | None:
    """The generic meaning of a non-2xx answer (None for a 2xx)."""
    status = answer.status
    if 200 <= status < 300:
        return None
    said = f": {answer.shown}" if answer.shown else ""
    if status in (408, 429) or status >= 500:
        return TransientDeliveryError(
            f"{where} answered {status}{said}", retry_after(answer.headers)
        )
    if 300 <= status < 400:
        target = answer.headers.get("location", "elsewhere")
        return PermanentDeliveryError(
            f"{where} answered {status}, a redirect to {redact(target)}: set the URL to "
            "where it leads (redirects are not followed)"
        )
    return Refused(f"{where} answered {status}{said}", answer)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Retry-After in seconds (a number or an HTTP date), None when absent or unreadable;
    capped at an hour so that a receiver's odd answer cannot silence it for a day."""
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return min(max(0.0, seconds), 3600.0)
