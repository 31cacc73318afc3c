"""Facts from the daemon's own probes: the models the key sees (model errors), the key probe's
verdict (key errors), the status page (server errors and outages). Pure: the probes' latest
records come in (state.ProbeRecord, as the state DB keeps them), facts come out.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from oai400d.masking import redact
from oai400d.model import Fact
from oai400d.state import ProbeRecord
from oai400d.timestamps import iso

CLOSEST_SHOWN = 3
# difflib's ratio below which a name is no "close" name at all (gpt-4o vs whisper-1).
CLOSEST_CUTOFF = 0.6
SUMMARY_MAX = 200  # a probe's summary quoted in a fact


def probe_facts(
    category: str, model: str | None, probes: Mapping[str, ProbeRecord]
) -> tuple[Fact, ...]:
    """Every fact the probes' latest records (`probes`, by name) give about an alert of this
    category (and model, for a model error)."""
    if category == "request.model_not_found":
        return model_facts(model, probes.get("api_key"))
    if category.startswith("auth."):
        return key_facts(probes.get("api_key"))
    if category in ("server.error", "network"):
        return status_facts(probes.get("status_page"))
    return ()


def model_facts(model: str | None, key_probe: ProbeRecord | None) -> tuple[Fact, ...]:
    """Whether the model the error names is among those the probe's key sees (its GET /models
    list), and if not the closest names by edit distance."""
    names = _model_ids(key_probe)
    if not model or key_probe is None or names is None:
        return ()
    when = iso(key_probe.checked)
    shown = f"`{_short(model)}`"
    if model in names:
        return (
            Fact(
                "model_listed",
                f"{shown} is among the {len(names)} models the probe's key sees (at {when}): "
                "the failing requests use another key, organization or project.",
                "rules_out",
                prefer=("key", "organization", "project"),
                demote=("spelling", "typo", "name"),
            ),
        )
    closest = closest_names(model, names)
    text = f"{shown} is not among the {len(names)} models the probe's key sees (at {when})"
    if closest:
        text += "; the closest: " + ", ".join(f"`{name}`" for name in closest)
    return (Fact("model_closest", text + ".", "supports"),)


def closest_names(name: str, names: Sequence[str], shown: int = CLOSEST_SHOWN) -> list[str]:
    """The names most like `name` (difflib's ratio: an edit-distance measure), best first."""
    lowered = {candidate.lower(): candidate for candidate in names}
    found = difflib.get_close_matches(name.lower(), list(lowered), n=shown, cutoff=CLOSEST_CUTOFF)
    return [lowered[match] for match in found]


def key_facts(key_probe: ProbeRecord | None) -> tuple[Fact, ...]:
    """The key probe's latest verdict: accepted (the failing process uses another key) or
    refused (the key itself is bad)."""
    if key_probe is None or key_probe.status == "unknown":
        return ()
    details = _details(key_probe)
    key = details.get("key")
    which = f" ({_short(str(key))})" if isinstance(key, str) and key else ""
    when = iso(key_probe.checked)
    if key_probe.status == "ok":
        return (
            Fact(
                "key_probe",
                f"The key probe at {when}: the configured key{which} is accepted, so the "
                "failing process runs with another key.",
                "neutral",
                prefer=("environment", "another key", "old key", "rotat"),
            ),
        )
    return (
        Fact(
            "key_probe",
            f"The key probe at {when}: the configured key{which} is refused too "
            f"({_short(key_probe.summary, SUMMARY_MAX)}).",
            "supports",
            prefer=("revoked", "new key", "create", "replace"),
        ),
    )


def status_facts(page: ProbeRecord | None) -> tuple[Fact, ...]:
    """What OpenAI's status page said at its latest check (also in Notification.context)."""
    if page is None or page.status == "unknown":
        return ()
    when = iso(page.checked)
    summary = _short(page.summary, SUMMARY_MAX)
    if page.status == "ok":
        return (
            Fact(
                "status_page",
                f"OpenAI's status page at {when}: {summary}, so the errors are likely not "
                "an OpenAI outage.",
                "neutral",
            ),
        )
    return (Fact("status_page", f"OpenAI's status page at {when}: {summary}.", "supports"),)


def _details(record: ProbeRecord) -> dict[str, Any]:
    details = record.data.get("details") if isinstance(record.data, dict) else None
    return details if isinstance(details, dict) else {}


def _model_ids(record: ProbeRecord | None) -> list[str] | None:
    """The names the key probe's GET /models listed (probes/api.py keeps them), None when it
    kept none (it failed, or an older version wrote the record)."""
    if record is None or record.status != "ok":
        return None
    ids = _details(record).get("model_ids")
    if not isinstance(ids, list):
        return None
    return [name for name in ids if isinstance(name, str)]


def _short(text: str, limit: int = 100) -> str:
    """A text from elsewhere as a fact quotes it: redacted, on one line, clipped."""
    flat = " ".join(redact(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
