"""The console notifier: each notification to stdout, as readable text or one JSON line."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TextIO

from oai400d.masking import redact, redact_values
from oai400d.model import Notification
from oai400d.notify.base import Attempt, Delivered

_MARK = {
    "opened": "OPENED",
    "updated": "UPDATE",
    "repeated": "STILL ",
    "resolved": "RESOLVED",
    "backlog": "BACKLOG",
    "merged": "MERGED",
}


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def _on(n: Notification) -> str:
    """'on web-1', or for a fleet 'on 5 hosts (web-1, web-2, …)'."""
    if n.host_count and n.hosts:
        more = f", +{n.host_count - len(n.hosts)} more" if n.host_count > len(n.hosts) else ""
        return f"on {n.host_count} host(s) ({', '.join(n.hosts)}{more})"
    return f"on {n.host}" if n.host else ""


def render_text(n: Notification) -> str:
    """A notification as a short block a person reads at a glance."""
    lines = [f"[{_MARK.get(n.kind, n.kind.upper())}] {n.severity.upper()} {n.title}"]
    where = ", ".join(n.files) if n.files else "-"
    if n.kind == "resolved":
        lines.append(
            f"  resolved after {_duration(n.duration_s or 0)}: {n.count} error(s) from "
            f"{n.first_seen} to {n.last_seen} in {where}"
        )
    else:
        new = f" ({n.new} new)" if n.kind in ("updated", "repeated") else ""
        lines.append(f"  {n.count} error(s){new} from {n.first_seen} to {n.last_seen} in {where}")
    detail = " ".join(
        part
        for part in (
            n.category,
            f"status {n.status}" if n.status else "",
            f"code {n.error_code}" if n.error_code else "",
            f"model {n.model}" if n.model else "",
            f"request {n.request_id}" if n.request_id else "",
            _on(n),
        )
        if part
    )
    lines.append(f"  cause: {detail}")
    if n.message:
        lines.append(f"  error: {n.message[:300]}")
    for item in n.items:
        lines.append(
            f"  - {item['count']} × {item['title']} ({item['category']})"
            f" in {', '.join(item['files'])}"
        )
    if n.note:
        lines.append(f"  note: {n.note}")
    if n.context:
        lines.append(f"  context: {n.context}")
    for fact in n.facts:  # what was checked about this alert, and what it showed
        lines.append(f"  checked: {fact}")
    if n.acked_by:
        lines.append(f"  acknowledged by {n.acked_by} at {n.acked_at}")
    if n.kind not in ("resolved", "merged"):
        for fix in n.fixes[:3]:
            lines.append(f"  fix: {fix}")
        for doc in n.docs[:2]:
            lines.append(f"  docs: {doc}")
    lines.append(f"  id: {n.fingerprint}")
    return "\n".join(lines) + "\n"


class ConsoleNotifier:
    """Writes to stdout (the one other writer to stdout besides the CLI)."""

    name = "console"
    digest_threshold = 0
    min_interval = 0.0
    edits_messages = False
    resend_interval = 0.0

    def __init__(self, fmt: str = "text", stream: TextIO | None = None) -> None:
        self.format = fmt
        self.stream = stream if stream is not None else sys.stdout

    def send_digest(self, notifications: Sequence[Notification], attempt: Attempt) -> Delivered:
        for notification in notifications:
            self.send(notification, attempt)
        return Delivered()

    def send(self, notification: Notification, attempt: Attempt) -> Delivered:
        # Masked here too, not only where findings are made: a notification also carries what
        # the classifier does not mask (model, request id, file names, probes' context).
        if self.format == "json":
            text = json.dumps(redact_values(notification.to_json()), ensure_ascii=False) + "\n"
        else:
            text = redact(render_text(notification))
        self.stream.write(text)
        self.stream.flush()
        return Delivered()

    def describe(self) -> str:
        return f"the console (stdout, {self.format})"
