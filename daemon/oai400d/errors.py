"""The project's exception tree; each error says whether retrying the same thing can help.

Oai400dError
├── ConfigError          the configuration is invalid (exit 78); retrying cannot help
├── InputError           an input file or stream cannot be read; may be retried
├── StateError           the state database cannot be used
│   ├── StateDamagedError    damaged, or not a SQLite database: set aside, a fresh one started
│   └── StateFullError       its disk is full: the same write is retried until space returns
└── DeliveryError        a notification could not be delivered
    ├── TransientDeliveryError   retry later (rate limit, 5xx, timeout, connection)
    └── PermanentDeliveryError   retrying soon cannot help (bad token, unknown channel): the
        │                        outbox parks the notification until a reload, a restart or
        │                        its slow retry
        └── MessageRejected      this message can never be taken as it is: dropped
└── FleetError           the shared alert store (PostgreSQL, state.fleet) cannot be used
    ├── FleetUnavailableError    retry later (unreachable, timed out, connection lost)
    └── FleetStoreError          retrying cannot help (refused login, schema too new, a bug)
"""

from __future__ import annotations


class Oai400dError(Exception):
    """Base of every error oai400d raises on purpose."""

    retryable: bool = False


class ConfigError(Oai400dError):
    """The configuration is invalid; `problems` lists every problem, each naming its key."""

    def __init__(self, problems: list[str], source: str = "") -> None:
        self.problems = list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"invalid configuration{where}:\n{lines}")


class InputError(Oai400dError):
    """An input cannot be read (missing, permission denied, not a file)."""

    retryable = True


class StateError(Oai400dError):
    """The state database cannot be opened or written."""


class StateDamagedError(StateError):
    """The state database is damaged (SQLITE_CORRUPT) or not a SQLite database at all
    (SQLITE_NOTADB): no retry reads it again; the daemon moves it aside and starts afresh."""


class StateFullError(StateError):
    """The state database's disk (or quota) is full (SQLITE_FULL, ENOSPC): the same write
    succeeds once there is space again."""

    retryable = True


class DeliveryError(Oai400dError):
    """A notification could not be delivered."""


class TransientDeliveryError(DeliveryError):
    """Delivery failed for a reason that may pass; `retry_after` is a hint in seconds."""

    retryable = True

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    """Delivery failed for a reason that retrying cannot fix; a person must act."""


class FleetError(Oai400dError):
    """The fleet's shared alert store (PostgreSQL, `state.fleet`) cannot be used."""


class FleetUnavailableError(FleetError):
    """The store is unreachable, timed out or dropped the connection; retrying may succeed."""

    retryable = True


class FleetStoreError(FleetError):
    """The store refused in a way retrying cannot fix (login, rights, schema); a person must act."""
