"""The cheap first pass: where in a stream could an OpenAI error be?

An event can only yield a finding if some rule can match it, and a rule matches through text it
requires: a literal of one of its patterns or messages, one of its error codes, or an HTTP status
in one of the forms the evidence reader understands. The prefilter looks for exactly that set,
all at once, in the raw bytes (case-insensitively, no decoding, no lower-casing), so the lines
that merely mention OpenAI (`HTTP/1.1 200 OK` request lines, DEBUG chatter, structured records of
successful calls) are never decoded or classified.

Two engines give the same answers: Hyperscan (one compiled automaton, in C) where its wheel is
installed, else one compiled `re` alternation (slower, for platforms without a Hyperscan wheel).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import platform
import re
import stat
import time
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from oai400d.classify.literals import required_literals

try:  # the fast engine; optional, because not every platform has a wheel
    import hyperscan
except ImportError:  # pragma: no cover - exercised where no wheel exists
    hyperscan = None  # type: ignore[assignment]


def _engine(asked: str) -> str:
    """ "hyperscan" or "re": "auto" takes Hyperscan where its wheel is installed."""
    if asked == "auto":
        return "re" if hyperscan is None else "hyperscan"
    if asked == "hyperscan" and hyperscan is None:
        raise ValueError("the hyperscan engine is not installed")
    return asked


def _compiled(expressions: Sequence[tuple[int, bytes, int]]) -> Any:
    """One Hyperscan block-mode database of (id, expression, flags); hyperscan.error if refused.

    Compiling the rule table's automata takes a few hundred milliseconds, most of a small
    file's `classify` and of the daemon's start-up; the serialized database is kept in a cache
    directory of this user's (see _cache_dir) under a digest of everything it was built from,
    and loaded from there next time. Anything wrong with the cache means compiling afresh."""
    key = hashlib.sha256(
        repr((sorted(expressions), _HS_VERSION, platform.machine())).encode("utf-8")
    ).hexdigest()[:32]
    folder = _cache_dir()
    cached = None if folder is None else os.path.join(folder, f"hs-{key}.db")
    if cached is not None:
        with contextlib.suppress(OSError, ValueError, TypeError, hyperscan.error), open(
            cached, "rb"
        ) as handle:
            return hyperscan.loadb(handle.read(), hyperscan.HS_MODE_BLOCK)
    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    database.compile(
        expressions=[expression for _, expression, _ in expressions],
        ids=[index for index, _, _ in expressions],
        elements=len(expressions),
        flags=[flags for _, _, flags in expressions],
    )
    if cached is not None:
        with contextlib.suppress(OSError, hyperscan.error):
            temporary = f"{cached}.{os.getpid()}.tmp"
            with open(temporary, "wb") as handle:
                handle.write(hyperscan.dumpb(database))
            os.replace(temporary, cached)
            forget_old(folder, keep=cached, prefix="hs-")
    return database


CACHE_DAYS = 14  # a database not rebuilt for this long belongs to rules no longer in use


def forget_old(folder: str | None, keep: str, prefix: str) -> None:
    """Delete the cache's files named `prefix`… (databases, rule analyses) that were last
    written CACHE_DAYS ago or more, but `keep`."""
    if folder is None:
        return
    cutoff = time.time() - CACHE_DAYS * 86400
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            if entry.name.startswith(prefix) and entry.path != keep:
                with contextlib.suppress(OSError):
                    if entry.stat().st_mtime < cutoff:
                        os.unlink(entry.path)


_HS_VERSION = getattr(hyperscan, "__version__", "?") if hyperscan is not None else None


def _cache_dir() -> str | None:
    """The directory for compiled automata: $OAI400D_CACHE_DIR, else systemd's $CACHE_DIRECTORY
    (the unit's CacheDirectory=), else $XDG_CACHE_HOME/oai400d or ~/.cache/oai400d, created
    0700. None (compile every time) when it cannot be made, or when it is not this user's alone:
    a database is machine code's input, never taken from a directory someone else can write to."""
    systemd = (os.environ.get("CACHE_DIRECTORY") or "").split(":")[0]
    base = os.environ.get("OAI400D_CACHE_DIR") or systemd or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "oai400d",
    )
    try:
        os.makedirs(base, mode=0o700, exist_ok=True)
        info = os.stat(base)
    except OSError:
        return None
    if info.st_uid != os.geteuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return None
    return base


