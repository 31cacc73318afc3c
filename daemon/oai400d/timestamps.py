"""Every timestamp the daemon reads or writes, in one place.

Three forms: the one alerts and the state DB write (`2026-11-25T10:00:01Z`, UTC, whole seconds),
ISO 8601 as other programs write it (the CLI's `--since`, Slack's blocks), and the timestamp an
application puts at the start of a log line (ISO 8601 and its common variants, with or without a
zone: the backlog window decides from it whether a line read while catching up is old).
"""

from __future__ import annotations

import calendar
import re
import time
from datetime import UTC, datetime

ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

# A timestamp at the start of a log line (ISO 8601 and its common variants): up to 12 characters
# of decoration before it (`[`, a level's bracket, a BOM), `T` or a space between date and time,
# fractions with `.` or `,`, a zone as `Z`, `+02:00` or `+0200`.
_LEADING_TIME = re.compile(
    r"^\W{0,12}(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,]\d+)?\s?(Z|[+-]\d\d:?\d\d)?"
)


def iso(seconds: float) -> str:
    """Epoch seconds → '2026-11-25T10:00:01Z'."""
    return datetime.fromtimestamp(seconds, UTC).strftime(ISO_FORMAT)


def parse_iso(text: str) -> float:
    """'2026-11-25T10:00:01Z' (or any ISO 8601 with a zone) → epoch seconds; a time without a
    zone is taken as UTC. Raises ValueError for anything else."""
    when = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def line_time(text: str) -> float | None:
    """The time a log line says it was written, if it starts with a recognisable timestamp; a
    time written without a zone is the host's local time."""
    match = _LEADING_TIME.match(text[:80])
    if not match:
        return None
    year, month, day, hour, minute, second, zone = match.groups()
    try:
        stamp = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second))
    except ValueError:
        return None
    if zone is None:
        return time.mktime(stamp.timetuple())  # no zone written: the host's local time
    sign = 1 if zone[0] == "+" else -1
    offset = 0 if zone == "Z" else sign * (int(zone[1:3]) * 3600 + int(zone[-2:]) * 60)
    return calendar.timegm(stamp.timetuple()) - offset
