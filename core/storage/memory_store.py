"""The SQL of the memory job: who has unread messages, what they are, and writing back
the summary, the insights and the read position. Facts go through `FactRepository`.

Every query is scoped by user id. Claims are session advisory locks in a key space of
their own (two int4 keys: the job's class, the user), so they never collide with the
engine's per-user lock (one bigint key) and a memory run never blocks a conversation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.models import MemoryContext, MessageRole
from core.storage.database import Connection, Database

# First key of the memory job's advisory locks (arbitrary; "memo" in ASCII).
MEMORY_LOCK_CLASS = 0x6D656D6F


def lock_key(user_id: int) -> int:
    """A user id folded into the int4 second key of a two-key advisory lock.

    Ids 2^32 apart share a key; two such users then merely wait for each other.
    """
    return ((user_id + 2**31) % 2**32) - 2**31


@dataclass(frozen=True, slots=True)
class UnreadMessage:
    id: int
    role: MessageRole
    content: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class MemoryState:
    """What the memory job knows of a user before reading new messages."""

    user_id: int
    last_read_message_id: int
    summary: str
    summary_version: int
    insights: list[str]
    communication_style: str
    themes: list[str]


@dataclass(frozen=True, slots=True)
class MemoryWrite:
    """The non-fact part of one user's memory update."""

    summary: str
    through_message_id: int
    insights: list[str]
    communication_style: str
    themes: list[str]
    at: datetime


class MemoryStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def context(
        self, user_id: int, *, conn: Connection | None = None
    ) -> MemoryContext | None:
        """What the memory job learned about how to talk with the user."""
        async with self._db.connection(conn) as c:
            row = await c.fetchrow(
                "SELECT insights, communication_style, themes, last_read_message_id, updated_at"
                " FROM conversation_context WHERE user_id = $1",
                user_id,
            )
        return None if row is None else MemoryContext(**dict(row))

    async def users_with_unread(self, limit: int, *, conn: Connection | None = None) -> list[int]:
        """Users with messages past their read position, least recently processed first."""
        async with self._db.connection(conn) as c:
            rows = await c.fetch(
                "SELECT cc.user_id FROM conversation_context cc"
                " WHERE EXISTS (SELECT 1 FROM messages m WHERE m.user_id = cc.user_id"
                "               AND m.id > cc.last_read_message_id)"
                " ORDER BY cc.updated_at, cc.user_id LIMIT $1",
                limit,
            )
        return [r["user_id"] for r in rows]

    async def try_claim(self, user_id: int, *, conn: Connection) -> bool:
        """Claim the user for this connection's session; False if another runner has it."""
        return bool(
            await conn.fetchval(
                "SELECT pg_try_advisory_lock($1, $2)", MEMORY_LOCK_CLASS, lock_key(user_id)
            )
        )

    async def release(self, user_id: int, *, conn: Connection) -> None:
        await conn.execute(
            "SELECT pg_advisory_unlock($1, $2)", MEMORY_LOCK_CLASS, lock_key(user_id)
        )

    async def state(self, user_id: int, *, conn: Connection | None = None) -> MemoryState | None:
        async with self._db.connection(conn) as c:
            row = await c.fetchrow(
                "SELECT cc.last_read_message_id, cc.insights, cc.communication_style, cc.themes,"
                " c.summary, c.summary_version FROM conversation_context cc"
                " JOIN conversations c ON c.user_id = cc.user_id WHERE cc.user_id = $1",
                user_id,
            )
        if row is None:
            return None
        return MemoryState(
            user_id=user_id,
            last_read_message_id=row["last_read_message_id"],
            summary=row["summary"],
            summary_version=row["summary_version"],
            insights=_strings(row["insights"]),
            communication_style=row["communication_style"],
            themes=_strings(row["themes"]),
        )

    async def unread(
        self, user_id: int, after_id: int, limit: int, *, conn: Connection | None = None
    ) -> list[UnreadMessage]:
        """The user's live messages after `after_id`, oldest first (unread ones are never
        archived: the archive job only moves what the memory job has read)."""
        async with self._db.connection(conn) as c:
            rows = await c.fetch(
                "SELECT id, role, content, created_at FROM messages"
                " WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                user_id,
                after_id,
                limit,
            )
        return [
            UnreadMessage(r["id"], MessageRole(r["role"]), r["content"], r["created_at"])
            for r in rows
        ]

    async def lock_position(self, user_id: int, *, conn: Connection) -> int | None:
        """The read position, row-locked until the caller's transaction ends; None if the
        user is gone (erased meanwhile)."""
        value = await conn.fetchval(
            "SELECT last_read_message_id FROM conversation_context WHERE user_id = $1 FOR UPDATE",
            user_id,
        )
        return None if value is None else int(value)

    async def write(self, user_id: int, update: MemoryWrite, *, conn: Connection) -> None:
        """Store the new summary (its version bumped), insights and read position."""
        await conn.execute(
            "UPDATE conversations SET summary = $2, summary_version = summary_version + 1,"
            " summary_through_message_id = $3 WHERE user_id = $1",
            user_id,
            update.summary,
            update.through_message_id,
        )
        await conn.execute(
            "UPDATE conversation_context SET insights = $2, communication_style = $3,"
            " themes = $4, last_read_message_id = $5, updated_at = $6 WHERE user_id = $1",
            user_id,
            update.insights,
            update.communication_style,
            update.themes,
            update.through_message_id,
            update.at,
        )

    async def add_sources(
        self, user_id: int, fact_id: int, source_ids: Sequence[int], *, conn: Connection
    ) -> bool:
        """Note that a valid fact was stated again (its sources grow); False if it is gone."""
        result = await conn.execute(
            "UPDATE facts SET source_message_ids ="
            " ARRAY(SELECT DISTINCT unnest(source_message_ids || $3::bigint[])),"
            " updated_at = now() WHERE id = $1 AND user_id = $2 AND invalid_at IS NULL",
            fact_id,
            user_id,
            list(source_ids),
        )
        return result.endswith(" 1")


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []
