"""The SQL of the memory job: who has unread messages, what they are, and writing back
the summary, the insights and the read position. Facts go through `FactRepository`.
Also forgetting all of it (`/forget all`), which must not race with the job.

Every query is scoped by user id. Claims are session advisory locks in a key space of
their own (two int4 keys: the job's class, the user), so they never collide with the
engine's per-user lock (one bigint key) and a memory run never blocks a conversation.
`/forget` takes the same key as a transaction lock (`hold`): it waits for a running
job to finish (and then forgets what the job wrote), and a job cannot start meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from core.models import MemoryContext, MessageRole
from core.storage.database import (
    Connection,
    Database,
    release_session_lock,
    try_session_lock,
)
from core.storage.message_passages import MessagePassageRepository

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
    shared_chat: bool = False
    """Said in a group or server channel (else in the person's private chat)."""
    remembered: bool = True
    """False: never to be learned from (said while memory was off, or a forgotten fact's
    source), and so is a reply to such a message."""


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
    memory_off: bool = False
    """The person switched memory off (`/memory off`): nothing is learned."""


@dataclass(frozen=True, slots=True)
class MemoryWrite:
    """The non-fact part of one user's memory update."""

    summary: str
    through_message_id: int
    insights: list[str]
    communication_style: str
    themes: list[str]
    at: datetime


@dataclass(frozen=True, slots=True)
class Forgotten:
    """What `/forget all` removed."""

    facts: int
    messages: int
    """Live and archived messages deleted (pending ones are kept)."""


# $1 user, $2 when. Run by `forget_all` after the person's rows are locked (see there).
# The new read position is the newest message there is: everything up to it is gone
# or set aside, and a memory run that read anything before it then writes nothing.
_FORGET_ALL = """
WITH position AS (
    SELECT greatest(cc.last_read_message_id,
                    coalesce((SELECT max(id) FROM messages WHERE user_id = $1), 0)) AS id
    FROM conversation_context cc WHERE cc.user_id = $1
), set_aside AS (
    UPDATE messages SET remembered = false
    WHERE user_id = $1 AND status = 'pending' AND remembered
), live AS (
    DELETE FROM messages WHERE user_id = $1 AND status IS DISTINCT FROM 'pending'
    RETURNING id
), archived AS (
    DELETE FROM messages_archive WHERE user_id = $1 RETURNING id
), audio AS (
    DELETE FROM message_audio WHERE user_id = $1
    AND message_id IN (SELECT id FROM live UNION ALL SELECT id FROM archived)
), facts AS (
    DELETE FROM facts WHERE user_id = $1 RETURNING 1
), search_stats AS (
    DELETE FROM user_search_stats WHERE user_id = $1
), summary AS (
    UPDATE conversations SET summary = '', summary_version = summary_version + 1,
        summary_through_message_id = nullif((SELECT id FROM position), 0),
        persona_overrides = '{}'::jsonb
    WHERE user_id = $1
), profile AS (
    UPDATE conversation_context SET insights = '[]'::jsonb, communication_style = '',
        themes = '[]'::jsonb, last_read_message_id = (SELECT id FROM position),
        updated_at = $2
    WHERE user_id = $1
)
SELECT (SELECT count(*) FROM facts) AS facts,
       (SELECT count(*) FROM live) + (SELECT count(*) FROM archived) AS messages
"""


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
        return await try_session_lock(conn, MEMORY_LOCK_CLASS, lock_key(user_id))

    async def release(self, user_id: int, *, conn: Connection) -> None:
        await release_session_lock(conn, MEMORY_LOCK_CLASS, lock_key(user_id))

    async def state(self, user_id: int, *, conn: Connection | None = None) -> MemoryState | None:
        async with self._db.connection(conn) as c:
            row = await c.fetchrow(
                "SELECT cc.last_read_message_id, cc.insights, cc.communication_style, cc.themes,"
                " c.summary, c.summary_version, c.memory_off_since IS NOT NULL AS memory_off"
                " FROM conversation_context cc"
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
            memory_off=row["memory_off"],
        )

    async def unread(
        self, user_id: int, after_id: int, limit: int, *, conn: Connection | None = None
    ) -> list[UnreadMessage]:
        """The user's live messages after `after_id`, oldest first (unread ones are never
        archived: the archive job only moves what the memory job has read), each with
        whether it may be learned from (`UnreadMessage.remembered`)."""
        async with self._db.connection(conn) as c:
            rows = await c.fetch(
                "SELECT m.id, m.role, m.content, m.created_at, m.shared_chat,"
                " m.remembered AND NOT EXISTS ("
                "   SELECT FROM messages q WHERE q.id = m.reply_to_id AND NOT q.remembered"
                " ) AND NOT EXISTS ("
                "   SELECT FROM messages_archive q WHERE q.id = m.reply_to_id AND NOT q.remembered"
                " ) AS remembered"
                " FROM messages m WHERE m.user_id = $1 AND m.id > $2 ORDER BY m.id LIMIT $3",
                user_id,
                after_id,
                limit,
            )
        return [
            UnreadMessage(
                r["id"],
                MessageRole(r["role"]),
                r["content"],
                r["created_at"],
                shared_chat=r["shared_chat"],
                remembered=r["remembered"],
            )
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

    async def pass_over(
        self, user_id: int, through_message_id: int, at: datetime, *, conn: Connection
    ) -> None:
        """Move the read position past messages that teach nothing (memory off, or none
        to be learned from), leaving the summary and the profile as they are."""
        await conn.execute(
            "UPDATE conversation_context SET last_read_message_id = $2, updated_at = $3"
            " WHERE user_id = $1",
            user_id,
            through_message_id,
            at,
        )

    async def add_sources(
        self,
        user_id: int,
        fact_id: int,
        source_ids: Sequence[int],
        *,
        private: bool,
        conn: Connection,
    ) -> bool:
        """Note that a valid fact was stated again (its sources grow, and it becomes
        private when this statement is); False if it is gone."""
        result = await conn.execute(
            "UPDATE facts SET source_message_ids ="
            " ARRAY(SELECT DISTINCT unnest(source_message_ids || $3::bigint[])),"
            " is_private = is_private OR $4, updated_at = now()"
            " WHERE id = $1 AND user_id = $2 AND invalid_at IS NULL",
            fact_id,
            user_id,
            list(source_ids),
            private,
        )
        return result.endswith(" 1")

    async def hold(self, user_id: int, *, wait: timedelta, conn: Connection) -> bool:
        """Take the user's memory lock to the end of `conn`'s transaction, waiting at most
        `wait` for a memory run that holds it; False (nothing held) if it still runs.

        While held, no memory run starts for the user (its claim is tried, not waited
        for). The wait happens in a savepoint, so that running out of time leaves the
        caller's transaction usable.
        """
        try:
            async with conn.transaction():
                before = await conn.fetchval("SELECT current_setting('lock_timeout')")
                await conn.execute(
                    "SELECT set_config('lock_timeout', $1, true)",
                    f"{max(1, round(wait.total_seconds() * 1000))}ms",
                )
                await conn.execute(
                    "SELECT pg_advisory_xact_lock($1, $2)", MEMORY_LOCK_CLASS, lock_key(user_id)
                )
                await conn.execute("SELECT set_config('lock_timeout', $1, true)", before)
        except asyncpg.exceptions.LockNotAvailableError:
            return False
        return True

    async def forget_all(self, user_id: int, *, at: datetime, conn: Connection) -> Forgotten:
        """Forget everything learned about the user and delete their conversation so far:
        every fact, the summary (its version bumped), insights, style and themes, what
        the person asked of the persona (`/persona`), their words counted for keyword
        recall (`user_search_stats`), and every live and archived message
        but user messages still pending (being answered now; they are kept, set aside as
        not `remembered`). Counters stay.

        Call inside a transaction that `hold`s the user. The person's rows are locked
        first, in the order a memory run's apply step locks them (memory position, then
        conversation); a chat turn storing a message meanwhile waits for the
        conversation row, so its message comes after what is forgotten.
        """
        await self.lock_position(user_id, conn=conn)
        await conn.execute("SELECT FROM conversations WHERE user_id = $1 FOR UPDATE", user_id)
        row = await conn.fetchrow(_FORGET_ALL, user_id, at)
        assert row is not None
        await MessagePassageRepository(self._db).delete_orphans(user_id, conn=conn)
        return Forgotten(facts=int(row["facts"]), messages=int(row["messages"]))


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []
