"""The probes' latest results: the `probes` table, one row per probe (written by probing)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from oai400d.state.connection import TableGroup


@dataclass(frozen=True, slots=True)
class ProbeRecord:
    """The latest result of one probe and its run of failures or successes."""

    name: str
    status: str
    summary: str
    latency_ms: int | None
    checked: float
    failures: int
    successes: int
    data: dict[str, Any]


class ProbeTable(TableGroup):
    """Each probe's latest result, by name."""

    def save_probe(self, record: ProbeRecord) -> None:
        with self._connection.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO probes VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.name,
                    record.status,
                    record.summary,
                    record.latency_ms,
                    record.checked,
                    record.failures,
                    record.successes,
                    json.dumps(record.data),
                ),
            )

    def probes(self) -> list[ProbeRecord]:
        """Every probe's latest result, by name."""
        rows = self._connection.execute(
            "SELECT name, status, summary, latency_ms, checked, failures, successes, data "
            "FROM probes ORDER BY name"
        ).fetchall()
        return [
            ProbeRecord(row[0], row[1], row[2], row[3], row[4], row[5], row[6], json.loads(row[7]))
            for row in rows
        ]
