"""Container runtimes' and syslog's wrappers, undone before lines are joined into events.

Unit tables for each wrapper (detection, stripping, joining split lines within a bound, `#012`,
interleaved streams, junk); the whole corpus wrapped in each of them means exactly what it means
bare, through `oai400d classify` and through the daemon's way of reading files; the daemon
alerts once per error in wrapped files; a symlinked log is followed at its target.
"""

from __future__ import annotations

import io
import os
import time
import tracemalloc
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oai400d.assemble import Assembler, StreamAssemblers
from oai400d.classify import Classifier
from oai400d.model import Line
from oai400d.scan import Scanner, scan_file, split_point
from oai400d.sources import Sources
from oai400d.unwrap import Unwrapper, detect, parse_compose, split_escaped, unwrap_block

from .daemon_harness import STAMP, DaemonProcess, status, wait_until, write_config
from .support import DATA, Case, classify_by_path, load_corpus, oai400d
from .wrapping import TIME, WRAPPERS, compose, cri, docker, syslog_escaped, syslog_traditional

CASES = load_corpus()
CLASSIFIER = Classifier()


def unwrap(kind: str, lines: list[bytes], max_line: int = 1024 * 1024) -> list[tuple[Any, ...]]:
    """(text, line, stream, time) of each unwrapped line, the rest flushed at the end."""
    unwrapper = Unwrapper(kind, max_line, b"\n".join(lines) + b"\n")
    out = []
    for number, raw in enumerate(lines, 1):
        out.extend(unwrapper.feed(raw, number, 0))
    out.extend(unwrapper.flush())
    return [(x.text, x.line_no, x.stream, x.time) for x in out]


# --- detection ----------------------------------------------------------------------------------

