"""Slack Block Kit rendering: structure, escaping of log text, secrets, and Slack's size limits."""

from __future__ import annotations

import dataclasses
import json
import re
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oai400d import __version__
from oai400d.model import Notification
from oai400d.notify.console import render_text
from oai400d.notify.slack_blocks import (
    SlackMessage,
    escape,
    render,
    render_digest,
    render_plain,
    render_reply,
)

from .samples import huge, opened

OPENAI_KEY = "sk-proj-" + "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789a1B2"
SLACK_TOKEN = "xoxb-123-456-abcdef"
BEARER = "Authorization: Bearer abc.def.ghi"
PINGS = "<!channel> <@U123> <https://x|y> & <!here> <#C123> <!subteam^S1> <!everyone>"
RAW_TOKENS = (
    "<!channel>",
    "<@U123>",
    "<https://x|y>",
    "<!here>",
    "<#C123>",
    "<!subteam",
    "<!every",
)

# Our own markup is the only `<…>` a message may hold: Slack dates and our docs links.
OUR_MARKUP = re.compile(
    r"<!date\^\d+\^\{date_short_pretty\} \{time\}\|[^<>|]*>|<https?://[^<>|\s]+\|[^<>|]*>"
)


def backlog(**changes: Any) -> Notification:
    """A catch-up summary of three alerts, as backlog_summary() makes it."""
    items = (
        {
            "fingerprint": "a1",
            "category": "rate_limit.requests",
            "severity": "warning",
            "title": "Rate limit reached (requests per minute)",
            "count": 900,
            "files": ["/var/log/app/a.log"],
            "fix": "Back off and retry.",
        },
        {
            "fingerprint": "b2",
            "category": "auth.invalid_api_key",
            "severity": "critical",
            "title": "OpenAI rejected the API key",
            "count": 40,
            "files": ["/var/log/app/b.log"],
            "fix": "Rotate the key.",
        },
        {
            "fingerprint": "c3",
            "category": "request.context_length",
            "severity": "warning",
            "title": "Prompt longer than the model's context",
            "count": 3,
            "files": [],
            "fix": "",
        },
    )
    base = opened(
        kind="backlog",
        fingerprint="backlog",
        category="backlog",
        count=943,
        title="943 OpenAI error(s) of 3 kind(s) in lines caught up on restart",
        items=items,
        fixes=("Back off and retry.", "Rotate the key."),
        docs=(),
    )
    return dataclasses.replace(base, **changes)


def texts(value: Any) -> list[str]:
    """Every `text` string of a block tree."""
    if isinstance(value, dict):
        own = [value["text"]] if isinstance(value.get("text"), str) else []
        return own + [t for k, v in value.items() if not isinstance(v, str) for t in texts(v)]
    if isinstance(value, list | tuple):
        return [t for v in value for t in texts(v)]
    return []


def dump(message: SlackMessage) -> str:
    return json.dumps(message.payload(), ensure_ascii=False)


def assert_within_limits(message: SlackMessage) -> None:
    """Slack's Block Kit limits, and a text that fits a notification."""
    assert 0 < len(message.text) <= 3000
    assert 0 < len(message.blocks) <= 50
    assert sum(len(t) for t in texts(message.blocks)) <= 12_000
    for block in message.blocks:
        if block["type"] == "header":
            assert block["text"]["type"] == "plain_text"
            assert 0 < len(block["text"]["text"]) <= 150
        elif block["type"] == "section":
            if "text" in block:
                assert 0 < len(block["text"]["text"]) <= 3000
            assert len(block.get("fields", [])) <= 10
            assert all(0 < len(f["text"]) <= 2000 for f in block.get("fields", []))
            assert "text" in block or block.get("fields")
        elif block["type"] == "context":
            assert 0 < len(block["elements"]) <= 10
            assert all(0 < len(e["text"]) <= 3000 for e in block["elements"])
        else:
            assert block == {"type": "divider"}
    for text in texts(message.blocks):
        assert text.count("```") % 2 == 0, "every code block is closed"


