"""Reads an event's text for what it says about an API error: status, type, code, param, model, ids.

Error bodies are found and parsed as data where possible (JSON, or the Python dict repr that
openai-python prints, through ast.literal_eval, never eval); what no parser reaches is picked up
by field patterns that cover logfmt, JS object dumps and escaped JSON inside JSON-lines logs.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from oai400d.model import Evidence

_MAX_BODY = 64 * 1024  # a body longer than this is not parsed as a whole (its fields still are)

# Three forms that _status reads through a shortcut (below it).
_STATUS_FIELD_FORM = re.compile(
    r"""\\?["']?\b(?:status|status_code|statusCode|http_status)\\?["']?\s*[:=]\s*\\?["']?(\d{3})\b"""
)
_ERROR_COLON_FORM = re.compile(r"(?:\b[A-Z][A-Za-z]*)?(?:Error|Exception): (?:Error: )?(\d{3})\b")
_REASON_FORM = re.compile(
    r"\b(\d{3}),? [\"(]?(?:Bad Request|Unauthorized|Forbidden|Not Found|Conflict"
    r"|Page Not Found"
    r"|Request Entity Too Large|Payload Too Large|Unprocessable Entity|Too Many Requests"
    r"|Internal Server Error|Bad Gateway|Service Unavailable|Gateway Time-?out)\b",
    re.IGNORECASE,
)

# Each form of a status, in order of preference (most explicit first), with a lower-cased
# literal that the text must contain for the form to apply (a cheap test before the regex).
_STATUS_FORMS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("error code", re.compile(r"\bError code:? (\d{3})\b")),  # also Cloudflare's `Error code 520`
    ("http/", re.compile(r"\bHTTP/\d(?:\.\d)? (\d{3})\b")),
    # .NET `HTTP 404 (: DeploymentNotFound)`, a gateway's `returned HTTP 402`
    ("http ", re.compile(r"\bHTTP (\d{3})\b")),
    ("http code ", re.compile(r"\bHTTP code (\d{3}) from API\b")),  # openai-python 0.x APIError
    ("invalid status code", re.compile(r"\b[Ii]nvalid status code:? (\d{3})\b")),  # Rust clients
    ("statuscode", re.compile(r"\bInvalidStatusCode\w*\((\d{3})\b")),
    ("[gin]", re.compile(r"\[GIN\][^|\n]*\|(?:[^|\n]*\|)?\s*(\d{3})\s*\|")),  # Gin access line
    ("failed with status", re.compile(r"\bfailed with status (?:code )?(\d{3})\b")),
    ("status code", re.compile(r"\bstatus code\s?:?\s?(\d{3})\b", re.IGNORECASE)),
    ("responded with status", re.compile(r"\bresponded with status (\d{3})\b")),  # Faraday
    ("response code was", re.compile(r"\bHTTP response code was (\d{3})\b")),  # openai 0.x
    ("status: ", re.compile(r"(?:\b|\\n)Status: (\d{3}) \(")),  # .NET: `Status: 401 (Unauthorized)`
    (", message=", re.compile(r"\b(\d{3}), message=['\"]")),  # aiohttp ClientResponseError
    ("http_status=", re.compile(r"\bhttp_status=(\d{3})\b")),
    ("status", _STATUS_FIELD_FORM),
    (": ", _ERROR_COLON_FORM),
    ("", _REASON_FORM),
    ("code", re.compile(r"""["']code["']\s*:\s*["']?([45]\d\d)["']?\s*[,}]""")),
    # `Error 404: That model does not exist`; openai-node's `401 {"error": …}`, `429 You exceeded`
    ("error ", re.compile(r"\bError ([45]\d\d): ")),
    ("", re.compile(r"(?:^|: )([45]\d\d) [{A-Z]", re.MULTILINE)),
)


