#!/usr/bin/env python3
"""Generate a deterministic application log for benchmarking `oai400d classify`.

The same --shape, --seed and --size give the same bytes on every run, and a smaller file is a
prefix (up to the last whole record) of a bigger one. Memory stays bounded: the log is written in
chunks of records picked from pools of pre-rendered records, and only the timestamps are
substituted per chunk (one simulated second per chunk).

Shapes (--shape):
  mixed         (default) per chunk of 1000 records: 1 OpenAI error event (0.1 %) in one of
                many formats, 5 look-alikes (0.5 %), the rest ordinary web-app lines.
  openai-heavy  an OpenAI-heavy Python service: ~9 % httpx INFO request lines to api.openai.com,
                ~20 % structlog JSON records (llm.call, request logs), ~27 % openai._base_client
                and httpcore DEBUG chatter, retry INFO lines, app lines; per chunk of 750 records
                (~1000 lines) 1 OpenAI error event and 4 look-alikes (Stripe, Anthropic, Groq,
                Gemini, DeepSeek, nginx, unrelated tracebacks).
  jsonl         JSON lines only (structlog, pino, zap, winston, python-json-logger, Cloud
                Logging): per 1000 records 1 whose nested field holds an OpenAI error (error
                string, err object, escaped body or traceback) and 5 error-level look-alikes.
  access-heavy  the mixed shape with 20 % of the records the application's own 4xx/5xx request
                lines (uvicorn, nginx, gunicorn, JSON, structlog, gin, logfmt, pino-http, Rails),
                none naming OpenAI, that fire the classifier's status prefilter.
  storm         an error storm: per 1000 records 700 OpenAI error events repeating a few dozen
                distinct ones (rate limits with varying numbers, 5xx, timeouts, connection
                errors), 5 look-alikes, the rest ordinary lines.

Each OpenAI error event is written so that it should give exactly one finding. A sidecar
PATH.meta.json records the counts (by intended category and by format) and the share of lines
by kind and containing the literals "openai", "error", "_error".

    python bench/gen_log.py --size 1G --out /tmp/oai400d-bench/mixed-1g.log
    python bench/gen_log.py --shape openai-heavy --size 1G  # openai-heavy-1g.log in the work dir
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchlib import DEFAULT_WORK_DIR, human_bytes, mb_per_s, parse_size

GENERATOR_VERSION = 3  # 3: access-heavy, storm; 2: openai-heavy, jsonl; earlier bytes unchanged
DEFAULT_SEED = 400
RECORDS_PER_CHUNK = 1000
LOOKALIKES_PER_CHUNK = 5
NORMAL_POOL = 40_000
START = datetime(2024, 5, 1, 0, 0, 0, tzinfo=UTC)

# Placeholders replaced per chunk (bytes.replace is a C loop over the whole chunk).
PY_TS = "@T@"  # 2024-05-01 12:00:03           (Python logging, before ",mmm")
ISO_TS = "@I@"  # 2024-05-01T12:00:03          (JSON lines, node; before ".mmmZ")
CLF_TS = "@C@"  # 01/May/2024:12:00:03 +0000  (nginx access log)
NGX_TS = "@N@"  # 2024/05/01 12:00:03          (nginx error log)


@dataclass(frozen=True, eq=False)  # hashed by identity: counted per chunk
class Record:
    data: bytes  # one or more complete lines, with placeholders
    category: str  # intended taxonomy category ("" for normal lines, "not_openai" look-alikes)
    fmt: str


# --------------------------------------------------------------------------- small helpers


def hexid(rng: random.Random, n: int) -> str:
    return f"{rng.getrandbits(4 * n):0{n}x}"


def alnum(rng: random.Random, n: int) -> str:
    chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(rng.choice(chars) for _ in range(n))


def py_head(rng: random.Random, level: str, logger: str) -> str:
    return f"{PY_TS},{rng.randrange(1000):03d} {level} {logger}:"


def iso(rng: random.Random) -> str:
    return f"{ISO_TS}.{rng.randrange(1000):03d}Z"


def ip(rng: random.Random) -> str:
    return f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


MODELS = ["gpt-4o-mini", "gpt-4o", "gpt-4.1", "o3-mini", "gpt-4-turbo", "text-embedding-3-small"]
APP_LOGGERS = ["app.llm", "app.worker", "app.summarize", "app.chat", "app.tasks.enrich"]
PATHS = [
    "/api/v1/orders/{n}",
    "/api/v1/users/{n}/profile",
    "/api/v1/products?page={n}",
    "/api/v1/cart/{n}/items",
    "/static/js/app.{h}.js",
    "/health",
    "/api/v1/search?q=item{n}",
    "/api/v1/chat/{n}/messages",
    "/login",
    "/api/v1/invoices/{n}.pdf",
]
TABLES = ["orders", "users", "products", "invoices", "sessions", "cart_items", "audit_log"]


def url_path(rng: random.Random) -> str:
    return rng.choice(PATHS).format(n=rng.randrange(1, 99999), h=hexid(rng, 8))


# --------------------------------------------------------------------------- normal lines


def normal_record(rng: random.Random) -> str:
    kind = rng.choices(
        ["uvicorn", "app_http", "debug", "sql", "pg", "jsonl", "celery", "node", "warn", "dump"],
        weights=[20, 20, 12, 14, 4, 16, 6, 6, 1.6, 0.4],
    )[0]
    rid = hexid(rng, 16)
    if kind == "uvicorn":
        status = rng.choices([200, 201, 204, 301, 304, 404], weights=[80, 6, 4, 2, 6, 2])[0]
        method = rng.choice(["GET", "GET", "GET", "POST", "PUT", "DELETE"])
        return (
            f"{py_head(rng, 'INFO', 'uvicorn.access')} {ip(rng)}:{rng.randrange(30000, 65000)}"
            f' - "{method} {url_path(rng)} HTTP/1.1" {status}'
        )
    if kind == "app_http":
        method = rng.choice(["GET", "GET", "POST", "PATCH"])
        return (
            f"{py_head(rng, 'INFO', 'app.http')} {method} {url_path(rng)} 200 "
            f"{rng.uniform(0.4, 250):.1f}ms user={rng.randrange(1, 50000)} rid={rid}"
        )
    if kind == "debug":
        return rng.choice(
            [
                f"{py_head(rng, 'DEBUG', 'app.cache')} cache hit key=session:{hexid(rng, 24)} "
                f"ttl={rng.choice([60, 300, 3600])}",
                f"{py_head(rng, 'DEBUG', 'app.cache')} cache miss "
                f"key=product:{rng.randrange(99999)}",
                f"{py_head(rng, 'DEBUG', 'app.auth')} token validated sub={rng.randrange(50000)} "
                f"scopes=read,write exp_in={rng.randrange(60, 3600)}s",
                f"{py_head(rng, 'DEBUG', 'app.features')} flag new_checkout=on for "
                f"user={rng.randrange(50000)}",
            ]
        )
    if kind == "sql":
        table = rng.choice(TABLES)
        stmt = rng.choice(
            [
                f"SELECT {table}.id, {table}.created_at, {table}.payload FROM {table} "
                f"WHERE {table}.user_id = %(user_id_1)s ORDER BY {table}.created_at DESC LIMIT 50",
                f"UPDATE {table} SET updated_at=%(updated_at)s WHERE {table}.id = %(id_1)s",
                f"INSERT INTO {table} (id, user_id, payload) VALUES (%(id)s, %(user_id)s, "
                f"%(payload)s)",
                f"SELECT count(*) AS count_1 FROM {table} WHERE {table}.status = %(status_1)s",
            ]
        )
        head = py_head(rng, "DEBUG", "sqlalchemy.engine.Engine")
        return f"{head} [{rng.uniform(0.1, 40):.2f} ms] {stmt}"
    if kind == "pg":
        return (
            f"{PY_TS}.{rng.randrange(1000):03d} UTC [{rng.randrange(100, 9999)}] LOG:  duration: "
            f"{rng.uniform(0.5, 900):.3f} ms  statement: SELECT * FROM {rng.choice(TABLES)} "
            f"WHERE id = {rng.randrange(1, 999999)}"
        )
    if kind == "jsonl":
        rec = {
            "ts": iso(rng),
            "level": rng.choice(["info", "info", "info", "debug"]),
            "logger": rng.choice(["api", "api.checkout", "worker", "scheduler"]),
            "msg": rng.choice(
                ["request completed", "job finished", "cache refreshed", "webhook delivered"]
            ),
            "method": rng.choice(["GET", "POST"]),
            "path": url_path(rng),
            "status": 200,
            "duration_ms": rng.randrange(1, 900),
            "request_id": rid,
            "user_agent": rng.choice(
                ["Mozilla/5.0 (X11; Linux x86_64)", "okhttp/4.12.0", "python-httpx/0.27.0"]
            ),
        }
        return json.dumps(rec, separators=(",", ":"))
    if kind == "celery":
        return (
            f"{py_head(rng, 'INFO', 'celery.app.trace')} Task "
            f"{rng.choice(['tasks.send_email', 'tasks.resize_image', 'tasks.sync_crm'])}"
            f"[{hexid(rng, 8)}-{hexid(rng, 4)}-{hexid(rng, 4)}-{hexid(rng, 4)}-{hexid(rng, 12)}]"
            f" succeeded in {rng.uniform(0.001, 3):.4f}s: None"
        )
    if kind == "node":
        return (
            f"{iso(rng)} info: {rng.choice(['GET', 'POST'])} {url_path(rng)} 200 "
            f"{rng.randrange(1, 300)}ms - {rng.randrange(100, 90000)}b"
        )
    if kind == "warn":
        return rng.choice(
            [
                f"{py_head(rng, 'WARNING', 'app.payments')} retrying webhook delivery "
                f"attempt={rng.randrange(2, 5)} endpoint=https://hooks.example.com/{hexid(rng, 8)}",
                f"{py_head(rng, 'WARNING', 'app.http')} slow request {url_path(rng)} took "
                f"{rng.uniform(1, 9):.2f}s",
            ]
        )
    # "dump": an occasional long line (1-6 KB), like a logged request payload
    items = [
        {
            "sku": f"SKU-{rng.randrange(99999):05d}",
            "qty": rng.randrange(1, 5),
            "note": alnum(rng, 40),
        }
        for _ in range(rng.randrange(10, 60))
    ]
    return f"{py_head(rng, 'DEBUG', 'app.checkout')} payload={json.dumps({'items': items})}"


# --------------------------------------------------------------------------- OpenAI errors


@dataclass(frozen=True)
class ApiError:
    category: str
    status: int
    py_cls: str  # openai-python v1 class
    etype: str | None
    code: str | None
    param: str | None
    message: str
    azure: bool = False  # Azure body shape: {'error': {'code', 'message'}}


PY_CLS = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    413: "APIStatusError",
    429: "RateLimitError",
    500: "InternalServerError",
    502: "InternalServerError",
    503: "InternalServerError",
}
NODE_CLS = {**PY_CLS, 413: "APIError"}
REASON = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    413: "Request Entity Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def api_errors(rng: random.Random) -> list[ApiError]:
    m = rng.choice(MODELS)
    img = f"https://cdn.example.com/uploads/{rng.randrange(99999)}.png"
    org = f"org-FAKE{alnum(rng, 12)}"
    e = ApiError
    ir = "invalid_request_error"
    used, req, wait = rng.randrange(190000, 200000), rng.randrange(500, 9000), rng.randrange(900)
    # fmt: off
    return [
        e("auth.invalid_api_key", 401, PY_CLS[401], ir, "invalid_api_key", None,
          "Incorrect API key provided: sk-proj-********************FAKE. You can find your "
          "API key at https://platform.openai.com/account/api-keys."),
        e("auth.invalid_api_key", 401, PY_CLS[401], ir, None, None,
          "You didn't provide an API key. You need to provide your API key in an Authorization "
          "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."),
        e("auth.invalid_api_key", 401, PY_CLS[401], None, "401", None,
          "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
          "provide a valid key for an active subscription and use a correct regional API "
          "endpoint for your resource.", azure=True),
        e("auth.organization", 401, PY_CLS[401], ir, "mismatched_organization", None,
          "OpenAI-Organization header should match organization for API key"),
        e("auth.organization", 401, PY_CLS[401], ir, "invalid_organization", None,
          f"No such organization: {org}."),
        e("auth.permission", 403, PY_CLS[403], "request_forbidden",
          "unsupported_country_region_territory", None,
          "Country, region, or territory not supported"),
        e("auth.permission", 403, PY_CLS[403], ir, "model_not_found", None,
          f"Project `proj_FAKE{alnum(rng, 10)}` does not have access to model `{m}`"),
        e("quota.insufficient", 429, PY_CLS[429], "insufficient_quota", "insufficient_quota", None,
          "You exceeded your current quota, please check your plan and billing details. For more "
          "information on this error, read the docs: "
          "https://platform.openai.com/docs/guides/error-codes/api-errors."),
        e("quota.insufficient", 400, PY_CLS[400], ir, "billing_hard_limit_reached", None,
          "Billing hard limit has been reached"),
        e("rate_limit", 429, PY_CLS[429], "tokens", "rate_limit_exceeded", None,
          f"Rate limit reached for {m} in organization {org} on tokens per min (TPM): "
          f"Limit 200000, Used {used}, Requested {req}. Please try again in {wait}ms. Visit "
          "https://platform.openai.com/account/rate-limits to learn more."),
        e("rate_limit", 429, PY_CLS[429], "requests", "rate_limit_exceeded", None,
          f"Rate limit reached for {m} in organization {org} on requests per min (RPM): "
          f"Limit 500, Used 500, Requested 1. Please try again in {wait}ms. "
          "Visit https://platform.openai.com/account/rate-limits to learn more."),
        e("request.image", 400, PY_CLS[400], ir, "invalid_image_url", None,
          f"Error while downloading {img}."),
        e("request.image", 400, PY_CLS[400], ir, "invalid_image_url", None,
          f"Timeout while downloading {img}."),
        e("request.image", 400, PY_CLS[400], ir, "invalid_image_format", None,
          "You uploaded an unsupported image. Please make sure your image has of one the "
          "following formats: ['png', 'jpeg', 'gif', 'webp']."),
        e("request.context_length", 400, PY_CLS[400], ir, "context_length_exceeded", "messages",
          f"This model's maximum context length is 128000 tokens. However, your messages "
          f"resulted in {128000 + req} tokens. Please reduce the length of the messages."),
        e("request.unsupported_parameter", 400, PY_CLS[400], ir, "unsupported_parameter",
          "max_tokens",
          "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
          "'max_completion_tokens' instead."),
        e("request.unsupported_parameter", 400, PY_CLS[400], ir, "unsupported_value",
          "temperature",
          "Unsupported value: 'temperature' does not support 0.7 with this model. Only the "
          "default (1) value is supported."),
        e("request.unsupported_parameter", 400, PY_CLS[400], ir, None, None,
          "This model does not support specifying dimensions."),
        e("request.invalid_parameter", 400, PY_CLS[400], ir, "missing_required_parameter",
          "messages[1].content", "Missing required parameter: 'messages[1].content'."),
        e("request.invalid_parameter", 400, PY_CLS[400], ir, "invalid_type",
          "messages[0].content[0]",
          "Invalid type for 'messages[0].content[0]': expected an object, but got a string "
          "instead."),
        e("request.invalid_parameter", 400, PY_CLS[400], ir, None, "messages.[3].role",
          "An assistant message with 'tool_calls' must be followed by tool messages responding "
          "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
          f"call_{alnum(rng, 24)}"),
        e("request.model_not_found", 404, PY_CLS[404], ir, "model_not_found", None,
          "The model `gpt-5-turbo-preview` does not exist or you do not have access to it."),
        e("request.model_not_found", 404, PY_CLS[404], None, "DeploymentNotFound", None,
          "The API deployment for this resource does not exist. If you created the deployment "
          "within the last 5 minutes, please wait a moment and try again.", azure=True),
        e("request.content_policy", 400, PY_CLS[400], ir, "content_policy_violation", None,
          "Your request was rejected as a result of our safety system. Your prompt may contain "
          "text that is not allowed by our safety system."),
        e("request.content_policy", 400, PY_CLS[400], None, "content_filter", "prompt",
          "The response was filtered due to the prompt triggering Azure OpenAI's content "
          "management policy. Please modify your prompt and retry.", azure=True),
        e("request.payload", 413, PY_CLS[413], ir, None, None, "Request Entity Too Large"),
        e("server.error", 500, PY_CLS[500], "server_error", None, None,
          "The server had an error while processing your request. Sorry about that!"),
        e("server.error", 503, PY_CLS[503], "server_error", None, None,
          "The engine is currently overloaded, please try again later."),
    ]
    # fmt: on


def body_dict(err: ApiError) -> dict[str, dict[str, str | None]]:
    if err.azure:
        inner: dict[str, str | None] = {"code": err.code, "message": err.message}
        if err.param:
            inner["param"] = err.param
        return {"error": inner}
    return {
        "error": {"message": err.message, "type": err.etype, "param": err.param, "code": err.code}
    }


def py_exc_line(err: ApiError) -> str:
    return f"openai.{err.py_cls}: Error code: {err.status} - {body_dict(err)!r}"


SITE = "/srv/app/.venv/lib/python3.11/site-packages"


def py_frames(rng: random.Random) -> list[str]:
    fn = rng.choice(["summarize", "answer", "embed_batch", "classify_ticket", "describe_image"])
    return [
        "Traceback (most recent call last):",
        f'  File "/srv/app/app/{rng.choice(["worker", "llm", "tasks/enrich"])}.py", '
        f"line {rng.randrange(20, 400)}, in {fn}",
        "    resp = client.chat.completions.create(model=model, messages=messages)",
        f'  File "{SITE}/openai/_utils/_utils.py", line 279, in wrapper',
        "    return func(*args, **kwargs)",
        f'  File "{SITE}/openai/resources/chat/completions.py", line 859, in create',
        "    return self._post(",
        f'  File "{SITE}/openai/_base_client.py", line 1280, in post',
        "    return cast(ResponseT, self.request(cast_to, opts, stream=stream, "
        "stream_cls=stream_cls))",
        f'  File "{SITE}/openai/_base_client.py", line 957, in request',
        "    return self._request(",
        f'  File "{SITE}/openai/_base_client.py", line 1061, in _request',
        "    raise self._make_status_error_from_response(err.response) from None",
    ]


def fmt_py_v1(rng: random.Random, err: ApiError) -> list[str]:
    return [f"{py_head(rng, 'ERROR', rng.choice(APP_LOGGERS))} {py_exc_line(err)}"]


def fmt_py_v1_traceback(rng: random.Random, err: ApiError) -> list[str]:
    head = f"{py_head(rng, 'ERROR', rng.choice(APP_LOGGERS))} chat completion failed"
    return [head, *py_frames(rng), py_exc_line(err)]


def fmt_py_0x_logfmt(rng: random.Random, err: ApiError) -> list[str]:
    return [
        f"{py_head(rng, 'INFO', 'openai')} error_code={err.code} error_message={err.message!r} "
        f"error_param={err.param} error_type={err.etype} message='OpenAI API error received' "
        "stream_error=False"
    ]


def fmt_node_stack(rng: random.Random, err: ApiError) -> list[str]:
    nm = "/app/node_modules/openai"
    req = f"req_{hexid(rng, 32)}"
    q = json.dumps  # JS-ish quoting is close enough to util.inspect for a benchmark
    return [
        f"{iso(rng)} error: {NODE_CLS[err.status]}: {err.status} {err.message}",
        f"    at APIError.generate ({nm}/error.js:45:20)",
        f"    at OpenAI.makeStatusError ({nm}/core.js:302:33)",
        f"    at OpenAI.makeRequest ({nm}/core.js:346:30)",
        "    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)",
        f"    at async handler (/app/dist/routes/chat.js:{rng.randrange(10, 200)}:22) {{",
        f"  status: {err.status},",
        "  headers: {",
        f"    'x-request-id': '{req}',",
        "    'content-type': 'application/json'",
        "  },",
        f"  request_id: '{req}',",
        f"  error: {{ message: {q(err.message)}, type: {q(err.etype)}, param: {q(err.param)},"
        f" code: {q(err.code)} }},",
        f"  code: {q(err.code)},",
        f"  param: {q(err.param)},",
        f"  type: {q(err.etype)}",
        "}",
    ]


def fmt_raw_json(rng: random.Random, err: ApiError) -> list[str]:
    return [
        f"{py_head(rng, 'ERROR', rng.choice(APP_LOGGERS))} OpenAI API returned "
        f"{err.status}: {json.dumps(body_dict(err))}"
    ]


def fmt_pretty_json(rng: random.Random, err: ApiError) -> list[str]:
    pretty = json.dumps(body_dict(err), indent=2).splitlines()
    host = "https://api.openai.com/v1/chat/completions"
    return [
        f"{py_head(rng, 'ERROR', rng.choice(APP_LOGGERS))} POST {host} failed with "
        f"{err.status}, response body: {pretty[0]}",
        *pretty[1:],
    ]


def fmt_jsonl(rng: random.Random, err: ApiError) -> list[str]:
    rec = {
        "ts": iso(rng),
        "level": "error",
        "logger": rng.choice(APP_LOGGERS),
        "msg": "openai request failed",
        "exc_type": f"openai.{err.py_cls}",
        "error": f"Error code: {err.status} - {body_dict(err)!r}",
        "model": rng.choice(MODELS),
        "request_id": hexid(rng, 16),
    }
    return [json.dumps(rec)]


def fmt_litellm(rng: random.Random, err: ApiError) -> list[str]:
    return [
        f"{py_head(rng, 'ERROR', 'LiteLLM')} litellm.exceptions.{err.py_cls}: "
        f"litellm.{err.py_cls}: OpenAIException - {json.dumps(body_dict(err))}"
    ]


def fmt_azure(rng: random.Random, err: ApiError) -> list[str]:
    res = rng.choice(["contoso-eastus", "acme-prod-swe", "fabrikam-ai"])
    dep = rng.choice(["gpt4o-prod", "chat-main", "embeddings"])
    return [
        f"{py_head(rng, 'ERROR', rng.choice(APP_LOGGERS))} Azure OpenAI call to "
        f"https://{res}.openai.azure.com/openai/deployments/{dep}/chat/completions"
        f"?api-version=2024-06-01 failed: {py_exc_line(err)}"
    ]


STATUS_FORMATS: list[tuple[str, Callable[[random.Random, ApiError], list[str]]]] = [
    ("openai-python v1", fmt_py_v1),
    ("openai-python v1 traceback", fmt_py_v1_traceback),
    ("openai-python 0.x logfmt", fmt_py_0x_logfmt),
    ("openai-node stack", fmt_node_stack),
    ("raw JSON body", fmt_raw_json),
    ("pretty JSON body", fmt_pretty_json),
    ("JSON-lines log", fmt_jsonl),
    ("LiteLLM", fmt_litellm),
]

HTTPX_CASES = [
    (429, "rate_limit"),
    (500, "server.error"),
    (502, "server.error"),
    (503, "server.error"),
]


def fmt_httpx(rng: random.Random, status: int) -> list[str]:
    endpoint = rng.choice(["chat/completions", "embeddings", "responses"])
    return [
        f"{py_head(rng, 'INFO', 'httpx')} HTTP Request: POST https://api.openai.com/v1/{endpoint}"
        f' "HTTP/1.1 {status} {REASON[status]}"'
    ]


def network_events(rng: random.Random) -> list[tuple[str, list[str]]]:
    head = f"{py_head(rng, 'ERROR', rng.choice(APP_LOGGERS))} request to OpenAI failed"
    hx = f"{SITE}/httpx/_transports/default.py"
    chained = [
        head,
        "Traceback (most recent call last):",
        f'  File "{hx}", line 72, in map_httpcore_exceptions',
        "    yield",
        f'  File "{hx}", line 236, in handle_request',
        "    resp = self._pool.handle_request(req)",
        "httpcore.ConnectError: [Errno -2] Name or service not known",
        "",
        "The above exception was the direct cause of the following exception:",
        "",
        "Traceback (most recent call last):",
        f'  File "{SITE}/openai/_base_client.py", line 989, in _request',
        "    response = self._client.send(",
        f'  File "{hx}", line 235, in handle_request',
        "    with map_httpcore_exceptions():",
        "httpx.ConnectError: [Errno -2] Name or service not known",
        "",
        "The above exception was the direct cause of the following exception:",
        "",
        *py_frames(rng)[:-2],
        f'  File "{SITE}/openai/_base_client.py", line 1021, in _request',
        "    raise APIConnectionError(request=request) from err",
        "openai.APIConnectionError: Connection error.",
    ]
    timeout = [
        f"{py_head(rng, 'ERROR', rng.choice(APP_LOGGERS))} openai.APITimeoutError: "
        "Request timed out."
    ]
    node = [
        f"{iso(rng)} error: APIConnectionError: Connection error.",
        "    at OpenAI.makeRequest (/app/node_modules/openai/core.js:330:19)",
        "    at process.processTicksAndRejections (node:internal/process/task_queues:95:5) {",
        "  status: undefined,",
        "  headers: undefined,",
        "  error: undefined,",
        "  cause: FetchError: request to https://api.openai.com/v1/chat/completions failed, "
        "reason: read ECONNRESET",
        "}",
    ]
    return [
        ("network traceback", chained),
        ("openai-python v1", timeout),
        ("openai-node stack", node),
    ]


def evidence_pool(rng: random.Random, variants: int = 4) -> dict[str, list[Record]]:
    """Pre-rendered OpenAI error events, grouped by intended category."""
    pool: dict[str, list[Record]] = {}

    def add(category: str, fmt: str, lines: list[str]) -> None:
        pool.setdefault(category, []).append(Record(lines_to_bytes(lines), category, fmt))

    for _ in range(variants):
        for err in api_errors(rng):
            for name, fmt in STATUS_FORMATS:
                add(err.category, name, fmt(rng, err))
            if err.azure:
                add(err.category, "Azure OpenAI", fmt_azure(rng, err))
        for status, category in HTTPX_CASES:
            add(category, "httpx request line", fmt_httpx(rng, status))
        for name, lines in network_events(rng):
            add("network", name, lines)
    return pool


# --------------------------------------------------------------------------- look-alikes


def lookalike_record(rng: random.Random) -> tuple[str, list[str]]:
    kind = rng.randrange(14)
    if kind == 0:
        return "httpx 200 OK", [
            f"{py_head(rng, 'INFO', 'httpx')} HTTP Request: POST "
            'https://api.openai.com/v1/chat/completions "HTTP/1.1 200 OK"'
        ]
    if kind == 1:
        return "openai retry INFO", [
            f"{py_head(rng, 'INFO', 'openai._base_client')} Retrying request to "
            f"/chat/completions in {rng.uniform(0.2, 8):.6f} seconds"
        ]
    if kind == 2:
        return "INFO mentions openai", [
            f"{py_head(rng, 'INFO', 'app.llm')} openai client ready model={rng.choice(MODELS)} "
            "timeout=60s max_retries=2 base_url=https://api.openai.com/v1"
        ]
    if kind == 3:
        return "stripe 400", [
            f"{py_head(rng, 'ERROR', 'app.billing')} stripe.error.InvalidRequestError: Request "
            f"req_{alnum(rng, 14)}: No such customer: 'cus_{alnum(rng, 14)}'"
        ]
    if kind == 4:
        return "stripe 429", [
            f"{py_head(rng, 'WARNING', 'app.billing')} stripe.error.RateLimitError: Request "
            f"req_{alnum(rng, 14)}: Too Many Requests"
        ]
    if kind == 5:
        status = rng.choice([429, 500, 502, 503])
        return "nginx access", [
            f'{ip(rng)} - - [{CLF_TS}] "POST /api/v1/chat HTTP/1.1" {status} '
            f'{rng.randrange(150, 600)} "-" "python-requests/2.31.0"'
        ]
    if kind == 6:
        return "nginx error", [
            f"{NGX_TS} [error] 31#31: *{rng.randrange(99999)} upstream timed out "
            "(110: Connection timed out) while reading response header from upstream, client: "
            f'{ip(rng)}, server: api.example.com, request: "POST /api/v1/chat HTTP/1.1", '
            'upstream: "http://10.0.2.4:8000/api/v1/chat"'
        ]
    if kind == 7:
        return "boto3 ClientError", [
            f"{py_head(rng, 'ERROR', 'app.storage')} botocore.exceptions.ClientError: An error "
            "occurred (ThrottlingException) when calling the InvokeModel operation (reached max "
            "retries: 4): Too many requests, please wait before trying again."
        ]
    if kind == 8:
        return "boto3 traceback", [
            f"{py_head(rng, 'ERROR', 'app.storage')} download failed",
            "Traceback (most recent call last):",
            '  File "/srv/app/app/storage.py", line 41, in fetch',
            "    obj = s3.get_object(Bucket=bucket, Key=key)",
            f'  File "{SITE}/botocore/client.py", line 1021, in _make_api_call',
            "    raise error_class(parsed_response, operation_name)",
            "botocore.exceptions.ClientError: An error occurred (NoSuchKey) when calling the "
            "GetObject operation: The specified key does not exist.",
        ]
    if kind == 9:
        return "groq 429", [
            f"{py_head(rng, 'ERROR', 'app.llm')} groq.RateLimitError: Error code: 429 - "
            "{'error': {'message': 'Rate limit reached for model `llama-3.1-70b-versatile` in "
            "organization `org_FAKE` on tokens per minute (TPM): Limit 6000, Used 5800, Requested "
            "900. Please try again in 7s. Visit https://console.groq.com/docs/rate-limits for more "
            "information.', 'type': 'tokens', 'code': 'rate_limit_exceeded'}}"
        ]
    if kind == 10:
        return "KeyError traceback", [
            f"{py_head(rng, 'ERROR', 'app.http')} Exception in ASGI application",
            "Traceback (most recent call last):",
            '  File "/srv/app/app/views.py", line 88, in order_detail',
            "    total = order['totals']['gross']",
            "KeyError: 'totals'",
        ]
    if kind == 11:
        return "psycopg2 error", [
            f"{py_head(rng, 'ERROR', 'app.db')} psycopg2.errors.UniqueViolation: duplicate key "
            'value violates unique constraint "users_email_key"'
        ]
    if kind == 12:
        return "own quota message", [
            f"{py_head(rng, 'WARNING', 'app.billing')} user {rng.randrange(50000)} exceeded their "
            "monthly quota (plan=free); request rejected with 429"
        ]
    return "slack 503", [
        f"{py_head(rng, 'INFO', 'httpx')} HTTP Request: POST https://hooks.slack.com/services/"
        f'T000/B000/{alnum(rng, 12)} "HTTP/1.1 503 Service Unavailable"'
    ]


def lookalike_pool(rng: random.Random, n: int = 2000) -> list[Record]:
    out = []
    for _ in range(n):
        name, lines = lookalike_record(rng)
        out.append(Record(lines_to_bytes(lines), "not_openai", name))
    return out


def lines_to_bytes(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode("utf-8")


# =========================================================================== other shapes
#
# `openai-heavy` and `jsonl` reuse the helpers and the error events above, with pools of their
# own. Each shape has its own random stream (seeded with "<shape>:<seed>"), so adding a shape
# never changes the bytes of another.

EPOCH_TS = "@E@"  # 1714521603                    (Unix seconds: pino appends ms, zap ".mmm")
HTTP_DATE = "@H@"  # Wed, 01 May 2024 00:00:03 GMT (HTTP Date response header)
_NUM = "#num#"  # a JSON string value starting with this is written as a bare number
_NUM_RE = re.compile(r'"#num#([^"]*)"')


def as_number(text: str) -> str:
    return _NUM + text


def dumps(rec: dict[str, Any], compact: bool = True) -> str:
    text = json.dumps(rec, separators=(",", ":")) if compact else json.dumps(rec)
    return _NUM_RE.sub(r"\1", text)


def uuid4ish(rng: random.Random) -> str:
    return f"{hexid(rng, 8)}-{hexid(rng, 4)}-4{hexid(rng, 3)}-a{hexid(rng, 3)}-{hexid(rng, 12)}"


def req_id(rng: random.Random) -> str:
    return f"req_{hexid(rng, 32)}"


# (method, path under /v1, weight): what an OpenAI-heavy service calls
OPENAI_ENDPOINTS = [
    ("POST", "chat/completions", 50),
    ("POST", "embeddings", 20),
    ("POST", "responses", 15),
    ("POST", "images/generations", 4),
    ("POST", "audio/transcriptions", 5),
    ("GET", "models", 2),
]
ENDPOINT_MODELS = {
    "chat/completions": ["gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "gpt-4.1", "o3-mini"],
    "embeddings": ["text-embedding-3-small", "text-embedding-3-large"],
    "responses": ["gpt-4.1-mini", "gpt-4o", "o4-mini", "gpt-5-mini"],
    "images/generations": ["gpt-image-1", "dall-e-3"],
    "audio/transcriptions": ["whisper-1", "gpt-4o-transcribe"],
    "models": [""],
}
SYSTEM_PROMPTS = [
    "You are a concise assistant. Answer in at most three sentences.",
    "You are a support agent for Acme. Use the knowledge base excerpts below and cite them.",
    "Extract the invoice fields as JSON with keys vendor, date, total, currency.",
    "Classify the ticket into one of: billing, bug, feature_request, account, other.",
    "Summarize the conversation for the next agent. Keep names and order numbers.",
]
USER_PROMPTS = [
    "Summarize the attached release notes.",
    "Where is my order 48213? It was supposed to arrive on Monday.",
    "Explain this error to a non-technical user: KeyError 'totals' in checkout.",
    "Draft a polite reply: the customer was charged twice for invoice INV-2291.",
    "What does clause 7.2 of the attached contract say about termination?",
    "Translate to German: Your password was changed. If this wasn't you, contact support.",
    "Write a product description for a 2-person ultralight tent, 1.2 kg, 3 seasons.",
    "List the action items from this meeting transcript with owners and due dates.",
]
DOC_SNIPPETS = [
    "Returns are accepted within 30 days of delivery if the item is unused.",
    "To reset your password, open Settings > Security and choose Reset password.",
    "Orders over 50 EUR ship free within the EU; other orders cost 4.90 EUR.",
    "The Pro plan includes 10 seats, SSO and priority support.",
    "Refunds are issued to the original payment method within 5 business days.",
]
RAW_HEADERS = (
    "(b'Content-Type', b'application/json'), (b'Transfer-Encoding', b'chunked'), "
    "(b'Connection', b'keep-alive'), (b'access-control-expose-headers', b'X-Request-ID'), "
    "(b'openai-organization', b'user-{org}'), (b'openai-processing-ms', b'{ms}'), "
    "(b'openai-version', b'2020-10-01'), (b'x-ratelimit-limit-requests', b'10000'), "
    "(b'x-ratelimit-limit-tokens', b'30000000'), (b'x-ratelimit-remaining-requests', "
    "b'{rem_req}'), (b'x-ratelimit-remaining-tokens', b'{rem_tok}'), "
    "(b'x-ratelimit-reset-requests', b'6ms'), (b'x-ratelimit-reset-tokens', b'1ms'), "
    "(b'x-request-id', b'{rid}'), (b'strict-transport-security', b'max-age=31536000; "
    "includeSubDomains; preload'), (b'CF-Cache-Status', b'DYNAMIC'), (b'Server', "
    "b'cloudflare'), (b'CF-RAY', b'{ray}-SJC'), (b'Content-Encoding', b'gzip'), (b'alt-svc', "
    "b'h3=\":443\"; ma=86400')"
)


def openai_endpoint(rng: random.Random) -> tuple[str, str]:
    method, path, _ = rng.choices(OPENAI_ENDPOINTS, weights=[w for *_, w in OPENAI_ENDPOINTS])[0]
    return method, path


def request_options(rng: random.Random, method: str, path: str, model: str) -> str:
    """openai-python's DEBUG `Request options:` line (a dict repr of the request)."""
    files = "None"
    data: dict[str, Any]
    if path == "chat/completions":
        data = {
            "messages": [
                {"role": "system", "content": rng.choice(SYSTEM_PROMPTS)},
                {"role": "user", "content": rng.choice(USER_PROMPTS)},
            ],
            "model": model,
        }
        if rng.random() < 0.5:
            data["temperature"] = rng.choice([0, 0.2, 0.7])
        if rng.random() < 0.3:
            data["response_format"] = {"type": "json_object"}
    elif path == "embeddings":
        data = {
            "input": [rng.choice(DOC_SNIPPETS) for _ in range(rng.randrange(1, 4))],
            "model": model,
            "encoding_format": "base64",
        }
    elif path == "responses":
        data = {
            "input": rng.choice(USER_PROMPTS),
            "model": model,
            "instructions": rng.choice(SYSTEM_PROMPTS),
        }
    elif path == "images/generations":
        data = {"prompt": rng.choice(USER_PROMPTS[6:]), "model": model, "size": "1024x1024"}
    elif path == "audio/transcriptions":
        name = f"upl_{rng.randrange(1000, 9999)}.m4a"
        files = f"[('file', ('{name}', <_io.BufferedReader name='/tmp/{name}'>, 'audio/m4a'))]"
        data = {"model": model, "response_format": "json"}
    else:
        opts = {"method": method.lower(), "url": f"/{path}"}
        return f"{py_head(rng, 'DEBUG', 'openai._base_client')} Request options: {opts!r}"
    opts = {
        "method": method.lower(),
        "url": f"/{path}",
        "files": "@FILES@",
        "idempotency_key": f"stainless-python-retry-{uuid4ish(rng)}",
        "json_data": data,
    }
    text = repr(opts).replace("'@FILES@'", files)
    return f"{py_head(rng, 'DEBUG', 'openai._base_client')} Request options: {text}"


