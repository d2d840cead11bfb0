"""Per-user rate limits kept in the database, so every replica shares them.

A token bucket of `burst` tokens refilled at `per_minute`, in its GCRA form: each user
has one "theoretical arrival time" (TAT). A message is allowed when, after adding one
emission interval T = 60 / per_minute to max(TAT, now), the TAT is at most `burst * T`
ahead of now. One statement decides and records, so concurrent messages of one user
are serialised by the row lock. The table is unlogged (migration 0006): taking a token
writes no WAL and waits for no flush; a crash only resets the buckets.

The token is taken inside the statement that admits a message
(`core.storage.admission`): one round trip per message for who is writing and whether
they may. The same statement keeps `refused` (migration 0012): set by the first
refusal after a message was let in, cleared by the next token, so the person is told
once per refused stretch; the refusals in between write nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from core.storage.database import Connection, Database

# Run first by whatever deletes a user (erasure, merge), in its transaction. The
# admission (`core.storage.admission`) locks the user's bucket and then their `users` row
# (the "last seen" stamp); `DELETE FROM users` locks the row and then, cascading, the
# bucket: a message admitted meanwhile would deadlock with it. Dropping the bucket
# first takes the two in the admission's order.
DROP_BUCKET = "DELETE FROM rate_limits WHERE user_id = $1"


@dataclass(frozen=True, slots=True)
class TokenBucket:
    burst: int
    per_minute: float

    @property
    def interval(self) -> timedelta:
        """The emission interval T: how long one token takes to come back."""
        return timedelta(seconds=60.0 / self.per_minute)

    @property
    def window(self) -> timedelta:
        """How far ahead of now the TAT may run: `burst` tokens' worth."""
        return self.interval * self.burst


class RateLimitRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def retry_after(
        self, user_id: int, bucket: TokenBucket, *, now: datetime, conn: Connection | None = None
    ) -> float:
        """Seconds until the user's next token (after one was refused); at least 1 ms."""
        async with self._db.connection(conn) as c:
            tat = await c.fetchval("SELECT tat FROM rate_limits WHERE user_id = $1", user_id)
        if tat is None:  # the bucket is gone (erased user, crash): a token is available
            return 0.001
        wait: timedelta = tat + bucket.interval - now - bucket.window
        return max(wait.total_seconds(), 0.001)
