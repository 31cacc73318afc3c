"""Journald as a source: one `journalctl -o json --follow` subprocess per `[[journal]]` entry.

Each entry's MESSAGE is split into lines, handed out as Lines whose `path` is `journal:NAME`,
`line_no` a running count and `offset` the line's index within its entry; the daemon feeds them
through the same Assembler as file lines, so a traceback in one entry, or spread over several
(a service printing to stderr), is one event.

Where to resume is a JournalPosition: an entry's cursor and how many of its lines were handed on
(ALL_LINES: all). `position()` gives the start of the event still being gathered, so after a
crash nothing classified is read twice and nothing gathered is lost. A saved position resumes
with `--cursor` (then its first `skip` lines are dropped) or `--after-cursor`.

journalctl runs in a thread per journal that parses its JSON lines into a bounded queue (so a
backlog holds journalctl back instead of filling memory); poll() in the daemon's thread takes
them. Without a saved cursor, "end" starts after the entry that is last when reading starts.
With `files`, journalctl cannot follow (systemd 252: "Failed to get journal fd"), so it reads to
the end and runs again every retry interval from where it stopped.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

from oai400d.config import JournalSettings
from oai400d.model import ALL_LINES, Event, JournalPosition, Line

JOURNALCTL = "journalctl"
WHERE_PREFIX = "journal:"
QUEUE_ENTRIES = 10_000  # entries parsed ahead of the daemon; journalctl waits beyond this
DEFAULT_BUDGET = 5_000  # entries one poll takes from one journal
HEAD_TIMEOUT = 30.0  # for `journalctl -n 1`, which seeks to the tail and returns at once
STOP_TIMEOUT = 2.0
# What journalctl --follow says about a journal with no entry at all (systemd 252): nothing to
# report, the journal is just empty; retried like a failure, quietly.
EMPTY_JOURNAL = "specified boot (+0) is not available"
STDERR_REPORTED = 50  # distinct journalctl warnings reported per journal, at most


def where(name: str) -> str:
    """The "where" of a journal's lines and alerts."""
    return WHERE_PREFIX + name


@dataclass(frozen=True, slots=True)
class _Entry:
    """The lines of one journal entry that are new to the daemon."""

    cursor: str
    realtime: float | None  # seconds since the epoch, from __REALTIME_TIMESTAMP
    first: int  # index within the entry of lines[0] (non-zero when resuming mid-entry)
    lines: tuple[str, ...]


_CAUGHT_UP = object()  # queued after the last entry that was in the journal at the start

_QueueItem = _Entry | object


@dataclass(frozen=True, slots=True)
class JournalRead:
    """What one poll of one journal produced."""

    name: str
    lines: tuple[Line, ...]


def message_lines(value: Any) -> tuple[str, ...]:
    """MESSAGE as journalctl's JSON gives it (a string, bytes as a list of numbers, a list of
    several values, or null) → its lines; a trailing newline ends the message, adds no line."""
    if value is None:
        return ()
    if isinstance(value, list) and all(isinstance(b, int) for b in value):
        text = bytes(b & 0xFF for b in value).decode("utf-8", "replace")
    elif isinstance(value, list):
        return tuple(line for item in value for line in message_lines(item))
    else:
        text = str(value)
    if text.endswith("\n"):
        text = text[:-1]
    return tuple(line.removesuffix("\r") for line in text.split("\n"))


def parse_entry(raw: bytes) -> tuple[str, float | None, tuple[str, ...]] | None:
    """(cursor, realtime, lines) of one line of `journalctl -o json`; None if it is not one."""
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("__CURSOR"), str):
        return None
    realtime: float | None
    try:
        realtime = int(data["__REALTIME_TIMESTAMP"]) / 1e6
    except (KeyError, TypeError, ValueError):
        realtime = None
    return data["__CURSOR"], realtime, message_lines(data.get("MESSAGE"))


