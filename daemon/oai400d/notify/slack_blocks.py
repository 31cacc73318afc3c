"""Notifications as Slack Block Kit messages: plain dicts, every log-derived string made inert."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote, urlsplit

from oai400d import __version__
from oai400d.masking import redact
from oai400d.model import Notification
from oai400d.timestamps import parse_iso

# Slack's limits (docs.slack.dev, Block Kit reference), and the message budget we keep to.
HEADER_MAX = 150  # header block: plain_text
SECTION_MAX = 3000  # section text, and any text object
FIELD_MAX = 2000  # each section field
FIELDS_MAX = 10  # fields per section
CONTEXT_ELEMENTS_MAX = 10
BLOCKS_MAX = 50
TOTAL_MAX = 12_000  # all text of all blocks of one message
FALLBACK_MAX = 3000  # the top-level `text`, and render_plain / render_reply

# What one piece of a message may take, so the fixed parts can never crowd out the fixes.
_TITLE_MAX = 120
_PATH_MAX = 160
_VALUE_MAX = 120  # model, request id, error code, host
_MESSAGE_MAX = 600
_CONTEXT_MAX = 800
_FIX_MAX = 400
_FIXES_SHOWN = 5
_FACT_MAX = 300
_FACTS_SHOWN = 6
_FILES_SHOWN = 3
_HOSTS_SHOWN = 5  # a fleet alert names this many hosts, then "+N more"
_DOCS_SHOWN = 5
_URL_MAX = 400
_LINK_LABEL_MAX = 60
_EXCERPT_MIN = 80  # below this a sample says nothing; leave it out
_LIST_LINES_MAX = 40  # digest / backlog lines: past this a list is no longer read

_SEVERITY_EMOJI = {
    "critical": ":red_circle:",
    "warning": ":large_yellow_circle:",
    "info": ":large_blue_circle:",
}
_RESOLVED_EMOJI = ":large_green_circle:"
_UNKNOWN_EMOJI = ":white_circle:"
_SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}

# Terminal colour codes are common in logs and mean nothing in Slack.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]")
# Controls but \t and \n, lone surrogates (undecodable bytes, which break JSON encoding) and the
# bidi overrides that could make a line read differently from what it says.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069]")
# Plain "@here" pings only if a sender sets link_names; a word joiner keeps it inert regardless.
_BROADCAST = re.compile(r"@(?=(?:channel|here|everyone)\b)", re.IGNORECASE)
# Slack's parser is not CommonMark: any backtick run inside a fence can end it early.
_BACKTICK_STANDIN = "\u02cb"  # ˋ, looks like ` but is no markup
_TRIM_MARK = "\n[… trimmed …]\n"


@dataclass(frozen=True)
class SlackMessage:
    """One Slack message: the notification fallback `text` and its Block Kit `blocks`."""

    text: str  # the notification fallback (push notifications, screen readers)
    blocks: tuple[dict[str, Any], ...]

    def payload(self) -> dict[str, Any]:
        """The `text` and `blocks` arguments of chat.postMessage / chat.update / a webhook."""
        return {"text": self.text, "blocks": [dict(b) for b in self.blocks]}


# --- text that is safe to show ----------------------------------------------------------------


def escape(text: str) -> str:
    """Slack mrkdwn escaping of & < >, so `<!here>` or `<@U1>` shows as text and never pings."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _str(value: object) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _safe(value: object) -> str:
    """Log text made inert for mrkdwn: controls out, secrets redacted, @here defused, escaped."""
    text = _str(value).replace("\r\n", "\n").replace("\r", "\n")
    # Controls go before redaction: stripping them afterwards could join a secret back together.
    text = _UNSAFE.sub("\ufffd", _ANSI.sub("", text))
    text = _BROADCAST.sub("@\u2060", redact(text))
    # Log text never makes code spans or blocks of its own: an odd ``` would swallow our markup.
    return escape(text).replace("`", _BACKTICK_STANDIN)