def _status_trigger(pattern: re.Pattern[str]) -> str:
    """A status form as the prefilter looks for it: only the statuses that can make a finding."""
    return re.sub(r"\((?:\\d\{3\}|\[45\]\\d\\d)\)", r"[45]\\d\\d", pattern.pattern, count=1)


# What the prefilter looks for so that no status form above is ever skipped: derived from them.
STATUS_TRIGGERS: tuple[str, ...] = (
    *(_status_trigger(pattern) for _, pattern in _STATUS_FORMS),
    r"ai_apicallerror\]: (?:bad request|unauthorized|forbidden|not found|payload too large"
    r"|too many requests|internal server error|bad gateway|service unavailable|gateway timeout)"
    r"[ \t]*(?:\r?\n|$)",
)

# The reason phrases of the statuses that rules name (`429 Too Many Requests`).
_REASONS = re.compile(
    r"(?i)\b(?:Bad Request|Unauthorized|Forbidden|Not Found|Conflict|Request Entity Too Large"
    r"|Payload Too Large|Unprocessable (?:Entity|Content)|Too Many Requests|Internal Server Error"
    r"|Bad Gateway|Service (?:Temporarily )?Unavailable|Gateway Time-?out)\b"
)


def without_reasons(text: str) -> str:
    """The text with every HTTP reason phrase blanked: what a rule must match besides them for
    its finding to rest on more than a status line."""
    return _REASONS.sub(" ", text)


# The Vercel AI SDK's APICallError carries only the reason phrase when the body has no message.
_REASON_ONLY = re.compile(r"(?m)AI_APICallError\]: ([A-Z][a-z]+(?: [A-Z][a-z]+)*)\s*$")
_REASON_STATUS = {
    "Bad Request": 400,
    "Unauthorized": 401,
    "Forbidden": 403,
    "Not Found": 404,
    "Payload Too Large": 413,
    "Too Many Requests": 429,
    "Internal Server Error": 500,
    "Bad Gateway": 502,
    "Service Unavailable": 503,
    "Gateway Timeout": 504,
}


# Field patterns begin with their literal, which lets the regex engine skip ahead fast (ten
# times faster than a pattern that begins with optional quotes).
_FIELD_QUOTED = r"""{name}\\?["']?\s*[:=]\s*\\?["']([^"'\\]{{1,200}})\\?["']"""
_CODE_PATTERNS = (
    # Not LangChain's own `lc_error_code: 'MODEL_NOT_FOUND'`, which is no API error code.
    re.compile(_FIELD_QUOTED.format(name="(?<!lc_error_)code")),
    re.compile(r"code=([A-Za-z_][\w.-]*)"),
    re.compile(r"ErrorCode: ([A-Za-z][\w.-]*)"),  # .NET RequestFailedException and the like
    re.compile(r"\bCode: ([A-Z][\w.-]*)"),  # azure-core HttpResponseError
    re.compile(r"\(code: ([A-Za-z_][\w.-]*)\)"),  # async-openai `… (code: context_length_exceeded)`
)
# Codes shown without the word `code`: .NET `HTTP 404 (type: code)`, kubectl-ai
# `[429:insufficient_quota]`, azure-core `HttpResponseError: (Code) Message`.
_HTTP_PAREN_CODE = re.compile(r"\bHTTP \d{3} \((?:[\w.-]*: ?)?([A-Za-z][\w.-]*)\)")
_BRACKET_CODE = re.compile(r"\[[45]\d\d:([a-z][a-z_]+)\]")
_PAREN_CODE = re.compile(r"(?:Error|Exception): \(([A-Za-z][\w.-]*)\) ")
_TYPE_PATTERNS = (
    re.compile(_FIELD_QUOTED.format(name="type")),
    re.compile(r"error_type=([A-Za-z_]\w*)"),
)
_PARAM_PATTERNS = (
    re.compile(_FIELD_QUOTED.format(name="param")),
    re.compile(r"param=([^\s,)]+)"),
)
_MESSAGE_PATTERNS = (
    re.compile(r"""message\\?["']\s*:\s*\\?"((?:[^"\\]|\\[^"])*)\\?"""),
    re.compile(r"""message["']\s*:\s*'((?:[^'\\]|\\.)*)'"""),
    re.compile(r"""message: '((?:[^'\\]|\\.)*)'"""),
    re.compile(r"""error_message=(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")"""),
)
_REQUEST_ID_PATTERNS = (
    re.compile(r"(req_[A-Za-z0-9]{6,})\b"),
    re.compile(
        r"""(?i)(?:x-request-id|request[_-]?id|requestId|apim-request-id)\\?["']?\s*[:=]\s*\\?["']?([A-Za-z0-9][\w-]{7,})"""
    ),
)
_MODEL_PATTERNS = (
    re.compile(r"[Mm]odel [`'\"]([\w.:/-]{2,80})[`'\"]"),
    re.compile(r"Rate limit reached for (?:model )?[`'\"]?([\w.:/-]{2,80}?)[`'\"]? in "),
    re.compile(r"""model\\?["']?\s*[:=]\s*\\?["']([\w.:/-]{2,80})\\?["']"""),
    re.compile(r"model=([\w.:/-]{2,80})"),
    re.compile(r"/deployments/([\w.-]{1,80})/"),
)
_NONE_WORDS = {"none", "null", "undefined", ""}

