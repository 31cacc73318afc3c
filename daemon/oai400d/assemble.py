"""Joins lines into events: a Python traceback, an indented dump or a multi-line JSON body is one
event; every other line is an event of its own.

Where an event ends comes from the log's own structure: a line that starts a new log record
(a leading timestamp, a level prefix, a one-line JSON object) always ends the pending event,
whatever brackets or quotes are still open in it. A body that a logger cut at a length limit
therefore swallows nothing after it. Size limits bound whatever the structure does not.
"""

from __future__ import annotations

import re

from oai400d.levels import error_level_end
from oai400d.model import RECORD_START, WRAPPED_PIECE, Event, EventLimits, Line

_RECORD_START = re.compile(RECORD_START, re.VERBOSE)  # (model.py: the prefilter reads it too)


_WRAPPED = re.compile(WRAPPED_PIECE)


def wrapped_piece(before: str, text: str) -> str | None:
    """The rest of a line that continues the wrapped message of the line before it (same
    timestamp, same column), or None when it is a record of its own."""
    this = _WRAPPED.match(text)
    if this is None:
        return None
    previous = _WRAPPED.match(before)
    if previous is None or previous.group(1, 2) != this.group(1, 2):
        return None
    return text[this.end() :].rstrip()


def starts_record(text: str) -> bool:
    """Whether this line begins a new log record, so it can continue no pending event."""
    return _RECORD_START.match(text) is not None


# Lines at column 0 that continue the exception above them: Java's cause chain and unindented
# frames, .NET's RequestFailedException / HttpOperationException blocks and inner exceptions.
_CONTINUATION = re.compile(
    r"(?:Caused by: |Suppressed: |Status: \d{3}\b|ErrorCode: |Content:\s*$|Headers:\s*$"
    r"|Parameter: |Detail: |StackTrace:|---> |--- End of |at [\w$.<>/]+\(|\.\.\. \d+ more"
    # LangChain JS's appendix to an error message; httpx's HTTPStatusError message's 2nd line
    r"|Troubleshooting URL: |For more information check: https?://)"
)
# One `Name: value` line of the header block that follows .NET's `Headers:`.
_HEADER = re.compile(r"[A-Za-z][\w-]{0,60}: \S")


def continues_record(text: str) -> bool:
    """A column-0 line that continues the exception before it (`Caused by:`, `Status: 404`…)."""
    return _CONTINUATION.match(text) is not None


def opens_content(text: str) -> bool:
    """.NET's `Content:` line: the next line is the response body, even a one-line JSON object."""
    return text.rstrip() == "Content:"


def is_header_line(text: str) -> bool:
    return _HEADER.match(text) is not None


TRACEBACK_START = "Traceback (most recent call last):"
CHAIN_MARKERS = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)


# Node's echo of the source line that threw, printed above an uncaught error:
#   /app/node_modules/openai/core/error.mjs:40
#               return new RateLimitError(status, error, message, headers);
#                      ^
#   <blank>
#   RateLimitError: 429 You exceeded your current quota, …
# The echo belongs to the error below it (one event), not to an event of its own.
_NODE_ECHO = re.compile(r"(?:file://)?(?:/|[A-Za-z]:\\|\.{1,2}/)\S*\.(?:[cm]?js|[cm]?ts|jsx|tsx):\d+\s*$")
_CARET = re.compile(r"\s*\^+\s*$")


def is_node_echo(text: str) -> bool:
    """The `file:line` header of Node's echo of the throwing source line."""
    return _NODE_ECHO.match(text) is not None


# An exception line at column 0 that starts a JS (or JVM) error print: `Error: 403 …`,
# `RateLimitError: 429 …`, `com.openai.errors.NotFoundException: …`.
_EXCEPTION_START = re.compile(r"(?:[\w$]+\.)*[A-Z]?[\w$]*(?:Error|Exception)(?: \[\w+\])?: \S")


def is_exception_start(text: str) -> bool:
    return _EXCEPTION_START.match(text) is not None


# A JS error's first line: its class has no namespace (`RateLimitError: 429 …`, `Error: …`,
# `DOMException [TimeoutError]: …`), unlike Python's and .NET's exceptions.
_JS_ERROR_START = re.compile(r"[A-Z]?\w*(?:Error|Exception)(?: \[\w+\])?: \S")