def httpx_ok_line(rng: random.Random, method: str, path: str) -> str:
    return (
        f"{py_head(rng, 'INFO', 'httpx')} HTTP Request: {method} https://api.openai.com/v1/"
        f'{path} "HTTP/1.1 200 OK"'
    )


def debug_call(rng: random.Random) -> list[str]:
    """One successful call as openai-python, httpx and httpcore log it at DEBUG."""
    method, path = openai_endpoint(rng)
    model = rng.choice(ENDPOINT_MODELS[path])
    url = f"https://api.openai.com/v1/{path}"
    rid = req_id(rng)

    def oa() -> str:
        return py_head(rng, "DEBUG", "openai._base_client")

    def h11() -> str:
        return py_head(rng, "DEBUG", "httpcore.http11")

    def conn() -> str:
        return py_head(rng, "DEBUG", "httpcore.connection")

    req = f"request=<Request [b'{method}']>"
    lines = [
        request_options(rng, method, path, model),
        f"{oa()} Sending HTTP Request: {method} {url}",
    ]
    if rng.random() < 0.2:  # a new connection (most calls reuse the pool's)
        obj = f"0x7f{hexid(rng, 10)}"
        lines += [
            f"{conn()} connect_tcp.started host='api.openai.com' port=443 local_address=None "
            "timeout=600.0 socket_options=None",
            f"{conn()} connect_tcp.complete return_value=<httpcore._backends.sync.SyncStream "
            f"object at {obj}>",
            f"{conn()} start_tls.started ssl_context=<ssl.SSLContext object at 0x7f{hexid(rng, 10)}"
            "> server_hostname='api.openai.com' timeout=600.0",
            f"{conn()} start_tls.complete return_value=<httpcore._backends.sync.SyncStream object "
            f"at 0x7f{hexid(rng, 10)}>",
        ]
    lines += [
        f"{h11()} send_request_headers.started {req}",
        f"{h11()} send_request_headers.complete",
    ]
    if method == "POST":
        lines += [f"{h11()} send_request_body.started {req}", f"{h11()} send_request_body.complete"]
    ms = rng.randrange(80, 6000)
    headers = RAW_HEADERS.format(
        org=alnum(rng, 24).lower(),
        ms=ms,
        rem_req=rng.randrange(9000, 10000),
        rem_tok=rng.randrange(29_000_000, 30_000_000),
        rid=rid,
        ray=hexid(rng, 16),
    )
    lines += [
        f"{h11()} receive_response_headers.started {req}",
        f"{h11()} receive_response_headers.complete return_value=(b'HTTP/1.1', 200, b'OK', "
        f"[(b'Date', b'{HTTP_DATE}'), {headers}])",
        httpx_ok_line(rng, method, path),
        f"{h11()} receive_response_body.started {req}",
        f"{h11()} receive_response_body.complete",
        f"{h11()} response_closed.started",
        f"{h11()} response_closed.complete",
        f"{oa()} HTTP Response: {method} {url} \"200 OK\" Headers({{'date': '{HTTP_DATE}', "
        "'content-type': 'application/json', 'transfer-encoding': 'chunked', 'connection': "
        f"'keep-alive', 'openai-organization': 'user-{alnum(rng, 24).lower()}', "
        f"'openai-processing-ms': '{ms}', 'openai-version': '2020-10-01', "
        f"'x-ratelimit-remaining-requests': '{rng.randrange(9000, 10000)}', "
        f"'x-request-id': '{rid}', 'server': 'cloudflare', 'content-encoding': 'gzip'}})",
        f"{oa()} request_id: {rid}",
    ]
    return lines