def _size(text: str) -> int:
    """Length as Slack may count it (UTF-16 units): never less than len(text)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _head(text: str, room: int) -> str:
    """The longest start of escaped text within room, never ending inside an entity."""
    if room <= 0:
        return ""
    cut = text[:room]
    while _size(cut) > room:
        cut = cut[: len(cut) - (_size(cut) - room)]
    amp = cut.rfind("&", max(0, len(cut) - 4))
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut


def _tail(text: str, room: int) -> str:
    """The longest end of escaped text within room, never starting inside an entity."""
    if room <= 0:
        return ""
    start = max(0, len(text) - room)
    while _size(text[start:]) > room:
        start += _size(text[start:]) - room
    amp = text.rfind("&", max(0, start - 4), start)
    end = text.find(";", start)
    if amp != -1 and ";" not in text[amp:start] and end != -1 and end - amp <= 5:
        start = end + 1
    return text[start:]


def _clip(text: str, limit: int, marker: str = "…") -> str:
    """Escaped text cut to limit (marker included) if it is longer."""
    if _size(text) <= limit:
        return text
    return _head(text, limit - _size(marker)) + marker


def _clip_left(text: str, limit: int) -> str:
    """Escaped text cut from the start, for paths: the file name is the telling end."""
    if _size(text) <= limit:
        return text
    return "…" + _tail(text, limit - 1)


def _middle(text: str, limit: int) -> str:
    """Escaped text cut in the middle: the start says what it was, the end how it failed."""
    if _size(text) <= limit:
        return text
    room = limit - _size(_TRIM_MARK)
    head = _head(text, room * 2 // 5)
    return head + _TRIM_MARK + _tail(text, room - _size(head))


def _code(escaped: str) -> str:
    """Inline code of escaped text (a backtick in it would end the span)."""
    return "`" + escaped.replace("`", _BACKTICK_STANDIN).replace("\n", " ") + "`"


def _fence(escaped: str) -> str:
    """A code block of escaped text that nothing inside can close early."""
    return "```\n" + escaped.replace("`", _BACKTICK_STANDIN) + "\n```"


# --- numbers, times, words --------------------------------------------------------------------


def _int(value: object) -> int:
    """A count or status from a record that may have come back from JSON; 0 if not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return 0
    try:
        return int(value)
    except (ValueError, OverflowError):
        return 0


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}" if count == 1 else f"{count:,} {word}s"


def _epoch(iso: str) -> float | None:
    try:
        return parse_iso(iso)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _utc(iso: str) -> str:
    """An ISO time as plain text for places without Slack's date markup; "?" if unreadable."""
    ts = _epoch(iso)
    if ts is None:
        return _clip(_safe(iso), 40) or "?"
    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (ValueError, OverflowError, OSError):
        return _clip(_safe(iso), 40) or "?"


def _date(iso: str) -> str:
    """Slack date markup (each reader sees their own time zone) with a UTC fallback."""
    ts = _epoch(iso)
    fallback = _utc(iso)
    if ts is None or not fallback.endswith(" UTC"):
        return fallback
    # Our markup: the fallback is formatted by us from a parsed time, never copied from a log.
    return f"<!date^{int(ts)}^{{date_short_pretty}} {{time}}|{fallback}>"


def _duration(seconds: float | None) -> str:
    total = max(0, int(seconds or 0))
    if total < 120:
        return f"{total}s"
    minutes, hours, days = total // 60, total // 3600, total // 86400
    if total < 7200:
        return f"{minutes}m"
    if total < 172_800:
        rest = minutes % 60
        return f"{hours}h{rest:02d}m" if rest else f"{hours}h"
    rest = hours % 24
    return f"{days}d{rest}h" if rest else f"{days}d"


def _rate(count: int, first: str, last: str) -> str:
    """How fast errors came, e.g. "≈ 20/min"; empty when too few or too close to say."""
    start, end = _epoch(first), _epoch(last)
    if start is None or end is None or count < 2 or end - start < 60:
        return ""
    per_min = count / (end - start) * 60
    if per_min >= 120:
        return f"≈ {per_min / 60:,.0f}/s"
    if per_min >= 1:
        return f"≈ {per_min:,.0f}/min"
    return f"≈ {max(1.0, per_min * 60):,.0f}/h"


def _emoji(severity: str, kind: str = "") -> str:
    if kind in ("resolved", "merged"):
        return _RESOLVED_EMOJI
    return _SEVERITY_EMOJI.get(severity, _UNKNOWN_EMOJI)


def _status(value: object) -> int | None:
    status = _int(value)
    return status if 100 <= status <= 599 else None