PLAIN = [
    "2024-05-01 12:00:00,101 INFO app.web: GET /healthz 200 in 2 ms",
    "Traceback (most recent call last):",
    '  File "/app/x.py", line 1, in <module>',
    "openai.RateLimitError: Error code: 429",
]


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (docker(PLAIN)[0], "docker"),
        (cri(PLAIN)[0], "cri"),
        (compose(PLAIN)[0], "compose"),
        (compose(PLAIN, times=True)[0], "compose"),
        (syslog_traditional(PLAIN)[0], "syslog"),
        (WRAPPERS["syslog-rfc3339"](PLAIN, 2)[0], "syslog"),
        (WRAPPERS["syslog-rfc5424"](PLAIN, 2)[0], "syslog"),
        (syslog_escaped(PLAIN)[0], "syslog"),
        # Docker Desktop's log view: its local time, then the compose prefix.
        (b"2024-12-12 07:58:53 crawl4ai-1  | Error: boom\n" * 3, "compose"),
        # `docker compose up` starts with a line of its own; nearly all is enough.
        (b"Attaching to app-1, db-1\n" + compose(PLAIN * 3)[0], "compose"),
        (b"junk first\n" + docker(PLAIN * 3)[0], "docker"),
        ("\n".join(PLAIN).encode() + b"\n", "none"),
        (b"", "none"),
        (b"no newline yet", "none"),
        (b"\x00\x01\x02\xff\xfe binary\n" * 5, "none"),
        # JSON-lines app logs, pipes in an app's format, an App Service time prefix: plain.
        (b'{"level": "error", "msg": "boom", "log": "x"}\n' * 3, "none"),
        (b"ERROR | boom\nINFO  | ok\n", "none"),
        (b"2024-05-01 12:00:00.123 | ERROR    | app:run:42 - boom\n" * 3, "none"),
        (b"2024-11-10T10:47:33.514990646Z 2024-11-10 10:47:33,514 - INFO - ok\n" * 3, "none"),
        (b"2024-05-01T12:00:00Z INFO app: started\n" * 3, "none"),
        # Half wrapped is not wrapped.
        (b"".join([docker(PLAIN)[0], "\n".join(PLAIN * 2).encode(), b"\n"]), "none"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_detection(head: bytes, kind: str) -> None:
    """The wrapper is told from the first lines: all or nearly all must agree."""
    assert detect(head) == kind


# --- stripping ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "raw", "expected"),
    [
        (
            "docker",
            b'{"log":"Error: boom\\n","stream":"stderr","time":"2024-05-01T12:00:00.1Z"}',
            (b"Error: boom", "stderr", "2024-05-01T12:00:00.1Z"),
        ),
        (  # Go's escapes, a tab, a quote, a CRLF, UTF-8
            "docker",
            b'{"log":"\\u003chtml\\u003e \\u0026 \\"q\\"\\tt\xc3\xa9\\r\\n","stream":"stdout",'
            b'"time":"t"}',
            ('<html> & "q"\tt\u00e9'.encode(), "stdout", "t"),
        ),
        (  # --log-opt labels=…: attrs before the time
            "docker",
            b'{"log":"x\\n","stream":"stdout","attrs":{"app":"web"},"time":"t"}',
            (b"x", "stdout", "t"),
        ),
        (  # another key order, spaces: parsed as JSON
            "docker",
            b'{"time": "t", "stream": "stderr", "log": "x\\n"}',
            (b"x", "stderr", "t"),
        ),
        (  # cut before its end (a line over the physical bound): what can be read of it
            "docker",
            b'{"log":"Error: 401 Incorrect API key \\u00',
            (b"Error: 401 Incorrect API key ", None, None),
        ),
        (
            "cri",
            b'2024-05-01T12:00:00.123456789Z stderr F   File "x.py", line 1',
            (b'  File "x.py", line 1', "stderr", "2024-05-01T12:00:00.123456789Z"),
        ),
        (
            "cri",
            b"2024-05-01T12:00:00+02:00 stdout F ",
            (b"", "stdout", "2024-05-01T12:00:00+02:00"),
        ),
        ("cri", b"2024-05-01T12:00:00Z stdout F", (b"", "stdout", "2024-05-01T12:00:00Z")),
        ("compose", b"app-1  | Error: boom", (b"Error: boom", "app-1", None)),
        ("compose", b"app-1  |     at x (y.js:1:1)", (b"    at x (y.js:1:1)", "app-1", None)),
        ("compose", b"web_1   | ", (b"", "web_1", None)),
        ("compose", b"\x1b[36mapp-1  |\x1b[0m Error: boom", (b"Error: boom", "app-1", None)),
        (
            "compose",
            b"2024-12-12 07:58:53 app-1  | Error: boom",
            (b"Error: boom", "app-1", "2024-12-12 07:58:53"),
        ),
        (
            "syslog",
            b'Dec  6 21:15:04 web-1 app[123]:   File "x.py", line 1',
            (b'  File "x.py", line 1', "web-1 app[123]", "Dec  6 21:15:04"),
        ),
        (
            "syslog",
            b"2024-05-01T12:00:00.123456+00:00 web-1 app[123]: Traceback",
            (b"Traceback", "web-1 app[123]", "2024-05-01T12:00:00.123456+00:00"),
        ),
        (
            "syslog",
            b"<14>1 2024-05-01T12:00:00Z web-1 app 123 ID47 - \xef\xbb\xbfTraceback",
            (b"Traceback", "web-1 app[123]", "2024-05-01T12:00:00Z"),
        ),
        (
            "syslog",
            b'<14>1 2024-05-01T12:00:00Z web-1 app - - [x@1 a="\\]\\"q"][y@2] msg',
            (b"msg", "web-1 app", "2024-05-01T12:00:00Z"),
        ),
        (
            "syslog",
            b"Dec  6 21:15:04 web-1 app: tab#011here#000",
            (b"tab\there", "web-1 app", "Dec  6 21:15:04"),
        ),
    ],
)
def test_stripping(kind: str, raw: bytes, expected: tuple[bytes, str | None, str | None]) -> None:
    """Each wrapper's header goes; the line, its stream and the runtime's time stay."""
    ((text, line, stream, stamp),) = unwrap(kind, [raw])
    assert (text, stream, stamp) == expected
    assert line == 1


def test_compose_times_are_stripped_only_when_every_line_has_one() -> None:
    """`docker compose logs -t` puts Docker's time after the bar on every line: it goes; an
    app's own ISO time at the start of some lines stays."""
    stamped = [f"app-1  | {TIME} {line}".encode() for line in PLAIN]
    assert [x[0] for x in unwrap("compose", stamped)] == [x.encode() for x in PLAIN]
    mixed = [b"app-1  | 2024-05-01T12:00:00.1Z ERROR x", b"app-1  | Traceback"]
    assert [x[0] for x in unwrap("compose", mixed)] == [
        b"2024-05-01T12:00:00.1Z ERROR x",
        b"Traceback",
    ]
    assert parse_compose(b"ERROR  | not a service") is None


def test_escaped_records_split_into_lines() -> None:
    """rsyslog's `#012` is a newline, `#011` a tab; the NUL SysLogHandler appends goes; a `#`
    followed by other digits is text."""
    assert split_escaped(b"a#012#011b#012c#000") == [b"a", b"\tb", b"c"]
    assert split_escaped(b"nginx 2718#2718: job#3321") == [b"nginx 2718#2718: job#3321"]
    lines = [b'May  1 12:00:00 h app[1]: Traceback (most recent call last):#012  File "x"#012E: 1']
    assert unwrap("syslog", lines) == [
        (b"Traceback (most recent call last):", 1, "h app[1]", "May  1 12:00:00"),
        (b'  File "x"', 1, "h app[1]", "May  1 12:00:00"),
        (b"E: 1", 1, "h app[1]", "May  1 12:00:00"),
    ]


