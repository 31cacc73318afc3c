"""The daemon's middle stages, in-process on a fake clock: the status-only hold, the backlog
window, ingest (real files on disk, read through the real tailing), probe intake, mutes (a real
state DB written by a second connection), the fleet link (the store's side as plain values)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from oai400d.alerts import AlertBook
from oai400d.backlog import BacklogWindow
from oai400d.classify import Classifier
from oai400d.config import AlertsSettings, parse_settings
from oai400d.fleetlink import FleetLink
from oai400d.hold import SECONDARY_HOLD, SecondaryHold
from oai400d.ingest import Ingest
from oai400d.model import Ack, Event, Finding, ProbeResult, Silence
from oai400d.mutes import MuteSync
from oai400d.probing import ProbeIntake, ProbeSchedule
from oai400d.state import State
from oai400d.timestamps import iso, line_time, parse_iso

from .samples import request_finding as finding
from .support import NothingSaved, read_until

# --- the status-only hold ----------------------------------------------------------------------

HOLD_CASES = [
    # (what, [(time, line, status, kind)], release times, lines released at each)
    (
        "the detailed error comes within the hold: the status line is dropped",
        [(0.0, 1, 429, "status"), (0.3, 2, 429, "error")],
        [0.3, 1.5],
        [[], []],
    ),
    (
        "no detailed error: the status line counts once it has waited the hold",
        [(0.0, 1, 429, "status")],
        [0.5, SECONDARY_HOLD, 5.0],
        [[], [1], []],
    ),
    (
        "the error came first: a retry's status line after it is dropped",
        [(0.0, 2, 429, "error"), (0.2, 9, 429, "status")],
        [0.2, 2.0],
        [[], []],
    ),
    (
        "another failure's error does not take a status line away",
        [(0.0, 1, 429, "status"), (0.1, 2, 500, "error")],
        [0.1, 1.0],
        [[], [1]],
    ),
    (
        "a retry notice with details waits too, and a status line is dropped for it",
        [(0.0, 1, 429, "status"), (0.1, 2, 429, "notice")],
        [1.0, 1.1],
        [[], [2]],
    ),
]


@pytest.mark.parametrize(
    ("arrivals", "releases", "expected"),
    [case[1:] for case in HOLD_CASES],
    ids=[case[0] for case in HOLD_CASES],
)
def test_the_hold_releases_only_what_no_better_finding_told(
    arrivals: list[tuple[float, int, int, str]],
    releases: list[float],
    expected: list[list[int]],
) -> None:
    """A secondary finding is held; it is dropped when a finding of the same failure that tells
    more comes within the hold (or came just before), and released after the hold otherwise;
    a primary finding is never held."""
    hold = SecondaryHold()
    counted_now = []
    for at, line, status, kind in arrivals:
        if not hold.offer(finding(line, status, kind), at, backlog=False):
            counted_now.append(line)
    assert counted_now == [line for _, line, _, kind in arrivals if kind == "error"]
    got = [[h.finding.line for h in hold.release(at)] for at in releases]
    assert got == expected


def test_the_hold_says_when_it_is_due_and_lets_all_go_when_stopping() -> None:
    """deadlines() is each held finding's time plus the hold; stopping releases them at once."""
    hold = SecondaryHold(wait=2.0)
    hold.offer(finding(1, 429, "status"), 10.0, backlog=True)
    hold.offer(finding(9, 500, "status"), 11.0, backlog=False)
    assert hold.deadlines() == [12.0, 13.0]
    released = hold.release(10.5, stopping=True)
    assert [(h.finding.line, h.backlog) for h in released] == [(1, True), (9, False)]
    assert len(hold) == 0 and hold.deadlines() == []


# --- timestamps and the backlog window ---------------------------------------------------------


def test_one_reader_for_each_timestamp_form() -> None:
    """The alert form round-trips; a log line's leading time is read with its zone; a line
    without a leading timestamp has none."""
    assert iso(1_764_064_801) == "2025-11-25T10:00:01Z"
    assert parse_iso("2025-11-25T10:00:01Z") == 1_764_064_801
    assert parse_iso("2025-11-25T12:00:01+02:00") == 1_764_064_801
    assert line_time("[2025-11-25 10:00:01,250Z] ERROR x") == 1_764_064_801
    assert line_time("2025-11-25T11:00:01+0100 ERROR x") == 1_764_064_801
    assert line_time("ERROR 2025-11-25T10:00:01Z x") is None
    assert line_time("2025-13-45T10:00:01Z bad date") is None
    with pytest.raises(ValueError):
        parse_iso("yesterday")


