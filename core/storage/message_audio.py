"""Recordings kept with their transcribed messages (`message_audio`, migration 0019),
only when MEDIA_KEEP_AUDIO asks (docs/media.md "Keeping the audio").

Every statement is scoped by the person's user id. A recording is named by its
message's id, which stays the same when the archive job moves the message to
`messages_archive`, so nothing here changes when a message is archived. Two statements
elsewhere delete recordings together with the messages they delete for good, in one
statement each: `/forget all` (`core.storage.memory_store`) and archive retention
(`core.storage.archive_store`); `/delete_me` cascades from `users`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.storage.database import Connection, Database


@dataclass(frozen=True, slots=True)
class KeptAudio:
    message_id: int
    mime_type: str
    data: bytes
    created_at: datetime


class MessageAudioRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def keep(
        self,
        user_id: int,
        message_id: int,
        *,
        mime_type: str,
        data: bytes,
        conn: Connection | None = None,
    ) -> bool:
        """Keep the recording of the person's message `message_id`; False when one is
        kept already (a `/retry`) or the message is not the person's."""
        async with self._db.connection(conn) as c:
            status = await c.execute(
                "INSERT INTO message_audio (message_id, user_id, mime_type, data)"
                " SELECT id, user_id, $3, $4 FROM messages"
                " WHERE id = $1 AND user_id = $2 AND role = 'user'"
                " ON CONFLICT (message_id) DO NOTHING",
                message_id,
                user_id,
                mime_type,
                data,
            )
        return status != "INSERT 0 0"

    async def of_user(self, user_id: int, *, conn: Connection | None = None) -> list[KeptAudio]:
        """The person's recordings, by message id (for `/export`)."""
        async with self._db.connection(conn) as c:
            rows = await c.fetch(
                "SELECT message_id, mime_type, data, created_at FROM message_audio"
                " WHERE user_id = $1 ORDER BY message_id",
                user_id,
            )
        return [
            KeptAudio(r["message_id"], r["mime_type"], r["data"], r["created_at"]) for r in rows
        ]

    async def move(self, keep_id: int, merge_id: int, *, conn: Connection) -> int:
        """Linking (`core.storage.merge`): the merged user's recordings become the kept
        user's, as their messages do. How many moved. Call inside the merge's
        transaction, before the merged user is deleted (which would cascade)."""
        status = await conn.execute(
            "UPDATE message_audio SET user_id = $1 WHERE user_id = $2", keep_id, merge_id
        )
        return int(status.split()[-1])