def is_js_error_start(text: str) -> bool:
    return _JS_ERROR_START.match(text) is not None


def is_js_frame(text: str) -> bool:
    """A stack frame of a JS error (`    at OpenAI.makeRequest (…)`)."""
    return text[:1] in (" ", "\t") and text.lstrip().startswith("at ")


_ERROR_OF_ITS_OWN = re.compile(r"(?:Error|Exception)\b|\b[45]\d\d\b")


def heads_error(header: str, exception: str) -> bool:
    """Whether `header`, an error-level record, announces the exception printed right under it
    (`… ERROR: translation failed` / `… error: job failed: Error: 403 …`, then `Error: 403 …` and
    its stack): it carries no error of its own, or it quotes the exception's message. A record
    that tells an error of its own is not the header of the next, different one."""
    level_end = error_level_end(header)
    if level_end is None or not starts_record(header):
        return False
    if _ERROR_OF_ITS_OWN.search(header, level_end) is None:
        return True
    message = exception.split(": ", 1)[-1].strip()[:60]
    return bool(message) and message in header


def is_traceback_start(text: str) -> bool:
    return text.lstrip().startswith(TRACEBACK_START)


def is_chain_marker(text: str) -> bool:
    return text.strip() in CHAIN_MARKERS


def is_indented(text: str) -> bool:
    """A continuation line: indented and not blank (stack frames, object dumps)."""
    return text[:1] in (" ", "\t") and bool(text.strip())


# A terminal colour or cursor sequence (`\x1b[1;31m`): its `[` opens nothing.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def bracket_delta(text: str) -> int:
    """Opening minus closing brackets outside double-quoted strings (colour codes ignored)."""
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    delta = 0
    in_string = False
    escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            delta += 1
        elif char in "}]":
            delta -= 1
    return delta


def is_binary(text: str) -> bool:
    """Whether a line is binary data rather than text: a NUL, or one character in eight that
    could not be decoded. Its brackets mean nothing, so it neither opens a body nor goes on with
    one: garbage must never swallow the lines after it (an error line among them)."""
    return "\x00" in text or text.count("\ufffd") * 8 > len(text)


def leaves_open(text: str) -> bool:
    """Whether a line opens more brackets than it closes (a body that goes on below, or was cut);
    counted in C first, since most lines balance or hold no bracket at all."""
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    if text.count("{") + text.count("[") <= text.count("}") + text.count("]"):
        return opens_block(text)
    return bracket_delta(text) > 0


def opens_block(text: str) -> bool:
    return text.rstrip().endswith(("{", "["))


def opens_html(text: str) -> bool:
    """An HTML error page (a proxy's 413 or 502) printed as part of a message."""
    return text.rstrip().lower().endswith(("<html>", "<!doctype html>"))


def closes_html(text: str) -> bool:
    return "</html>" in text.lower()


