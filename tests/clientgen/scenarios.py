"""What the scripted server answers in each scenario, and what that answer means (the ground truth).

Every HTTP scenario is an answer OpenAI really gives: its status, its headers and its error body
`{"error": {"message", "type", "param", "code"}}` with OpenAI's own wording (from the classifier's
rules, the seed note in shared/ and public issues). `category` and `code` are what one failed
request must yield in the corpus: the category by shared/taxonomy.md, the code exactly as the
server sent it (None when the body carries none, for bare statuses and transport faults).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MESSAGE_HELP = "https://platform.openai.com/account/api-keys"
CF_HTML = (
    "<html>\n<head><title>{status}</title></head>\n<body>\n<center><h1>{status}</h1></center>\n"
    "<hr><center>cloudflare</center>\n</body>\n</html>\n"
)


def error_body(
    message: str, type_: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


@dataclass(frozen=True)
class Scenario:
    """One scripted situation. `status`/`body` for an HTTP answer; `transport` for a fault."""

    name: str
    summary: str
    category: str | None  # None: a negative (a successful call)
    code: str | None = None
    endpoint: str = "chat"  # chat | embeddings | images | responses
    model: str = "gpt-4o-mini"
    status: int | None = None
    body: Any = None  # dict: JSON; str: sent as `content_type`; None: empty body
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    transport: str | None = None  # conn_refused tls_plain tls_self_signed timeout proxy_*
    retries: bool = False  # the library's default retries stay on
    debug: bool = False  # a success with the library's debug logging on (negative)
    params: dict[str, Any] = field(default_factory=dict)  # what the app asks for
    # The message text alone is OpenAI's own wording (taxonomy's evidence): a bare message
    # (print(e.message), console.error(err.message)) still shows whose error it is.
    distinctive: bool = False

    @property
    def negative(self) -> bool:
        return self.category is None

    @property
    def json_body(self) -> bool:
        return isinstance(self.body, dict)


RATE_HEADERS = (
    ("retry-after", "5"),
    ("x-ratelimit-limit-requests", "500"),
    ("x-ratelimit-limit-tokens", "30000"),
    ("x-ratelimit-remaining-requests", "499"),
    ("x-ratelimit-remaining-tokens", "2086"),
    ("x-ratelimit-reset-requests", "120ms"),
    ("x-ratelimit-reset-tokens", "4.47s"),
)
TPM_MESSAGE = (
    "Rate limit reached for gpt-4o-mini in organization org-FAKEFAKEFAKEFAKEFAKEFAKE on tokens "
    "per min (TPM): Limit 30000, Used 27914, Requested 4321. Please try again in 4.47s. Visit "
    "https://platform.openai.com/account/rate-limits to learn more."
)
QUOTA_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, read the docs: "
    "https://platform.openai.com/docs/guides/error-codes/api-errors."
)
SERVER_500_MESSAGE = (
    "The server had an error processing your request. Sorry about that! You can retry your "
    "request, or contact us through our help center at help.openai.com if you keep seeing this "
    "error. (Please include the request ID {request_id} in your email.)"
)
NO_KEY_MESSAGE = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with "
    "blank username) if you're accessing the API from your browser and are prompted for a "
    f"username and password. You can obtain an API key from {MESSAGE_HELP}."
)
INVALID_JSON_MESSAGE = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
    "your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was "
    "not valid JSON. If you have trouble figuring out how to fix this, please contact us through "
    "our help center at help.openai.com.)"
)
IMAGE_URL = "https://cdn.example.com/uploads/receipt-4211.png"

SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "context_length",
        "400 context_length_exceeded (chat)",
        "request.context_length",
        "context_length_exceeded",
        status=400,
        body=error_body(
            "This model's maximum context length is 128000 tokens. However, your messages "
            "resulted in 131072 tokens. Please reduce the length of the messages.",
            "invalid_request_error",
            "context_length_exceeded",
            "messages",
        ),
        distinctive=True,
    ),
    Scenario(
        "unsupported_parameter",
        "400 unsupported_parameter: max_tokens -> max_completion_tokens",
        "request.unsupported_parameter",
        "unsupported_parameter",
        status=400,
        body=error_body(
            "Unsupported parameter: 'max_tokens' is not supported with this model. "
            "Use 'max_completion_tokens' instead.",
            "invalid_request_error",
            "unsupported_parameter",
            "max_tokens",
        ),
        params={"max_tokens": 512},
        distinctive=True,
    ),
    Scenario(
        "unsupported_value",
        "400 unsupported_value: temperature",
        "request.unsupported_parameter",
        "unsupported_value",
        status=400,
        body=error_body(
            "Unsupported value: 'temperature' does not support 0.2 with this model. Only the "
            "default (1) value is supported.",
            "invalid_request_error",
            "unsupported_value",
            "temperature",
        ),
        params={"temperature": 0.2},
        distinctive=True,
    ),
    Scenario(
        "invalid_image_url",
        "400 invalid_image_url: Error while downloading",
        "request.image",
        "invalid_image_url",
        status=400,
        body=error_body(
            f"Error while downloading {IMAGE_URL}.",
            "invalid_request_error",
            "invalid_image_url",
            None,
        ),
        params={"image_url": IMAGE_URL},
        distinctive=True,
    ),
    Scenario(
        "invalid_value",
        "400 invalid_value: reasoning_effort",
        "request.invalid_parameter",
        "invalid_value",
        status=400,
        body=error_body(
            "Invalid value: 'maximum'. Supported values are: 'low', 'medium', and 'high'.",
            "invalid_request_error",
            "invalid_value",
            "reasoning_effort",
        ),
    ),
    Scenario(
        "missing_required_parameter",
        "400 missing_required_parameter: tools[0].function",
        "request.invalid_parameter",
        "missing_required_parameter",
        status=400,
        body=error_body(
            "Missing required parameter: 'tools[0].function'.",
            "invalid_request_error",
            "missing_required_parameter",
            "tools[0].function",
        ),
    ),
    Scenario(
        "invalid_json",
        "400 the JSON body could not be parsed (no code)",
        "request.invalid_parameter",
        None,
        status=400,
        body=error_body(INVALID_JSON_MESSAGE, "invalid_request_error"),
        distinctive=True,
    ),
    Scenario(
        "invalid_api_key",
        "401 invalid_api_key: Incorrect API key provided",
        "auth.invalid_api_key",
        "invalid_api_key",
        status=401,
        body=error_body(
            "Incorrect API key provided: {masked_key}. You can find your API key at "
            f"{MESSAGE_HELP}.",
            "invalid_request_error",
            "invalid_api_key",
        ),
        headers=(("www-authenticate", 'Bearer realm="OpenAI API"'),),
        distinctive=True,
    ),
    Scenario(
        "no_api_key",
        "401 You didn't provide an API key (no code)",
        "auth.invalid_api_key",
        None,
        status=401,
        body=error_body(NO_KEY_MESSAGE, "invalid_request_error"),
        headers=(("www-authenticate", 'Bearer realm="OpenAI API"'),),
        distinctive=True,
    ),
    Scenario(
        "unsupported_region",
        "403 unsupported_country_region_territory",
        "auth.permission",
        "unsupported_country_region_territory",
        status=403,
        body=error_body(
            "Country, region, or territory not supported",
            "request_forbidden",
            "unsupported_country_region_territory",
        ),
        distinctive=True,
    ),
    Scenario(
        "project_model_access",
        "403 Project does not have access to model (code model_not_found)",
        "auth.permission",
        "model_not_found",
        model="gpt-4o",
        status=403,
        body=error_body(
            "Project `proj_FAKEFAKEFAKEFAKEFAKEFAKE` does not have access to model `gpt-4o`",
            "invalid_request_error",
            "model_not_found",
        ),
        distinctive=True,
    ),
    Scenario(
        "model_not_found",
        "404 model_not_found",
        "request.model_not_found",
        "model_not_found",
        model="gpt-4-32k",
        status=404,
        body=error_body(
            "The model `gpt-4-32k` does not exist or you do not have access to it.",
            "invalid_request_error",
            "model_not_found",
        ),
        distinctive=True,
    ),
    Scenario(
        "conflict_409",
        "409 with an empty body (bare status)",
        "request.invalid_parameter",
        None,
        status=409,
        body=None,
    ),
    Scenario(
        "payload_too_large_413",
        "413 Request Entity Too Large, HTML page from the edge",
        "request.payload",
        None,
        status=413,
        body=CF_HTML.format(status="413 Request Entity Too Large"),
        content_type="text/html",
        params={
            "image_url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
        },
    ),
    Scenario(
        "unprocessable_422",
        "422 with a plain-text body (bare status)",
        "request.invalid_parameter",
        None,
        status=422,
        body="Unprocessable Entity",
        content_type="text/plain; charset=utf-8",
    ),
    Scenario(
        "rate_limit_tpm",
        "429 rate_limit_exceeded, tokens per min (TPM) with Limit/Used/Requested",
        "rate_limit",
        "rate_limit_exceeded",
        status=429,
        body=error_body(TPM_MESSAGE, "tokens", "rate_limit_exceeded"),
        headers=RATE_HEADERS,
        distinctive=True,
    ),
    Scenario(
        "insufficient_quota",
        "429 insufficient_quota",
        "quota.insufficient",
        "insufficient_quota",
        status=429,
        body=error_body(QUOTA_MESSAGE, "insufficient_quota", "insufficient_quota"),
        distinctive=True,
    ),
    Scenario(
        "server_error_500",
        "500 server_error: The server had an error processing your request",
        "server.error",
        None,
        status=500,
        body=error_body(SERVER_500_MESSAGE, "server_error"),
        distinctive=True,
    ),
    Scenario(
        "bad_gateway_502",
        "502 Bad Gateway, HTML page from the edge",
        "server.error",
        None,
        status=502,
        body=CF_HTML.format(status="502 Bad Gateway"),
        content_type="text/html",
    ),
    Scenario(
        "overloaded_503",
        "503 The engine is currently overloaded",
        "server.error",
        None,
        status=503,
        body=error_body(
            "The engine is currently overloaded, please try again later.", "server_error"
        ),
        distinctive=True,
    ),
    Scenario(
        "service_unavailable_503",
        "503 Service Unavailable, plain-text body",
        "server.error",
        None,
        status=503,
        body="Service Unavailable",
        content_type="text/plain; charset=utf-8",
    ),
    Scenario(
        "gateway_timeout_504",
        "504 Gateway Time-out, HTML page from the edge",
        "server.error",
        None,
        status=504,
        body=CF_HTML.format(status="504 Gateway Time-out"),
        content_type="text/html",
    ),
    Scenario(
        "embeddings_dimensions",
        "400 embeddings: This model does not support specifying dimensions",
        "request.unsupported_parameter",
        None,
        endpoint="embeddings",
        model="text-embedding-3-small",
        status=400,
        body=error_body(
            "This model does not support specifying dimensions.", "invalid_request_error"
        ),
        params={"dimensions": 256},
        distinctive=True,
    ),
    Scenario(
        "images_content_policy",
        "400 images: content_policy_violation (safety system)",
        "request.content_policy",
        "content_policy_violation",
        endpoint="images",
        model="dall-e-3",
        status=400,
        body=error_body(
            "Your request was rejected as a result of our safety system. Your prompt may contain "
            "text that is not allowed by our safety system.",
            "invalid_request_error",
            "content_policy_violation",
        ),
        distinctive=True,
    ),
    Scenario(
        "responses_context_window",
        "400 responses: input exceeds the context window (context_length_exceeded)",
        "request.context_length",
        "context_length_exceeded",
        endpoint="responses",
        model="gpt-4.1-mini",
        status=400,
        body=error_body(
            "Your input exceeds the context window of this model. Please adjust your input and "
            "try again.",
            "invalid_request_error",
            "context_length_exceeded",
            "input",
        ),
        distinctive=True,
    ),
    Scenario(
        "connection_refused",
        "transport: nothing listens on the port (connection refused)",
        "network",
        transport="conn_refused",
    ),
    Scenario(
        "tls_wrong_version",
        "transport: an https base URL pointing at a plain-HTTP server",
        "network",
        transport="tls_plain",
    ),
    Scenario(
        "tls_self_signed",
        "transport: an https server with a self-signed certificate",
        "network",
        transport="tls_self_signed",
    ),
    Scenario(
        "timeout",
        "transport: the server answers after the client's timeout",
        "network",
        transport="timeout",
    ),
    Scenario(
        "proxy_refused",
        "transport: HTTPS proxy on a closed port",
        "network",
        transport="proxy_refused",
    ),
    Scenario(
        "proxy_bad_gateway",
        "transport: HTTPS proxy answers CONNECT with 502",
        "network",
        transport="proxy_502",
    ),
    Scenario(
        "retries_rate_limit",
        "429 rate_limit_exceeded on every attempt, the library's default retries on",
        "rate_limit",
        "rate_limit_exceeded",
        status=429,
        body=error_body(TPM_MESSAGE, "tokens", "rate_limit_exceeded"),
        headers=(("retry-after", "1"), *RATE_HEADERS[1:]),
        retries=True,
        distinctive=True,
    ),
    Scenario(
        "retries_server_error",
        "500 on every attempt, the library's default retries on",
        "server.error",
        None,
        status=500,
        body=error_body(SERVER_500_MESSAGE, "server_error"),
        headers=(("retry-after-ms", "200"),),
        retries=True,
        distinctive=True,
    ),
    Scenario("ok_debug", "success, debug logging on (negative)", None, debug=True),
    Scenario(
        "ok_debug_embeddings",
        "success on embeddings, debug logging on (negative)",
        None,
        endpoint="embeddings",
        model="text-embedding-3-small",
        debug=True,
    ),
    Scenario(
        "ok_info",
        "success, INFO logging (the HTTP 200 request line; negative)",
        None,
    ),
)

BY_NAME = {s.name: s for s in SCENARIOS}