def event(text: str) -> Event:
    return Event("app.log", 1, 1, text)


def test_the_backlog_window_tells_old_caught_up_lines_from_recent_ones() -> None:
    """Only caught-up events written longer ago than the window are old; the time comes from
    the journal entry, else the line's own timestamp, else the last stop."""
    now = parse_iso("2025-11-25T12:00:00Z")
    settings = AlertsSettings(backlog_window=3600)
    journal_times = {"from the journal": now - 7200}
    window = BacklogWindow(
        settings, last_stop=now - 60, entry_time=lambda e: journal_times.get(e.text)
    )
    assert window.is_old(event("2025-11-25T10:00:00Z ERROR old"), True, now)
    assert not window.is_old(event("2025-11-25T10:00:00Z ERROR old"), False, now)  # live
    assert not window.is_old(event("2025-11-25T11:30:00Z ERROR recent"), True, now)
    assert window.is_old(event("from the journal"), True, now)
    assert not window.is_old(event("no time at all"), True, now)  # after the last stop, 60 s ago
    never_stopped = BacklogWindow(settings, last_stop=None, entry_time=lambda e: None)
    assert not never_stopped.is_old(event("no time at all"), True, now)


def test_the_backlog_summary_is_due_once_when_catching_up_is_over() -> None:
    """Not while catching up, not while a caught-up event is still being gathered; then once."""
    window = BacklogWindow(AlertsSettings(), last_stop=None, entry_time=lambda e: None)
    assert not window.summary_due(catching_up=True, caught_up_pending=False)
    assert not window.summary_due(catching_up=False, caught_up_pending=True)
    assert window.summary_due(catching_up=False, caught_up_pending=False)
    assert not window.summary_due(catching_up=False, caught_up_pending=False)


# --- ingest: real files, the real tailing, a fake clock ------------------------------------------




def make_ingest(
    tmp_path: Path, read_counts: list[tuple[str, int]], classifier: Classifier | None = None
) -> Ingest:
    settings = parse_settings(
        {
            "logs": {
                "paths": [str(tmp_path / "*.log")],
                "read_from": "beginning",
                "multiline_timeout": "2s",
            },
            "state": {"path": str(tmp_path / "state.db")},
        }
    )
    return Ingest(
        settings,
        NothingSaved(),
        report=lambda message: None,
        wake=lambda: None,
        on_read=lambda path, lines, size: read_counts.append((path, lines)),
        on_error=lambda path: None,
        prefilter=classifier.prefilter if classifier is not None else None,
    )


def test_ingest_reads_files_into_events_caught_up_then_live(tmp_path: Path) -> None:
    """Lines already in a file when ingest starts are read as caught up; a traceback with its
    log record is one event; after the end of every source, new lines are live; the multi-line timeout (on the
    clock passed in) completes an event whose next line never comes."""
    log = tmp_path / "app.log"
    log.write_text(
        "first line\nERROR call failed\nTraceback (most recent call last):\n"
        '  File "x", line 1\nValueError: boom\nnext record\n'
    )
    counts: list[tuple[str, int]] = []
    ingest = make_ingest(tmp_path, counts)
    ingest.start()
    try:
        got = read_until(ingest, 100.0, lambda g: len(g) >= 2)
        assert [(i.event.first_line, i.event.last_line, i.caught_up) for i in got[:2]] == [
            (1, 1, True),
            (2, 5, True),
        ]
        assert counts and counts[0] == (str(log), 6)
        read_until(ingest, 100.0, lambda g: not ingest.catching_up, deadline=5.0)
        assert ingest.dirty and ingest.caught_up_pending()  # "next record" waits for its end
        with log.open("a") as handle:
            handle.write("a live line\n")
        live = read_until(ingest, 101.0, lambda g: len(g) >= 1)
        # (an event is marked when it is completed: this one by a live line)
        assert [(i.event.text, i.caught_up) for i in live] == [("next record", False)]
        assert ingest.deadlines() == [101.0 + 2.0]
        late = read_until(ingest, 103.5, lambda g: len(g) >= 1)
        assert [(i.event.text, i.caught_up) for i in late] == [("a live line", False)]
        assert ingest.deadlines() == []
        (position,) = ingest.file_positions()
        assert position.offset == log.stat().st_size
        ingest.committed()
        assert not ingest.dirty and ingest.forgotten() == []
    finally:
        ingest.stop()


