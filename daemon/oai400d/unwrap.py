"""Undoes the wrapper a container runtime or syslog puts around each line an application wrote.

Most applications run in containers, and their lines reach disk wrapped: one JSON object per
line (Docker's json-file driver), a time, stream and tag in front (Kubernetes' CRI runtimes), a
service prefix (`docker compose logs`), or a syslog header (rsyslog). Every wrapped line then
looks like a new record, so a traceback or a JSON body written over several lines would never be
one event. This stage turns physical lines back into the lines the application wrote, before the
Assembler sees them:

  docker   `{"log":"…\\n","stream":"stderr","time":"…"}`; a line over 16 KiB comes in several
           objects whose `log` does not end in `\\n` (partial): they are joined.
  cri      `<RFC 3339 time> <stdout|stderr> <P|F> <text>`; P pieces are joined up to the F one.
  compose  `app-1  | <text>` (with `docker compose logs -t`: a time after the bar; with Docker
           Desktop: a local time before the name).
  syslog   rsyslog's traditional (`Dec  6 21:15:04 host app[1]: …`), RFC 3339 and RFC 5424
           file formats; `#012` (an escaped newline) splits a record back into its lines,
           `#011` is a tab.

Each unwrapped line keeps the physical line number and offset of its first piece, the runtime's
time, and its stream (stdout/stderr, the compose service, the syslog host and tag): the caller
keeps one Assembler per stream, so interleaved streams never glue two records. A line that does
not parse (junk, a plain line in the middle, invalid UTF-8) is passed on as it is, in no stream.
Joined pieces are cut at max_line bytes (the head is kept): memory stays bounded whatever comes.

`detect()` names the wrapper from a file's first lines: all or nearly all of the first
DETECT_LINES non-empty lines must parse as the same one, else the file is plain ("none").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

KINDS = ("auto", "none", "docker", "cri", "compose", "syslog")
WRAPPERS = ("docker", "cri", "compose", "syslog")  # what detect() can name, besides "none"
DETECT_LINES = 20  # the first non-empty lines of a file that detection looks at …
DETECT_BYTES = 64 * 1024  # … within its first bytes
WRAPPER_OVERHEAD = 4096  # what a wrapper may add to a line (the physical bound is max_line + this)

_LEVELS = frozenset(
    b"TRACE DEBUG INFO NOTICE WARN WARNING ERROR ERR CRITICAL CRIT FATAL PANIC ALERT EMERG".split()
)


@dataclass(frozen=True, slots=True)
class Unwrapped:
    """One line as the application wrote it."""

    text: bytes
    line_no: int  # the physical line of its first piece
    offset: int  # the byte offset of that physical line
    stream: str | None = None  # stdout / stderr, the compose service, the syslog host and tag
    time: str | None = None  # the runtime's (or syslog's) time of its first piece


@dataclass(frozen=True, slots=True)
class _Parsed:
    text: bytes
    stream: str | None
    time: str | None
    partial: bool = False  # more of the same line follows (docker's and CRI's split lines)


# --- docker json-file ---------------------------------------------------------------------------

# The usual object, in the key order Docker writes; `attrs` appears with --log-opt labels/env.
_DOCKER = re.compile(
    rb'\{"log":"([^"\\]*(?:\\.[^"\\]*)*)","stream":"([a-z]{1,16})",'
    rb'(?:"attrs":\{[^{}]*\},)?"time":"([^"\\]{0,64})"\}\s*\Z',
    re.S,
)
_DOCKER_HEAD = re.compile(rb'\{\s*"log"\s*:\s*"([^"\\]*(?:\\.[^"\\]*)*)', re.S)
_BAD_ESCAPE_TAIL = re.compile(rb"\\(?:u[0-9a-fA-F]{0,3})?\Z")


def _json_string(escaped: bytes) -> str | None:
    try:
        value = json.loads(b'"' + escaped + b'"')
    except ValueError:
        return None
    return value if isinstance(value, str) else None


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "replace")  # a lone surrogate from \ud800 becomes "?"


def _docker_text(text: str, stream: str | None, time: str | None) -> _Parsed:
    if text.endswith("\n"):
        text = text[:-1]
        if text.endswith("\r"):
            text = text[:-1]
        return _Parsed(_encode(text), stream, time)
    return _Parsed(_encode(text), stream, time, partial=True)


def parse_docker(raw: bytes) -> _Parsed | None:
    match = _DOCKER.match(raw)
    if match is not None:
        escaped, stream, time = match.groups()
        size = len(escaped)
        if escaped.endswith(b"\\n") and escaped.find(b"\\", 0, size - 2) < 0:
            return _Parsed(escaped[:-2], stream.decode(), time.decode())  # most lines: no escape
        if escaped.find(b"\\") < 0:
            return _Parsed(escaped, stream.decode(), time.decode(), partial=True)
        text = _json_string(escaped)
        if text is not None:
            return _docker_text(text, stream.decode(), time.decode())
    if not raw.startswith(b"{"):
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if isinstance(data, dict):
        log, stream, time = data.get("log"), data.get("stream"), data.get("time")
        if isinstance(log, str) and isinstance(stream, str):
            return _docker_text(log, stream, time if isinstance(time, str) else None)
        return None
    # Cut (a line over the physical bound) or broken: what can be read of its `log` is its text.
    head = _DOCKER_HEAD.match(raw)
    if head is None:
        return None
    escaped = _BAD_ESCAPE_TAIL.sub(b"", head.group(1))
    text = _json_string(escaped)
    if text is None:
        text = escaped.decode("utf-8", "replace")
    return _Parsed(_encode(text.removesuffix("\n").removesuffix("\r")), None, None)


# --- Kubernetes CRI (containerd, CRI-O) ---------------------------------------------------------

_CRI = re.compile(
    rb"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)) "
    rb"(stdout|stderr) ([PF])(?::\S*)?(?: |\Z)(.*)\Z",
    re.S,
)


def parse_cri(raw: bytes) -> _Parsed | None:
    match = _CRI.match(raw)
    if match is None:
        return None
    time, stream, tag, text = match.groups()
    if tag == b"P":
        return _Parsed(text, stream.decode(), time.decode(), partial=True)
    if text.endswith(b"\r"):
        text = text[:-1]
    return _Parsed(text, stream.decode(), time.decode())


# --- docker compose -----------------------------------------------------------------------------

_ANSI = rb"(?:\x1b\[[0-9;]*m)*"
_COMPOSE = re.compile(
    rb"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d )?"  # Docker Desktop's local time, before the name
    + _ANSI
    + rb"([A-Za-z0-9][A-Za-z0-9_.-]{0,127}) +"
    + _ANSI
    + rb"\|"
    + _ANSI
    + rb"(?: |\Z)(.*)\Z",
    re.S,
)
# `docker compose logs -t`: Docker's RFC 3339 time after the bar, on every line.
_COMPOSE_TIME = re.compile(rb"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?Z) ")


def parse_compose(raw: bytes, times: bool = False) -> _Parsed | None:
    match = _COMPOSE.match(raw)
    if match is None:
        return None
    desktop, name, text = match.groups()
    if name.upper() in _LEVELS:
        return None  # `ERROR | …`: an app's own format, not a service name
    time = desktop.decode().strip() if desktop else None
    if times:
        stamp = _COMPOSE_TIME.match(text)
        if stamp is not None:
            time = stamp.group(1).decode()
            text = text[stamp.end() :]
    return _Parsed(text, name.decode(), time)


# --- syslog (rsyslog's file formats) ------------------------------------------------------------

# A program name starts with a letter: `10:` in `2024-11-10 10:47:33` is no tag.
_TAG = rb"([A-Za-z_][\w./@-]{0,63}(?:\[[\w.-]{1,32}\])?):"
_SYSLOG_TRADITIONAL = re.compile(
    rb"(?:<\d{1,3}>)?((?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ 0-3]\d "
    rb"\d\d:\d\d:\d\d) (\S{1,255}) " + _TAG + rb" ?(.*)\Z",
    re.S,
)
_SYSLOG_RFC3339 = re.compile(
    rb"(?:<\d{1,3}>)?(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)) "
    rb"(\S{1,255}) " + _TAG + rb" ?(.*)\Z",
    re.S,
)
_SYSLOG_5424 = re.compile(
    rb"<\d{1,3}>1 (\S{1,64}) (\S{1,255}) (\S{1,48}) (\S{1,128}) \S{1,32} "
    rb"(-|(?:\[(?:[^\]\\]|\\.)*\])+)(?: (.*))?\Z",
    re.S,
)
_BOM = b"\xef\xbb\xbf"
_ESCAPE = re.compile(rb"#([0-3][0-7][0-7]|177)")


def parse_syslog(raw: bytes) -> _Parsed | None:
    match = _SYSLOG_TRADITIONAL.match(raw) or _SYSLOG_RFC3339.match(raw)
    if match is not None:
        time, host, tag, text = match.groups()
        if host.upper() in _LEVELS:
            return None  # `2024-05-01T12:00:00Z INFO app: …`: an app's own format
        return _Parsed(text, f"{host.decode('utf-8', 'replace')} {tag.decode()}", time.decode())
    match = _SYSLOG_5424.match(raw)
    if match is None:
        return None
    time, host, app, procid, _data, text = match.groups()
    text = text or b""
    if text.startswith(_BOM):
        text = text[len(_BOM) :]
    stream = f"{host.decode('utf-8', 'replace')} {app.decode('utf-8', 'replace')}"
    if procid != b"-":
        stream += f"[{procid.decode('utf-8', 'replace')}]"
    return _Parsed(text, stream, time.decode())


def _unescape(match: re.Match[bytes]) -> bytes:
    code = int(match.group(1), 8)
    if code in (0, 0o15):  # the NUL Python's SysLogHandler appends, a CR before a newline
        return b""
    if code < 32 or code == 127:
        return bytes((code,))
    return match.group(0)


def split_escaped(text: bytes) -> list[bytes]:
    """rsyslog's control-character escapes undone: `#012` ends a line, `#011` is a tab."""
    if b"#" not in text:
        return [text]
    return [_ESCAPE.sub(_unescape, part) if b"#" in part else part for part in text.split(b"#012")]