# An exception line that carries only the status and code (OpenAI .NET's ClientResultException).
_STATUS_ONLY_HEAD = re.compile(r": HTTP \d{3} \([^)]*\)\s*$")
# An exception line: `openai.BadRequestError: …`, `BadRequestError: 400 …`, `litellm.X: …`.
_EXCEPTION_LINE = re.compile(r"^(?:[\w.]+\.)?[A-Z]\w*(?:Error|Exception|Timeout)\b:? ")


def extract(text: str, class_status: Mapping[str, int] | None = None) -> Evidence:
    """Everything the text shows about the error; fields it does not show stay None."""
    lowered = text.lower()
    key, body = read_key(text, lowered, class_status)
    return add_details(key, text, lowered, body)


def read_key(
    text: str, lowered: str, class_status: Mapping[str, int] | None = None
) -> tuple[Evidence, dict[str, Any] | None]:
    """What rules match on: status, error type and code (and the parsed body, for later)."""
    status = _status(text, lowered)
    if status is not None and status < 400:
        return Evidence(status=status), None  # a success or redirect: nothing more to read
    body = find_error_body(text) if "{" in text else None
    if status is None and body is not None:
        status = _int_or_none(body.get("status")) or _int_or_none(body.get("code"))
    if status is None and class_status:
        status = _status_from_class(text, class_status)
    error_type = _field(body, "type")
    if error_type is None and "type" in lowered:
        error_type = _first(_TYPE_PATTERNS, text, _looks_like_type)
    error_code = _field(body, "code")
    if error_code is None and "code" in lowered:
        error_code = _first(_CODE_PATTERNS, text, _looks_like_code)
    if error_code is None and "http " in lowered and " (" in text:
        error_code = _first((_HTTP_PAREN_CODE,), text, _looks_like_code)
    if error_code is None and ":" in text and "[" in text:
        error_code = _first((_BRACKET_CODE,), text, _looks_like_code)
    if error_code is None and ": (" in text:
        error_code = _first((_PAREN_CODE,), text, _looks_like_code)
    if error_code is not None and not _looks_like_code(error_code):
        error_code = None  # a bare number that repeats the status is not an error code
    return Evidence(status=status, error_type=error_type, error_code=error_code), body


def add_details(
    evidence: Evidence, text: str, lowered: str, body: dict[str, Any] | None
) -> Evidence:
    """The rest, read only for events that a rule matched: param, model, request id, message."""
    param = _field(body, "param")
    if param is None and "param" in lowered:
        param = _first(_PARAM_PATTERNS, text, None)
    return Evidence(
        status=evidence.status,
        error_type=evidence.error_type,
        error_code=evidence.error_code,
        param=param,
        model=_first(_MODEL_PATTERNS if "odel " in text else _MODEL_PATTERNS[1:], text, None),
        request_id=_request_id(text, lowered),
        message=_field(body, "message") or _first_message(text) or _exception_message(text),
    )


