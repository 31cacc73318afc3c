"""Health probes: is the API key accepted, do the configured models exist, is the OpenAI API up.

Statuses follow the Nagios plugin convention (exit codes 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN):
CRITICAL when OpenAI definitely refuses us (key, organization, region, quota, missing model,
major outage), WARNING for what may pass or only partly hurts (rate limit, 5xx, network, a
restricted key that cannot list models, degraded or partial outage), UNKNOWN when the probe could
not tell (no key configured, status page unreadable, an answer of a shape we do not know).

The package: `http` (the client and one GET whose failures are words), `api` (the api_key and
models probes), `status_page` (the status_page probe), `verdicts` with `verdicts.toml` (what an
error answer means and what to do about it, as data). This module runs them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

from oai400d.config import Settings
from oai400d.masking import scrub
from oai400d.model import ProbeResult
from oai400d.probes.api import AZURE_API_VERSION, probe_api_key, probe_models, provider_of
from oai400d.probes.http import USER_AGENT, Client, Transport, make_client
from oai400d.probes.status_page import probe_status_page

__all__ = [
    "AZURE_API_VERSION",
    "EXIT_CODES",
    "PROBES",
    "USER_AGENT",
    "Probe",
    "make_client",
    "overall",
    "probe_api_key",
    "probe_models",
    "probe_status_page",
    "provider_of",
    "run_probes",
]

# Overall status: a definite problem outranks "could not tell", so one probe's UNKNOWN never hides
# another's WARNING (the order Nagios aggregators use: CRITICAL > WARNING > UNKNOWN > OK).
_RANK = {"ok": 0, "unknown": 1, "warning": 2, "critical": 3}
EXIT_CODES = {"ok": 0, "warning": 1, "critical": 2, "unknown": 3}

Probe = Callable[[Settings, Client], ProbeResult]

# Keyed by model.PROBE_NAMES (the CLI offers those names without importing this module).
PROBES: dict[str, Probe] = {
    "api_key": probe_api_key,
    "models": probe_models,
    "status_page": probe_status_page,
}


def run_probes(
    settings: Settings,
    names: Sequence[str] | None = None,
    transport: Transport | None = None,
) -> list[ProbeResult]:
    """Run the named probes (default: all, in PROBES order) with one client; one result each."""
    chosen = list(dict.fromkeys(names)) if names is not None else list(PROBES)
    unknown = [n for n in chosen if n not in PROBES]
    if unknown:
        raise ValueError(f"unknown probe(s) {', '.join(unknown)}; known: {', '.join(PROBES)}")
    results: list[ProbeResult] = []
    with make_client(settings, transport) as client:
        for name in chosen:
            started = time.monotonic()
            try:
                results.append(PROBES[name](settings, client))
            except Exception as exc:  # a bug in a probe must not cost the other probes' results
                key = settings.openai.api_key
                words = scrub(str(exc), key.get_secret_value() if key else None)[:200]
                results.append(
                    ProbeResult(
                        name,
                        "unknown",
                        f"probe failed: {type(exc).__name__}: {words}",
                        round((time.monotonic() - started) * 1000),
                    )
                )
    return results


def overall(results: Iterable[ProbeResult]) -> str:
    """The worst status, CRITICAL > WARNING > UNKNOWN > OK; "unknown" when nothing ran."""
    statuses = [r.status for r in results]
    if not statuses:
        return "unknown"
    return max(statuses, key=lambda s: _RANK.get(s, _RANK["unknown"]))
