"""Presigned URLs' expiry against the error's time: S3 (SigV4, SigV2), GCS (V4, V2), Azure SAS,
CloudFront (canned `Expires`, a custom policy's `DateLessThan`).

Only the query's dates are read; signatures and credentials are never shown (wording.shown).
"""

from __future__ import annotations

import base64
import binascii
import calendar
import json
import time
from collections.abc import Mapping
from urllib.parse import SplitResult, parse_qsl

from oai400d.facts.wording import shown, span
from oai400d.model import Fact
from oai400d.timestamps import iso, parse_iso

KIND = "presigned_expiry"

# Words of invalid_image_url's fixes: an expired link points at the presigned-link fix; a valid
# one makes that fix the least likely.
_PRESIGNED_FIX = ("presigned",)
_LAST_SECOND = 253_402_300_799  # 9999-12-31T23:59:59Z, the last time iso() can write


def expiry_fact(parts: SplitResult, at: float, at_read: bool = False) -> Fact | None:
    """The fact about this URL's expiry, if its query carries one of the known signatures.
    `at_read`: `at` is when the line was read, not its own time: expired by then says nothing
    of the error's time (it may have failed while the link was valid)."""
    if not parts.query:
        return None
    query = {name.lower(): value for name, value in parse_qsl(parts.query)}
    found = _expiry(query)
    if found is None:
        return None
    scheme, expires = found
    if not 0 < expires < _LAST_SECOND:  # (a number no clock reaches says nothing)
        return None
    where = shown(parts)
    if expires <= at and at_read:
        return Fact(
            KIND,
            f"The presigned {scheme} URL for {where} expired at {iso(expires)}, "
            f"{span(at - expires)} before this log was read (its line has no time to compare "
            "with).",
        )
    if expires <= at:
        return Fact(
            KIND,
            f"The presigned {scheme} URL for {where} expired at {iso(expires)}, "
            f"{span(at - expires)} before this error.",
            "supports",
            prefer=_PRESIGNED_FIX,
        )
    after = "this log was read" if at_read else "this error"
    return Fact(
        KIND,
        f"The presigned {scheme} URL for {where} was still valid until {iso(expires)} "
        f"({span(expires - at)} after {after}): its expiry is not the cause.",
        "rules_out",
        demote=_PRESIGNED_FIX,
    )


def _expiry(query: Mapping[str, str]) -> tuple[str, float] | None:
    """(the signature scheme as a person names it, when the URL stops working)."""
    if "x-amz-date" in query and "x-amz-expires" in query:
        start = _compact_time(query["x-amz-date"])
        lifetime = _integer(query["x-amz-expires"])
        if start is not None and lifetime is not None:
            return "S3 (SigV4)", start + lifetime
    if "x-goog-date" in query and "x-goog-expires" in query:
        start = _compact_time(query["x-goog-date"])
        lifetime = _integer(query["x-goog-expires"])
        if start is not None and lifetime is not None:
            return "GCS (V4)", start + lifetime
    if "se" in query and ("sig" in query or "sv" in query):
        try:
            return "Azure SAS", parse_iso(query["se"])
        except ValueError:
            return None
    if "policy" in query and "key-pair-id" in query:
        ends = _cloudfront_policy_end(query["policy"])
        return None if ends is None else ("CloudFront (custom policy)", ends)
    if "expires" in query:
        ends = _integer(query["expires"])
        if ends is None:
            return None
        if "awsaccesskeyid" in query:
            return "S3 (SigV2)", ends
        if "googleaccessid" in query:
            return "GCS (V2)", ends
        if "key-pair-id" in query:
            return "CloudFront", ends
    return None


def _compact_time(text: str) -> float | None:
    """SigV4's and GCS V4's `20250805T085318Z` → epoch seconds."""
    try:
        return calendar.timegm(time.strptime(text, "%Y%m%dT%H%M%SZ"))
    except ValueError:
        return None


def _integer(text: str) -> int | None:
    return int(text) if text.isdigit() and len(text) <= 12 else None


def _cloudfront_policy_end(policy: str) -> float | None:
    """A custom policy's `DateLessThan` (CloudFront's URL-safe base64: - _ ~ for + = /)."""
    raw = policy.replace("-", "+").replace("_", "=").replace("~", "/")
    try:
        document = json.loads(base64.b64decode(raw + "=" * (-len(raw) % 4)))
        statement = document["Statement"][0]
        ends = statement["Condition"]["DateLessThan"]["AWS:EpochTime"]
    except (binascii.Error, ValueError, KeyError, IndexError, TypeError):
        return None
    return float(ends) if isinstance(ends, int | float) else None