def retry_info_line(rng: random.Random) -> str:
    path = rng.choice(["chat/completions", "chat/completions", "embeddings", "responses"])
    return (
        f"{py_head(rng, 'INFO', 'openai._base_client')} Retrying request to /{path} in "
        f"{rng.uniform(0.3, 8):.6f} seconds"
    )


def llm_app_line(rng: random.Random) -> str:
    """An ordinary INFO/WARNING line of an LLM app that names OpenAI, models, tokens, errors."""
    m = rng.choice(ENDPOINT_MODELS["chat/completions"])
    lg = rng.choice(APP_LOGGERS)
    n = rng.randrange(1, 99999)
    return rng.choice(
        [
            f"{py_head(rng, 'INFO', lg)} summarized ticket {n} with {m} in "
            f"{rng.uniform(0.4, 9):.2f}s (prompt_tokens={rng.randrange(200, 9000)}, "
            f"completion_tokens={rng.randrange(20, 900)})",
            f"{py_head(rng, 'INFO', lg)} embedded {rng.randrange(1, 64)} chunks of doc d_{n} "
            "with text-embedding-3-small",
            f"{py_head(rng, 'INFO', lg)} openai client ready model={m} timeout=60s max_retries=2 "
            "base_url=https://api.openai.com/v1",
            f"{py_head(rng, 'INFO', lg)} job {n} done: 0 errors, {rng.randrange(1, 40)} items, "
            f"openai cost ${rng.uniform(0.001, 0.4):.4f}",
            f"{py_head(rng, 'WARNING', lg)} completion for doc d_{n} stopped early: "
            "finish_reason=length (max_tokens=512, completion_tokens=512)",
            f"{py_head(rng, 'INFO', lg)} moderation check passed for post p_{n} "
            "(flagged=False, error_rate_1h=0.0%)",
            f"{py_head(rng, 'DEBUG', lg)} prompt for ticket {n}: {rng.randrange(900, 12000)} "
            f"tokens, context budget 100000, model {m}",
            f"{py_head(rng, 'INFO', lg)} tool call get_order_status(order_id={n}) returned in "
            f"{rng.randrange(5, 900)}ms",
            f"{py_head(rng, 'INFO', 'app.metrics')} llm stats 60s: calls={rng.randrange(40, 900)}"
            f" openai_errors=0 rate_limit_errors=0 timeout_errors=0 p95_ms="
            f"{rng.randrange(400, 9000)}",
            f"{py_head(rng, 'DEBUG', lg)} llm wrapper config: provider=openai model={m} "
            "retry_on_error=True max_retries=2 on_error=fallback",
        ]
    )


