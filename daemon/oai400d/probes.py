"""Health probes: is the API key accepted, do the configured models exist, is the OpenAI API up.

Each probe is one function `(settings, client) -> ProbeResult` that never raises for anything the
network or the far side can do, never sends a generation request (only GET /models, GET
/models/{id} and the status page JSON) and never puts a secret in what it returns: the key is shown
at most as `sk-…abcd`.

Statuses follow the Nagios plugin convention (exit codes 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN):
CRITICAL when OpenAI definitely refuses us (key, organization, region, quota, missing model,
major outage), WARNING for what may pass or only partly hurts (rate limit, 5xx, network, a
restricted key that cannot list models, degraded or partial outage), UNKNOWN when the probe could
not tell (no key configured, status page unreadable, an answer of a shape we do not know).
"""

from __future__ import annotations

import re
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import httpx

from oai400d import __version__
from oai400d.config import Settings, format_duration, mask_secret
from oai400d.model import ProbeResult

USER_AGENT = f"oai400d/{__version__}"

# Azure OpenAI's classic data plane (…/openai/models) needs a dated api-version; 2024-10-21 is the
# GA version whose "Models - List/Get" we rely on. The v1 API (…/openai/v1) takes none.
AZURE_API_VERSION = "2024-10-21"
_AZURE_HOSTS = (".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com")

# Overall status: a definite problem outranks "could not tell", so one probe's UNKNOWN never hides
# another's WARNING (the order Nagios aggregators use: CRITICAL > WARNING > UNKNOWN > OK).
_RANK = {"ok": 0, "unknown": 1, "warning": 2, "critical": 3}
EXIT_CODES = {"ok": 0, "warning": 1, "critical": 2, "unknown": 3}

NO_KEY = "no API key configured (OPENAI_API_KEY or credential openai-api-key)"

# -- fixes: what a person can do, per cause ------------------------------------------------------

_FIX_NO_KEY = (
    "Give the daemon the key the application uses: the systemd credential openai-api-key "
    "(LoadCredential=), the OPENAI_API_KEY environment variable, or openai.api_key in the config.",
    "Without a key only the status page is checked; the api_key and models probes stay UNKNOWN.",
)
_FIX_INVALID_KEY = (
    "The key is wrong, revoked or deleted: compare its last 4 characters with the API keys page "
    "of the right project, and create a new key if it is gone.",
    "Look for a key of another project, organization or provider (an Azure key sent to "
    "api.openai.com, or the reverse), and for quotes or stray characters in the secret.",
    "After rotating the key, restart every application that read the old one; long-running "
    "processes keep the value they started with.",
)
_FIX_COMPATIBLE_KEY = (
    "openai.base_url is not api.openai.com: the key must be one that this proxy, gateway or "
    "server accepts, which may be its own key rather than an OpenAI key.",
    "If it is Azure OpenAI behind a custom domain (API Management, Front Door), set "
    'openai.provider = "azure" so that the key goes in the api-key header.',
    "Otherwise check the key as for OpenAI: last 4 characters, rotation, stray quotes.",
)
_FIX_AZURE_KEY = (
    "The api-key must come from the same Azure resource as the endpoint: copy both from the "
    "Keys and Endpoint page of that resource into openai.base_url and the credential.",
    "After a key was regenerated in Azure, update every application and secret that holds the "
    "old one.",
)
_FIX_KEY_STRIPPED = (
    "OpenAI received no key although one was sent: a proxy or gateway on the way to "
    "openai.base_url strips the Authorization header; let it pass or use the gateway's own key.",
)
_FIX_DEACTIVATED = (
    "The account behind the key is deactivated: its owner should read OpenAI's email about it "
    "and contact support through help.openai.com; meanwhile use a key of an active organization.",
)
_FIX_ORGANIZATION = (
    "openai.organization (OpenAI-Organization) does not match the key: set it to the "
    "organization that owns the key (org-…, Settings > Organization > General) or leave it empty.",
    "Project and service-account keys already belong to one organization: an empty organization "
    "is the safe choice. Check the applications for the same mistake (OPENAI_ORG_ID).",
)
_FIX_PROJECT = (
    "openai.project (OpenAI-Project) does not match the key's project: set it to the project "
    "the key was created in (proj_…) or leave it empty.",
    "A project key (sk-proj-…) works in exactly one project; check the applications' "
    "OPENAI_PROJECT_ID for the same mistake.",
)
_FIX_RESTRICTED = (
    "The key is a restricted key without the Models read permission: the daemon cannot list "
    "models with it. Generation may still work, so the applications are not necessarily hurt.",
    "For full checks, give the key Read on Models in the API keys page, or give the daemon its "
    "own restricted key with only that permission.",
)
_FIX_REGION = (
    "OpenAI judges the public IP the requests leave from: check where this host really egresses "
    "(cloud region, NAT gateway, proxy, VPN) and route it through a supported country.",
    "Retrying from the same network cannot help; see https://platform.openai.com/docs/supported-countries.",
)
_FIX_IP_ALLOWLIST = (
    "The organization or project has an IP allowlist and this host's egress IP is not on it: "
    "add it under Settings > Security > IP allowlist.",
)
_FIX_FORBIDDEN = (
    "The key is valid but refused: check the project's permissions, the organization's "
    "verification and any proxy or firewall in front of openai.base_url.",
)
_FIX_QUOTA = (
    "The organization's credit or budget is spent: add credit or raise the budget limit in "
    "Settings > Billing (and the project's budget, if it has one).",
    "Every request fails until then; retrying cannot help.",
)
_FIX_RATE_LIMIT = (
    "The key's organization or project is at its rate limit: the applications will see 429s "
    "too. Check their retry with backoff, and the limits page for the usage tier.",
)
_FIX_SERVER = (
    "OpenAI is failing on its side: see the status_page probe and status.openai.com. "
    "Applications should retry with backoff; nothing to change here.",
)
_FIX_NETWORK = (
    "Check this host's route to openai.base_url: DNS, firewall, outbound proxy "
    "(HTTPS_PROXY), and whether the applications share the problem.",
)
_FIX_TLS = (
    "TLS failed: a proxy that intercepts TLS needs its CA in the system store (or SSL_CERT_FILE); "
    "also check the clock and that openai.base_url names the right host and scheme.",
)
_FIX_BASE_URL = (
    "Check openai.base_url: https://api.openai.com/v1 for OpenAI, "
    "https://RESOURCE.openai.azure.com/openai/v1 (or …/openai) for Azure, or your proxy's "
    "OpenAI-compatible root.",
)
_FIX_MODELS = (
    "Check the spelling of each missing model in openai.models against the models the key can "
    "see (GET /v1/models with the same key and project).",
    "A model_not_found in the applications' logs usually has this cause: the model was retired "
    "or renamed, is not enabled for this project, or belongs to another organization "
    "(fine-tuned models).",
    "On Azure, openai.models must name models of the resource, not deployment names.",
)
_FIX_MODEL_DENIED = (
    "The models exist but this key's project may not use them: allow them in the project's "
    "model settings (Limits), or check the usage tier and organization verification they need.",
)
_FIX_STATUS_PAGE = (
    "Set probes.status_url to https://status.openai.com/api/v2/summary.json (Statuspage "
    "format) or https://status.openai.com/proxy/status.openai.com (incident.io format).",
)
_FIX_OUTAGE = (
    "Nothing to fix on your side: follow the incident link. Expect errors and latency in the "
    "affected components; retries with backoff or a fallback (another model, Azure OpenAI) help.",
)

