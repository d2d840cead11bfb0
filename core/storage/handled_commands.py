"""Remembers which command messages were handled, so a redelivered one is not run twice."""

from __future__ import annotations

from datetime import datetime, timedelta

from core.models import Platform
from core.storage.database import Connection, Database

KEEP = timedelta(days=7)


class HandledCommandRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim(
        self,
        user_id: int,
        platform: Platform,
        chat_id: str,
        message_id: str,
        *,
        now: datetime,
        conn: Connection | None = None,
    ) -> bool:
        """True the first time a command message is seen; False for a redelivery.

        Also forgets claims older than a week (cheap: an index on `handled_at`).
        """
        async with self._db.transaction(conn) as c:
            await c.execute("DELETE FROM handled_commands WHERE handled_at < $1", now - KEEP)
            claimed = await c.fetchval(
                "INSERT INTO handled_commands (platform, chat_id, platform_message_id, user_id,"
                " handled_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING true",
                platform.value,
                chat_id,
                message_id,
                user_id,
                now,
            )
        return bool(claimed)
