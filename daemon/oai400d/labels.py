"""The `source` label of metrics: which logs.paths glob (or journal) a line or finding came from."""

from __future__ import annotations

from collections.abc import Callable

from oai400d.config import Settings
from oai400d.sources.globs import source_of
from oai400d.sources.journal import where

MAX_CACHED = 10_000  # names of rotated files come and go


class SourceLabels:
    """Labels by path, cached; read from the main loop and from scrape threads (the cache is
    only a shortcut). `settings` and `journal_names` are read at each call: reloads change them."""

    def __init__(
        self, settings: Callable[[], Settings], journal_names: Callable[[], list[str]]
    ) -> None:
        self._settings = settings
        self._journal_names = journal_names
        self._cache: dict[str, str] = {}

    def of(self, path: str) -> str:
        """A path's label: its logs.paths glob, or (metrics.source_labels) the path itself."""
        settings = self._settings()
        if settings.metrics.source_labels or path.startswith("journal:"):
            return path  # a journal's where is its configured name: one label per [[journal]]
        label = self._cache.get(path)
        if label is None:
            if len(self._cache) > MAX_CACHED:
                self._cache = {}
            label = self._cache[path] = source_of(settings.logs.paths, path)
        return label

    def names(self) -> list[str]:
        """The labels that exist before any line is read (none when labels are paths)."""
        journals = [where(name) for name in self._journal_names()]
        if self._settings().metrics.source_labels:
            return journals
        return [*self._settings().logs.paths, *journals]

    def forget(self) -> None:
        """The globs changed (a reload): labels are worked out again."""
        self._cache = {}
