"""The backlog window: what was written while the daemon was stopped.

Lines read while catching up on a file or journal were written before the daemon started. Those
older than the window (alerts.backlog_window, or resolve_after) are history: they are counted
into one backlog summary instead of opening alerts of their own, which would announce as new a
problem that may be long over. A line's time is the journal entry's own, else the timestamp the
application wrote at the start of the line, else (unknown) the time of the last stop.
"""

from __future__ import annotations

from collections.abc import Callable

from oai400d.config import AlertsSettings
from oai400d.model import Event
from oai400d.timestamps import line_time


class BacklogWindow:
    """Tells old caught-up events from recent ones, and when the one summary is due."""

    def __init__(
        self,
        settings: AlertsSettings,
        last_stop: float | None,
        entry_time: Callable[[Event], float | None],
    ) -> None:
        self.settings = settings
        self.last_stop = last_stop
        self._entry_time = entry_time
        self._summary_due = True

    def is_old(self, event: Event, caught_up: bool, now: float) -> bool:
        """A caught-up event written longer ago than the window goes into the backlog summary."""
        if not caught_up:
            return False
        window = self.settings.backlog_window or self.settings.resolve_after
        written = self._entry_time(event)  # a journal entry has its time of its own
        if written is None:
            written = line_time(event.text)
        if written is None:
            written = self.last_stop  # unknown: it was written at some point after the last stop
        return written is not None and now - written > window

    def summary_due(self, catching_up: bool, caught_up_pending: bool) -> bool:
        """True once: when catching up is over and every caught-up line has been classified."""
        if self._summary_due and not catching_up and not caught_up_pending:
            self._summary_due = False
            return True
        return False
