"""Findings → alerts: grouping by fingerprint, counting, and when to tell a person.

The lifecycle of one alert, with the `[alerts]` settings:
    pending ──group_wait──► open ──(more findings, every group_interval at most)──► updated
       │                     │ ──(still happening after repeat_interval)────────► repeated
       │                     └──(no finding for resolve_after)─────────────────► resolved
    backlog: seen only in lines caught up after a restart: counted, summarised once, never
    announced one by one; a live finding turns it into pending.
Pure logic: the clock comes in as arguments, nothing here reads files or sends anything.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from oai400d.config import AlertsSettings
from oai400d.model import Ack, Alert, Finding, Notification, ProbeResult, Silence

MAX_FILES_PER_ALERT = 20
MAX_BACKLOG_ITEMS = 50


def iso(seconds: float) -> str:
    """Epoch seconds → '2026-11-25T10:00:01Z'."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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


@dataclass
class _Entry:
    alert: Alert
    dirty: bool = True


class AlertBook:
    """The alerts that are not resolved, and the notifications they are due."""

    def __init__(
        self, settings: AlertsSettings, alerts: Iterable[Alert] = (), host: str | None = None
    ) -> None:
        self.settings = settings
        self.host = host if host is not None else socket.gethostname()
        self._entries = {a.fingerprint: _Entry(a, dirty=False) for a in alerts}
        # What the probes say about a category at the moment of a notification (correlation).
        self.context: Callable[[str], str] | None = None
        # Silences from the state DB (the daemon refreshes them): policy about messages only.
        self.silences: list[Silence] = []

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
        if entry is None or entry.alert.state == "resolved":
            return None
        a = entry.alert
        if a.state != "open":
            self._set(fingerprint, replace(a, state="resolved", resolved_at=now))
            return None
        resolved = replace(a, state="resolved", resolved_at=now, notified_count=a.count)
        self._set(fingerprint, resolved)
        return self._notification("resolved", resolved, a.count - a.notified_count)

    # --- time -------------------------------------------------------------------------------

    def tick(self, now: float, logs: bool = True) -> list[Notification]:
        """The notifications due at `now`, applying the lifecycle to every alert. `logs=False`:
        log alerts wait as they are (a fleet announces them; this host only if it falls back)."""
        s = self.settings
        due: list[Notification] = []
        for fingerprint, entry in list(self._entries.items()):
            a = entry.alert
            if not (logs or self._own_business(a)):
                continue
            quiet = now - a.last_seen
            if a.state == "backlog":
                if quiet >= s.resolve_after:
                    self._set(fingerprint, replace(a, state="resolved", resolved_at=now))
                continue
            silenced = self.silence_for(a, now) is not None
            if a.state == "pending":
                if silenced:
                    # Not announced yet: it is announced when the silence ends, if it is still
                    # happening then; one that went quiet meanwhile is dropped unannounced.
                    if a.source != "probe" and quiet >= s.resolve_after:
                        self._set(fingerprint, replace(a, state="resolved", resolved_at=now))
                    continue
                if now - a.first_seen >= s.group_wait:
                    a = replace(
                        a,
                        state="open",
                        opened_at=now,
                        last_notified=now,
                        last_reminder=now,
                        notified_count=a.count,
                    )
                    self._set(fingerprint, a)
                    due.append(self._notification("opened", a, a.count))
                continue
            if a.state != "open":
                continue
            reminds = not silenced and a.acked_at is None  # an acknowledged alert stops reminding
            if a.source == "probe":
                # Probe alerts resolve on probe successes, not on quiet time; they remind.
                if reminds and now - (a.last_reminder or a.first_seen) >= s.repeat_interval:
                    updated = replace(
                        a, last_reminder=now, last_notified=now, notified_count=a.count
                    )
                    self._set(fingerprint, updated)
                    due.append(self._notification("repeated", updated, a.count - a.notified_count))
                continue
            if quiet >= s.resolve_after:
                resolved = replace(a, state="resolved", resolved_at=now, notified_count=a.count)
                self._set(fingerprint, resolved)
                due.append(self._notification("resolved", resolved, a.count - a.notified_count))
                continue
            if silenced:
                continue  # counted; the next message after the silence carries what it hid
            since_notice = now - (a.last_notified or a.first_seen)
            since_reminder = now - (a.last_reminder or a.opened_at or a.first_seen)
            if (
                reminds
                and since_reminder >= s.repeat_interval
                and a.last_seen > (a.last_reminder or 0)
            ):
                updated = replace(a, last_notified=now, last_reminder=now, notified_count=a.count)
                self._set(fingerprint, updated)
                due.append(self._notification("repeated", updated, a.count - a.notified_count))
            elif a.count > a.notified_count and since_notice >= s.group_interval:
                updated = replace(a, last_notified=now, notified_count=a.count)
                self._set(fingerprint, updated)
                due.append(self._notification("updated", updated, a.count - a.notified_count))
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
        s = self.settings
        soonest = float("inf")
        for entry in self._entries.values():
            a = entry.alert
            if not (logs or self._own_business(a)):
                continue
            silence = self.silence_for(a, now) if a.state in ("pending", "open") else None
            if silence is not None:
                # Nothing to say until it ends, but a log alert may still resolve meanwhile.
                soonest = min(soonest, silence.ends)
                if a.source != "probe":
                    soonest = min(soonest, a.last_seen + s.resolve_after)
                continue
            if a.state == "pending":
                soonest = min(soonest, a.first_seen + s.group_wait)
            elif a.state == "open":
                if a.source != "probe":  # a probe alert resolves on probe successes
                    soonest = min(soonest, a.last_seen + s.resolve_after)
                if a.count > a.notified_count:
                    soonest = min(soonest, (a.last_notified or a.first_seen) + s.group_interval)
                last_reminder = a.last_reminder or a.first_seen
                # A reminder is only due for an unacknowledged alert with findings since the
                # last one (a probe alert: always); a past deadline otherwise would spin.
                if a.acked_at is None and (a.source == "probe" or a.last_seen > last_reminder):
                    soonest = min(soonest, last_reminder + s.repeat_interval)
            elif a.state == "backlog":
                soonest = min(soonest, a.last_seen + s.resolve_after)
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
            a = entry.alert
            if self._own_business(a) or a.state not in ("pending", "open"):
                continue
            done = replace(a, state="resolved", resolved_at=now, notified_count=a.count)
            self._set(fingerprint, done)
            if a.state == "open":
                merged.append(self._notification("merged", done, a.count - a.notified_count))
        return merged

    # --- silences and acknowledgements ------------------------------------------------------

    def silence_for(self, alert: Alert, now: float) -> Silence | None:
        """The first silence active at `now` that covers this alert, if any."""
        for silence in self.silences:
            if silence.active(now) and silence.matches(alert.fingerprint, alert.category):
                return silence
        return None

    def acknowledge(self, ack: Ack, now: float) -> Notification | None:
        """Record an acknowledgement of the current episode; the message that shows it (an
        update of an announced, unsilenced alert), or None."""
        entry = self._entries.get(ack.fingerprint)
        if entry is None:
            return None
        a = entry.alert
        if a.state == "resolved" or ack.at < a.first_seen or a.acked_at == ack.at:
            return None  # gone, an earlier episode's, or already applied
        acked = replace(a, acked_by=ack.by, acked_at=ack.at)
        if a.state != "open" or self.silence_for(a, now) is not None:
            self._set(ack.fingerprint, acked)
            return None
        acked = replace(acked, last_notified=now, notified_count=a.count)
        self._set(ack.fingerprint, acked)
        return self._notification("updated", acked, a.count - a.notified_count)

    def _set(self, fingerprint: str, alert: Alert) -> None:
        self._entries[fingerprint] = _Entry(alert)

    def _notification(self, kind: str, a: Alert, new: int) -> Notification:
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
            host=self.host,
            context=self.context(a.category) if self.context is not None else "",
            acked_by=a.acked_by,
            acked_at=iso(a.acked_at) if a.acked_at is not None else None,
        )
