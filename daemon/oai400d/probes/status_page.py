"""The status_page probe: read OpenAI's status page JSON and judge the components API users need.

Both formats OpenAI's page has served are read (Statuspage's summary.json and incident.io's proxy
JSON), recognised by their content. Only API components count, never ChatGPT's, Sora's or Codex's.
CRITICAL only for a major (full) outage of one of them; a page that cannot be read is UNKNOWN,
never "OpenAI is down".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from oai400d.config import Settings
from oai400d.masking import public_url
from oai400d.model import ProbeResult
from oai400d.probes.http import Client, get, json_body
from oai400d.probes.verdicts import verdict_table

# -- which components matter to API users ------------------------------------------------------

_API_GROUPS = frozenset({"api", "apis", "openai api", "api platform"})
_API_NAMES = frozenset(
    {
        "api",
        "apis",
        "chat completions",
        "completions",
        "responses",
        "embeddings",
        "files",
        "batch",
        "fine-tuning",
        "fine tuning",
        "images",
        "audio",
        "realtime",
        "moderations",
        "assistants",
        "vector stores",
        "agents",
    }
)
# Groups of consumer products: their components never count, whatever they are called.
_CONSUMER_GROUPS = frozenset({"chatgpt", "sora", "codex", "labs", "playground", "fedramp"})

# Component status words of both formats, by severity: 0 fine, 1 degraded, 2 partial, 3 outage.
_SEVERITY = {
    "operational": 0,
    "under_maintenance": 0,
    "degraded_performance": 1,
    "partial_outage": 2,
    "major_outage": 3,
    "full_outage": 3,
}
_LABELS = {
    "degraded_performance": "degraded performance",
    "partial_outage": "partial outage",
    "major_outage": "major outage",
    "full_outage": "full outage",
}


# -- reading the page: two formats, one shape ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Component:
    """One status page component, with the name of its group (None: ungrouped)."""

    name: str
    status: str
    group: str | None


@dataclass(frozen=True, slots=True)
class _Incident:
    """One unresolved incident and the names of the components it affects."""

    name: str
    impact: str
    status: str
    url: str
    components: tuple[str, ...]


class _Shape(ValueError):
    """The status document is not of a shape this probe knows."""


def _str(value: Any, what: str) -> str:
    """value, when it is a string; else the document is of another shape."""
    if not isinstance(value, str):
        raise _Shape(f"{what} is not a string")
    return value


def _list(value: Any, what: str) -> list[Any]:
    """value, when it is a list; else the document is of another shape."""
    if not isinstance(value, list):
        raise _Shape(f"{what} is not a list")
    return value


def _parse_statuspage(doc: dict[str, Any]) -> tuple[list[_Component], list[_Incident]]:
    """Statuspage's summary.json: components (groups have `group: true`), incidents."""
    raw = [c for c in _list(doc["components"], "components") if isinstance(c, dict)]
    groups = {c.get("id"): _str(c.get("name"), "group name") for c in raw if c.get("group") is True}
    components = [
        _Component(
            _str(c.get("name"), "component name"),
            _str(c.get("status"), "component status"),
            groups.get(c.get("group_id")),
        )
        for c in raw
        if c.get("group") is not True
    ]
    page_url = doc.get("page", {}).get("url") if isinstance(doc.get("page"), dict) else None
    incidents = []
    for i in _list(doc.get("incidents") or [], "incidents"):
        if not isinstance(i, dict):
            continue
        link = i.get("shortlink") or (f"{page_url}/incidents/{i.get('id')}" if page_url else "")
        affected = tuple(
            str(c.get("name")) for c in i.get("components") or [] if isinstance(c, dict)
        )
        incidents.append(
            _Incident(
                str(i.get("name") or "(unnamed)"),
                str(i.get("impact") or "unknown"),
                str(i.get("status") or "unknown"),
                str(link),
                affected,
            )
        )
    return components, incidents


