"""The probes on their schedule, and what their results mean for alerts.

`ProbeSchedule` runs the probes on their intervals (APScheduler 3) in the scheduler's thread and
hands each result to the main loop through a queue, so the alert book and the state DB are only
ever touched by the main loop; it also keeps the latest result of each probe, which alerts quote
(`context`: the status page's incidents under a server or network alert, whether the configured
key passes its probe under an auth alert). `ProbeIntake` is the main loop's side: it counts each
probe's streak of failures and successes, records every result in the state DB, and says which
probe just crossed failure_threshold (an alert) or success_threshold (its recovery).
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from oai400d.config import Settings
from oai400d.metrics import PROBE_SUCCESS_META
from oai400d.model import ProbeResult
from oai400d.state import ProbeRecord, State

if TYPE_CHECKING:  # APScheduler and the probes (httpx): ~8 MB, imported only with probes.enabled
    from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger("oai400d")


class ProbeSchedule:
    """The probes on their intervals; results go to `results`, read by the main loop."""

    def __init__(self, settings: Settings, wake: Callable[[], None]) -> None:
        self.settings = settings
        self.results: queue.Queue[ProbeResult] = queue.Queue()
        self.latest: dict[str, ProbeResult] = {}
        self._wake = wake
        self._scheduler: BackgroundScheduler | None = None

    def start(self) -> None:
        p = self.settings.probes
        if not p.enabled:
            return
        from apscheduler.schedulers.background import BackgroundScheduler

        scheduler = BackgroundScheduler(
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
            timezone="UTC",
        )
        first = datetime.now().astimezone()
        for names, interval in (
            (["api_key", "models"], p.api_key_interval),
            (["status_page"], p.status_interval),
        ):
            scheduler.add_job(
                self._run,
                "interval",
                args=[names],
                seconds=interval,
                jitter=min(30.0, interval / 10),
                next_run_time=first,
                id="+".join(names),
            )
        scheduler.start()
        self._scheduler = scheduler

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None

    def _run(self, names: list[str]) -> None:
        from oai400d.probes import run_probes

        try:
            for result in run_probes(self.settings, names):
                self.results.put(result)
        except Exception:  # a bug in a probe must not stop the schedule
            log.exception("probe %s failed unexpectedly", "+".join(names))
        self._wake()

    def context(self, category: str) -> str:
        """What the probes said, for an alert of this category (correlation)."""
        if category in ("server.error", "network"):
            page = self.latest.get("status_page")
            if page is None:
                return ""
            incidents = page.details.get("incidents") or []
            links = "; ".join(
                f"{i.get('name')} {i.get('url') or i.get('shortlink') or ''}".strip()
                for i in incidents[:3]
                if isinstance(i, dict)
            )
            return f"OpenAI status page: {page.summary}" + (f" ({links})" if links else "")
        if category.startswith("auth."):
            key = self.latest.get("api_key")
            if key is None or key.status == "unknown":
                return ""
            if key.status == "ok":
                return (
                    "The configured key passes its probe: the application is probably using "
                    "another key (check the environment of the failing process)."
                )
            return f"The configured key fails its probe too: {key.summary}"
        return ""


@dataclass(frozen=True, slots=True)
class ProbeTurn:
    """A probe result and what it means: `failing` (its failures reached failure_threshold:
    alert) or `recovered` (its successes reached success_threshold: resolve its alert)."""

    result: ProbeResult
    failing: bool
    recovered: bool


class ProbeIntake:
    """The main loop's side of the probes: streaks, the state DB, threshold crossings."""

    def __init__(self, state: State, schedule: ProbeSchedule) -> None:
        self.state = state
        self.schedule = schedule
        self._streaks = {p.name: (p.failures, p.successes) for p in state.probes()}

    def take(self, now: float) -> list[ProbeTurn]:
        """Every result the probes reported since the last call, in order."""
        turns: list[ProbeTurn] = []
        p = self.schedule.settings.probes
        while True:
            try:
                result = self.schedule.results.get_nowait()
            except queue.Empty:
                return turns
            self.schedule.latest[result.name] = result
            failures, successes = self._streaks.get(result.name, (0, 0))
            if result.status == "ok":
                failures, successes = 0, successes + 1
            elif result.status in ("warning", "critical"):
                failures, successes = failures + 1, 0
            self._streaks[result.name] = (failures, successes)
            self.state.save_probe(
                ProbeRecord(
                    result.name,
                    result.status,
                    result.summary,
                    result.latency_ms,
                    now,
                    failures,
                    successes,
                    result.to_json(),
                )
            )
            if result.status == "ok":  # for oai400d_probe_last_success_timestamp_seconds
                self.state.set_meta(PROBE_SUCCESS_META + result.name, repr(now))
            failing = failures >= p.failure_threshold
            recovered = not failing and successes >= p.success_threshold
            turns.append(ProbeTurn(result, failing, recovered))