def _status_text(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


# --- Block Kit pieces -------------------------------------------------------------------------


def _mrkdwn(text: str) -> dict[str, Any]:
    # verbatim: Slack adds no links or mentions of its own; only our explicit markup counts.
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": text, "emoji": True}}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(text)}


def _fields(fields: Sequence[str]) -> dict[str, Any]:
    return {"type": "section", "fields": [_mrkdwn(f) for f in fields[:FIELDS_MAX]]}


def _context(*texts: str) -> dict[str, Any]:
    return {"type": "context", "elements": [_mrkdwn(t) for t in texts[:CONTEXT_ELEMENTS_MAX]]}


_DIVIDER: dict[str, Any] = {"type": "divider"}


def _total(value: Any) -> int:
    """All text of a block (or of blocks), as Slack counts toward its message limit."""
    if isinstance(value, dict):
        own = _size(value["text"]) if isinstance(value.get("text"), str) else 0
        return own + sum(_total(v) for k, v in value.items() if not isinstance(v, str))
    if isinstance(value, list | tuple):
        return sum(_total(v) for v in value)
    return 0


def _fits(block: dict[str, Any]) -> bool:
    """Whether one block keeps to Slack's per-block limits."""
    text = block.get("text")
    if block["type"] == "header":
        return isinstance(text, dict) and 0 < _size(text["text"]) <= HEADER_MAX
    if isinstance(text, dict) and not 0 < _size(text["text"]) <= SECTION_MAX:
        return False
    fields = block.get("fields", [])
    if len(fields) > FIELDS_MAX or any(not 0 < _size(f["text"]) <= FIELD_MAX for f in fields):
        return False
    elements = block.get("elements", [])
    return len(elements) <= CONTEXT_ELEMENTS_MAX and all(
        0 < _size(e["text"]) <= SECTION_MAX for e in elements
    )


def _finish(text: str, parts: list[tuple[int, dict[str, Any]]]) -> SlackMessage:
    """The message, after a last check of every limit (parts: drop rank 0 = never, else order)."""
    parts = [(rank, block) for rank, block in parts if rank == 0 or _fits(block)]
    while len(parts) > BLOCKS_MAX or _total([b for _, b in parts]) > TOTAL_MAX:
        droppable = [i for i, (rank, _) in enumerate(parts) if rank > 0]
        if not droppable:
            break
        parts.pop(max(droppable, key=lambda i: (parts[i][0], i)))
    return SlackMessage(_clip(text, FALLBACK_MAX), tuple(block for _, block in parts))


# --- one alert --------------------------------------------------------------------------------


def _header_text(n: Notification) -> str:
    """Severity emoji, title and HTTP status; green with "Resolved:" once it is over."""
    status = _status(n.status)
    suffix = f" ({status})" if status and str(status) not in n.title else ""
    lead = {"resolved": "Resolved: ", "merged": "Merged into the fleet alert: "}.get(n.kind, "")
    prefix = f"{_emoji(n.severity, n.kind)} " + lead
    room = HEADER_MAX - _size(prefix) - _size(suffix)
    return prefix + _clip(_safe(n.title) or "OpenAI error", room) + suffix


def _count_text(n: Notification) -> str:
    count = _int(n.count)
    rate = _rate(count, n.first_seen, n.last_seen)
    text = f"{count:,}" + (f" ({rate})" if rate else "")
    if n.kind in ("updated", "repeated") and _int(n.new) > 0:
        text += f"\n+{_int(n.new):,} since the last message"
    return text


def _on(n: Notification) -> str:
    """'on `web-1`'; for a fleet 'on 37 hosts (`web-1`, `web-2`, … +32 more)'; or ''."""
    count = _int(n.host_count)
    names = [_str(h) for h in (n.hosts if isinstance(n.hosts, tuple | list) else ())]
    names = [h for h in names if h.strip()]
    if count == 1 and names:
        return f"on {_code(_clip(_safe(names[0]), _VALUE_MAX))}"
    if count > 1 and names:
        shown = [_code(_clip(_safe(h), _VALUE_MAX)) for h in names[:_HOSTS_SHOWN]]
        if count > len(shown):
            shown.append(f"+{count - len(shown):,} more")
        return f"on {_plural(count, 'host')} ({', '.join(shown)})"
    if _str(n.host).strip():
        return f"on {_code(_clip(_safe(n.host), _VALUE_MAX))}"
    return ""


def _where(files: Iterable[object], on: str, sep: str = "\n") -> str:
    paths = [p for p in (_str(f) for f in files) if p.strip()]
    shown = [_code(_clip_left(_safe(p), _PATH_MAX)) for p in paths[:_FILES_SHOWN]]
    if len(paths) > _FILES_SHOWN:
        shown.append(f"+{len(paths) - _FILES_SHOWN:,} more")
    text = sep.join(shown)
    if on:
        # One per line in a field; in running text "a.log, b.log on web-1".
        glue = "\n" if sep == "\n" else " "
        text = f"{text}{glue}{on}" if text else on
    return text


def _error_text(n: Notification) -> str:
    status = _status(n.status)
    parts = [_status_text(status)] if status else []
    if _str(n.error_code).strip():
        parts.append(_code(_clip(_safe(n.error_code), _VALUE_MAX)))
    return " · ".join(parts)


def _facts(n: Notification) -> list[tuple[str, str]]:
    """The at-a-glance fields, label and mrkdwn value, empty ones left out."""
    facts = [
        ("Count", _count_text(n)),
        ("First seen", _date(n.first_seen)),
        ("Last seen", _date(n.last_seen)),
        ("Where", _where(n.files, _on(n))),
        ("Error", _error_text(n)),
        ("Model", _code(_clip(_safe(n.model), _VALUE_MAX)) if _str(n.model).strip() else ""),
        (
            "Request id",
            _code(_clip(_safe(n.request_id), _VALUE_MAX)) if _str(n.request_id).strip() else "",
        ),
    ]
    return [(label, value) for label, value in facts if value]


def _resolved_text(n: Notification) -> str:
    count = _int(n.count)
    if n.kind == "merged":
        return (
            f"*Merged into the fleet alert*: the fleet store is reachable again and this "
            f"host's {_plural(count, 'error')} are counted there from now on."
        )
    return (
        f"*Resolved* after {_duration(n.duration_s)}: {_plural(count, 'error')} in all, "
        f"the last {_date(n.last_seen)}."
    )


def _fix_lines(fixes: Iterable[object]) -> list[str]:
    """The "What to do" heading and a short bulleted list; none when there is nothing to advise."""
    items = [f for f in (_str(x) for x in fixes) if f.strip()]
    if not items:
        return []
    lines = ["*What to do*"] + [f"• {_clip(_safe(f), _FIX_MAX)}" for f in items[:_FIXES_SHOWN]]
    if len(items) > _FIXES_SHOWN:
        lines.append(f"_… and {len(items) - _FIXES_SHOWN:,} more_")
    return lines


def _fact_text(fact: str) -> str:
    """One fact as mrkdwn: made inert like all log text (it quotes logs: URLs, model names),
    its `quoted` names as code spans; an odd backtick stays text."""
    pieces = _str(fact).split("`")
    if len(pieces) % 2 == 0:  # unbalanced: no spans at all
        pieces = ["`".join(pieces)]
    return "".join(_code(_safe(piece)) if i % 2 else _safe(piece) for i, piece in enumerate(pieces))


def _fact_lines(facts: Iterable[object]) -> list[str]:
    """The "Checked" heading and a bullet per fact (what was checked, what it showed)."""
    items = [f for f in (_str(x) for x in facts) if f.strip()]
    if not items:
        return []
    lines = ["*Checked*"] + [f"• {_clip(_fact_text(f), _FACT_MAX)}" for f in items[:_FACTS_SHOWN]]
    if len(items) > _FACTS_SHOWN:
        lines.append(f"_… and {len(items) - _FACTS_SHOWN:,} more_")
    return lines


def _link_label(path: str, netloc: str) -> str:
    segments = [s for s in path.split("/") if s]
    label = unquote(segments[-1]) if segments else ""
    label = re.sub(r"\.(?:html?|md)$", "", re.sub(r"^\d+-", "", label))
    label = label.replace("-", " ").replace("_", " ").strip() or netloc
    return label[:1].upper() + label[1:]


def _link(doc: object) -> str:
    """A docs entry as `<url|label>`; anything not a plain http(s) URL stays inert text."""
    raw = _UNSAFE.sub("", _ANSI.sub("", _str(doc))).strip()
    try:
        parts = urlsplit(raw)
    except ValueError:
        parts = None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return _clip(_safe(raw), _LINK_LABEL_MAX)
    label = _clip(_safe(_link_label(parts.path, parts.netloc)), _LINK_LABEL_MAX)
    label = label.replace("|", "¦")
    # A `|` or whitespace would end the URL part of the link early; a backtick could open code.
    url = re.sub(r"\s", "", redact(raw)).replace("|", "%7C").replace("`", "%60")
    url = escape(url)
    if _size(url) > _URL_MAX:
        return label
    return f"<{url}|{label}>"


def _docs_text(docs: Iterable[object]) -> str:
    links = [link for link in (_link(d) for d in docs if _str(d).strip()) if link]
    return ":book: " + " · ".join(links[:_DOCS_SHOWN]) if links else ""


def _footer_text(n: Notification) -> str:
    parts = [_code(_clip(_safe(n.fingerprint), _VALUE_MAX))] if _str(n.fingerprint) else []
    if _str(n.category).strip():
        parts.append(_clip(_safe(n.category), _VALUE_MAX))
    if _str(n.rule).strip():
        parts.append(f"rule {_code(_clip(_safe(n.rule), _VALUE_MAX))}")
    parts.append(f"oai400d {escape(__version__)}")
    if _str(n.host).strip():
        parts.append(f"host {_code(_clip(_safe(n.host), _VALUE_MAX))}")
    return " · ".join(parts)


def _ack_text(n: Notification) -> str:
    """Who acknowledged the alert and when (its reminders stopped then)."""
    who = _clip(_safe(n.acked_by), _VALUE_MAX)
    when = f" at {_date(_str(n.acked_at))}" if _str(n.acked_at).strip() else ""
    return f":eyes: Acknowledged by *{who}*{when}: no more reminders"


def _sample_heading(excerpt: str, shown: str, full: str) -> str:
    note = "redacted" if shown == full else f"redacted, trimmed: {len(excerpt):,} characters in all"
    return f"*Sample* _({note})_\n"


def _sample(excerpt: str, room: int) -> str:
    """The redacted excerpt in a code block of at most room characters, or "" if none fits."""
    full = _safe(excerpt).strip("\n")
    if not full.strip():
        return ""
    # Sized with the longer, "trimmed" heading so the real one always fits.
    avail = room - _size(_sample_heading(excerpt, "", full) + _fence(""))
    if avail < _EXCERPT_MIN and _size(full) > avail:
        return ""
    shown = _middle(full, avail)
    return _sample_heading(excerpt, shown, full) + _fence(shown)


def _fallback(n: Notification) -> str:
    """The notification text: readable alone (push, screen reader), no markup but escapes."""
    title = _clip(_safe(n.title) or "OpenAI error", _TITLE_MAX)
    count = _int(n.count)
    if n.kind == "resolved":
        return (
            f"Resolved after {_duration(n.duration_s)}: {title} ({_plural(count, 'error')} in all)"
        )
    if n.kind == "merged":
        return f"Merged into the fleet alert: {title} ({_plural(count, 'error')} on this host)"
    status = _status(n.status)
    label = {"critical": "Critical", "warning": "Warning", "info": "Info"}.get(n.severity, "Alert")
    text = f"{label}: {title}" + (f" ({status})" if status and str(status) not in n.title else "")
    text += f": {_plural(count, 'error')} since {_utc(n.first_seen)}"
    paths = [p for p in (_str(f) for f in n.files) if p.strip()]
    if paths:
        text += f" in {_clip_left(_safe(paths[0]), _PATH_MAX)}"
    hosts = [_str(h) for h in (n.hosts if isinstance(n.hosts, tuple | list) else ())]
    if _int(n.host_count) > 1:
        text += f" on {_plural(_int(n.host_count), 'host')}"
    elif _int(n.host_count) == 1 and hosts and hosts[0].strip():
        text += f" on {_clip(_safe(hosts[0]), _VALUE_MAX)}"
    elif _str(n.host).strip():
        text += f" on {_clip(_safe(n.host), _VALUE_MAX)}"
    return text


# The buttons of an open alert (Socket Mode): action ids the socket_mode handler knows.
ACTION_ACK = "oai400d_ack"
ACTION_SILENCE = {"oai400d_silence_1h": 3600.0, "oai400d_silence_24h": 86400.0}
_BUTTON_VALUE_MAX = 2000


def _button(label: str, action_id: str, value: str) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": label},
        "action_id": action_id,
        "value": value,
    }


