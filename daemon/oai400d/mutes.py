"""Silences and acknowledgements, written by the CLI and Slack into the state DB.

Other processes write them (`oai400d silence`, a Slack button through Socket Mode); the daemon
takes them up here: at start, what changed while it was stopped; then at every loop step, but
re-reading only when another connection committed (SQLite's PRAGMA data_version), so an idle
step costs one pragma. Every change is logged with who made it; an acknowledgement of a live
alert is shown as an update of its message.
"""

from __future__ import annotations

import logging

from oai400d.alerts import AlertBook, silence_added
from oai400d.model import Notification, Silence
from oai400d.state import State
from oai400d.timestamps import iso

log = logging.getLogger("oai400d")

MUTES_KEPT = 30 * 86400.0  # ended silences and old acknowledgements are forgotten after this


class MuteSync:
    """Keeps an alert book's silences and acknowledgements in step with the state DB."""

    def __init__(self, state: State, now: float) -> None:
        self.state = state
        state.prune_mutes(now - MUTES_KEPT)
        self._version = -1  # the first refresh takes up what changed while we were stopped
        self.silences: list[Silence] = state.silences(after=now)  # the book's, once given
        self._acks_seen: dict[str, float] = {}
        self._book: AlertBook | None = None

    def attach(self, book: AlertBook) -> None:
        """The book these mutes are for (built with `self.silences`); acknowledgements already
        shown on its alerts, or older than them, are not shown again."""
        self._book = book
        for ack in self.state.acks():
            alert = book.get(ack.fingerprint)
            if alert is None or alert.acked_at == ack.at or ack.at < alert.first_seen:
                self._acks_seen[ack.fingerprint] = ack.at
        if book.silences:
            log.info(
                "%d silence(s) active: %s",
                len(book.silences),
                "; ".join(f"#{x.id} {x.matcher} until {iso(x.ends)}" for x in book.silences),
            )

    def refresh(self, now: float) -> list[Notification]:
        """End the silences that ran out, take up what other processes changed; the messages
        that show new acknowledgements."""
        book = self._book
        assert book is not None, "attach() the book first"
        for ended in [x for x in book.silences if x.ends <= now]:
            book.silences.remove(ended)
            if ended.removed_by is None:
                log.info("silence #%d (%s) ended", ended.id, ended.matcher)
        version = self.state.data_version()
        if version == self._version:
            return []
        self._version = version
        before = {x.id: x for x in book.silences}
        current = self.state.silences(after=now)
        for x in current:
            if x.id not in before:
                log.info("%s", silence_added(x))
        for gone in before.keys() - {x.id for x in current}:
            lifted = self.state.silence(gone)
            if lifted is not None and lifted.removed_by is not None:
                log.info("silence #%d (%s) lifted by %s", gone, lifted.matcher, lifted.removed_by)
        book.silences = current
        shown: list[Notification] = []
        for ack in self.state.acks():
            if self._acks_seen.get(ack.fingerprint) == ack.at:
                continue
            self._acks_seen[ack.fingerprint] = ack.at
            log.info(
                "alert %s acknowledged by %s (%s)%s",
                ack.fingerprint,
                ack.by,
                ack.via,
                f": {ack.comment}" if ack.comment else "",
            )
            notification = book.acknowledge(ack, now)
            if notification is not None:
                shown.append(notification)
        return shown
