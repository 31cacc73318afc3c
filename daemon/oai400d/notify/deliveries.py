"""The outbox's delivery bookkeeping, so that notifiers keep none: where the message of each
alert episode is, and a mark before an entry's first attempt.

Kept in the state DB's `deliveries` table under the notifier's name (its target), one row per
key, (channel, ts):
- `<fingerprint>@<episode>`: the message that stands for an alert episode, to edit it and reply
  in its thread. The fleet sync writes these too (adopting the message another host posted) and
  publishes the ones posted here, so the key is `base.episode_key`'s on every host;
- `intent:<ref>`: the entry's first attempt began at `ts` (seconds). A crash or a lost answer
  between a post and its bookkeeping leaves the mark, and the next attempt is told to look for
  that post instead of posting twice. Dropped with the entry once it is delivered or given up
  (a parked entry keeps it: an earlier try of it may have posted);
- `channel-id`: where the target's last message went, as the receiver named it (Slack answers
  with the channel id, which a channel's history needs).
"""

from __future__ import annotations

from collections.abc import Sequence

from oai400d.notify.base import Attempt, Delivered, MessageAddress
from oai400d.state import State

INTENT = "intent:"
CHANNEL = "channel-id"


class DeliveryLedger:
    """The bookkeeping of one notifier's deliveries, on the outbox thread's state connection."""

    def __init__(self, state: State, target: str, edits_messages: bool) -> None:
        self.state = state
        self.target = target
        # A notifier that never edits needs nothing kept: its entries are only marked delivered.
        self.keeps = edits_messages

    def begin(self, ref: str, episode: str | None, now: float) -> Attempt:
        """The attempt about to start, with what earlier deliveries left for it; marks the
        entry's first attempt (a retry keeps that mark, so it looks back to the first one)."""
        if not self.keeps:
            return Attempt(ref)
        intent_key = INTENT + ref
        keys = [intent_key, CHANNEL] if episode is None else [intent_key, CHANNEL, episode]
        rows = self.state.delivery_targets(keys, self.target)
        channel = rows[CHANNEL][0] if CHANNEL in rows else ""
        message = MessageAddress(*rows[episode]) if episode in rows else None
        intent = rows.get(intent_key)
        if intent is None:
            self.state.remember_delivery_once(intent_key, self.target, channel, f"{now:.6f}")
            return Attempt(ref, message, channel)
        return Attempt(ref, message, channel, _seconds(intent[1], now))

    def delivered(
        self,
        entry_ids: Sequence[int],
        attempt: Attempt,
        episode: str | None,
        delivered: Delivered,
        now: float,
    ) -> None:
        """The entries went out: keep where their message is, drop the attempt's mark."""
        if not self.keeps:
            self.state.record_delivery(entry_ids, self.target, {}, now=now)
            return
        remember: dict[str, tuple[str, str]] = {}
        if delivered.message is not None:
            where = (delivered.message.channel, delivered.message.ts)
            if episode is not None:
                remember[episode] = where
            remember[CHANNEL] = (where[0], where[0])
        self.state.record_delivery(entry_ids, self.target, remember, [INTENT + attempt.ref], now)

    def given_up(self, entry_id: int, attempt: Attempt, now: float) -> None:
        """The receiver can never take this message (MessageRejected): the entry leaves the
        queue, and its mark with it."""
        forget = [INTENT + attempt.ref] if self.keeps else []
        self.state.record_delivery([entry_id], self.target, {}, forget, now)


def _seconds(text: str, default: float) -> float:
    """A mark's time; a mark that is not one (a hand-edited DB) looks back from now."""
    try:
        return float(text)
    except ValueError:
        return default
