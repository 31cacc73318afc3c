"""A fake status.openai.com: the Statuspage-compatible summary.json and incident.io's proxy JSON.

    with FakeStatusPage() as status:
        status.set_components({"Chat Completions": "partial_outage"})
        status.add_incident("Elevated errors on Chat Completions", "major", ["Chat Completions"])
        httpx.get(status.summary_url).json()["status"]["indicator"]    # "major"
        httpx.get(status.incidentio_url).json()["summary"]["affected_components"]

Both documents are built from the same state: components (in groups, as OpenAI's page shows
them), their statuses, and unresolved incidents. Fault modes, until `normal()`: `serve_html()`,
`redirect()`, `changed_shape()`, `slow(delay)`, `fail(status)`, `drop()`; one-shot faults through
`faults` (`fail_next`, `slow_next`, `drop_next`, ...).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from ._http import FakeServer, FaultPlan, Incoming, Reply

STATUSES = (
    "operational",
    "degraded_performance",
    "partial_outage",
    "major_outage",
    "under_maintenance",
)
IMPACTS = ("none", "minor", "major", "critical")

# Components as they are grouped on OpenAI's page (names of the API group are what the daemon
# watches; ChatGPT, Sora, Codex are the ones it must never alert on). Ungrouped: group None.
DEFAULT_COMPONENTS: tuple[tuple[str | None, tuple[str, ...]], ...] = (
    (
        "APIs",
        (
            "Responses",
            "Chat Completions",
            "Realtime",
            "Assistants",
            "Batch",
            "Files",
            "Fine-tuning",
            "Embeddings",
            "Images",
            "Audio",
            "Moderations",
            "Vector stores",
        ),
    ),
    (
        "ChatGPT",
        (
            "Login",
            "Conversations",
            "Voice mode",
            "Image Generation",
            "File uploads",
            "Search",
            "Deep Research",
            "GPTs",
        ),
    ),
    ("Codex", ("Codex Web", "CLI", "VS Code extension")),
    (None, ("Sora", "FedRAMP")),
)

_SEVERITY = {
    "operational": 0,
    "under_maintenance": 0,
    "degraded_performance": 1,
    "partial_outage": 2,
    "major_outage": 3,
}
_INDICATOR_DESCRIPTION = {
    "none": "All Systems Operational",
    "minor": "Minor Service Outage",
    "major": "Partial System Outage",
    "critical": "Major Service Outage",
}
_IMPACT_TO_WORST = {
    "none": "degraded_performance",
    "minor": "degraded_performance",
    "major": "partial_outage",
    "critical": "major_outage",
}

PAGE_ID = "01JFAKEPAGE" + "0" * 14 + "1"
PUBLIC_URL = "https://status.openai.com"

HTML_PAGE = (
    '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>OpenAI Status</title>'
    '</head><body><div id="__next"><h1>OpenAI Status</h1><p>We\'re fully operational</p>'
    "</div><script>self.__next_f=self.__next_f||[]</script></body></html>"
)

Mode = Literal["normal", "html", "redirect", "changed_shape", "fail", "drop"]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + "000Z"


@dataclass(frozen=True)
class _Component:
    id: str
    name: str
    group: str | None
    status: str = "operational"
    position: int = 0


@dataclass
class _Incident:
    id: str
    name: str
    impact: str
    status: str
    url: str
    components: tuple[str, ...]
    message: str
    created_at: str = field(default_factory=_now)


class FakeStatusPage(FakeServer):
    """OpenAI's status page on 127.0.0.1.

    `statuspage_groups`: list group entries (`"group": true`, with `components`) and `group_id`
    on their children in summary.json, as Atlassian Statuspage does. `proxy_outage_word`: the
    word incident.io's JSON uses for a major outage ("full_outage" in incident.io's own API).
    """

    name = "status"

    def __init__(
        self,
        components: Iterable[tuple[str | None, Iterable[str]]] = DEFAULT_COMPONENTS,
        *,
        statuspage_groups: bool = True,
        proxy_outage_word: str = "full_outage",
    ) -> None:
        super().__init__()
        self.statuspage_groups = statuspage_groups
        self.proxy_outage_word = proxy_outage_word
        self.faults = FaultPlan()
        self._ids = itertools.count(1)
        self._components: dict[str, _Component] = {}
        self._groups: dict[str, str] = {}
        for group, names in components:
            for name in names:
                self.add_component(name, group)
        self._incidents: dict[str, _Incident] = {}
        self._indicator: tuple[str, str] | None = None
        self._mode: Mode = "normal"
        self._fail_status = 500
        self._delay = 0.0
        self._redirect_to: str | None = None
        self._redirect_status = 301

    # -- addresses -----------------------------------------------------------------------------

    @property
    def summary_url(self) -> str:
        """Statuspage-compatible `/api/v2/summary.json` (what `probes.status_url` takes)."""
        return f"{self.origin}/api/v2/summary.json"

    @property
    def status_json_url(self) -> str:
        return f"{self.origin}/api/v2/status.json"

    @property
    def incidentio_url(self) -> str:
        """incident.io's `/proxy/status.openai.com` (any `/proxy/<host>` answers the same)."""
        return f"{self.origin}/proxy/status.openai.com"

    @property
    def page_url(self) -> str:
        """The human page (`/`): always a 200 HTML page."""
        return f"{self.origin}/"

    @property
    def elsewhere_url(self) -> str:
        """Where `redirect()` points by default: a 200 HTML page, still on 127.0.0.1."""
        return f"{self.origin}/elsewhere/"

    # -- state ---------------------------------------------------------------------------------

    def _new_id(self, kind: str) -> str:
        return f"01JFAKE{kind[:4].upper().ljust(4, '0')}{next(self._ids):015d}"

    def add_component(
        self, name: str, group: str | None = None, status: str = "operational"
    ) -> None:
        """Add a component (in `group`, created if new; None: ungrouped)."""
        _check_status(status)
        with self._lock:
            if name in self._components:
                raise ValueError(f"component {name!r} exists")
            if group is not None and group not in self._groups:
                self._groups[group] = self._new_id("grp")
            self._components[name] = _Component(
                self._new_id("cmp"), name, group, status, len(self._components) + 1
            )
        self._touch()

    def set_components(self, statuses: Mapping[str, str]) -> None:
        """Set component statuses by name; the others keep theirs. Unknown names: KeyError.

        Statuses: operational, degraded_performance, partial_outage, major_outage,
        under_maintenance.
        """
        with self._lock:
            for name, status in statuses.items():
                _check_status(status)
                if name not in self._components:
                    raise KeyError(f"no component {name!r}; known: {', '.join(self._components)}")
                self._components[name] = replace(self._components[name], status=status)
        self._touch()

    def reset_components(self) -> None:
        """Every component operational again."""
        with self._lock:
            for name, component in self._components.items():
                self._components[name] = replace(component, status="operational")
        self._touch()

    def component_names(self, group: str | None = None) -> list[str]:
        with self._lock:
            return [c.name for c in self._components.values() if group in (None, c.group)]

    def add_incident(
        self,
        name: str,
        impact: str = "major",
        components: Iterable[str] | Mapping[str, str] = (),
        url: str | None = None,
        *,
        status: str = "investigating",
        message: str = "We are investigating this issue.",
    ) -> str:
        """An unresolved incident; returns its id. `components` names the affected ones; given
        as a mapping name -> status it also sets those components' statuses."""
        if impact not in IMPACTS:
            raise ValueError(f"impact must be one of {IMPACTS}")
        if isinstance(components, Mapping):
            self.set_components(components)
        names = tuple(components)
        with self._lock:
            unknown = [n for n in names if n not in self._components]
            if unknown:
                raise KeyError(f"no component(s) {unknown}")
            incident_id = self._new_id("inc")
            self._incidents[incident_id] = _Incident(
                id=incident_id,
                name=name,
                impact=impact,
                status=status,
                url=url or f"{PUBLIC_URL}/incidents/{incident_id}",
                components=names,
                message=message,
            )
        self._touch()
        return incident_id

    def resolve_incident(self, incident_id: str) -> None:
        """The incident is resolved: it leaves both documents (they list unresolved ones)."""
        with self._lock:
            del self._incidents[incident_id]
        self._touch()

    def clear_incidents(self) -> None:
        with self._lock:
            self._incidents.clear()
        self._touch()

    def set_indicator(self, indicator: str | None, description: str | None = None) -> None:
        """Force summary.json's `status` (None: derive it from components and incidents)."""
        if indicator is not None and indicator not in _INDICATOR_DESCRIPTION:
            raise ValueError(f"indicator must be one of {list(_INDICATOR_DESCRIPTION)}")
        with self._lock:
            self._indicator = (
                None
                if indicator is None
                else (indicator, description or _INDICATOR_DESCRIPTION[indicator])
            )

    # -- fault modes (until normal()) ----------------------------------------------------------

    def _set_mode(self, mode: Mode) -> None:
        with self._lock:
            self._mode = mode

    def serve_html(self) -> None:
        """JSON URLs answer 200 with an HTML page (as a captive portal or a moved page does)."""
        self._set_mode("html")

    def redirect(self, location: str | None = None, status: int = 301) -> None:
        """JSON URLs answer `status` with `Location` (default `elsewhere_url`, on 127.0.0.1)."""
        with self._lock:
            self._mode = "redirect"
            self._redirect_to = location
            self._redirect_status = status

    def changed_shape(self) -> None:
        """JSON URLs answer 200 with valid JSON of another shape."""
        self._set_mode("changed_shape")

    def fail(self, status: int = 500) -> None:
        """JSON URLs answer `status` with an HTML error page."""
        with self._lock:
            self._mode = "fail"
            self._fail_status = status

    def drop(self) -> None:
        """JSON URLs close the connection without answering."""
        self._set_mode("drop")

    def slow(self, delay: float) -> None:
        """Every JSON answer (whatever the mode) comes `delay` seconds late."""
        with self._lock:
            self._delay = delay

    def normal(self) -> None:
        """End every fault mode and slowness (one-shot `faults` stay queued)."""
        with self._lock:
            self._mode = "normal"
            self._delay = 0.0

    @property
    def mode(self) -> str:
        with self._lock:
            return self._mode

    # -- the documents -------------------------------------------------------------------------

    def indicator(self) -> tuple[str, str]:
        """summary.json's (indicator, description) for the current state."""
        with self._lock:
            if self._indicator is not None:
                return self._indicator
            worst = max((_SEVERITY[c.status] for c in self._components.values()), default=0)
            for incident in self._incidents.values():
                worst = max(worst, IMPACTS.index(incident.impact))
            indicator = IMPACTS[worst]
            return indicator, _INDICATOR_DESCRIPTION[indicator]

    def summary_json(self) -> dict[str, Any]:
        """The Statuspage-compatible /api/v2/summary.json document."""
        with self._lock:
            now = _now()
            components: list[dict[str, Any]] = []
            if self.statuspage_groups:
                for position, (group, group_id) in enumerate(self._groups.items(), start=1):
                    children = [c for c in self._components.values() if c.group == group]
                    worst = max(children, key=lambda c: _SEVERITY[c.status], default=None)
                    components.append(
                        {
                            **self._sp_component_base(group_id, group, now, position),
                            "status": worst.status if worst else "operational",
                            "group": True,
                            "group_id": None,
                            "components": [c.id for c in children],
                        }
                    )
            components += [self._sp_component(c, now) for c in self._components.values()]
            indicator, description = self.indicator()
            return {
                "page": {
                    "id": PAGE_ID,
                    "name": "OpenAI",
                    "url": PUBLIC_URL,
                    "time_zone": "Etc/UTC",
                    "updated_at": now,
                },
                "components": components,
                "incidents": [self._sp_incident(i) for i in self._incidents.values()],
                "scheduled_maintenances": [],
                "status": {"indicator": indicator, "description": description},
            }

    @staticmethod
    def _sp_component_base(cid: str, name: str, now: str, position: int) -> dict[str, Any]:
        return {
            "id": cid,
            "name": name,
            "created_at": "2025-01-01T00:00:00.000Z",
            "updated_at": now,
            "position": position,
            "description": None,
            "showcase": False,
            "start_date": None,
            "page_id": PAGE_ID,
            "only_show_if_degraded": False,
        }

    def _sp_component(self, c: _Component, now: str) -> dict[str, Any]:
        group_id = self._groups.get(c.group) if c.group and self.statuspage_groups else None
        return {
            **self._sp_component_base(c.id, c.name, now, c.position),
            "status": c.status,
            "group": False,
            "group_id": group_id,
        }

    def _sp_incident(self, i: _Incident) -> dict[str, Any]:
        affected = [self._components[n] for n in i.components if n in self._components]
        return {
            "id": i.id,
            "name": i.name,
            "status": i.status,
            "created_at": i.created_at,
            "updated_at": i.created_at,
            "monitoring_at": None,
            "resolved_at": None,
            "impact": i.impact,
            "shortlink": i.url,
            "started_at": i.created_at,
            "page_id": PAGE_ID,
            "incident_updates": [
                {
                    "id": f"{i.id}U",
                    "status": i.status,
                    "body": i.message,
                    "incident_id": i.id,
                    "created_at": i.created_at,
                    "updated_at": i.created_at,
                    "display_at": i.created_at,
                    "affected_components": [
                        {
                            "code": c.id,
                            "name": c.name,
                            "old_status": "operational",
                            "new_status": c.status,
                        }
                        for c in affected
                    ],
                    "deliver_notifications": True,
                    "custom_tweet": None,
                    "tweet_id": None,
                }
            ],
            "components": [self._sp_component(c, i.created_at) for c in affected],
        }

    def _proxy_status(self, status: str) -> str:
        return self.proxy_outage_word if status == "major_outage" else status

    def incidentio_json(self) -> dict[str, Any]:
        """incident.io's /proxy/<host> document: `{"summary": {...}}`."""
        with self._lock:
            since = "2021-01-01T00:00:00.000Z"
            items: list[dict[str, Any]] = []
            for group, group_id in self._groups.items():
                items.append(
                    {
                        "group": {
                            "id": group_id,
                            "name": group,
                            "description": "",
                            "hidden": False,
                            "display_aggregated_uptime": True,
                            "components": [
                                {
                                    "component_id": c.id,
                                    "name": c.name,
                                    "hidden": False,
                                    "display_uptime": True,
                                    "data_available_since": since,
                                }
                                for c in self._components.values()
                                if c.group == group
                            ],
                        }
                    }
                )
            items += [
                {
                    "component": {
                        "component_id": c.id,
                        "name": c.name,
                        "hidden": False,
                        "display_uptime": True,
                        "data_available_since": since,
                    }
                }
                for c in self._components.values()
                if c.group is None
            ]
            return {
                "summary": {
                    "id": PAGE_ID,
                    "name": "OpenAI",
                    "subpath": "",
                    "public_url": PUBLIC_URL,
                    "data_available_since": since,
                    "components": [
                        {"id": c.id, "name": c.name, "description": "", "status_page_id": PAGE_ID}
                        for c in self._components.values()
                    ],
                    "affected_components": [
                        {"component_id": c.id, "status": self._proxy_status(c.status)}
                        for c in self._components.values()
                        if c.status != "operational"
                    ],
                    "ongoing_incidents": [
                        self._proxy_incident(i) for i in self._incidents.values()
                    ],
                    "scheduled_maintenances": [],
                    "structure": {"items": items},
                }
            }

    def _proxy_incident(self, i: _Incident) -> dict[str, Any]:
        affected = [self._components[n] for n in i.components if n in self._components]
        worst = _IMPACT_TO_WORST[i.impact]
        impacts = [
            {
                "id": f"{i.id}{c.id[-4:]}",
                "component_id": c.id,
                "status": self._proxy_status(c.status if c.status != "operational" else worst),
                "start_at": i.created_at,
                "status_page_incident_id": i.id,
            }
            for c in affected
        ]
        return {
            "id": i.id,
            "name": i.name,
            "status": i.status,
            "url": i.url,
            "published_at": i.created_at,
            "current_worst_impact": self._proxy_status(worst),
            "affected_components": [
                {"component_id": x["component_id"], "status": x["status"]} for x in impacts
            ],
            "component_impacts": impacts,
            "updates": [
                {
                    "id": f"{i.id}U",
                    "published_at": i.created_at,
                    "to_status": i.status,
                    "message": {
                        "text_node": {
                            "type": "doc",
                            "content": [
                                {
                                    "type": "paragraph",
                                    "content": [{"type": "text", "text": i.message}],
                                }
                            ],
                        }
                    },
                }
            ],
        }

    # -- serving -------------------------------------------------------------------------------

    _JSON_ENDPOINTS = frozenset(
        {"summary.json", "status.json", "components.json", "incidents/unresolved.json", "proxy"}
    )

    def _route(self, req: Incoming) -> tuple[str, Any]:
        path = req.path
        if path.startswith("/api/v2/"):
            return path.removeprefix("/api/v2/"), None
        if path.startswith("/proxy/"):
            return "proxy", None
        if path.startswith("/elsewhere"):
            return "elsewhere", None
        if path == "/":
            return "page", None
        return "unknown", None

    def _faults_for(self, endpoint: str) -> FaultPlan | None:
        return self.faults if endpoint in self._JSON_ENDPOINTS else None

    def _answer(self, endpoint: str, req: Incoming, params: Any) -> Reply:
        headers = (
            ("Cache-Control", "public, max-age=0, must-revalidate"),
            ("Access-Control-Allow-Origin", "*"),
        )
        if endpoint in ("page", "elsewhere"):
            return Reply.text(200, HTML_PAGE, "text/html; charset=utf-8")
        if endpoint not in self._JSON_ENDPOINTS:
            return Reply.text(404, "<html><body><h1>404 Not Found</h1></body></html>", "text/html")
        reply = self._json_answer(endpoint, headers)
        return replace(reply, delay=self._delay) if self._delay > 0 else reply

    def _json_answer(self, endpoint: str, headers: tuple[tuple[str, str], ...]) -> Reply:
        mode = self._mode
        if mode == "drop":
            return Reply.dropped()
        if mode == "html":
            return Reply.text(200, HTML_PAGE, "text/html; charset=utf-8")
        if mode == "redirect":
            target = self._redirect_to or self.elsewhere_url
            return Reply.text(
                self._redirect_status,
                f'<html><body>Moved to <a href="{target}">{target}</a></body></html>',
                "text/html",
                headers=(("Location", target),),
            )
        if mode == "fail":
            status = self._fail_status
            return Reply.text(
                status,
                f"<html><head><title>{status}</title></head><body><h1>{status}</h1>"
                "<p>Something went wrong.</p></body></html>",
                "text/html",
            )
        if mode == "changed_shape":
            return Reply.json(
                200,
                {
                    "meta": {"version": 3, "generated": _now()},
                    "data": {"services": [{"slug": "chat-completions", "state": "up"}]},
                },
                headers,
            )
        if endpoint == "proxy":
            return Reply.json(200, self.incidentio_json(), headers)
        summary = self.summary_json()
        if endpoint == "summary.json":
            return Reply.json(200, summary, headers)
        if endpoint == "status.json":
            return Reply.json(200, {"page": summary["page"], "status": summary["status"]}, headers)
        if endpoint == "components.json":
            payload = {"page": summary["page"], "components": summary["components"]}
            return Reply.json(200, payload, headers)
        payload = {"page": summary["page"], "incidents": summary["incidents"]}
        return Reply.json(200, payload, headers)


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise ValueError(f"status {status!r} is not one of {', '.join(STATUSES)}")