def app_line(rng: random.Random) -> str:
    """An ordinary web-app line from the mixed shape, without its JSON-lines records."""
    while True:
        line = normal_record(rng)
        if not line.startswith("{"):
            return line


# --------------------------------------------------------------------------- JSON records

JSON_SERVICES = ["chat-api", "summarizer", "ingest-worker", "agent-api", "support-bot"]
GO_CALLERS = ["llm/client.go:61", "llm/client.go:88", "api/handler.go:142", "worker/run.go:77"]
PINO_LEVEL = {"debug": 20, "info": 30, "warning": 40, "error": 50}
NODE_LEVEL = {"debug": "debug", "info": "info", "warning": "warn", "error": "error"}


def json_line(rng: random.Random, style: str, level: str, msg: str, fields: dict[str, Any]) -> str:
    """One structured log record in the given style: structlog (JSONRenderer), structlog-ts
    (compact, "ts"), python-json-logger, pino, zap, winston or Google Cloud Logging."""
    svc = rng.choice(JSON_SERVICES)
    if style == "structlog":
        return dumps(
            {
                "event": msg,
                **fields,
                "level": level,
                "logger": f"{svc.replace('-', '_')}.{rng.choice(['llm', 'api', 'jobs'])}",
                "timestamp": f"{ISO_TS}.{rng.randrange(10**6):06d}Z",
            },
            compact=False,
        )
    if style == "structlog-ts":
        return dumps({"ts": iso(rng), "level": level, "event": msg, **fields})
    if style == "python-json-logger":
        return dumps(
            {
                "asctime": f"{PY_TS},{rng.randrange(1000):03d}",
                "levelname": level.upper(),
                "name": rng.choice(APP_LOGGERS),
                "message": msg,
                **fields,
            },
            compact=False,
        )
    if style == "pino":
        return dumps(
            {
                "level": PINO_LEVEL[level],
                "time": as_number(f"{EPOCH_TS}{rng.randrange(1000):03d}"),
                "pid": rng.randrange(7, 90),
                "hostname": f"{svc}-{hexid(rng, 5)}",
                **fields,
                "msg": msg,
            }
        )
    if style == "zap":
        return dumps(
            {
                "level": NODE_LEVEL[level],
                "ts": as_number(f"{EPOCH_TS}.{rng.randrange(1000):03d}"),
                "caller": rng.choice(GO_CALLERS),
                "msg": msg,
                **fields,
            }
        )
    if style == "winston":
        return dumps(
            {
                "level": NODE_LEVEL[level],
                "message": msg,
                **fields,
                "service": svc,
                "timestamp": iso(rng),
            }
        )
    assert style == "cloud", style
    return dumps(
        {
            "severity": level.upper(),
            "message": msg,
            **fields,
            "timestamp": iso(rng),
            "logging.googleapis.com/trace": f"projects/acme-prod/traces/{hexid(rng, 32)}",
            "logging.googleapis.com/spanId": hexid(rng, 16),
            "logging.googleapis.com/sourceLocation": {
                "file": f"app/{rng.choice(['llm', 'views', 'tasks'])}.py",
                "line": str(rng.randrange(20, 400)),
                "function": rng.choice(["complete", "handle", "run"]),
            },
        }
    )


JSONL_STYLES = ["structlog", "structlog-ts", "pino", "zap", "winston", "cloud"]
JSONL_STYLE_WEIGHTS = [20, 10, 25, 15, 15, 15]


def json_style(rng: random.Random) -> str:
    return rng.choices(JSONL_STYLES, weights=JSONL_STYLE_WEIGHTS)[0]


def llm_call_json(rng: random.Random, style: str) -> str:
    _, path = openai_endpoint(rng)
    model = rng.choice(ENDPOINT_MODELS[path])
    prompt = rng.randrange(40, 12000)
    done = 0 if path in ("embeddings", "models") else rng.randrange(1, 1200)
    fields: dict[str, Any] = {"model": model, "provider": "openai"}
    if rng.random() < 0.5:
        fields["endpoint"] = f"/v1/{path}"
        fields["status"] = 200
    fields["latency_ms"] = rng.randrange(40, 9000)
    if rng.random() < 0.5:
        fields["tokens"] = prompt + done
    else:
        fields["prompt_tokens"] = prompt
        fields["completion_tokens"] = done
    if rng.random() < 0.3:
        fields["request_id"] = req_id(rng)
    if path in ("chat/completions", "responses") and rng.random() < 0.4:
        fields["finish_reason"] = rng.choice(["stop", "stop", "stop", "tool_calls", "length"])
    if rng.random() < 0.7:  # wrappers that always log the error fields, empty on success
        fields["error"] = None
        fields["is_error"] = False
    msg = rng.choice(["llm.call", "llm.call", "openai response", "chat completion", "llm_call"])
    return json_line(rng, style, "info", msg, fields)