def assert_inert(text: str) -> None:
    """No mention, broadcast or link but our own dates and docs links."""
    rest = OUR_MARKUP.sub("", text)
    assert "<" not in rest and ">" not in rest, rest


def section_texts(message: SlackMessage) -> list[str]:
    return [b["text"]["text"] for b in message.blocks if b["type"] == "section" and "text" in b]


def field_texts(message: SlackMessage) -> dict[str, str]:
    fields = [f["text"] for b in message.blocks for f in b.get("fields", [])]
    return {f.split("\n", 1)[0].strip("*"): f.split("\n", 1)[1] for f in fields}


# --- structure ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "header", "count"),
    [
        ("opened", ":red_circle: OpenAI rejected the API key (401)", "1,204 (≈ 20/min)"),
        ("updated", ":red_circle: OpenAI rejected the API key (401)", "+37 since the last message"),
        (
            "repeated",
            ":red_circle: OpenAI rejected the API key (401)",
            "+37 since the last message",
        ),
        ("resolved", ":large_green_circle: Resolved: OpenAI rejected the API key (401)", "1,204"),
    ],
)
def test_alert_message_structure(kind: str, header: str, count: str) -> None:
    """Header, at-a-glance fields, what to do, docs, a sample and a footer, in that order."""
    message = render(opened(kind=kind, new=37, duration_s=2520))
    types = [b["type"] for b in message.blocks]
    assert types[0] == "header" and types[-1] == "context"
    assert message.blocks[0]["text"]["text"] == header
    assert message.blocks[0]["text"]["emoji"] is True
    fields = field_texts(message)
    assert list(fields) == [
        "Count",
        "First seen",
        "Last seen",
        "Where",
        "Error",
        "Model",
        "Request id",
    ]
    assert count in fields["Count"]
    assert fields["Error"] == "401 Unauthorized · `invalid_api_key`"
    assert fields["Where"] == "`/var/log/myapp/worker.log`\n`/var/log/myapp/api.log`\non `web-1`"
    sections = section_texts(message)
    assert any(s.startswith("*What to do*\n• Check that OPENAI_API_KEY") for s in sections)
    assert any(s.startswith("*Sample* _(redacted)_\n```\n") for s in sections)
    assert "<https://platform.openai.com/docs/guides/error-codes|Error codes>" in dump(message)
    footer = message.blocks[-1]["elements"][0]["text"]
    assert "`3f9c0a1b2d4e`" in footer and f"oai400d {__version__}" in footer and "`web-1`" in footer
    # Every mrkdwn object is verbatim: Slack adds no links or mentions of its own.
    objects = [
        o
        for b in message.blocks
        for o in [b.get("text"), *b.get("fields", []), *b.get("elements", [])]
        if o
    ]
    assert all(o["verbatim"] is True for o in objects if o["type"] == "mrkdwn")
    assert_within_limits(message)


@pytest.mark.parametrize(
    ("severity", "emoji"),
    [
        ("critical", ":red_circle:"),
        ("warning", ":large_yellow_circle:"),
        ("info", ":large_blue_circle:"),
    ],
)
def test_header_emoji_follows_severity(severity: str, emoji: str) -> None:
    """The header's emoji says how bad it is before anything is read."""
    assert render(opened(severity=severity)).blocks[0]["text"]["text"].startswith(emoji + " ")


def test_status_already_in_the_title_is_not_repeated() -> None:
    """A title that names its status does not get it twice."""
    header = render(opened(title="OpenAI key rejected (401)")).blocks[0]["text"]["text"]
    assert header == ":red_circle: OpenAI key rejected (401)"


def test_resolved_is_green_and_says_how_long_and_how_many() -> None:
    """A resolved alert turns green and tells its duration and total."""
    message = render(opened(kind="resolved", duration_s=42 * 60))
    assert message.blocks[0]["text"]["text"].startswith(":large_green_circle: Resolved: ")
    assert section_texts(message)[0].startswith(
        "*Resolved* after 42m: 1,204 errors in all, the last <!date^"
    )
    assert message.text == "Resolved after 42m: OpenAI rejected the API key (1,204 errors in all)"