# -- the status page: which components matter to API users -------------------------------------

_API_GROUPS = frozenset({"api", "apis", "openai api", "api platform"})
_API_NAMES = frozenset(
    {
        "api",
        "apis",
        "chat completions",
        "completions",
        "responses",
        "embeddings",
        "files",
        "batch",
        "fine-tuning",
        "fine tuning",
        "images",
        "audio",
        "realtime",
        "moderations",
        "assistants",
        "vector stores",
        "agents",
    }
)
# Groups of consumer products: their components never count, whatever they are called.
_CONSUMER_GROUPS = frozenset({"chatgpt", "sora", "codex", "labs", "playground", "fedramp"})

# Component status words of both formats, by severity: 0 fine, 1 degraded, 2 partial, 3 outage.
_SEVERITY = {
    "operational": 0,
    "under_maintenance": 0,
    "degraded_performance": 1,
    "partial_outage": 2,
    "major_outage": 3,
    "full_outage": 3,
}
_LABELS = {
    "degraded_performance": "degraded performance",
    "partial_outage": "partial outage",
    "major_outage": "major outage",
    "full_outage": "full outage",
}


# -- plumbing: one GET, its failure in words, the error body ------------------------------------


@dataclass(frozen=True, slots=True)
class _Answer:
    """What one GET produced: a response, or why there is none (already in words)."""

    response: httpx.Response | None
    failure: str | None
    tls: bool
    elapsed_ms: int


@dataclass(frozen=True, slots=True)
class _ApiError:
    """The parts of a non-2xx API answer the verdict needs; `message` is already scrubbed."""

    status: int
    code: str | None
    type: str | None
    message: str
    request_id: str | None
    is_json: bool
    location: str | None = None

    def details(self) -> dict[str, Any]:
        """For ProbeResult.details."""
        return {
            "http_status": self.status,
            "error_code": self.code,
            "error_type": self.type,
            "message": self.message,
            "request_id": self.request_id,
        }


