"""Queries the commands need that the aggregate repositories do not offer.

User-data queries take the user id and are scoped by it. The two exceptions are marked
"admins only": broadcast recipients (identities of every active user) and looking up a
reply by id across users (`/why`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from core.models import Conversation, Fact, Message, Platform
from core.storage.database import Connection, Database
from core.storage.facts import facts_from_array, valid_facts_sql
from core.storage.messages import MESSAGE_COLUMNS as _MESSAGE_COLUMNS
from core.storage.messages import message_from_row, recent_window_sql, window_from_array
from core.storage.users import conversation_from_row


@dataclass(frozen=True, slots=True)
class Recipient:
    user_id: int
    platform: Platform
    chat_id: str


@dataclass(frozen=True, slots=True)
class MemoryContext:
    insights: list[Any]
    communication_style: str
    themes: list[Any]
    last_read_message_id: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class TurnState:
    conversation: Conversation
    memory: MemoryContext | None
    recent: list[Message]
    """Oldest first, without context snapshots."""
    facts: list[Fact]
    """Most important first, without source message ids."""


_MEMORY_COLUMNS = (
    "x.insights, x.communication_style, x.themes, x.last_read_message_id,"
    " x.updated_at AS memory_updated_at"
)


def _memory_context(row: asyncpg.Record) -> MemoryContext:
    return MemoryContext(
        insights=row["insights"],
        communication_style=row["communication_style"],
        themes=row["themes"],
        last_read_message_id=row["last_read_message_id"],
        updated_at=row["memory_updated_at"],
    )


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

    async def find_reply(
        self, message_id: int, *, conn: Connection | None = None
    ) -> Message | None:
        """Admins only: one message by id, live or archived, whoever it belongs to."""
        async with self._db.connection(conn) as c:
            row = await c.fetchrow(
                f"SELECT {_MESSAGE_COLUMNS}, false AS archived FROM messages WHERE id = $1"
                f" UNION ALL SELECT {_MESSAGE_COLUMNS}, true FROM messages_archive WHERE id = $1",
                message_id,
            )
        return None if row is None else message_from_row(row)

    async def latest_user_message(
        self, user_id: int, *, conn: Connection | None = None
    ) -> Message | None:
        """The user's newest message (live table: a message awaiting an answer is never
        archived)."""
        async with self._db.connection(conn) as c:
            row = await c.fetchrow(
                f"SELECT {_MESSAGE_COLUMNS}, false AS archived FROM messages"
                " WHERE user_id = $1 AND role = 'user' ORDER BY id DESC LIMIT 1",
                user_id,
            )
        return None if row is None else message_from_row(row)

    async def memory_context(
        self, user_id: int, *, conn: Connection | None = None
    ) -> MemoryContext | None:
        async with self._db.connection(conn) as c:
            row = await c.fetchrow(
                f"SELECT {_MEMORY_COLUMNS} FROM conversation_context x WHERE x.user_id = $1",
                user_id,
            )
        return None if row is None else _memory_context(row)

    async def turn_state(
        self,
        user_id: int,
        *,
        recent: int,
        facts: int,
        include_private: bool,
        conn: Connection | None = None,
    ) -> TurnState:
        """What every chat turn reads first, in one round trip: the conversation, what
        the memory job learned, the newest `recent` messages, and the `facts` most
        important facts still true (private ones only with `include_private`)."""
        async with self._db.connection(conn) as c:
            row = await c.fetchrow(
                f"SELECT c.*, x.user_id IS NOT NULL AS has_memory, {_MEMORY_COLUMNS},"
                f" {recent_window_sql('$1', '$2')} AS recent,"
                f" {valid_facts_sql('$1', '$4', '$3')} AS facts"
                " FROM conversations c LEFT JOIN conversation_context x USING (user_id)"
                " WHERE c.user_id = $1",
                user_id,
                recent,
                facts,
                include_private,
            )
        if row is None:
            raise LookupError(f"user {user_id} has no conversation")
        return TurnState(
            conversation=conversation_from_row(row),
            memory=_memory_context(row) if row["has_memory"] else None,
            recent=window_from_array(row["recent"]),
            facts=facts_from_array(row["facts"]),
        )

    async def delete_all_facts(self, user_id: int, *, conn: Connection | None = None) -> int:
        """Forget every fact of a user for good, invalidated ones included."""
        async with self._db.connection(conn) as c:
            result = await c.execute("DELETE FROM facts WHERE user_id = $1", user_id)
        return int(result.split()[-1])

    async def fact_counts(self, user_id: int, *, conn: Connection | None = None) -> tuple[int, int]:
        """(valid, invalidated) facts of a user."""
        async with self._db.connection(conn) as c:
            row = await c.fetchrow(
                "SELECT count(*) FILTER (WHERE invalid_at IS NULL) AS valid,"
                " count(*) FILTER (WHERE invalid_at IS NOT NULL) AS invalid"
                " FROM facts WHERE user_id = $1",
                user_id,
            )
        assert row is not None
        return int(row["valid"]), int(row["invalid"])
