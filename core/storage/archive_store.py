"""The SQL of the maintenance jobs: moving messages to the archive, retention, and
re-embedding stored rows.

Archive moves are per user (`user_id` in every predicate) and claimed twice over: a
per-user transaction advisory lock (tried, never waited for) so two archivers never
work on one user at once, and `FOR UPDATE SKIP LOCKED` on the rows so a move never
waits for a row a conversation turn is updating. Retention and re-embedding are
deployment-wide passes by id or age ("admins only").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import numpy as np

from core.storage.database import Connection, Database
from core.storage.memory_store import lock_key
from core.storage.message_passages import MessagePassageRepository

# First key of the archive job's advisory locks (arbitrary; "arch" in ASCII).
ARCHIVE_LOCK_CLASS = 0x61726368

# Every column of `messages`, in one order for both tables. `search` is generated in
# `messages` and a plain column in the archive (migration 0005): it is copied, not
# recomputed.
MOVED_COLUMNS = (
    "id, user_id, role, content, platform, chat_id, platform_message_id, reply_to_id, status,"
    " context_snapshot, tokens_in, tokens_out, model, response_ms, delivered_at, embedding,"
    " passages, search, created_at, shared_chat, remembered, message_type,"
    " attachments, speaker, search_config"
)


@dataclass(frozen=True, slots=True)
class ArchivePolicy:
    """Which live messages may move: older than `cutoff`, not among the user's newest
    `keep_recent`, read by the memory job, and not awaiting an answer."""

    cutoff: datetime
    keep_recent: int
    batch_size: int


class ArchiveRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def users_after(
        self, after_user_id: int, limit: int, *, conn: Connection | None = None
    ) -> list[int]:
        """Users the memory job has read something of, by id (keyset pagination)."""
        async with self._db.connection(conn) as c:
            rows = await c.fetch(
                "SELECT user_id FROM conversation_context"
                " WHERE user_id > $1 AND last_read_message_id > 0 ORDER BY user_id LIMIT $2",
                after_user_id,
                limit,
            )
        return [r["user_id"] for r in rows]

    async def move_batch(
        self, user_id: int, policy: ArchivePolicy, *, archived_at: datetime, conn: Connection
    ) -> int | None:
        """Move one batch of the user's oldest movable messages in one statement (its own
        transaction: the batch moves completely or not at all); how many moved, or None
        when another archiver holds the user.

        The user is claimed by a transaction advisory lock, tried, never waited for, and
        the rows by `FOR UPDATE SKIP LOCKED`. Rows keep their ids and every column,
        `search` included. Run it outside a transaction, on a connection with
        asynchronous commit (`ArchiveJob`): a move lost in a server crash only leaves
        the rows live, to be moved again, and a WAL flush per batch would cost more
        than the move.
        """
        row = await conn.fetchrow(
            "WITH claim AS (SELECT pg_try_advisory_xact_lock($6, $7) AS claimed),"
            " bound AS ("
            "  SELECT least(cc.last_read_message_id, coalesce(("
            "    SELECT m.id FROM messages m WHERE m.user_id = $1"
            "    ORDER BY m.id DESC OFFSET $3 LIMIT 1), 0)) AS max_id"
            "  FROM conversation_context cc, claim WHERE cc.user_id = $1 AND claim.claimed),"
            " picked AS ("
            "  SELECT m.id FROM messages m, bound WHERE m.user_id = $1 AND m.id <= bound.max_id"
            "  AND m.created_at < $2 AND m.status IS DISTINCT FROM 'pending'"
            "  ORDER BY m.id LIMIT $4 FOR UPDATE OF m SKIP LOCKED),"
            " moved AS ("
            "  DELETE FROM messages m USING picked WHERE m.id = picked.id AND m.user_id = $1"
            f"  RETURNING {_prefixed('m.', MOVED_COLUMNS)}),"
            " archived AS ("
            f"  INSERT INTO messages_archive ({MOVED_COLUMNS}, archived_at)"
            f"  SELECT {MOVED_COLUMNS}, $5 FROM moved RETURNING 1)"
            " SELECT (SELECT claimed FROM claim) AS claimed,"
            " (SELECT count(*) FROM archived) AS moved",
            user_id,
            policy.cutoff,
            policy.keep_recent,
            policy.batch_size,
            archived_at,
            ARCHIVE_LOCK_CLASS,
            lock_key(user_id),
        )
        assert row is not None
        return int(row["moved"]) if row["claimed"] else None

    async def delete_expired(
        self, cutoff: datetime, limit: int, *, conn: Connection | None = None
    ) -> int:
        """Admins only (a deployment-wide policy): delete up to `limit` archived messages
        created before `cutoff`, oldest first, their kept recordings
        (`core.storage.message_audio`) and passages (`core.storage.message_passages`);
        how many messages were deleted."""
        async with self._db.transaction(conn) as c:
            deleted: list[int] = await c.fetchval(
                "WITH expired AS ("
                " DELETE FROM messages_archive WHERE id IN ("
                "  SELECT id FROM messages_archive WHERE created_at < $1"
                "  ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
                " RETURNING id, user_id),"
                " audio AS ("
                " DELETE FROM message_audio a USING expired e"
                " WHERE a.message_id = e.id AND a.user_id = e.user_id)"
                " SELECT coalesce(array_agg(id), '{}') FROM expired",
                cutoff,
                limit,
            )
            await MessagePassageRepository(self._db).delete_of(deleted, conn=c)
        return len(deleted)


def _prefixed(prefix: str, columns: str) -> str:
    return ", ".join(prefix + name.strip() for name in columns.split(","))


class EmbeddedTable(StrEnum):
    """The tables whose rows carry an embedding, in the order re-embedding visits them.

    The archive comes last: a message archived while `messages` is being re-embedded is
    then still visited (the archive pass starts after the messages pass ended).
    """

    FACTS = "facts"
    MESSAGES = "messages"
    DOCUMENT_CHUNKS = "document_chunks"
    ARCHIVE = "archive"

    @property
    def table(self) -> str:
        return "messages_archive" if self is EmbeddedTable.ARCHIVE else self.value

    @property
    def has_passages(self) -> bool:
        """Whether its long rows keep their passages' vectors besides their embedding."""
        return self in (EmbeddedTable.MESSAGES, EmbeddedTable.ARCHIVE)


