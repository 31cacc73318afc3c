"""Shared helpers: the corpus table, and running the installed `oai400d` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from oai400d.ingest import Ingest, Ingested
    from oai400d.model import FileState, JournalPosition

DATA = Path(__file__).parent / "data"


@dataclass(frozen=True)
class Expected:
    category: str
    code: str | None
    lines: tuple[int, int]


@dataclass(frozen=True)
class Case:
    group: str
    file: Path
    format: str
    findings: tuple[Expected, ...] = field(default_factory=tuple)
    known_gap: str = ""  # why today's classifier gets this real case wrong (the test xfails)

    @property
    def id(self) -> str:
        return f"{self.group}/{self.file.name}"


def load_corpus() -> list[Case]:
    """Every case of tests/data/*/expected.toml."""
    cases = []
    for table in sorted(DATA.glob("*/expected.toml")):
        document = tomllib.loads(table.read_text(encoding="utf-8"))
        for raw in document.get("case", []):
            findings = tuple(
                Expected(f["category"], f.get("code"), (f["lines"][0], f["lines"][1]))
                for f in raw.get("findings", [])
            )
            cases.append(
                Case(
                    table.parent.name,
                    table.parent / raw["file"],
                    raw["format"],
                    findings,
                    raw.get("known_gap", ""),
                )
            )
    return cases


def oai400d(
    *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[bytes]:
    """Run the real command in a subprocess, as a user would."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SLACK_"))}
    full_env.pop("OAI400D_CONFIG", None)
    full_env.pop("OAI400D_FLEET_DSN", None)
    full_env.pop("CREDENTIALS_DIRECTORY", None)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "oai400d.cli", *args],
        input=stdin,
        capture_output=True,
        env=full_env,
        timeout=timeout,
        check=False,
    )


def classify_by_path(paths: Sequence[str], *options: str) -> dict[str, list[dict[str, Any]]]:
    """One `oai400d classify --json [options] PATH…` run; its findings grouped by path."""
    result = oai400d("classify", "--json", *options, *paths)
    assert result.returncode == 0, result.stderr.decode()
    grouped: dict[str, list[dict[str, Any]]] = {}
    for line in result.stdout.decode().splitlines():
        finding = json.loads(line)
        grouped.setdefault(finding["path"], []).append(finding)
    return grouped


# --- ingest tests: a first start, and reading until a condition holds ---------------------------


class NothingSaved:
    """A first start: no saved file positions, no journal cursors."""

    def files(self) -> list[FileState]:
        return []

    def journal_positions(self) -> list[tuple[JournalPosition, float]]:
        return []


def read_until(
    ingest: Ingest, now: float, done: Callable[[list[Ingested]], bool], deadline: float = 10.0
) -> list[Ingested]:
    """Read (the tailing notices writes on its own) until `done` holds, or fail at the deadline."""
    got: list[Ingested] = []
    end = time.monotonic() + deadline
    while not done(got):
        assert time.monotonic() < end, f"not done in {deadline} s: {got}"
        got.extend(ingest.read(now))
        if not done(got):
            ingest.wait(0.05)
    return got
