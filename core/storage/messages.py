"""The messages of each user's conversation, live and archived.

Every query is scoped by user id. History and search read `messages` and
`messages_archive` together, so archiving never hides anything from the user.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import numpy as np

from core.models import Message, MessageRole, MessageStatus, MessageType, Platform
from core.storage.database import Connection, Database
from core.storage.message_passages import MessagePassageRepository

_IDENTITY_COLUMNS = (
    "id, user_id, role, content, platform, chat_id, platform_message_id, reply_to_id, status,"
    " created_at, shared_chat, remembered"
)
_USAGE_COLUMNS = (
    "tokens_in, tokens_out, model, response_ms, delivered_at, message_type, attachments, speaker"
)
MESSAGE_COLUMNS = f"{_IDENTITY_COLUMNS}, context_snapshot, {_USAGE_COLUMNS}"


def message_from_row(
    row: asyncpg.Record | Mapping[str, Any], *, archived: bool | None = None
) -> Message:
    return Message(
        id=row["id"],
        user_id=row["user_id"],
        role=MessageRole(row["role"]),
        content=row["content"],
        platform=Platform(row["platform"]),
        chat_id=row["chat_id"],
        platform_message_id=row["platform_message_id"],
        reply_to_id=row["reply_to_id"],
        status=None if row["status"] is None else MessageStatus(row["status"]),
        created_at=row["created_at"],
        context_snapshot=row["context_snapshot"],
        tokens_in=row["tokens_in"],
        tokens_out=row["tokens_out"],
        model=row["model"],
        response_ms=row["response_ms"],
        archived=row["archived"] if archived is None else archived,
        shared_chat=row["shared_chat"],
        remembered=row["remembered"],
        # Read by history, search and export; a turn's reads leave it out.
        delivered_at=row.get("delivered_at"),
        message_type=MessageType(row.get("message_type") or MessageType.TEXT),
        attachments=tuple(row.get("attachments") or ()),
        speaker=row.get("speaker"),
    )


# Storing messages outside a chat turn (imports, tests, benchmarks); a turn stores its
# message and reply through `core.storage.turns`.
_ADD_USER_MESSAGE = f"""
WITH stored AS (
    INSERT INTO messages (user_id, role, content, platform, chat_id, platform_message_id,
                          status, embedding, shared_chat, speaker, search_config)
    VALUES ($1, 'user', $2, $3, $4, $5, 'pending', $6, $7,
            (SELECT display_name FROM users WHERE id = $1), $8::regconfig)
    ON CONFLICT ON CONSTRAINT messages_platform_message_unique DO NOTHING
    RETURNING {MESSAGE_COLUMNS}
), counted AS (
    UPDATE conversations SET message_count = message_count + 1, last_activity_at = now()
    WHERE user_id = $1 AND EXISTS (SELECT FROM stored)
)
SELECT *, false AS archived FROM stored
"""
# $1 user, $2 content, $3 platform, $4 chat, $5 the messages it answers, $6 snapshot,
# $7/$8 tokens in/out, $9 model, $10 response ms, $11 embedding, $12 delivered.
_ADD_REPLY = f"""
WITH reply AS (
    INSERT INTO messages (user_id, role, content, platform, chat_id, reply_to_id,
                          context_snapshot, tokens_in, tokens_out, model, response_ms,
                          embedding, delivered_at, shared_chat, remembered, search_config)
    SELECT $1, 'assistant', $2, $3, $4, ($5::bigint[])[1], $6, $7, $8, $9, $10, $11,
           CASE WHEN $12::boolean THEN now() END,
           coalesce(answered.shared_chat, false), coalesce(answered.remembered, true),
           coalesce(answered.search_config, 'english')
    FROM (SELECT) AS one
    LEFT JOIN messages answered ON answered.id = ($5::bigint[])[1] AND answered.user_id = $1
    RETURNING {MESSAGE_COLUMNS}
), answered AS (
    UPDATE messages SET status = 'answered'
    WHERE id = ANY($5) AND user_id = $1 AND role = 'user'
), counted AS (
    UPDATE conversations SET message_count = message_count + 1,
        tokens_in = tokens_in + $7, tokens_out = tokens_out + $8, last_activity_at = now()
    WHERE user_id = $1
)
SELECT *, false AS archived FROM reply
"""

# $3: the platform's id of the reply's message, when it has one.
_MARK_DELIVERED = (
    "UPDATE messages SET delivered_at = now(),"
    " platform_message_id = coalesce($3, platform_message_id) WHERE id = $1 AND user_id = $2"
)
# set_config(..., true) lasts to the end of the statement's own transaction: this commit.
_MARK_DELIVERED_ASYNCHRONOUSLY = (
    "WITH quiet AS (SELECT set_config('synchronous_commit', 'off', true))"
    " UPDATE messages SET delivered_at = now(),"
    " platform_message_id = coalesce($3, platform_message_id)"
    " FROM quiet WHERE id = $1 AND user_id = $2"
)


# $1 platform, $2 how far back, $3 at most this many chats. For each identity of the
# platform with a private chat, the newest message stored from that chat, if it came
# within $2. Only people seen within $2 are looked at (`last_seen_at`, stamped with
# every admitted message), so the per-person index scans are few.
_RECENT_PRIVATE_CHATS = """
SELECT i.private_chat_id AS chat_id, newest.platform_message_id
FROM identities i
JOIN users u ON u.id = i.user_id
CROSS JOIN LATERAL (
    SELECT m.platform_message_id, m.created_at FROM messages m
    WHERE m.user_id = i.user_id AND m.role = 'user' AND m.platform = $1
      AND m.chat_id = i.private_chat_id AND m.platform_message_id IS NOT NULL
    ORDER BY m.id DESC LIMIT 1
) newest
WHERE i.platform = $1 AND i.private_chat_id IS NOT NULL
  AND u.last_seen_at > now() - $2::interval AND newest.created_at > now() - $2::interval
