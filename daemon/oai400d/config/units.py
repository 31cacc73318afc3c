"""Durations and sizes as the config writes them: "1h30m", "500ms", "64k", "1.5MiB"."""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Annotated

from pydantic import BeforeValidator

# A duration is one or more parts, largest unit first: "30s", "1h30m", "1m 30.5s".
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_DURATION = re.compile(r"^\s*(?:\d+(?:\.\d+)?\s*(?:ms|s|m|h|d)\s*)+$")
_DURATION_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}  # largest first
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")
# Units in any case. A bare k, M, G counts in 1024s, as nginx, systemd and docker read "64k";
# KB, MB, GB are the decimal ones.
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kib": 1024,
    "kb": 1000,
    "m": 1024**2,
    "mib": 1024**2,
    "mb": 1000**2,
    "g": 1024**3,
    "gib": 1024**3,
    "gb": 1000**3,
}


def parse_duration(value: object) -> float:
    """'500ms' / '30s' / '5m' / '1h' / '1d', or parts largest first ('1h30m') → seconds."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f'{value!r} is not a duration like "30s"')
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f'{value!r} is negative; use a duration like "30s"')
        return float(value)
    if not _DURATION.match(value):
        raise ValueError(f'"{value}" is not a duration like "30s" (units: ms, s, m, h, d)')
    parts = _DURATION_PART.findall(value)
    ranks = [list(_DURATION_UNITS).index(unit) for _, unit in parts]
    if ranks != sorted(set(ranks)):
        # "30m1h" or "1m1m" is more likely a typo than a sum someone meant.
        raise ValueError(
            f'"{value}" repeats a unit or puts a smaller one first; write it largest first, '
            'like "1h30m"'
        )
    return sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)


def parse_size(value: object) -> int:
    """'1MiB' / '64k' / '1.5MiB' / '65536' → bytes."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = _SIZE.match(value) if isinstance(value, str) else None
    unit = _SIZE_UNITS.get(match.group(2).lower()) if match else None
    if not match or unit is None:
        raise ValueError(
            f'{value!r} is not a size like "64k" or "1.5MiB" (units: B; k, M, G or KiB, MiB, '
            "GiB in 1024s; KB, MB, GB in 1000s)"
        )
    size = Fraction(match.group(1)) * unit  # exact: 1.5MiB is 1572864 bytes, not about that
    if size <= 0 or size.denominator != 1:
        raise ValueError(f'"{value}" is not a whole number of bytes more than 0')
    return int(size)


def format_duration(seconds: float) -> str:
    """Seconds → the shortest exact duration string."""
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{round(seconds * 1000)}ms"


Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]
