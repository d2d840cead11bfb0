"""Reads across users for the admins: broadcast recipients (identities of every active
user)."""

from __future__ import annotations

from dataclasses import dataclass

from core.models import Platform
from core.storage.database import Connection, Database


@dataclass(frozen=True, slots=True)
class Recipient:
    user_id: int
    platform: Platform
    chat_id: str


class Directory:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def broadcast_recipients(
        self, platforms: list[Platform], *, conn: Connection | None = None
    ) -> list[Recipient]:
        """Admins only: every private chat of every active user on `platforms`, by user,
        oldest identity first (the first one is tried first)."""
        async with self._db.connection(conn) as c:
            rows = await c.fetch(
                "SELECT i.user_id, i.platform, i.private_chat_id FROM identities i"
                " JOIN users u ON u.id = i.user_id"
                " WHERE u.status = 'active' AND i.private_chat_id IS NOT NULL"
                " AND i.platform = ANY($1::text[])"
                " ORDER BY i.user_id, i.created_at, i.platform",
                [p.value for p in platforms],
            )
        return [
            Recipient(r["user_id"], Platform(r["platform"]), r["private_chat_id"]) for r in rows
        ]
