"""The one-way dependency rule of DESIGN.md, checked on the imports themselves."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from oai400d.fleet import FleetStore
from oai400d.fleet.connection import StorePart
from oai400d.state import State
from oai400d.state.connection import TableGroup

PACKAGE = Path(__file__).parent.parent / "daemon" / "oai400d"

# Lower number = lower layer. A module may import its own layer or lower ones, never higher.
LAYERS = {
    "oai400d": 0,
    "oai400d.model": 0,
    "oai400d.errors": 0,
    "oai400d.levels": 0,  # the level a log record was written at
    "oai400d.timestamps": 0,  # every timestamp read or written
    "oai400d.masking": 0,  # every way a secret is hidden
    "oai400d.systemd": 0,  # sd_notify and the signals systemd sends
    # The command line's grammar: stdlib only, as the wheel's build imports it (setup.py).
    "oai400d.arguments": 0,
    "oai400d.shipped": 0,  # the example config and the systemd files the package carries
    "oai400d.config": 1,
    # The state DB, a package: its connection, one small class per group of tables, and State
    # composing them; its modules import each other.
    "oai400d.state": 1,
    # The shared alert book on PostgreSQL, a peer of the local state DB; a package too (the
    # connection, schema, book, leases, mutes, and FleetStore composing them).
    "oai400d.fleet": 1,
    "oai400d.unwrap": 2,  # container runtimes' and syslog's wrappers, undone before assembling
    "oai400d.assemble": 2,
    "oai400d.sameerror": 2,  # one failed request, one finding
    "oai400d.backlog": 2,  # the backlog window: which caught-up lines are history
    "oai400d.classify": 2,
    "oai400d.lifecycle": 2,  # when an alert opens, updates, reminds, resolves: pure rules
    # Facts about an error: from its text alone (pure), the order of fixes they make likely.
    "oai400d.facts": 2,
    # The daemon's facts stage: text, probe and fetch facts per notification (a stage).
    "oai400d.facts.checks": 4,
    # The scanner of `oai400d classify`, a package: the Scanner, one stream's events, a
    # wrapped file's streams, the split for two processes; its modules import each other.
    "oai400d.scan": 3,
    # The tailing stage, a package: the globs and watches (Sources), the files followed, their
    # opening, one Tail per file, the descriptors' limit and budget, the journal.
    "oai400d.sources": 3,
    "oai400d.alerts": 3,
    # The probes package (http, api, status_page, verdicts) is one group: its modules import
    # each other, as classify's do.
    "oai400d.probes": 3,
    # The notifiers, and the outbox with its delivery bookkeeping (notify.deliveries), which
    # the notifiers never see.
    "oai400d.notify": 3,
    "oai400d.metrics": 3,  # reads the state DB at scrape time; service wires it
    "oai400d.hold": 3,  # the status-only hold (a stage of the daemon)
    "oai400d.ingest": 4,  # files and journals into events (a stage of the daemon)
    # The daemon's side of the state DB: batches held through a full disk, a damaged DB replaced
    "oai400d.keeper": 4,
    "oai400d.probing": 4,  # the probes' schedule and what their results mean (a stage)
    "oai400d.mutes": 4,  # silences and acks from the state DB into the book (a stage)
    "oai400d.labels": 4,  # the metrics' `source` label of a path
    "oai400d.wiring": 4,  # building the notifier, the fleet store, Socket Mode from settings
    # This host's part in the fleet: runs the alert lifecycle on the store's counts, fills the
    # outbox; service wires it. A package: the thread and its rounds (FleetSync), the alerts it
    # owns (owner), where their Slack messages are (messages).
    "oai400d.fleetsync": 4,
    "oai400d.fleetlink": 5,  # the daemon's side of the fleet: the store's queue, the fallback
    "oai400d.service": 6,  # the composition root: wiring, the loop, reload, shutdown
    "oai400d.cli": 7,
}
# Each third-party library belongs to one module (its errors are translated there).
OWNERS = {
    "watchdog": "oai400d.sources",
    # Three translators, into three error trees: the probes' words, the notifiers'
    # DeliveryErrors, and the image URL check's facts (facts.fetch talks to a transport itself,
    # request by request, to pin the checked address and keep out cookies, proxies, redirects).
    "httpx": ("oai400d.probes.http", "oai400d.notify.posting", "oai400d.facts.fetch"),
    "slack_sdk": "oai400d.notify",
    "apscheduler": "oai400d.probing",
    "pydantic": "oai400d.config",
    "hyperscan": "oai400d.classify.prefilter",
    "prometheus_client": "oai400d.metrics",
    "psycopg": "oai400d.fleet.connection",
    "psycopg_pool": "oai400d.fleet.connection",
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
            owners = (owner,) if isinstance(owner, str) else owner or ()
            if owners and not any(module == o or module.startswith(o + ".") for o in owners):
                violations.append(f"{module} imports {imported} (owned by {owner})")
    assert violations == []


def test_every_module_has_its_layer() -> None:
    """A new module must say where it sits: an entry of its own (or its package's) in LAYERS,
    not the package root's by default."""
    missing = []
    for path in PACKAGE.rglob("*.py"):
        module = _module_name(path)
        group, _ = _layer_of(module)
        if group == "oai400d" and module != "oai400d":
            missing.append(module)
    assert missing == [], f"add to LAYERS (tests/test_layers.py): {sorted(missing)}"


@pytest.mark.parametrize(
    ("composed", "part", "parts"), [(State, TableGroup, 9), (FleetStore, StorePart, 4)]
)
def test_a_class_composed_of_parts_has_one_owner_for_each_name(
    composed: type, part: type, parts: int
) -> None:
    """State is its table groups on one connection, FleetStore its parts on one pool: a name
    defined by two parts (or by the composed class too) would silently answer with one part's
    method for the other's."""
    classes = [c for c in composed.__mro__ if issubclass(c, part) and c is not part]
    assert len(classes) == parts + 1
    owners: dict[str, list[str]] = {}
    for cls in classes:
        for name in vars(cls):
            if not name.startswith("__"):
                owners.setdefault(name, []).append(cls.__name__)
    assert {name: found for name, found in owners.items() if len(found) > 1} == {}


def test_no_test_module_imports_another() -> None:
    """Shared test helpers live in helper modules (support, samples, daemon_harness, fakes…):
    a test module that imports another runs its fixtures and couples two suites."""
    tests = Path(__file__).parent
    offenders = []
    for path in sorted(tests.glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                name = node.module.rsplit(".", 1)[-1]
                if name.startswith("test_"):
                    offenders.append(f"{path.name} imports {node.module}")
    assert offenders == []
