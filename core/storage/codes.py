"""Short-lived single-use codes: linking identities and confirming erasure.

Codes come from an alphabet without look-alikes (no 0/O, 1/I/L) and are compared
case-insensitively. A user holds at most one live code per purpose: asking again
replaces the old one. Using a code deletes it, so it works once.

Link codes are longer than erasure codes because a guessed link code would merge the
guesser into someone else's account; an erasure code only works for its own user.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from enum import StrEnum

from core.storage.database import Connection, Database

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
_ATTEMPTS = 5


class CodePurpose(StrEnum):
    LINK = "link"
    DELETE = "delete"


CODE_LENGTH = {CodePurpose.LINK: 8, CodePurpose.DELETE: 6}


def normalize(code: str) -> str:
    return code.strip().upper()


def looks_like_code(text: str) -> bool:
    """Whether `text` could be a code at all (checked before touching the database)."""
    text = normalize(text)
    return 4 <= len(text) <= 16 and all(ch in ALPHABET for ch in text)


class CodeRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self,
        user_id: int,
        purpose: CodePurpose,
        *,
        now: datetime,
        ttl: timedelta,
        conn: Connection | None = None,
    ) -> str:
        """A fresh code for `user_id`, replacing any earlier one of the same purpose."""
        async with self._db.transaction(conn) as c:
            await c.execute(
                "DELETE FROM one_time_codes WHERE user_id = $1 AND purpose = $2",
                user_id,
                purpose.value,
            )
            for _ in range(_ATTEMPTS):
                code = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH[purpose]))
                inserted = await c.fetchval(
                    "INSERT INTO one_time_codes (code, purpose, user_id, expires_at)"
                    " VALUES ($1, $2, $3, $4) ON CONFLICT (code) DO NOTHING RETURNING true",
                    code,
                    purpose.value,
                    user_id,
                    now + ttl,
                )
                if inserted:
                    return code
        raise RuntimeError("could not find a free one-time code")  # pragma: no cover

    async def owner(
        self,
        code: str,
        purpose: CodePurpose,
        *,
        now: datetime,
        lock: bool = False,
        conn: Connection | None = None,
    ) -> int | None:
        """The user a live code belongs to, without using it up; None when there is none."""
        async with self._db.connection(conn) as c:
            value = await c.fetchval(
                "SELECT user_id FROM one_time_codes WHERE code = $1 AND purpose = $2"
                " AND expires_at > $3" + (" FOR UPDATE" if lock else ""),
                normalize(code),
                purpose.value,
                now,
            )
        return None if value is None else int(value)

    async def consume(
        self,
        code: str,
        purpose: CodePurpose,
        *,
        now: datetime,
        user_id: int | None = None,
        conn: Connection | None = None,
    ) -> int | None:
        """Use a live code up; its owner, or None when it is unknown, used or expired.

        With `user_id`, only that user's code counts (erasure confirms one's own code).
        """
        async with self._db.connection(conn) as c:
            value = await c.fetchval(
                "DELETE FROM one_time_codes WHERE code = $1 AND purpose = $2"
                " AND expires_at > $3 AND ($4::bigint IS NULL OR user_id = $4) RETURNING user_id",
                normalize(code),
                purpose.value,
                now,
                user_id,
            )
        return None if value is None else int(value)

    async def purge_expired(self, *, now: datetime, conn: Connection | None = None) -> int:
        """Delete codes past their expiry (for a periodic clean-up job); how many."""
        async with self._db.connection(conn) as c:
            result = await c.execute("DELETE FROM one_time_codes WHERE expires_at <= $1", now)
        return int(result.split()[-1])