_PARSERS = {"docker": parse_docker, "cri": parse_cri, "syslog": parse_syslog}


def _parse(kind: str, raw: bytes, times: bool) -> _Parsed | None:
    if kind == "compose":
        return parse_compose(raw, times)
    return _PARSERS[kind](raw)


# --- whole blocks (the scanner's fast path) ----------------------------------------------------

# When every line of a block is a complete line of one stream in the usual form, the block is
# unwrapped by a few passes of C over all of it: bytes.replace, one substitution with a literal
# (never a template: Python 3.11 expands templates in Python, per match) and, for Docker, one
# JSON decoding of all its lines at once.
_DOCKER_OPEN = b'{"log":"'
_DOCKER_TAIL = {
    stream: re.compile(rb'\\n","stream":"' + stream.encode() + rb'","time":"[^"\\\n]{0,64}"\}\n')
    for stream in ("stdout", "stderr")
}
_CRI_HEAD = {
    stream: re.compile(
        rb"\n\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d) "
        + stream.encode()
        + rb" F(?: |(?=\n))"
    )
    for stream in ("stdout", "stderr")
}


def unwrap_block(kind: str, block: bytes) -> tuple[str, bytes] | None:
    """Whole physical lines (`block` ends in a newline) unwrapped at once, when every one is a
    complete docker or CRI line of the same stream: (the stream, the lines as the application
    wrote them, each ending in a newline). None when they are not: unwrap them one by one."""
    if kind not in ("docker", "cri"):
        return None
    first = _parse(kind, block[: block.find(b"\n")], False)
    if first is None or first.partial or first.stream not in ("stdout", "stderr"):
        return None
    stream = first.stream
    lines = block.count(b"\n")
    if kind == "cri":
        # Each line's header, found after the newline before it, becomes that newline alone.
        text, count = _CRI_HEAD[stream].subn(b"\n", b"\n" + block)
        return (stream, text[1:]) if count == lines else None
    if not block.startswith(_DOCKER_OPEN) or block.count(b"\n" + _DOCKER_OPEN) != lines - 1:
        return None
    body = block[len(_DOCKER_OPEN) :].replace(b"\n" + _DOCKER_OPEN, b"\n")
    # Each line's tail (from its escaped newline to the raw one) becomes the escaped newline:
    # the block is then one JSON string, a line in it for each physical line.
    body, count = _DOCKER_TAIL[stream].subn(b"\\\\n", body)
    if count != lines:
        return None
    decoded = _json_string(body)
    if decoded is None or decoded.count("\n") != lines:
        return None  # a log that holds an escaped newline of its own, or that is not JSON
    return stream, _encode(decoded)


# --- detection ----------------------------------------------------------------------------------


def _sample(head: bytes) -> list[bytes]:
    """The first non-empty complete lines of a file's head (CR dropped); a first line longer
    than the head, cut, when there is no other."""
    head = head[:DETECT_BYTES]
    pieces = head.split(b"\n")
    if len(pieces) == 1 and len(head) == DETECT_BYTES:
        return [head]
    lines = []
    for raw in pieces[:-1]:  # the last piece has no newline yet
        raw = raw.removesuffix(b"\r")
        if raw.strip():
            lines.append(raw)
            if len(lines) == DETECT_LINES:
                break
    return lines


def _enough(matched: int, seen: int) -> bool:
    """All of a few lines, all but one of a dozen, all but two of twenty."""
    return seen > 0 and matched >= (seen if seen < 4 else seen - max(1, seen // 10))


def detect(head: bytes) -> str:
    """The wrapper of a file whose first bytes are `head` (the first DETECT_BYTES are enough):
    "docker", "cri", "compose", "syslog", or "none" for a plain file."""
    lines = _sample(head)
    if not lines:
        return "none"
    first = lines[0]
    # Cheap tests of the first line first: a plain log costs one or two regex matches.
    if first.startswith(b"{"):
        candidates: tuple[str, ...] = ("docker",)
    elif first[:1].isdigit() or first.startswith(b"<"):
        candidates = ("cri", "syslog", "compose")
    else:
        candidates = ("syslog", "compose")
    for kind in candidates:
        if _agree(kind, lines):
            return kind
    if len(lines) < 4:
        return "none"
    for kind in WRAPPERS:  # a first line of its own (`Attaching to app-1`): the second decides
        if kind not in candidates and _agree(kind, lines):
            return kind
    return "none"


def _agree(kind: str, lines: list[bytes]) -> bool:
    """Whether (nearly) all the lines are in this wrapper; a plain log fails at its first two."""
    if all(_parse(kind, line, False) is None for line in lines[:2]):
        return False
    matched = sum(1 for line in lines if _parse(kind, line, False) is not None)
    return _enough(matched, len(lines))


def compose_times(head: bytes) -> bool:
    """Whether a compose log carries Docker's time after the bar on every line (`logs -t`)."""
    texts = [parsed.text for line in _sample(head) if (parsed := parse_compose(line)) is not None]
    return bool(texts) and all(_COMPOSE_TIME.match(text) is not None for text in texts)


# --- the stage ----------------------------------------------------------------------------------


@dataclass
class _Partial:
    """The pieces of one line gathered so far (a docker or CRI line split by the runtime)."""

    pieces: list[bytes]
    size: int
    line_no: int
    offset: int
    time: str | None
    cut: bool = False  # pieces beyond max_line were dropped


class Unwrapper:
    """Feed the physical lines of one file in order (newline removed); get back its lines as the
    application wrote them. `held` tells where the first piece of a line still being joined
    starts: a reader that persists its position must not go past it."""

    def __init__(self, kind: str, max_line: int, head: bytes = b"") -> None:
        if kind not in WRAPPERS:
            raise ValueError(f"unknown wrapper {kind!r}; one of {', '.join(WRAPPERS)}")
        self.kind = kind
        self.max_line = max_line
        self._times = kind == "compose" and compose_times(head)
        self._partials: dict[str | None, _Partial] = {}
        self.cut = 0  # joined lines cut at max_line

    @property
    def held(self) -> tuple[int, int] | None:
        """(line number, offset) of the first piece still held, if any."""
        if not self._partials:
            return None
        first = min(self._partials.values(), key=lambda p: p.offset)
        return first.line_no, first.offset

    def feed(self, raw: bytes, line_no: int, offset: int) -> list[Unwrapped]:
        parsed = _parse(self.kind, raw, self._times)
        if parsed is None:  # not wrapped: passed on as it is
            return [Unwrapped(raw[: self.max_line], line_no, offset)]
        stream = parsed.stream
        held = self._partials.get(stream)
        if held is not None:
            self._add(held, parsed.text)
            if parsed.partial:
                return []
            del self._partials[stream]
            return [self._joined(held, stream)]
        if parsed.partial:
            self._partials[stream] = _Partial([], 0, line_no, offset, parsed.time)
            self._add(self._partials[stream], parsed.text)
            return []
        text = parsed.text[: self.max_line]
        if self.kind == "syslog":
            return [
                Unwrapped(piece, line_no, offset, stream, parsed.time)
                for piece in split_escaped(text)
            ]
        return [Unwrapped(text, line_no, offset, stream, parsed.time)]

    def flush(self) -> list[Unwrapped]:
        """The lines still being joined, as they are (end of input: the rest never came)."""
        partials = sorted(self._partials.items(), key=lambda item: item[1].offset)
        self._partials = {}
        return [self._joined(held, stream) for stream, held in partials]

    def _add(self, held: _Partial, text: bytes) -> None:
        room = self.max_line - held.size
        if len(text) > room:
            held.cut = True
            text = text[: max(0, room)]
        if text:
            held.pieces.append(text)
            held.size += len(text)

    def _joined(self, held: _Partial, stream: str | None) -> Unwrapped:
        self.cut += held.cut
        return Unwrapped(b"".join(held.pieces), held.line_no, held.offset, stream, held.time)
