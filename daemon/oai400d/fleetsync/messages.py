"""Where the one Slack message of a fleet alert's episode is, shared through the store.

The owner whose outbox posted it tells the store where it is; a host taking the alert over
edits that message instead of posting a second one.
"""

from __future__ import annotations

from oai400d.fleet import FleetAlert
from oai400d.state import SLACK_TARGET, State


def fleet_episode(view: FleetAlert) -> str:
    """The name of the one Slack message of this episode, the same on every host."""
    return f"fleet{view.episode}"


def adopt_message(state: State, view: FleetAlert) -> None:
    """Taking over: edit the message the previous owner posted, never post a second one."""
    message = view.message or {}
    channel, ts = message.get("channel"), message.get("ts")
    key = f"{view.fingerprint}@{fleet_episode(view)}"
    if channel and ts and state.delivery_target(key, SLACK_TARGET) is None:
        state.remember_delivery(key, SLACK_TARGET, str(channel), str(ts))


def posted_message(state: State, view: FleetAlert) -> dict[str, str] | None:
    """Where this host's outbox posted the message of the episode, when the store does not
    know it yet (None: it knows, or nothing was posted here)."""
    if view.message:
        return None
    key = f"{view.fingerprint}@{fleet_episode(view)}"
    posted = state.delivery_target(key, SLACK_TARGET)
    if posted is None:
        return None
    return {"channel": posted[0], "ts": posted[1], "key": key}
