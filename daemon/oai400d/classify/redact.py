"""Removes secrets from text before it leaves the classifier (the code lives in masking.py)."""

from __future__ import annotations

from oai400d.masking import redact

__all__ = ["redact"]
