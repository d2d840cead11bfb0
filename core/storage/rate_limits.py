"""Per-user rate limits kept in the database, so every replica shares them.

A token bucket of `burst` tokens refilled at `per_minute`, in its GCRA form: each user
has one "theoretical arrival time" (TAT). A message is allowed when, after adding one
emission interval T = 60 / per_minute to max(TAT, now), the TAT is at most `burst * T`
ahead of now. One statement decides and records, so concurrent messages of one user
are serialised by the row lock. The table is unlogged (migration 0006): taking a token
writes no WAL and waits for no flush; a crash only resets the buckets.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from core.storage.database import Connection, Database


class RateLimitRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def take(
        self,
        user_id: int,
        *,
        now: datetime,
        burst: int,
        per_minute: float,
        conn: Connection | None = None,
    ) -> float:
        """Take one token: 0.0 when allowed, else the seconds until one is available."""
        interval = timedelta(seconds=60.0 / per_minute)
        async with self._db.connection(conn) as c:
            allowed = await c.fetchval(
                "INSERT INTO rate_limits AS r (user_id, tat) VALUES ($1, $2::timestamptz + $3)"
                " ON CONFLICT (user_id) DO UPDATE SET tat = greatest(r.tat, $2) + $3"
                " WHERE greatest(r.tat, $2) + $3 - $2 <= $4"
                " RETURNING true",
                user_id,
                now,
                interval,
                interval * burst,
            )
            if allowed:
                return 0.0
            tat = await c.fetchval("SELECT tat FROM rate_limits WHERE user_id = $1", user_id)
        wait: timedelta = tat + interval - now - interval * burst
        return max(wait.total_seconds(), 0.001)