class Assembler:
    """Feed lines of one file in order; get back the events they complete.

    An event stays pending until a line arrives that cannot belong to it, or until `flush()`
    (end of input, or the caller's multi-line timeout in a quiet file).
    """

    def __init__(self, path: str, limits: EventLimits | None = None) -> None:
        self.path = path
        self.limits = limits if limits is not None else EventLimits()
        self._lines: list[Line] = []
        self._chars = 0
        self._depth = 0  # open brackets of a multi-line body
        self._in_traceback = False  # between `Traceback …` and the exception line
        self._after_exception = False  # the exception line has been seen
        self._blanks: list[Line] = []  # blank lines that may still lead to a chained traceback
        self._in_html = False  # inside an HTML page that a message carries
        self._in_headers = False  # inside .NET's `Headers:` block
        self._wrapped: set[int] = set()  # indexes of lines that are pieces of a wrapped message
        self._body_next = False  # the line after .NET's `Content:` is its body
        self._echo = False  # in Node's source echo, before the error line it belongs to
        # A JS error printed with its message (which may hold blank lines, an HTML page, a
        # `Troubleshooting URL:`), before its `at` frames: a blank line does not end it yet.
        self._js_error = False

    @property
    def pending(self) -> bool:
        return bool(self._lines)

    @property
    def first_pending(self) -> Line | None:
        """The first line of the event still being gathered: where to resume after a crash."""
        return self._lines[0] if self._lines else None

    def feed(self, line: Line) -> list[Event]:
        """Take the next line; return the events it completed (zero or one)."""
        text = line.text
        if not self._lines:
            if text.strip():
                self._start(line)
            return []
        if not text.strip():
            if not (
                self._inside
                or self._in_traceback
                or self._after_exception
                or self._echo
                or self._js_error
            ):
                return self.flush()
            self._blanks.append(line)  # a chained traceback, or more of the body, may follow
            return []
        if not self._blanks and wrapped_piece(self._lines[-1].text, text) is not None:
            self._wrapped.add(len(self._lines))  # joined with a space: one message, re-flowed
            self._append(line)
            return self.flush() if self._full() else []
        # (.NET's body comes right under `Content:`; after a blank line, a record is a record)
        if starts_record(text) and not (self._body_next and not self._blanks):
            done = self.flush()
            self._start(line)
            return done
        if self._blanks and not (
            self._inside
            or self._echo
            or continues_record(text)
            or is_chain_marker(text)
            or (is_traceback_start(text) and self._after_marker())
            or (is_exception_start(text) and self._after_marker())
            or (self._js_error and is_js_frame(text))
        ):
            done = self.flush()
            self._start(line)
            return done
        if self._belongs(text):
            for blank in self._blanks:  # blank lines count only when the event goes on after them
                self._append(blank)
            self._blanks.clear()
            self._append(line)
            return self.flush() if self._full() else []
        done = self.flush()
        self._start(line)
        return done

    @property
    def _inside(self) -> bool:
        """Within an open body or HTML page, where blank lines do not end the event."""
        return self._depth > 0 or self._in_html

    def _is_header(self) -> bool:
        """A lone record line that a traceback right after it belongs to (logger.exception)."""
        return (
            len(self._lines) == 1
            and not self._blanks
            and not self._in_traceback
            and not is_indented(self._lines[0].text)
        )

    def _after_marker(self) -> bool:
        last = next((x.text for x in reversed(self._lines) if x.text.strip()), "")
        return is_chain_marker(last)

    def flush(self) -> list[Event]:
        """Emit the pending event, if any."""
        if not self._lines:
            self._blanks.clear()
            return []
        first, last = self._lines[0], self._lines[-1]
        if self._wrapped:
            pieces = [first.text]
            for index in range(1, len(self._lines)):
                line, before = self._lines[index], self._lines[index - 1]
                if index in self._wrapped:
                    pieces.append(" " + (wrapped_piece(before.text, line.text) or "").strip())
                else:
                    pieces.append("\n" + line.text)
            text = "".join(pieces)
        else:
            text = "\n".join(x.text for x in self._lines)
        event = Event(self.path, first.line_no, last.line_no, text)
        self._lines = []
        self._wrapped = set()
        self._blanks.clear()
        self._chars = 0
        self._depth = 0
        self._in_traceback = self._after_exception = self._in_html = False
        self._in_headers = self._body_next = self._echo = self._js_error = False
        return [event]

    def _start(self, line: Line) -> None:
        self._append(line)
        self._in_traceback = is_traceback_start(line.text)
        self._echo = is_node_echo(line.text)
        self._js_error = is_js_error_start(line.text)

    def _append(self, line: Line) -> None:
        self._lines.append(line)
        self._chars += len(line.text)
        text = line.text
        self._body_next = opens_content(text)
        if not text.strip():
            self._in_headers = False
        elif text.rstrip() == "Headers:":
            self._in_headers = True
        if self._in_traceback and not self._after_exception and len(self._lines) > 1:
            return  # source lines in frames (`x = [`) are code, not a body to balance
        if self._in_html:
            self._in_html = not closes_html(text)
        elif opens_html(text):
            self._in_html = True
        elif (self._depth > 0 or leaves_open(text)) and not is_binary(text):
            self._depth = max(0, self._depth + bracket_delta(text))

    def _full(self) -> bool:
        return len(self._lines) >= self.limits.lines or self._chars >= self.limits.chars

    def _belongs(self, text: str) -> bool:
        """Whether this non-blank line continues the pending event."""
        if self._echo:
            if is_indented(text) and not self._blanks:
                return True  # the source line and its caret
            self._echo = False
            # The thrown error after the blank line that ends the echo; else the echo was none.
            self._js_error = bool(self._blanks) and _CARET.match(self._lines[-1].text) is not None
            return self._js_error
        if self._in_html or is_indented(text) or self._body_next:
            return True
        if continues_record(text) or (self._in_headers and is_header_line(text)):
            return True
        if self._depth > 0:
            # Inside an open body anything but a new record, a traceback or binary data goes on:
            # a body printed without indentation, or a message a terminal wrapped at column 0.
            if not (is_traceback_start(text) or is_binary(text)):
                return True
            self._depth = 0  # a cut body: what follows is not part of it
        if is_chain_marker(text):
            if self._after_exception:
                self._in_traceback, self._after_exception = True, False
                return True
            return False
        if is_traceback_start(text):
            if self._after_marker() or self._is_header():
                self._in_traceback = True  # a chained traceback, or logger.exception's header
                return True
            return False
        if self._is_header() and is_exception_start(text):
            # A logged error record, then the error it carries, printed with its stack.
            joined = heads_error(self._lines[0].text, text)
            self._js_error = joined and is_js_error_start(text)
            return joined
        if self._in_traceback and not self._after_exception and len(self._lines) > 1:
            self._after_exception = True  # the exception line ends the frames
            return True
        return False