# --- split lines --------------------------------------------------------------------------------


def test_docker_partials_are_joined_per_stream() -> None:
    """A line Docker split (log not ending in a newline) is joined up to the piece that ends
    it; a line of the other stream in between comes out on its own, at once."""
    lines = [
        b'{"log":"Error: 401 Incorr","stream":"stderr","time":"t1"}',
        b'{"log":"GET /healthz\\n","stream":"stdout","time":"t2"}',
        b'{"log":"ect API key ","stream":"stderr","time":"t3"}',
        b'{"log":"provided\\n","stream":"stderr","time":"t4"}',
    ]
    assert unwrap("docker", lines) == [
        (b"GET /healthz", 2, "stdout", "t2"),
        (b"Error: 401 Incorrect API key provided", 1, "stderr", "t1"),
    ]


def test_cri_pieces_are_joined_up_to_the_full_one() -> None:
    """CRI partial (P) pieces of one stream are joined up to its full (F) line, around another stream's line."""
    lines = [
        b'2024-05-01T12:00:00Z stderr P {"error": {"message": "You exceeded ',
        b"2024-05-01T12:00:00Z stdout F 10.0.0.1 GET /",
        b"2024-05-01T12:00:01Z stderr P your current ",
        b'2024-05-01T12:00:02Z stderr F quota"}}',
    ]
    assert unwrap("cri", lines) == [
        (b"10.0.0.1 GET /", 2, "stdout", "2024-05-01T12:00:00Z"),
        (
            b'{"error": {"message": "You exceeded your current quota"}}',
            1,
            "stderr",
            "2024-05-01T12:00:00Z",
        ),
    ]


def test_joined_line_is_cut_at_max_line_and_held_in_bounded_memory() -> None:
    """Pieces beyond max_line are dropped (the head is kept) however many come; until the
    last piece, `held` names the first one (a reader must not persist a position past it)."""
    assert Unwrapper("cri", max_line=4096).held is None
    unwrapper = Unwrapper("cri", max_line=4096)
    tracemalloc.start()
    try:
        for number in range(1, 2001):
            piece = b"2024-05-01T12:00:00Z stderr P " + bytes([65 + number % 26]) * 1024
            assert unwrapper.feed(piece, number, number * 1055) == []
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 512 * 1024
    assert unwrapper.held == (1, 1055)
    (line,) = unwrapper.feed(b"2024-05-01T12:00:00Z stderr F end", 2001, 0)
    assert len(line.text) == 4096 and line.text.startswith(b"B" * 1024 + b"C")
    assert (line.line_no, unwrapper.cut) == (1, 1)
    assert not unwrapper.flush()  # nothing held any more


def test_unfinished_line_comes_out_at_the_end() -> None:
    """A partial line still unfinished when the input ends comes out as it is."""
    assert unwrap("docker", [b'{"log":"half a li","stream":"stderr","time":"t"}']) == [
        (b"half a li", 1, "stderr", "t")
    ]


def test_blocks_of_one_stream_are_unwrapped_at_once() -> None:
    """The scanner's fast path gives what unwrapping line by line gives, and declines a block
    it cannot take whole (a split line, another stream, an escaped backslash before `n`)."""
    docker_lines = [
        b'{"log":"a \\"q\\" \\u003cb\\u003e\\ttab\\n","stream":"stderr","time":"2024-05-01T12:00:00.1Z"}',
        b'{"log":"\\n","stream":"stderr","time":"t"}',
    ]
    cri_lines = [
        b"2024-05-01T12:00:00Z stderr F a",
        b"2024-05-01T12:00:00Z stderr F",
        b"2024-05-01T12:00:00.123456789+02:00 stderr F  b",
    ]
    for kind, lines in (("docker", docker_lines), ("cri", cri_lines)):
        expected = b"".join(text + b"\n" for text, *_ in unwrap(kind, lines))
        assert unwrap_block(kind, b"\n".join(lines) + b"\n") == ("stderr", expected)
    declined = [
        ("docker", b'{"log":"x\\\\n","stream":"stderr","time":"t"}'),  # `x\n`: no newline
        ("docker", b'{"log":"x\\n","stream":"stdout","time":"t"}'),
        ("docker", b'{"log":"x","stream":"stderr","time":"t"}'),
        ("docker", b"not json"),
        ("cri", b"2024-05-01T12:00:00Z stderr P piece"),
        ("cri", b"2024-05-01T12:00:00Z stdout F other"),
    ]
    for kind, extra in declined:
        lines = docker_lines if kind == "docker" else cri_lines
        assert unwrap_block(kind, b"\n".join([*lines, extra]) + b"\n") is None, extra
    assert unwrap_block("compose", b"app-1  | x\n") is None


