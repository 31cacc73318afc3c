"""Reads an event's text for what it says about an API error: status, type, code, param, model, ids.

Error bodies are found and parsed as data where possible (JSON, or the Python dict repr that
openai-python prints, through ast.literal_eval, never eval); what no parser reaches is picked up
by field patterns that cover logfmt, JS object dumps and escaped JSON inside JSON-lines logs.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from oai400d.model import Evidence

_MAX_BODY = 64 * 1024  # a body longer than this is not parsed as a whole (its fields still are)

_STATUS_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"\bError code: (\d{3})\b"),
    re.compile(r"\bHTTP/\d(?:\.\d)? (\d{3})\b"),
    re.compile(r"\bfailed with status (?:code )?(\d{3})\b"),
    re.compile(r"\bstatus code:? (\d{3})\b", re.IGNORECASE),
    re.compile(r"\bhttp_status=(\d{3})\b"),
    re.compile(r"""\\?["']?\b(?:status|status_code|statusCode|http_status)\\?["']?\s*[:=]\s*\\?["']?(\d{3})\b"""),
    re.compile(r"\b[A-Z][A-Za-z]*(?:Error|Exception): (?:Error: )?(\d{3})\b"),
    re.compile(
        r"\b(\d{3}),? (?:Bad Request|Unauthorized|Forbidden|Not Found|Conflict|Request Entity Too Large"
        r"|Payload Too Large|Unprocessable Entity|Too Many Requests|Internal Server Error|Bad Gateway"
        r"|Service Unavailable|Gateway Time-?out)\b",
        re.IGNORECASE,
    ),
    re.compile(r"""["']code["']\s*:\s*["']?([45]\d\d)["']?\s*[,}]"""),
)

_FIELD_QUOTED = r"""\\?["']?\b{name}\\?["']?\s*[:=]\s*(?:\\?["'])([^"'\\]{{1,200}})(?:\\?["'])"""
_CODE_PATTERNS = (
    re.compile(_FIELD_QUOTED.format(name="code")),
    re.compile(r"\berror_code=([A-Za-z_][\w.-]*)"),
)
_TYPE_PATTERNS = (
    re.compile(_FIELD_QUOTED.format(name="type")),
    re.compile(r"\berror_type=([A-Za-z_]\w*)"),
)
_PARAM_PATTERNS = (
    re.compile(_FIELD_QUOTED.format(name="param")),
    re.compile(r"\berror_param=([^\s,]+)"),
)
_MESSAGE_PATTERNS = (
    re.compile(r"""\\?["']message\\?["']\s*:\s*\\?"((?:[^"\\]|\\[^"])*)\\?"""),
    re.compile(r"""["']message["']\s*:\s*'((?:[^'\\]|\\.)*)'"""),
    re.compile(r"""\bmessage: '((?:[^'\\]|\\.)*)'"""),
    re.compile(r"""\berror_message=(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")"""),
)
_REQUEST_ID_PATTERNS = (
    re.compile(r"\b(req_[A-Za-z0-9]{6,})\b"),
    re.compile(
        r"""(?i)\b(?:x-request-id|request[_-]?id|requestId|apim-request-id)\\?["']?\s*[:=]\s*\\?["']?([A-Za-z0-9][\w-]{7,})"""
    ),
)
_MODEL_PATTERNS = (
    re.compile(r"\bmodel [`'\"]([\w.:/-]{2,80})[`'\"]", re.IGNORECASE),
    re.compile(r"\bRate limit reached for (?:model )?[`'\"]?([\w.:/-]{2,80}?)[`'\"]? in "),
    re.compile(r"""\\?["']?\bmodel\\?["']?\s*[:=]\s*\\?["']([\w.:/-]{2,80})\\?["']"""),
    re.compile(r"\bmodel=([\w.:/-]{2,80})"),
    re.compile(r"/deployments/([\w.-]{1,80})/"),
)
_NONE_WORDS = {"none", "null", "undefined", ""}

# An exception line: `openai.BadRequestError: …`, `BadRequestError: 400 …`, `litellm.X: …`.
_EXCEPTION_LINE = re.compile(r"^(?:[\w.]+\.)?[A-Z]\w*(?:Error|Exception|Timeout)\b:? ")


def extract(text: str, class_status: Mapping[str, int] | None = None) -> Evidence:
    """Everything the text shows about the error; fields it does not show stay None."""
    body = _find_error_body(text)
    status = _first_int(_STATUS_PATTERNS, text)
    if status is None and body is not None:
        status = _int_or_none(body.get("status") or body.get("code"))
    if status is None and class_status:
        status = _status_from_class(text, class_status)
    return Evidence(
        status=status,
        error_type=_field(body, "type") or _first(_TYPE_PATTERNS, text, _looks_like_type),
        error_code=_field(body, "code") or _first(_CODE_PATTERNS, text, _looks_like_code),
        param=_field(body, "param") or _first(_PARAM_PATTERNS, text, None),
        model=_first(_MODEL_PATTERNS, text, None),
        request_id=_first(_REQUEST_ID_PATTERNS, text, None),
        message=_field(body, "message") or _first_message(text) or _exception_message(text),
    )


def _looks_like_type(value: str) -> bool:
    return bool(re.fullmatch(r"[a-z][a-z_]{2,60}", value)) and value not in {"error", "text", "json_object"}


def _looks_like_code(value: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z][\w.-]{1,80}|[45]\d\d", value))


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
    for line in reversed(lines):
        if _EXCEPTION_LINE.match(line):
            return line
    return lines[-1] if lines else None


def _first_int(patterns: tuple[re.Pattern[str], ...], text: str) -> int | None:
    for pattern in patterns:
        match = pattern.search(text)
        if match:
            value = int(match.group(1))
            if 100 <= value <= 599:
                return value
    return None


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


def _find_error_body(text: str) -> dict[str, Any] | None:
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


def _parse_literal(snippet: str) -> Any:
    if len(snippet) > _MAX_BODY:
        return None
    try:
        return json.loads(snippet)
    except ValueError:
        pass
    try:
        return ast.literal_eval(snippet)
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        return None


def _matching_brace(text: str, start: int) -> int:
    """Index of the brace closing text[start], honouring quoted strings; -1 if none."""
    depth = 0
    quote = ""
    index = start
    limit = min(len(text), start + _MAX_BODY)
    while index < limit:
        char = text[index]
        if quote:
            if char == "\\":
                index += 2
                continue
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    return -1