def _actions(n: Notification) -> dict[str, Any] | None:
    """Acknowledge (until someone has) and Silence 1h / 24h, each carrying the fingerprint."""
    value = _str(n.fingerprint)
    if not value or len(value) > _BUTTON_VALUE_MAX:
        return None
    buttons = [] if _str(n.acked_by).strip() else [_button("Acknowledge", ACTION_ACK, value)]
    buttons += [
        _button("Silence 1h", "oai400d_silence_1h", value),
        _button("Silence 24h", "oai400d_silence_24h", value),
    ]
    return {"type": "actions", "block_id": "oai400d_actions", "elements": buttons}


def render(n: Notification, actions: bool = False) -> SlackMessage:
    """The main message of an alert, for chat.postMessage and each chat.update of it; with
    `actions`, an open alert gets its buttons (only when something answers them)."""
    if n.kind == "backlog":
        return _render_backlog(n)
    buttons = _actions(n) if actions and n.kind not in ("resolved", "merged") else None
    parts: list[tuple[int, dict[str, Any]]] = [(0, _header(_header_text(n)))]
    if n.kind in ("resolved", "merged"):
        parts.append((0, _section(_resolved_text(n))))
    if _str(n.note).strip():
        parts.append((0, _context(":warning: " + _clip(_safe(n.note), _CONTEXT_MAX))))
    parts.append((0, _fields([f"*{label}*\n{value}" for label, value in _facts(n)])))
    if _str(n.acked_by).strip():
        parts.append((0, _context(_ack_text(n))))
    if _str(n.message).strip():
        message = _clip(_safe(n.message).strip("\n"), _MESSAGE_MAX)
        parts.append((3, _section("*Message*\n" + _fence(message))))
    if _str(n.context).strip():
        parts.append((2, _section(":mag: *Probes:* " + _clip(_safe(n.context), _CONTEXT_MAX))))
    checked = _fact_lines(n.facts)
    if checked:
        parts.append((1, _section("\n".join(checked))))
    fixes = _fix_lines(n.fixes)
    if fixes:
        parts.extend([(0, _DIVIDER), (0, _section("\n".join(fixes)))])
    docs = _docs_text(n.docs)
    if docs:
        parts.append((1, _context(docs)))
    footer = (1, _context(_footer_text(n)))
    # The sample takes what the rest leaves, so a huge excerpt can never crowd out the fixes.
    room = min(SECTION_MAX, TOTAL_MAX - _total([b for _, b in [*parts, footer]]) - _total(buttons))
    sample = _sample(n.excerpt, room)
    if sample:
        parts.append((4, _section(sample)))
    parts.append(footer)
    if buttons is not None:
        parts.append((0, buttons))
    return _finish(_fallback(n), parts)


