"""Who the error says called, against who this host is configured as: the refused key's
visible suffix, the organization (`org-…`) and project (`proj_…`) ids in the message.

A key is only ever compared and shown by its last four characters.
"""

from __future__ import annotations

import re

from oai400d.model import Fact

KEY_KIND = "key_suffix"
ORGANIZATION_KIND = "organization"
PROJECT_KIND = "project"

# The key as OpenAI echoes it (masked in the middle, by OpenAI and again by masking.redact):
# `sk-proj-****…yz12`, `sk-…Q2vb`. Its last four characters, if they are not mask characters.
_REFUSED_KEY = re.compile(r"Incorrect API key provided: ([^\s,'\"]+)", re.IGNORECASE)
_SUFFIX = re.compile(r"([A-Za-z0-9_-]{4})\.?$")
_ORGANIZATION = re.compile(r"\borg-[A-Za-z0-9]{6,}")
# "No such organization: Personal": what was sent where the id belongs.
_NO_SUCH_ORGANIZATION = re.compile(r"No such organization: ([^\s.,'\"]+)", re.IGNORECASE)
_PROJECT = re.compile(r"\bproj_[A-Za-z0-9]{6,}")

# Words of invalid_api_key's fixes: "…create a new key if it is gone" (the configured key itself
# was refused) and "After rotating a key, restart every worker that read the old one" (another).
_NEW_KEY_FIX = ("create a new key",)
_OLD_WORKER_FIX = ("restart every worker",)
# The organization and project rules' fixes: the configured id is wrong ("copy the real one",
# "compare the project"), or the failing process sends another ("an OPENAI_ORG_ID injected by the
# host", "integrations sometimes inject OPENAI_PROJECT_ID", "a key of another project").
_WRONG_ID_FIX = ("copy the real one", "compare the organization", "compare the project")
_OTHER_SENDER_FIX = ("inject", "of another project")


def key_fact(message: str, configured_suffix: str | None) -> Fact | None:
    """The refused key's last four characters against the configured key's."""
    match = _REFUSED_KEY.search(message)
    if match is None:
        return None
    suffix_match = _SUFFIX.search(match.group(1).rstrip(".").rstrip())
    if suffix_match is None:
        return None
    suffix = suffix_match.group(1)
    if configured_suffix is None:
        return Fact(
            KEY_KIND,
            f"The refused key ends in {suffix}; no OpenAI key is configured here to compare it "
            "with (openai.api_key).",
        )
    if suffix == configured_suffix[-4:]:
        return Fact(
            KEY_KIND,
            f"The refused key ends in {suffix}, as the key this host is configured with does: "
            "that key itself was refused (revoked, deleted, or of another project).",
            "supports",
            prefer=_NEW_KEY_FIX,
            demote=_OLD_WORKER_FIX,
        )
    return Fact(
        KEY_KIND,
        f"The refused key ends in {suffix}, the key this host is configured with in "
        f"{configured_suffix[-4:]}: some process runs with another key (an old one, or "
        "another project's).",
        "supports",
        prefer=_OLD_WORKER_FIX,
    )


def id_facts(
    message: str, organization: str | None, project: str | None, about_accounts: bool
) -> list[Fact]:
    """The organization and project ids in the message against the configured ones. With none
    configured, said only for an error about accounts (`about_accounts`): a rate-limit message
    names its organization every time, which says nothing without one to compare."""
    facts = []
    sent = _NO_SUCH_ORGANIZATION.search(message)
    if sent is not None and not sent.group(1).startswith("org-"):
        facts.append(
            Fact(
                ORGANIZATION_KIND,
                f"The organization sent, {sent.group(1)!r}, is not an organization id (org-…): "
                "a name or another value was sent where the id belongs.",
                "supports",
                prefer=("copy the real one",),
            )
        )
    for kind, pattern, configured, label, key in (
        (ORGANIZATION_KIND, _ORGANIZATION, organization, "organization", "openai.organization"),
        (PROJECT_KIND, _PROJECT, project, "project", "openai.project"),
    ):
        if label[:3] not in message.lower():
            continue
        match = pattern.search(message)
        if match is None:
            continue
        named = match.group(0)
        if not configured:
            if about_accounts:
                facts.append(
                    Fact(
                        kind,
                        f"The message names {label} {named}; none is configured here to "
                        f"compare it with ({key}).",
                    )
                )
            continue
        if named == configured:
            facts.append(
                Fact(
                    kind,
                    f"The message names {label} {named}, the one configured here ({key}): "
                    f"this host's own {label} setting is the one refused.",
                    "supports",
                    prefer=_WRONG_ID_FIX,
                )
            )
        else:
            facts.append(
                Fact(
                    kind,
                    f"The message names {label} {named}, but {configured} is configured here "
                    f"({key}): the failing process sends another {label}.",
                    "supports",
                    prefer=_OTHER_SENDER_FIX,
                )
            )
    return facts
