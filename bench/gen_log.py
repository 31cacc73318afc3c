#!/usr/bin/env python3
"""Generate a deterministic mixed application log for benchmarking `oai400d classify`.

The same --seed and --size give the same bytes on every run, and a smaller file is a prefix
(up to the last whole record) of a bigger one. Memory stays bounded: the log is written in
chunks of RECORDS_PER_CHUNK records picked from pools of pre-rendered records, and only the
timestamps are substituted per chunk (one simulated second per chunk).

Per chunk of 1000 records: exactly 1 OpenAI error event (0.1 %) in one of many formats and
5 look-alike events (0.5 %) from other services or harmless OpenAI mentions; the rest are
ordinary web-app lines. Each OpenAI error event is written so that it should give exactly one
finding. A sidecar PATH.meta.json records the counts (by intended category and by format).

    python bench/gen_log.py --size 1G --out /tmp/oai400d-bench/mixed-1g.log
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchlib import DEFAULT_WORK_DIR, human_bytes, mb_per_s, parse_size

GENERATOR_VERSION = 1
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


@dataclass(frozen=True)
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


# --------------------------------------------------------------------------- writer


@dataclass
class Stats:
    bytes: int = 0
    lines: int = 0
    records: int = 0
    evidence_events: int = 0
    evidence_lines: int = 0
    lookalike_events: int = 0
    by_category: Counter[str] | None = None
    by_format: Counter[str] | None = None


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
    categories = sorted(evidence)
    lookalikes = lookalike_pool(rng)
    t = START
    slots = range(RECORDS_PER_CHUNK)
    while True:
        recs = rng.choices(normal, k=RECORDS_PER_CHUNK)
        where = rng.sample(slots, 1 + LOOKALIKES_PER_CHUNK)
        recs[where[0]] = rng.choice(evidence[rng.choice(categories)])
        for i in where[1:]:
            recs[i] = rng.choice(lookalikes)
        yield recs, timestamps(t)
        t += timedelta(seconds=1)


def generate(out: Path, size: int, seed: int = DEFAULT_SEED) -> Stats:
    """Write `size` bytes at most (whole records only) to `out`, atomically. Returns counts."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    st = Stats(by_category=Counter(), by_format=Counter())
    assert st.by_category is not None and st.by_format is not None

    def count(rec: Record, nbytes_lines: int) -> None:
        assert st.by_category is not None and st.by_format is not None
        if rec.category == "not_openai":
            st.lookalike_events += 1
        elif rec.category:
            st.evidence_events += 1
            st.evidence_lines += nbytes_lines
            st.by_category[rec.category] += 1
            st.by_format[rec.fmt] += 1

    with open(tmp, "wb", buffering=8 << 20) as f:
        for recs, subs in chunks(seed):
            data = fill(b"".join(r.data for r in recs), subs)
            if st.bytes + len(data) <= size:
                f.write(data)
                st.bytes += len(data)
                st.lines += data.count(b"\n")
                st.records += len(recs)
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
                count(r, d.count(b"\n"))
            break
    os.replace(tmp, out)
    return st


def write_meta(out: Path, st: Stats, size: int, seed: int, seconds: float) -> Path:
    assert st.by_category is not None and st.by_format is not None
    meta = {
        "generator": "bench/gen_log.py",
        "generator_version": GENERATOR_VERSION,
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
        "generation_seconds": round(seconds, 2),
    }
    path = meta_path(out)
    path.write_text(json.dumps(meta, indent=2) + "\n")
    return path


def meta_path(out: Path) -> Path:
    return out.with_name(out.name + ".meta.json")


def default_out(size_text: str) -> Path:
    return DEFAULT_WORK_DIR / f"mixed-{size_text.strip().lower()}.log"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="1G", help="target size, binary units (default 1G)")
    ap.add_argument(
        "--out", type=Path, help="output path (default /tmp/oai400d-bench/mixed-<size>.log)"
    )
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = ap.parse_args(argv)
    try:
        size = parse_size(args.size)
    except ValueError as e:
        ap.error(str(e))
    out: Path = args.out or default_out(args.size)

    t0 = time.perf_counter()
    st = generate(out, size, args.seed)
    secs = time.perf_counter() - t0
    meta = write_meta(out, st, size, args.seed, secs)

    assert st.by_category is not None and st.by_format is not None
    print(
        f"wrote {out}: {st.bytes:,} bytes ({human_bytes(st.bytes)}), {st.lines:,} lines, "
        f"{st.records:,} records in {secs:.2f} s ({mb_per_s(st.bytes, secs):.0f} MB/s)"
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
    print(f"meta: {meta}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