def render_plain(n: Notification) -> str:
    """The alert as mrkdwn text only (≤ 3000), for when Slack rejects the blocks."""
    if n.kind == "backlog":
        return _backlog_plain(n)
    # (priority, text) in display order; the most important are kept when room runs out.
    pieces: list[tuple[int, str]] = [(0, f"*{_header_text(n)}*")]
    if n.kind in ("resolved", "merged"):
        pieces.append((1, _resolved_text(n)))
    if _str(n.note).strip():
        pieces.append((1, ":warning: " + _clip(_safe(n.note), _CONTEXT_MAX)))
    facts = dict(_facts(n))
    when = [f"*{k}:* {facts[k]}" for k in ("Count", "First seen", "Last seen") if k in facts]
    pieces.append((1, " · ".join(when).replace("\n", " ")))
    if _str(n.acked_by).strip():
        pieces.append((1, _ack_text(n)))
    what = [f"*{k}:* {facts[k]}" for k in ("Error", "Model", "Request id") if k in facts]
    if what:
        pieces.append((2, " · ".join(what)))
    if "Where" in facts:
        pieces.append((3, "*Where:* " + _where(n.files, _on(n), sep=", ")))
    if _str(n.message).strip():
        pieces.append((4, _fence(_clip(_safe(n.message).strip("\n"), _MESSAGE_MAX))))
    if _str(n.context).strip():
        pieces.append((3, ":mag: *Probes:* " + _clip(_safe(n.context), _CONTEXT_MAX)))
    pieces.extend((2, line) for line in _fact_lines(n.facts))
    pieces.extend((2, line) for line in _fix_lines(n.fixes))
    docs = _docs_text(n.docs)
    if docs:
        pieces.append((5, docs))
    return _assemble_plain(pieces, n.excerpt, (5, _footer_text(n)))