def request_json(rng: random.Random, style: str) -> str:
    status = rng.choices([200, 201, 204, 304, 404], weights=[84, 5, 4, 4, 3])[0]
    method = rng.choice(["GET", "GET", "POST", "POST", "PATCH"])
    path = rng.choice(["/api/v1/chat", "/api/v1/assist", "/v2/summarize", "/api/v1/search"])
    if rng.random() < 0.4:
        path = url_path(rng)
    ms = rng.randrange(1, 4000)
    if style == "pino":
        fields: dict[str, Any] = {
            "req": {"id": f"req-{rng.randrange(1, 99999)}", "method": method, "url": path},
            "res": {"statusCode": status},
            "responseTime": ms,
        }
        return json_line(rng, style, "info", "request completed", fields)
    if style == "cloud":
        fields = {
            "httpRequest": {
                "requestMethod": method,
                "requestUrl": path,
                "status": status,
                "latency": f"{ms / 1000:.3f}s",
                "remoteIp": ip(rng),
                "userAgent": rng.choice(["Mozilla/5.0 (X11; Linux x86_64)", "okhttp/4.12.0"]),
            }
        }
        return json_line(rng, style, "info", f"{method} {path} {status}", fields)
    fields = {
        "method": method,
        "path": path,
        "status": status,
        "duration_ms": ms,
        "request_id": hexid(rng, 16),
    }
    return json_line(rng, style, "info", rng.choice(["request", "request_finished"]), fields)


def app_event_json(rng: random.Random, style: str) -> str:
    n = rng.randrange(1, 99999)
    level, msg, fields = rng.choice(
        [
            ("info", "job finished", {"job": "weekly-report", "tenant": "acme", "errors": 0}),
            ("info", "cache refreshed", {"key": f"kb:{n}", "entries": rng.randrange(10, 900)}),
            (
                "info",
                "embedding batch indexed",
                {
                    "batch": n % 400,
                    "model": "text-embedding-3-small",
                    "provider": "openai",
                    "chunks": rng.randrange(8, 128),
                },
            ),
            (
                "info",
                "vector store sync finished",
                {"store": f"vs_{alnum(rng, 10)}", "ok": 3, "failed": 0},
            ),
            (
                "info",
                "openai client initialised",
                {"base_url": "https://api.openai.com/v1", "max_retries": 2, "timeout": 60},
            ),
            (
                "info",
                "moderation result",
                {"endpoint": "/v1/moderations", "flagged": False, "post": f"p_{n}"},
            ),
            (
                "debug",
                "prompt built",
                {
                    "tokens": rng.randrange(300, 30000),
                    "budget": 100000,
                    "model": rng.choice(ENDPOINT_MODELS["responses"]),
                },
            ),
            (
                "info",
                "agent turn ended",
                {
                    "turn": rng.randrange(1, 12),
                    "status": "ok",
                    "tool_calls": rng.randrange(0, 5),
                    "error_count": 0,
                },
            ),
            (
                "warning",
                "llm output truncated",
                {
                    "finish_reason": "length",
                    "max_tokens": 512,
                    "model": "gpt-4o-mini",
                    "provider": "openai",
                },
            ),
            (
                "warning",
                "openai retry scheduled",
                {
                    "attempt": 1,
                    "retry_in_ms": rng.randrange(200, 8000),
                    "endpoint": "/v1/chat/completions",
                },
            ),
            (
                "warning",
                "slow request",
                {"path": url_path(rng), "duration_ms": rng.randrange(2000, 9000)},
            ),
            (
                "info",
                "webhook delivered",
                {"endpoint": f"https://hooks.example.com/{hexid(rng, 8)}", "status": 200},
            ),
        ]
    )
    return json_line(rng, style, level, msg, fields)


def normal_json(rng: random.Random, style: str) -> str:
    kind = rng.choices(["llm", "request", "app"], weights=[40, 32, 28])[0]
    if kind == "llm":
        return llm_call_json(rng, style)
    if kind == "request":
        return request_json(rng, style)
    return app_event_json(rng, style)


# --------------------------------------------------------------------------- JSON error records

NODE_FRAMES = (
    "    at APIError.generate (/srv/node_modules/openai/error.js:48:20)\n"
    "    at OpenAI.makeStatusError (/srv/node_modules/openai/core.js:302:33)\n"
    "    at OpenAI.makeRequest (/srv/node_modules/openai/core.js:346:30)\n"
    "    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)"
)


def err_url(rng: random.Random, err: ApiError) -> str:
    if err.azure:
        res = rng.choice(["contoso-eastus", "acme-prod-swe", "fabrikam-ai"])
        return (
            f"https://{res}.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions"
            "?api-version=2024-06-01"
        )
    return f"https://api.openai.com/v1/{rng.choice(['chat/completions', 'responses'])}"


def jsonl_error_lines(rng: random.Random, err: ApiError) -> list[tuple[str, str]]:
    """One OpenAI API error as each JSON logger would record it: (format, line)."""
    model = rng.choice(ENDPOINT_MODELS["chat/completions"])
    py_msg = f"Error code: {err.status} - {body_dict(err)!r}"
    node_msg = f"{err.status} {err.message}"
    node_cls = NODE_CLS[err.status]
    tb = "\n".join([*py_frames(rng), py_exc_line(err)])
    rid = req_id(rng)
    msg = rng.choice(["llm call failed", "openai call failed", "chat completion failed"])
    url = err_url(rng, err)
    body = body_dict(err)
    return [
        (
            "structlog error string",
            json_line(
                rng,
                "structlog",
                "error",
                msg,
                {"model": model, "provider": "openai", "error": py_msg, "error_type": err.py_cls},
            ),
        ),
        (
            "structlog exception traceback",
            json_line(rng, "structlog", "error", msg, {"model": model, "exception": tb}),
        ),
        (
            "python-json-logger exc_info",
            json_line(rng, "python-json-logger", "error", msg, {"exc_info": tb, "model": model}),
        ),
        (
            "err object, Python message",
            json_line(
                rng,
                "structlog-ts",
                "error",
                msg,
                {
                    "err": {"type": err.py_cls, "message": py_msg},
                    "model": model,
                    "provider": "openai",
                },
            ),
        ),
        (
            "pino err (openai-node)",
            json_line(
                rng,
                "pino",
                "error",
                msg,
                {
                    "reqId": f"r-{hexid(rng, 3)}",
                    "err": {
                        "type": node_cls,
                        "message": node_msg,
                        "stack": f"{node_cls}: {node_msg}\n{NODE_FRAMES}",
                        "status": err.status,
                        "headers": {"x-request-id": rid},
                        "request_id": rid,
                        "error": body["error"],
                        "code": err.code,
                        "param": err.param,
                    },
                },
            ),
        ),
        (
            "winston error + escaped body",
            json_line(
                rng,
                "winston",
                "error",
                "OpenAI request failed",
                {
                    "model": model,
                    "error": {
                        "name": node_cls,
                        "status": err.status,
                        "message": node_msg,
                        "body": json.dumps(body, separators=(",", ":")),
                    },
                    "url": url,
                },
            ),
        ),
        (
            "zap go-openai error",
            json_line(
                rng,
                "zap",
                "error",
                "openai request failed",
                {
                    "model": model,
                    "url": url,
                    "error": f"error, status code: {err.status}, status: {err.status} "
                    f"{REASON[err.status]}, message: {err.message}",
                },
            ),
        ),
        (
            "zap escaped pretty body",
            json_line(
                rng,
                "zap",
                "error",
                "openai request failed",
                {
                    "status": err.status,
                    "url": url,
                    "body": json.dumps(body, indent=2),
                    "stacktrace": "main.(*Summarizer).Run\n\t/src/cmd/summarizer/main.go:142\n"
                    "main.main\n\t/src/cmd/summarizer/main.go:61",
                },
            ),
        ),
        (
            "Cloud Logging error report",
            json_line(
                rng,
                "cloud",
                "error",
                tb,
                {
                    "@type": "type.googleapis.com/google.devtools.clouderrorreporting.v1beta1."
                    "ReportedErrorEvent",
                    "serviceContext": {"service": rng.choice(JSON_SERVICES), "version": "1.8.3"},
                },
            ),
        ),
    ]


def jsonl_network_lines(rng: random.Random) -> list[tuple[str, str]]:
    chained = [ln for ln in network_events(rng)[0][1][1:]]  # without the log header line
    model = rng.choice(ENDPOINT_MODELS["chat/completions"])
    msg = "openai call failed"
    cause = "request to https://api.openai.com/v1/chat/completions failed, reason: read ECONNRESET"
    return [
        (
            "structlog exception traceback",
            json_line(
                rng, "structlog", "error", msg, {"model": model, "exception": "\n".join(chained)}
            ),
        ),
        (
            "structlog error string",
            json_line(
                rng,
                "structlog",
                "error",
                msg,
                {
                    "model": model,
                    "provider": "openai",
                    "error": "openai.APITimeoutError: Request timed out.",
                },
            ),
        ),
        (
            "pino err (openai-node)",
            json_line(
                rng,
                "pino",
                "error",
                msg,
                {
                    "err": {
                        "type": "APIConnectionError",
                        "message": "Connection error.",
                        "stack": "Error: Connection error.\n    at OpenAI.makeRequest "
                        "(/srv/node_modules/openai/core.js:330:19)\n    at process."
                        "processTicksAndRejections (node:internal/process/task_queues:95:5)",
                        "cause": {
                            "type": "FetchError",
                            "message": cause,
                            "errno": "ECONNRESET",
                            "code": "ECONNRESET",
                        },
                    }
                },
            ),
        ),
        (
            "Cloud Logging error report",
            json_line(
                rng,
                "cloud",
                "error",
                "\n".join(chained),
                {
                    "@type": "type.googleapis.com/google.devtools.clouderrorreporting.v1beta1."
                    "ReportedErrorEvent",
                    "serviceContext": {"service": rng.choice(JSON_SERVICES), "version": "1.8.3"},
                },
            ),
        ),
    ]


def jsonl_server_html_line(rng: random.Random) -> tuple[str, str]:
    html = (
        "502 <html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>"
        "502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n"
        "</html>\r\n"
    )
    return "pino err (Cloudflare 502 HTML)", json_line(
        rng,
        "pino",
        "error",
        "openai request failed",
        {"url": "https://api.openai.com/v1/chat/completions", "status": 502, "err": html},
    )


def jsonl_evidence_pool(rng: random.Random, variants: int = 3) -> dict[str, list[Record]]:
    pool: dict[str, list[Record]] = {}

    def add(category: str, fmt: str, line: str) -> None:
        pool.setdefault(category, []).append(Record(lines_to_bytes([line]), category, fmt))

    for _ in range(variants):
        for err in api_errors(rng):
            for fmt, line in jsonl_error_lines(rng, err):
                add(err.category, fmt, line)
        for fmt, line in jsonl_network_lines(rng):
            add("network", fmt, line)
        add("server.error", *jsonl_server_html_line(rng))
    return pool


# --------------------------------------------------------------------------- JSON look-alikes