# The patterns above that start with no literal for `re` to skip to (`[Mm]odel`, the
# case-insensitive request-id alternation) try every position of the text: 4-30 us an event,
# most of a finding's detail reading. `[Mm]odel` is searched only where `odel ` is; the request
# id alternation only where `request` starts it or sits 2 or 5 characters in (`x-`, `apim-`),
# found in the lower-cased text (positions the same where the text is ASCII; elsewhere, where
# (?i) also reads `ſ` as `s`, searched as before). The first match that counts is the same.
_REQUEST_ID_SHIFTS = (5, 2, 0)  # where `request` sits in apim-request-id, x-request-id, request…


def _request_id(text: str, lowered: str) -> str | None:
    found = _first(_REQUEST_ID_PATTERNS[:1], text, None)
    if found is not None:
        return found
    if not text.isascii():
        return _first(_REQUEST_ID_PATTERNS[1:], text, None)
    starts: set[int] = set()
    at = lowered.find("request")
    while at >= 0:
        starts.update(at - shift for shift in _REQUEST_ID_SHIFTS if at >= shift)
        at = lowered.find("request", at + 1)
    pattern = _REQUEST_ID_PATTERNS[1]
    resume = 0  # as finditer: the next match starts at or after the end of the last one
    for start in sorted(starts):
        if start < resume:
            continue
        match = pattern.match(text, start)
        if match is None:
            continue
        resume = match.end()
        value = next((g for g in match.groups() if g is not None), "").strip()
        if value.lower() not in _NONE_WORDS:
            return value
    return None


def _looks_like_type(value: str) -> bool:
    return bool(re.fullmatch(r"[a-z][a-z_]{2,60}", value)) and value not in {
        "error",
        "text",
        "json_object",
    }


# Codes that are the transport's, not the API's: Node's system errors (ECONNREFUSED), axios'
# ERR_*, undici's UND_ERR_*, and OpenSSL's certificate verdicts as Node reports them.
_NOT_API_CODE = re.compile(
    r"E[A-Z]{3,}|ERR_[A-Z_]+|UND_ERR_[A-Z_]+"
    r"|(?:[A-Z]+_)*(?:CERT|CERTIFICATE|SIGNATURE|SIGNED|ISSUER|CHAIN)(?:_[A-Z]+)*"
)


def _looks_like_code(value: str) -> bool:
    """An API error code: not a number (a status), nor Node's ENOTFOUND or axios' ERR_*."""
    return bool(re.fullmatch(r"[A-Za-z][\w.-]{1,80}", value)) and not _NOT_API_CODE.fullmatch(
        value
    )


def _first(patterns: tuple[re.Pattern[str], ...], text: str, accept: Any) -> str | None:
    for pattern in patterns:
        for match in pattern.finditer(text):
            value = next((g for g in match.groups() if g is not None), "").strip()
            if value.lower() in _NONE_WORDS:
                continue
            if accept is None or accept(value):
                return value
    return None


def _first_message(text: str) -> str | None:
    if "message" not in text:
        return None  # (every one of the patterns holds it)
    return _message_any_pattern(text)


def _message_any_pattern(text: str) -> str | None:
    """The first of the message patterns that matches, its value unquoted."""
    for pattern in _MESSAGE_PATTERNS:
        match = pattern.search(text)
        if match:
            value = next((g for g in match.groups() if g is not None), "")
            value = value.replace('\\"', '"').replace("\\'", "'").strip()
            if value:
                return value
    return None


