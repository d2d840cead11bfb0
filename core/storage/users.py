"""Users, their platform identities, and their one conversation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from core.models import Conversation, Identity, Platform, Role, User, UserStatus
from core.storage.database import Connection, Database
from core.storage.rate_limits import DROP_BUCKET

# "Last seen" is stamped at most this often (or on a new display name): stamping every
# message of a busy chat would be a write per message for a minute-resolution value.
LAST_SEEN_RESOLUTION = timedelta(minutes=1)

_USER_COLUMNS = (
    "u.id, u.role, u.status, u.display_name, u.locale, u.settings, u.ban_notified,"
    " u.created_at, u.last_seen_at, u.language"
)

_BY_IDENTITY = (
    f"SELECT {_USER_COLUMNS} FROM identities i JOIN users u ON u.id = i.user_id"
    " WHERE i.platform = $1 AND i.platform_user_id = $2"
)
# The user of a known identity, remembering its private chat ($3) when given and new:
# one round trip per message, and a write only when the chat changed.
_KNOWN_IDENTITY = (
    "WITH remembered AS ("
    " UPDATE identities SET private_chat_id = $3"
    " WHERE platform = $1 AND platform_user_id = $2"
    " AND $3::text IS NOT NULL AND private_chat_id IS DISTINCT FROM $3)"
    f" {_BY_IDENTITY}"
)


def user_from_row(row: asyncpg.Record) -> User:
    return User(
        id=row["id"],
        role=Role(row["role"]),
        status=UserStatus(row["status"]),
        display_name=row["display_name"],
        locale=row["locale"],
        settings=row["settings"],
        ban_notified=row["ban_notified"],
        created_at=row["created_at"],
        last_seen_at=row["last_seen_at"],
        language=row["language"],
    )


def conversation_from_row(row: asyncpg.Record) -> Conversation:
    return Conversation(
        user_id=row["user_id"],
        summary=row["summary"],
        summary_version=row["summary_version"],
        summary_through_message_id=row["summary_through_message_id"],
        message_count=row["message_count"],
        tokens_in=row["tokens_in"],
        tokens_out=row["tokens_out"],
        persona_overrides=row["persona_overrides"],
        last_activity_at=row["last_activity_at"],
        memory_off_since=row["memory_off_since"],
    )


class UserRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get_or_create(
        self,
        platform: Platform,
        platform_user_id: str,
        *,
        username: str | None = None,
        display_name: str | None = None,
        private_chat_id: str | None = None,
        conn: Connection | None = None,
    ) -> tuple[User, bool]:
        """The user behind an identity, created with its conversation on first sight.

        `private_chat_id`, when given, is remembered as where to reach this identity
        privately (broadcasts); None leaves what is known.

        Atomic: concurrent first messages of one new identity create exactly one user.
        The advisory lock (per identity, held to the end of the transaction) makes the
        losers wait for the winner and then find its row.
        """
        # The common case, a known identity, needs one statement and no transaction.
        async with self._db.connection(conn) as c:
            row = await c.fetchrow(
                _KNOWN_IDENTITY, platform.value, platform_user_id, private_chat_id
            )
        if row is not None:
            return user_from_row(row), False
        async with self._db.transaction(conn) as c:
            await c.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                f"identity:{platform.value}:{platform_user_id}",
            )
            row = await c.fetchrow(
                _KNOWN_IDENTITY, platform.value, platform_user_id, private_chat_id
            )
            if row is not None:
                return user_from_row(row), False
            row = await c.fetchrow(
                "WITH u AS (INSERT INTO users (display_name) VALUES ($1) RETURNING *),"
                " i AS (INSERT INTO identities (platform, platform_user_id, user_id, username,"
                "       private_chat_id) SELECT $2, $3, id, $4, $5 FROM u),"
                " c AS (INSERT INTO conversations (user_id) SELECT id FROM u),"
                " x AS (INSERT INTO conversation_context (user_id) SELECT id FROM u)"
                f" SELECT {_USER_COLUMNS} FROM u",
                display_name,
                platform.value,
                platform_user_id,
                username,
                private_chat_id,
            )
            assert row is not None
            return user_from_row(row), True

    async def get(self, user_id: int, *, conn: Connection | None = None) -> User | None:
        async with self._db.connection(conn) as c:
            row = await c.fetchrow(f"SELECT {_USER_COLUMNS} FROM users u WHERE u.id = $1", user_id)
        return None if row is None else user_from_row(row)

    async def find(self, query: str, *, conn: Connection | None = None) -> User | None:
        """A user by id (`42`), by username (`@name`), or by identity (`telegram:123`)."""
        query = query.strip()
        async with self._db.connection(conn) as c:
            if query.isdigit():
                row = await c.fetchrow(
                    f"SELECT {_USER_COLUMNS} FROM users u WHERE u.id = $1", int(query)
                )
            elif query.startswith("@"):
                row = await c.fetchrow(
                    f"SELECT {_USER_COLUMNS} FROM identities i JOIN users u ON u.id = i.user_id"
                    " WHERE lower(i.username) = lower($1) ORDER BY u.last_seen_at DESC NULLS LAST"
                    " LIMIT 1",
                    query[1:],
                )
            elif ":" in query:
                platform, _, platform_user_id = query.partition(":")
                row = await c.fetchrow(_BY_IDENTITY, platform.lower(), platform_user_id)
            else:
                return None
        return None if row is None else user_from_row(row)

    async def identities(self, user_id: int, *, conn: Connection | None = None) -> list[Identity]:
        async with self._db.connection(conn) as c:
            rows = await c.fetch(
                "SELECT platform, platform_user_id, user_id, username, private_chat_id,"
                " created_at FROM identities WHERE user_id = $1 ORDER BY created_at",
                user_id,
            )
        return [
            Identity(
                Platform(r["platform"]),
                r["platform_user_id"],
                r["user_id"],
                r["username"],
                r["private_chat_id"],
                r["created_at"],
            )
            for r in rows
        ]

    async def conversation(self, user_id: int, *, conn: Connection | None = None) -> Conversation:
        async with self._db.connection(conn) as c:
            row = await c.fetchrow("SELECT * FROM conversations WHERE user_id = $1", user_id)
        if row is None:
            raise LookupError(f"user {user_id} has no conversation")
        return conversation_from_row(row)

    async def switch_memory(
        self, user_id: int, *, off: bool, at: datetime, conn: Connection | None = None
    ) -> bool:
        """Switch the person's memory off (since `at`) or back on; False when it already
        was (an earlier "off since" is kept)."""
        async with self._db.connection(conn) as c:
            result = await c.execute(
                "UPDATE conversations SET memory_off_since = CASE WHEN $2 THEN $3::timestamptz END"
                " WHERE user_id = $1 AND (memory_off_since IS NULL) = $2",
                user_id,
                off,
                at,
            )
        return result.endswith(" 1")

    async def change_persona_overrides(
        self,
        user_id: int,
        changes: Mapping[str, str],
        *,
        remove: Sequence[str] | None = (),
        conn: Connection | None = None,
    ) -> dict[str, Any]:
        """Set `changes` in the person's persona overrides and drop the keys in `remove`
        (None: every key), in one statement; the overrides as they are now."""
        async with self._db.connection(conn) as c:
            overrides: dict[str, Any] = await c.fetchval(
                "UPDATE conversations SET persona_overrides ="
                " coalesce(persona_overrides - $3::text[], '{}'::jsonb) || $2::jsonb"
                " WHERE user_id = $1 RETURNING persona_overrides",
                user_id,
                dict(changes),
                None if remove is None else list(remove),
            )
        return overrides

    async def set_status(
        self, user_id: int, status: UserStatus, *, conn: Connection | None = None
    ) -> bool:
        async with self._db.connection(conn) as c:
            result = await c.execute(
                "UPDATE users SET status = $2, ban_notified = false, updated_at = now()"
                " WHERE id = $1",
                user_id,
                status.value,
            )
        return result.endswith(" 1")

    async def set_role(self, user_id: int, role: Role, *, conn: Connection | None = None) -> None:
        async with self._db.connection(conn) as c:
            await c.execute(
                "UPDATE users SET role = $2, updated_at = now() WHERE id = $1", user_id, role.value
            )

    async def set_language(
        self, user_id: int, language: str | None, *, conn: Connection | None = None
    ) -> None:
        """The language the person chose for the bot's texts; None: the platform's."""
        async with self._db.connection(conn) as c:
            await c.execute(
                "UPDATE users SET language = $2, updated_at = now() WHERE id = $1",
                user_id,
                language,
            )

    async def mark_ban_notified(self, user_id: int, *, conn: Connection | None = None) -> bool:
        """Record that a banned user was told; False when they had been told already."""
        async with self._db.connection(conn) as c:
            result = await c.execute(
                "UPDATE users SET ban_notified = true WHERE id = $1 AND NOT ban_notified", user_id
            )
        return result.endswith(" 1")

    async def delete(self, user_id: int, *, conn: Connection | None = None) -> bool:
        """Erase a user; every table that holds user data cascades from `users`."""
        async with self._db.transaction(conn) as c:
            await c.execute(DROP_BUCKET, user_id)
            result = await c.execute("DELETE FROM users WHERE id = $1", user_id)
        return result.endswith(" 1")
