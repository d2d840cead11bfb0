"""The passages of long messages (`message_passages`, migration 0020): what the
`long_messages` job reads and writes, and their move in a merge.

The job is a deployment-wide pass by id, like re-embedding. Replicas run it each on their
own schedule: a run claims a table for its session (`try_claim`), so that two replicas
never cut and embed the same messages (after an upgrade, the whole history); another
run meanwhile skips that table (a message the archive moves during a pass may still be
read in both tables). Should two writes meet anyway, a message's passages are
written only while its `passages` is NULL, in the statement that sets it, so a second
write changes nothing; and a message whose text changed since it was read (a
transcript replacing a voice note) is left for the next run (`content = $4`). Recall
reads the passages in its own statements (core/recall/statements.py).

Whatever deletes a message for good, or rewrites its text or embedding, then deletes its
passages with `delete_of` or `delete_orphans`, in the same transaction but as a
statement of its own: a statement's CTEs all read one snapshot, so a passage DELETE
inside the statement that changes the message would miss passages that a job run
committed while that statement waited for the message's row lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from pgvector import HalfVector

from core.embedding.base import Vector
from core.storage.database import (
    Connection,
    Database,
    release_session_lock,
    try_session_lock,
)

#: A text of at most this many characters is not long (every token covers at least one
#: character). Migration 0020's partial indexes have this predicate; `_UNREAD` repeats
#: it so that it can use them.
LONG_TEXT_MIN_CHARS = 250


class MessageTable(StrEnum):
    """The tables of messages, live and archived."""

    MESSAGES = "messages"
    ARCHIVE = "messages_archive"


#: Advisory lock class of a job run's claim on a table ("pass"); the key is the table's.
PASSAGES_LOCK_CLASS = 0x70617373
_TABLE_KEYS = {MessageTable.MESSAGES: 1, MessageTable.ARCHIVE: 2}


@dataclass(frozen=True, slots=True)
class UnreadMessage:
    """A message the job has not looked at yet."""

    id: int
    user_id: int
    content: str


_UNREAD = {
    table: f"SELECT id, user_id, content FROM {table.value} WHERE passages IS NULL"
    f" AND length(content) > {LONG_TEXT_MIN_CHARS:d} AND id > $1 ORDER BY id LIMIT $2"
    for table in MessageTable
}
# $1 message, $2 user, $3 its passages' vectors in order (none: not long), $4 its text as
# it was read. Rows left of an earlier cut (none are expected) are replaced.
_STORE = {
    table: f"""
WITH marked AS (
    UPDATE {table.value} SET passages = cardinality($3::halfvec[])
    WHERE id = $1 AND user_id = $2 AND passages IS NULL AND content = $4
    RETURNING id, user_id
), beyond AS (
    DELETE FROM message_passages p USING marked m
    WHERE p.message_id = m.id AND p.position >= cardinality($3::halfvec[])
)
INSERT INTO message_passages AS p (message_id, user_id, position, embedding)
SELECT m.id, m.user_id, e.position - 1, e.embedding
FROM marked m, unnest($3::halfvec[]) WITH ORDINALITY AS e (embedding, position)
ON CONFLICT (message_id, position)
DO UPDATE SET user_id = excluded.user_id, embedding = excluded.embedding
"""
    for table in MessageTable
}


class MessagePassageRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def try_claim(self, table: MessageTable, *, conn: Connection) -> bool:
        """Claim the table for this connection's session; False if another run has it."""
        return await try_session_lock(conn, PASSAGES_LOCK_CLASS, _TABLE_KEYS[table])

    async def release(self, table: MessageTable, *, conn: Connection) -> None:
        await release_session_lock(conn, PASSAGES_LOCK_CLASS, _TABLE_KEYS[table])

    async def unread(
        self, table: MessageTable, after_id: int, limit: int, *, conn: Connection | None = None
    ) -> list[UnreadMessage]:
        """Messages after `after_id`, by id, that may be long and were not looked at."""
        async with self._db.connection(conn) as c:
            rows = await c.fetch(_UNREAD[table], after_id, limit)
        return [UnreadMessage(r["id"], r["user_id"], r["content"]) for r in rows]

    async def store(
        self,
        table: MessageTable,
        messages: Sequence[UnreadMessage],
        passages: Sequence[Sequence[Vector]],
        *,
        conn: Connection | None = None,
    ) -> None:
        """Each message's passages' vectors, in order: none for a message that is not
        long, which recall reads by its `embedding` alone."""
        arguments = [
            (m.id, m.user_id, [HalfVector(v) for v in vectors], m.content)
            for m, vectors in zip(messages, passages, strict=True)
        ]
        async with self._db.connection(conn) as c:
            await c.executemany(_STORE[table], arguments)

    async def delete_of(self, message_ids: Sequence[int], *, conn: Connection) -> None:
        """Delete these messages' passages: after the statement, in the caller's
        transaction, that deleted the messages or rewrote their text or embedding."""
        await conn.execute(
            "DELETE FROM message_passages WHERE message_id = ANY($1::bigint[])",
            list(message_ids),
        )

    async def delete_orphans(self, user_id: int, *, conn: Connection) -> None:
        """Delete the user's passages whose message is gone: after the statement, in the
        caller's transaction, that deleted their messages."""
        await conn.execute(
            "DELETE FROM message_passages p WHERE p.user_id = $1"
            " AND NOT EXISTS (SELECT FROM messages m WHERE m.id = p.message_id)"
            " AND NOT EXISTS (SELECT FROM messages_archive a WHERE a.id = p.message_id)",
            user_id,
        )

    async def move(self, keep_id: int, merge_id: int, *, conn: Connection) -> int:
        """Give the merged user's passages to the kept user, as their messages go. How
        many moved. Call inside the merge's transaction, before the merged user is
        deleted (which would cascade)."""
        status = await conn.execute(
            "UPDATE message_passages SET user_id = $1 WHERE user_id = $2", keep_id, merge_id
        )
        return int(status.split()[-1])
