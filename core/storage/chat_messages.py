"""The messages of one chat within a person's conversation.

A person's one conversation spans their private chats and the groups they talk to the
bot in; what belongs to a single chat (`/retry` answers that chat's own last message,
never one said elsewhere; `/why` explains that chat's replies only) is read here.
"""

from __future__ import annotations

from core.models import Message, Platform
from core.storage.database import Connection, Database
from core.storage.messages import MESSAGE_COLUMNS, message_from_row


class ChatMessageRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def latest_from_user(
        self,
        user_id: int,
        *,
        platform: Platform,
        chat_id: str,
        shared_chat: bool,
        conn: Connection | None = None,
    ) -> Message | None:
        """The person's newest message in this chat (live table: a message awaiting an
        answer is never archived). `shared_chat` says what kind of chat it is, which
        lets a group's lookup use that chat's own index."""
        async with self._db.connection(conn) as c:
            row = await c.fetchrow(
                f"SELECT {MESSAGE_COLUMNS}, false AS archived FROM messages"
                " WHERE user_id = $1 AND role = 'user' AND platform = $2 AND chat_id = $3"
                " AND shared_chat = $4 ORDER BY id DESC LIMIT 1",
                user_id,
                platform.value,
                chat_id,
                shared_chat,
            )
        return None if row is None else message_from_row(row)

    async def latest_reply(
        self,
        user_id: int,
        *,
        platform: Platform,
        chat_id: str,
        shared_chat: bool,
        conn: Connection | None = None,
    ) -> Message | None:
        """The bot's newest reply to the person in this chat, live or archived."""
        async with self._db.connection(conn) as c:
            row = await c.fetchrow(
                f"(SELECT {MESSAGE_COLUMNS}, false AS archived FROM messages"
                "  WHERE user_id = $1 AND role = 'assistant' AND platform = $2"
                "  AND chat_id = $3 AND shared_chat = $4 ORDER BY id DESC LIMIT 1)"
                " UNION ALL"
                f" (SELECT {MESSAGE_COLUMNS}, true FROM messages_archive"
                "  WHERE user_id = $1 AND role = 'assistant' AND platform = $2"
                "  AND chat_id = $3 AND shared_chat = $4 ORDER BY id DESC LIMIT 1)"
                " ORDER BY id DESC LIMIT 1",
                user_id,
                platform.value,
                chat_id,
                shared_chat,
            )
        return None if row is None else message_from_row(row)

    async def reply(
        self,
        user_id: int,
        *,
        platform: Platform,
        chat_id: str,
        platform_message_id: str,
        conn: Connection | None = None,
    ) -> Message | None:
        """The bot's reply to the person that is the platform's message
        `platform_message_id` in this chat, live or archived; None when that message is
        not one (someone else's, or not a reply)."""
        async with self._db.connection(conn) as c:
            row = await c.fetchrow(
                f"SELECT {MESSAGE_COLUMNS}, false AS archived FROM messages"
                " WHERE platform = $2 AND chat_id = $3 AND platform_message_id = $4"
                " AND user_id = $1 AND role = 'assistant'"
                f" UNION ALL SELECT {MESSAGE_COLUMNS}, true FROM messages_archive"
                " WHERE platform = $2 AND chat_id = $3 AND platform_message_id = $4"
                " AND user_id = $1 AND role = 'assistant'",
                user_id,
                platform.value,
                chat_id,
                platform_message_id,
            )
        return None if row is None else message_from_row(row)
