"""Ingest: the followed files and journals, read into events.

The first stage of the daemon's pipeline. It owns the tailing (`sources`) and the journal
readers (`sources.journal`), one assembler per followed file (one per stream inside it, see
unwrap.py) and per journal, and what must be saved for a restart to lose and repeat nothing:
each file's safe position (the start of an event still being gathered), each journal's cursor,
and the files that are gone. `read(now)` returns the events completed since the last call, each
marked with whether it was read while catching up on what was written before the daemon
started; the multi-line timeout is applied on the time passed in.

Given the classifier's prefilter, a plain file's new bytes take the fast path (scan/live.py):
only the events around a prefilter hit are decoded and assembled, since an event without one
can give no finding. A wrapped file's lines (unwrap.py) and the journals are assembled whole.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from oai400d.assemble import Assembler, StreamAssemblers
from oai400d.classify.prefilter import Prefilter
from oai400d.config import Settings
from oai400d.model import Event, FileState, JournalPosition, Read
from oai400d.scan.live import LiveFile, Position
from oai400d.scan.stream import HitEvents
from oai400d.sources import Sources
from oai400d.sources.descriptors import raise_open_files_limit
from oai400d.sources.journal import Journals, where

log = logging.getLogger("oai400d")

# A commit made for findings writes the positions of the files they came from at once, the
# others' at most this often (keeper.POSITION_COMMIT_INTERVAL's pace): with 500 busy files and
# a finding in most passes, writing and working out all 500 positions at every commit was a
# quarter of the main loop. A file that handed out no event since its last written position
# repeats nothing when read again from there after a crash (no finding came from those lines).
POSITIONS_EVERY = 0.5


@dataclass(frozen=True, slots=True)
class Ingested:
    """A completed event; `caught_up`: its lines were read while catching up."""

    event: Event
    caught_up: bool


@dataclass
class _Followed:
    """One followed file's assemblers and the position that is safe to persist."""

    assembler: StreamAssemblers
    position: FileState
    last_line_at: float = 0.0
    caught_up: bool = False  # the lines being gathered were read while catching up
    live: LiveFile | None = None  # the fast path, for a plain file read raw

    @property
    def pending(self) -> bool:
        # (the fast path first: a plain file's lines never reach its assemblers)
        return (self.live is not None and self.live.pending) or self.assembler.pending

    def flush(self) -> list[Event]:
        events = self.assembler.flush()
        if self.live is not None:
            events.extend(self.live.flush())
        return events


@dataclass
class _JournalFollowed:
    """One journal's assembler; where the journal stands is kept by Journals."""

    assembler: Assembler
    last_line_at: float = 0.0
    caught_up: bool = False

    @property
    def pending(self) -> bool:
        return self.assembler.pending


