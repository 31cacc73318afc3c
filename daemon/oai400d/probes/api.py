"""The API side: the api_key and models probes, and how to talk to OpenAI, Azure or a proxy.

Each probe is one function `(settings, client) -> ProbeResult` that never raises for anything the
network or the far side can do, never sends a generation request (only GET /models and GET
/models/{id}) and never puts a secret in what it returns: the key is shown at most as `sk-…abcd`.
What an error answer means comes from the verdict table (verdicts.toml).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from oai400d.config import Settings
from oai400d.masking import mask_key, public_url, scrub
from oai400d.model import ProbeResult
from oai400d.probes.http import Answer, Client, Response, get, json_body
from oai400d.probes.verdicts import ApiError, Verdict, verdict_table

# Azure OpenAI's classic data plane (…/openai/models) needs a dated api-version; 2024-10-21 is the
# GA version whose "Models - List/Get" we rely on. The v1 API (…/openai/v1) takes none.
AZURE_API_VERSION = "2024-10-21"
_AZURE_HOSTS = (".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com")

NO_KEY = "no API key configured (OPENAI_API_KEY or credential openai-api-key)"


# -- the API to probe -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Api:
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

    @property
    def host(self) -> str:
        """base_url's host name, for words that name the server."""
        return urlsplit(self.base_url).hostname or ""

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


