"""The `logs.paths` globs: listing them, the directories to watch, and matching one path."""

from __future__ import annotations

import fnmatch
import glob
import os
from collections.abc import Iterable, Sequence

# Compressed rotations (app.log.2.gz) are finished files, not logs to follow: a glob such as
# /var/log/app/* would otherwise feed their compressed bytes to the classifier as text.
COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".zip")


def _has_magic(part: str) -> bool:
    return any(char in part for char in "*?[")


def normalize(pattern: str) -> str:
    """An absolute, normalised pattern, so that watchdog's paths and glob's paths agree."""
    return os.path.abspath(os.path.expanduser(pattern))


def watch_root(pattern: str) -> tuple[str, bool]:
    """The directory to watch for `pattern`, and whether files below its subdirectories count."""
    parts = pattern.split(os.sep)
    for index, part in enumerate(parts):
        if _has_magic(part):
            root = os.sep.join(parts[:index]) or os.sep
            return root, index < len(parts) - 1 or "**" in parts
    return os.path.dirname(pattern) or os.sep, False


def watch_roots(patterns: Iterable[str]) -> list[tuple[str, bool]]:
    """One (directory, recursive) per directory to watch; nothing watched twice."""
    roots: dict[str, bool] = {}
    for pattern in patterns:
        root, recursive = watch_root(pattern)
        roots[root] = roots.get(root, False) or recursive
    recursive_roots = [root for root, recursive in roots.items() if recursive]
    return [
        (root, recursive)
        for root, recursive in sorted(roots.items())
        if not any(root.startswith(other + os.sep) for other in recursive_roots if other != root)
    ]


def expand(patterns: Iterable[str], exclude: Sequence[str] = ()) -> list[str]:
    """Every path matching some pattern now and no `exclude` pattern, sorted, each once."""
    found: set[str] = set()
    for pattern in patterns:
        found.update(p for p in glob.glob(pattern, recursive=True) if not p.endswith(COMPRESSED))
    return sorted(p for p in found if not excluded(exclude, p))


def excluded(exclude: Sequence[str], path: str) -> bool:
    """Whether an `exclude` pattern (`logs.exclude`, normalised) matches `path` or a directory
    above it: "/var/log/pods/oai400d_*" leaves out everything below such a directory."""
    parts = path.split(os.sep)
    return any(
        _match(pattern.split(os.sep), parts[:length])
        for pattern in exclude
        for length in range(2, len(parts) + 1)
    )


def matches(pattern: str, path: str) -> bool:
    """Whether expand([pattern]) would list `path` (both absolute)."""
    if path.endswith(COMPRESSED):
        return False
    return _match(pattern.split(os.sep), path.split(os.sep))


def _match(pattern: list[str], path: list[str]) -> bool:
    if not pattern:
        return not path
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        # Zero or more components; like glob, `**` does not descend into hidden directories.
        for skip in range(len(path) + 1):
            if _match(rest, path[skip:]):
                return True
            if skip < len(path) and path[skip].startswith("."):
                return False
        return False
    if not path:
        return False
    name = path[0]
    if not _has_magic(head):
        return name == head and _match(rest, path[1:])
    # glob's wildcards skip hidden names unless the pattern itself starts with a dot.
    if name.startswith(".") and not head.startswith("."):
        return False
    return fnmatch.fnmatchcase(name, head) and _match(rest, path[1:])


def choose(table: Sequence[tuple[str, str]], default: str, path: str) -> str:
    """The value of the first (normalised glob, value) whose glob matches `path`, else default."""
    for pattern, value in table:
        if matches(pattern, path):
            return value
    return default


def source_of(patterns: Sequence[str], path: str) -> str:
    """The `logs.paths` entry a followed file belongs to (a metrics label with few values): the
    glob it matches, else the glob watching its directory (a rotated name such as app.log.1),
    else "other"."""
    pairs = [(raw, normalize(raw)) for raw in patterns]
    for raw, pattern in pairs:
        if matches(pattern, path):
            return raw
    directory = os.path.dirname(path)
    for raw, pattern in pairs:
        root, recursive = watch_root(pattern)
        if directory == root or (recursive and directory.startswith(root.rstrip(os.sep) + os.sep)):
            return raw
    return "other"
