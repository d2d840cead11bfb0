"""The root of every error that core raises.

Callers catch these at the dispatch boundary (the engine and the CLI) and turn
them into short user-facing answers; everything else is a bug and is logged.
"""


class OnethreadError(Exception):
    """Base class of all errors raised by onethread's own code."""


class StorageError(OnethreadError):
    """The database refused or could not complete an operation."""


class DatabaseSetupError(StorageError):
    """The database cannot be used: wrong version, missing pgvector, bad migration state."""


class MigrationError(DatabaseSetupError):
    """A migration failed or an applied migration was changed after it landed."""


class DeliveryError(OnethreadError):
    """A platform did not accept a message (blocked by the user, chat gone, ...)."""


class StorageUnavailable(StorageError):  # noqa: N818 - a condition, not a failure of ours
    """The database cannot be reached: the message was not (fully) handled.

    Raised by `Engine.handle` so that the adapter delivers the message again later
    instead of acknowledging it; the engine answers redeliveries correctly whatever
    stage the first attempt reached.
    """


class StorageBusy(StorageUnavailable):
    """Every pooled connection stayed busy for the pool's acquire timeout: the server is
    up, but the message was not handled. Delivered again like an outage, but never
    reported as one."""