def _api(settings: Settings) -> Api | None:
    """The API to probe, or None when no key is configured."""
    secret = settings.openai.api_key
    key = secret.get_secret_value() if secret is not None else ""
    if not key:
        return None
    base_url = settings.openai.base_url
    provider = provider_of(base_url, settings.openai.provider)
    segments = [s for s in urlsplit(base_url).path.lower().split("/") if s]
    classic = provider == "azure" and "v1" not in segments
    return Api(
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


def api_error(response: Response, key: str | None) -> ApiError:
    """Read OpenAI's `{"error": {message, type, param, code}}` (or Azure's, or anything)."""
    body = json_body(response)
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
    location = response.headers.get("location")
    return ApiError(
        status=response.status_code,
        code=str(code) if code is not None else None,
        type=str(type_) if type_ is not None else None,
        message=scrub(message, key)[:500],
        request_id=request_id,
        is_json=body is not None,
        location=public_url(location) if location else None,
    )


# -- verdicts the probes give themselves ----------------------------------------------------------


def _network_verdict(answer: Answer) -> Verdict:
    """A transport failure talking to the API: WARNING, cause network; the words name the URL
    and the fixes fit the way it failed (verdicts.toml's [[failure]] rows)."""
    failure = verdict_table().judge_failure(
        answer.kind or "request",
        answer.failure or "request failed",
        answer.url,
        "openai.base_url",
        answer.proxy,
    )
    details = {"url": answer.url, "failure": failure.row}
    if answer.proxy:
        details["proxy"] = answer.proxy
    return Verdict("warning", failure.summary, "network", failure.fixes, details, failure.row)


def _no_key_result(name: str, prefix: str = "") -> ProbeResult:
    """UNKNOWN: there is no key to check."""
    fixes = verdict_table().fixes("no_key")
    return ProbeResult(name, "unknown", f"{prefix}{NO_KEY}", 0, fixes, {}, None)


def _unsendable_result(name: str, api: Api, prefix: str = "") -> ProbeResult:
    """CRITICAL: the key cannot even be put in a header (and must not reach httpx's errors)."""
    return ProbeResult(
        name,
        "critical",
        f"{prefix}the configured API key has whitespace or non-ASCII characters and cannot be sent",
        0,
        verdict_table().fixes("unsendable_key"),
        {"key": mask_key(api.key)},
        "auth.invalid_api_key",
    )


# -- the probes -----------------------------------------------------------------------------------


# The names the key sees, kept for model errors' facts (facts/probed.py: the closest names):
# bounded, as a hostile or broken server could answer with anything.
MODEL_IDS_MAX = 1000
MODEL_ID_MAX = 100


def model_ids(data: list[Any]) -> list[str]:
    """The model ids of a GET /models answer's `data`, sorted, at most MODEL_IDS_MAX, each one
    a short string (anything else left out)."""
    ids = {
        item["id"]
        for item in data
        if isinstance(item, dict)
        and isinstance(item.get("id"), str)
        and 0 < len(item["id"]) <= MODEL_ID_MAX
    }
    return sorted(ids)[:MODEL_IDS_MAX]


def probe_api_key(settings: Settings, client: Client) -> ProbeResult:
    """GET /models with the key: is it accepted, and if not, why."""
    name = "api_key"
    api = _api(settings)
    if api is None:
        return _no_key_result(name)
    if not _sendable(api.key):
        return _unsendable_result(name, api)
    answer = get(client, api.url("models"), api.headers(), settings.probes.timeout)
    where = {
        "url": public_url(api.url("models")),
        "key": mask_key(api.key),
        "provider": api.provider,
        "azure": api.azure,
    }
    if answer.response is None:
        v = _network_verdict(answer)
        return ProbeResult(
            name, v.status, v.summary, answer.elapsed_ms, v.fixes, {**where, **v.details}, v.cause
        )
    response = answer.response
    if response.is_success:
        body = json_body(response)
        data = body.get("data") if isinstance(body, dict) else None
        request_id = response.headers.get("x-request-id")
        if not isinstance(data, list):
            return ProbeResult(
                name,
                "unknown",
                f"GET /models answered {response.status_code} without a model list: "
                "is openai.base_url right?",
                answer.elapsed_ms,
                verdict_table().fixes("base_url"),
                {**where, "content_type": response.headers.get("content-type")},
            )
        return ProbeResult(
            name,
            "ok",
            f"key accepted ({len(data)} models visible)",
            answer.elapsed_ms,
            (),
            {
                **where,
                "models_visible": len(data),
                "model_ids": model_ids(data),
                "request_id": request_id,
            },
        )
    error = api_error(response, api.key)
    v = verdict_table().judge(error, api.provider, api.host)
    return ProbeResult(
        name, v.status, v.summary, answer.elapsed_ms, v.fixes, {**where, **v.details}, v.cause
    )


def _model_missing(error: ApiError) -> bool:
    """A 404 for /models/{id} that says the model does not exist (not a wrong base_url)."""
    if error.status != 404 or not error.is_json:
        return False
    return not error.message.lower().startswith("invalid url")


def _model_denied(error: ApiError) -> bool:
    """A 403 saying the project may not use this model (it exists)."""
    text = error.message.lower()
    return error.status == 403 and (
        "does not have access to model" in text or ("not allowed to" in text and "model" in text)
    )


def probe_models(settings: Settings, client: Client) -> ProbeResult:
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
    table = verdict_table()
    available: list[str] = []
    missing: list[str] = []
    denied: list[str] = []
    elapsed = 0
    failure: Verdict | None = None
    for model in models:
        answer = get(
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
        if response.is_success and isinstance(json_body(response), dict):
            available.append(model)
            continue
        if response.is_success:
            failure = Verdict(
                "unknown",
                f"GET /models/{model} answered {response.status_code} without a model: "
                "is openai.base_url right?",
                None,
                table.fixes("base_url"),
            )
            break
        error = api_error(response, api.key)
        if _model_missing(error):
            missing.append(model)
        elif _model_denied(error):
            denied.append(model)
        else:
            failure = table.judge(error, api.provider, api.host)
            break
    details: dict[str, Any] = {
        "available": available,
        "missing": missing,
        "denied": denied,
        "unchecked": [m for m in models if m not in available + missing + denied],
        "key": mask_key(api.key),
    }
    total = len(models)
    if missing:
        return ProbeResult(
            name,
            "critical",
            f"{len(missing)}/{total} configured models missing: {', '.join(missing)}",
            elapsed,
            table.fixes("models"),
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
            table.fixes("model_denied"),
            details,
            "auth.permission",
        )
    return ProbeResult(
        name, "ok", f"{total}/{total} configured models available", elapsed, (), details
    )
