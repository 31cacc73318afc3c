"""A fake OpenAI API: GET /v1/models and GET /v1/models/{id}, with OpenAI's error bodies.

    with FakeOpenAI(keys=["sk-test-key"]) as api:
        httpx.get(f"{api.base_url}/models", headers={"Authorization": "Bearer sk-test-key"})
        api.set_mode("quota")          # from now on: 429 insufficient_quota
        api.respond_next(502, "<html>Bad gateway</html>")   # just the next request

Every answer carries `x-request-id: req_<32 hex digits>` (a counter). Errors are
`{"error": {"message", "type", "param", "code"}}` as OpenAI sends them; with `azure=True` the key
is also read from the `api-key` header and a bad key gets Azure's `{"error": {"code": "401",
"message": "Access denied ..."}}`.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from ._http import FakeServer, Fault, FaultPlan, Incoming, RecordedRequest, Reply

Mode = Literal[
    "ok",
    "invalid_key",
    "no_key",
    "region",
    "restricted",
    "quota",
    "rate_limit",
    "server_error",
    "overloaded",
    "bad_gateway",
    "slow",
]
MODES: tuple[str, ...] = get_args(Mode)

DEFAULT_MODELS: tuple[str, ...] = (
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1-mini",
    "o4-mini",
    "text-embedding-3-small",
    "whisper-1",
)

API_KEYS_URL = "https://platform.openai.com/account/api-keys"

NO_KEY_MESSAGE = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with "
    "blank username) if you're accessing the API from your browser and are prompted for a "
    f"username and password. You can obtain an API key from {API_KEYS_URL}."
)
AZURE_401_MESSAGE = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
    "valid key for an active subscription and use a correct regional API endpoint for your "
    "resource."
)


def openai_error(
    message: str, type_: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """OpenAI's error body."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def masked_key(key: str) -> str:
    """A key as OpenAI shows it in "Incorrect API key provided: ...": prefix, stars, last 4."""
    if len(key) <= 8:
        return "*" * len(key)
    prefix = key[:8] if key.startswith(("sk-proj-", "sk-svcac")) else key[:3]
    return prefix + "*" * (len(key) - len(prefix) - 4) + key[-4:]


@dataclass(frozen=True)
class _Scripted:
    reply: Reply | None = None
    mode: str | None = None