def _assemble_plain(pieces: list[tuple[int, str]], excerpt: str, footer: tuple[int, str]) -> str:
    """Join pieces within FALLBACK_MAX by priority, the sample filling what is left."""
    pieces = [p for p in pieces if p[1]]
    order = [*pieces, footer]
    budget = FALLBACK_MAX
    kept: set[int] = set()
    for i in sorted(range(len(order)), key=lambda i: (order[i][0], i)):
        need = _size(order[i][1]) + 1
        if need <= budget:
            kept.add(i)
            budget -= need
    lines = [order[i][1] for i in range(len(pieces)) if i in kept]
    sample = _sample(excerpt, budget - 1)
    if sample:
        lines.append(sample)
    if len(pieces) in kept:
        lines.append(footer[1])
    return _clip("\n".join(lines), FALLBACK_MAX)


def render_reply(n: Notification, *, since_s: float | None = None) -> str:
    """A short threaded reply under the alert's message (since_s: time since the last one)."""
    count, new = _int(n.count), _int(n.new)
    if n.kind == "merged":
        text = f"{_RESOLVED_EMOJI} {_resolved_text(n)}"
    elif n.kind == "resolved":
        text = (
            f"{_RESOLVED_EMOJI} *Resolved* after {_duration(n.duration_s)}: "
            f"{_plural(count, 'error')} in all, the last {_date(n.last_seen)}."
        )
    elif n.kind in ("repeated", "updated"):
        period = f"in the last {_duration(since_s)}" if since_s else "since the last message"
        lead = ":repeat: *Still happening:*" if n.kind == "repeated" else ":arrow_up:"
        noun = f"{_plural(new, 'new error')}" if new else "no new errors"
        text = f"{lead} {noun} {period} ({count:,} in all), the latest {_date(n.last_seen)}."
    elif n.kind == "backlog":
        text = f"{_emoji(n.severity)} {_backlog_title(n)}"
    else:
        text = f"{_emoji(n.severity)} {_fallback(n)}"
    return _clip(text, FALLBACK_MAX)


