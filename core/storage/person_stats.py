"""One person's own numbers (`/stats` for a person): read for that person only, in one
statement. The deployment's numbers, for admins, are `core.storage.stats`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.storage.database import Connection, Database

# $1 user. Counters come from the conversation (they survive `/forget all`); what is
# kept now is counted in the messages, live and archived.
_PERSON = """
WITH kept AS (
    SELECT role FROM messages WHERE user_id = $1
    UNION ALL
    SELECT role FROM messages_archive WHERE user_id = $1
)
SELECT u.created_at AS since, c.message_count, c.tokens_in, c.tokens_out,
       (SELECT count(*) FROM kept WHERE role = 'user') AS kept_yours,
       (SELECT count(*) FROM kept WHERE role = 'assistant') AS kept_mine,
       (SELECT count(*) FROM facts WHERE user_id = $1 AND invalid_at IS NULL) AS facts
FROM users u JOIN conversations c ON c.user_id = u.id
WHERE u.id = $1
"""


@dataclass(frozen=True, slots=True)
class PersonStats:
    since: datetime
    """When the person first wrote (their user was created)."""
    messages: int
    """Every message of the conversation so far, theirs and the bot's, forgotten ones
    included."""
    kept_yours: int
    """Their messages kept now (live and archived)."""
    kept_mine: int
    """The bot's replies kept now."""
    facts: int
    """Facts still true."""
    tokens_in: int
    """Tokens the model read to answer them."""
    tokens_out: int
    """Tokens it wrote to them."""


class PersonStatsRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def of(self, user_id: int, *, conn: Connection | None = None) -> PersonStats:
        async with self._db.connection(conn) as c:
            row = await c.fetchrow(_PERSON, user_id)
        assert row is not None, f"user {user_id} has no conversation"
        return PersonStats(
            since=row["since"],
            messages=row["message_count"],
            kept_yours=row["kept_yours"],
            kept_mine=row["kept_mine"],
            facts=row["facts"],
            tokens_in=row["tokens_in"],
            tokens_out=row["tokens_out"],
        )