def _exception_message(text: str) -> str | None:
    """The last exception line of a traceback, else the last line that looks like an error."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for index in range(len(lines) - 1, -1, -1):
        line = lines[index]
        if _EXCEPTION_LINE.match(line):
            if _STATUS_ONLY_HEAD.search(line) and index + 1 < len(lines):
                return lines[index + 1]  # .NET: `HTTP 400 (type: code)`, the message below it
            return line
    return lines[-1] if lines else None


def _status(text: str, lowered: str) -> int | None:
    """The HTTP status the text states, preferring the most explicit form."""
    for literal, pattern in _STATUS_FORMS:
        if literal not in lowered:
            continue
        shortcut = _STATUS_SHORTCUTS.get(pattern)
        for match in pattern.finditer(text) if shortcut is None else shortcut(text, lowered):
            value = int(match.group(1))
            if 100 <= value <= 599:
                return value
    if "ai_apicallerror]: " in lowered:
        for match in _REASON_ONLY.finditer(text):
            if match.group(1) in _REASON_STATUS:
                return _REASON_STATUS[match.group(1)]
    return None


# Three status forms start with no literal for `re` to skip to, so each tries every position of
# the text: 10-36 us an event, the most of the status reading. Each is read where it can match,
# and what comes out is what its `finditer` gives (the statuses, in order; only group 1 is read):
# - `…Error: ddd`: only where `Error: ` or `Exception: ` is, and without the optional class name
#   before it (it ends where `Error`/`Exception` starts, the same statuses, match after match);
# - the `status` field: only at each `status` (or the `http_` before it), as finditer would;
# - the reason phrase (case-insensitive): in ASCII text, only where one of the phrases' words is
#   in the lower-cased text (elsewhere, where (?i) also reads `ſ` as `s`, searched as before).
# tests/test_evidence_fast_paths.py checks the readings against the plain forms.
_ERROR_COLON = re.compile(_ERROR_COLON_FORM.pattern.removeprefix(r"(?:\b[A-Z][A-Za-z]*)?"))
_STATUS_FIELD = re.compile(_STATUS_FIELD_FORM.pattern.removeprefix(r"""\\?["']?"""))
_REASON_WORDS = (
    "bad request", "unauthorized", "forbidden", "not found", "conflict", "too large",
    "unprocessable entity", "too many requests", "internal server error", "bad gateway",
    "service unavailable", "gateway time",
)  # fmt: skip


def _error_colon_statuses(text: str, lowered: str) -> Iterator[re.Match[str]]:
    if "Error: " in text or "Exception: " in text:
        yield from _ERROR_COLON.finditer(text)


def _status_field_statuses(text: str, lowered: str) -> Iterator[re.Match[str]]:
    resume = 0  # as finditer: the next match starts at or after the end of the last one
    at = text.find("status")
    while at >= 0:
        # `http_status` starts 5 before its `status`; the others at it.
        for start in (at - 5, at) if at >= 5 and text.startswith("http_", at - 5) else (at,):
            if start < resume:
                continue
            match = _STATUS_FIELD.match(text, start)
            if match is not None:
                resume = match.end()
                yield match
        at = text.find("status", max(at + 1, resume))


def _reason_statuses(text: str, lowered: str) -> Iterator[re.Match[str]]:
    if not text.isascii() or any(word in lowered for word in _REASON_WORDS):
        yield from _REASON_FORM.finditer(text)


_STATUS_SHORTCUTS: dict[re.Pattern[str], Callable[[str, str], Iterator[re.Match[str]]]] = {
    _ERROR_COLON_FORM: _error_colon_statuses,
    _STATUS_FIELD_FORM: _status_field_statuses,
    _REASON_FORM: _reason_statuses,
}


def _int_or_none(value: object) -> int | None:
    if isinstance(value, int) and 100 <= value <= 599:
        return value
    if isinstance(value, str) and value.isdigit() and 100 <= int(value) <= 599:
        return int(value)
    return None