# --- many alerts in one message: the backlog after a restart, and a storm digest ---------------


def _line(
    severity: str, kind: str, title: object, count: int, files: Sequence[object], note: str = ""
) -> str:
    """One alert as one line: emoji, title, count, first file."""
    paths = [p for p in (_str(f) for f in files) if p.strip()]
    where = ""
    if paths:
        where = f" in {_code(_clip_left(_safe(paths[0]), 80))}"
        if len(paths) > 1:
            where += f" +{len(paths) - 1:,}"
    name = _clip(_safe(title) or "OpenAI error", _TITLE_MAX)
    return f"{_emoji(severity, kind)} *{name}* · {count:,}×{where}{note}"


def _list_sections(lines: Sequence[str], room: int, noun: str) -> list[dict[str, Any]]:
    """Lines packed into sections within room characters and _LIST_LINES_MAX lines."""
    sections: list[list[str]] = [[]]
    used = 0
    shown = 0
    reserve = 40  # for the "… and K more" line
    for line in lines[:_LIST_LINES_MAX]:
        cost = _size(line) + 1
        if used + cost > room - reserve:
            break
        if sum(_size(x) + 1 for x in sections[-1]) + cost > SECTION_MAX - reserve:
            sections.append([])
        sections[-1].append(line)
        used += cost
        shown += 1
    if shown < len(lines):
        sections[-1].append(f"_… and {len(lines) - shown:,} more {noun}_")
    return [_section("\n".join(s)) for s in sections if s]


def _backlog_title(n: Notification) -> str:
    count = _int(n.count)
    return f"{_plural(count, 'OpenAI error')} found while catching up after a restart"


def _item_lines(n: Notification) -> list[str]:
    lines = []
    for item in n.items:
        files = item.get("files") or ()
        lines.append(
            _line(
                _str(item.get("severity")),
                "",
                item.get("title"),
                _int(item.get("count")),
                files if isinstance(files, list | tuple) else (files,),
            )
        )
    return lines


def _backlog_intro(n: Notification) -> str:
    where = _where(n.files, _on(n), sep=", ")
    return (
        f"While oai400d was not running, the logs recorded {_plural(_int(n.count), 'OpenAI error')}"
        f" between {_date(n.first_seen)} and {_date(n.last_seen)}"
        + (f" ({where})" if where else "")
        + ". They were found while catching up, so they are summed up here rather than alerted "
        "one by one; any that keep happening will alert as usual."
    )