@dataclass(frozen=True, slots=True)
class _Verdict:
    """A judged failure: status, words (without the probe's prefix), cause, fixes."""

    status: str
    summary: str
    cause: str | None
    fixes: tuple[str, ...]
    details: dict[str, Any] = field(default_factory=dict)


def _get(client: httpx.Client, url: str, headers: dict[str, str], timeout: float) -> _Answer:
    """GET url; every transport failure becomes words, never an exception."""
    started = time.monotonic()
    failure: str | None = None
    tls = False
    response: httpx.Response | None = None
    try:
        response = client.get(url, headers=headers)
    except httpx.TimeoutException:
        failure = f"timed out after {format_duration(timeout)}"
    except httpx.ProxyError as exc:
        failure = f"proxy failed: {_innermost(exc)}"
    except httpx.ConnectError as exc:
        tls, failure = _describe_connect(exc)
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
        failure = "connection closed without an answer"
    except httpx.HTTPError as exc:
        failure = f"request failed: {type(exc).__name__}"
    except httpx.InvalidURL:
        failure = "invalid URL"
    elapsed_ms = round((time.monotonic() - started) * 1000)
    return _Answer(response, failure, tls, elapsed_ms)


def _chain(exc: BaseException) -> Iterable[BaseException]:
    """The exception and its causes (httpx wraps httpcore, which wraps the socket's OSError)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _innermost(exc: BaseException) -> str:
    """The deepest cause's message (the OS's words: "Connection refused")."""
    last = list(_chain(exc))[-1]
    if isinstance(last, OSError) and last.strerror:
        return last.strerror
    return str(last) or type(last).__name__


def _describe_connect(exc: httpx.ConnectError) -> tuple[bool, str]:
    """(is it TLS, words) for a failed connection."""
    for cause in _chain(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return True, f"TLS certificate verify failed: {cause.verify_message}"
        if isinstance(cause, ssl.SSLError):
            reason = (cause.reason or str(cause)).lower().replace("_", " ")
            return True, f"TLS error: {reason}"
        if isinstance(cause, socket.gaierror):
            return False, f"cannot connect: {cause.strerror or 'name resolution failed'}"
    return False, f"cannot connect: {_innermost(exc)}"


_KEYLIKE = re.compile(r"\b(sk-|rk-|sess-)[A-Za-z0-9_*\-]{4,}")


def _mask_key(key: str) -> str:
    """A key as a person may see it: `sk-…abcd` at most."""
    if key.startswith("sk-") and len(key) > 12:
        return f"sk-…{key[-4:]}"
    return mask_secret(key)


def _scrub(text: str, key: str | None) -> str:
    """Remove the key, and anything that looks like one, from text that came from elsewhere."""
    if key:
        text = text.replace(key, _mask_key(key))
    return _KEYLIKE.sub(lambda m: f"{m.group(1)}…{m.group(0)[-4:]}", text)


def _public_url(url: str) -> str:
    """The URL without user:password or query (either may carry a secret)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _json(response: httpx.Response) -> Any:
    """The body as JSON, or None when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None


def _api_error(response: httpx.Response, key: str | None) -> _ApiError:
    """Read OpenAI's `{"error": {message, type, param, code}}` (or Azure's, or anything)."""
    body = _json(response)
    code = type_ = None
    message = ""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = error.get("code")
        type_ = error.get("type")
        message = str(error.get("message") or "")
    elif isinstance(body, dict):
        message = str(body.get("message") or body.get("detail") or "")
    request_id = response.headers.get("x-request-id") or response.headers.get("apim-request-id")
    return _ApiError(
        status=response.status_code,
        code=str(code) if code is not None else None,
        type=str(type_) if type_ is not None else None,
        message=_scrub(message, key)[:500],
        request_id=request_id,
        is_json=body is not None,
        location=response.headers.get("location"),
    )


# -- the API side -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Api:
    """How to talk to the configured API: OpenAI, Azure OpenAI (v1 or classic) or a proxy."""

    base_url: str
    key: str
    provider: str  # "openai", "azure" or "compatible"
    api_version: str | None  # Azure classic only
    organization: str
    project: str

    @property
    def azure(self) -> bool:
        return self.provider == "azure"

    def url(self, path: str) -> str:
        """base_url + path, keeping the base's query and adding api-version where needed."""
        parts = urlsplit(self.base_url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        if self.api_version and not any(k == "api-version" for k, _ in query):
            query.append(("api-version", self.api_version))
        full_path = parts.path.rstrip("/") + "/" + path
        return urlunsplit((parts.scheme, parts.netloc, full_path, urlencode(query), ""))

    def headers(self) -> dict[str, str]:
        """The auth headers: Bearer + organization/project for OpenAI, api-key for Azure."""
        if self.azure:
            return {"api-key": self.key, "Accept": "application/json"}
        headers = {"Authorization": f"Bearer {self.key}", "Accept": "application/json"}
        if self.organization:
            headers["OpenAI-Organization"] = self.organization
        if self.project:
            headers["OpenAI-Project"] = self.project
        return headers


def provider_of(base_url: str, configured: str = "auto") -> str:
    """ "openai", "azure" or "compatible": as configured, else from the host name alone.

    Never from the path: gateways and proxies serve `/openai/v1` too, and taking them for Azure
    sends the key in the wrong header, which reads as a rejected key."""
    if configured != "auto":
        return configured
    host = (urlsplit(base_url).hostname or "").lower()
    if host.endswith(_AZURE_HOSTS):
        return "azure"
    if host == "api.openai.com":
        return "openai"
    return "compatible"


def _api(settings: Settings) -> _Api | None:
    """The API to probe, or None when no key is configured."""
    secret = settings.openai.api_key
    key = secret.get_secret_value() if secret is not None else ""
    if not key:
        return None
    base_url = settings.openai.base_url
    provider = provider_of(base_url, settings.openai.provider)
    segments = [s for s in urlsplit(base_url).path.lower().split("/") if s]
    classic = provider == "azure" and "v1" not in segments
    return _Api(
        base_url=base_url,
        key=key,
        provider=provider,
        api_version=AZURE_API_VERSION if classic else None,
        organization=settings.openai.organization,
        project=settings.openai.project,
    )


def _sendable(key: str) -> bool:
    """Whether the key can travel in an HTTP header (httpx would raise, quoting it, if not)."""
    return key.isascii() and key.isprintable() and " " not in key


_SCOPES = re.compile(r"Missing scopes?:\s*([\w.:, -]+?)\.(?:\s|$)")


def _judge(error: _ApiError, api: _Api) -> _Verdict:
    """The verdict on a non-2xx answer to GET /models (or /models/{id}) that is not 'missing'."""
    status, code, message = error.status, (error.code or ""), error.message
    text = f"{code} {error.type or ''} {message}".lower()
    rid = f" ({error.request_id})" if error.request_id else ""
    details = error.details()

    def verdict(level: str, summary: str, cause: str | None, fixes: tuple[str, ...]) -> _Verdict:
        return _Verdict(level, summary, cause, fixes, details)

    if "missing scope" in text or "insufficient permissions" in text:
        found = _SCOPES.search(message)
        scope = found.group(1) if found else "api.model.read"
        return verdict(
            "warning",
            f"restricted key cannot list models ({status}, missing scope {scope}); "
            "it may still work for generation",
            "auth.permission",
            _FIX_RESTRICTED,
        )
    if status == 401:
        if "mismatched_organization" in text or "organization header should match" in text:
            return verdict(
                "critical",
                "wrong organization: 401 mismatched_organization",
                "auth.organization",
                _FIX_ORGANIZATION,
            )
        if "no such organization" in text or "member of an organization" in text:
            return verdict(
                "critical",
                f"wrong organization: 401 {message.split('.')[0]}",
                "auth.organization",
                _FIX_ORGANIZATION,
            )
        if "mismatched_project" in text or "project header should match" in text:
            return verdict(
                "critical",
                "wrong project: 401 mismatched_project",
                "auth.organization",
                _FIX_PROJECT,
            )
        if "account_deactivated" in text or "deactivated" in text:
            return verdict(
                "critical",
                "key rejected: 401 account_deactivated",
                "auth.invalid_api_key",
                _FIX_DEACTIVATED,
            )
        if "didn't provide an api key" in text or "didn’t provide an api key" in text:
            return verdict(
                "critical",
                "key rejected: 401 no key reached the API (a proxy may strip it)",
                "auth.invalid_api_key",
                _FIX_KEY_STRIPPED,
            )
        if api.azure or "subscription key" in text:
            return verdict(
                "critical",
                "key rejected: 401 (Azure: invalid subscription key or wrong API endpoint)",
                "auth.invalid_api_key",
                _FIX_AZURE_KEY,
            )
        if api.provider == "compatible":
            return verdict(
                "critical",
                f"key rejected: 401 {code or 'invalid_api_key'} "
                f"(by the OpenAI-compatible server at {urlsplit(api.base_url).hostname})",
                "auth.invalid_api_key",
                _FIX_COMPATIBLE_KEY,
            )
        return verdict(
            "critical",
            f"key rejected: 401 {code or 'invalid_api_key'}",
            "auth.invalid_api_key",
            _FIX_INVALID_KEY,
        )
    if status == 403:
        if "unsupported_country" in text or "country, region" in text:
            return verdict(
                "critical",
                "region not supported: 403 unsupported_country_region_territory",
                "auth.permission",
                _FIX_REGION,
            )
        if "ip_not_authorized" in text or ("not authorized" in text and " ip" in text):
            return verdict(
                "critical",
                "this host's IP is not allowed: 403 ip_not_authorized",
                "auth.permission",
                _FIX_IP_ALLOWLIST,
            )
        what = code or error.type or ("not JSON: a proxy or firewall?" if not error.is_json else "")
        return verdict(
            "critical", f"access denied: 403 {what}".rstrip(), "auth.permission", _FIX_FORBIDDEN
        )
    if status == 429:
        if any(
            w in text for w in ("insufficient_quota", "billing_", "exceeded your current quota")
        ):
            return verdict(
                "critical",
                f"quota exhausted: 429 {code or 'insufficient_quota'}",
                "quota.insufficient",
                _FIX_QUOTA,
            )
        return verdict(
            "warning",
            f"rate limited: 429 {code or 'rate_limit_exceeded'}{rid}",
            "rate_limit",
            _FIX_RATE_LIMIT,
        )
    if status >= 500:
        return verdict("warning", f"OpenAI API answered {status}{rid}", "server.error", _FIX_SERVER)
    if 300 <= status < 400:
        where = f" to {_public_url(error.location)}" if error.location else ""
        return verdict(
            "unknown",
            f"OpenAI API answered {status} (redirect{where}): set openai.base_url to the final URL",
            None,
            _FIX_BASE_URL,
        )
    if status == 404:
        return verdict(
            "unknown",
            "GET /models answered 404: is openai.base_url right?",
            None,
            _FIX_BASE_URL,
        )
    return verdict(
        "unknown", f"unexpected answer {status} {code}{rid}".rstrip(), None, _FIX_BASE_URL
    )


def _network_verdict(answer: _Answer) -> _Verdict:
    """A transport failure talking to the API: WARNING, cause network."""
    fixes = _FIX_TLS if answer.tls else _FIX_NETWORK
    return _Verdict("warning", answer.failure or "request failed", "network", fixes)


def _no_key_result(name: str, prefix: str = "") -> ProbeResult:
    """UNKNOWN: there is no key to check."""
    return ProbeResult(name, "unknown", f"{prefix}{NO_KEY}", 0, _FIX_NO_KEY, {}, None)


def _unsendable_result(name: str, api: _Api, prefix: str = "") -> ProbeResult:
    """CRITICAL: the key cannot even be put in a header (and must not reach httpx's errors)."""
    return ProbeResult(
        name,
        "critical",
        f"{prefix}the configured API key has whitespace or non-ASCII characters and cannot be sent",
        0,
        (
            "Re-create the credential from the keys page; look for a pasted line break, a space or "
            "typographic quotes inside the key.",
        ),
        {"key": _mask_key(api.key)},
        "auth.invalid_api_key",
    )


def probe_api_key(settings: Settings, client: httpx.Client) -> ProbeResult:
    """GET /models with the key: is it accepted, and if not, why."""
    name = "api_key"
    api = _api(settings)
    if api is None:
        return _no_key_result(name)
    if not _sendable(api.key):
        return _unsendable_result(name, api)
    answer = _get(client, api.url("models"), api.headers(), settings.probes.timeout)
    where = {
        "url": _public_url(api.url("models")),
        "key": _mask_key(api.key),
        "provider": api.provider,
        "azure": api.azure,
    }
    if answer.response is None:
        v = _network_verdict(answer)
        return ProbeResult(name, v.status, v.summary, answer.elapsed_ms, v.fixes, where, v.cause)
    response = answer.response
    if response.is_success:
        body = _json(response)
        data = body.get("data") if isinstance(body, dict) else None
        request_id = response.headers.get("x-request-id")
        if not isinstance(data, list):
            return ProbeResult(
                name,
                "unknown",
                f"GET /models answered {response.status_code} without a model list: "
                "is openai.base_url right?",
                answer.elapsed_ms,
                _FIX_BASE_URL,
                {**where, "content_type": response.headers.get("content-type")},
            )
        return ProbeResult(
            name,
            "ok",
            f"key accepted ({len(data)} models visible)",
            answer.elapsed_ms,
            (),
            {**where, "models_visible": len(data), "request_id": request_id},
        )
    v = _judge(_api_error(response, api.key), api)
    return ProbeResult(
        name, v.status, v.summary, answer.elapsed_ms, v.fixes, {**where, **v.details}, v.cause
    )


def _model_missing(error: _ApiError) -> bool:
    """A 404 for /models/{id} that says the model does not exist (not a wrong base_url)."""
    if error.status != 404 or not error.is_json:
        return False
    return not error.message.lower().startswith("invalid url")


def _model_denied(error: _ApiError) -> bool:
    """A 403 saying the project may not use this model (it exists)."""
    text = error.message.lower()
    return error.status == 403 and (
        "does not have access to model" in text or ("not allowed to" in text and "model" in text)
    )


def probe_models(settings: Settings, client: httpx.Client) -> ProbeResult:
    """GET /models/{id} for each configured model: do they exist for this key."""
    name = "models"
    prefix = "models not checked: "
    models = list(dict.fromkeys(settings.openai.models))
    if not models:
        return ProbeResult(name, "ok", "no models configured (openai.models is empty)", 0)
    api = _api(settings)
    if api is None:
        return _no_key_result(name, prefix)
    if not _sendable(api.key):
        return _unsendable_result(name, api, prefix)
    available: list[str] = []
    missing: list[str] = []
    denied: list[str] = []
    elapsed = 0
    failure: _Verdict | None = None
    for model in models:
        answer = _get(
            client,
            api.url(f"models/{quote(model, safe=':')}"),
            api.headers(),
            settings.probes.timeout,
        )
        elapsed += answer.elapsed_ms
        if answer.response is None:
            failure = _network_verdict(answer)
            break
        response = answer.response
        if response.is_success and isinstance(_json(response), dict):
            available.append(model)
            continue
        if response.is_success:
            failure = _Verdict(
                "unknown",
                f"GET /models/{model} answered {response.status_code} without a model: "
                "is openai.base_url right?",
                None,
                _FIX_BASE_URL,
            )
            break
        error = _api_error(response, api.key)
        if _model_missing(error):
            missing.append(model)
        elif _model_denied(error):
            denied.append(model)
        else:
            failure = _judge(error, api)
            break
    details: dict[str, Any] = {
        "available": available,
        "missing": missing,
        "denied": denied,
        "unchecked": [m for m in models if m not in available + missing + denied],
        "key": _mask_key(api.key),
    }
    total = len(models)
    if missing:
        return ProbeResult(
            name,
            "critical",
            f"{len(missing)}/{total} configured models missing: {', '.join(missing)}",
            elapsed,
            _FIX_MODELS,
            details,
            "request.model_not_found",
        )
    if failure is not None:
        return ProbeResult(
            name,
            failure.status,
            prefix + failure.summary,
            elapsed,
            failure.fixes,
            {**details, **failure.details},
            failure.cause,
        )
    if denied:
        return ProbeResult(
            name,
            "critical",
            f"{len(denied)}/{total} configured models not allowed for this key: "
            + ", ".join(denied),
            elapsed,
            _FIX_MODEL_DENIED,
            details,
            "auth.permission",
        )
    return ProbeResult(
        name, "ok", f"{total}/{total} configured models available", elapsed, (), details
    )


# -- the status page ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Component:
    """One status page component, with the name of its group (None: ungrouped)."""

    name: str
    status: str
    group: str | None


@dataclass(frozen=True, slots=True)
class _Incident:
    """One unresolved incident and the names of the components it affects."""

    name: str
    impact: str
    status: str
    url: str
    components: tuple[str, ...]


class _Shape(ValueError):
    """The status document is not of a shape this probe knows."""


def _str(value: Any, what: str) -> str:
    """value, when it is a string; else the document is of another shape."""
    if not isinstance(value, str):
        raise _Shape(f"{what} is not a string")
    return value


def _list(value: Any, what: str) -> list[Any]:
    """value, when it is a list; else the document is of another shape."""
    if not isinstance(value, list):
        raise _Shape(f"{what} is not a list")
    return value


def _parse_statuspage(doc: dict[str, Any]) -> tuple[list[_Component], list[_Incident]]:
    """Statuspage's summary.json: components (groups have `group: true`), incidents."""
    raw = [c for c in _list(doc["components"], "components") if isinstance(c, dict)]
    groups = {c.get("id"): _str(c.get("name"), "group name") for c in raw if c.get("group") is True}
    components = [
        _Component(
            _str(c.get("name"), "component name"),
            _str(c.get("status"), "component status"),
            groups.get(c.get("group_id")),
        )
        for c in raw
        if c.get("group") is not True
    ]
    page_url = doc.get("page", {}).get("url") if isinstance(doc.get("page"), dict) else None
    incidents = []
    for i in _list(doc.get("incidents") or [], "incidents"):
        if not isinstance(i, dict):
            continue
        link = i.get("shortlink") or (f"{page_url}/incidents/{i.get('id')}" if page_url else "")
        affected = tuple(
            str(c.get("name")) for c in i.get("components") or [] if isinstance(c, dict)
        )
        incidents.append(
            _Incident(
                str(i.get("name") or "(unnamed)"),
                str(i.get("impact") or "unknown"),
                str(i.get("status") or "unknown"),
                str(link),
                affected,
            )
        )
    return components, incidents


def _parse_incidentio(summary: dict[str, Any]) -> tuple[list[_Component], list[_Incident]]:
    """incident.io's proxy JSON: components, their groups (structure), affected_components."""
    names: dict[str, str] = {}
    for c in _list(summary["components"], "summary.components"):
        if isinstance(c, dict):
            names[_str(c.get("id"), "component id")] = _str(c.get("name"), "component name")
    group_of: dict[str, str] = {}
    structure = summary.get("structure")
    items = structure.get("items", []) if isinstance(structure, dict) else []
    for item in items if isinstance(items, list) else []:
        group = item.get("group") if isinstance(item, dict) else None
        if isinstance(group, dict):
            for member in group.get("components") or []:
                if isinstance(member, dict) and "component_id" in member:
                    group_of[str(member["component_id"])] = str(group.get("name") or "")
    status_of: dict[str, str] = {}
    for a in _list(summary.get("affected_components") or [], "summary.affected_components"):
        if isinstance(a, dict):
            status_of[str(a.get("component_id"))] = _str(a.get("status"), "affected status")
    components = [
        _Component(name, status_of.get(cid, "operational"), group_of.get(cid) or None)
        for cid, name in names.items()
    ]
    incidents = []
    for i in _list(summary.get("ongoing_incidents") or [], "summary.ongoing_incidents"):
        if not isinstance(i, dict):
            continue
        affected = tuple(
            names.get(str(a.get("component_id")), str(a.get("component_id")))
            for a in i.get("affected_components") or []
            if isinstance(a, dict)
        )
        incidents.append(
            _Incident(
                str(i.get("name") or "(unnamed)"),
                str(i.get("current_worst_impact") or "unknown"),
                str(i.get("status") or "unknown"),
                str(i.get("url") or ""),
                affected,
            )
        )
    return components, incidents


def _parse_status(doc: Any) -> tuple[str, list[_Component], list[_Incident]]:
    """Detect the format by content: (format name, components, incidents); else raise _Shape."""
    summary = doc.get("summary") if isinstance(doc, dict) else None
    try:
        components = doc.get("components") if isinstance(doc, dict) else None
        if isinstance(components, list) and ("page" in doc or "status" in doc):
            return "statuspage", *_parse_statuspage(doc)
        if isinstance(summary, dict) and isinstance(summary.get("components"), list):
            return "incident.io", *_parse_incidentio(summary)
    except (_Shape, AttributeError, TypeError) as exc:
        raise _Shape(f"JSON of an unexpected shape ({exc})") from None
    keys = ", ".join(sorted(doc)[:6]) if isinstance(doc, dict) else type(doc).__name__
    raise _Shape(f"JSON of an unknown shape ({keys})")


def _is_api_component(c: _Component) -> bool:
    """A component API users depend on: in an API group, or an API product name outside the
    consumer products' groups (ChatGPT's "File uploads" is not the API's "Files")."""
    group = (c.group or "").lower()
    if group in _API_GROUPS:
        return True
    return c.name.lower() in _API_NAMES and group not in _CONSUMER_GROUPS


def _watched(components: list[_Component], wanted: list[str]) -> tuple[list[_Component], list[str]]:
    """The components to judge, and the configured names not found on the page."""
    if not wanted:
        return [c for c in components if _is_api_component(c)], []
    chosen: list[_Component] = []
    not_found: list[str] = []
    for name in wanted:
        key = name.strip().lower()
        found = [c for c in components if key in (c.name.lower(), (c.group or "").lower())]
        if not found:
            not_found.append(name)
        chosen += [c for c in found if c not in chosen]
    return chosen, not_found


def probe_status_page(settings: Settings, client: httpx.Client) -> ProbeResult:
    """Read OpenAI's status page JSON and judge the API components (never ChatGPT, Sora, …)."""
    name = "status_page"
    url = settings.probes.status_url
    details: dict[str, Any] = {"url": _public_url(url)}
    answer = _get(client, url, {"Accept": "application/json"}, settings.probes.timeout)

    def unknown(summary: str) -> ProbeResult:
        return ProbeResult(
            name, "unknown", summary, answer.elapsed_ms, _FIX_STATUS_PAGE, details, None
        )

    if answer.response is None:
        return unknown(f"status page not read: {answer.failure}")
    response = answer.response
    if 300 <= response.status_code < 400:
        location = response.headers.get("location")
        where = f" to {_public_url(location)}" if location else ""
        return unknown(f"status page answered {response.status_code} (redirect{where})")
    if not response.is_success:
        return unknown(f"status page answered {response.status_code}")
    doc = _json(response)
    if doc is None:
        content_type = (response.headers.get("content-type") or "?").split(";")[0]
        kind = "HTML" if "html" in content_type or response.text.lstrip()[:1] == "<" else "text"
        return unknown(f"status page answered {kind} ({content_type}), not JSON")
    try:
        source, components, incidents = _parse_status(doc)
    except _Shape as exc:
        return unknown(f"status page answered {exc}")
    details["format"] = source
    watched, not_found = _watched(components, list(settings.probes.status_components))
    if not_found:
        details["not_found"] = not_found
    if not watched:
        wanted = settings.probes.status_components
        return unknown(
            f"none of probes.status_components ({', '.join(wanted)}) is on the status page"
            if wanted
            else "no API components found on the status page; set probes.status_components"
        )
    watched_names = {c.name for c in watched}
    relevant = [i for i in incidents if not i.components or watched_names & set(i.components)]
    details["components"] = {c.name: c.status for c in watched}
    details["incidents"] = [
        {"name": i.name, "impact": i.impact, "status": i.status, "url": i.url} for i in relevant
    ]
    details["other_incidents"] = len(incidents) - len(relevant)
    # A status word neither format defines counts as degraded: something is off, we know not what.
    troubled = [c for c in watched if _SEVERITY.get(c.status, 1) > 0]
    maintenance = [c.name for c in watched if c.status == "under_maintenance"]
    if not troubled:
        summary = f"All {len(watched)} API components operational"
        if maintenance:
            summary = (
                f"{len(watched) - len(maintenance)}/{len(watched)} API components operational, "
                f"under maintenance: {', '.join(maintenance)}"
            )
        if relevant:
            summary += f"; {len(relevant)} incident(s) open: {relevant[0].name}"
        return ProbeResult(name, "ok", summary, answer.elapsed_ms, (), details)
    by_status: dict[str, list[str]] = {}
    for c in sorted(troubled, key=lambda c: -_SEVERITY.get(c.status, 1)):
        by_status.setdefault(c.status, []).append(c.name)
    parts = [f"{_LABELS.get(s, s.replace('_', ' '))}: {', '.join(n)}" for s, n in by_status.items()]
    summary = "; ".join(parts)
    summary = summary[0].upper() + summary[1:]
    worst = max(_SEVERITY.get(c.status, 1) for c in troubled)
    # partial_outage is WARNING: some requests fail and the logs say whether ours do; only a
    # major (full) outage of an API component is CRITICAL on the status page's word alone.
    status = "critical" if worst >= 3 else "warning"
    return ProbeResult(
        name, status, summary, answer.elapsed_ms, _FIX_OUTAGE, details, "server.error"
    )


# -- running them -------------------------------------------------------------------------------

Probe = Callable[[Settings, httpx.Client], ProbeResult]

# Keyed by model.PROBE_NAMES (the CLI offers those names without importing this module).
PROBES: dict[str, Probe] = {
    "api_key": probe_api_key,
    "models": probe_models,
    "status_page": probe_status_page,
}


def make_client(settings: Settings, transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """An httpx client for the probes: bounded timeouts, our User-Agent, no redirects followed.

    Redirects are reported, not followed: a moved status page or base_url is a configuration to
    fix, and following one could send the key to another host. Proxies and CA bundles come from
    the environment (HTTPS_PROXY, NO_PROXY, SSL_CERT_FILE), as for the applications.
    """
    return httpx.Client(
        timeout=httpx.Timeout(settings.probes.timeout),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,
        transport=transport,
    )


def run_probes(
    settings: Settings,
    names: Sequence[str] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> list[ProbeResult]:
    """Run the named probes (default: all, in PROBES order) with one client; one result each."""
    chosen = list(dict.fromkeys(names)) if names is not None else list(PROBES)
    unknown = [n for n in chosen if n not in PROBES]
    if unknown:
        raise ValueError(f"unknown probe(s) {', '.join(unknown)}; known: {', '.join(PROBES)}")
    results: list[ProbeResult] = []
    with make_client(settings, transport) as client:
        for name in chosen:
            started = time.monotonic()
            try:
                results.append(PROBES[name](settings, client))
            except Exception as exc:  # a bug in a probe must not cost the other probes' results
                key = settings.openai.api_key
                words = _scrub(str(exc), key.get_secret_value() if key else None)[:200]
                results.append(
                    ProbeResult(
                        name,
                        "unknown",
                        f"probe failed: {type(exc).__name__}: {words}",
                        round((time.monotonic() - started) * 1000),
                    )
                )
    return results


def overall(results: Iterable[ProbeResult]) -> str:
    """The worst status, CRITICAL > WARNING > UNKNOWN > OK; "unknown" when nothing ran."""
    statuses = [r.status for r in results]
    if not statuses:
        return "unknown"
    return max(statuses, key=lambda s: _RANK.get(s, _RANK["unknown"]))
