"""The level a log record was written at, read from the start of its line.

One reader for the two places that need it: the Assembler (an error-level record directly above
the exception it prints is that exception's header) and the classifier (a record below error
level is a library's notice, which the application's own error record tells better).
"""

from __future__ import annotations

import re

# The first level near the line's start: a level word (`… WARNING [llama_index…]`, `INFO:openai:`,
# winston's `error:`), a JSON `"level"` / `"levelname"` field (pino's numbers too) or logfmt's
# `level=`.
_LEVEL = re.compile(
    r"""(?<![\w-])(?P<word>TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|ERR|CRITICAL|CRIT|FATAL"""
    r"""|PANIC|SEVERE|error|fatal)(?![\w-])"""
    r"""|"level(?:name)?"\s*:\s*(?:"(?P<json>\w+)"|(?P<pino>[1-6]0)\b)"""
    r"""|\blevel=(?P<logfmt>\w+)"""
)
WINDOW = 64  # a record's level comes before its message
_BELOW_ERROR = frozenset({"trace", "debug", "info", "notice", "warn", "warning"})
_ERROR = frozenset({"error", "err", "critical", "crit", "fatal", "panic", "severe"})


def _level(text: str) -> tuple[str, int] | None:
    """The record's level in lower case (pino's numbers as words) and where it ends."""
    match = _LEVEL.search(text, 0, WINDOW)
    if match is None:
        return None
    if match.group("pino"):
        return ("error" if int(match.group("pino")) >= 50 else "info"), match.end()
    word = match.group("word") or match.group("json") or match.group("logfmt") or ""
    return word.lower(), match.end()


def below_error(text: str) -> bool:
    """Whether the line is a record below error level (INFO, WARNING, …)."""
    level = _level(text)
    return level is not None and level[0] in _BELOW_ERROR


def error_level_end(text: str) -> int | None:
    """Where the level of a record at error level ends; None for any other line."""
    level = _level(text)
    return level[1] if level is not None and level[0] in _ERROR else None
