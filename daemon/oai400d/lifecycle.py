"""The alert lifecycle: what happens to one alert next, and when. The only place its rules are
written; `alerts.AlertBook` (this host's alerts) and `fleetsync.FleetSync` (the fleet alerts
this host owns) apply them.

    pending ──group_wait──► open ──(more findings, every group_interval at most)──► updated
       │                     │ ──(still happening after repeat_interval)────────► repeated
       │                     └──(no finding for resolve_after)─────────────────► resolved
    backlog: seen only in lines caught up after a restart: counted, summarised once, never
    announced one by one; it goes without a word after resolve_after.

A silence holds back every message but a resolution; a pending alert that goes quiet under one
is dropped unannounced. A probe's alert (source "probe") resolves on probe successes, not on
quiet time, and reminds whether or not the probe failed again since. An acknowledgement stops
the reminders of the episode.

Pure functions, like Alertmanager's dedup_stage.go `needsUpdate`: the alert, the settings, the
silences in force and `now` come in; a `Step` (the alert after it, the notification it sends,
and when the next one may be due) comes out. Each rule is written as the time it falls due, so
that the decision ("due by now") and the wake-up time (`Step.due`) cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

from oai400d.config import AlertsSettings
from oai400d.model import Ack, Alert, Silence

NEVER = float("inf")

# wait: nothing to do yet. drop: resolved without a message (a backlog alert, or a pending one
# that went quiet under a silence). merge: a fleet host's own alert ends, its count being in
# the store.
Action = Literal["wait", "open", "update", "repeat", "resolve", "drop", "acknowledge", "merge"]


@dataclass(frozen=True, slots=True)
class Step:
    """What the lifecycle makes of one alert: the alert after the step, the notification it
    sends (`kind` None: none) with how many findings are new in it, and, for "wait", when the
    next step may be due without a new finding (epoch seconds; NEVER: only on new input)."""

    action: Action
    alert: Alert
    kind: str | None = None  # Notification.kind: opened, updated, repeated, resolved, merged
    new: int = 0
    due: float = NEVER


def silence_for(alert: Alert, silences: Iterable[Silence], now: float) -> Silence | None:
    """The first silence active at `now` that covers this alert, if any."""
    for silence in silences:
        if silence.active(now) and silence.matches(alert.fingerprint, alert.category):
            return silence
    return None


def decide(
    alert: Alert, now: float, settings: AlertsSettings, silences: Iterable[Silence] = ()
) -> Step:
    """The alert's next step by the clock: the first of its rules due by `now` (in the order of
    `_rules`, which is their precedence), else "wait" until the soonest of them."""
    rules = _rules(alert, settings, silence_for(alert, silences, now))
    for action, at in rules:
        if action != "wait" and at <= now:
            return _take(action, alert, now)
    return Step("wait", alert, due=min((at for _, at in rules), default=NEVER))


def _rules(a: Alert, s: AlertsSettings, silence: Silence | None) -> list[tuple[Action, float]]:
    """Each step the alert may take by the clock alone, with the time it falls due, first the
    one that wins when several are due; a "wait" entry is only a time to look again."""
    resolve_at = a.last_seen + s.resolve_after  # quiet for resolve_after
    logs = a.source != "probe"  # a probe's alert resolves on probe successes instead
    if a.state == "backlog":
        return [("drop", resolve_at)]
    if a.state == "pending":
        if silence is None:
            return [("open", a.first_seen + s.group_wait)]
        # Not announced yet: it is announced when the silence ends, if it is still happening
        # then; one that went quiet meanwhile is dropped unannounced.
        waits: list[tuple[Action, float]] = [("wait", silence.ends)]
        return [("drop", resolve_at), *waits] if logs else waits
    if a.state != "open":
        return []
    rules: list[tuple[Action, float]] = []
    if logs:
        rules.append(("resolve", resolve_at))  # told even under a silence
    if silence is not None:
        # Counted; the next message after the silence carries what it hid.
        return [*rules, ("wait", silence.ends)]
    if a.acked_at is None:  # an acknowledged alert stops reminding
        if not logs:
            rules.append(("repeat", (a.last_reminder or a.first_seen) + s.repeat_interval))
        elif a.last_seen > (a.last_reminder or 0):  # a reminder only while it is happening
            since = a.last_reminder or a.opened_at or a.first_seen
            rules.append(("repeat", since + s.repeat_interval))
    if logs and a.count > a.notified_count:  # an update only with findings it did not tell
        rules.append(("update", (a.last_notified or a.first_seen) + s.group_interval))
    return rules


def _take(action: Action, a: Alert, now: float) -> Step:
    """The alert after a step by the clock, and the notification it sends."""
    told = a.count - a.notified_count  # findings since the last message
    if action == "open":
        opened = replace(
            a,
            state="open",
            opened_at=now,
            last_notified=now,
            last_reminder=now,
            notified_count=a.count,
        )
        return Step("open", opened, "opened", a.count, now)
    if action == "repeat":
        reminded = replace(a, last_notified=now, last_reminder=now, notified_count=a.count)
        return Step("repeat", reminded, "repeated", told, now)
    if action == "update":
        updated = replace(a, last_notified=now, notified_count=a.count)
        return Step("update", updated, "updated", told, now)
    if action == "resolve":
        resolved = replace(a, state="resolved", resolved_at=now, notified_count=a.count)
        return Step("resolve", resolved, "resolved", told, now)
    assert action == "drop", action
    return Step("drop", replace(a, state="resolved", resolved_at=now), due=now)


# --- steps on input: an acknowledgement, a probe's recovery, the fleet store's return ---------


def acknowledge(a: Alert, ack: Ack, now: float, silences: Iterable[Silence] = ()) -> Step | None:
    """Someone acknowledged the current episode: the alert records it, and an announced,
    unsilenced alert shows it in an update. None: gone, an earlier episode's, or applied."""
    if a.state == "resolved" or ack.at < a.first_seen or a.acked_at == ack.at:
        return None
    acked = replace(a, acked_by=ack.by, acked_at=ack.at)
    if a.state != "open" or silence_for(a, silences, now) is not None:
        return Step("acknowledge", acked, due=now)
    shown = replace(acked, last_notified=now, notified_count=a.count)
    return Step("acknowledge", shown, "updated", a.count - a.notified_count, now)


def recover(a: Alert, now: float) -> Step | None:
    """Its probe passed success_threshold times in a row: the alert resolves, told only if it
    was announced. None: already resolved."""
    if a.state == "resolved":
        return None
    if a.state != "open":
        return Step("drop", replace(a, state="resolved", resolved_at=now), due=now)
    resolved = replace(a, state="resolved", resolved_at=now, notified_count=a.count)
    return Step("resolve", resolved, "resolved", a.count - a.notified_count, now)


def merge(a: Alert, now: float) -> Step | None:
    """The fleet store is back with the findings this host counted alone meanwhile: its own
    alert ends; one it announced says it was merged. None: not pending or open."""
    if a.state not in ("pending", "open"):
        return None
    done = replace(a, state="resolved", resolved_at=now, notified_count=a.count)
    told = "merged" if a.state == "open" else None  # one never announced just goes
    return Step("merge", done, told, a.count - a.notified_count, now)
