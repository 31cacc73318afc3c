"""A signed webhook (`[[webhook]]`): each notification POSTed as the console's JSON object.

The body is the notification exactly as the console prints it with `format = "json"` (every
string through masking.redact_values), plus `"version": 1`, as UTF-8 JSON. Headers:

- `X-Oai400d-Delivery`: the outbox entry's ref, the same on every retry of one notification:
  delivery is at least once (a lost answer is retried), so a receiver drops a repeat by it;
- `X-Oai400d-Event`: the notification's kind (opened, updated, repeated, resolved, backlog,
  merged, acknowledged);
- with a secret, `X-Oai400d-Timestamp` (unix seconds) and `X-Oai400d-Signature:
  sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>` over the exact bytes sent, so a
  receiver can reject a forged body and, by the timestamp, a replayed one;
- the configured extra headers (an Authorization the receiver wants), which can never replace
  Content-Type or an X-Oai400d-* header.

Any 2xx is success. 408, 429, 5xx and no answer are retried (posting.Poster); 400, 413, 415 and
422 refuse this body only (MessageRejected: the next ones go); any other 4xx says the
configuration is wrong (PermanentDeliveryError: the outbox parks it until it is fixed).
Redirects are not followed. The URL's path and query, the secret and the header values never
appear in describe() or an error: a webhook URL often holds its token in the path.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import urlsplit

from oai400d.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from oai400d.masking import redact_values
from oai400d.model import Notification
from oai400d.notify import posting
from oai400d.notify.base import Attempt, Delivered, MessageRejected

VERSION = 1
DELIVERY_HEADER = "X-Oai400d-Delivery"
EVENT_HEADER = "X-Oai400d-Event"
TIMESTAMP_HEADER = "X-Oai400d-Timestamp"
SIGNATURE_HEADER = "X-Oai400d-Signature"
# The headers the webhook protocol owns: a configured header of these names is ignored.
OWN_PREFIX = "x-oai400d-"
# Answers that refuse this body (malformed, too large, wrong type, unprocessable) and not the
# webhook's configuration: that notification is given up, the next ones are sent.
BODY_REFUSED = frozenset({400, 413, 415, 422})
# HTTP's token characters (RFC 9110 5.6.2) for a header name; a value is visible ASCII, spaces
# and tabs (httpx cannot send anything else, and a line break would split the header).
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_HEADER_VALUE = re.compile(r"^[\t\x20-\x7e]*$")


def body_of(notification: Notification) -> bytes:
    """The bytes POSTed for one notification: the console's JSON object plus the version."""
    document = {**redact_values(notification.to_json()), "version": VERSION}
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`, as X-Oai400d-Signature."""
    mac = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def _is_own(header: str) -> bool:
    lowered = header.lower()
    return lowered == "content-type" or lowered.startswith(OWN_PREFIX)


class WebhookNotifier:
    """POSTs each notification, signed when a secret is set, to one `[[webhook]]` URL."""

    digest_threshold = 0  # a receiver gets every notification as its own request
    min_interval = 0.0
    edits_messages = False
    resend_interval = 0.0

    def __init__(
        self,
        name: str,
        url: str,
        secret: str = "",
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        transport: posting.Transport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # The outbox keeps each notifier's state under its name: one per [[webhook]] table.
        self.name = f"webhook:{name}"
        self.webhook = name
        self.url = url
        self._secret = secret.encode("utf-8")
        # Ours win: a configured Content-Type or X-Oai400d-* header would break the protocol.
        self._extra = {k: v for k, v in (headers or {}).items() if not _is_own(k)}
        self._clock = clock
        self._where = self.describe()
        self._poster = posting.Poster(self._where, timeout, transport=transport)

    def describe(self) -> str:
        """'the webhook NAME (scheme://host[:port])': never the path or query (a token often
        hides there), the credentials of the URL, or a header value."""
        return f"the webhook {self.webhook} ({self._origin() or 'an invalid URL'})"

    def _origin(self) -> str:
        """scheme://host[:port] of the URL, without its credentials ("" when it has none)."""
        parts = urlsplit(self.url)
        host = parts.netloc.rsplit("@", 1)[-1]
        return f"{parts.scheme}://{host}" if parts.scheme and host else ""

    # --- checks (`oai400d test-alert`) ------------------------------------------------------

    def check(self) -> str:
        """What is configured, without sending; raises PermanentDeliveryError when it is
        plainly wrong (a URL that is not http(s), a header httpx cannot send)."""
        problem = self._configuration_problem()
        if problem:
            raise PermanentDeliveryError(problem)
        signed = (
            "signed with HMAC-SHA256 (X-Oai400d-Signature)"
            if self._secret
            else "unsigned (no secret: a receiver cannot tell a forged request)"
        )
        extra = f", {len(self._extra)} extra header(s)" if self._extra else ""
        return f"POST to {self._origin()}, {signed}{extra}"

    def _configuration_problem(self) -> str:
        """What makes every request fail whatever the receiver does ("" when nothing)."""
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return (
                f"[[webhook]] {self.webhook} url is not an http(s) URL with a host: "
                "write it as https://host/path"
            )
        for header, value in self._extra.items():
            if not _HEADER_NAME.match(header):
                return (
                    f"[[webhook]] {self.webhook} headers: {header!r} is not a valid header "
                    "name (letters, digits and -)"
                )
            if not _HEADER_VALUE.match(value):
                # The value may be a token: name the header only.
                return (
                    f"[[webhook]] {self.webhook} headers: the value of {header} holds a line "
                    "break or a character other than printable ASCII"
                )
        return ""

    # --- delivery ---------------------------------------------------------------------------

    def send(self, notification: Notification, attempt: Attempt) -> Delivered:
        self._post(notification, attempt.ref)
        return Delivered()

    def send_digest(self, notifications: Sequence[Notification], attempt: Attempt) -> Delivered:
        """Each notification as its own request, in order. Each has its own delivery id, the
        same on every retry of the digest, so a receiver drops what an earlier try delivered.
        A body the receiver refuses does not hold back the rest: it is reported at the end."""
        refused: list[MessageRejected] = []
        for index, notification in enumerate(notifications, start=1):
            try:
                self._post(notification, f"{attempt.ref}/{index}")
            except MessageRejected as exc:
                refused.append(exc)
        if refused:
            more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
            raise MessageRejected(f"{refused[0]}{more}")
        return Delivered()

    def _post(self, notification: Notification, delivery: str) -> None:
        problem = self._configuration_problem()
        if problem:
            raise PermanentDeliveryError(problem)
        body = body_of(notification)
        headers = {
            **self._extra,
            "Content-Type": "application/json",
            DELIVERY_HEADER: delivery,
            EVENT_HEADER: notification.kind,
        }
        if self._secret:
            # Signed over the exact bytes sent, at the moment of sending: a retry is signed
            # anew, so a receiver's 5-minute window never refuses a late retry.
            timestamp = str(int(self._clock()))
            headers[TIMESTAMP_HEADER] = timestamp
            headers[SIGNATURE_HEADER] = signature(self._secret, timestamp, body)
        try:
            self._poster.post(self.url, body, headers)
        except DeliveryError as exc:
            raise self._translate(exc) from None

    def _translate(self, exc: DeliveryError) -> DeliveryError:
        """Posting's error, with what this webhook's answers mean and what to check; its text
        scrubbed of the URL's path and query, the secret and header values (a receiver's
        answer may echo them)."""
        said = self._scrub(str(exc))
        if isinstance(exc, TransientDeliveryError):
            return TransientDeliveryError(said, exc.retry_after)
        if not isinstance(exc, posting.Refused):  # a redirect
            return PermanentDeliveryError(f"{said} ([[webhook]] {self.webhook} url)")
        status = exc.answer.status
        if status in BODY_REFUSED:
            return MessageRejected(
                f"{said}: the receiver refused this notification's body; it is given up, the "
                "next ones are sent"
            )
        if status in (401, 403):
            check = (
                f"check [[webhook]] {self.webhook} secret (the receiver's signing secret) and "
                "headers (the credentials it expects)"
            )
        elif status in (404, 405, 410):
            check = f"check [[webhook]] {self.webhook} url (the path the receiver listens on)"
        else:
            check = f"check [[webhook]] {self.webhook} url, secret and headers"
        return PermanentDeliveryError(f"{said}: {check}")

    def _scrub(self, text: str) -> str:
        parts = urlsplit(self.url)
        hidden = [parts.path + (f"?{parts.query}" if parts.query else ""), parts.query]
        hidden += [parts.path] if len(parts.path) > 1 else []
        hidden += [parts.password or "", self._secret.decode("utf-8", "replace")]
        # Values too short to be secrets are left: hiding "1" would garble the message.
        hidden += [value for value in self._extra.values() if len(value) >= 4]
        for secret in sorted((h for h in hidden if h), key=len, reverse=True):
            text = text.replace(secret, "…")
        return text

    def close(self) -> None:
        self._poster.close()