def test_dates_use_slack_markup_with_a_utc_fallback() -> None:
    """First/last seen show in each reader's time zone; the fallback is UTC."""
    fields = field_texts(render(opened()))
    assert (
        fields["First seen"] == "<!date^1795600801^{date_short_pretty} {time}|2026-11-25 10:00 UTC>"
    )
    assert (
        fields["Last seen"] == "<!date^1795604401^{date_short_pretty} {time}|2026-11-25 11:00 UTC>"
    )


def test_unreadable_dates_are_shown_as_inert_text() -> None:
    """A time that does not parse is shown escaped, never as markup."""
    fields = field_texts(render(opened(first_seen="<!here>", last_seen="")))
    assert fields["First seen"] == "&lt;!here&gt;"
    assert fields["Last seen"] == "?"


@pytest.mark.parametrize(
    ("count", "first", "last", "expected"),
    [
        (1204, "2026-11-25T10:00:00Z", "2026-11-25T11:00:00Z", "1,204 (≈ 20/min)"),
        (36_000, "2026-11-25T10:00:00Z", "2026-11-25T11:00:00Z", "36,000 (≈ 10/s)"),
        (30, "2026-11-25T00:00:00Z", "2026-11-26T00:00:00Z", "30 (≈ 1/h)"),
        (3, "2026-11-25T10:00:00Z", "2026-11-25T10:00:04Z", "3"),
        (1, "2026-11-25T10:00:00Z", "2026-11-25T12:00:00Z", "1"),
    ],
)
def test_count_with_rate(count: int, first: str, last: str, expected: str) -> None:
    """The count carries a rate once there is enough time to tell one."""
    assert (
        field_texts(render(opened(count=count, first_seen=first, last_seen=last)))["Count"]
        == expected
    )


def test_empty_fields_are_left_out() -> None:
    """Fields with nothing to say are omitted, not shown empty."""
    fields = field_texts(
        render(opened(model=None, request_id=None, status=None, error_code=None, files=(), host=""))
    )
    assert list(fields) == ["Count", "First seen", "Last seen"]


def test_probe_context_is_shown() -> None:
    """What the probes said at the time is part of the message."""
    message = render(opened(context="status page: Partial outage <!channel>"))
    assert ":mag: *Probes:* status page: Partial outage &lt;!channel&gt;" in section_texts(message)


@pytest.mark.parametrize(
    ("hosts", "count", "expected"),
    [
        (("web-1", "web-2"), 2, "on 2 hosts (`web-1`, `web-2`)"),
        (
            tuple(f"web-{i}" for i in range(1, 11)),
            37,
            "on 37 hosts (`web-1`, `web-2`, `web-3`, `web-4`, `web-5`, +32 more)",
        ),
        (("<!channel>",), 1, "on `&lt;!channel&gt;`"),
    ],
)
def test_a_fleet_alert_names_its_hosts(hosts: tuple[str, ...], count: int, expected: str) -> None:
    """A fleet's message says on how many hosts, naming the first five (escaped like all text
    from outside), in the blocks, the plain-text version, the notification text and the
    console; one host is just named."""
    n = opened(hosts=hosts, host_count=count)
    assert expected in field_texts(render(n))["Where"]
    assert expected in render_plain(n)
    assert expected.split(" (")[0].replace("`", "") in render(n).text
    assert f"on {count} host(s) ({hosts[0]}" in render_text(n)
    assert_within_limits(render(n))


def test_a_local_alert_during_a_store_outage_says_so_and_its_merge_is_told() -> None:
    """While the fleet's store is away a host's own message carries the note; when it is back
    the message turns green, says it was merged, and loses its buttons."""
    note = "The fleet store has been unreachable since 2026-11-25T10:00:00Z: …"
    message = render(opened(note=note), actions=True)
    assert any(note[:40] in t for t in texts(message.blocks))
    merged = render(opened(kind="merged", note=note), actions=True)
    header = merged.blocks[0]["text"]["text"]
    assert header.startswith(":large_green_circle: Merged into the fleet alert:")
    assert not [b for b in merged.blocks if b["type"] == "actions"]
    assert "Merged into the fleet alert" in merged.text
    assert "Merged into the fleet alert" in render_reply(opened(kind="merged"))
    assert "MERGED" in render_text(opened(kind="merged"))
    assert_within_limits(merged)


