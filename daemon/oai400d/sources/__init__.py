"""Tailing: follows the files of the `logs.paths` globs through rotation and restarts."""

from oai400d.sources.follow import Sources

__all__ = ["Sources"]