class StreamAssemblers:
    """One Assembler per stream of a file (Line.stream: stdout and stderr of a container, the
    services of a compose log, the programs of a syslog file), so that lines of two streams
    interleaved in one file are never glued into one event. A plain file has one stream (None).

    Same use as an Assembler; `feed` also takes the time, so that `flush_idle` can end the
    event of a stream that went quiet while another one goes on. At most `max_streams` are kept:
    the one unused longest is flushed and forgotten first.
    """

    def __init__(self, path: str, limits: EventLimits | None = None, max_streams: int = 64) -> None:
        self.path = path
        self.limits = limits if limits is not None else EventLimits()
        self.max_streams = max_streams
        self._assemblers: dict[str | None, Assembler] = {}  # least recently fed first
        self._last_fed: dict[str | None, float] = {}
        self._current: str | None = None
        self._current_assembler: Assembler | None = None

    @property
    def pending(self) -> bool:
        return any(assembler.pending for assembler in self._assemblers.values())

    @property
    def first_pending(self) -> Line | None:
        """The earliest first line of the events still being gathered (where to resume)."""
        firsts = [a.first_pending for a in self._assemblers.values() if a.pending]
        return min((x for x in firsts if x is not None), key=lambda x: x.offset, default=None)

    def feed(self, line: Line, now: float = 0.0) -> list[Event]:
        stream = line.stream
        self._last_fed[stream] = now
        if stream == self._current and self._current_assembler is not None:
            return self._current_assembler.feed(line)  # the usual case: the same stream again
        done: list[Event] = []
        assembler = self._assemblers.pop(stream, None)
        if assembler is None:
            if len(self._assemblers) >= self.max_streams:
                oldest = next(iter(self._assemblers))
                done.extend(self._assemblers.pop(oldest).flush())
                del self._last_fed[oldest]
            assembler = Assembler(self.path, self.limits)
        self._assemblers[stream] = assembler
        self._current, self._current_assembler = stream, assembler
        done.extend(assembler.feed(line))
        return done

    def flush(self) -> list[Event]:
        """Emit every pending event, in file order."""
        events = [event for a in self._assemblers.values() for event in a.flush()]
        return sorted(events, key=lambda event: event.first_line)

    def flush_idle(self, now: float, timeout: float) -> list[Event]:
        """Emit the pending events of the streams fed no line for `timeout` seconds."""
        events = [
            event
            for stream, assembler in self._assemblers.items()
            if assembler.pending and now - self._last_fed.get(stream, now) >= timeout
            for event in assembler.flush()
        ]
        return sorted(events, key=lambda event: event.first_line)
