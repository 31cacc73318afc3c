"""The daemon's facts stage: what is checked about an alert, once per notification of its
episode (opened, updated, repeated), never per line.

- text facts (facts.text) from the alert's message and excerpt and the configured identity;
- probe facts (facts.probed) from the probes' latest records in the state DB;
- fetch facts (facts.fetch, only with `[diagnose] fetch_urls`): one guarded request for the
  image URL of a `request.image` alert, started in a worker thread when the alert is first
  seen (`begin`, during group_wait) so the main loop never waits on the network; its facts go
  into the first notification when ready, else into the next one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Protocol

from oai400d.config import Settings
from oai400d.facts.probed import probe_facts
from oai400d.facts.text import ErrorText, Identity, text_facts
from oai400d.facts.wording import urls_in
from oai400d.model import Alert, Fact
from oai400d.state import ProbeRecord

log = logging.getLogger("oai400d")

FETCHED_CATEGORY = "request.image"
MAX_EPISODES = 256  # fetch results kept (an episode's are dropped once it ends or past this)


class Fetcher(Protocol):
    """facts.fetch's guarded fetch: at most one request per URL per episode, its facts."""

    def facts(self, url: str, episode: str) -> tuple[Fact, ...]: ...



def image_url(alert: Alert) -> str | None:
    """The URL OpenAI could not download, as the alert's message (else excerpt) quotes it."""
    for text in (alert.message, alert.excerpt):
        for url in urls_in(text or ""):
            if url.startswith(("http://", "https://")):  # (a data URL has nothing to fetch)
                return url
    return None


def episode_of(alert: Alert) -> str:
    """One episode of an alert: its fingerprint and when this episode began."""
    return f"{alert.fingerprint}@{alert.first_seen:.3f}"


def make_fetcher(settings: Settings) -> Fetcher | None:
    """facts.fetch's guarded fetcher when `[diagnose] fetch_urls` is on, else None."""
    if not settings.diagnose.fetch_urls:
        return None
    from oai400d.facts.fetch import ImageFetcher  # (httpx: loaded only when fetching is on)

    return ImageFetcher(settings.diagnose)


class FactChecks:
    """Facts for an alert's notifications. `probes()`: each probe's latest record by name (the
    state DB's); `fetcher`: the guarded image fetch, None when `fetch_urls` is off."""

    def __init__(
        self,
        settings: Settings,
        probes: Callable[[], Iterable[ProbeRecord]],
        fetcher: Fetcher | None = None,
    ) -> None:
        self.identity = Identity.from_settings(settings)
        self._probes = probes
        # The probes' records as the main loop read them last (refresh_probes): the fleet's
        # thread asks for facts too, and the state DB's connection belongs to the main loop.
        self._latest_probes: dict[str, ProbeRecord] = {}
        self.refresh_probes()
        self._fetcher = fetcher
        self._lock = threading.Lock()  # the worker threads write _fetched, the loop reads it
        self._fetched: dict[str, tuple[Fact, ...]] = {}
        self._started: set[str] = set()

    def reconfigure(self, settings: Settings, fetcher: Fetcher | None) -> None:
        self.identity = Identity.from_settings(settings)
        self._fetcher = fetcher

    def begin(self, alert: Alert) -> None:
        """An alert was seen: for an image download error, start its episode's fetch (once) in
        a worker thread. Cheap for every other alert (a category test)."""
        if self._fetcher is None or alert.category != FETCHED_CATEGORY or alert.source != "logs":
            return
        episode = episode_of(alert)
        url = image_url(alert)
        if url is None or episode in self._started:
            return
        if len(self._started) >= MAX_EPISODES:
            self._started.clear()
            with self._lock:
                self._fetched.clear()
        self._started.add(episode)
        fetcher = self._fetcher
        threading.Thread(
            target=self._fetch, args=(fetcher, url, episode), name="oai400d-fetch", daemon=True
        ).start()

    def _fetch(self, fetcher: Fetcher, url: str, episode: str) -> None:
        try:
            found = fetcher.facts(url, episode)
        except Exception:  # a bug in the fetch must cost its facts only, never the daemon
            log.exception("the image fetch for an alert failed unexpectedly")
            found = ()
        with self._lock:
            self._fetched[episode] = tuple(found)

    def facts(self, alert: Alert) -> tuple[Fact, ...]:
        """Every fact about the alert now, in reading order: its text's, the probes', the fetch's
        (when done). A probe's own alert has none: its summary says it already."""
        if alert.source != "logs":
            return ()
        error = ErrorText.of(alert, alert.last_seen)
        found: list[Fact] = []
        try:
            found.extend(text_facts(error, self.identity))
            found.extend(probe_facts(alert.category, alert.model, self._latest()))
        except Exception:  # a bug in a check costs its facts, never the alert's message
            log.exception("checking the facts of alert %s failed", alert.fingerprint)
        with self._lock:
            found.extend(self._fetched.get(episode_of(alert), ()))
        return tuple(dict.fromkeys(found))  # (the same sentence twice says nothing more)

    def refresh_probes(self) -> None:
        """Read the probes' latest records (the main loop's thread: after new probe results)."""
        try:
            latest = {record.name: record for record in self._probes()}
        except Exception:  # the state DB's faults are the loop's business, not the facts'
            log.debug("probe records unavailable for facts", exc_info=True)
            return
        self._latest_probes = latest  # (one assignment: a reader on another thread sees either)

    def _latest(self) -> dict[str, ProbeRecord]:
        return self._latest_probes