def jsonl_lookalike(rng: random.Random) -> tuple[str, str]:
    """An error-level record that is not an OpenAI API error: other services and providers,
    the app's own failures, non-API problems with OpenAI output."""
    style = json_style(rng)
    kind = rng.randrange(13)
    if kind == 0:
        return "shopify 429", json_line(
            rng,
            style,
            "warning",
            "http_error",
            {
                "service": "shopify",
                "status": 429,
                "url": "https://acme-store.myshopify.com/admin/api/2024-10/products.json",
                "message": "Exceeded 2 calls per second for api client. Reduce request rates to "
                "resume uninterrupted service.",
            },
        )
    if kind == 1:
        return "shipstation 500", json_line(
            rng,
            style,
            "error",
            "http_error",
            {
                "service": "shipstation",
                "status": 500,
                "url": "https://ssapi.shipstation.com/orders/createorder",
                "message": "An error has occurred.",
            },
        )
    if kind == 2:
        return "stripe invalid_request_error", json_line(
            rng,
            style,
            "error",
            "stripe call failed",
            {
                "service": "stripe",
                "status": 400,
                "request_id": f"req_{alnum(rng, 14)}",
                "error": {
                    "type": "invalid_request_error",
                    "code": "resource_missing",
                    "param": "customer",
                    "message": f"No such customer: 'cus_{alnum(rng, 14)}'",
                    "doc_url": "https://stripe.com/docs/error-codes/resource-missing",
                },
            },
        )
    if kind == 3:
        return "anthropic 529", json_line(
            rng,
            style,
            "error",
            "llm call failed",
            {
                "provider": "anthropic",
                "model": "claude-3-7-sonnet-20250219",
                "error": "Error code: 529 - {'type': 'error', 'error': {'type': "
                "'overloaded_error', 'message': 'Overloaded'}}",
                "error_type": "InternalServerError",
            },
        )
    if kind == 4:
        return "anthropic via openai SDK 429", json_line(
            rng,
            style,
            "error",
            "llm call failed",
            {
                "provider": "anthropic",
                "base_url": "https://api.anthropic.com/v1/",
                "error": "Error code: 429 - {'error': {'code': 'rate_limit_error', 'message': "
                "'This request would exceed the rate limit for your organization of 20,000 input "
                "tokens per minute. For details, refer to: https://docs.anthropic.com/en/"
                "api/rate-limits.', 'type': 'invalid_request_error', 'param': None}}",
                "error_type": "openai.RateLimitError",
            },
        )
    if kind == 5:
        msg = (
            "429 Rate limit reached for model `llama-3.1-70b-versatile` in organization "
            "`org_01hwexampleexampleexample00` on tokens per minute (TPM): Limit 6000, Used "
            "5800, Requested 900. Please try again in 7s. Visit "
            "https://console.groq.com/docs/rate-limits for more information."
        )
        return "groq via openai SDK 429", json_line(
            rng,
            style,
            "error",
            "llm call failed",
            {
                "baseURL": "https://api.groq.com/openai/v1",
                "err": {
                    "type": "RateLimitError",
                    "message": msg,
                    "status": 429,
                    "code": "rate_limit_exceeded",
                },
            },
        )
    if kind == 6:
        return "own quota 429", json_line(
            rng,
            style,
            "warning",
            "tenant over monthly quota",
            {
                "tenant": f"t_{rng.randrange(9999)}",
                "plan": "free",
                "status": 429,
                "used_tokens": 1_000_412,
                "limit_tokens": 1_000_000,
            },
        )
    if kind == 7:
        return "model output not JSON", json_line(
            rng,
            style,
            "error",
            "could not parse model output",
            {
                "provider": "openai",
                "model": "gpt-4o-mini",
                "error": "JSONDecodeError: Expecting ',' delimiter: line 1 column 88 (char 87)",
            },
        )
    if kind == 8:
        return "psycopg2 error", json_line(
            rng,
            style,
            "error",
            "db write failed",
            {
                "error": "psycopg2.errors.UniqueViolation: duplicate key value violates unique "
                'constraint "users_email_key"',
                "table": "users",
            },
        )
    if kind == 9:
        return "boto3 NoSuchKey", json_line(
            rng,
            style,
            "error",
            "download failed",
            {
                "bucket": "acme-uploads",
                "key": f"u/{rng.randrange(99999)}.png",
                "error": "An error occurred (NoSuchKey) when calling the GetObject operation: The "
                "specified key does not exist.",
            },
        )
    if kind == 10:
        return "KeyError traceback", json_line(
            rng,
            "structlog",
            "error",
            "Exception in ASGI app",
            {
                "exception": 'Traceback (most recent call last):\n  File "/srv/app/app/views.py", '
                "line 88, in order_detail\n    total = order['totals']['gross']\n"
                "KeyError: 'totals'"
            },
        )
    if kind == 11:
        return "twilio 429", json_line(
            rng,
            style,
            "error",
            "sms send failed",
            {
                "error": {
                    "status": 429,
                    "code": 20429,
                    "message": "Too Many Requests",
                    "moreInfo": "https://www.twilio.com/docs/errors/20429",
                }
            },
        )
    return "gemini via openai SDK 429", json_line(
        rng,
        style,
        "error",
        "llm call failed",
        {
            "base_url": "https://generativelanguage.googleapis.com/v1beta/openai/",
            "model": "gemini-2.0-flash",
            "error": "Error code: 429 - [{'error': {'code': 429, 'message': 'You exceeded "
            "your current quota, please check your plan and billing details. For more "
            "information on this error, head to: "
            "https://ai.google.dev/gemini-api/docs/rate-limits.', 'status': "
            "'RESOURCE_EXHAUSTED'}}]",
        },
    )


# --------------------------------------------------------------------------- openai-heavy extras


def heavy_extra_events(rng: random.Random, err: ApiError) -> list[tuple[str, list[str]]]:
    """Formats of an OpenAI error that a heavy openai-python service adds to the shared ones."""
    out: list[tuple[str, list[str]]] = []
    if err.status in (429, 500, 502, 503):
        retries = [retry_info_line(rng) for _ in range(rng.randrange(1, 3))]
        out.append(
            ("openai-python v1 traceback after retries", [*retries, *fmt_py_v1_traceback(rng, err)])
        )
    task = rng.choice(["summarize", "embed_chunk", "draft_reply"])
    out.append(
        (
            "exception repr",
            [
                f"[{PY_TS},{rng.randrange(1000):03d}: INFO/ForkPoolWorker-{rng.randrange(1, 9)}]"
                " Task "
                f"app.tasks.{task}[{uuid4ish(rng)}] retry: Retry in 30s: "
                f'{err.py_cls}("Error code: {err.status} - {body_dict(err)!r}")'
            ],
        )
    )
    return out


def heavy_httpx_error(rng: random.Random, status: int) -> list[str]:
    method, path = openai_endpoint(rng)
    return [
        f"{py_head(rng, 'INFO', 'httpx')} HTTP Request: {method} https://api.openai.com/v1/{path}"
        f' "HTTP/1.1 {status} {REASON[status]}"'
    ]


def heavy_evidence_pool(rng: random.Random, variants: int = 4) -> dict[str, list[Record]]:
    pool = evidence_pool(rng, variants)  # the mixed shape's formats
    for _ in range(variants):
        for err in api_errors(rng):
            for fmt, lines in heavy_extra_events(rng, err):
                pool[err.category].append(Record(lines_to_bytes(lines), err.category, fmt))
        for status, category in HTTPX_CASES:
            lines = heavy_httpx_error(rng, status)
            pool[category].append(Record(lines_to_bytes(lines), category, "httpx request line"))
    return pool


def heavy_lookalike(rng: random.Random) -> tuple[str, list[str]]:
    """Other services' errors (Stripe, Anthropic, Groq, Gemini, DeepSeek, nginx), unrelated
    tracebacks; half of them the mixed shape's look-alikes."""
    kind = rng.randrange(18)
    if kind >= 9:
        return lookalike_record(rng)
    lg = rng.choice(APP_LOGGERS)
    frames_site = "/srv/app/.venv/lib/python3.12/site-packages"
    oa_frames = [
        "Traceback (most recent call last):",
        f'  File "/srv/app/app/llm.py", line {rng.randrange(20, 300)}, in complete',
        "    resp = self.client.chat.completions.create(model=model, messages=messages)",
        f'  File "{frames_site}/openai/_utils/_utils.py", line 279, in wrapper',
        "    return func(*args, **kwargs)",
        f'  File "{frames_site}/openai/_base_client.py", line 1061, in _request',
        "    raise self._make_status_error_from_response(err.response) from None",
    ]
    if kind == 0:
        price = f"price_{alnum(rng, 22)}"
        return "stripe logfmt 400", [
            f"{py_head(rng, 'INFO', 'stripe')} message='Request to Stripe api' method=post "
            "url=https://api.stripe.com/v1/checkout/sessions",
            f"{py_head(rng, 'INFO', 'stripe')} message='Stripe API response' "
            "path=https://api.stripe.com/v1/checkout/sessions response_code=400",
            f'{py_head(rng, "INFO", "stripe")} error_code=resource_missing error_message="No '
            f"such price: '{price}'\" error_param=line_items[0][price] "
            "error_type=invalid_request_error message='Stripe v1 API error received'",
        ]
    if kind == 1:
        return "stripe JSON 400", [
            f"{py_head(rng, 'ERROR', 'app.billing')} Stripe API returned 400: "
            + json.dumps(
                {
                    "error": {
                        "code": "resource_missing",
                        "doc_url": "https://stripe.com/docs/error-codes/resource-missing",
                        "message": f"No such customer: 'cus_{alnum(rng, 14)}'",
                        "param": "customer",
                        "request_log_url": "https://dashboard.stripe.com/test/logs/"
                        f"req_{alnum(rng, 14)}",
                        "type": "invalid_request_error",
                    }
                }
            )
        ]
    if kind == 2:
        return "anthropic 400", [
            f"{py_head(rng, 'ERROR', lg)} answer generation failed for q_{rng.randrange(9999)}",
            "anthropic.BadRequestError: Error code: 400 - {'type': 'error', 'error': {'type': "
            "'invalid_request_error', 'message': 'prompt is too long: "
            f"{rng.randrange(200001, 260000)} tokens > 200000 maximum'}}}}",
        ]
    if kind == 3:
        site = frames_site + "/anthropic"
        return "anthropic 529 traceback", [
            f"{py_head(rng, 'INFO', 'anthropic._base_client')} Retrying request to /v1/messages "
            f"in {rng.uniform(0.3, 2):.6f} seconds",
            f"{py_head(rng, 'ERROR', lg)} code review generation failed",
            "Traceback (most recent call last):",
            '  File "/srv/app/app/review.py", line 74, in review',
            '    msg = self.client.messages.create(model="claude-3-7-sonnet-20250219", '
            "max_tokens=4096, messages=messages)",
            f'  File "{site}/_base_client.py", line 1098, in _request',
            "    raise self._make_status_error_from_response(err.response) from None",
            "anthropic.InternalServerError: Error code: 529 - {'type': 'error', 'error': "
            "{'type': 'overloaded_error', 'message': 'Overloaded'}}",
        ]
    if kind == 4:
        return "anthropic via openai SDK 429", [
            f"{py_head(rng, 'ERROR', lg)} OpenAI API error: Error code: 429 - {{'error': "
            "{'code': 'rate_limit_error', 'message': 'This request would exceed the rate limit "
            "for your organization of 20,000 input tokens per minute. For details, refer to: "
            "https://docs.anthropic.com/en/api/rate-limits. You can see the response headers "
            "for current usage. Please reduce the prompt length or the maximum tokens requested, "
            "or try again later.', 'type': 'invalid_request_error', 'param': None}}",
        ]
    if kind == 5:
        return "groq via openai SDK 413", [
            f"{py_head(rng, 'INFO', 'httpx')} HTTP Request: POST "
            'https://api.groq.com/openai/v1/chat/completions "HTTP/1.1 413 Payload Too Large"',
            f"{py_head(rng, 'ERROR', lg)} generate_report failed (provider=groq, "
            "model=llama-3.1-70b-versatile)",
            *oa_frames,
            "openai.APIStatusError: Error code: 413 - {'error': {'message': 'Request too large "
            "for model `llama-3.1-70b-versatile` in organization `org_01hwexampleexampleexample00`"
            " on tokens per minute (TPM): Limit 6000, Requested 14368, please reduce your message "
            "size and try again. Visit https://console.groq.com/docs/rate-limits for more "
            "information.', 'type': 'tokens', 'code': 'rate_limit_exceeded'}}",
        ]
    if kind == 6:
        gem = "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions"
        return "gemini via openai SDK 429", [
            f'{py_head(rng, "INFO", "httpx")} HTTP Request: POST {gem} "HTTP/1.1 429 Too Many '
            'Requests"',
            retry_info_line(rng),
            f"{py_head(rng, 'ERROR', lg)} tagging failed (model=gemini-2.0-flash)",
            *oa_frames,
            "openai.RateLimitError: Error code: 429 - [{'error': {'code': 429, 'message': 'You "
            "exceeded your current quota, please check your plan and billing details. For more "
            "information on this error, head to: https://ai.google.dev/gemini-api/docs/"
            "rate-limits.', 'status': 'RESOURCE_EXHAUSTED'}}]",
        ]
    if kind == 7:
        return "deepseek via openai SDK 402", [
            f"{py_head(rng, 'INFO', 'httpx')} HTTP Request: POST "
            'https://api.deepseek.com/chat/completions "HTTP/1.1 402 Payment Required"',
            f"{py_head(rng, 'ERROR', lg)} DeepSeek request failed for digest",
            *oa_frames,
            "openai.APIStatusError: Error code: 402 - {'error': {'message': 'Insufficient "
            "Balance', 'type': 'unknown_error', 'param': None, 'code': 'invalid_request_error'}}",
        ]
    return "psycopg2 traceback", [
        f"{py_head(rng, 'ERROR', 'app.db')} initial database connection failed",
        "Traceback (most recent call last):",
        '  File "/srv/app/app/db.py", line 28, in connect',
        "    conn = psycopg2.connect(dsn, connect_timeout=5)",
        f'  File "{frames_site}/psycopg2/__init__.py", line 122, in connect',
        "    conn = _connect(dsn, connection_factory=connection_factory, **kwasync)",
        'psycopg2.OperationalError: connection to server at "pg-primary.internal" (10.0.12.5), '
        "port 5432 failed: Connection refused",
        "\tIs the server running on that host and accepting TCP/IP connections?",
    ]


