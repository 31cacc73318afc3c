"""The alert lifecycle, driven by a clock the test controls."""

from __future__ import annotations

from oai400d.alerts import AlertBook
from oai400d.config import AlertsSettings
from oai400d.model import Ack, Silence

from .samples import finding

SETTINGS = AlertsSettings(group_wait=10, group_interval=60, repeat_interval=3600, resolve_after=900)


def kinds(notifications: list) -> list[tuple[str, int]]:  # type: ignore[type-arg]
    return [(n.kind, n.count) for n in notifications]


def test_a_burst_becomes_one_opened_message_after_group_wait() -> None:
    """Findings within group_wait are gathered: one 'opened' with the whole count."""
    book = AlertBook(SETTINGS, host="h")
    for second in range(5):
        book.observe(finding(), 1000 + second)
    assert book.tick(1005) == []
    assert kinds(book.tick(1010)) == [("opened", 5)]
    assert book.tick(1011) == []


def test_updates_come_at_most_once_per_group_interval() -> None:
    """More findings after opening give one 'updated' per group_interval, with what is new."""
    book = AlertBook(SETTINGS, host="h")
    book.observe(finding(), 0)
    book.tick(10)
    updates = []
    for second in range(11, 200):
        book.observe(finding(), second)
        updates += [(second, n.kind, n.count, n.new) for n in book.tick(second)]
    assert updates == [
        (70, "updated", 61, 60),
        (130, "updated", 121, 60),
        (190, "updated", 181, 60),
    ]


def test_no_update_without_new_findings() -> None:
    """An alert that got no new finding since its last message stays quiet."""
    book = AlertBook(SETTINGS, host="h")
    book.observe(finding(), 0)
    book.tick(10)
    assert book.tick(500) == []


def test_reminder_after_repeat_interval_while_still_happening() -> None:
    """A problem still happening after repeat_interval gets a 'repeated' reminder."""
    book = AlertBook(SETTINGS.model_copy(update={"resolve_after": 10_000.0}), host="h")
    book.observe(finding(), 0)
    book.tick(10)
    for t in range(100, 3700, 100):
        book.observe(finding(), t)
        book.tick(t)
    book.observe(finding(), 3650)
    assert [n.kind for n in book.tick(3611)] == ["repeated"]


def test_resolved_after_quiet_period_with_duration_and_count() -> None:
    """No finding for resolve_after: 'resolved', saying how long it lasted and how many."""
    book = AlertBook(SETTINGS, host="h")
    book.observe(finding(), 0)
    book.observe(finding(), 30)
    book.tick(10)
    assert book.tick(929) == []
    resolved = [n for n in book.tick(931) if n.kind == "resolved"]
    assert len(resolved) == 1
    assert resolved[0].count == 2 and resolved[0].duration_s == 931
    assert book.alerts() != [] and book.changed()[-1].state == "resolved"
    assert book.alerts() == []


def test_a_new_finding_after_resolve_opens_a_new_alert() -> None:
    """The same problem coming back is announced again, counting from one."""
    book = AlertBook(SETTINGS, host="h")
    book.observe(finding(), 0)
    book.tick(10)
    book.tick(1000)
    book.changed()
    book.observe(finding(), 2000)
    assert kinds(book.tick(2010)) == [("opened", 1)]


def test_backlog_is_summarised_once_and_not_announced_alone() -> None:
    """Findings from caught-up old lines become one summary, not one message per alert."""
    book = AlertBook(SETTINGS, host="h")
    for i in range(3):
        book.observe(finding(f"fp{i}"), 100, backlog=True)
        book.observe(finding(f"fp{i}"), 100, backlog=True)
    assert book.tick(200) == []
    summary = book.backlog_summary(200)
    assert summary is not None and summary.kind == "backlog"
    assert summary.count == 6 and len(summary.items) == 3
    assert book.tick(2000) == []  # backlog alerts resolve silently


def test_a_live_finding_turns_a_backlog_alert_into_a_real_one() -> None:
    """If the problem is still happening now, it is announced normally."""
    book = AlertBook(SETTINGS, host="h")
    book.observe(finding(), 100, backlog=True)
    book.observe(finding(), 300)
    assert kinds(book.tick(310)) == [("opened", 2)]


def test_distinct_fingerprints_are_distinct_alerts() -> None:
    """Different causes never share an alert."""
    book = AlertBook(SETTINGS, host="h")
    book.observe(finding("a"), 0)
    book.observe(finding("b"), 0)
    assert sorted(n.fingerprint for n in book.tick(10)) == ["a", "b"]


def test_next_due_tells_when_to_wake() -> None:
    """The main loop can sleep until the next transition."""
    book = AlertBook(SETTINGS, host="h")
    assert book.next_due(0) == float("inf")
    book.observe(finding(), 100)
    assert book.next_due(103) == 7


def test_the_book_is_built_with_its_mutes_and_context() -> None:
    """Silences and the probes' context come with the book: the first message obeys both."""
    later = Silence(1, "fp1", None, 0, 300, "", "alice", 0)
    book = AlertBook(
        SETTINGS, host="h", silences=[later], context=lambda category: f"probes: {category}"
    )
    book.observe(finding(), 0)
    assert book.tick(10) == []
    assert book.next_due(10) == 290  # the silence's end
    (opened,) = book.tick(300)
    assert (opened.kind, opened.context) == ("opened", "probes: auth.invalid_api_key")


def test_shared_silences_mute_like_the_book_s_own_until_replaced() -> None:
    """The fleet's silences, handed over with share_silences, hold messages, wake-ups and
    acknowledgements alike; the book's own list stays its own."""
    fleet_wide = Silence(7, None, "auth.invalid_api_key", 0, 5000, "", "bob", 0, via="slack")
    book = AlertBook(SETTINGS, host="h")
    book.share_silences([fleet_wide])
    book.observe(finding(), 0)
    assert book.tick(10) == [] and book.silences == []
    assert book.next_due(10) == 890  # dropped if quiet at 900, not a past group_wait
    assert book.silence_for(book.alerts()[0], 10) is fleet_wide
    book.share_silences([])
    assert kinds(book.tick(11)) == [("opened", 1)]
    assert book.acknowledge(Ack("fp1", "alice", 12.0), 12) is not None