def _release_freed_memory() -> None:
    """Give the ~20 MiB that compiling the automaton used back to the system: glibc keeps freed
    heap pages otherwise, and a daemon's RSS would carry them for its whole life."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _escape(literal: str) -> str:
    """A literal as a pattern both engines read the same way (only ASCII punctuation escaped)."""
    return "".join(
        "\\" + ch if not ch.isalnum() and ch != " " and ord(ch) < 128 else ch for ch in literal
    )


class HitFilter(Protocol):
    """Drops hit lines that can yield no finding, given each line's start and end (its newline,
    or `end`) in data; returns the starts of the lines kept, in order."""

    def keep(self, data: bytes, starts: list[int], stops: list[int], end: int) -> list[int]: ...


class Prefilter:
    """Finds the lines that contain a literal (any case) or match a pattern of the given set;
    `hit_filter` (optional) then drops those that cannot be part of an event of interest."""

    def __init__(
        self,
        literals: Iterable[str],
        patterns: Iterable[str] = (),
        engine: str = "auto",
        hit_filter: HitFilter | None = None,
    ):
        self.hit_filter = hit_filter
        self.literals = tuple(sorted({literal.lower() for literal in literals if literal}))
        self.patterns = tuple(patterns)
        expressions = [_escape(literal) for literal in self.literals] + list(self.patterns)
        if not expressions:
            raise ValueError("a prefilter needs at least one literal or pattern")
        self.engine = _engine(engine)
        if self.engine == "hyperscan":
            self._database = _compiled(
                [
                    (i, e.encode("utf-8"), hyperscan.HS_FLAG_CASELESS)
                    for i, e in enumerate(expressions)
                ]
            )
            self._scratch = hyperscan.Scratch(self._database)
            _release_freed_memory()
        else:
            joined = "|".join(f"(?:{expression})" for expression in expressions)
            self._regex = re.compile(joined.encode("utf-8"), re.IGNORECASE)

    def hit_lines(self, data: bytes, start: int = 0, end: int | None = None) -> list[int]:
        """The start offset of every line of data[start:end] that holds a hit, in order."""
        end = len(data) if end is None else end
        starts: list[int] = []
        stops: list[int] = []  # where each line ends: its newline, or `end`
        if self.engine != "hyperscan":
            self._hit_lines_re(data, start, end, starts, stops)
        else:
            line_end = -1  # the offset of the newline that ends the last line reported

            def on_match(_id: int, _from: int, to: int, _flags: int, _context: object) -> None:
                nonlocal line_end
                at = start + to - 1  # the last byte of the match
                if at < line_end:
                    return  # a second hit in a line already reported
                starts.append(max(data.rfind(b"\n", start, at) + 1, start))
                newline = data.find(b"\n", at, end)
                line_end = end if newline < 0 else newline
                stops.append(line_end)

            chunk = data[start:end] if start or end != len(data) else data
            self._database.scan(chunk, match_event_handler=on_match, scratch=self._scratch)
        if self.hit_filter is None or not starts:
            return starts
        return self.hit_filter.keep(data, starts, stops, end)

    def _hit_lines_re(
        self, data: bytes, start: int, end: int, starts: list[int], stops: list[int]
    ) -> None:
        position = start
        search = self._regex.search
        while True:
            match = search(data, position, end)
            if match is None:
                return
            at = match.start()
            starts.append(max(data.rfind(b"\n", start, at) + 1, start))
            newline = data.find(b"\n", match.end() - 1 if match.end() > at else at, end)
            stops.append(end if newline < 0 else newline)
            if newline < 0:
                return
            position = newline + 1

    def any_in(self, text: str) -> bool:
        """Whether the text holds any hit at all (the test one event gets in the daemon)."""
        if self.engine != "hyperscan":
            return self._regex.search(text.encode("utf-8", "replace")) is not None
        found = False

        def on_match(_id: int, _from: int, _to: int, _flags: int, _context: object) -> bool:
            nonlocal found
            found = True
            return True  # stop scanning

        with contextlib.suppress(hyperscan.ScanTerminated):  # the first hit stops the scan
            self._database.scan(
                text.encode("utf-8", "replace"), match_event_handler=on_match, scratch=self._scratch
            )
        return found


class PatternSet:
    """Which of several regexes match a text, found in one pass where Hyperscan can compile
    them (most can); the rest are searched one by one with `re`, so the answer is the same."""

    def __init__(self, patterns: Sequence[re.Pattern[str]], engine: str = "auto") -> None:
        self.patterns = tuple(patterns)
        self._slow: list[int] = []  # indexes searched with `re`
        self._database: Any = None
        if _engine(engine) == "hyperscan":
            self._database, self._slow = _compile_set(self.patterns)
            if self._database is not None:
                self._scratch = hyperscan.Scratch(self._database)
                _release_freed_memory()
        else:
            self._slow = list(range(len(self.patterns)))
        # What each `re`-searched pattern needs in an ASCII text (lower-cased), so that it is
        # searched only where that is: a pattern that starts with a class (`["']provider_name`)
        # tries every position, ~6 us on a traceback, on every candidate event.
        self._slow_needs = [
            (
                index,
                None  # (a verbose pattern's string is not what it matches: no literals read)
                if self.patterns[index].flags & re.VERBOSE
                else required_literals(self.patterns[index].pattern),
            )
            for index in self._slow
        ]

    def matching(self, text: str) -> set[int]:
        """The indexes of the patterns that match somewhere in the text."""
        found: set[int] = set()
        if not text.isascii():  # `re` sees Unicode words (\b, \w) where Hyperscan sees bytes
            return {i for i, pattern in enumerate(self.patterns) if pattern.search(text)}
        if self._database is not None:

            def on_match(index: int, _from: int, _to: int, _flags: int, _context: object) -> None:
                found.add(index)

            self._database.scan(
                text.encode("ascii"), match_event_handler=on_match, scratch=self._scratch
            )
        lowered = text.lower() if self._slow_needs else ""
        for index, needs in self._slow_needs:
            if needs is not None and not any(literal in lowered for literal in needs):
                continue  # (on ASCII text: none of what every match holds is there)
            if self.patterns[index].search(text):
                found.add(index)
        return found


class LiteralSet:
    """Which of some lower-case literals occur in a text, any case: `literal in text.lower()`
    for each, answered by one Hyperscan pass where the text is ASCII (where its caseless
    matching is exactly that), else by `in` one literal at a time."""

    def __init__(self, literals: Iterable[str], engine: str = "auto") -> None:
        self.literals = tuple(sorted(set(literals)))
        self._database: Any = None
        if self.literals and _engine(engine) == "hyperscan":
            self._database = _compiled(
                [
                    (
                        i,
                        _escape(literal).encode("utf-8"),
                        hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_SINGLEMATCH,
                    )
                    for i, literal in enumerate(self.literals)
                ]
            )
            self._scratch = hyperscan.Scratch(self._database)
            _release_freed_memory()

    def present(self, text: str, lowered: str) -> set[str]:
        """The literals in `lowered` (text.lower())."""
        if self._database is None or not text.isascii():
            return {literal for literal in self.literals if literal in lowered}
        found: set[str] = set()
        literals = self.literals

        def on_match(index: int, _from: int, _to: int, _flags: int, _context: object) -> None:
            found.add(literals[index])

        self._database.scan(
            text.encode("ascii"), match_event_handler=on_match, scratch=self._scratch
        )
        return found


class LineMatcher:
    """Which of some lines of a stream match at least one of several regexes, each line read on
    its own as `re` would read it as a whole text: one Hyperscan pass over those lines, joined
    (`^` and `$` at each line's ends). Never a false "no": a line counts as matching where the
    answer is not certain (a non-ASCII line, whose `\\b` and `\\w` `re` reads as Unicode; a
    pattern Hyperscan cannot run, which counts through its required literals, or matches every
    line when it has none; no Hyperscan at all)."""

    def __init__(self, patterns: Sequence[re.Pattern[str]], engine: str = "auto") -> None:
        self._database: Any = None
        if _engine(engine) != "hyperscan":
            return
        database, slow = _compile_set(patterns, per_line=True)
        stand_ins: list[str] = []
        for index in slow:
            literals = required_literals(patterns[index].pattern)
            if literals is None:
                return  # a pattern that may match any line: every line counts as matching
            stand_ins.extend(sorted(literals))
        if stand_ins:  # Hyperscan refused some patterns: their literals, in a database of their own
            self._stand_ins: Any = _compiled(
                [
                    (i, _escape(literal).encode("utf-8"), hyperscan.HS_FLAG_CASELESS)
                    for i, literal in enumerate(stand_ins)
                ]
            )
        else:
            self._stand_ins = None
        if database is None and self._stand_ins is None:
            return
        self._database = database
        self._scratch = None if database is None else hyperscan.Scratch(database)
        if self._stand_ins is not None:
            self._stand_in_scratch = hyperscan.Scratch(self._stand_ins)
        _release_freed_memory()

    @property
    def exact(self) -> bool:
        """False when every line counts as matching (no Hyperscan, or a pattern it cannot bound)."""
        return self._database is not None or getattr(self, "_stand_ins", None) is not None

    def matching(self, data: bytes, starts: Sequence[int], stops: Sequence[int]) -> list[bool]:
        """For each line data[starts[i]:stops[i]] (without its newline), whether it may match."""
        if not self.exact:
            return [True] * len(starts)
        lines = [  # (each without the CR that decoding drops)
            data[a : b - 1 if b > a and data[b - 1] == 13 else b]
            for a, b in zip(starts, stops, strict=True)
        ]
        joined = b"\n".join(lines)
        offsets: list[int] = []  # where each line starts in `joined`
        position = 0
        for line in lines:
            offsets.append(position)
            position += len(line) + 1
        found = [False] * len(lines)

        def on_match(_id: int, _from: int, to: int, _flags: int, _context: object) -> None:
            # (a match ending in a line marks it; one that crosses a joint says "maybe": safe)
            found[bisect_right(offsets, max(to - 1, 0)) - 1] = True

        if self._database is not None:
            self._database.scan(joined, match_event_handler=on_match, scratch=self._scratch)
        if self._stand_ins is not None:
            self._stand_ins.scan(
                joined, match_event_handler=on_match, scratch=self._stand_in_scratch
            )
        if not joined.isascii():
            for index, line in enumerate(lines):
                if not line.isascii():
                    found[index] = True
        return found


def _flags(pattern: re.Pattern[str]) -> int:
    """Hyperscan flags that make it read the pattern as `re` does (on ASCII text, see matching)."""
    flags = 0
    if pattern.flags & re.IGNORECASE:
        flags |= hyperscan.HS_FLAG_CASELESS
    if pattern.flags & re.DOTALL:
        flags |= hyperscan.HS_FLAG_DOTALL
    if pattern.flags & re.MULTILINE:
        flags |= hyperscan.HS_FLAG_MULTILINE
    return flags


_INLINE_FLAGS = re.compile(r"^\(\?[aiLmsux]+\)")


# What Hyperscan does not do: lookarounds and back-references (spotted in the text, so that one
# compile of the rest usually succeeds; probing each pattern alone costs ~3 ms apiece).
_UNSUPPORTED = re.compile(r"\(\?<?[=!]|\\[1-9]")


def _compile_set(
    patterns: Sequence[re.Pattern[str]], per_line: bool = False
) -> tuple[Any, list[int]]:
    """One database of the patterns Hyperscan accepts (inline flags moved to flags), and the
    indexes of those it does not (lookarounds, back-references, …), to be searched with `re`.
    `per_line`: every match reported, `^` and `$` at line ends (LineMatcher), instead of which
    patterns match at all."""
    candidates = [
        (i, _INLINE_FLAGS.sub("", p.pattern).encode("utf-8"))
        for i, p in enumerate(patterns)
        if not _UNSUPPORTED.search(p.pattern)
    ]
    database = _database(candidates, patterns, per_line)
    if database is None:  # something else it refuses: find it, one pattern at a time
        candidates = [
            item for item in candidates if _database([item], patterns, per_line) is not None
        ]
        database = _database(candidates, patterns, per_line)
    taken = {index for index, _ in candidates}
    return database, [index for index in range(len(patterns)) if index not in taken]


def _database(
    expressions: list[tuple[int, bytes]], patterns: Sequence[re.Pattern[str]], per_line: bool
) -> Any:
    """The compiled database, or None if Hyperscan refuses one of the expressions."""
    if not expressions:
        return None
    # Which patterns match is all that PatternSet asks; LineMatcher needs every line's matches.
    extra = hyperscan.HS_FLAG_MULTILINE if per_line else hyperscan.HS_FLAG_SINGLEMATCH
    try:
        return _compiled([(i, e, _flags(patterns[i]) | extra) for i, e in expressions])
    except hyperscan.error:
        return None