def test_backlog_lists_what_was_found_while_catching_up() -> None:
    """A backlog summary has its own header and one line per alert it covers."""
    message = render(backlog())
    assert message.blocks[0]["text"]["text"] == (
        ":red_circle: 943 OpenAI errors found while catching up after a restart"
    )
    body = "\n".join(section_texts(message))
    assert (
        ":large_yellow_circle: *Rate limit reached (requests per minute)* · 900× in `/var/log/app/a.log`"
        in body
    )
    assert ":red_circle: *OpenAI rejected the API key* · 40×" in body
    assert "*Prompt longer than the model's context* · 3×" in body
    assert "*What to do*\n• Back off and retry.\n• Rotate the key." in body
    assert message.text.startswith("943 OpenAI errors found while catching up after a restart")
    assert_within_limits(message)


def test_backlog_items_are_escaped() -> None:
    """Item titles and files come from logs too and are escaped."""
    item = {"severity": "warning", "title": "<!channel>", "count": 1, "files": ["<@U123>.log"]}
    message = render(backlog(items=(item,)))
    assert "<!channel>" not in dump(message) and "<@U123>" not in dump(message)
    assert_inert(dump(message))


# --- safety -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a & b", "a &amp; b"),
        ("<!channel>", "&lt;!channel&gt;"),
        ("<https://x|y>", "&lt;https://x|y&gt;"),
        ("&lt;", "&amp;lt;"),
        ("plain", "plain"),
    ],
)
def test_escape(text: str, expected: str) -> None:
    """escape() handles exactly Slack's three control characters."""
    assert escape(text) == expected


def everywhere(text: str) -> Notification:
    """Every log-derived field of an alert carrying text."""
    return opened(
        message=text,
        excerpt=text,
        files=(text, "/var/log/" + text),
        model=text,
        request_id=text,
        error_code=text,
        host=text,
        context=text,
    )


@pytest.mark.parametrize("kind", ["opened", "resolved", "repeated", "backlog"])
def test_mentions_and_links_from_logs_never_work(kind: str) -> None:
    """`<!channel>`, `<@U…>`, `<#C…>` and `<url|text>` from logs show literally."""
    n = dataclasses.replace(everywhere(PINGS), kind=kind)
    outputs = [dump(render(n)), render_plain(n), render_reply(n), dump(render_digest([n, n]))]
    for out in outputs:
        for token in RAW_TOKENS:
            assert token not in out
        assert_inert(out)
    assert "&lt;!channel&gt; &lt;@U123&gt; &lt;https://x|y&gt; &amp; &lt;!here&gt;" in outputs[0]


def test_plain_broadcast_words_are_defused() -> None:
    """A bare "@here" in a log cannot ping either, even if a sender enables link_names."""
    out = dump(render(everywhere("hello @here and @channel")))
    assert "@here" not in out and "@channel" not in out
    assert "@\u2060here" in out


@pytest.mark.parametrize("secret", [OPENAI_KEY, SLACK_TOKEN, "abc.def.ghi"])
def test_secrets_never_reach_slack(secret: str) -> None:
    """Keys, Slack tokens and bearer tokens in any log field are redacted again here."""
    text = f"boom {OPENAI_KEY} then {SLACK_TOKEN} and {BEARER} end"
    n = everywhere(text)
    for out in (dump(render(n)), render_plain(n), render_reply(n), dump(render_digest([n]))):
        assert secret not in out
    assert "sk-…a1B2" in dump(render(n))


def test_secret_hidden_by_terminal_colours_is_still_redacted() -> None:
    """Colour codes are removed before redaction, so they cannot split a key past it."""
    coloured = OPENAI_KEY[:12] + "\x1b[0m" + OPENAI_KEY[12:]
    assert OPENAI_KEY not in dump(render(opened(excerpt=coloured)))