ORDER BY newest.created_at DESC
LIMIT $3
"""


@dataclass(frozen=True, slots=True)
class PrivateChat:
    """A person's private chat with the bot, and the newest message stored from it."""

    chat_id: str
    newest_message_id: str
    """The platform's id of that message."""


@dataclass(frozen=True, slots=True)
class StoredUserMessage:
    message: Message
    duplicate: bool


# A row's text search vector in the language of the search ($4): the stored one when it
# was stored in that language, else made from the content.
_SEARCHED = (
    "LATERAL (SELECT CASE WHEN $4::regconfig = search_config THEN search"
    " ELSE to_tsvector($4::regconfig, content) END AS v) AS searched"
)

# PostgreSQL's text search configurations by language subtag (`\dF`); another language
# is searched word for word (`simple`: no stemming, no stop words).
_TEXT_SEARCH_CONFIGS = {
    "ar": "arabic", "ca": "catalan", "da": "danish", "de": "german", "el": "greek",
    "en": "english", "es": "spanish", "eu": "basque", "fi": "finnish", "fr": "french",
    "ga": "irish", "hi": "hindi", "hu": "hungarian", "hy": "armenian", "id": "indonesian",
    "it": "italian", "lt": "lithuanian", "nb": "norwegian", "ne": "nepali", "nl": "dutch",
    "nn": "norwegian", "no": "norwegian", "pt": "portuguese", "ro": "romanian",
    "ru": "russian", "sr": "serbian", "sv": "swedish", "ta": "tamil", "tr": "turkish",
    "yi": "yiddish",
}  # fmt: skip


def text_search_config(language: str | None) -> str:
    """The text search configuration for a language tag ("de", "pt-BR", "en_US"):
    English when the language is unknown, as the stored `search` column is."""
    if not language:
        return "english"
    subtag = language.replace("_", "-").split("-")[0].lower()
    return _TEXT_SEARCH_CONFIGS.get(subtag, "simple")


@dataclass(frozen=True, slots=True)
class SearchHit:
    message: Message
    rank: float


class MessageRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_user_message(
        self,
        user_id: int,
        content: str,
        *,
        platform: Platform,
        chat_id: str | None,
        platform_message_id: str | None,
        embedding: np.ndarray[Any, Any] | None = None,
        shared_chat: bool = False,
        language: str | None = None,
        conn: Connection | None = None,
    ) -> StoredUserMessage:
        """Store a user message as pending, once per (platform, chat, message id),
        searchable in its `language` (`text_search_config`).

        A redelivered message returns the stored row with `duplicate=True` and changes
        nothing, so the caller can skip answering it again.
        """
        async with self._db.connection(conn) as c:
            row = await c.fetchrow(
                _ADD_USER_MESSAGE,
                user_id,
                content,
                platform.value,
                chat_id,
                platform_message_id,
                embedding,
                shared_chat,
                text_search_config(language),
            )
            if row is not None:
                return StoredUserMessage(message_from_row(row), duplicate=False)
            return await self.stored_before(
                user_id,
                platform=platform,
                chat_id=chat_id,
                platform_message_id=platform_message_id,
                conn=c,
            )

    async def stored_before(
        self,
        user_id: int,
        *,
        platform: Platform,
        chat_id: str | None,
        platform_message_id: str | None,
        conn: Connection | None = None,
    ) -> StoredUserMessage:
        """The stored row of a redelivered message (`duplicate=True`)."""
        async with self._db.connection(conn) as c:
            # Scoped by user too: a row of someone else under the same platform ids
            # (no platform produces one) must fail here, never reach this user's turn.
            existing = await c.fetchrow(
                f"SELECT {MESSAGE_COLUMNS}, false AS archived FROM messages"
                " WHERE platform = $1 AND chat_id IS NOT DISTINCT FROM $2"
                " AND platform_message_id = $3 AND user_id = $4",
                platform.value,
                chat_id,
                platform_message_id,
                user_id,
            )
        if existing is None:
            raise LookupError(
                f"{platform.value} message {platform_message_id} in chat {chat_id} is stored"
                " for another user"
            )
        return StoredUserMessage(message_from_row(existing), duplicate=True)

    async def add_assistant_message(
        self,
        user_id: int,
        content: str,
        *,
        reply_to_id: int,
        platform: Platform,
        chat_id: str | None,
        context_snapshot: dict[str, Any],
        tokens_in: int,
        tokens_out: int,
        model: str,
        response_ms: int,
        embedding: np.ndarray[Any, Any] | None = None,
        retried_ids: Sequence[int] = (),
        delivered: bool = False,
        conn: Connection | None = None,
    ) -> Message:
        """Store a reply with its context snapshot and mark the message it answers, and
        `retried_ids` (earlier failed messages the prompt included), answered.
        `delivered`: the platform has the reply already (else `mark_delivered` later)."""
        async with self._db.connection(conn) as c:
            row = await c.fetchrow(
                _ADD_REPLY,
                user_id,
                content,
                platform.value,
                chat_id,
                [reply_to_id, *retried_ids],
                context_snapshot,
                tokens_in,
                tokens_out,
                model,
                response_ms,
                embedding,
                delivered,
            )
        assert row is not None
        return message_from_row(row)

    async def set_status(
        self,
        user_id: int,
        message_id: int,
        status: MessageStatus,
        *,
        conn: Connection | None = None,
    ) -> None:
        async with self._db.connection(conn) as c:
            await c.execute(
                "UPDATE messages SET status = $3 WHERE id = $1 AND user_id = $2 AND role = 'user'",
                message_id,
                user_id,
                status.value,
            )

    async def undelivered_reply(
        self, user_id: int, message_id: int, *, conn: Connection | None = None
    ) -> Message | None:
        """The recorded reply to a message that never reached the platform, if any."""
        async with self._db.connection(conn) as c:
            row = await c.fetchrow(
                f"SELECT {MESSAGE_COLUMNS}, false AS archived FROM messages"
                " WHERE user_id = $1 AND reply_to_id = $2 AND role = 'assistant'"
                " AND delivered_at IS NULL ORDER BY id DESC LIMIT 1",
                user_id,
                message_id,
            )
        return None if row is None else message_from_row(row)

    async def mark_delivered(
        self,
        user_id: int,
        message_id: int,
        *,
        platform_message_id: str | None = None,
        conn: Connection | None = None,
    ) -> None:
        """Record that the platform accepted a reply (as its message
        `platform_message_id`, when the platform said).

        Outside a transaction the mark commits asynchronously (no wait for its WAL
        flush): losing it in a server crash at worst sends the reply once more, and only
        if the platform redelivers the message. Inside the caller's transaction it
        commits with it, as the caller's transaction does.
        """
        async with self._db.connection(conn) as c:
            await c.execute(
                _MARK_DELIVERED if c.is_in_transaction() else _MARK_DELIVERED_ASYNCHRONOUSLY,
                message_id,
                user_id,
                platform_message_id,
            )

    async def set_embedding(
        self,
        user_id: int,
        message_id: int,
        embedding: np.ndarray[Any, Any],
        *,
        conn: Connection | None = None,
    ) -> None:
        async with self._db.connection(conn) as c:
            await c.execute(
                "UPDATE messages SET embedding = $3 WHERE id = $1 AND user_id = $2",
                message_id,
                user_id,
                embedding,
            )

    async def record_made_from(
        self,
        user_id: int,
        message_id: int,
        *,
        content: str,
        attachments: Sequence[Mapping[str, Any]],
        embedding: np.ndarray[Any, Any] | None,
        conn: Connection | None = None,
    ) -> bool:
        """Keep what a voice note or photo was made into (`core.media`): the message's
        text (a transcript, a photo's description and caption), its attachments'
        metadata with it, and the text's embedding. False when the message is gone."""
        async with self._db.transaction(conn) as c:
            status = await c.execute(
                "UPDATE messages SET content = $3, attachments = $4, embedding = $5,"
                " passages = NULL WHERE id = $1 AND user_id = $2 AND role = 'user'",
                message_id,
                user_id,
                content,
                list(attachments),
                embedding,
            )
            # Passages of the old text go: the `long_messages` job cuts the new one.
            await MessagePassageRepository(self._db).delete_of([message_id], conn=c)
        return status != "UPDATE 0"

    async def get(
        self, user_id: int, message_id: int, *, conn: Connection | None = None
    ) -> Message | None:
        async with self._db.connection(conn) as c:
            row = await c.fetchrow(
                f"SELECT {MESSAGE_COLUMNS}, false AS archived FROM messages"
                " WHERE id = $1 AND user_id = $2"
                f" UNION ALL SELECT {MESSAGE_COLUMNS}, true FROM messages_archive"
                " WHERE id = $1 AND user_id = $2",
                message_id,
                user_id,
            )
        return None if row is None else message_from_row(row)

    async def find_any(self, message_id: int, *, conn: Connection | None = None) -> Message | None:
        """Admins only: one message by id, live or archived, whoever it belongs to."""
        async with self._db.connection(conn) as c:
            row = await c.fetchrow(
                f"SELECT {MESSAGE_COLUMNS}, false AS archived FROM messages WHERE id = $1"
                f" UNION ALL SELECT {MESSAGE_COLUMNS}, true FROM messages_archive WHERE id = $1",
                message_id,
            )
        return None if row is None else message_from_row(row)

    async def by_ids(
        self, user_id: int, message_ids: Sequence[int], *, conn: Connection | None = None
    ) -> list[Message]:
        """Those of `message_ids` that are the user's, live or archived, in the order
        given."""
        async with self._db.connection(conn) as c:
            rows = await c.fetch(
                f"SELECT * FROM (SELECT {MESSAGE_COLUMNS}, false AS archived FROM messages"
                "  WHERE user_id = $1 AND id = ANY($2::bigint[])"
                f" UNION ALL SELECT {MESSAGE_COLUMNS}, true FROM messages_archive"
                "  WHERE user_id = $1 AND id = ANY($2::bigint[])) found"
                " ORDER BY array_position($2::bigint[], id)",
                user_id,
                list(message_ids),
            )
        return [message_from_row(r) for r in rows]

    async def latest_from_user(
        self, user_id: int, *, conn: Connection | None = None
    ) -> Message | None:
        """The user's newest message (live table: a message awaiting an answer is never
        archived)."""
        async with self._db.connection(conn) as c:
            row = await c.fetchrow(
                f"SELECT {MESSAGE_COLUMNS}, false AS archived FROM messages"
                " WHERE user_id = $1 AND role = 'user' ORDER BY id DESC LIMIT 1",
                user_id,
            )
        return None if row is None else message_from_row(row)

    async def history(
        self,
        user_id: int,
        *,
        before_id: int | None = None,
        limit: int = 50,
        conn: Connection | None = None,
    ) -> list[Message]:
        """One page of history, newest first, archive included. Keyset: pass the last id
        of a page as `before_id` to get the next one."""
        cursor = before_id if before_id is not None else 2**63 - 1
        async with self._db.connection(conn) as c:
            rows = await c.fetch(
                f"(SELECT {MESSAGE_COLUMNS}, false AS archived FROM messages"
                "  WHERE user_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3)"
                " UNION ALL"
                f" (SELECT {MESSAGE_COLUMNS}, true FROM messages_archive"
                "  WHERE user_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3)"
                " ORDER BY id DESC LIMIT $3",
                user_id,
                cursor,
                limit,
            )
        return [message_from_row(r) for r in rows]

    async def search(
        self,
        user_id: int,
        query: str,
        *,
        limit: int = 20,
        language: str | None = None,
        conn: Connection | None = None,
    ) -> list[SearchHit]:
        """Full-text search in one user's conversation, archive included, best first, in
        the person's `language` (`text_search_config`): its stemming and stop words, so
        "Katzen" finds "Katze" for a German speaker. A row stored in that language is
        read from its `search` column; the others' vectors are made from their text as
        the search reads them (no index: a search only ever reads one person's rows)."""
        async with self._db.connection(conn) as c:
            rows = await c.fetch(
                "WITH q AS (SELECT websearch_to_tsquery($4::regconfig, $2) AS q)"
                f" (SELECT {MESSAGE_COLUMNS}, false AS archived, ts_rank_cd(v, q.q) AS rank"
                f"   FROM messages, q, {_SEARCHED} WHERE user_id = $1 AND v @@ q.q"
                "   ORDER BY rank DESC, id DESC LIMIT $3)"
                " UNION ALL"
                f" (SELECT {MESSAGE_COLUMNS}, true, ts_rank_cd(v, q.q) AS rank"
                f"   FROM messages_archive, q, {_SEARCHED} WHERE user_id = $1 AND v @@ q.q"
                "   ORDER BY rank DESC, id DESC LIMIT $3)"
                " ORDER BY rank DESC, id DESC LIMIT $3",
                user_id,
                query,
                limit,
                text_search_config(language),
            )
        return [SearchHit(message_from_row(r), float(r["rank"])) for r in rows]

    async def recent_private_chats(
        self,
        platform: Platform,
        *,
        within: timedelta,
        limit: int,
        conn: Connection | None = None,
    ) -> list[PrivateChat]:
        """The private chats of `platform` that people wrote in within `within`, the most
        recent first, at most `limit`: where to look for messages that arrived while
        the bot was down (Discord never delivers them again)."""
        async with self._db.connection(conn) as c:
            rows = await c.fetch(_RECENT_PRIVATE_CHATS, platform.value, within, limit)
        return [PrivateChat(r["chat_id"], r["platform_message_id"]) for r in rows]

    async def count(self, user_id: int, *, conn: Connection | None = None) -> int:
        async with self._db.connection(conn) as c:
            value = await c.fetchval(
                "SELECT (SELECT count(*) FROM messages WHERE user_id = $1)"
                " + (SELECT count(*) FROM messages_archive WHERE user_id = $1)",
                user_id,
            )
        return int(value)