class _Reader:
    """One `[[journal]]`: its journalctl thread and, on the daemon's side, what was handed out."""

    def __init__(
        self,
        spec: JournalSettings,
        saved: JournalPosition | None,
        read_from: str,
        retry: float,
        report: Callable[[str], None],
        wake: Callable[[], None],
        journalctl: str,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.where = where(spec.name)
        self.follow = spec.files is None
        self._read_from = spec.read_from or read_from
        self._retry = retry
        self._report = report
        self._wake = wake
        self._journalctl = journalctl
        self.queue: deque[_QueueItem] = deque()
        self._room = threading.Semaphore(QUEUE_ENTRIES)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"oai400d-journal-{spec.name}", daemon=True
        )
        # Thread side: where the next journalctl starts, and what has been reported.
        self._resume = saved
        self._failure: str | None = None
        self._said: set[str] = set()
        self._caught_up_sent = False
        self.attempts = 0  # journalctl runs started (or tried)
        # Daemon side: positions of the entries handed out, for position() and entry_time().
        self.last = saved
        self.caught_up = False
        self.line_no = 0
        self._spans: deque[tuple[int, int, str, float | None]] = deque()  # first, last line_no

    # --- the journalctl thread ---------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end: journalctl is killed, the thread sees its output end."""
        self._stop.set()
        with self._lock:
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()  # SIGKILL: see _end()

    def join(self) -> None:
        self._thread.join(STOP_TIMEOUT + 1)

    def _run(self) -> None:
        first = True
        while not self._stop.is_set():
            self.attempts += 1
            try:
                self._read_once(first)
            except Exception as exc:  # a bug here must not end the journal for good
                self._fail(f"reading failed unexpectedly: {exc!r}")
            first = False
            self._put(_CAUGHT_UP)  # failing or done: what could be read was read
            self._stop.wait(self._retry)

    def _read_once(self, first: bool) -> None:
        """Run journalctl once (following, or to the end) from the position reached."""
        program = shutil.which(self._journalctl)
        if program is None:
            self._fail(
                f"{self._journalctl} not found on PATH; install systemd's journalctl (it "
                "comes with systemd) or remove the [[journal]] entries"
            )
            return
        # Following, the entries up to the last one now are the backlog: catching up ends
        # with it. "end" the first time starts after it; a journal that could not be read
        # then is read from its beginning once it can (like a file that appears later).
        target: str | None = None
        anchor = first and self._resume is None and self._read_from == "end"
        if anchor or (first and self.follow):
            head = self._head(program)
            if head is False:
                return
            if anchor and isinstance(head, str):
                self._resume = JournalPosition(self.name, head, ALL_LINES)
                self._put(_Entry(head, None, 0, ()))  # the starting point is saved at once
            resume = self._resume
            at_head = resume is not None and (resume.cursor, resume.skip) == (head, ALL_LINES)
            if first and self.follow and isinstance(head, str) and not at_head:
                target = head
        if self.follow and target is None:
            self._put(_CAUGHT_UP)
        self._follow(program, target)

    def _head(self, program: str) -> str | bool | None:
        """The cursor of the last matching entry now; None: no entry; False: journalctl failed."""
        args = [program, *self.spec.journalctl_args(), "-o", "json", "-n", "1", "--no-pager"]
        try:
            done = subprocess.run(args, capture_output=True, timeout=HEAD_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            self._fail(f"{' '.join(args)} failed: {exc}")
            return False
        if done.returncode != 0:
            self._fail(_explain(done.returncode, done.stderr.decode("utf-8", "replace")))
            return False
        for raw in reversed(done.stdout.splitlines()):
            parsed = parse_entry(raw)
            if parsed is not None:
                return parsed[0]
        return None

    def _follow(self, program: str, target: str | None) -> None:
        args = [program, *self.spec.journalctl_args(), "-o", "json", "--all", "--no-pager"]
        if self.follow:
            args += ["--follow", "--no-tail"]
        resume = self._resume
        if resume is not None:
            args.append(
                f"--after-cursor={resume.cursor}"
                if resume.skip == ALL_LINES
                else f"--cursor={resume.cursor}"
            )
        with self._lock:
            if self._stop.is_set():
                return
            try:
                proc = subprocess.Popen(
                    args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
                )
            except OSError as exc:
                self._fail(f"cannot run {program}: {exc.strerror or exc}")
                return
            self._proc = proc
        assert proc.stdout is not None and proc.stderr is not None
        errors: deque[str] = deque(maxlen=20)
        drain = threading.Thread(
            target=self._drain, args=(proc.stderr, errors), name=f"{self.name}-stderr", daemon=True
        )
        drain.start()
        skip = resume.skip if resume is not None and resume.skip != ALL_LINES else 0
        for raw in iter(proc.stdout.readline, b""):
            parsed = parse_entry(raw)
            if parsed is None:
                continue
            cursor, realtime, lines = parsed
            first_index = 0
            if skip:
                if resume is not None and cursor == resume.cursor:
                    first_index = min(skip, len(lines))
                skip = 0  # only the entry at the saved cursor was partly handed on
            self._recovered()
            if not self._put(_Entry(cursor, realtime, first_index, lines[first_index:])):
                break
            self._resume = JournalPosition(self.name, cursor, ALL_LINES)
            if cursor == target:
                self._put(_CAUGHT_UP)
        code = _end(proc)
        drain.join(STOP_TIMEOUT)
        with self._lock:
            self._proc = None
        if self._stop.is_set():
            return
        stderr = "\n".join(errors)
        if code != 0 and EMPTY_JOURNAL in stderr:
            return  # an empty journal: looked at again after the retry interval
        if code != 0 or self.follow:
            if "seek to cursor" in stderr and resume is not None:
                self._resume = None  # unusable cursor: start again as read_from says
            self._fail(_explain(code, stderr))
        else:
            self._recovered()
            self._put(_CAUGHT_UP)  # --file: the first complete read was the backlog

    def _drain(self, stream: IO[bytes], errors: deque[str]) -> None:
        for raw in iter(stream.readline, b""):
            text = raw.decode("utf-8", "replace").strip()
            if not text:
                continue
            errors.append(text)
            if EMPTY_JOURNAL in text:
                continue
            if text not in self._said and len(self._said) < STDERR_REPORTED:
                self._said.add(text)
                advice = ""
                if "not seeing messages" in text or "insufficient permissions" in text:
                    advice = (
                        " (add the oai400d user to the systemd-journal or adm group, e.g. "
                        "SupplementaryGroups=systemd-journal in the unit)"
                    )
                self._report(f"journal {self.name}: journalctl says: {text}{advice}")

    def _put(self, item: _QueueItem) -> bool:
        """Queue an item for the daemon, waiting for room; False when stopping."""
        if item is _CAUGHT_UP:
            if self._caught_up_sent:
                return True
            self._caught_up_sent = True
        else:
            while not self._room.acquire(timeout=0.5):
                if self._stop.is_set():
                    return False
            if self._stop.is_set():
                return False
        self.queue.append(item)
        self._wake()
        return True

    def _fail(self, reason: str) -> None:
        message = f"journal {self.name}: {reason}; retrying every {self._retry:g}s"
        if message != self._failure:
            self._failure = message
            self._report(message)

    def _recovered(self) -> None:
        if self._failure is not None:
            self._failure = None
            self._report(f"journal {self.name}: journalctl reads again")

    # --- the daemon's side -----------------------------------------------------------------

    def take(self, budget: int) -> tuple[list[Line], bool]:
        """Lines of up to `budget` queued entries; whether any entry (even without lines) came."""
        lines: list[Line] = []
        taken = 0
        while taken < budget and self.queue:
            item = self.queue.popleft()
            if not isinstance(item, _Entry):
                self.caught_up = True
                continue
            self._room.release()
            taken += 1
            if item.lines:
                first = self.line_no + 1
                for index, text in enumerate(item.lines, start=item.first):
                    self.line_no += 1
                    lines.append(Line(self.where, self.line_no, index, text))
                self._spans.append((first, self.line_no, item.cursor, item.realtime))
            self.last = JournalPosition(self.name, item.cursor, ALL_LINES)
        return lines, taken > 0

    def position(self, first_pending: Line | None) -> JournalPosition | None:
        """Where to resume after a crash: the line starting the pending event, else after the
        last entry handed out. Spans before that line are no longer needed."""
        if first_pending is None:
            self._spans.clear()
            return self.last
        while self._spans and self._spans[0][1] < first_pending.line_no:
            self._spans.popleft()
        if self._spans and self._spans[0][0] <= first_pending.line_no:
            return JournalPosition(self.name, self._spans[0][2], first_pending.offset)
        return self.last  # not expected: the pending line's entry is always kept

    def entry_time(self, line_no: int) -> float | None:
        for first, last, _, realtime in self._spans:
            if first <= line_no <= last:
                return realtime
        return None


def _end(proc: subprocess.Popen[bytes]) -> int:
    """Stop journalctl (if still running) and return its exit code."""
    if proc.poll() is None:
        # SIGKILL, not SIGTERM: the daemon blocks SIGTERM in every thread (service.py) and a
        # child inherits that mask, so journalctl would not hear it; a reader loses nothing.
        # (When the daemon itself is killed, journalctl sees its stdout close and exits.)
        proc.kill()
    code = proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    return code


def _explain(code: int, stderr: str) -> str:
    """What journalctl's failure means and what to do about it."""
    said = stderr.strip().splitlines()[-1] if stderr.strip() else "no message"
    if code == 0:
        return f"journalctl stopped following ({said})"
    hint = "check the [[journal]] entry's directory/files and that oai400d may read the journal"
    if "seek to cursor" in stderr:
        hint = "the saved cursor is not in this journal; reading again as read_from says"
    return f"journalctl failed (exit {code}: {said}); {hint}"


class Journals:
    """Every `[[journal]]`: poll() returns their new lines, position() where each stands.

    One thread calls start, poll, position, entry_time and stop; the readers call `wake`.
    """

    def __init__(
        self,
        specs: Sequence[JournalSettings],
        saved: Sequence[JournalPosition],
        read_from: str,
        retry: float,
        report: Callable[[str], None],
        wake: Callable[[], None],
        journalctl: str = JOURNALCTL,
    ) -> None:
        by_name = {p.name: p for p in saved}
        self._readers = {
            spec.name: _Reader(
                spec, by_name.get(spec.name), read_from, retry, report, wake, journalctl
            )
            for spec in specs
        }
        self._wheres = {reader.where: reader for reader in self._readers.values()}
        self._more = False

    def __bool__(self) -> bool:
        return bool(self._readers)

    def names(self) -> list[str]:
        return list(self._readers)

    def start(self) -> None:
        for reader in self._readers.values():
            reader.start()

    def stop(self) -> None:
        for reader in self._readers.values():
            reader.stop()  # all at once, then wait for each
        for reader in self._readers.values():
            reader.join()

    def poll(self, budget: int = DEFAULT_BUDGET) -> list[JournalRead]:
        """What is new in each journal, at most `budget` entries of each."""
        reads = []
        self._more = False
        for reader in self._readers.values():
            lines, any_entry = reader.take(budget)
            if any_entry:
                reads.append(JournalRead(reader.name, tuple(lines)))
            self._more = self._more or bool(reader.queue)
        return reads

    def attempts(self) -> dict[str, int]:
        """How often each journal's journalctl was started (or tried), by name."""
        return {name: reader.attempts for name, reader in self._readers.items()}

    @property
    def more(self) -> bool:
        """True when the last poll left entries queued (a backlog bigger than the budget)."""
        return self._more

    @property
    def catching_up(self) -> bool:
        """True until every journal's entries from before the start have been handed out."""
        return any(not reader.caught_up for reader in self._readers.values())

    def positions(self, pending: Mapping[str, Line | None]) -> list[JournalPosition]:
        """Where each journal stands; `pending` has the first line of each one's pending event."""
        found = []
        for name, reader in self._readers.items():
            position = reader.position(pending.get(name))
            if position is not None:
                found.append(position)
        return found

    def entry_time(self, event: Event) -> float | None:
        """When the entry holding an event's first line was written (None: not a journal's)."""
        reader = self._wheres.get(event.path)
        return None if reader is None else reader.entry_time(event.first_line)