class Ingest:
    """Files and journals in, events out; `catching_up` until every source reached its end.

    `on_read(source_path, lines, bytes)` and `on_error(path)` are told what was read and which
    file could not be (for metrics); `report` gets the problems a person should read.
    `prefilter`: the classifier's; with it, plain files take the fast path (only the events
    around a hit come out: the others could give no finding).
    """

    def __init__(
        self,
        settings: Settings,
        saved: SavedPositions,
        *,
        report: Callable[[str], None],
        wake: Callable[[], None],
        on_read: Callable[[str, int, int], None],
        on_error: Callable[[str], None],
        prefilter: Prefilter | None = None,
    ) -> None:
        self.settings = settings
        self._prefilter = prefilter
        self._hits = self._make_hits(settings)
        self._report = report
        self._wake = wake
        self._on_read = on_read
        self._on_error = on_error
        self._followed: dict[tuple[str, int, int], _Followed] = {}
        # The files with an event being gathered: the only ones each pass looks at, so that
        # 5,000 idle files cost nothing per pass.
        self._gathering: dict[tuple[str, int, int], _Followed] = {}
        self._journal_followed: dict[str, _JournalFollowed] = {}
        self._forget: list[FileState] = []
        # A commit writes only the positions that moved: those of the files read or flushed
        # since the last one (`_moved`) that differ from what it wrote (`_written`); with 500
        # files, all 500 rows at each commit were most of its cost.
        self._moved: dict[tuple[str, int, int], None] = {}
        self._written: dict[tuple[str, int, int], FileState] = {}
        self._writing: list[tuple[tuple[str, int, int], FileState]] = []  # until committed()
        # The files that handed out events since the last commit: their positions go with it.
        self._handed_out: set[tuple[str, int, int]] = set()
        self._deferring: dict[tuple[str, int, int], None] = {}  # moved, left to a later commit
        self._now = 0.0  # the time of the last read()
        self._all_positions_at = 0.0  # when every moved position was last written
        self._all_positions_due = True  # the next commit writes every moved position (force)
        self.dirty = False  # positions moved since the last commit
        self.catching_up = True
        self._saved = saved
        # As many descriptors as the hard limit allows, before the sources size their budget.
        raised = raise_open_files_limit()
        if raised is not None:
            log.info("%s", raised)
        self.sources = self._make_sources(settings, saved.files())
        self.journals = self._make_journals(settings, _cursors(saved))

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self.sources.start()
        self.journals.start()

    def stop(self) -> None:
        self.sources.stop()
        self.journals.stop()

    def wake(self) -> None:
        """Make a wait() return now (from any thread)."""
        self.sources.wake()

    def wait(self, timeout: float) -> None:
        self.sources.wait(timeout)

    def reconcile(self) -> None:
        """Look for files the watches may have missed (logs.reconcile_interval)."""
        self.sources.reconcile()

    def replace_files(self, settings: Settings) -> None:
        """New logs settings: follow the files again from their saved positions (the caller
        committed every position before)."""
        self.sources.stop()
        self.settings = settings
        self._hits = self._make_hits(settings)
        # What was being gathered is read again from the committed positions: started afresh,
        # so that no event takes those lines twice.
        self._followed = {}
        self._gathering = {}
        self._moved, self._written = {}, {}  # (the next commit writes every position again)
        self._handed_out, self._deferring = set(), {}
        self._all_positions_due = True
        self.sources = self._make_sources(settings, self._saved.files())
        self.sources.start()

    def use_prefilter(self, prefilter: Prefilter) -> None:
        """The rules were reloaded: search the bytes read from now on with their prefilter."""
        self._prefilter = prefilter
        self._hits = hits = HitEvents(
            prefilter, self.settings.logs.max_line, self.settings.logs.event_limits
        )
        for followed in self._followed.values():
            if followed.live is not None:
                followed.live.hits = hits

    def replace_journals(self, settings: Settings) -> None:
        """New journal settings: their pending lines are read again from the saved cursors (the
        caller committed them before)."""
        self.journals.stop()
        self.settings = settings
        self._journal_followed = {}
        self.journals = self._make_journals(settings, _cursors(self._saved))
        self.journals.start()

    # --- reading ------------------------------------------------------------------------------

    @property
    def more(self) -> bool:
        """Lines are waiting that one read() did not take (its budget)."""
        return self.sources.more or self.journals.more

    def read(self, now: float) -> list[Ingested]:
        """The events completed by the new lines, by a stream gone quiet, or by the multi-line
        timeout (logs.multiline_timeout) at `now`."""
        self._now = now
        events = self._read_files(now)
        events.extend(self._read_journals(now))
        if self.catching_up and not (self.more or self.journals.catching_up):
            self.catching_up = False  # lines read from now on are live
        return events

    def _read_files(self, now: float) -> list[Ingested]:
        events: list[Ingested] = []
        backlog = self.catching_up
        limits = self.settings.logs.event_limits
        for read in self.sources.poll():
            key = (read.file.path, read.file.dev, read.file.ino)
            followed = self._followed.get(key)
            if followed is None:
                followed = self._followed[key] = _Followed(
                    StreamAssemblers(read.file.path, limits), read.file
                )
            before = len(events)
            for line in read.lines:
                events.extend(Ingested(e, backlog) for e in followed.assembler.feed(line, now))
            if read.lines:
                size = max(0, read.file.offset - read.lines[0].offset)
                self._on_read(read.file.path, len(read.lines), size)
            if read.raw:
                events.extend(Ingested(e, backlog) for e in self._read_raw(followed, read))
            if read.lines or read.raw:
                self._gathering[key] = followed
                followed.last_line_at = now
                followed.caught_up = backlog
            followed.position = read.file
            self.dirty = True
            self._moved[key] = None
            if read.finished:
                events.extend(Ingested(e, backlog) for e in followed.flush())
                self._forget.append(read.file)
                del self._followed[key]
                self._gathering.pop(key, None)
                self._moved.pop(key, None)
                self._written.pop(key, None)
            elif len(events) > before:
                self._handed_out.add(key)
        timeout = self.settings.logs.multiline_timeout
        for key, followed in list(self._gathering.items()):
            self._moved[key] = None  # (a flush moves its safe position)
            pending = followed.pending
            if not pending:
                del self._gathering[key]
                continue
            if now - followed.last_line_at >= timeout:
                flushed = followed.flush()
                events.extend(Ingested(e, followed.caught_up) for e in flushed)
                if flushed:
                    self._handed_out.add(key)
                pending = followed.pending
            elif followed.assembler.pending:  # a stream that went quiet while another goes on
                idle = followed.assembler.flush_idle(now, timeout)
                events.extend(Ingested(e, followed.caught_up) for e in idle)
                if idle:
                    self._handed_out.add(key)
                pending = followed.pending
            if not pending:
                del self._gathering[key]
        return events

    def _read_raw(self, followed: _Followed, read: Read) -> list[Event]:
        """A plain file's new lines, undecoded: the events around their prefilter hits."""
        assert self._hits is not None  # (Sources hands out raw lines only with a prefilter)
        first = read.raw[0]
        if followed.live is None:
            start = Position(first.offset, first.line_no)
            dev, ino = read.file.dev, read.file.ino

            def reread(offset: int, size: int) -> bytes:
                return self.sources.read_at(dev, ino, offset, size)

            followed.live = LiveFile(read.file.path, self._hits, start, reread=reread)
        live = followed.live
        before = live.lines_read
        events: list[Event] = []
        for raw in read.raw:
            events.extend(live.feed(raw))
        size = max(0, read.file.offset - first.offset)
        self._on_read(read.file.path, live.lines_read - before, size)
        return events

    def _read_journals(self, now: float) -> list[Ingested]:
        events: list[Ingested] = []
        backlog = self.catching_up
        for read in self.journals.poll():
            self.dirty = True
            followed = self._journal_followed.get(read.name)
            if followed is None:
                followed = self._journal_followed[read.name] = _JournalFollowed(
                    Assembler(where(read.name), self.settings.logs.event_limits)
                )
            for line in read.lines:
                events.extend(Ingested(e, backlog) for e in followed.assembler.feed(line))
            if read.lines:
                size = sum(len(line.text.encode("utf-8", "replace")) + 1 for line in read.lines)
                self._on_read(where(read.name), len(read.lines), size)
                followed.last_line_at = now
                followed.caught_up = backlog
        timeout = self.settings.logs.multiline_timeout
        for followed in self._journal_followed.values():
            if followed.assembler.pending and now - followed.last_line_at >= timeout:
                events.extend(Ingested(e, followed.caught_up) for e in followed.assembler.flush())
        return events

    def entry_time(self, event: Event) -> float | None:
        """When a journal entry was written (None for a file's line)."""
        return self.journals.entry_time(event)

    # --- what the loop needs to know ------------------------------------------------------------

    def caught_up_pending(self) -> bool:
        """Whether an event read while catching up is still being gathered."""
        return any(f.caught_up and f.pending for f in self._all_followed())

    def deadlines(self) -> list[float]:
        """When the multi-line timeout completes an event still being gathered."""
        timeout = self.settings.logs.multiline_timeout
        return [f.last_line_at + timeout for f in self._all_followed() if f.pending]

    def describe(self) -> str:
        """`3 file(s)` or `3 file(s), 1 journal(s)`: what is followed (systemd's status)."""
        files = len(self._followed) if self._followed else len(self.sources.files())
        names = self.journal_names()
        return f"{files} file(s)" + (f", {len(names)} journal(s)" if names else "")

    def journal_names(self) -> list[str]:
        return self.journals.names()

    # --- what a commit saves ------------------------------------------------------------------

    def all_positions_due(self) -> None:
        """The next commit writes every position that moved (a stop, a reload: nothing is
        left to a later one)."""
        self._all_positions_due = True

    def file_positions(self, everything: bool = False) -> list[FileState]:
        """Where to resume each file after a crash: the start of an event still being
        gathered (or of the pieces of a split line its unwrapper holds, if they began before).
        Only those that moved since the last commit (the DB holds the others), unless
        `everything` (a fresh DB). While every moved position was written less than
        POSITIONS_EVERY ago, a commit for findings gets only the positions of the files that
        handed out events since the last one: the others wait for a later commit."""
        self._writing = []
        self._deferring = {}
        keys: Iterable[tuple[str, int, int]] = self._followed if everything else self._moved
        if not (
            everything
            or self._all_positions_due
            or not self._handed_out
            or self._now - self._all_positions_at >= POSITIONS_EVERY
        ):
            self._deferring = {key: None for key in self._moved if key not in self._handed_out}
            keys = [key for key in self._moved if key in self._handed_out]
        for key in keys:
            followed = self._followed.get(key)
            if followed is None:
                continue
            position = _safe_position(followed)
            if everything or self._written.get(key) != position:
                self._writing.append((key, position))
        return [position for _, position in self._writing]

    def journal_positions(self) -> list[JournalPosition]:
        return self.journals.positions(
            {name: j.assembler.first_pending for name, j in self._journal_followed.items()}
        )

    def forgotten(self) -> list[FileState]:
        """The files that are gone since the last commit (their positions are dropped)."""
        return self._forget

    def committed(self) -> None:
        """The positions, cursors and forgotten files were saved."""
        self._written.update(self._writing)
        self._writing = []
        if not self._deferring:
            self._all_positions_at = self._now
            self._all_positions_due = False
        self._moved, self._deferring = self._deferring, {}
        self._handed_out = set()
        self._forget = []
        self.dirty = bool(self._moved)

    # --- helpers --------------------------------------------------------------------------------

    def _all_followed(self) -> list[_Followed | _JournalFollowed]:
        """Those that may hold an event being gathered (an idle file holds none)."""
        return [*self._gathering.values(), *self._journal_followed.values()]

    def _make_hits(self, settings: Settings) -> HitEvents | None:
        if self._prefilter is None:
            return None
        logs = settings.logs
        return HitEvents(self._prefilter, logs.max_line, logs.event_limits)

    def _make_sources(self, settings: Settings, saved: list[FileState]) -> Sources:
        logs = settings.logs
        return Sources(
            logs.paths,
            saved,
            logs.read_from,
            logs.max_line,
            report=self._report,
            on_error=self._on_error,
            wrapper=logs.wrapper,
            wrappers=list(logs.wrappers.items()),
            raw=self._prefilter is not None,
            exclude=logs.exclude,
        )

    def _make_journals(self, settings: Settings, positions: list[JournalPosition]) -> Journals:
        return Journals(
            settings.journal,
            positions,
            settings.logs.read_from,
            retry=settings.logs.reconcile_interval,
            report=self._report,
            wake=self._wake,
        )


class SavedPositions(Protocol):
    """Where the last run stopped reading (the state DB)."""

    def files(self) -> list[FileState]: ...

    def journal_positions(self) -> list[tuple[JournalPosition, float]]: ...


def _cursors(saved: SavedPositions) -> list[JournalPosition]:
    return [position for position, _ in saved.journal_positions()]


def _safe_position(followed: _Followed) -> FileState:
    if followed.live is not None:
        p = followed.position
        at = followed.live.safe_position()
        if at.offset >= p.offset:
            return p
        return FileState(p.path, p.dev, p.ino, p.head, p.head_len, at.offset, at.line_no)
    first = followed.assembler.first_pending
    if first is None or first.offset >= followed.position.offset:
        return followed.position
    p = followed.position
    return FileState(p.path, p.dev, p.ino, p.head, p.head_len, first.offset, first.line_no - 1)
