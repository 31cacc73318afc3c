"""One failed request, one alert, with the detailed error's cause (issue 14).

openai-python logs httpx's status line for every attempt (`HTTP Request: POST … "HTTP/1.1 429
Too Many Requests"`), `Retrying request to …` between attempts, and then raises; the app logs the
exception with logger.exception. For every status that line can show, the daemon must open one
alert, with the cause of the exception's body, and no second alert for the status lines.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .daemon_harness import STAMP, DaemonProcess, append, wait_until, write_config


@dataclass(frozen=True)
class Failure:
    name: str
    status_line: str  # httpx's reason phrase
    attempts: int  # status lines logged (openai-python retries 408, 409, 429 and 5xx twice)
    exception: str  # the last line of the traceback: class and message with the error body
    category: str  # the cause the alert must name


def _body(message: str, type_: str, code: str | None, param: str | None = None) -> str:
    return (
        f"{{'error': {{'message': {message!r}, 'type': {type_!r}, 'param': {param!r}, "
        f"'code': {code!r}}}}}"
    )


FAILURES = [
    Failure(
        "400", "400 Bad Request", 1,
        "openai.BadRequestError: Error code: 400 - " + _body(
            "This model's maximum context length is 128000 tokens. However, your messages "
            "resulted in 131072 tokens. Please reduce the length of the messages.",
            "invalid_request_error", "context_length_exceeded", "messages"),
        "request.context_length",
    ),
    Failure(
        "401", "401 Unauthorized", 1,
        "openai.AuthenticationError: Error code: 401 - " + _body(
            "Incorrect API key provided: sk-proj-****************************abcd. You can find "
            "your API key at https://platform.openai.com/account/api-keys.",
            "invalid_request_error", "invalid_api_key"),
        "auth.invalid_api_key",
    ),
    Failure(
        "403", "403 Forbidden", 1,
        "openai.PermissionDeniedError: Error code: 403 - " + _body(
            "Country, region, or territory not supported", "request_forbidden",
            "unsupported_country_region_territory"),
        "auth.permission",
    ),
    Failure(
        "404", "404 Not Found", 1,
        "openai.NotFoundError: Error code: 404 - " + _body(
            "The model `gpt-4o-2024-13-01` does not exist or you do not have access to it.",
            "invalid_request_error", "model_not_found"),
        "request.model_not_found",
    ),
    Failure(
        "408", "408 Request Timeout", 3,
        "openai.APIStatusError: Error code: 408 - {'error': {'code': 'Timeout', 'message': "
        "'The operation was timeout.'}}",
        "network",
    ),
    Failure(
        "409", "409 Conflict", 3,
        "openai.ConflictError: Error code: 409 - " + _body(
            "Can't add messages to thread_abc123 while a run run_def456 is active.",
            "invalid_request_error", None),
        "request.invalid_parameter",
    ),
    Failure(
        "413", "413 Request Entity Too Large", 1,
        "openai.APIStatusError: Error code: 413 - " + _body(
            "Maximum content size limit (26214400) exceeded (26837452 bytes read)",
            "server_error", None),
        "request.payload",
    ),
    Failure(
        "422", "422 Unprocessable Entity", 1,
        "openai.UnprocessableEntityError: Error code: 422 - " + _body(
            "Invalid value for 'voice': expected one of alloy, echo, fable, onyx, nova, shimmer.",
            "invalid_request_error", "invalid_value", "voice"),
        "request.invalid_parameter",
    ),
    Failure(
        "429-rate", "429 Too Many Requests", 3,
        "openai.RateLimitError: Error code: 429 - " + _body(
            "Rate limit reached for gpt-4o in organization org-abcdef123456 on tokens per min "
            "(TPM): Limit 30000, Used 29000, Requested 2000. Please try again in 2s.",
            "tokens", "rate_limit_exceeded"),
        "rate_limit",
    ),
    Failure(
        "429-quota", "429 Too Many Requests", 3,
        "openai.RateLimitError: Error code: 429 - " + _body(
            "You exceeded your current quota, please check your plan and billing details.",
            "insufficient_quota", "insufficient_quota"),
        "quota.insufficient",
    ),
    Failure(
        "500", "500 Internal Server Error", 3,
        "openai.InternalServerError: Error code: 500 - " + _body(
            "The server had an error while processing your request. Sorry about that!",
            "server_error", None),
        "server.error",
    ),
    Failure(
        "502", "502 Bad Gateway", 3,
        "openai.InternalServerError: Error code: 502 - {'error': {'code': 502, 'message': "
        "'Bad gateway.', 'param': None, 'type': 'cf_bad_gateway'}}",
        "server.error",
    ),
    Failure(
        "503", "503 Service Unavailable", 3,
        "openai.InternalServerError: Error code: 503 - " + _body(
            "That model is currently overloaded with other requests. You can retry your request.",
            "server_error", None),
        "server.error",
    ),
    Failure(
        "504", "504 Gateway Timeout", 3,
        "openai.InternalServerError: Error code: 504 - {'error': {'code': 504, 'message': "
        "'Gateway timeout.', 'param': None, 'type': 'cf_gateway_timeout'}}",
        "server.error",
    ),
]


def _request_log(failure: Failure) -> list[str]:
    """What openai-python and a logger.exception write for one request that failed."""
    lines = [f"{STAMP}:01,000 INFO app.chat: asking gpt-4o for a summary"]
    for attempt in range(failure.attempts):
        lines.append(
            f"{STAMP}:01,{100 + attempt:03d} INFO httpx: HTTP Request: POST "
            f'https://api.openai.com/v1/chat/completions "HTTP/1.1 {failure.status_line}"'
        )
        if attempt < failure.attempts - 1:
            lines.append(
                f"{STAMP}:01,{200 + attempt:03d} INFO openai._base_client: Retrying request to "
                "/chat/completions in 0.4 seconds"
            )
    lines += [
        f"{STAMP}:01,900 ERROR app.chat: summary failed",
        "Traceback (most recent call last):",
        '  File "/srv/app/chat.py", line 41, in summarise',
        "    reply = client.chat.completions.create(model=\"gpt-4o\", messages=messages)",
        '  File "/srv/app/.venv/lib/python3.12/site-packages/openai/_base_client.py", line 1047, '
        "in request",
        "    raise self._make_status_error_from_response(err.response) from None",
        failure.exception,
        f"{STAMP}:02,000 INFO app.chat: next job",
    ]
    return lines


HOLD = 1.0  # hold.SECONDARY_HOLD: how long a secondary finding waits for its details


@pytest.fixture(scope="module")
def alerts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, list[dict[str, Any]]]]:
    """One daemon; each failure written to a file of its own; the notifications by file, once
    every failure has alerted and the status lines' hold has passed twice over."""
    tmp = tmp_path_factory.mktemp("one-alert")
    daemon = DaemonProcess(write_config(tmp))
    try:
        daemon.wait_ready()
        for failure in FAILURES:
            append(tmp / "logs" / f"{failure.name}.log", *_request_log(failure))
        written = time.monotonic()
        daemon.wait_for(lambda n: n["kind"] == "opened", count=len(FAILURES), timeout=15)
        # A status line that was not dropped would alert once its hold ran out: wait until it
        # would have (a time the design sets, not a guess at how long processing takes).
        wait_until(lambda: time.monotonic() - written > 3 * HOLD, what="the hold to pass")
        # A marker error written after that must alert, proving the daemon read on meanwhile.
        marker = tmp / "logs" / "marker.log"
        append(marker, f"{STAMP}:03,000 ERROR app: openai.APIConnectionError: Connection error.")
        daemon.wait_for(lambda n: any(f.endswith("marker.log") for f in n["files"]))
    finally:
        daemon.stop()
    by_file: dict[str, list[dict[str, Any]]] = {}
    for notification in daemon.notifications():
        for path in notification["files"]:
            by_file.setdefault(Path(path).stem, []).append(notification)
    yield by_file


@pytest.mark.parametrize("failure", FAILURES, ids=[f.name for f in FAILURES])
def test_one_request_is_one_alert_with_the_detailed_cause(
    failure: Failure, alerts: dict[str, list[dict[str, Any]]]
) -> None:
    """The status lines and the exception of one failed request: exactly one alert, and it names
    the cause of the exception's body (for the quota 429: quota, not a guessed rate limit)."""
    got = alerts.get(failure.name, [])
    assert [(n["kind"], n["category"], n["count"]) for n in got] == [
        ("opened", failure.category, 1)
    ], got
