"""The one-way dependency rule of DESIGN.md, checked on the imports themselves."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "daemon" / "oai400d"

# Lower number = lower layer. A module may import its own layer or lower ones, never higher.
LAYERS = {
    "oai400d": 0,
    "oai400d.model": 0,
    "oai400d.errors": 0,
    "oai400d.levels": 0,  # the level a log record was written at
    "oai400d.config": 1,
    "oai400d.state": 1,
    "oai400d.fleet": 1,  # the shared alert book on PostgreSQL, a peer of the local state DB
    "oai400d.unwrap": 2,  # container runtimes' and syslog's wrappers, undone before assembling
    "oai400d.assemble": 2,
    "oai400d.sameerror": 2,  # one failed request, one finding
    "oai400d.classify": 2,
    "oai400d.scan": 3,
    "oai400d.sources": 3,
    "oai400d.alerts": 3,
    "oai400d.probes": 3,
    "oai400d.notify": 3,
    "oai400d.metrics": 3,  # reads the state DB at scrape time; service wires it
    # This host's part in the fleet: runs the alert lifecycle on the store's counts, fills the
    # outbox; service wires it.
    "oai400d.fleetsync": 4,
    "oai400d.service": 5,
    "oai400d.cli": 6,
}
# Each third-party library belongs to one module (its errors are translated there).
OWNERS = {
    "watchdog": "oai400d.sources",
    "httpx": "oai400d.probes",
    "slack_sdk": "oai400d.notify",
    "apscheduler": "oai400d.service",
    "pydantic": "oai400d.config",
    "hyperscan": "oai400d.classify.prefilter",
    "prometheus_client": "oai400d.metrics",
    "psycopg": "oai400d.fleet",
    "psycopg_pool": "oai400d.fleet",
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer_of(module: str) -> tuple[str, int]:
    best = max(
        (name for name in LAYERS if module == name or module.startswith(name + ".")), key=len
    )
    return best, LAYERS[best]


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_no_module_imports_a_higher_layer() -> None:
    """`classify` knows nothing of files or Slack; only `cli` sits on top."""
    violations = []
    for path in PACKAGE.rglob("*.py"):
        module = _module_name(path)
        own_group, own_layer = _layer_of(module)
        for imported in _imports(path):
            if not imported.startswith("oai400d"):
                continue
            group, layer = _layer_of(imported)
            if layer > own_layer or (layer == own_layer and group != own_group and own_layer > 0):
                violations.append(f"{module} imports {imported}")
    assert violations == []


def test_each_library_is_imported_by_its_owner_only() -> None:
    """A library's errors are translated into ours in one place."""
    violations = []
    for path in PACKAGE.rglob("*.py"):
        module = _module_name(path)
        for imported in _imports(path):
            root = imported.split(".")[0]
            owner = OWNERS.get(root)
            if owner and not (module == owner or module.startswith(owner + ".")):
                violations.append(f"{module} imports {imported} (owned by {owner})")
    assert violations == []