def test_ingest_with_the_prefilter_hands_out_only_the_events_around_hits(tmp_path: Path) -> None:
    """The daemon's fast path: lines without a prefilter hit are counted, not assembled; a
    traceback with a hit is one event from its header; the position saved while its record
    may still go on is that record's start, then the end once the timeout completed it."""
    log = tmp_path / "app.log"
    head = "first line\nERROR call failed\nTraceback (most recent call last):\n"
    log.write_text(
        head + '  File "x", line 1\nopenai.RateLimitError: Error code: 429\nnext record\n'
    )
    counts: list[tuple[str, int]] = []
    ingest = make_ingest(tmp_path, counts, Classifier())
    ingest.start()
    try:
        got = read_until(ingest, 100.0, lambda g: len(g) >= 1)
        assert [(i.event.first_line, i.event.last_line, i.caught_up) for i in got] == [(2, 5, True)]
        assert counts == [(str(log), 6)]
        read_until(ingest, 100.0, lambda g: not ingest.catching_up, deadline=5.0)
        assert ingest.caught_up_pending()  # "next record" may still go on
        (position,) = ingest.file_positions()
        assert (position.offset, position.line_no) == (log.stat().st_size - 12, 5)
        assert ingest.read(102.0) == []  # the timeout ends it: no hit, no event
        assert ingest.deadlines() == []
        (position,) = ingest.file_positions()
        assert (position.offset, position.line_no) == (log.stat().st_size, 6)
    finally:
        ingest.stop()


def test_a_commit_gets_only_the_positions_that_moved_since_the_last(tmp_path: Path) -> None:
    """file_positions() after a commit: only the files read since (none when nothing was);
    the same again when that commit failed (committed() not called); every file when asked
    for everything (a fresh DB)."""
    one, two = tmp_path / "one.log", tmp_path / "two.log"
    one.write_text("a line\n")
    two.write_text("another line\n")
    ingest = make_ingest(tmp_path, [], Classifier())
    ingest.start()
    try:
        read_until(ingest, 100.0, lambda g: not ingest.catching_up, deadline=5.0)
        ingest.read(103.0)  # (the timeout: nothing is pending any more)
        assert sorted(p.path for p in ingest.file_positions()) == [str(one), str(two)]
        ingest.committed()
        ingest.read(104.0)
        assert ingest.file_positions() == []
        with one.open("a") as handle:
            handle.write("more\n")
        deadline = time.monotonic() + 5.0
        while ingest.file_positions() == [] and time.monotonic() < deadline:
            ingest.read(105.0)
            ingest.wait(0.05)
        ingest.read(108.0)  # the timeout: "more" is complete, its end is safe
        (moved,) = ingest.file_positions()  # the commit failed: asked again, the same
        assert (moved.path, moved.offset) == (str(one), one.stat().st_size)
        assert ingest.file_positions() == [moved]
        ingest.committed()
        assert ingest.file_positions() == []
        everything = ingest.file_positions(everything=True)
        assert sorted((p.path, p.offset) for p in everything) == [
            (str(one), one.stat().st_size),
            (str(two), two.stat().st_size),
        ]
    finally:
        ingest.stop()


# --- probe intake --------------------------------------------------------------------------------


def test_probe_intake_counts_streaks_records_results_and_says_what_crossed(
    tmp_path: Path,
) -> None:
    """failure_threshold failures in a row make a probe failing, success_threshold successes
    after that its recovery; every result is in the state DB; `unknown` breaks no streak."""
    settings = parse_settings(
        {
            "probes": {"failure_threshold": 2, "success_threshold": 2},
            "state": {"path": str(tmp_path / "state.db")},
        }
    )
    state = State(str(tmp_path / "state.db"))
    try:
        schedule = ProbeSchedule(settings, wake=lambda: None)
        intake = ProbeIntake(state, schedule)
        statuses = ["critical", "unknown", "critical", "ok", "ok"]
        turns = []
        for second, status in enumerate(statuses):
            schedule.results.put(ProbeResult("api_key", status, f"{status} summary"))
            turns += [(t.failing, t.recovered) for t in intake.take(float(second))]
        assert turns == [
            (False, False),
            (False, False),
            (True, False),
            (False, False),
            (False, True),
        ]
        assert schedule.latest["api_key"].status == "ok"
        (record,) = [p for p in state.probes() if p.name == "api_key"]
        assert (record.status, record.failures, record.successes) == ("ok", 0, 2)
        again = ProbeIntake(state, schedule)  # a restart keeps the streaks
        schedule.results.put(ProbeResult("api_key", "ok", "ok"))
        assert [(t.failing, t.recovered) for t in again.take(9.0)] == [(False, True)]
    finally:
        state.close()


