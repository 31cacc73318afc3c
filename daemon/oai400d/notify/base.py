"""What every notifier offers, and the values it trades with the outbox.

A notifier only delivers: it sends (or edits) and describes notifications, and raises a
DeliveryError that says whether a retry can help (TransientDeliveryError: the outbox tries again
with backoff, honouring `retry_after`; PermanentDeliveryError: the receiver refuses it for its
own configuration (a revoked token, a channel the bot is not in), so the outbox parks the entry,
tells the operator once and tries again slowly and after a reload; MessageRejected: this message
can never be sent as it is, so the outbox gives it up and tells the operator once). It keeps no
bookkeeping and never sees the state DB: what it needs from earlier deliveries comes in an
`Attempt`, and what later ones will need comes back in a `Delivered`. The outbox
(notify/outbox.py, with notify/deliveries.py) keeps those, marks attempts and retries.

Adding a notifier is a class with the attributes and methods of `Notifier` below, built by
`make_notifiers` in wiring.py; no SQL, HTTP through notify/posting.py. One that only posts (a
webhook, a pager, the console) sets `edits_messages = False`, ignores the Attempt beyond its
`ref` and returns `Delivered()`. One that keeps one message per problem and edits it (the Slack
bot) sets `edits_messages = True`, returns the address of the message it posted or edited,
finds it in `Attempt.message` next time, and before posting again checks whether
`Attempt.earlier_attempt` already did. One whose receiver forgets alerts it is not told about
again (Alertmanager) sets `resend_interval`; every other sets it to 0.0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from oai400d.errors import PermanentDeliveryError
from oai400d.model import Notification


class MessageRejected(PermanentDeliveryError):
    """The receiver refused this message itself (its layout, its length, an empty text): no
    retry of it can help, but the next messages can go through, so it is given up (a refusal
    for the receiver's configuration is a plain PermanentDeliveryError, and parks the entry)."""


@dataclass(frozen=True, slots=True)
class MessageAddress:
    """Where a posted message is, to edit it or reply in its thread (Slack: channel id, ts)."""

    channel: str
    ts: str


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try at delivering one outbox entry, with what earlier deliveries left for it."""

    # The outbox entry (or digest): the same across retries and restarts, so a notifier can tag
    # what it posts with it and find the post again.
    ref: str
    # The message that stands for this notification's alert episode (see `episode_key`), when
    # one was posted before: edit it rather than post a second one.
    message: MessageAddress | None = None
    # Where this notifier's last message went, as its receiver named it (Slack: the channel id,
    # which a channel's history needs); "" before the first post.
    channel: str = ""
    # When an earlier attempt of this entry began, if one did: it may have posted before its
    # answer was lost (a timeout, a kill -9), so look for that post before posting again.
    earlier_attempt: float | None = None


@dataclass(frozen=True, slots=True)
class Delivered:
    """What a delivery leaves for later ones (nothing, from a notifier that never edits)."""

    # The message that now stands for the alert episode (posted, found again or edited).
    message: MessageAddress | None = None


def episode_key(notification: Notification) -> str:
    """The alert episode a notification belongs to: a problem that resolves and comes back is a
    new one. A fleet's notifications name their episode, so that every host that comes to own
    the alert edits the same message."""
    return f"{notification.fingerprint}@{notification.episode or notification.first_seen}"


class Notifier(Protocol):
    """Delivers notifications, or raises a DeliveryError saying whether a retry can help."""

    # Also the name its message addresses are kept under (state.SLACK_TARGET for the Slack bot).
    name: str
    # Fold this many or more due notifications into one digest message (0: never fold).
    digest_threshold: int
    # At most one message this often (Slack: about one per second per channel).
    min_interval: float
    # True: it edits the messages it posted, so the outbox keeps their addresses and marks each
    # entry before its first attempt. False: the outbox keeps nothing for it.
    edits_messages: bool
    # A receiver that forgets an alert it is not told about again (Alertmanager expires it after
    # its resolve_timeout): every this many seconds the outbox sends it, through send_digest,
    # the latest notification of each alert it was told is open. 0: never.
    resend_interval: float

    def send(self, notification: Notification, attempt: Attempt) -> Delivered:
        """Deliver one notification (post it, or edit the message in `attempt.message`)."""
        ...

    def send_digest(self, notifications: Sequence[Notification], attempt: Attempt) -> Delivered:
        """Deliver many notifications as one message."""
        ...

    def describe(self) -> str:
        """Where notifications go, for people (never containing a secret)."""
        ...