def _parse_incidentio(summary: dict[str, Any]) -> tuple[list[_Component], list[_Incident]]:
    """incident.io's proxy JSON: components, their groups (structure), affected_components."""
    names: dict[str, str] = {}
    for c in _list(summary["components"], "summary.components"):
        if isinstance(c, dict):
            names[_str(c.get("id"), "component id")] = _str(c.get("name"), "component name")
    group_of: dict[str, str] = {}
    structure = summary.get("structure")
    items = structure.get("items", []) if isinstance(structure, dict) else []
    for item in items if isinstance(items, list) else []:
        group = item.get("group") if isinstance(item, dict) else None
        if isinstance(group, dict):
            for member in group.get("components") or []:
                if isinstance(member, dict) and "component_id" in member:
                    group_of[str(member["component_id"])] = str(group.get("name") or "")
    status_of: dict[str, str] = {}
    for a in _list(summary.get("affected_components") or [], "summary.affected_components"):
        if isinstance(a, dict):
            status_of[str(a.get("component_id"))] = _str(a.get("status"), "affected status")
    components = [
        _Component(name, status_of.get(cid, "operational"), group_of.get(cid) or None)
        for cid, name in names.items()
    ]
    incidents = []
    for i in _list(summary.get("ongoing_incidents") or [], "summary.ongoing_incidents"):
        if not isinstance(i, dict):
            continue
        affected = tuple(
            names.get(str(a.get("component_id")), str(a.get("component_id")))
            for a in i.get("affected_components") or []
            if isinstance(a, dict)
        )
        incidents.append(
            _Incident(
                str(i.get("name") or "(unnamed)"),
                str(i.get("current_worst_impact") or "unknown"),
                str(i.get("status") or "unknown"),
                str(i.get("url") or ""),
                affected,
            )
        )
    return components, incidents


def _parse_status(doc: Any) -> tuple[str, list[_Component], list[_Incident]]:
    """Detect the format by content: (format name, components, incidents); else raise _Shape."""
    summary = doc.get("summary") if isinstance(doc, dict) else None
    try:
        components = doc.get("components") if isinstance(doc, dict) else None
        if isinstance(components, list) and ("page" in doc or "status" in doc):
            return "statuspage", *_parse_statuspage(doc)
        if isinstance(summary, dict) and isinstance(summary.get("components"), list):
            return "incident.io", *_parse_incidentio(summary)
    except (_Shape, AttributeError, TypeError) as exc:
        raise _Shape(f"JSON of an unexpected shape ({exc})") from None
    keys = ", ".join(sorted(doc)[:6]) if isinstance(doc, dict) else type(doc).__name__
    raise _Shape(f"JSON of an unknown shape ({keys})")


def _is_api_component(c: _Component) -> bool:
    """A component API users depend on: in an API group, or an API product name outside the
    consumer products' groups (ChatGPT's "File uploads" is not the API's "Files")."""
    group = (c.group or "").lower()
    if group in _API_GROUPS:
        return True
    return c.name.lower() in _API_NAMES and group not in _CONSUMER_GROUPS


def _watched(components: list[_Component], wanted: list[str]) -> tuple[list[_Component], list[str]]:
    """The components to judge, and the configured names not found on the page."""
    if not wanted:
        return [c for c in components if _is_api_component(c)], []
    chosen: list[_Component] = []
    not_found: list[str] = []
    for name in wanted:
        key = name.strip().lower()
        found = [c for c in components if key in (c.name.lower(), (c.group or "").lower())]
        if not found:
            not_found.append(name)
        chosen += [c for c in found if c not in chosen]
    return chosen, not_found


# -- the probe ----------------------------------------------------------------------------------


