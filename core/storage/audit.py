"""The admin audit trail: who did what to whom, never what anyone wrote.

`details` holds arguments and outcomes (counts, job names, broadcast and message ids,
the kind of a lookup), never message texts, fact contents or anything that identifies
a person: no user ids, usernames, names or platform ids. People are referenced only by
`actor_id` and `target_user_id`, so erasing someone turns those into NULL (the
schema's `ON DELETE SET NULL`) and leaves nothing of them here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from core.storage.database import Connection, Database

_COLUMNS = "id, actor_id, action, target_user_id, details, at"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    actor_id: int | None
    action: str
    target_user_id: int | None
    details: dict[str, Any]
    at: datetime


def _entry(row: asyncpg.Record) -> AuditEntry:
    return AuditEntry(
        row["id"], row["actor_id"], row["action"], row["target_user_id"], row["details"], row["at"]
    )


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
                f"SELECT {_COLUMNS} FROM admin_audit ORDER BY at DESC, id DESC LIMIT $1",
                limit,
            )
        return [_entry(r) for r in rows]

    async def about(self, user_id: int, *, conn: Connection | None = None) -> list[AuditEntry]:
        """Every entry `user_id` is the actor or the target of, oldest first (`/export`)."""
        async with self._db.connection(conn) as c:
            rows = await c.fetch(
                f"SELECT {_COLUMNS} FROM admin_audit WHERE actor_id = $1 OR target_user_id = $1"
                " ORDER BY at, id",
                user_id,
            )
        return [_entry(r) for r in rows]