def _render_backlog(n: Notification) -> SlackMessage:
    title = _backlog_title(n)
    header = f"{_emoji(n.severity)} " + _clip(title, HEADER_MAX - _size(_emoji(n.severity)) - 1)
    parts: list[tuple[int, dict[str, Any]]] = [
        (0, _header(header)),
        (0, _section(_clip(_backlog_intro(n), SECTION_MAX))),
    ]
    fixes = _fix_lines(n.fixes)
    tail: list[tuple[int, dict[str, Any]]] = []
    if fixes:
        tail = [(0, _DIVIDER), (0, _section("\n".join(fixes)))]
    footer = (1, _context(_footer_text(n)))
    fixed = _total([b for _, b in [*parts, *tail, footer]])
    room = (TOTAL_MAX - fixed) * 2 // 3  # the rest is for a sample
    parts.extend((2, s) for s in _list_sections(_item_lines(n), room, "kinds"))
    parts.extend(tail)
    room = min(SECTION_MAX, TOTAL_MAX - _total([b for _, b in [*parts, footer]]))
    sample = _sample(n.excerpt, room)
    if sample:
        parts.append((4, _section(sample)))
    parts.append(footer)
    text = f"{title}" + (f" on {_clip(_safe(n.host), _VALUE_MAX)}" if _str(n.host) else "")
    return _finish(text, parts)


def _backlog_plain(n: Notification) -> str:
    pieces: list[tuple[int, str]] = [
        (0, f"*{_emoji(n.severity)} {_backlog_title(n)}*"),
        (1, _backlog_intro(n)),
    ]
    lines = _item_lines(n)
    pieces.extend((3, line) for line in lines[:_LIST_LINES_MAX])
    pieces.extend((2, line) for line in _fix_lines(n.fixes))
    return _assemble_plain(pieces, n.excerpt, (5, _footer_text(n)))


def _digest_order(n: Notification) -> tuple[bool, int, int]:
    return (n.kind == "resolved", _SEVERITY_RANK.get(n.severity, 3), -_int(n.count))


def render_digest(notes: Sequence[Notification]) -> SlackMessage:
    """Many notifications folded into one message, for a storm of distinct errors at once."""
    ordered = sorted(notes, key=_digest_order)
    total = len(ordered)
    live = [n for n in ordered if n.kind != "resolved"]
    worst = live[0].severity if live else ""
    emoji = _emoji(worst, "" if live else "resolved")
    if not total:
        title = "No OpenAI problems to report"
    elif live:
        title = f"{_plural(total, 'OpenAI problem')} at once"
    else:
        title = f"{_plural(total, 'OpenAI problem')} resolved"
    severities = Counter(n.severity for n in live)
    breakdown = [f"{severities[s]:,} {s}" for s in ("critical", "warning", "info") if severities[s]]
    other = len(live) - sum(severities[s] for s in ("critical", "warning", "info"))
    if other:
        breakdown.append(f"{other:,} other")
    if total - len(live):
        breakdown.append(f"{total - len(live):,} resolved")
    firsts = [(t, n.first_seen) for n in ordered if (t := _epoch(n.first_seen)) is not None]
    lasts = [(t, n.last_seen) for n in ordered if (t := _epoch(n.last_seen)) is not None]
    span = ""
    if firsts and lasts:
        span = f" between {_date(min(firsts)[1])} and {_date(max(lasts)[1])}"
    intro = (
        f"{_plural(total, 'alert')} came in together{span}: {', '.join(breakdown) or 'none'}. "
        "They are folded into this one message so the channel stays readable; "
        "the most severe and most frequent come first."
    )
    hosts = sorted({_str(n.host) for n in ordered if _str(n.host).strip()})
    footer_bits = [f"{_plural(total, 'notification')} folded into this message"]
    footer_bits.append(f"oai400d {escape(__version__)}")
    if hosts:
        more = f" +{len(hosts) - 1:,}" if len(hosts) > 1 else ""
        footer_bits.append(f"host {_code(_clip(_safe(hosts[0]), _VALUE_MAX))}{more}")
    parts: list[tuple[int, dict[str, Any]]] = [
        (0, _header(f"{emoji} {title}")),
        (0, _section(intro)),
    ]
    footer = (0, _context(" · ".join(footer_bits)))
    room = TOTAL_MAX - _total([b for _, b in [*parts, footer]])
    lines = []
    for n in ordered:
        note = ""
        if n.kind == "resolved":
            note = f" · resolved after {_duration(n.duration_s)}"
        elif n.kind in ("updated", "repeated") and _int(n.new):
            note = f" · +{_int(n.new):,} new"
        lines.append(_line(n.severity, n.kind, n.title, _int(n.count), n.files, note))
    parts.extend((0, s) for s in _list_sections(lines, room, "problems"))
    parts.append(footer)
    text = f"{title}: {', '.join(breakdown) or 'none'}"
    top = [_clip(_safe(n.title), _TITLE_MAX) for n in live[:3] if _str(n.title).strip()]
    if top:
        text += ". Worst: " + "; ".join(top)
    return _finish(text, parts)
