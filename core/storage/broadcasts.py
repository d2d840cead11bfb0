"""Broadcasts: the queue of texts for every user, their progress, and who receives them.

A broadcast is sent by one sender at a time: `claim_next` takes a session advisory
lock on it (two keys: this class and the broadcast), tried and never waited for, held
by the sender's connection until `release` or the end of the session. A sender that
dies therefore frees its broadcast for the next one, which resumes after
`last_user_id`: recipients are visited in user id order, and `advance` moves the
cursor and the counts in one statement after each recipient (migration 0010).

Admins only: the recipients query reads identities of every active user.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import asyncpg

from core.models import Platform
from core.storage.database import (
    Connection,
    Database,
    release_session_lock,
    try_session_lock,
)

# First key of the broadcast senders' advisory locks (arbitrary; "bcst" in ASCII).
BROADCAST_LOCK_CLASS = 0x62637374


class BroadcastStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Broadcast:
    id: int
    text: str
    admin_id: int
    platforms: list[Platform]
    status: BroadcastStatus
    last_user_id: int
    """The last recipient handled (0 before the first)."""
    sent: int
    failed: int
    total: int
    """Recipients counted when it was queued."""
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class Recipient:
    user_id: int
    platform: Platform
    chat_id: str


_COLUMNS = (
    "id, text, admin_id, platforms, status, last_user_id, sent, failed, total,"
    " created_at, started_at, finished_at"
)
_UNFINISHED = "('queued', 'running')"


def _broadcast(row: asyncpg.Record) -> Broadcast:
    return Broadcast(
        id=row["id"],
        text=row["text"],
        admin_id=row["admin_id"],
        platforms=[Platform(p) for p in row["platforms"]],
        status=BroadcastStatus(row["status"]),
        last_user_id=row["last_user_id"],
        sent=row["sent"],
        failed=row["failed"],
        total=row["total"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


def _lock_key(broadcast_id: int) -> int:
    """The int4 second key of a broadcast's lock (ids 2^32 apart would share it)."""
    return ((broadcast_id + 2**31) % 2**32) - 2**31


def _values(platforms: Sequence[Platform]) -> list[str]:
    return [p.value for p in platforms]


class BroadcastRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def queue(
        self,
        text: str,
        *,
        admin_id: int,
        platforms: Sequence[Platform],
        at: datetime,
        source: str | None = None,
        conn: Connection | None = None,
    ) -> Broadcast:
        """A new queued broadcast, with today's number of recipients on `platforms`; the
        one `source` (the command message, platform:chat:id) queued before, if any."""
        async with self._db.connection(conn) as c:
            row = await c.fetchrow(
                "INSERT INTO broadcasts (text, admin_id, platforms, total, created_at, source)"
                " SELECT $1, $2, $3::text[], count(DISTINCT i.user_id), $4, $5"
                " FROM identities i JOIN users u ON u.id = i.user_id"
                " WHERE u.status = 'active' AND i.private_chat_id IS NOT NULL"
                " AND i.platform = ANY($3::text[])"
                f" ON CONFLICT (source) DO NOTHING RETURNING {_COLUMNS}",
                text,
                admin_id,
                _values(platforms),
                at,
                source,
            )
            if row is None:
                row = await c.fetchrow(
                    f"SELECT {_COLUMNS} FROM broadcasts WHERE source = $1", source
                )
        assert row is not None
        return _broadcast(row)

    async def queued_by(self, source: str, *, conn: Connection | None = None) -> Broadcast | None:
        """The broadcast the command message `source` queued, if any."""
        async with self._db.connection(conn) as c:
            row = await c.fetchrow(f"SELECT {_COLUMNS} FROM broadcasts WHERE source = $1", source)
        return None if row is None else _broadcast(row)

    async def get(self, broadcast_id: int, *, conn: Connection | None = None) -> Broadcast | None:
        async with self._db.connection(conn) as c:
            row = await c.fetchrow(f"SELECT {_COLUMNS} FROM broadcasts WHERE id = $1", broadcast_id)
        return None if row is None else _broadcast(row)

    async def recent(self, limit: int, *, conn: Connection | None = None) -> list[Broadcast]:
        """The newest `limit` broadcasts, newest first."""
        async with self._db.connection(conn) as c:
            rows = await c.fetch(
                f"SELECT {_COLUMNS} FROM broadcasts ORDER BY id DESC LIMIT $1", limit
            )
        return [_broadcast(r) for r in rows]

    async def sent_by(self, admin_id: int, *, conn: Connection | None = None) -> list[Broadcast]:
        """Every broadcast `admin_id` queued, oldest first (their `/export`)."""
        async with self._db.connection(conn) as c:
            rows = await c.fetch(
                f"SELECT {_COLUMNS} FROM broadcasts WHERE admin_id = $1 ORDER BY id", admin_id
            )
        return [_broadcast(r) for r in rows]

    async def cancel(
        self, broadcast_id: int, *, at: datetime, conn: Connection | None = None
    ) -> Broadcast | None:
        """Cancel an unfinished broadcast; None when there is none with that id.

        A sender notices at its next `advance` and stops.
        """
        async with self._db.connection(conn) as c:
            row = await c.fetchrow(
                "UPDATE broadcasts SET status = 'cancelled', finished_at = $2"
                f" WHERE id = $1 AND status IN {_UNFINISHED} RETURNING {_COLUMNS}",
                broadcast_id,
                at,
            )
        return None if row is None else _broadcast(row)

    async def claim_next(
        self, platforms: Sequence[Platform], *, at: datetime, conn: Connection
    ) -> Broadcast | None:
        """The oldest unfinished broadcast on `platforms` (all of its platforms among
        them) that no other sender holds, now claimed by `conn`'s session and running.

        The lock is tried per broadcast, never in a `WHERE` clause (which would lock
        every row it looked at), and the status is read again once it is held: another
        sender may have finished it in between.
        """
        ids = await conn.fetch(
            f"SELECT id FROM broadcasts WHERE status IN {_UNFINISHED}"
            " AND platforms <@ $1::text[] ORDER BY id",
            _values(platforms),
        )
        for (broadcast_id,) in ids:
            if not await try_session_lock(conn, BROADCAST_LOCK_CLASS, _lock_key(broadcast_id)):
                continue
            row = await conn.fetchrow(
                "UPDATE broadcasts SET status = 'running', started_at = coalesce(started_at, $2)"
                f" WHERE id = $1 AND status IN {_UNFINISHED} RETURNING {_COLUMNS}",
                broadcast_id,
                at,
            )
            if row is not None:
                return _broadcast(row)
            await self.release(broadcast_id, conn=conn)
        return None

    async def release(self, broadcast_id: int, *, conn: Connection) -> None:
        """Give up `conn`'s claim on the broadcast (`claim_next`)."""
        await release_session_lock(conn, BROADCAST_LOCK_CLASS, _lock_key(broadcast_id))

    async def recipients(
        self,
        platforms: Sequence[Platform],
        *,
        after_user_id: int,
        users: int,
        conn: Connection | None = None,
    ) -> list[Recipient]:
        """Admins only: the private chats on `platforms` of the next `users` active users
        after `after_user_id`, by user id, each user's oldest identity first (the first
        one is tried first)."""
        async with self._db.connection(conn) as c:
            rows = await c.fetch(
                "WITH page AS ("
                "  SELECT DISTINCT i.user_id FROM identities i JOIN users u ON u.id = i.user_id"
                "  WHERE u.status = 'active' AND i.private_chat_id IS NOT NULL"
                "  AND i.platform = ANY($1::text[]) AND i.user_id > $2"
                "  ORDER BY i.user_id LIMIT $3)"
                " SELECT i.user_id, i.platform, i.private_chat_id FROM identities i"
                " JOIN page USING (user_id)"
                " WHERE i.private_chat_id IS NOT NULL AND i.platform = ANY($1::text[])"
                " ORDER BY i.user_id, i.created_at, i.platform",
                _values(platforms),
                after_user_id,
                users,
            )
        return [
            Recipient(r["user_id"], Platform(r["platform"]), r["private_chat_id"]) for r in rows
        ]

    async def advance(
        self, broadcast_id: int, user_id: int, *, delivered: bool, conn: Connection
    ) -> BroadcastStatus | None:
        """Record one recipient handled (sent or failed) and move the cursor past them;
        the broadcast's status now (cancelled: stop), None once it is gone."""
        status = await conn.fetchval(
            "UPDATE broadcasts SET last_user_id = $2,"
            " sent = sent + $3::boolean::int, failed = failed + (NOT $3)::int"
            " WHERE id = $1 RETURNING status",
            broadcast_id,
            user_id,
            delivered,
        )
        return None if status is None else BroadcastStatus(status)

    async def finish(
        self, broadcast_id: int, *, at: datetime, conn: Connection
    ) -> Broadcast | None:
        """Mark a running broadcast done; None when it no longer runs (cancelled, gone)."""
        row = await conn.fetchrow(
            "UPDATE broadcasts SET status = 'done', finished_at = $2"
            f" WHERE id = $1 AND status = 'running' RETURNING {_COLUMNS}",
            broadcast_id,
            at,
        )
        return None if row is None else _broadcast(row)
