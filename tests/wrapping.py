"""Writes log lines the way container runtimes and syslog write them to disk (for the tests).

Each wrapper takes the lines an application wrote and returns the bytes of the wrapped file and,
for each of those lines, the physical line (1-based) that holds its first piece. Lines of
another stream (a second service, the other standard stream, another program) can be woven in
between: they must never be glued to the application's lines.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

TIME = "2024-05-01T12:00:00.123456789Z"
# Lines of another stream, none of them an OpenAI error.
OTHER = (
    "2024-05-01 12:00:00,101 INFO db: checkpoint complete: wrote 12 buffers (0.1%)",
    "[2024-05-01 12:00:00] INFO: cache warmed (412 keys)",
    '{"ts": "2024-05-01T12:00:00.102Z", "level": "info", "msg": "job finished", "job": "digest"}',
)


@dataclass
class Written:
    """A wrapped file being written: its physical lines and where each app line starts."""

    lines: list[str] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)  # app line index → its first physical line

    def app(self, pieces: Sequence[str]) -> None:
        self.starts.append(len(self.lines) + 1)
        self.lines.extend(pieces)

    def other(self, line: str) -> None:
        self.lines.append(line)

    def data(self) -> bytes:
        return ("\n".join(self.lines) + "\n").encode("utf-8", "surrogateescape")


class Wrap(Protocol):
    def __call__(
        self, lines: Sequence[str], every: int = 2, split: int = 16 * 1024
    ) -> tuple[bytes, list[int]]: ...


def _weave(
    lines: Sequence[str],
    every: int,
    app: Callable[[str], list[str]],
    other: Callable[[str], str],
) -> tuple[bytes, list[int]]:
    """The app's lines, wrapped, with a line of another stream after every `every` of them
    (0: none) and one before the first."""
    written = Written()
    if every:
        written.other(other(OTHER[0]))
    for index, line in enumerate(lines):
        written.app(app(line))
        if every and index % every == every - 1:
            written.other(other(OTHER[(index // every) % len(OTHER)]))
    return written.data(), written.starts


def _split(text: str, size: int) -> list[str]:
    """A line in pieces of `size` characters (at least one piece, maybe empty)."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _json(text: str) -> str:
    """A JSON string as Go writes it (Docker): <, > and & escaped, other characters as they are."""
    quoted = json.dumps(text, ensure_ascii=False)
    return quoted.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def docker(lines: Sequence[str], every: int = 2, split: int = 16 * 1024) -> tuple[bytes, list[int]]:
    """Docker's json-file driver; a line longer than `split` characters in several objects
    whose log does not end in a newline (the last one does)."""

    def app(line: str) -> list[str]:
        pieces = _split(line, split)
        pieces[-1] += "\n"
        return [f'{{"log":{_json(piece)},"stream":"stderr","time":"{TIME}"}}' for piece in pieces]

    def other(line: str) -> str:
        quoted = _json(line + "\n")
        return f'{{"log":{quoted},"stream":"stdout","time":"{TIME}"}}'

    return _weave(lines, every, app, other)


def cri(lines: Sequence[str], every: int = 2, split: int = 16 * 1024) -> tuple[bytes, list[int]]:
    """containerd / CRI-O: `<time> <stream> <P|F> <text>`, long lines in P pieces then an F."""

    def app(line: str) -> list[str]:
        pieces = _split(line, split)
        return [
            f"{TIME} stderr {'F' if i == len(pieces) - 1 else 'P'} {piece}"
            for i, piece in enumerate(pieces)
        ]

    return _weave(lines, every, app, lambda line: f"{TIME} stdout F {line}")


def compose(
    lines: Sequence[str], every: int = 2, split: int = 0, times: bool = False
) -> tuple[bytes, list[int]]:
    """`docker compose logs` saved to a file: `app-1  | <text>` (times: with `-t`); compose
    never splits a line."""
    stamp = f"{TIME} " if times else ""
    return _weave(
        lines,
        every,
        lambda line: [f"app-1  | {stamp}{line}"],
        lambda line: f"db-1   | {stamp}{line}",
    )


def _escape(text: str) -> str:
    """rsyslog's escape of control characters (a tab is #011)."""
    return "".join(f"#{ord(c):03o}" if ord(c) < 32 or ord(c) == 127 else c for c in text)


def _syslog(header: Callable[[str], str]) -> Wrap:
    def wrap(lines: Sequence[str], every: int = 2, split: int = 0) -> tuple[bytes, list[int]]:
        return _weave(
            lines,
            every,
            lambda line: [header("app[812]") + " " + _escape(line)],
            lambda line: header("db[77]") + " " + _escape(line),
        )

    return wrap


syslog_traditional = _syslog(lambda tag: f"May  1 12:00:00 web-1 {tag}:")
syslog_rfc3339 = _syslog(lambda tag: f"2024-05-01T12:00:00.123456+00:00 web-1 {tag}:")


def _rfc5424(tag: str) -> str:
    app, procid = tag[:-1].split("[")
    return f'<14>1 {TIME} web-1 {app} {procid} - [meta sequenceId="1"]'


syslog_rfc5424 = _syslog(_rfc5424)


def syslog_escaped(lines: Sequence[str], every: int = 2, split: int = 0) -> tuple[bytes, list[int]]:
    """Each record one syslog line, as Python's SysLogHandler sends them (the record's newlines
    escaped as #012, the NUL it appends as #000): a record is a line at column 0 with the
    indented and blank lines after it (a traceback's frames, a dump's body). Records of another
    program come between."""
    records: list[list[str]] = []
    for line in lines:
        if records and (not line.strip() or line[:1] in (" ", "\t")):
            records[-1].append(line)
        else:
            records.append([line])
    written = Written()
    written.other(f"May  1 12:00:00 web-1 db[77]: {OTHER[0]}")
    starts = []
    for index, record in enumerate(records):
        escaped = "#012".join(_escape(line) for line in record) + "#000"
        written.app([f"May  1 12:00:00 web-1 app[812]: {escaped}"])
        starts.extend([written.starts[-1]] * len(record))
        if every and index % every == every - 1:
            written.other(f"May  1 12:00:00 web-1 db[77]: {OTHER[index % len(OTHER)]}")
    return written.data(), starts


def compose_times(lines: Sequence[str], every: int = 2, split: int = 0) -> tuple[bytes, list[int]]:
    """compose, with `docker compose logs -t`'s time on every line."""
    return compose(lines, every, times=True)


WRAPPERS: dict[str, Wrap] = {
    "docker": docker,
    "cri": cri,
    "compose": compose,
    "compose-t": compose_times,
    "syslog": syslog_traditional,
    "syslog-rfc3339": syslog_rfc3339,
    "syslog-rfc5424": syslog_rfc5424,
    "syslog-escaped": syslog_escaped,
}