def test_backticks_cannot_break_out_of_the_code_block() -> None:
    """Backticks in an excerpt never close its code block early."""
    message = render(opened(excerpt="a ``` <!here> ```` b `c`", message="```x```"))
    for text in section_texts(message):
        assert text.count("```") in (0, 2)
    sample = next(t for t in section_texts(message) if t.startswith("*Sample*"))
    assert sample.endswith("\n```") and "&lt;!here&gt;" in sample


def test_doc_links_cannot_be_bent() -> None:
    """A `|` or `>` in a docs URL cannot change where the link goes or what it says."""
    docs = ("https://example.com/a|<!here>b>c", "javascript:alert(1)", "not a url <@U1>")
    context = next(b for b in render(opened(docs=docs)).blocks if b["type"] == "context")
    text = context["elements"][0]["text"]
    assert text.startswith(":book: <https://example.com/a%7C&lt;!here&gt;b&gt;c|")
    assert "<javascript" not in text and "&lt;@U1&gt;" in text
    assert_inert(text)


def test_control_characters_and_lone_surrogates_are_replaced() -> None:
    """Text that would break JSON encoding or reorder what is shown is neutralised."""
    message = render(opened(excerpt="a\x00b\ud800c\u202ed\x1b[31mred"))
    sample = next(t for t in section_texts(message) if t.startswith("*Sample*"))
    assert "a\ufffdb\ufffdc\ufffdd" + "red" in sample
    json.dumps(message.payload()).encode("utf-8")


# --- limits -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["opened", "updated", "repeated", "resolved", "backlog"])
def test_huge_alert_stays_within_slack_limits(kind: str) -> None:
    """Oversized inputs are trimmed (the excerpt first); the header and fixes stay."""
    n = dataclasses.replace(huge(), kind=kind, items=backlog().items * 20)
    message = render(n)
    assert_within_limits(message)
    assert message.blocks[0]["type"] == "header"
    assert any(s.startswith("*What to do*\n• fix 0: ") for s in section_texts(message))
    if kind != "backlog":
        assert message.blocks[0]["text"]["text"].endswith("… (401)")
        assert any("_… and 25 more_" in s for s in section_texts(message))
        assert field_texts(message)["Where"].count("\n") == 4  # 3 files, "+497 more", host
    sample = next(s for s in section_texts(message) if s.startswith("*Sample*"))
    assert "trimmed: 102,400 characters in all" in sample and "[… trimmed …]" in sample
    plain = render_plain(n)
    assert len(plain) <= 3000 and "*What to do*" in plain and plain.count("```") % 2 == 0


def test_plain_fallback_is_complete_escaped_and_short() -> None:
    """render_plain carries the same facts as mrkdwn text within 3000 characters."""
    plain = render_plain(everywhere(PINGS))
    assert plain.startswith("*:red_circle: OpenAI rejected the API key (401)*\n")
    assert "*Count:* 1,204 (≈ 20/min)" in plain and "*What to do*" in plain and "```" in plain
    assert len(plain) <= 3000
    assert_inert(plain)


@pytest.mark.parametrize(
    ("changes", "since_s", "expected"),
    [
        (
            {"kind": "repeated", "new": 37},
            4 * 3600,
            ":repeat: *Still happening:* 37 new errors in the last 4h (1,204 in all), the latest <!date^",
        ),
        (
            {"kind": "repeated", "new": 1},
            None,
            ":repeat: *Still happening:* 1 new error since the last message (1,204 in all)",
        ),
        (
            {"kind": "updated", "new": 5},
            90,
            ":arrow_up: 5 new errors in the last 90s (1,204 in all)",
        ),
        (
            {"kind": "resolved", "duration_s": 42 * 60},
            None,
            ":large_green_circle: *Resolved* after 42m: 1,204 errors in all, the last <!date^",
        ),
        (
            {"kind": "resolved", "duration_s": 26 * 3600 + 300},
            None,
            ":large_green_circle: *Resolved* after 26h05m: ",
        ),
    ],
)
def test_threaded_replies(changes: dict[str, Any], since_s: float | None, expected: str) -> None:
    """Replies under the alert say briefly what changed."""
    reply = render_reply(opened(**changes), since_s=since_s)
    assert reply.startswith(expected) and len(reply) <= 3000