def _status_from_class(text: str, class_status: Mapping[str, int]) -> int | None:
    for match in re.finditer(r"\b([A-Z]\w*(?:Error|Exception))\b", text):
        status = class_status.get(match.group(1))
        if status is not None:
            return status
    return None


def _field(body: Mapping[str, Any] | None, name: str) -> str | None:
    if body is None:
        return None
    value = body.get(name)
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return None if text.lower() in _NONE_WORDS else text


def find_error_body(text: str) -> dict[str, Any] | None:
    """The innermost dict that looks like an API error (message plus type or code)."""
    for candidate in _parsed_objects(text, depth=0):
        body = _error_dict(candidate)
        if body is not None:
            return body
    return None


def _error_dict(obj: Any, depth: int = 0) -> dict[str, Any] | None:
    if depth > 6 or not isinstance(obj, dict):
        return None
    inner = obj.get("error")
    if isinstance(inner, dict):
        nested = _error_dict(inner, depth + 1)
        merged = dict(nested or inner)
        if merged.get("status") is None and isinstance(obj.get("status"), int | str):
            merged["status"] = obj["status"]
        return merged
    if "message" in obj and ("type" in obj or "code" in obj or "param" in obj):
        return obj
    for value in obj.values():
        if isinstance(value, dict):
            found = _error_dict(value, depth + 1)
            if found is not None:
                return found
    return None


def _parsed_objects(text: str, depth: int) -> Iterator[Any]:
    """Each {...} in text that parses as JSON or a Python literal, outermost first; and the
    objects found inside string values (JSON-lines logs carry bodies as escaped strings)."""
    if depth > 2:
        return
    tried = 0
    position = 0
    while tried < 24:
        start = text.find("{", position)
        if start < 0:
            return
        end = _matching_brace(text, start)
        if end < 0:
            position = start + 1
            tried += 1
            continue
        snippet = text[start : end + 1]
        parsed = _parse_literal(snippet)
        tried += 1
        if parsed is None:
            position = start + 1
            continue
        yield parsed
        for string in _strings_in(parsed):
            if "{" in string:
                yield from _parsed_objects(string, depth + 1)
        position = end + 1


def _strings_in(obj: Any) -> Iterator[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _strings_in(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _strings_in(value)


# The last bodies parsed, by their text: an error storm repeats the same few bodies, and parsing
# one (json, else ast.literal_eval) is most of what reading an event costs. What is kept here is
# shared between events and never changed (nothing here or in the classifier writes to it).
_PARSED: dict[str, Any] = {}
_PARSED_MAX = 256  # bodies kept …
_PARSED_MAX_CHARS = 8 * 1024  # … each at most this long: at most 2 MiB


def _parse_literal(snippet: str) -> Any:
    if len(snippet) > _MAX_BODY:
        return None
    if len(snippet) > _PARSED_MAX_CHARS:
        return _parse_afresh(snippet)
    try:
        return _PARSED[snippet]
    except KeyError:
        pass
    parsed = _parse_afresh(snippet)
    if len(_PARSED) >= _PARSED_MAX:
        _PARSED.pop(next(iter(_PARSED), snippet), None)  # the oldest
    _PARSED[snippet] = parsed
    return parsed


def _parse_afresh(snippet: str) -> Any:
    try:
        return json.loads(snippet)
    except ValueError:
        pass
    try:
        return ast.literal_eval(snippet)
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        return None


_BRACE_OR_QUOTE = re.compile(r"""[{}\[\]"'\\]""")


def _matching_brace(text: str, start: int) -> int:
    """Index of the brace closing text[start], honouring quoted strings; -1 if none."""
    depth = 0
    quote = ""
    escaped_at = -1
    limit = min(len(text), start + _MAX_BODY)
    # Jump from one interesting character to the next instead of looking at every one.
    for match in _BRACE_OR_QUOTE.finditer(text, start, limit):
        index = match.start()
        char = text[index]
        if index == escaped_at:
            continue
        if char == "\\":
            escaped_at = index + 1
            continue
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "{[":
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return index
    return -1
