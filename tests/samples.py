"""Sample records that several test modules build on (a test module never imports another)."""

from __future__ import annotations

import dataclasses
from typing import Any

from oai400d.model import Alert, Finding, Notification


def finding(fingerprint: str = "fp1", path: str = "/var/log/app.log") -> Finding:
    return Finding(
        path=path,
        line=1,
        end_line=1,
        category="auth.invalid_api_key",
        rule="openai.invalid_api_key",
        severity="critical",
        title="OpenAI key rejected (401)",
        status=401,
        error_type="invalid_request_error",
        error_code="invalid_api_key",
        param=None,
        model="gpt-4o",
        request_id="req_123456",
        message="Incorrect API key provided: sk-…a1B2.",
        fingerprint=fingerprint,
        fixes=("Rotate the key", "Check the env"),
        docs=("https://x",),
        excerpt="openai.AuthenticationError: …",
    )


def opened(**changes: Any) -> Notification:
    """A typical invalid_api_key alert, as the alert stage makes it."""
    base = Notification(
        kind="opened",
        fingerprint="3f9c0a1b2d4e",
        category="auth.invalid_api_key",
        severity="critical",
        title="OpenAI rejected the API key",
        count=1204,
        first_seen="2026-11-25T10:00:01Z",
        last_seen="2026-11-25T11:00:01Z",
        files=("/var/log/myapp/worker.log", "/var/log/myapp/api.log"),
        fixes=(
            "Check that OPENAI_API_KEY in the failing process holds a current key.",
            "Look for a stale key baked into an image or a .env file.",
            "Retrying cannot help: fix the key, then restart the workers.",
        ),
        docs=(
            "https://platform.openai.com/docs/guides/error-codes",
            "https://platform.openai.com/docs/api-reference/authentication",
        ),
        excerpt="openai.AuthenticationError: Error code: 401 - {'error': {'code': 'invalid_api_key'}}",
        rule="openai.invalid_api_key",
        message="Incorrect API key provided: sk-…a1B2.",
        status=401,
        error_code="invalid_api_key",
        model="gpt-4o-mini",
        request_id="req_7f3a9c2e1b",
        host="web-1",
    )
    return dataclasses.replace(base, **changes)


def huge() -> Notification:
    """Everything too big at once: 100 KB excerpt, 500 files, long title, 30 fixes."""
    return opened(
        title="T" * 200,
        excerpt=("0123456789<>&`" * 7315)[:102_400],
        files=tuple(f"/var/log/{'deep/' * 30}app-{i}.log" for i in range(500)),
        fixes=tuple(f"fix {i}: " + "do this & that. " * 40 for i in range(30)),
        docs=tuple(f"https://example.com/{'x' * 300}/{i}" for i in range(20)),
        message="M&" * 5000,
        context="C<" * 5000,
        model="m" * 5000,
        request_id="r" * 5000,
        error_code="e" * 5000,
        host="h" * 5000,
    )


_CATEGORY = {429: "rate_limit", 500: "server.error", 400: "request.invalid_parameter"}


def request_finding(line: int, status: int | None, kind: str, path: str = "app.log") -> Finding:
    """kind: "status" (httpx's status line, at INFO), "bare" (a status alone at error level: an
    exception without a body), "notice" (a record below error level with the error's details),
    "error" (the application's error record)."""
    return Finding(
        path=path,
        line=line,
        end_line=line + (5 if kind == "error" else 0),
        category=_CATEGORY.get(status or 0, "network"),
        rule=_CATEGORY.get(status or 0, "network"),  # one rule per cause, here
        severity="warning",
        title="t",
        status=status,
        error_type=None,
        error_code=None,
        param=None,
        model=None,
        request_id=None,
        message="m",
        fingerprint=f"fp{line}",
        fixes=(),
        docs=(),
        excerpt="",
        status_only=kind in ("status", "bare"),
        quiet=kind in ("status", "notice"),
    )


def note(
    fp: str = "fp", kind: str = "opened", first_seen: str = "2026-11-25T10:00:00Z"
) -> Notification:
    """A short notification for the state DB and the outbox: `fp`, `kind`, `first_seen`."""
    return Notification(
        kind=kind,
        fingerprint=fp,
        category="rate_limit",
        severity="warning",
        title="t",
        count=3,
        first_seen=first_seen,
        last_seen="2026-11-25T10:00:01Z",
        files=("a.log",),
        fixes=("f",),
        docs=("d",),
        excerpt="e",
    )


def stored_alert(
    fingerprint: str = "fp", count: int = 3, state: str = "open", title: str = "Rate limited"
) -> Alert:
    """A short alert as the state DB keeps it."""
    return Alert(
        fingerprint=fingerprint,
        category="rate_limit",
        rule="openai.rate_limit_exceeded",
        severity="warning",
        title=title,
        state=state,
        count=count,
        first_seen=1.0,
        last_seen=2.0,
        files=("a.log",),
        message="m",
        excerpt="e",
        fixes=("f",),
        docs=("d",),
    )