FRAGMENTS = [
    *string.printable,
    "<!",
    "<@",
    "<#",
    "&amp;",
    "`",
    "```",
    "|",
    "\u202e",
    "😀",
    "\udcff",
    "\x1b[0m",
    "sk-proj-",
]
safe_text = st.text(st.characters(), max_size=400) | st.lists(
    st.sampled_from(FRAGMENTS), max_size=4000
).map("".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    message=safe_text,
    excerpt=safe_text,
    files=st.lists(safe_text, max_size=30),
    other=safe_text,
    kind=st.sampled_from(["opened", "updated", "repeated", "resolved", "backlog"]),
)
def test_random_text_never_breaks_limits_or_escaping(
    message: str, excerpt: str, files: list[str], other: str, kind: str
) -> None:
    """Whatever a log holds, the message keeps to the limits and pings no one."""
    item = {"severity": other[:10], "title": other, "count": 2, "files": files}
    n = opened(
        kind=kind,
        message=message,
        excerpt=excerpt,
        files=tuple(files),
        model=other,
        request_id=other,
        host=other,
        context=other,
        error_code=other,
        items=(item,),
        docs=(other, "https://example.com/" + other),
        title=other,
        fixes=(other, message),
        fingerprint=other,
        category=other,
        rule=other,
        first_seen=other,
        severity=other[:8],
    )
    message_ = render(n)
    digest = render_digest([n, opened(), n])
    assert_within_limits(message_)
    assert_within_limits(digest)
    for out in (dump(message_), dump(digest), render_plain(n), render_reply(n)):
        assert_inert(out)
    assert len(render_plain(n)) <= 3000 and len(render_reply(n)) <= 3000


# --- digest -------------------------------------------------------------------------------


def storm(count: int) -> list[Notification]:
    severities = ("critical", "warning", "info")
    return [
        opened(
            fingerprint=f"{i:012x}",
            severity=severities[i % 3],
            title=f"Problem number {i} <!here>",
            count=i + 1,
            files=(f"/var/log/app/{i}.log", "/var/log/app/other.log"),
            kind="resolved" if i % 10 == 9 else "opened",
            duration_s=60.0 * i,
        )
        for i in range(count)
    ]


def test_digest_of_a_thousand_fits_and_says_how_many_were_folded() -> None:
    """A storm folds into one message within every limit, counting what it left out."""
    message = render_digest(storm(1000))
    assert_within_limits(message)
    assert message.blocks[0]["text"]["text"] == ":red_circle: 1,000 OpenAI problems at once"
    body = "\n".join(section_texts(message))
    assert "300 critical, 300 warning, 300 info, 100 resolved" in body
    lines = [line for line in body.split("\n") if re.match(r":[a-z_]+: \*", line)]
    more = re.search(r"_… and ([\d,]+) more problems_", body)
    assert more is not None and len(lines) + int(more.group(1).replace(",", "")) == 1000
    assert (
        "1,000 notifications folded into this message" in message.blocks[-1]["elements"][0]["text"]
    )
    # Most severe and most frequent first; resolved ones last.
    assert lines[0].startswith(
        ":red_circle: *Problem number 996 &lt;!here&gt;* · 997× in `/var/log/app/996.log` +1"
    )
    assert "<!here>" not in dump(message)
    assert message.text.startswith("1,000 OpenAI problems at once: 300 critical")


@pytest.mark.parametrize(
    ("count", "header"),
    [
        (0, "No OpenAI problems to report"),
        (1, "1 OpenAI problem at once"),
        (2, "2 OpenAI problems at once"),
    ],
)
def test_digest_small(count: int, header: str) -> None:
    """Small digests read naturally and stay valid."""
    message = render_digest(storm(count))
    assert message.blocks[0]["text"]["text"].endswith(header)
    assert_within_limits(message)


def test_digest_of_resolved_only_is_green() -> None:
    """A digest of resolved alerts only is green."""
    notes = [opened(kind="resolved", duration_s=60)] * 3
    assert (
        render_digest(notes).blocks[0]["text"]["text"]
        == ":large_green_circle: 3 OpenAI problems resolved"
    )
