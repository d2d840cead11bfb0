"""Archived rows for tests (and the recall benchmark) that need some without running
the archive job and its age and read-position rules: the same move, every column."""

from __future__ import annotations

from collections.abc import Sequence

from core.storage.archive_store import MOVED_COLUMNS
from core.storage.database import Database


async def move_to_archive(db: Database, message_ids: Sequence[int]) -> None:
    """Move these messages from `messages` to `messages_archive`, ids and columns kept."""
    async with db.connection() as conn:
        await conn.execute(
            "WITH moved AS (DELETE FROM messages WHERE id = ANY($1::bigint[]) RETURNING *)"
            f" INSERT INTO messages_archive ({MOVED_COLUMNS}) SELECT {MOVED_COLUMNS} FROM moved",
            list(message_ids),
        )
