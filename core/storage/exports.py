"""Who has an `/export` running: one at a time per person, across replicas.

A run claims its person's row in `export_runs` (migration 0012) for a while, and
deletes it when it ends. The claim is tried, never waited for: a second `/export` while
one runs is answered at once. A process that dies mid-export leaves its claim until it
expires, which is the longest a person then waits for their next export.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from core.storage.database import Connection, Database


class ExportClaims:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim(
        self, user_id: int, *, now: datetime, ttl: timedelta, conn: Connection | None = None
    ) -> uuid.UUID | None:
        """A token for `release`, or None while another export of `user_id` runs (its
        claim not yet expired at `now`)."""
        holder = uuid.uuid4()
        async with self._db.connection(conn) as c:
            claimed = await c.fetchval(
                "INSERT INTO export_runs AS e (user_id, holder, expires_at) VALUES ($1, $2, $3)"
                " ON CONFLICT (user_id) DO UPDATE"
                " SET holder = excluded.holder, expires_at = excluded.expires_at"
                " WHERE e.expires_at <= $4"
                " RETURNING true",
                user_id,
                holder,
                now + ttl,
                now,
            )
        return holder if claimed else None

    async def release(
        self, user_id: int, holder: uuid.UUID, *, conn: Connection | None = None
    ) -> None:
        """End the claim `holder` made (a claim that expired and was taken over by
        another run is that run's, and stays)."""
        async with self._db.connection(conn) as c:
            await c.execute(
                "DELETE FROM export_runs WHERE user_id = $1 AND holder = $2", user_id, holder
            )
