"""The plain frozen records that flow between stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Line:
    """One line read from a log file (newline removed, decoded, possibly cut)."""

    path: str
    line_no: int
    offset: int
    text: str
    # From a container runtime's or syslog's wrapper (unwrap.py), when the file had one: the
    # stream the line came from (stdout/stderr, the compose service, the syslog host and tag)
    # and the wrapper's time. line_no/offset are then those of the line's first physical piece.
    stream: str | None = None
    time: str | None = None


# One piece of a message that a renderer wrapped into a fixed-width column, each piece stamped
# again with the same time by a log shipper (Rich under docker compose): a timestamp, then a wide
# gap. The Assembler joins such pieces into one re-flowed message; the prefilter must therefore
# look at every such line, since the joined text can hold what no single line does.
WRAPPED_PIECE = r"(\[?\d{4}[-/]\d\d[-/]\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?\]?)( {8,})(?=\S)"

# A new log record: a timestamp (ISO, Go's log, syslog, a bare time, epoch seconds, glog, Ruby's
# Logger, an nginx/Apache access log's `host ident user [date`), a level prefix (`ERROR:`,
# `[WARN]`, `INFO `, `level=`, `time=`), or a whole JSON object on one line.
# (Verbose syntax. The Assembler ends a pending event there; the prefilter's weak-hit rule,
# classify/attribution.py, reads the same starts in the raw bytes.)
RECORD_START = r"""
    (?:\[[\w.:-]{1,32}\]\s?|[\w.-]{1,32}\s+\|\s)?        # [bot] / web_1  | (a source tag first)
    (?:
    \[?\d{4}[-/]\d\d[-/]\d\d[T\s_]\d\d:\d\d          # 2024-05-01 12:00 / [2024/05/01 12:00
    | \[?\d{4}-\d\d-\d\d\]                           # [2024-05-01]
    | \[?\d\d:\d\d:\d\d(?:[.,]\d+)?\b                  # 12:00:01.123
    | \[?(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\s[\s\d]\d\s\d\d:\d\d  # syslog
    | \[?\d{10}(?:\.\d+)?\b                           # epoch seconds
    | [IWEF]\d{4}\s\d\d:\d\d:\d\d                       # glog
    | [DIWEFAU],\s\[\d{4}-\d\d-\d\dT\d\d:\d\d            # Ruby's Logger: I, [2024-05-01T12:00
    | [\w.:-]{1,64}\s\S{1,64}\s\S{1,64}\s            # access log: 10.1.2.3 - - [01/May/2024:12:00
      \[\d\d/(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)/\d{4}:\d\d:\d\d
    | \[?(?:TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|ERR|CRITICAL|CRIT|FATAL|PANIC)
      (?:\]|:|\s|\||$)                                # a level prefix
    | (?:level|lvl|time|ts|timestamp|severity)=         # logfmt
    | \{"[^"\n]{1,40}":.*\}\s*$                          # a JSON-lines record
    )
    """


@dataclass(frozen=True, slots=True)
class EventLimits:
    """The most lines and characters one event may gather (`logs.max_event_lines`/`_bytes`)."""

    lines: int = 400
    chars: int = 256 * 1024


@dataclass(frozen=True, slots=True)
class Event:
    """One log record: a single line, or a traceback / JSON body joined from several."""

    path: str
    first_line: int
    last_line: int
    text: str


@dataclass(frozen=True, slots=True)
class Evidence:
    """What an event says about the error, each field None when the text does not show it."""

    status: int | None = None
    error_type: str | None = None
    error_code: str | None = None
    param: str | None = None
    model: str | None = None
    request_id: str | None = None
    message: str | None = None


# How a fact bears on the cause a rule named (facts/): it confirms it, rules it out, or only
# narrows it down (which of the cause's fixes applies).
BEARINGS = ("supports", "rules_out", "neutral")


@dataclass(frozen=True, slots=True)
class Fact:
    """One thing checked about an error, and what it showed: a short sentence for a person.

    `kind` names the check (README "Checked": presigned_expiry, private_host, key_suffix,
    model_closest, fetch…); `text` is already masked and says what was checked and what it
    showed; `bearing` is one of BEARINGS; `prefer` and `demote`: words that pick out the rule's
    fixes this fact makes more or less likely (lower case, matched in each fix's text), so the
    fixes it supports come first and those it rules out last (facts.order_fixes).
    """

    kind: str
    text: str
    bearing: str = "neutral"
    prefer: tuple[str, ...] = ()
    demote: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Finding:
    """One OpenAI error found in the logs, with its cause and what to do about it."""

    path: str
    line: int
    end_line: int
    category: str
    rule: str
    severity: str
    title: str
    status: int | None
    error_type: str | None
    error_code: str | None
    param: str | None
    model: str | None
    request_id: str | None
    message: str
    fingerprint: str
    fixes: tuple[str, ...]
    docs: tuple[str, ...]
    excerpt: str
    # The event shows nothing but an HTTP status (an httpx request line, `Request failed with
    # status code 429`) or the SDK's bare message (`…: Connection error.`); it was logged below
    # error level (a library's retry notice, its own INFO
    # record of the error it is about to raise). Either makes it secondary (sameerror.py).
    status_only: bool = False
    quiet: bool = False
    # What was checked about this error and what it showed (Fact.text, facts.text): set by
    # `classify` after the fixes were ordered by them; () when nothing was checked.
    facts: tuple[str, ...] = ()

    @property
    def secondary(self) -> bool:
        """Another record of the same failure tells it better when there is one (sameerror.py)."""
        return self.status_only or self.quiet

    def to_json(self) -> dict[str, Any]:
        """The `classify --json` contract (DESIGN.md), in its field order."""
        return {
            "path": self.path,
            "line": self.line,
            "end_line": self.end_line,
            "category": self.category,
            "rule": self.rule,
            "severity": self.severity,
            "status": self.status,
            "error_type": self.error_type,
            "error_code": self.error_code,
            "param": self.param,
            "model": self.model,
            "request_id": self.request_id,
            "message": self.message,
            "fingerprint": self.fingerprint,
            "fixes": list(self.fixes),
            "docs": list(self.docs),
            "facts": list(self.facts),
        }


@dataclass(frozen=True, slots=True)
class FileState:
    """Where reading of one log file stands; what the state DB keeps per followed file.

    A file is identified by device + inode and a digest of its first bytes (`head`, over
    `head_len` bytes), so a reused inode is not mistaken for the file that had it before.
    `offset` is the byte after the last line handed on, `line_no` the number of that line.
    """

    path: str
    dev: int
    ino: int
    head: str
    head_len: int
    offset: int
    line_no: int


@dataclass(frozen=True, slots=True)
class JournalPosition:
    """Where reading of one `[[journal]]` stands; what the state DB keeps per journal.

    `cursor` is a journal entry's cursor and `skip` how many lines of its MESSAGE were handed
    on: resume at line `skip` of that entry, or after it when `skip` is ALL_LINES (-1). A multi-
    line message half gathered into an event at a crash is thus read again from that line.
    """

    name: str
    cursor: str
    skip: int


ALL_LINES = -1  # JournalPosition.skip: the whole entry was handed on


@dataclass(frozen=True, slots=True)
class RawLines:
    """Complete lines of a plain file as read, undecoded (the daemon's fast path, ingest.py):
    `data` starts at file offset `offset` after `line_no` lines. A line cut at max_line holds
    fewer bytes than the file: `anchors` are (position in data, file offset) after each one."""

    data: bytes
    offset: int
    line_no: int
    anchors: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class Read:
    """What one poll of one file produced."""

    file: FileState  # identity, and the position after these lines
    lines: tuple[Line, ...]
    finished: bool = False  # rotated away or deleted, and read to its end: forget this file
    raw: tuple[RawLines, ...] = ()  # instead of `lines`, for a plain file read raw


@dataclass(frozen=True, slots=True)
class Alert:
    """One problem: every finding with the same fingerprint, counted, with its timing.

    `state`: pending (gathering its first burst), open (announced), backlog (seen only in lines
    caught up after a restart, summarised but not announced), resolved.
    Times are seconds since the epoch.
    """

    fingerprint: str
    category: str
    rule: str
    severity: str
    title: str
    state: str
    count: int
    first_seen: float
    last_seen: float
    files: tuple[str, ...]
    message: str
    excerpt: str
    fixes: tuple[str, ...]
    docs: tuple[str, ...]
    status: int | None = None
    error_type: str | None = None
    error_code: str | None = None
    model: str | None = None
    request_id: str | None = None
    notified_count: int = 0  # the count the last notification carried
    last_notified: float | None = None
    last_reminder: float | None = None
    opened_at: float | None = None
    resolved_at: float | None = None
    source: str = "logs"  # "logs", or "probe" for a probe's alert
    acked_by: str | None = None  # who acknowledged this episode (reminders stop), and when
    acked_at: float | None = None
    # What was checked about this episode and what it showed (Fact.text, facts/checks.py): set
    # when a notification is built, so the state DB and `status` show what the last one said.
    facts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Notification:
    """One message for a person about one alert (or, kind "backlog", a summary of many)."""

    kind: str
    fingerprint: str
    category: str
    severity: str
    title: str
    count: int
    first_seen: str  # ISO 8601, UTC
    last_seen: str
    files: tuple[str, ...]
    fixes: tuple[str, ...]
    docs: tuple[str, ...]
    excerpt: str
    rule: str = ""
    message: str = ""
    status: int | None = None
    error_code: str | None = None
    model: str | None = None
    request_id: str | None = None
    new: int = 0  # findings since the previous notification about this alert
    duration_s: float | None = None  # resolved: how long the problem lasted
    host: str = ""
    context: str = ""  # what probes said at the time (status page, key check)
    items: tuple[dict[str, Any], ...] = ()  # backlog: one entry per alert it covers
    acked_by: str | None = None  # who acknowledged the alert, and when (ISO 8601)
    acked_at: str | None = None
    # A fleet (state.fleet): the hosts that saw it (the first few by name) and how many there
    # are; `episode` names the one Slack message every host's notifications of it share.
    hosts: tuple[str, ...] = ()
    host_count: int = 0
    episode: str = ""
    note: str = ""  # a line about how far the message can be trusted (a fleet store outage)
    facts: tuple[str, ...] = ()  # what was checked and what it showed (Fact.text), in order

    def to_json(self) -> dict[str, Any]:
        """The console JSON contract (DESIGN.md) first, then the extra fields."""
        data: dict[str, Any] = {
            "kind": self.kind,
            "fingerprint": self.fingerprint,
            "category": self.category,
            "severity": self.severity,
            "title": self.title,
            "count": self.count,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "files": list(self.files),
            "fixes": list(self.fixes),
            "docs": list(self.docs),
            "excerpt": self.excerpt,
            "rule": self.rule,
            "message": self.message,
            "status": self.status,
            "error_code": self.error_code,
            "model": self.model,
            "request_id": self.request_id,
            "new": self.new,
            "duration_s": self.duration_s,
            "host": self.host,
            "context": self.context,
            # Always written, [] when nothing was checked (DESIGN.md: every notification).
            "facts": list(self.facts),
        }
        if self.items:
            data["items"] = [dict(item) for item in self.items]
        if self.acked_by is not None:
            data["acked_by"] = self.acked_by
            data["acked_at"] = self.acked_at
        if self.host_count:
            data["hosts"] = list(self.hosts)
            data["host_count"] = self.host_count
        if self.episode:
            data["episode"] = self.episode
        if self.note:
            data["note"] = self.note
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Notification:
        """Back from what to_json() wrote (the outbox stores notifications as JSON)."""
        fields = dict(data)
        for key in ("files", "fixes", "docs", "hosts", "facts"):
            fields[key] = tuple(fields.get(key) or ())
        fields["items"] = tuple(fields.get("items") or ())
        return cls(**fields)


# The taxonomy's categories (../shared/taxonomy.md) a finding can have; `not_openai` is no
# finding. Here, in layer 0, so the config can check a notifier's `categories` against them.
CATEGORIES = frozenset(
    {
        "auth.invalid_api_key",
        "auth.organization",
        "auth.permission",
        "quota.insufficient",
        "rate_limit",
        "request.image",
        "request.context_length",
        "request.unsupported_parameter",
        "request.invalid_parameter",
        "request.model_not_found",
        "request.content_policy",
        "request.payload",
        "server.error",
        "network",
        "unclassified",
    }
)


# Severities from the most to the least urgent (a notifier's min_severity takes this one and
# those before it).
SEVERITIES = ("critical", "warning", "info")


@dataclass(frozen=True, slots=True)
class Route:
    """Which notifications a notifier (its target) receives: those at least `min_severity`,
    and, when `categories` is not empty, only of those taxonomy categories."""

    target: str
    min_severity: str = "info"
    categories: tuple[str, ...] = ()

    def accepts(self, severity: str, category: str) -> bool:
        """Whether a notification of this severity and category goes to this target (a
        severity this version does not know counts as the most urgent: never lost)."""
        rank = SEVERITIES.index(severity) if severity in SEVERITIES else 0
        if rank > SEVERITIES.index(self.min_severity):
            return False
        return not self.categories or category in self.categories


PROBE_STATUSES = ("ok", "warning", "critical", "unknown")  # Nagios 0, 1, 2, 3
PROBE_NAMES = ("api_key", "models", "status_page")


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One run of one probe (`api_key`, `models`, `status_page`)."""

    name: str
    status: str  # one of PROBE_STATUSES
    summary: str  # one line a person reads first, e.g. "key rejected: 401 invalid_api_key"
    latency_ms: int | None = None
    fixes: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    cause: str | None = None  # the taxonomy category of a failure (auth.invalid_api_key, …)

    def to_json(self) -> dict[str, Any]:
        """The `probe --json` contract (DESIGN.md)."""
        return {
            "name": self.name,
            "status": self.status,
            "summary": self.summary,
            "latency_ms": self.latency_ms,
            "fixes": list(self.fixes),
            "details": dict(self.details),
        }


@dataclass(frozen=True, slots=True)
class Silence:
    """No messages about the alerts it matches (a fingerprint or a category) from starts to ends.

    Counting goes on and resolutions are still told; `removed_by` is set when someone lifted it
    before its end (`ends` is then the time it was lifted). Times are seconds since the epoch.
    """

    id: int
    fingerprint: str | None
    category: str | None
    starts: float
    ends: float
    comment: str
    created_by: str  # a person: the OS user (CLI) or the Slack user
    created: float
    via: str = "cli"  # "cli" or "slack"
    removed_by: str | None = None

    def active(self, now: float) -> bool:
        return self.starts <= now < self.ends

    def matches(self, fingerprint: str, category: str) -> bool:
        if self.fingerprint is not None:
            return self.fingerprint == fingerprint
        return self.category == category

    @property
    def matcher(self) -> str:
        """`fingerprint=3f9c0a1b2d4e` or `category=rate_limit`, for people."""
        if self.fingerprint is not None:
            return f"fingerprint={self.fingerprint}"
        return f"category={self.category}"


@dataclass(frozen=True, slots=True)
class Ack:
    """Someone has seen the alert with this fingerprint: its reminders stop for this episode."""

    fingerprint: str
    by: str
    at: float
    comment: str = ""
    via: str = "cli"


@dataclass(frozen=True, slots=True)
class FleetDelta:
    """Findings of one alert this host has not yet added to the fleet's store (state.fleet).

    `data` describes the alert (category, title, fixes, …) for a store that has not seen it."""

    fingerprint: str
    count: int
    first_seen: float
    last_seen: float
    data: dict[str, Any]