def probe_status_page(settings: Settings, client: Client) -> ProbeResult:
    """Read OpenAI's status page JSON and judge the API components (never ChatGPT, Sora, …)."""
    name = "status_page"
    url = settings.probes.status_url
    details: dict[str, Any] = {"url": public_url(url)}
    answer = get(client, url, {"Accept": "application/json"}, settings.probes.timeout)

    def unknown(summary: str) -> ProbeResult:
        fixes = verdict_table().fixes("status_page")
        return ProbeResult(name, "unknown", summary, answer.elapsed_ms, fixes, details, None)

    if answer.response is None:
        # The fixes fit the way it failed: "set probes.status_url to …" cannot help when the URL
        # already is that and the name does not resolve or the port is closed.
        failure = verdict_table().judge_failure(
            answer.kind or "request",
            answer.failure or "request failed",
            answer.url,
            "probes.status_url",
            answer.proxy,
        )
        details["failure"] = failure.row
        if answer.proxy:
            details["proxy"] = answer.proxy
        summary = f"status page not read: {failure.summary}"
        return ProbeResult(name, "unknown", summary, answer.elapsed_ms, failure.fixes, details)
    response = answer.response
    if 300 <= response.status_code < 400:
        location = response.headers.get("location")
        where = f" to {public_url(location)}" if location else ""
        return unknown(f"status page answered {response.status_code} (redirect{where})")
    if not response.is_success:
        return unknown(f"status page answered {response.status_code}")
    doc = json_body(response)
    if doc is None:
        content_type = (response.headers.get("content-type") or "?").split(";")[0]
        kind = "HTML" if "html" in content_type or response.text.lstrip()[:1] == "<" else "text"
        return unknown(f"status page answered {kind} ({content_type}), not JSON")
    try:
        source, components, incidents = _parse_status(doc)
    except _Shape as exc:
        return unknown(f"status page answered {exc}")
    details["format"] = source
    watched, not_found = _watched(components, list(settings.probes.status_components))
    if not_found:
        details["not_found"] = not_found
    if not watched:
        wanted = settings.probes.status_components
        return unknown(
            f"none of probes.status_components ({', '.join(wanted)}) is on the status page"
            if wanted
            else "no API components found on the status page; set probes.status_components"
        )
    watched_names = {c.name for c in watched}
    relevant = [i for i in incidents if not i.components or watched_names & set(i.components)]
    details["components"] = {c.name: c.status for c in watched}
    details["incidents"] = [
        {"name": i.name, "impact": i.impact, "status": i.status, "url": i.url} for i in relevant
    ]
    details["other_incidents"] = len(incidents) - len(relevant)
    # A status word neither format defines counts as degraded: something is off, we know not what.
    troubled = [c for c in watched if _SEVERITY.get(c.status, 1) > 0]
    maintenance = [c.name for c in watched if c.status == "under_maintenance"]
    if not troubled:
        summary = f"All {len(watched)} API components operational"
        if maintenance:
            summary = (
                f"{len(watched) - len(maintenance)}/{len(watched)} API components operational, "
                f"under maintenance: {', '.join(maintenance)}"
            )
        if relevant:
            summary += f"; {len(relevant)} incident(s) open: {relevant[0].name}"
        return ProbeResult(name, "ok", summary, answer.elapsed_ms, (), details)
    by_status: dict[str, list[str]] = {}
    for c in sorted(troubled, key=lambda c: -_SEVERITY.get(c.status, 1)):
        by_status.setdefault(c.status, []).append(c.name)
    parts = [f"{_LABELS.get(s, s.replace('_', ' '))}: {', '.join(n)}" for s, n in by_status.items()]
    summary = "; ".join(parts)
    summary = summary[0].upper() + summary[1:]
    worst = max(_SEVERITY.get(c.status, 1) for c in troubled)
    # partial_outage is WARNING: some requests fail and the logs say whether ours do; only a
    # major (full) outage of an API component is CRITICAL on the status page's word alone.
    status = "critical" if worst >= 3 else "warning"
    fixes = verdict_table().fixes("outage")
    return ProbeResult(name, status, summary, answer.elapsed_ms, fixes, details, "server.error")