def heavy_normal(rng: random.Random) -> list[str]:
    """Ordinary lines of an OpenAI-heavy Python service (weights tuned to line shares of about
    9 % httpx INFO, 20 % JSON, 30 % DEBUG chatter, 1 % retry INFO, 40 % app lines)."""
    kind = rng.choices(
        ["httpx", "json", "debug", "retry", "llm_app", "app"],
        weights=[10.0, 27.5, 2.5, 1.3, 12.0, 44.0],
    )[0]
    if kind == "httpx":
        return [httpx_ok_line(rng, *openai_endpoint(rng))]
    if kind == "json":
        return [normal_json(rng, rng.choice(["structlog", "structlog-ts"]))]
    if kind == "debug":
        return debug_call(rng)
    if kind == "retry":
        return [retry_info_line(rng)]
    if kind == "llm_app":
        return [llm_app_line(rng)]
    return [app_line(rng)]


# --------------------------------------------------------------------------- access-heavy extras

# The statuses of the application's own failed requests, weighted as a busy API answers them.
OWN_STATUSES = [400, 401, 403, 404, 405, 409, 413, 422, 429, 500, 502, 503, 504]
OWN_STATUS_WEIGHTS = [10, 8, 4, 35, 2, 3, 1, 8, 6, 10, 5, 5, 3]
OWN_REASON = {
    **REASON,
    405: "Method Not Allowed",
    409: "Conflict",
    422: "Unprocessable Entity",
    504: "Gateway Timeout",
}
OWN_AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64)",
    "okhttp/4.12.0",
    "curl/8.5.0",
    "Go-http-client/1.1",
]
# (form, weight): the access-line forms, most of which fire the prefilter's status forms.
ACCESS_FORMS = [
    ("uvicorn", 24),  # `"POST /api/x HTTP/1.1" 404 Not Found`: the reason phrase form
    ("uvicorn.access", 8),  # the same under Python logging, as gen_log's mixed shape writes it
    ("nginx", 10),  # combined format: the status after the quoted request line
    ("gunicorn", 6),
    ("json", 14),  # `"status": 500`
    ("structlog", 8),  # `"status_code": 422`
    ("gin", 6),  # `[GIN] ... | 500 | ...`
    ("go logfmt", 6),  # `status=503`
    ("pino-http", 8),  # `"res":{"statusCode":404}`
    ("rails", 4),  # `Completed 500 Internal Server Error in 12ms`
    ("app.http", 6),  # the mixed shape's app.http line with a failing status
]


def own_request_line(rng: random.Random) -> tuple[str, str]:
    """(form, line): one of the application's own 4xx/5xx request lines. Nothing in it names
    OpenAI or a model: the classifier must drop every one of them."""
    form = rng.choices(ACCESS_FORMS, weights=[w for _, w in ACCESS_FORMS])[0][0]
    status = rng.choices(OWN_STATUSES, weights=OWN_STATUS_WEIGHTS)[0]
    reason = OWN_REASON[status]
    method = rng.choice(["GET", "GET", "POST", "POST", "PUT", "PATCH", "DELETE"])
    path = url_path(rng)
    ms = rng.uniform(0.3, 2500)
    rid = hexid(rng, 16)
    if form == "uvicorn":
        return form, (
            f"INFO:     {ip(rng)}:{rng.randrange(30000, 65000)} - "
            f'"{method} {path} HTTP/1.1" {status} {reason}'
        )
    if form == "uvicorn.access":
        return form, (
            f"{py_head(rng, 'INFO', 'uvicorn.access')} {ip(rng)}:{rng.randrange(30000, 65000)}"
            f' - "{method} {path} HTTP/1.1" {status} {reason}'
        )
    if form == "nginx":
        return form, (
            f'{ip(rng)} - - [{CLF_TS}] "{method} {path} HTTP/1.1" {status} '
            f'{rng.randrange(0, 900)} "-" "{rng.choice(OWN_AGENTS)}"'
        )
    if form == "gunicorn":
        return form, (
            f'{ip(rng)} - - [{CLF_TS}] "{method} {path} HTTP/1.1" {status} '
            f'{rng.randrange(0, 900)} "-" "{rng.choice(OWN_AGENTS)}" {int(ms * 1000)}'
        )
    if form == "json":
        rec: dict[str, Any] = {
            "ts": iso(rng),
            "level": "error" if status >= 500 else "warning",
            "logger": rng.choice(["api", "api.checkout", "api.auth"]),
            "msg": "request failed" if status >= 500 else "request rejected",
            "method": method,
            "path": path,
            "status": as_number(str(status)),
            "duration_ms": as_number(f"{ms:.1f}"),
            "request_id": rid,
        }
        return form, dumps(rec, compact=False)
    if form == "structlog":
        rec = {
            "event": "http.response",
            "http_method": method,
            "path": path,
            "status_code": as_number(str(status)),
            "latency_ms": as_number(f"{ms:.1f}"),
            "level": "warning" if status < 500 else "error",
            "timestamp": f"{ISO_TS}.{rng.randrange(10**6):06d}Z",
        }
        return form, dumps(rec, compact=False)
    if form == "gin":
        return form, (
            f'[GIN] {NGX_TS} | {status} | {ms:>10.4f}ms | {ip(rng):>15} | {method:<7} "{path}"'
        )
    if form == "go logfmt":
        return form, (
            f"time={ISO_TS}.{rng.randrange(1000):03d}Z level={'ERROR' if status >= 500 else 'WARN'}"
            f' msg="request" method={method} path={path} status={status} '
            f"duration={ms:.2f}ms request_id={rid}"
        )
    if form == "pino-http":
        rec = {
            "level": as_number("50" if status >= 500 else "40"),
            "time": as_number(f"{EPOCH_TS}{rng.randrange(1000):03d}"),
            "pid": as_number(str(rng.randrange(7, 90))),
            "hostname": f"web-{hexid(rng, 5)}",
            "req": {"id": as_number(str(rng.randrange(1, 999999))), "method": method, "url": path},
            "res": {"statusCode": as_number(str(status))},
            "responseTime": as_number(str(int(ms))),
            "msg": "request errored" if status >= 500 else "request completed",
        }
        return form, dumps(rec)
    if form == "rails":
        return form, (
            f"I, [{ISO_TS}.{rng.randrange(10**6):06d} #{rng.randrange(100, 9999)}]  INFO -- : "
            f"[{uuid4ish(rng)}] Completed {status} {reason} in {int(ms)}ms "
            f"(ActiveRecord: {ms / 7:.1f}ms | Allocations: {rng.randrange(500, 90000)})"
        )
    return form, (
        f"{py_head(rng, 'WARNING', 'app.http')} {method} {path} {status} {ms:.1f}ms "
        f"user={rng.randrange(1, 50000)} rid={rid}"
    )


# --------------------------------------------------------------------------- storm extras


def fmt_httpx_retried(rng: random.Random, err: ApiError) -> list[str]:
    """One failed request as openai-python logs it with its retries: httpx's status line, the
    retry notice, the status line again, the error. One finding: the status lines are the same
    failure as the error record (oai400d.sameerror)."""
    return [
        *fmt_httpx(rng, err.status),
        retry_info_line(rng),
        *fmt_httpx(rng, err.status),
        *fmt_py_v1(rng, err),
    ]


def storm_evidence(rng: random.Random) -> list[Record]:
    """A few dozen distinct OpenAI error events of an outage: rate limits with varying numbers
    (each call to api_errors draws new ones), 5xx, timeouts and connection errors, in the
    formats an openai-python service logs them. The storm repeats them, most of all the first."""
    formats: list[tuple[str, Callable[[random.Random, ApiError], list[str]]]] = [
        ("openai-python v1", fmt_py_v1),
        ("openai-python v1", fmt_py_v1),
        ("httpx lines, retry, openai-python v1", fmt_httpx_retried),
        ("openai-python v1 traceback", fmt_py_v1_traceback),
        ("JSON-lines log", fmt_jsonl),
        ("LiteLLM", fmt_litellm),
    ]
    events: list[Record] = []
    for _ in range(8):
        for err in api_errors(rng):
            if err.category in ("rate_limit", "server.error"):
                name, fmt = rng.choice(formats)
                events.append(Record(lines_to_bytes(fmt(rng, err)), err.category, name))
    for _ in range(2):
        for name, lines in network_events(rng):
            events.append(Record(lines_to_bytes(lines), "network", name))
    rng.shuffle(events)
    return events


# --------------------------------------------------------------------------- shape streams

Subs = tuple[tuple[bytes, bytes], ...]
Chunks = Iterator[tuple[list[Record], Subs]]
HEAVY_RECORDS_PER_CHUNK = 750  # ~1000 lines: the heavy shape has multi-line DEBUG records
HEAVY_LOOKALIKES_PER_CHUNK = 4


def timestamps_ext(t: datetime) -> Subs:
    return (
        *timestamps(t),
        (EPOCH_TS.encode(), str(int(t.timestamp())).encode()),
        (HTTP_DATE.encode(), t.strftime("%a, %d %b %Y %H:%M:%S GMT").encode()),
    )


def shape_chunks(
    rng: random.Random,
    normal: list[Record],
    evidence: dict[str, list[Record]],
    lookalikes: list[Record],
    per_chunk: int,
    lookalikes_per_chunk: int,
    substitutions: Callable[[datetime], Subs] = timestamps_ext,
) -> Chunks:
    categories = sorted(evidence)
    slots = range(per_chunk)
    t = START
    while True:
        recs = rng.choices(normal, k=per_chunk)
        where = rng.sample(slots, 1 + lookalikes_per_chunk)
        recs[where[0]] = rng.choice(evidence[rng.choice(categories)])
        for i in where[1:]:
            recs[i] = rng.choice(lookalikes)
        yield recs, substitutions(t)
        t += timedelta(seconds=1)


def heavy_chunks(seed: int) -> Chunks:
    rng = random.Random(f"openai-heavy:{seed}")
    normal = [Record(lines_to_bytes(heavy_normal(rng)), "", "normal") for _ in range(NORMAL_POOL)]
    evidence = heavy_evidence_pool(rng)
    lookalikes = []
    for _ in range(2000):
        name, lines = heavy_lookalike(rng)
        lookalikes.append(Record(lines_to_bytes(lines), "not_openai", name))
    return shape_chunks(
        rng, normal, evidence, lookalikes, HEAVY_RECORDS_PER_CHUNK, HEAVY_LOOKALIKES_PER_CHUNK
    )


