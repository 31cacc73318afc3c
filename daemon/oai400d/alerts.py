"""Findings → alerts: grouping by fingerprint, counting, and the notifications they are due.

When to tell a person is the lifecycle's (lifecycle.py, its rules written there only); the book
applies it to every alert it keeps. A finding seen only in lines caught up after a restart
starts a backlog alert; a live finding turns it into pending.
Pure logic: the clock comes in as arguments, nothing here reads files or sends anything.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from oai400d import lifecycle
from oai400d.config import AlertsSettings
from oai400d.facts import order_fixes
from oai400d.lifecycle import Step
from oai400d.model import Ack, Alert, Fact, Finding, Notification, ProbeResult, Silence
from oai400d.timestamps import iso

MAX_FILES_PER_ALERT = 20
MAX_BACKLOG_ITEMS = 50


def silence_added(silence: Silence) -> str:
    """How the daemon logs a new silence: `silence #4 added by alice (cli): no messages for …`."""
    comment = f": {silence.comment}" if silence.comment else ""
    return (
        f"silence #{silence.id} added by {silence.created_by} ({silence.via}): no messages for "
        f"{silence.matcher} until {iso(silence.ends)}{comment}"
    )


def probe_alert(result: ProbeResult, fingerprint: str, first_seen: float) -> Alert:
    """A new, pending alert for a failing probe (no finding counted into it yet)."""
    return Alert(
        fingerprint=fingerprint,
        category=result.cause or ("server.error" if result.name == "status_page" else "network"),
        rule=f"probe.{result.name}",
        severity="critical" if result.status == "critical" else "warning",
        title=f"Probe {result.name}: {result.summary}"[:150],
        state="pending",
        count=0,
        first_seen=first_seen,
        last_seen=first_seen,
        files=(),
        message=result.summary,
        excerpt="",
        fixes=result.fixes,
        docs=(),
        source="probe",
    )


def notification_of(
    kind: str, a: Alert, new: int, host: str, context: Callable[[str], str] | None = None
) -> Notification:
    """The message of a lifecycle step about alert `a` (`new`: findings it tells for the first
    time), from `host`, with what `context` says about its category at this moment."""
    duration = (a.resolved_at or a.last_seen) - a.first_seen if kind == "resolved" else None
    return Notification(
        kind=kind,
        fingerprint=a.fingerprint,
        category=a.category,
        severity=a.severity,
        title=a.title,
        count=a.count,
        first_seen=iso(a.first_seen),
        last_seen=iso(a.last_seen),
        files=a.files,
        fixes=a.fixes,
        docs=a.docs,
        excerpt=a.excerpt,
        rule=a.rule,
        message=a.message,
        status=a.status,
        error_code=a.error_code,
        model=a.model,
        request_id=a.request_id,
        new=new,
        duration_s=duration,
        host=host,
        context=context(a.category) if context is not None else "",
        acked_by=a.acked_by,
        acked_at=iso(a.acked_at) if a.acked_at is not None else None,
        facts=a.facts,
    )


def checked(a: Alert, facts: Sequence[Fact]) -> tuple[Alert, tuple[str, ...]]:
    """The alert carrying these facts' sentences, and its fixes in the order they make likely
    (facts.order_fixes): what a notification about it then says."""
    return replace(a, facts=tuple(f.text for f in facts)), order_fixes(a.fixes, facts)


@dataclass
class _Entry:
    alert: Alert
    dirty: bool = True


class AlertBook:
    """The alerts that are not resolved, and the notifications they are due.

    Its mutes come with it: `silences` (this host's, from the state DB; the daemon refreshes
    them) and those shared with it through `share_silences` (the fleet's); every step of the
    lifecycle sees both. `context` says what the probes say about a category at the moment of
    a notification (correlation); `facts`, what was checked about an alert, asked once per
    notification of its episode (opened, updated, repeated: never per finding)."""

    def __init__(
        self,
        settings: AlertsSettings,
        alerts: Iterable[Alert] = (),
        host: str | None = None,
        *,
        silences: Iterable[Silence] = (),
        context: Callable[[str], str] | None = None,
        facts: Callable[[Alert], Sequence[Fact]] | None = None,
    ) -> None:
        self.settings = settings
        self.host = host if host is not None else socket.gethostname()
        self._entries = {a.fingerprint: _Entry(a, dirty=False) for a in alerts}
        self.context = context
        self.facts = facts
        # Policy about messages only: counting goes on under a silence.
        self.silences: list[Silence] = list(silences)
        self._shared_silences: Sequence[Silence] = ()

    def share_silences(self, silences: Sequence[Silence]) -> None:
        """Silences kept elsewhere that mute this book's alerts too (in a fleet: the store's,
        the last it said); they stand until the next call."""
        self._shared_silences = silences

    def mutes(self) -> list[Silence]:
        """Every silence this book's lifecycle obeys: its own, then the shared ones."""
        return [*self.silences, *self._shared_silences]

    def reconfigure(self, settings: AlertsSettings) -> None:
        self.settings = settings

    # --- input ------------------------------------------------------------------------------

    def observe(self, finding: Finding, now: float, backlog: bool = False) -> None:
        """Count one finding into its alert (creating it if it is new or was resolved)."""
        entry = self._entries.get(finding.fingerprint)
        alert = entry.alert if entry is not None else None
        if alert is None or alert.state == "resolved":
            alert = Alert(
                fingerprint=finding.fingerprint,
                category=finding.category,
                rule=finding.rule,
                severity=finding.severity,
                title=finding.title,
                state="backlog" if backlog else "pending",
                count=0,
                first_seen=now,
                last_seen=now,
                files=(),
                message=finding.message,
                excerpt=finding.excerpt,
                fixes=finding.fixes,
                docs=finding.docs,
            )
        elif alert.state == "backlog" and not backlog:
            alert = replace(alert, state="pending", first_seen=now)
        files = alert.files
        if finding.path not in files and len(files) < MAX_FILES_PER_ALERT:
            files = (*files, finding.path)
        self._entries[finding.fingerprint] = _Entry(
            replace(
                alert,
                count=alert.count + 1,
                last_seen=max(alert.last_seen, now),
                files=files,
                status=finding.status,
                error_type=finding.error_type,
                error_code=finding.error_code,
                model=finding.model or alert.model,
                request_id=finding.request_id or alert.request_id,
                message=finding.message or alert.message,
            )
        )

    def probe_failed(self, result: ProbeResult, now: float) -> None:
        """A probe failed `failure_threshold` times in a row: open (or count into) its alert.
        It skips group_wait: the threshold already waited for the failure to persist."""
        fingerprint = f"probe:{result.name}"
        entry = self._entries.get(fingerprint)
        alert = entry.alert if entry is not None else None
        if alert is None or alert.state == "resolved":
            alert = probe_alert(result, fingerprint, now - self.settings.group_wait)
        self._entries[fingerprint] = _Entry(
            replace(alert, count=alert.count + 1, last_seen=now, message=result.summary)
        )

    def probe_recovered(self, name: str, now: float) -> Notification | None:
        """A probe passed `success_threshold` times in a row: resolve its alert, if open."""
        fingerprint = f"probe:{name}"
        entry = self._entries.get(fingerprint)
        if entry is None:
            return None
        return self._take(fingerprint, lifecycle.recover(entry.alert, now))

    # --- time -------------------------------------------------------------------------------

    def tick(self, now: float, logs: bool = True) -> list[Notification]:
        """The notifications due at `now`, applying the lifecycle to every alert. `logs=False`:
        log alerts wait as they are (a fleet announces them; this host only if it falls back)."""
        mutes = self.mutes()
        due: list[Notification] = []
        for fingerprint, entry in list(self._entries.items()):
            if logs or self._own_business(entry.alert):
                step = lifecycle.decide(entry.alert, now, self.settings, mutes)
                shown = self._take(fingerprint, step)
                if shown is not None:
                    due.append(shown)
        return due

    def backlog_summary(self, now: float) -> Notification | None:
        """One notification covering every backlog alert (after a catch-up), or None."""
        backlog = sorted(
            (e.alert for e in self._entries.values() if e.alert.state == "backlog"),
            key=lambda a: (-a.count, a.fingerprint),
        )
        if not backlog:
            return None
        total = sum(a.count for a in backlog)
        items = tuple(
            {
                "fingerprint": a.fingerprint,
                "category": a.category,
                "severity": a.severity,
                "title": a.title,
                "count": a.count,
                "files": list(a.files),
                "fix": a.fixes[0] if a.fixes else "",
            }
            for a in backlog[:MAX_BACKLOG_ITEMS]
        )
        worst = min(backlog, key=lambda a: ("critical", "warning", "info").index(a.severity))
        files = tuple(sorted({f for a in backlog for f in a.files}))[:MAX_FILES_PER_ALERT]
        return Notification(
            kind="backlog",
            fingerprint="backlog",
            category=worst.category if len(backlog) == 1 else "backlog",
            severity=worst.severity,
            title=(
                f"{total} OpenAI error(s) of {len(backlog)} kind(s) in lines caught up on restart"
            ),
            count=total,
            first_seen=iso(min(a.first_seen for a in backlog)),
            last_seen=iso(max(a.last_seen for a in backlog)),
            files=files,
            fixes=tuple(dict.fromkeys(a.fixes[0] for a in backlog if a.fixes))[:4],
            docs=(),
            excerpt=backlog[0].excerpt,
            host=self.host,
            items=items,
        )

    # --- output -----------------------------------------------------------------------------

    def changed(self) -> list[Alert]:
        """Alerts changed since the last call (to persist), and forget resolved ones."""
        out = []
        for fingerprint, entry in list(self._entries.items()):
            if entry.dirty:
                out.append(entry.alert)
                entry.dirty = False
            if entry.alert.state == "resolved":
                del self._entries[fingerprint]
        return out

    def alerts(self) -> list[Alert]:
        return [e.alert for e in self._entries.values()]

    def get(self, fingerprint: str) -> Alert | None:
        entry = self._entries.get(fingerprint)
        return None if entry is None else entry.alert

    def next_due(self, now: float, logs: bool = True) -> float:
        """Seconds until tick(now, logs) may have something to do (for the main loop's sleep)."""
        mutes = self.mutes()
        soonest = min(
            (
                lifecycle.decide(e.alert, now, self.settings, mutes).due
                for e in self._entries.values()
                if logs or self._own_business(e.alert)
            ),
            default=lifecycle.NEVER,
        )
        return max(0.0, soonest - now)

    @staticmethod
    def _own_business(alert: Alert) -> bool:
        """Alerts this host handles itself even in a fleet: its probes, and its backlog."""
        return alert.source == "probe" or alert.state == "backlog"

    def absorb(self, now: float) -> list[Notification]:
        """The fleet store is back and has this host's findings: end the log alerts it kept on
        its own meanwhile. One it announced gets a "merged" message; the others just go."""
        merged: list[Notification] = []
        for fingerprint, entry in list(self._entries.items()):
            if not self._own_business(entry.alert):
                shown = self._take(fingerprint, lifecycle.merge(entry.alert, now))
                if shown is not None:
                    merged.append(shown)
        return merged

    # --- silences and acknowledgements ------------------------------------------------------

    def silence_for(self, alert: Alert, now: float) -> Silence | None:
        """The first silence active at `now` that covers this alert, if any."""
        return lifecycle.silence_for(alert, self.mutes(), now)

    def acknowledge(self, ack: Ack, now: float) -> Notification | None:
        """Record an acknowledgement of the current episode; the message that shows it (an
        update of an announced, unsilenced alert), or None."""
        entry = self._entries.get(ack.fingerprint)
        if entry is None:
            return None
        step = lifecycle.acknowledge(entry.alert, ack, now, self.mutes())
        return self._take(ack.fingerprint, step)

    def _take(self, fingerprint: str, step: Step | None) -> Notification | None:
        """Keep the alert a lifecycle step left (to persist), and build its message, if any."""
        if step is None or step.action == "wait":
            return None
        alert = step.alert
        if step.kind is None:
            self._entries[fingerprint] = _Entry(alert)
            return None
        fixes = alert.fixes
        # A resolution says what the last message checked; the others check again (refreshed).
        if self.facts is not None and step.kind not in ("resolved", "merged"):
            alert, fixes = checked(alert, self.facts(alert))
        self._entries[fingerprint] = _Entry(alert)
        return replace(self._notification(step.kind, alert, step.new), fixes=fixes)

    def _notification(self, kind: str, a: Alert, new: int) -> Notification:
        return notification_of(kind, a, new, self.host, self.context)