# --- mutes: silences and acks written by another process -----------------------------------------


def real_finding(fingerprint: str = "fp1", category: str = "rate_limit") -> Finding:
    return dataclasses.replace(finding(1, 429, "error"), fingerprint=fingerprint, category=category)


def test_mutes_take_up_what_another_process_wrote_and_show_acks(tmp_path: Path) -> None:
    """An ack written by another connection comes out once as an update of the live alert; a
    silence it adds mutes the book at the next refresh and ends on time."""
    path = str(tmp_path / "state.db")
    state, cli = State(path), State(path)
    try:
        mutes = MuteSync(state, now=0.0)
        book = AlertBook(AlertsSettings(group_wait=5), host="h", silences=mutes.silences)
        mutes.attach(book)
        book.observe(real_finding(), 0.0)
        assert [n.kind for n in book.tick(5.0)] == ["opened"]
        assert mutes.refresh(6.0) == [] and book.silences == []
        cli.acknowledge(Ack("fp1", "bob", 7.0, "on it"))
        (shown,) = mutes.refresh(8.0)
        assert (shown.kind, shown.acked_by) == ("updated", "bob")
        assert mutes.refresh(9.0) == []  # shown once
        cli.add_silence("fp1", None, 10.0, 100.0, "deploy", "alice", "cli")
        assert mutes.refresh(11.0) == []
        assert [(s.fingerprint, s.created_by) for s in book.silences] == [("fp1", "alice")]
        assert mutes.refresh(100.0) == [] and book.silences == []  # ended on time
    finally:
        state.close()
        cli.close()


# --- the fleet link, against a store that answers or not ------------------------------------------


@dataclasses.dataclass
class StoreSide:
    """What the fleet link reads of fleetsync's thread: whether the store fails, since when,
    what it confirmed, its silences. The test sets them as the thread would."""

    failing_since: float | None = None
    confirmed_through: float = 0.0
    silences: list[Silence] = dataclasses.field(default_factory=list)


def test_the_fleet_link_queues_while_the_store_answers_and_falls_back_after_its_delay(
    tmp_path: Path,
) -> None:
    """While the store answers, findings go to its queue only; when it fails, what it never
    confirmed is counted locally, and after fleet.fallback_after this host alerts on its own,
    saying so; when the store is back, that alert ends as merged. All on a fake clock."""
    settings = parse_settings(
        {
            "alerts": {"group_wait": "5s"},
            "fleet": {"fallback_after": "60s", "host": "web-1"},
            "state": {"path": str(tmp_path / "s.db"), "fleet": "postgresql:///unused"},
        }
    )
    book = AlertBook(settings.alerts, host="web-1")
    store = StoreSide()
    walls = iter([1000.0, 2000.0])
    link = FleetLink(store, book, settings, wall=lambda: next(walls))  # type: ignore[arg-type]
    assert link.take(real_finding(), 0.0, backlog=False)  # the store counts it
    assert not link.take(real_finding(), 0.0, backlog=True)  # a backlog finding stays local
    link.take(real_finding(), 1.0, backlog=False)
    (delta,) = link.deltas()
    assert (delta.fingerprint, delta.count, delta.first_seen, delta.last_seen) == (
        "fp1",
        2,
        0.0,
        1.0,
    )
    link.committed(1.0)  # written at wall time 1000, not confirmed yet
    assert link.deltas() == [] and book.get("fp1") is None
    store.failing_since = 10.0
    assert link.tick(10.0) == []  # counted locally now, but no log alert before the delay
    assert book.get("fp1") is not None and book.get("fp1").count == 2  # type: ignore[union-attr]
    assert not link.take(real_finding(), 20.0, backlog=False)  # the book counts it too now
    book.observe(real_finding(), 20.0)
    assert not link.falling_back(69.0) and link.falling_back(70.0)
    (opened,) = link.tick(70.0)
    assert opened.kind == "opened" and "unreachable since" in opened.note
    assert opened.episode.endswith("@web-1")
    store.failing_since = None
    store.confirmed_through = 3000.0
    merged = link.tick(80.0)
    assert [n.kind for n in merged] == ["merged"] and "is back" in merged[0].note