# --- junk ---------------------------------------------------------------------------------------


def test_junk_and_unwrapped_lines_pass_as_they_are() -> None:
    """Invalid UTF-8, binary data, a plain line in a wrapped file, an empty line: passed on
    unchanged, in no stream; a held piece is not glued to them."""
    lines = [
        b'{"log":"Error: 429 ","stream":"stderr","time":"t"}',
        b"\xff\xfe\x00 binary \x80",
        b"plain text after the wrapper stopped",
        b"",
        b'{"log":"You exceeded your current quota\\n","stream":"stderr","time":"t"}',
    ]
    assert unwrap("docker", lines) == [
        (b"\xff\xfe\x00 binary \x80", 2, None, None),
        (b"plain text after the wrapper stopped", 3, None, None),
        (b"", 4, None, None),
        (b"Error: 429 You exceeded your current quota", 1, "stderr", "t"),
    ]


def _huge_line(size: int) -> Iterator[bytes]:
    """A docker log whose second line holds a `size` bytes long log value."""
    yield b'{"log":"2024-05-01 12:00:00,000 INFO app: start\\n","stream":"stdout","time":"t"}\n'
    yield b'{"log":"'
    chunk = b"x" * (1024 * 1024)
    for _ in range(size // len(chunk)):
        yield chunk
    yield b'\\n","stream":"stdout","time":"t"}\n'
    yield docker(
        [
            "openai.AuthenticationError: Error code: 401 - {'error': {'message': "
            "'Incorrect API key provided: sk-proj-****abcd.', 'type': "
            "'invalid_request_error', 'param': None, 'code': 'invalid_api_key'}}"
        ],
        every=0,
    )[0]


class _Generated:
    """A stream made on the fly, never held whole."""

    def __init__(self, parts: Iterator[bytes]) -> None:
        self.parts = parts

    def read(self, size: int = -1, /) -> bytes:
        return next(self.parts, b"")


def test_a_50_megabyte_wrapped_line_is_cut_in_bounded_memory() -> None:
    """The scanner keeps the head of an over-long physical line and drops the rest; the error
    after it is found, at its physical line, without holding the line in memory."""
    scanner = Scanner(CLASSIFIER, max_line=64 * 1024, chunk_size=1024 * 1024)
    tracemalloc.start()
    try:
        findings = list(scanner.scan(_Generated(_huge_line(50 * 1024 * 1024)), "huge.log"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [(f.line, f.category) for f in findings] == [(3, "auth.invalid_api_key")]
    assert peak < 24 * 1024 * 1024
    assert scanner.stats.lines == 3 and scanner.stats.cut_lines >= 1


# --- one assembler per stream -------------------------------------------------------------------


def test_interleaved_streams_are_never_glued() -> None:
    """stdout's record between two lines of stderr's traceback neither cuts the traceback
    nor joins it; a stream that went quiet is flushed on its own."""
    assemblers = StreamAssemblers("app.log")
    lines = [
        Line("app.log", 1, 0, "Traceback (most recent call last):", "stderr"),
        Line("app.log", 2, 0, "2024-05-01 12:00:00,000 INFO web: GET /", "stdout"),
        Line("app.log", 3, 0, '  File "x.py", line 1, in <module>', "stderr"),
        Line("app.log", 4, 0, "openai.RateLimitError: Error code: 429", "stderr"),
        Line("app.log", 5, 0, "2024-05-01 12:00:01,000 INFO web: GET /", "stdout"),
    ]
    events = [event for number, line in enumerate(lines) for event in assemblers.feed(line, number)]
    assert [(e.first_line, e.last_line) for e in events] == [(2, 2)]
    assert assemblers.first_pending is not None and assemblers.first_pending.line_no == 1
    idle = assemblers.flush_idle(now=4.0, timeout=1.0)  # stderr was last fed at 3
    assert [(e.first_line, e.last_line) for e in idle] == [(1, 4)]
    assert [(e.first_line, e.last_line) for e in assemblers.flush()] == [(5, 5)]


def test_streams_are_bounded() -> None:
    """Beyond max_streams, the stream unused longest is flushed and forgotten."""
    assemblers = StreamAssemblers("syslog", max_streams=2)
    assert assemblers.feed(Line("syslog", 1, 0, "Traceback (most recent call last):", "a[1]")) == []
    assert assemblers.feed(Line("syslog", 2, 0, "x", "b[2]")) == []
    done = assemblers.feed(Line("syslog", 3, 0, "y", "c[3]"))
    assert [(e.first_line, e.text) for e in done] == [(1, "Traceback (most recent call last):")]


# --- the corpus, wrapped ------------------------------------------------------------------------


def _case_lines(case: Case) -> list[str]:
    text = case.file.read_bytes().decode("utf-8", "replace")
    return (text[:-1] if text.endswith("\n") else text).split("\n")


def _classify(paths: list[str], *args: str) -> dict[str, list[dict[str, Any]]]:
    return classify_by_path(paths, *args)


def _key(finding: dict[str, Any]) -> tuple[Any, ...]:
    return (
        finding["category"],
        finding["rule"],
        finding["error_code"],
        finding["line"],
        finding["end_line"],
    )


# Woven and split: another stream's line after every second line, lines split into pieces of
# this many characters (docker, cri), so that the pieces of many corpus lines are joined.
EVERY = 2
SPLIT = {"docker": 256, "cri": 128}


def _wrapped(name: str, case: Case, woven: bool) -> tuple[bytes, list[int]]:
    if woven:
        return WRAPPERS[name](_case_lines(case), EVERY, SPLIT.get(name, 0))
    return WRAPPERS[name](_case_lines(case), 0)


def _write_wrapped(
    name: str, directory: Path, woven: bool = True
) -> dict[str, tuple[Case, list[int]]]:
    """Every case wrapped by WRAPPERS[name] into directory; path → (case, physical starts)."""
    directory.mkdir(exist_ok=True)
    written = {}
    for case in CASES:
        data, starts = _wrapped(name, case, woven)
        path = directory / f"{case.group}__{case.file.name}"
        path.write_bytes(data)
        written[str(path)] = (case, starts)
    return written


def _expected(bare: list[tuple[Any, ...]], starts: list[int]) -> list[tuple[Any, ...]]:
    return [(*key[:3], starts[key[3] - 1], starts[key[4] - 1]) for key in bare]


@pytest.mark.parametrize("name", list(WRAPPERS))
def test_every_case_means_the_same_wrapped(name: str, tmp_path: Path) -> None:
    """Every corpus case, wrapped as the runtime writes it (a line split at 16 KiB, a syslog
    record per logging call), gives through `oai400d classify` exactly the findings it gives
    bare: same category, rule and code, its span at the physical lines of the wrapped file.
    Bare means read as it is (a case that is itself wrapped stays so), in the same run (the
    same rules). Nothing is woven in here: classify's one-finding-per-request rule
    (sameerror.py) measures how many physical lines apart a status line and its error are."""
    written = _write_wrapped(name, tmp_path / "wrapped", woven=False)
    config = tmp_path / "config.toml"
    config.write_text(f'[logs.wrappers]\n"{DATA}/*/*.log" = "none"\n')
    bare = [str(case.file) for case in CASES]
    found = _classify([*bare, *written], "--config", str(config))
    mismatches = []
    for path, (case, starts) in written.items():
        expected = _expected([_key(f) for f in found.get(str(case.file), [])], starts)
        actual = [_key(f) for f in found.get(path, [])]
        if actual != expected:
            mismatches.append(f"{case.id}: bare {expected}, wrapped {actual}")
    assert not mismatches, f"{len(mismatches)} cases differ:\n" + "\n".join(mismatches[:20])


@pytest.mark.parametrize("name", list(WRAPPERS))
def test_every_case_means_the_same_wrapped_woven_and_split(name: str) -> None:
    """Every corpus case, wrapped with another stream's lines woven in after every second
    line and its lines split into small pieces, yields from the scanner (what classify's
    output is made of) exactly what the bare case yields, spans at the physical lines."""
    mismatches = []
    for case in CASES:
        data, starts = _wrapped(name, case, woven=True)
        bare = Scanner(CLASSIFIER, wrapper="none").scan(io.BytesIO(case.file.read_bytes()), "b")
        wrapped = Scanner(CLASSIFIER).scan(io.BytesIO(data), "w")
        expected = _expected(
            [(f.category, f.rule, f.error_code, f.line, f.end_line) for f in bare], starts
        )
        actual = [(f.category, f.rule, f.error_code, f.line, f.end_line) for f in wrapped]
        if actual != expected:
            mismatches.append(f"{case.id}: bare {expected}, wrapped {actual}")
    assert not mismatches, f"{len(mismatches)} cases differ:\n" + "\n".join(mismatches[:20])


def _bare_the_daemon_way(case: Case) -> list[tuple[Any, ...]]:
    assembler = Assembler(str(case.file))
    events = []
    for number, text in enumerate(_case_lines(case), 1):
        events.extend(assembler.feed(Line(str(case.file), number, 0, text)))
    events.extend(assembler.flush())
    findings = [CLASSIFIER.classify(event) for event in events]
    return [(f.category, f.rule, f.error_code, f.line, f.end_line) for f in findings if f]


@pytest.mark.parametrize("name", ["docker", "cri", "syslog-escaped"])
def test_every_case_means_the_same_wrapped_read_as_the_daemon_reads(
    name: str, tmp_path: Path
) -> None:
    """The daemon's way (Sources reading the files on disk, one Assembler per stream) gives
    for each wrapped case what assembling its bare lines gives."""
    written = _write_wrapped(name, tmp_path)
    lines: dict[str, list[Line]] = defaultdict(list)
    sources = Sources(
        [str(tmp_path / "*.log")], [], "beginning", 1024 * 1024, print, wrapper="auto"
    )
    sources.start()
    try:
        reads = sources.poll(budget=1 << 30)
        while sources.more:
            reads += sources.poll(budget=1 << 30)
    finally:
        sources.stop()
    for read in reads:
        lines[read.file.path].extend(read.lines)
    mismatches = []
    for path, (case, starts) in written.items():
        assemblers = StreamAssemblers(path)
        events = [event for line in lines[path] for event in assemblers.feed(line)]
        events.extend(assemblers.flush())
        findings = [f for f in (CLASSIFIER.classify(event) for event in events) if f]
        actual = sorted(
            [(f.category, f.rule, f.error_code, f.line, f.end_line) for f in findings], key=str
        )
        expected = sorted(_expected(_bare_the_daemon_way(case), starts), key=str)
        if actual != expected:
            mismatches.append(f"{case.id}: bare {expected}, wrapped {actual}")
    assert not mismatches, f"{len(mismatches)} cases differ:\n" + "\n".join(mismatches[:20])


def test_small_reads_find_the_same_in_a_wrapped_file() -> None:
    """The scanner finds the same in a wrapped file whatever its read size."""
    lines = [line for case in CASES[:60] for line in ["", *_case_lines(case)]]
    data, _ = docker(lines, every=3, split=64)
    whole = list(Scanner(CLASSIFIER).scan(io.BytesIO(data), "w.log"))
    small = list(Scanner(CLASSIFIER, chunk_size=97).scan(io.BytesIO(data), "w.log"))
    assert whole and [(f.line, f.end_line, f.rule) for f in small] == [
        (f.line, f.end_line, f.rule) for f in whole
    ]


def test_configured_wrapper_is_used_and_none_reads_as_it_is(tmp_path: Path) -> None:
    """logs.wrappers names the wrapper per glob, logs.wrapper = "none" turns unwrapping off."""
    data, _ = compose(PLAIN, every=0)
    log = tmp_path / "compose.log"
    log.write_bytes(b"Attaching to app-1\nAttaching to db-1\nAttaching\n" + data)  # fools auto
    plain = tmp_path / "none.toml"
    plain.write_text('[logs]\nwrapper = "none"\n')
    named = tmp_path / "named.toml"
    named.write_text(f'[logs]\nwrapper = "none"\n[logs.wrappers]\n"{tmp_path}/*.log" = "compose"\n')
    spans = {
        name: [
            (f["line"], f["end_line"])
            for f in _classify([str(log)], "--config", str(config))[str(log)]
        ]
        for name, config in (("none", plain), ("named", named))
    }
    assert spans == {"none": [(7, 7)], "named": [(4, 7)]}


def test_a_bad_wrapper_is_a_config_error_naming_its_key(tmp_path: Path) -> None:
    """An unknown wrapper kind, global or per glob, is a config error (exit 78) naming its key."""
    config = tmp_path / "c.toml"
    config.write_text('[logs]\nwrapper = "dockr"\n[logs.wrappers]\n"/var/log/*.log" = "k8s"\n')
    result = oai400d("check-config", "--config", str(config))
    assert result.returncode == 78
    err = result.stderr.decode()
    assert "logs.wrapper: 'dockr' is not valid" in err
    assert "logs.wrappers.\"/var/log/*.log\": 'k8s' is not valid" in err


# --- the daemon ---------------------------------------------------------------------------------

NODE_DUMP = [
    "Error: 401 Incorrect API key provided: sk-proj-****abcd. You can find your API key at "
    "https://platform.openai.com/account/api-keys.",
    "    at APIError.generate (/app/node_modules/openai/error.js:44:20)",
    "    at OpenAI.makeStatusError (/app/node_modules/openai/core.js:263:33)",
    "    at process.processTicksAndRejections (node:internal/process/task_queues:95:5) {",
    "  status: 401,",
    "  headers: {",
    "    'content-type': 'application/json; charset=utf-8',",
    "  },",
    "  error: {",
    "    message: 'Incorrect API key provided: sk-proj-****abcd. You can find your API key at "
    "https://platform.openai.com/account/api-keys.',",
    "    type: 'invalid_request_error',",
    "    param: null,",
    "    code: 'invalid_api_key'",
    "  },",
    "  code: 'invalid_api_key',",
    "  type: 'invalid_request_error'",
    "}",
]
TRACEBACK = [
    f"{STAMP}:03,100 ERROR app.worker: summarise failed",
    "Traceback (most recent call last):",
    '  File "/app/worker.py", line 41, in summarise',
    '    response = client.chat.completions.create(model="gpt-4o", messages=messages)',
    '  File "/usr/local/lib/python3.12/site-packages/openai/_base_client.py", line 1059, in _request',
    "    raise self._make_status_error_from_response(err.response) from None",
    "openai.RateLimitError: Error code: 429 - {'error': {'message': 'You exceeded your current "
    "quota, please check your plan and billing details.', 'type': 'insufficient_quota', "
    "'param': None, 'code': 'insufficient_quota'}}",
]
# Last in each file: once it is counted, everything before it in its stream was classified.
SENTINEL = (
    f"{STAMP}:05,000 ERROR worker: openai.RateLimitError: Error code: 429 - {{'error': "
    "{'message': 'Rate limit reached for gpt-4o in organization org-abcdef123456 on tokens per "
    "min (TPM): Limit 30000, Used 29500, Requested 900.', 'type': 'tokens', 'param': None, "
    "'code': 'rate_limit_exceeded'}}"
)


def _counts(config: Path) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for alert in status(config)["alerts"]:
        counts[alert["category"]] += alert["count"]
    return dict(counts)


def test_the_daemon_alerts_once_per_error_in_wrapped_files(tmp_path: Path) -> None:
    """An openai-node error dump and a Python traceback in a docker json-file log (split
    pieces, stdout woven in), a CRI log (P/F pieces) reached through a symlink as in
    /var/log/containers, a compose log and a syslog file each give one finding per error:
    one alert per error, counted once per file. The reconcile rescan is too slow to matter."""
    config = write_config(tmp_path)
    config.write_text(
        config.read_text().replace('reconcile_interval = "1s"', 'reconcile_interval = "1h"')
    )
    logs = tmp_path / "logs"
    pod = tmp_path / "pods" / "default_web-7d9c_0f1e" / "web"
    pod.mkdir(parents=True)
    (pod / "0.log").write_bytes(b"")
    os.symlink(pod / "0.log", logs / "web-7d9c_default_web-0f1e2d.log")
    lines = ["2024-05-01T12:00:00.000Z info: request received", *NODE_DUMP, *TRACEBACK, SENTINEL]
    files = {
        logs / "docker.log": docker(lines, every=3, split=40)[0],
        pod / "0.log": cri(lines, every=3, split=50)[0],
        logs / "compose.log": compose(lines, every=3)[0],
        logs / "syslog.log": syslog_traditional(lines, every=3)[0],
    }
    daemon = DaemonProcess(config)
    try:
        daemon.wait_ready()
        for path, data in files.items():
            with path.open("ab") as handle:
                handle.write(data)
        wait_until(
            lambda: _counts(config).get("rate_limit") == len(files),
            timeout=10,
            what="the last error of every file",
        )
        assert _counts(config) == {
            "auth.invalid_api_key": len(files),
            "quota.insufficient": len(files),
            "rate_limit": len(files),
        }, daemon.log()
        opened = [n["category"] for n in daemon.wait_for(lambda n: n["kind"] == "opened", 3)]
        assert sorted(opened) == ["auth.invalid_api_key", "quota.insufficient", "rate_limit"]
    finally:
        assert daemon.stop() == 0


def test_a_symlinked_log_is_noticed_within_a_second(tmp_path: Path) -> None:
    """A glob matching a symlink to a file in another directory: a write to the file is
    noticed through a watch on the target's directory, not by a rescan."""
    links, target_dir = tmp_path / "containers", tmp_path / "pods" / "ns_pod_uid" / "app"
    links.mkdir()
    target_dir.mkdir(parents=True)
    target = target_dir / "0.log"
    target.write_bytes(b"")
    os.symlink(target, links / "pod_ns_app-0123.log")
    sources = Sources([str(links / "*.log")], [], "beginning", 4096, print, wrapper="auto")
    sources.start()
    got: list[Line] = []
    try:
        got.extend(line for read in sources.poll() for line in read.lines)
        with target.open("ab") as handle:
            handle.write(f"{TIME} stderr P Error: 429 \n{TIME} stderr F You exceeded\n".encode())
        deadline = time.monotonic() + 1.0
        while not got and time.monotonic() < deadline:
            sources.wait(deadline - time.monotonic())
            got.extend(line for read in sources.poll() for line in read.lines)
    finally:
        sources.stop()
    assert [(x.text, x.line_no, x.stream) for x in got] == [
        ("Error: 429 You exceeded", 1, "stderr")
    ]


def test_a_restart_reads_the_pieces_of_an_unfinished_line_again(tmp_path: Path) -> None:
    """While the last line's pieces wait for the one that ends it, the position handed out
    stays before the first piece: after a restart the line is read whole, none of it lost."""
    log = tmp_path / "app-json.log"
    first = b'{"log":"2024-05-01 12:00:00,000 INFO app: start\\n","stream":"stdout","time":"t"}\n'
    piece = b'{"log":"openai.RateLimitError: Error code: 429 - ","stream":"stderr","time":"t"}\n'
    log.write_bytes(first + piece)
    sources = Sources([str(tmp_path / "*.log")], [], "beginning", 4096, print, wrapper="docker")
    sources.start()
    try:
        reads = sources.poll()
    finally:
        sources.stop()
    assert [line.text for read in reads for line in read.lines] == [
        "2024-05-01 12:00:00,000 INFO app: start"
    ]
    (saved,) = sources.files()
    assert (saved.offset, saved.line_no) == (len(first), 1)
    with log.open("ab") as handle:
        handle.write(b'{"log":"You exceeded your current quota\\n","stream":"stderr","time":"t"}\n')
    again = Sources([str(tmp_path / "*.log")], [saved], "beginning", 4096, print, wrapper="auto")
    again.start()
    try:
        lines = [line for read in again.poll() for line in read.lines]
    finally:
        again.stop()
    assert [(x.line_no, x.offset, x.stream, x.text) for x in lines] == [
        (
            2,
            len(first),
            "stderr",
            "openai.RateLimitError: Error code: 429 - You exceeded your current quota",
        )
    ]
    assert again.files()[0].offset == log.stat().st_size


@pytest.mark.parametrize("name", ["docker", "cri", "compose"])
def test_a_wrapped_file_split_between_two_processes_gives_the_same(
    name: str, tmp_path: Path
) -> None:
    """A big wrapped file is cut for the second process only where no stream's event or split
    line runs across the cut: the findings and their physical lines stay the same."""
    lines = [line for case in CASES[:300] for line in ["", *_case_lines(case)]]
    data, _ = WRAPPERS[name](lines, 3, 200)
    log = tmp_path / "wrapped.log"
    log.write_bytes(data)
    size = len(data)
    sequential = Scanner(CLASSIFIER)
    with log.open("rb") as handle:
        one = [(f.line, f.end_line, f.rule) for f in sequential.scan(handle, str(log))]
    parallel = Scanner(CLASSIFIER, chunk_size=65536)
    two = [(f.line, f.end_line, f.rule) for f in scan_file(parallel, str(log), size, 1)]
    assert split_point(str(log), size, name) is not None
    assert len(one) > 100 and two == one
    assert parallel.stats.lines == sequential.stats.lines == data.count(b"\n")


def test_the_daemon_reads_a_huge_wrapped_line_in_bounded_memory(tmp_path: Path) -> None:
    """A 20 MB docker line on disk is cut at the physical bound as it is read (its head kept
    as text), memory stays bounded, and the lines after it come unwrapped."""
    log = tmp_path / "app-json.log"
    with log.open("wb") as handle:
        handle.write(b'{"log":"')
        for _ in range(20):
            handle.write(b"y" * (1024 * 1024))
        handle.write(b'\\n","stream":"stdout","time":"t"}\n')
        handle.write(
            b'{"log":"Error: 429 You exceeded your quota\\n","stream":"stderr","time":"t"}\n'
        )
    max_line = 64 * 1024
    sources = Sources([str(tmp_path / "*.log")], [], "beginning", max_line, print, wrapper="auto")
    sources.start()
    lines: list[Line] = []
    tracemalloc.start()
    try:
        while True:
            lines.extend(line for read in sources.poll(budget=1024 * 1024) for line in read.lines)
            if not sources.more:
                break
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        sources.stop()
    assert peak < 4 * 1024 * 1024
    huge, error = lines
    assert (huge.line_no, len(huge.text), set(huge.text)) == (1, max_line, {"y"})
    assert (error.line_no, error.stream, error.text) == (
        2,
        "stderr",
        "Error: 429 You exceeded your quota",
    )
