"""Replies a person received while the database was down, kept to record later.

The engine delivers a reply, then records it. When that record fails because the
database is unreachable, the message stays pending and comes again (Telegram delivers
the update again, the Discord adapter retries it); recording the kept reply then,
instead of asking the model again, spares the person a second answer. Kept in memory
only, for a while and up to a number: a restart, or a message that comes back later or
to another replica, is answered again (at least once, docs/faults.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

#: How many replies are kept at most (each holds its snapshot and embedding); the
#: oldest goes first.
KEEP_AT_MOST = 1_000
#: How long a reply is kept: Telegram retries an update for as long as the database is
#: down, the Discord adapter for 10 minutes.
KEEP_SECONDS = 3_600.0

MessageKey = tuple[str, str | None, str | None]
"""A platform message: platform, chat id, platform message id."""

ReplyT = TypeVar("ReplyT")


@dataclass(frozen=True, slots=True)
class _Kept(Generic[ReplyT]):
    message_id: int
    reply: ReplyT
    kept_at: float


class UnrecordedReplies(Generic[ReplyT]):
    def __init__(
        self,
        *,
        at_most: int = KEEP_AT_MOST,
        seconds: float = KEEP_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._at_most = at_most
        self._seconds = seconds
        self._clock = clock
        self._kept: dict[MessageKey, _Kept[ReplyT]] = {}

    def keep(self, key: MessageKey, message_id: int, reply: ReplyT) -> None:
        """Keep the reply delivered for the stored message `message_id` (its `key`)."""
        self._kept.pop(key, None)
        while len(self._kept) >= self._at_most:
            del self._kept[next(iter(self._kept))]  # dicts keep insertion order
        self._kept[key] = _Kept(message_id, reply, self._clock())

    def __contains__(self, key: MessageKey) -> bool:
        kept = self._kept.get(key)
        return kept is not None and self._fresh(kept)

    def get(self, key: MessageKey, message_id: int) -> ReplyT | None:
        """The reply kept for this stored message; None if none is, or only one for
        another row under the same platform ids (the first was erased) or too old."""
        kept = self._kept.get(key)
        if kept is None:
            return None
        if kept.message_id != message_id or not self._fresh(kept):
            del self._kept[key]
            return None
        return kept.reply

    def forget(self, key: MessageKey) -> None:
        """The reply is recorded: drop it (only then, so a failed record keeps it)."""
        self._kept.pop(key, None)

    def _fresh(self, kept: _Kept[ReplyT]) -> bool:
        return self._clock() - kept.kept_at <= self._seconds
