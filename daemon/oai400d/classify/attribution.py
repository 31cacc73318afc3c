"""Which prefilter hits can still become a finding: the weak-hit rule, read in the raw bytes.

A finding needs something in its event that says OpenAI (an attribution pattern, or one of
OpenAI's own messages). Most hits of an ordinary log are weak: a status form (`HTTP/1.1 404`,
`"status": 503`) or a generic word (`ReadTimeout`) in the application's own request lines, each
a whole record by itself. Such a line is its whole event (what the scanner's `_lone_record`
decides: it starts a record, the line after it starts another one, no wrapped message or .NET
`Content:` joins them), so when nothing in the line itself attributes it to OpenAI, no finding
can come of it, and it is dropped before anything is decoded. A hit inside a multi-line record
(a traceback whose frames name openai, a body under its header line) is always kept: its record's
attribution may sit on another line, and the Assembler decides.

Every test here errs towards keeping: a line kept costs time, a line wrongly dropped loses a
finding. The bytes regexes below are the Assembler's, and they are used only on ASCII lines, where
they read exactly as the `str` ones do.
"""

from __future__ import annotations

import re

from oai400d.classify.prefilter import LineMatcher
from oai400d.model import RECORD_START, WRAPPED_PIECE

# Longer lines are kept: the scanner cuts a line at its max_line before reading it, and a JSON
# record's closing brace may then be cut off.
MAX_LONE_LINE = 16 * 1024

_RECORD_START = re.compile(RECORD_START.encode("ascii"), re.VERBOSE)
_WRAPPED = re.compile(WRAPPED_PIECE.encode("ascii"))
_CONTENT = b"Content:"  # .NET's line before a response body (assemble.opens_content)


class UnattributedLoneLines:
    """A Prefilter's HitFilter: drops the hit lines that are a whole record by themselves and in
    which nothing attributes the text to OpenAI (`attribution`: the patterns of which an event
    must match one to become a finding)."""

    def __init__(self, attribution: LineMatcher) -> None:
        self.attribution = attribution

    def keep(self, data: bytes, starts: list[int], stops: list[int], end: int) -> list[int]:
        """The starts of the hit lines that may yield a finding, in order."""
        if not self.attribution.exact:
            return starts
        attributed = self.attribution.matching(data, starts, stops)
        ascii_only = data.isascii()
        kept: list[int] = []
        for start, stop, said_openai in zip(starts, stops, attributed, strict=True):
            if said_openai or not self.lone(data, start, stop, end, ascii_only):
                kept.append(start)
        return kept

    def lone(self, data: bytes, start: int, stop: int, end: int, ascii_only: bool = False) -> bool:
        """Whether the line data[start:stop] is surely an event by itself: it starts a record,
        the next line (already in data[:end]) starts another, and neither a wrapped message nor
        .NET's `Content:` joins it to a neighbour."""
        following = stop + 1
        if stop >= end or following >= end or stop - start > MAX_LONE_LINE:
            return False  # the next line is not read yet, or the line may be cut
        next_stop = data.find(b"\n", following, end)
        next_stop = end if next_stop < 0 else next_stop
        if next_stop - following > MAX_LONE_LINE:
            return False
        if not ascii_only and not (
            data[start:stop].isascii() and data[following:next_stop].isascii()
        ):
            return False
        if _RECORD_START.match(data, start, _without_cr(data, start, stop)) is None:
            return False
        if _RECORD_START.match(data, following, _without_cr(data, following, next_stop)) is None:
            return False
        # A wrapped piece needs both lines to look like one (same timestamp and column): the
        # hit line not looking like one rules out both joins (to the line before and after).
        if _WRAPPED.match(data, start, stop) is not None:
            return False
        previous = data.rfind(b"\n", 0, max(start - 1, 0)) + 1 if start > 0 else start
        return data.find(_CONTENT, previous, stop) < 0


def _without_cr(data: bytes, start: int, stop: int) -> int:
    """Where the line's text ends: before a trailing CR, which decoding drops."""
    return stop - 1 if stop > start and data[stop - 1] == 13 else stop