def jsonl_chunks(seed: int) -> Chunks:
    rng = random.Random(f"jsonl:{seed}")
    normal = [
        Record(lines_to_bytes([normal_json(rng, json_style(rng))]), "", "normal")
        for _ in range(NORMAL_POOL)
    ]
    evidence = jsonl_evidence_pool(rng)
    lookalikes = []
    for _ in range(2000):
        name, line = jsonl_lookalike(rng)
        lookalikes.append(Record(lines_to_bytes([line]), "not_openai", name))
    return shape_chunks(rng, normal, evidence, lookalikes, RECORDS_PER_CHUNK, LOOKALIKES_PER_CHUNK)


ACCESS_ERRORS_PER_CHUNK = 200  # 20 % of the records (and about as many of the lines)
ACCESS_POOL = 8000


def access_chunks(seed: int) -> Chunks:
    """The mixed shape with 200 of each 1000 records replaced by the app's own 4xx/5xx request
    lines (own_request_line): the status forms fire on each, nothing attributes them."""
    rng = random.Random(f"access-heavy:{seed}")
    normal = [
        Record(lines_to_bytes([normal_record(rng)]), "", "normal") for _ in range(NORMAL_POOL)
    ]
    own = []
    for _ in range(ACCESS_POOL):
        form, line = own_request_line(rng)
        own.append(Record(lines_to_bytes([line]), "", f"own 4xx/5xx: {form}"))
    evidence = evidence_pool(rng)
    lookalikes = lookalike_pool(rng)
    categories = sorted(evidence)
    slots = range(RECORDS_PER_CHUNK)
    t = START
    while True:
        recs = rng.choices(normal, k=RECORDS_PER_CHUNK)
        where = rng.sample(slots, 1 + LOOKALIKES_PER_CHUNK + ACCESS_ERRORS_PER_CHUNK)
        recs[where[0]] = rng.choice(evidence[rng.choice(categories)])
        for i in where[1 : 1 + LOOKALIKES_PER_CHUNK]:
            recs[i] = rng.choice(lookalikes)
        for i in where[1 + LOOKALIKES_PER_CHUNK :]:
            recs[i] = rng.choice(own)
        yield recs, timestamps_ext(t)
        t += timedelta(seconds=1)


STORM_ERRORS_PER_CHUNK = 700  # of RECORDS_PER_CHUNK: an app in an outage logs little else


def storm_chunks(seed: int) -> Chunks:
    """An error storm: per 1000 records 700 OpenAI error events drawn from a few dozen distinct
    ones (storm_evidence) with Zipf weights (the first about a quarter of them), 5 look-alikes,
    the rest the mixed shape's ordinary lines."""
    rng = random.Random(f"storm:{seed}")
    normal = [
        Record(lines_to_bytes([normal_record(rng)]), "", "normal") for _ in range(NORMAL_POOL)
    ]
    evidence = storm_evidence(rng)
    weights = [1 / (rank + 1) for rank in range(len(evidence))]
    lookalikes = lookalike_pool(rng)
    slots = range(RECORDS_PER_CHUNK)
    t = START
    while True:
        recs = rng.choices(normal, k=RECORDS_PER_CHUNK)
        where = rng.sample(slots, STORM_ERRORS_PER_CHUNK + LOOKALIKES_PER_CHUNK)
        errors = rng.choices(evidence, weights=weights, k=STORM_ERRORS_PER_CHUNK)
        for i, rec in zip(where, errors, strict=False):
            recs[i] = rec
        for i in where[STORM_ERRORS_PER_CHUNK:]:
            recs[i] = rng.choice(lookalikes)
        yield recs, timestamps_ext(t)
        t += timedelta(seconds=1)


def line_kind(line: str) -> str:
    """What an ordinary line is, for the line shares in the meta file."""
    if line.startswith("{"):
        return "JSON record"
    if " httpx: HTTP Request: " in line:
        return "httpx INFO request line"
    if " openai._base_client: Retrying request" in line:
        return "openai retry INFO"
    if " DEBUG openai." in line:
        return "openai._base_client DEBUG"
    if " DEBUG httpcore." in line:
        return "httpcore DEBUG"
    return "other app line"


# --------------------------------------------------------------------------- writer


@dataclass
class Stats:
    shape: str = "mixed"
    bytes: int = 0
    lines: int = 0
    records: int = 0
    evidence_events: int = 0
    evidence_lines: int = 0
    lookalike_events: int = 0
    by_category: Counter[str] = field(default_factory=Counter)
    by_format: Counter[str] = field(default_factory=Counter)
    uses: Counter[Record] = field(default_factory=Counter)  # how often each record was written

    def lines_by_kind(self, subs: Subs) -> Counter[str]:
        """Lines per kind: error events, look-alikes, and ordinary lines by line_kind()."""
        kinds: Counter[str] = Counter()
        for rec, n in self.uses.items():
            text = fill(rec.data, subs).decode("utf-8")
            if rec.category == "not_openai":
                kinds["look-alike event"] += n * text.count("\n")
            elif rec.category:
                kinds["OpenAI error event"] += n * text.count("\n")
            elif rec.fmt != "normal":  # a kind of its own (access-heavy's own request lines)
                kinds[rec.fmt] += n * text.count("\n")
            else:
                for line in text.splitlines():
                    kinds[line_kind(line)] += n
        return kinds

    def literal_lines(self, subs: Subs) -> dict[str, int]:
        """Lines that contain each literal (case-insensitive), the prefilter's worst case."""
        counts = dict.fromkeys(LITERALS, 0)
        for rec, n in self.uses.items():
            for line in fill(rec.data, subs).decode("utf-8").lower().splitlines():
                for lit in LITERALS:
                    if lit in line:
                        counts[lit] += n
        return counts


LITERALS = ("openai", "error", "_error")


def timestamps(t: datetime) -> tuple[tuple[bytes, bytes], ...]:
    return (
        (PY_TS.encode(), t.strftime("%Y-%m-%d %H:%M:%S").encode()),
        (ISO_TS.encode(), t.strftime("%Y-%m-%dT%H:%M:%S").encode()),
        (CLF_TS.encode(), t.strftime("%d/%b/%Y:%H:%M:%S +0000").encode()),
        (NGX_TS.encode(), t.strftime("%Y/%m/%d %H:%M:%S").encode()),
    )


def fill(data: bytes, subs: tuple[tuple[bytes, bytes], ...]) -> bytes:
    for old, new in subs:
        data = data.replace(old, new)
    return data


def chunks(seed: int) -> Iterator[tuple[list[Record], tuple[tuple[bytes, bytes], ...]]]:
    """Endless stream of (records, timestamp substitutions); the same for a given seed."""
    rng = random.Random(seed)
    normal = [
        Record((normal_record(rng) + "\n").encode("utf-8"), "", "normal")
        for _ in range(NORMAL_POOL)
    ]
    evidence = evidence_pool(rng)
    lookalikes = lookalike_pool(rng)
    yield from shape_chunks(
        rng, normal, evidence, lookalikes, RECORDS_PER_CHUNK, LOOKALIKES_PER_CHUNK, timestamps
    )


SHAPES: dict[str, Callable[[int], Chunks]] = {
    "mixed": chunks,
    "openai-heavy": heavy_chunks,
    "jsonl": jsonl_chunks,
    "access-heavy": access_chunks,
    "storm": storm_chunks,
}


def generate(out: Path, size: int, seed: int = DEFAULT_SEED, shape: str = "mixed") -> Stats:
    """Write `size` bytes at most (whole records only) to `out`, atomically. Returns counts."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    st = Stats(shape=shape)

    def count(rec: Record, n_lines: int) -> None:
        if rec.category == "not_openai":
            st.lookalike_events += 1
        elif rec.category:
            st.evidence_events += 1
            st.evidence_lines += n_lines
            st.by_category[rec.category] += 1
            st.by_format[rec.fmt] += 1

    with open(tmp, "wb", buffering=8 << 20) as f:
        for recs, subs in SHAPES[shape](seed):
            data = fill(b"".join(r.data for r in recs), subs)
            if st.bytes + len(data) <= size:
                f.write(data)
                st.bytes += len(data)
                st.lines += data.count(b"\n")
                st.records += len(recs)
                st.uses.update(recs)
                for r in recs:
                    if r.category:
                        count(r, r.data.count(b"\n"))
                continue
            for r in recs:  # the last, partial chunk: whole records while they fit
                d = fill(r.data, subs)
                if st.bytes + len(d) > size:
                    break
                f.write(d)
                st.bytes += len(d)
                st.lines += d.count(b"\n")
                st.records += 1
                st.uses[r] += 1
                count(r, d.count(b"\n"))
            break
    os.replace(tmp, out)
    return st


def percent(n: int, total: int) -> float:
    return round(100 * n / max(total, 1), 3)


def write_meta(out: Path, st: Stats, size: int, seed: int, seconds: float) -> Path:
    subs = timestamps_ext(START)
    kinds = st.lines_by_kind(subs)
    literals = st.literal_lines(subs)
    meta = {
        "generator": "bench/gen_log.py",
        "generator_version": GENERATOR_VERSION,
        "shape": st.shape,
        "seed": seed,
        "requested_size": size,
        "bytes": st.bytes,
        "lines": st.lines,
        "records": st.records,
        "evidence_events": st.evidence_events,
        "evidence_lines": st.evidence_lines,
        "lookalike_events": st.lookalike_events,
        "evidence_by_category": dict(sorted(st.by_category.items())),
        "evidence_by_format": dict(sorted(st.by_format.items())),
        "evidence_distinct_records": sum(
            1 for rec in st.uses if rec.category and rec.category != "not_openai"
        ),
        "lines_by_kind": dict(kinds.most_common()),
        "lines_by_kind_percent": {k: percent(n, st.lines) for k, n in kinds.most_common()},
        "lines_with_literal_percent": {k: percent(n, st.lines) for k, n in literals.items()},
        "generation_seconds": round(seconds, 2),
    }
    path = meta_path(out)
    path.write_text(json.dumps(meta, indent=2) + "\n")
    return path


def meta_path(out: Path) -> Path:
    return out.with_name(out.name + ".meta.json")


def default_out(size_text: str, shape: str = "mixed") -> Path:
    return DEFAULT_WORK_DIR / f"{shape}-{size_text.strip().lower()}.log"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--shape", choices=list(SHAPES), default="mixed", help="what the log looks like"
    )
    ap.add_argument("--size", default="1G", help="target size, binary units (default 1G)")
    ap.add_argument(
        "--out", type=Path, help="output path (default /tmp/oai400d-bench/<shape>-<size>.log)"
    )
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = ap.parse_args(argv)
    try:
        size = parse_size(args.size)
    except ValueError as e:
        ap.error(str(e))
    out: Path = args.out or default_out(args.size, args.shape)

    t0 = time.perf_counter()
    st = generate(out, size, args.seed, args.shape)
    secs = time.perf_counter() - t0
    meta = write_meta(out, st, size, args.seed, secs)
    info = json.loads(meta.read_text())

    print(
        f"wrote {out} (shape {st.shape}): {st.bytes:,} bytes ({human_bytes(st.bytes)}), "
        f"{st.lines:,} lines, {st.records:,} records in {secs:.2f} s "
        f"({mb_per_s(st.bytes, secs):.0f} MB/s)"
    )
    print(
        f"OpenAI error evidence events: {st.evidence_events:,} "
        f"({100 * st.evidence_events / max(st.records, 1):.2f} % of records; "
        f"{st.evidence_lines:,} lines = {100 * st.evidence_lines / max(st.lines, 1):.2f} % "
        "of lines)"
    )
    print(
        f"look-alike events (must not be findings): {st.lookalike_events:,} "
        f"({100 * st.lookalike_events / max(st.records, 1):.2f} % of records)"
    )
    print("evidence by intended category:")
    for cat, n in sorted(st.by_category.items()):
        print(f"  {cat:32} {n:>9,}")
    print("evidence by format:")
    for fmt, n in sorted(st.by_format.items()):
        print(f"  {fmt:32} {n:>9,}")
    print("lines by kind:")
    for kind, n in info["lines_by_kind"].items():
        print(f"  {kind:32} {n:>11,} {info['lines_by_kind_percent'][kind]:>7.2f} %")
    literal_share = ", ".join(
        f"{k!r} {v:.1f} %" for k, v in info["lines_with_literal_percent"].items()
    )
    print(f"lines containing (any case): {literal_share}")
    print(f"meta: {meta}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
