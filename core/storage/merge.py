"""Merging two users into one when a person links a second identity (`/link`).

The rules (also in docs/commands.md):
- the kept user keeps its id; identities, messages, archived messages, facts and
  documents of the merged user move to it (a document both have is kept once), then
  the merged user is deleted (its codes, rate limit and memory position go with it;
  audit rows that named it are re-pointed to the kept user);
- counters (messages, tokens) add up; last activity and last seen take the later value;
- summaries are concatenated with a separator when both are non-empty (kept one first);
  `summary_version` becomes the higher of the two, plus one when the merged user's
  summary was added (so a cached summary is known to be stale);
- the memory position (`last_read_message_id`) and the summary position
  (`summary_through_message_id`) become the lower of the two, ignoring a side that has
  nothing beyond its position: moved messages the memory job has not read are read
  again, and a fresh identity with no messages does not force re-reading everything
  (when neither side has unread messages, the higher position is kept);
- insights and themes are concatenated; communication style and persona overrides
  prefer the kept user's, profile fields (display name, locale, chosen language) too where set;
- the higher role wins (admin), and so does a ban: linking must not lift a ban.

Everything happens in one transaction with both users locked in id order: first their
transaction advisory locks (two merges of the same users wait for each other), then
their `users` rows. The row lock also blocks concurrent inserts of either user's
messages (their foreign key takes a share lock on the user row), and once committed
such inserts for the merged user fail instead of creating orphans: a reply being
written to the merged user while they are merged is delivered, but not recorded (the
engine logs it), and their turns in the queue go with them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from core.storage.database import Connection, Database
from core.storage.documents import DocumentRepository
from core.storage.message_audio import MessageAudioRepository
from core.storage.message_passages import MessagePassageRepository
from core.storage.rate_limits import DROP_BUCKET

logger = logging.getLogger(__name__)

SUMMARY_SEPARATOR = "\n\n---\n\n"


@dataclass(frozen=True, slots=True)
class MergeResult:
    kept_user_id: int
    merged_user_id: int
    identities: int
    messages: int
    archived_messages: int
    facts: int


class MergeError(Exception):
    """One of the users disappeared before the merge could lock it."""


async def lock_users(conn: Connection, *user_ids: int) -> None:
    """Wait for, then hold to the end of the transaction, a per-user advisory lock keyed
    by the user id, for each user. Id order, so two lockers never deadlock."""
    for user_id in sorted(set(user_ids)):
        await conn.execute("SELECT pg_advisory_xact_lock($1::bigint)", user_id)


def _count(status: str) -> int:
    return int(status.split()[-1])


async def _position(c: Connection, user_id: int, column: str, table: str) -> tuple[int, bool]:
    """The user's position in `table.column` (0 when unset), and whether messages lie
    beyond it."""
    position = int(
        await c.fetchval(f"SELECT coalesce({column}, 0) FROM {table} WHERE user_id = $1", user_id)
        or 0
    )
    beyond = await c.fetchval(
        "SELECT EXISTS (SELECT 1 FROM messages WHERE user_id = $1 AND id > $2)"
        " OR EXISTS (SELECT 1 FROM messages_archive WHERE user_id = $1 AND id > $2)",
        user_id,
        position,
    )
    return position, bool(beyond)


async def _merged_position(
    c: Connection, keep_id: int, merge_id: int, column: str, table: str
) -> int:
    """The lower position among users with messages beyond it; the higher one when
    neither has any (everything of both was read already)."""
    positions = [await _position(c, uid, column, table) for uid in (keep_id, merge_id)]
    behind = [p for p, beyond in positions if beyond]
    return min(behind) if behind else max(p for p, _ in positions)


class MergeRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def merge(
        self, keep_id: int, merge_id: int, *, conn: Connection | None = None
    ) -> MergeResult:
        """Move everything of `merge_id` into `keep_id` and delete `merge_id`."""
        if keep_id == merge_id:
            raise ValueError("cannot merge a user into itself")
        async with self._db.transaction(conn) as c:
            await lock_users(c, keep_id, merge_id)
            await c.execute(DROP_BUCKET, merge_id)  # before the row locks: see DROP_BUCKET
            locked = await c.fetch(
                "SELECT id FROM users WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE",
                [keep_id, merge_id],
            )
            if len(locked) != 2:
                raise MergeError(f"user {keep_id} or {merge_id} no longer exists")
            last_read = await _merged_position(
                c, keep_id, merge_id, "last_read_message_id", "conversation_context"
            )
            summary_through = await _merged_position(
                c, keep_id, merge_id, "summary_through_message_id", "conversations"
            )
            identities = await c.execute(
                "UPDATE identities SET user_id = $1 WHERE user_id = $2", keep_id, merge_id
            )
            messages = await c.execute(
                "UPDATE messages SET user_id = $1 WHERE user_id = $2", keep_id, merge_id
            )
            archived = await c.execute(
                "UPDATE messages_archive SET user_id = $1 WHERE user_id = $2", keep_id, merge_id
            )
            facts = await c.execute(
                "UPDATE facts SET user_id = $1 WHERE user_id = $2", keep_id, merge_id
            )
            await DocumentRepository(self._db).move(keep_id, merge_id, conn=c)
            await MessageAudioRepository(self._db).move(keep_id, merge_id, conn=c)
            await MessagePassageRepository(self._db).move(keep_id, merge_id, conn=c)
            await c.execute(
                "UPDATE admin_audit SET actor_id = $1 WHERE actor_id = $2", keep_id, merge_id
            )
            await c.execute(
                "UPDATE admin_audit SET target_user_id = $1 WHERE target_user_id = $2",
                keep_id,
                merge_id,
            )
            await c.execute(
                "UPDATE users k SET"
                " role = CASE WHEN 'admin' IN (k.role, m.role) THEN 'admin' ELSE 'user' END,"
                " status = CASE WHEN 'banned' IN (k.status, m.status) THEN 'banned'"
                "   ELSE 'active' END,"
                " ban_notified = CASE WHEN k.status = 'banned' THEN k.ban_notified"
                "   ELSE m.ban_notified END,"
                " display_name = coalesce(k.display_name, m.display_name),"
                " locale = coalesce(k.locale, m.locale),"
                " language = coalesce(k.language, m.language),"
                " settings = m.settings || k.settings,"
                " created_at = least(k.created_at, m.created_at),"
                " last_seen_at = greatest(k.last_seen_at, m.last_seen_at),"
                " updated_at = now()"
                " FROM users m WHERE k.id = $1 AND m.id = $2",
                keep_id,
                merge_id,
            )
            await c.execute(
                "UPDATE conversations k SET"
                " summary = CASE WHEN k.summary <> '' AND m.summary <> ''"
                "   THEN k.summary || $3 || m.summary ELSE k.summary || m.summary END,"
                " summary_version = greatest(k.summary_version, m.summary_version)"
                "   + CASE WHEN m.summary <> '' THEN 1 ELSE 0 END,"
                " summary_through_message_id = nullif($4::bigint, 0),"
                " message_count = k.message_count + m.message_count,"
                " tokens_in = k.tokens_in + m.tokens_in,"
                " tokens_out = k.tokens_out + m.tokens_out,"
                " persona_overrides = m.persona_overrides || k.persona_overrides,"
                " last_activity_at = greatest(k.last_activity_at, m.last_activity_at),"
                " created_at = least(k.created_at, m.created_at)"
                " FROM conversations m WHERE k.user_id = $1 AND m.user_id = $2",
                keep_id,
                merge_id,
                SUMMARY_SEPARATOR,
                summary_through,
            )
            await c.execute(
                "UPDATE conversation_context k SET"
                " insights = k.insights || m.insights,"
                " themes = k.themes || m.themes,"
                " communication_style = CASE WHEN k.communication_style <> ''"
                "   THEN k.communication_style ELSE m.communication_style END,"
                " last_read_message_id = $3,"
                " updated_at = now()"
                " FROM conversation_context m WHERE k.user_id = $1 AND m.user_id = $2",
                keep_id,
                merge_id,
                last_read,
            )
            await c.execute("DELETE FROM users WHERE id = $1", merge_id)
        result = MergeResult(
            kept_user_id=keep_id,
            merged_user_id=merge_id,
            identities=_count(identities),
            messages=_count(messages),
            archived_messages=_count(archived),
            facts=_count(facts),
        )
        logger.info("merged user %s into user %s: %s", merge_id, keep_id, result)
        return result