# A long message's passages (`message_passages`, the `long_messages` job) are of the
# model that wrote its embedding: `passages` is set back to NULL with it, and `store`
# deletes them, for the job to cut the message again.
_STORE_EMBEDDING = {
    source: f"UPDATE {source.table} SET embedding = $3"
    + (", passages = NULL" if source.has_passages else "")
    + " WHERE id = $1 AND user_id = $2"
    for source in EmbeddedTable
}


@dataclass(frozen=True, slots=True)
class ReembedCursor:
    source: EmbeddedTable
    model: str
    dimensions: int
    last_id: int
    done: int
    completed_at: datetime | None


@dataclass(frozen=True, slots=True)
class TextRow:
    id: int
    user_id: int
    content: str


class ReembedRepository:
    """Admins only: deployment-wide passes over every embedded row, by id."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def cursor(
        self, source: EmbeddedTable, *, conn: Connection | None = None
    ) -> ReembedCursor | None:
        async with self._db.connection(conn) as c:
            row = await c.fetchrow(
                "SELECT model, dimensions, last_id, done, completed_at FROM reembed_progress"
                " WHERE source = $1",
                source.value,
            )
        if row is None:
            return None
        return ReembedCursor(
            source,
            row["model"],
            row["dimensions"],
            row["last_id"],
            row["done"],
            row["completed_at"],
        )

    async def reset(
        self,
        source: EmbeddedTable,
        model: str,
        dimensions: int,
        *,
        at: datetime,
        conn: Connection | None = None,
    ) -> None:
        async with self._db.connection(conn) as c:
            await c.execute(
                "INSERT INTO reembed_progress (source, model, dimensions, started_at, updated_at)"
                " VALUES ($1, $2, $3, $4, $4) ON CONFLICT (source) DO UPDATE SET"
                " model = $2, dimensions = $3, last_id = 0, done = 0, started_at = $4,"
                " updated_at = $4, completed_at = NULL",
                source.value,
                model,
                dimensions,
                at,
            )

    async def remaining(
        self, source: EmbeddedTable, after_id: int, *, conn: Connection | None = None
    ) -> int:
        async with self._db.connection(conn) as c:
            value = await c.fetchval(f"SELECT count(*) FROM {source.table} WHERE id > $1", after_id)
        return int(value)

    async def rows_after(
        self, source: EmbeddedTable, after_id: int, limit: int, *, conn: Connection | None = None
    ) -> list[TextRow]:
        async with self._db.connection(conn) as c:
            rows = await c.fetch(
                f"SELECT id, user_id, content FROM {source.table} WHERE id > $1"
                " ORDER BY id LIMIT $2",
                after_id,
                limit,
            )
        return [TextRow(r["id"], r["user_id"], r["content"]) for r in rows]

    async def store(
        self,
        source: EmbeddedTable,
        rows: Sequence[TextRow],
        embeddings: Sequence[np.ndarray[Any, Any]],
        *,
        at: datetime,
        conn: Connection,
    ) -> None:
        """Write one batch of embeddings and move the cursor past it (one transaction:
        the caller's)."""
        await conn.executemany(
            _STORE_EMBEDDING[source],
            [(r.id, r.user_id, e) for r, e in zip(rows, embeddings, strict=True)],
        )
        if source.has_passages:
            await MessagePassageRepository(self._db).delete_of([r.id for r in rows], conn=conn)
        await conn.execute(
            "UPDATE reembed_progress SET last_id = $2, done = done + $3, updated_at = $4"
            " WHERE source = $1",
            source.value,
            rows[-1].id,
            len(rows),
            at,
        )

    async def complete(
        self, source: EmbeddedTable, *, at: datetime, conn: Connection | None = None
    ) -> None:
        async with self._db.connection(conn) as c:
            await c.execute(
                "UPDATE reembed_progress SET completed_at = $2, updated_at = $2 WHERE source = $1",
                source.value,
                at,
            )
