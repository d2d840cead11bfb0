"""The admin audit trail: who did what to whom, never what anyone wrote.

`details` holds arguments and outcomes (counts, ids, names), never message texts or
fact contents. A target user is referenced, so erasing that user turns the reference
into NULL (the schema's `ON DELETE SET NULL`) and leaves nothing of them here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.storage.database import Connection, Database


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    actor_id: int | None
    action: str
    target_user_id: int | None
    details: dict[str, Any]
    at: datetime


class AuditRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(
        self,
        actor_id: int,
        action: str,
        *,
        target_user_id: int | None = None,
        details: dict[str, Any] | None = None,
        at: datetime | None = None,
        conn: Connection | None = None,
    ) -> int:
        async with self._db.connection(conn) as c:
            value = await c.fetchval(
                "INSERT INTO admin_audit (actor_id, action, target_user_id, details, at)"
                " VALUES ($1, $2, $3, $4, coalesce($5, now())) RETURNING id",
                actor_id,
                action,
                target_user_id,
                details or {},
                at,
            )
        return int(value)

    async def recent(self, limit: int, *, conn: Connection | None = None) -> list[AuditEntry]:
        """The newest `limit` entries, newest first."""
        async with self._db.connection(conn) as c:
            rows = await c.fetch(
                "SELECT id, actor_id, action, target_user_id, details, at FROM admin_audit"
                " ORDER BY at DESC, id DESC LIMIT $1",
                limit,
            )
        return [
            AuditEntry(
                r["id"], r["actor_id"], r["action"], r["target_user_id"], r["details"], r["at"]
            )
            for r in rows
        ]
