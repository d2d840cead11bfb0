"""Remembers which command messages were handled, so a redelivered one is not run twice."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from core.models import Platform
from core.storage.database import Connection, Database

KEEP = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class HandledCommand:
    """A command message that was run: where it was sent, when, and whether it ended."""

    platform: Platform
    chat_id: str
    message_id: str
    handled_at: datetime
    done_at: datetime | None


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
        """True the first time a command message is seen, and for a redelivery of one
        that never finished (`finish`: a database outage stopped it); False for a
        redelivery of one that ran. Also forgets claims older than a week (cheap: an
        index on `handled_at`)."""
        async with self._db.transaction(conn) as c:
            await c.execute("DELETE FROM handled_commands WHERE handled_at < $1", now - KEEP)
            claimed = await c.fetchval(
                "INSERT INTO handled_commands (platform, chat_id, platform_message_id, user_id,"
                " handled_at) VALUES ($1, $2, $3, $4, $5)"
                " ON CONFLICT (platform, chat_id, platform_message_id) DO UPDATE"
                " SET handled_at = excluded.handled_at WHERE handled_commands.done_at IS NULL"
                " RETURNING true",
                platform.value,
                chat_id,
                message_id,
                user_id,
                now,
            )
        return bool(claimed)

    async def finish(
        self,
        platform: Platform,
        chat_id: str,
        message_id: str,
        *,
        conn: Connection | None = None,
    ) -> None:
        """The claimed command ran to its end: a redelivery must not run it again."""
        async with self._db.connection(conn) as c:
            await c.execute(
                "UPDATE handled_commands SET done_at = now()"
                " WHERE platform = $1 AND chat_id = $2 AND platform_message_id = $3",
                platform.value,
                chat_id,
                message_id,
            )

    async def of_user(
        self, user_id: int, *, conn: Connection | None = None
    ) -> list[HandledCommand]:
        """The command messages of `user_id` still remembered, oldest first (`/export`)."""
        async with self._db.connection(conn) as c:
            rows = await c.fetch(
                "SELECT platform, chat_id, platform_message_id, handled_at, done_at"
                " FROM handled_commands WHERE user_id = $1 ORDER BY handled_at",
                user_id,
            )
        return [
            HandledCommand(
                Platform(r["platform"]),
                r["chat_id"],
                r["platform_message_id"],
                r["handled_at"],
                r["done_at"],
            )
            for r in rows
        ]