class FakeOpenAI(FakeServer):
    """OpenAI's model endpoints on 127.0.0.1, with scripted failures.

    `keys`: the API keys accepted. `organization` / `project`: when set, an `OpenAI-Organization`
    / `OpenAI-Project` header naming another one gets 401 mismatched_organization /
    mismatched_project (no header is fine, as with OpenAI). `models`: the model IDs the key can
    see. Precedence for each request: fault plan (`fail_next`, `drop_next`, `down`, ...), then
    `respond_next` / `mode_next` scripts, then the mode (`set_mode`), then normal behaviour.
    """

    name = "openai"

    def __init__(
        self,
        *,
        keys: Iterable[str] = ("sk-test-0000000000000000000000000000abcd",),
        models: Iterable[str] = DEFAULT_MODELS,
        organization: str | None = None,
        project: str | None = None,
        azure: bool = False,
        slow_delay: float = 2.0,
    ) -> None:
        super().__init__()
        self.keys: set[str] = set(keys)
        self.organization = organization
        self.project = project
        self.azure = azure
        self.faults = FaultPlan()
        self._models: dict[str, int] = {}
        self.set_models(models)
        self._mode: str = "ok"
        self._slow_delay = slow_delay
        self._script: deque[_Scripted] = deque()
        self._request_ids = itertools.count(1)
        self.last_request_id: str | None = None

    # -- addresses -----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT/v1` (what `openai.base_url` takes)."""
        return f"{self.origin}/v1"

    @property
    def azure_base_url(self) -> str:
        """`http://127.0.0.1:PORT/openai/v1` (Azure OpenAI's v1 API layout)."""
        return f"{self.origin}/openai/v1"

    @property
    def key(self) -> str:
        """One accepted key (for tests that need any valid one)."""
        return sorted(self.keys)[0]

    # -- configuration -------------------------------------------------------------------------

    def set_models(self, models: Iterable[str]) -> None:
        """The models the key can see from now on."""
        with self._lock:
            self._models = {m: 1_700_000_000 + i * 86_400 for i, m in enumerate(models)}
        self._touch()

    def add_model(self, model: str) -> None:
        with self._lock:
            self._models.setdefault(model, 1_700_000_000 + len(self._models) * 86_400)

    def remove_model(self, model: str) -> None:
        with self._lock:
            self._models.pop(model, None)

    def set_mode(self, mode: Mode | str, *, delay: float | None = None) -> None:
        """Answer every request from now on as `mode`:

        ok (normal), invalid_key (401 invalid_api_key), no_key (401, no key given),
        region (403 unsupported_country_region_territory), restricted (401 missing scopes),
        quota (429 insufficient_quota), rate_limit (429 rate_limit_exceeded, retry-after),
        server_error (500), overloaded (503), bad_gateway (502 HTML page),
        slow (normal answer after `delay` seconds, default `slow_delay`).
        """
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
        with self._lock:
            self._mode = mode
            if delay is not None:
                self._slow_delay = delay

    @property
    def mode(self) -> str:
        with self._lock:
            return self._mode

    def respond_next(
        self,
        status: int,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        n: int = 1,
    ) -> None:
        """The next n requests get exactly this: a dict/list body is sent as JSON, a str or
        bytes as text/plain unless `headers` sets Content-Type. x-request-id is added."""
        if isinstance(body, bytes | str):
            raw = body.encode("utf-8") if isinstance(body, str) else body
            base = (("Content-Type", "text/plain; charset=utf-8"),)
            reply = Reply(status, raw, base)
        else:
            reply = Reply.json(status, body if body is not None else {})
        if headers:
            kept = tuple(
                (k, v) for k, v in reply.headers if k.lower() not in {h.lower() for h in headers}
            )
            reply = Reply(status, reply.body, (*kept, *headers.items()))
        with self._lock:
            self._script.extend([_Scripted(reply=reply)] * n)

    def mode_next(self, mode: Mode | str, n: int = 1) -> None:
        """The next n requests are answered as `mode` (see `set_mode`), then the mode resumes."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        with self._lock:
            self._script.extend([_Scripted(mode=mode)] * n)

    # -- faults (transport level) --------------------------------------------------------------

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """Next n requests: HTTP `status` with a server_error body."""
        self.faults.fail_next(n, status)

    def rate_limit_next(self, n: int = 1, retry_after: int = 2) -> None:
        """Next n requests: 429 rate_limit_exceeded with `retry-after`."""
        self.faults.rate_limit_next(n, retry_after)

    def slow_next(self, n: int = 1, delay: float = 1.0) -> None:
        self.faults.slow_next(n, delay)

    def drop_next(self, n: int = 1) -> None:
        """Next n requests: the connection is closed without an answer."""
        self.faults.drop_next(n)

    def down(self, how: Literal["status", "drop"] = "status", status: int = 503) -> None:
        self.faults.down(how, status)

    def up(self) -> None:
        self.faults.up()

    # -- what was received ---------------------------------------------------------------------

    def model_requests(self) -> list[RecordedRequest]:
        """Requests for the model list or one model, oldest first."""
        return [r for r in self.requests() if r.endpoint in ("models", "model")]

    # -- serving -------------------------------------------------------------------------------

    def _route(self, req: Incoming) -> tuple[str, Any]:
        path = req.path.rstrip("/")
        for prefix in ("/v1", "/openai/v1", "/openai"):
            if path.startswith(prefix + "/"):
                rest = path.removeprefix(prefix + "/")
                if rest == "models":
                    return "models", None
                if rest.startswith("models/"):
                    return "model", rest.removeprefix("models/")
        return "unknown", req.json()

    def _faults_for(self, endpoint: str) -> FaultPlan:
        return self.faults

    def _headers(self) -> tuple[tuple[str, str], ...]:
        request_id = f"req_{next(self._request_ids):032x}"
        self.last_request_id = request_id
        headers: list[tuple[str, str]] = [
            ("x-request-id", request_id),
            ("openai-version", "2020-10-01"),
            ("openai-processing-ms", "12"),
        ]
        if self.organization:
            headers.append(("openai-organization", self.organization))
        if self.azure:
            headers.append(("apim-request-id", f"00000000-0000-4000-8000-{request_id[-12:]}"))
        return tuple(headers)

    def _json(self, status: int, payload: Any, *extra: tuple[str, str]) -> Reply:
        return Reply.json(status, payload, (*self._headers(), *extra))

    def _fault_reply(self, endpoint: str, req: Incoming, params: Any, fault: Fault) -> Reply:
        if fault.kind == "rate_limit":
            return self._mode_reply("rate_limit", req, endpoint, params, fault.retry_after)
        if fault.kind == "error":
            return self._mode_reply(fault.error, req, endpoint, params)
        return self._json(fault.status, _server_error_body(fault.status))

    def _answer(self, endpoint: str, req: Incoming, params: Any) -> Reply:
        scripted = self._script.popleft() if self._script else None
        if scripted is not None and scripted.reply is not None:
            reply = scripted.reply
            return Reply(reply.status, reply.body, (*self._headers(), *reply.headers))
        mode = scripted.mode if scripted is not None and scripted.mode else self._mode
        return self._mode_reply(mode, req, endpoint, params)

    def _mode_reply(
        self, mode: str, req: Incoming, endpoint: str, params: Any, retry_after: int = 20
    ) -> Reply:
        if mode == "ok":
            return self._normal(req, endpoint, params)
        if mode == "slow":
            reply = self._normal(req, endpoint, params)
            return Reply(reply.status, reply.body, reply.headers, delay=self._slow_delay)
        if mode == "invalid_key":
            return self._bad_key(self._key_of(req) or "sk-unknown-key-000000")
        if mode == "no_key":
            return self._json(401, openai_error(NO_KEY_MESSAGE, "invalid_request_error"))
        if mode == "region":
            return self._json(
                403,
                openai_error(
                    "Country, region, or territory not supported",
                    "request_forbidden",
                    "unsupported_country_region_territory",
                ),
            )
        if mode == "restricted":
            return self._json(
                401,
                openai_error(
                    "You have insufficient permissions for this operation. Missing scopes: "
                    "api.model.read. Check that you have the correct role in your organization "
                    "(Reader, Writer, Owner) and project (Member, Owner), and if you're using a "
                    "restricted API key, that it has the necessary scopes.",
                    "invalid_request_error",
                ),
            )
        if mode == "quota":
            return self._json(
                429,
                openai_error(
                    "You exceeded your current quota, please check your plan and billing "
                    "details. For more information on this error, read the docs: "
                    "https://platform.openai.com/docs/guides/error-codes/api-errors.",
                    "insufficient_quota",
                    "insufficient_quota",
                ),
            )
        if mode == "rate_limit":
            org = self.organization or "org-FAKE000000000000000000000"
            return self._json(
                429,
                openai_error(
                    f"Rate limit reached for requests in organization {org} on requests per "
                    "min (RPM): Limit 3, Used 3, Requested 1. Please try again in "
                    f"{retry_after}s. Visit https://platform.openai.com/account/rate-limits to "
                    "learn more.",
                    "requests",
                    "rate_limit_exceeded",
                ),
                ("retry-after", str(retry_after)),
                ("x-ratelimit-limit-requests", "3"),
                ("x-ratelimit-remaining-requests", "0"),
                ("x-ratelimit-reset-requests", f"{retry_after}s"),
            )
        if mode == "server_error":
            return self._json(500, _server_error_body(500))
        if mode == "overloaded":
            return self._json(503, _server_error_body(503))
        if mode == "bad_gateway":
            return Reply.text(
                502,
                "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
                "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>"
                "\r\n</body>\r\n</html>\r\n",
                content_type="text/html",
                headers=self._headers(),
            )
        raise ValueError(f"unknown mode {mode!r}")

    def _key_of(self, req: Incoming) -> str | None:
        auth = req.header("authorization") or ""
        if auth.lower().startswith("bearer ") and auth[7:].strip():
            return auth[7:].strip()
        if self.azure:
            return req.header("api-key") or None
        return None

    def _bad_key(self, key: str) -> Reply:
        if self.azure:
            return self._json(401, {"error": {"code": "401", "message": AZURE_401_MESSAGE}})
        return self._json(
            401,
            openai_error(
                f"Incorrect API key provided: {masked_key(key)}. "
                f"You can find your API key at {API_KEYS_URL}.",
                "invalid_request_error",
                "invalid_api_key",
            ),
        )

    def _normal(self, req: Incoming, endpoint: str, params: Any) -> Reply:
        key = self._key_of(req)
        if key is None:
            if self.azure:
                return self._bad_key("")
            return self._json(401, openai_error(NO_KEY_MESSAGE, "invalid_request_error"))
        if key not in self.keys:
            return self._bad_key(key)
        org = req.header("openai-organization")
        if self.organization and org and org != self.organization:
            return self._json(
                401,
                openai_error(
                    "OpenAI-Organization header should match organization for API key",
                    "invalid_request_error",
                    "mismatched_organization",
                ),
            )
        project = req.header("openai-project")
        if self.project and project and project != self.project:
            return self._json(
                401,
                openai_error(
                    "OpenAI-Project header should match project for API key",
                    "invalid_request_error",
                    "mismatched_project",
                ),
            )
        if endpoint == "unknown" or req.method != "GET":
            return self._json(
                404,
                openai_error(f"Invalid URL ({req.method} {req.path})", "invalid_request_error"),
            )
        if endpoint == "models":
            data = [self._model_json(m, c) for m, c in self._models.items()]
            return self._json(200, {"object": "list", "data": data})
        model = str(params)
        if model not in self._models:
            return self._json(
                404,
                openai_error(
                    f"The model `{model}` does not exist or you do not have access to it.",
                    "invalid_request_error",
                    "model_not_found",
                ),
            )
        return self._json(200, self._model_json(model, self._models[model]))

    @staticmethod
    def _model_json(model: str, created: int) -> dict[str, Any]:
        owner = "openai" if model.startswith(("whisper", "dall-e", "tts")) else "system"
        return {"id": model, "object": "model", "created": created, "owned_by": owner}


def _server_error_body(status: int) -> dict[str, Any]:
    if status == 503:
        return openai_error(
            "The engine is currently overloaded, please try again later.", "server_error"
        )
    return openai_error(
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
    )
