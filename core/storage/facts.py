"""What onethread learned about each user. Facts that stop being true are kept with
`invalid_at` set, and are no longer recalled."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import numpy as np

from core.models import Fact, NewFact
from core.storage.database import Connection, Database

_COLUMNS = (
    "id, user_id, content, category, importance, confidence, is_private, source_message_ids,"
    " valid_from, invalid_at, created_at, updated_at"
)
# Facts still true, most important first; `$n` parameters filled in by the callers.
_VALID = (
    "FROM facts WHERE user_id = {user} AND invalid_at IS NULL"
    " AND ({include_private} OR NOT is_private)"
    " ORDER BY importance DESC, updated_at DESC, id LIMIT {limit}"
)

# $1 fact, $2 user. The fact's sources, and the replies to them, stop being remembered.
_FORGET = """
WITH forgotten AS (
    DELETE FROM facts WHERE id = $1 AND user_id = $2 RETURNING source_message_ids AS ids
), live AS (
    UPDATE messages m SET remembered = false FROM forgotten f
    WHERE m.user_id = $2 AND (m.id = ANY(f.ids) OR m.reply_to_id = ANY(f.ids))
    RETURNING 1
), archived AS (
    UPDATE messages_archive m SET remembered = false FROM forgotten f
    WHERE m.user_id = $2 AND (m.id = ANY(f.ids) OR m.reply_to_id = ANY(f.ids))
    RETURNING 1
)
SELECT (SELECT count(*) FROM live) + (SELECT count(*) FROM archived) AS set_aside
FROM forgotten
"""


def _fact(row: asyncpg.Record | Mapping[str, Any]) -> Fact:
    return Fact(
        id=row["id"],
        user_id=row["user_id"],
        content=row["content"],
        category=row["category"],
        importance=row["importance"],
        confidence=row["confidence"],
        is_private=row["is_private"],
        source_message_ids=tuple(row["source_message_ids"]),
        valid_from=row["valid_from"],
        invalid_at=row["invalid_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class FactRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self,
        user_id: int,
        fact: NewFact,
        *,
        embedding: np.ndarray[Any, Any] | None = None,
        conn: Connection | None = None,
    ) -> Fact:
        async with self._db.connection(conn) as c:
            row = await c.fetchrow(
                "INSERT INTO facts (user_id, content, category, importance, confidence,"
                " is_private, source_message_ids, embedding, valid_from, search_config)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, coalesce($9, now()),"
                # In the language of the person's newest message (migration 0016), which
                # is found through the B-tree of the user's messages, as keyword recall
                # finds it (core/recall/statements.py says why).
                "  coalesce((SELECT n.search_config FROM (SELECT user_id, search_config"
                "    FROM messages WHERE user_id >= $1 ORDER BY user_id, id DESC LIMIT 1) n"
                "   WHERE n.user_id = $1), 'english'))"
                f" RETURNING {_COLUMNS}",
                user_id,
                fact.content,
                fact.category,
                fact.importance,
                fact.confidence,
                fact.is_private,
                list(fact.source_message_ids),
                embedding,
                fact.valid_from,
            )
        assert row is not None
        return _fact(row)

    async def update(
        self,
        user_id: int,
        fact_id: int,
        fact: NewFact,
        *,
        embedding: np.ndarray[Any, Any] | None = None,
        conn: Connection | None = None,
    ) -> Fact | None:
        """Restate a fact; its sources grow by the new ones, and a private fact stays
        private."""
        async with self._db.connection(conn) as c:
            row = await c.fetchrow(
                "UPDATE facts SET content = $3, category = $4, importance = $5, confidence = $6,"
                " is_private = is_private OR $7,"
                " source_message_ids = ARRAY(SELECT DISTINCT unnest(source_message_ids || $8)),"
                " embedding = coalesce($9, embedding), updated_at = now()"
                f" WHERE id = $1 AND user_id = $2 AND invalid_at IS NULL RETURNING {_COLUMNS}",
                fact_id,
                user_id,
                fact.content,
                fact.category,
                fact.importance,
                fact.confidence,
                fact.is_private,
                list(fact.source_message_ids),
                embedding,
            )
        return None if row is None else _fact(row)

    async def invalidate(
        self,
        user_id: int,
        fact_id: int,
        *,
        at: datetime | None = None,
        conn: Connection | None = None,
    ) -> bool:
        """Mark a fact as no longer true. It stays stored, but is not recalled."""
        async with self._db.connection(conn) as c:
            result = await c.execute(
                "UPDATE facts SET invalid_at = coalesce($3, now()), updated_at = now()"
                " WHERE id = $1 AND user_id = $2 AND invalid_at IS NULL",
                fact_id,
                user_id,
                at,
            )
        return result.endswith(" 1")

    async def valid(
        self,
        user_id: int,
        *,
        limit: int | None = None,
        include_private: bool = True,
        conn: Connection | None = None,
    ) -> list[Fact]:
        """Facts still true, most important first."""
        valid = _VALID.format(user="$1", include_private="$2", limit="$3")
        async with self._db.connection(conn) as c:
            rows = await c.fetch(f"SELECT {_COLUMNS} {valid}", user_id, include_private, limit)
        return [_fact(r) for r in rows]

    async def search(
        self,
        user_id: int,
        query: str,
        *,
        limit: int = 20,
        include_private: bool = True,
        conn: Connection | None = None,
    ) -> list[tuple[Fact, float]]:
        """Full-text search over the user's valid facts, best first, with their rank."""
        async with self._db.connection(conn) as c:
            rows = await c.fetch(
                f"SELECT {_COLUMNS}, ts_rank_cd(search, q) AS rank"
                " FROM facts, websearch_to_tsquery('english', $2) AS q"
                " WHERE user_id = $1 AND invalid_at IS NULL AND ($4 OR NOT is_private)"
                " AND search @@ q ORDER BY rank DESC, id LIMIT $3",
                user_id,
                query,
                limit,
                include_private,
            )
        return [(_fact(r), float(r["rank"])) for r in rows]

    async def all(self, user_id: int, *, conn: Connection | None = None) -> list[Fact]:
        """Every fact, invalidated ones included (for export), oldest first."""
        async with self._db.connection(conn) as c:
            rows = await c.fetch(
                f"SELECT {_COLUMNS} FROM facts WHERE user_id = $1 ORDER BY id", user_id
            )
        return [_fact(r) for r in rows]

    async def by_ids(
        self,
        user_id: int,
        fact_ids: Sequence[int],
        *,
        include_private: bool = True,
        conn: Connection | None = None,
    ) -> list[Fact]:
        """Those of `fact_ids` that are the user's and still kept (invalidated ones
        too), in the order given; without private ones unless `include_private`."""
        async with self._db.connection(conn) as c:
            rows = await c.fetch(
                f"SELECT {_COLUMNS} FROM facts"
                " WHERE user_id = $1 AND id = ANY($2::bigint[]) AND ($3 OR NOT is_private)"
                " ORDER BY array_position($2::bigint[], id)",
                user_id,
                list(fact_ids),
                include_private,
            )
        return [_fact(r) for r in rows]

    async def forget(
        self, user_id: int, fact_id: int, *, conn: Connection | None = None
    ) -> int | None:
        """Forget a fact for good (the person asked to), and set aside the messages it
        was learned from, live or archived, with the replies to them: they are no longer
        `remembered`, so neither recall nor the memory job brings the fact back from
        them. How many messages were set aside; None when there is no such fact."""
        async with self._db.connection(conn) as c:
            row = await c.fetchrow(_FORGET, fact_id, user_id)
        return None if row is None else int(row["set_aside"])

    async def counts(self, user_id: int, *, conn: Connection | None = None) -> tuple[int, int]:
        """(valid, invalidated) facts of a user."""
        async with self._db.connection(conn) as c:
            row = await c.fetchrow(
                "SELECT count(*) FILTER (WHERE invalid_at IS NULL) AS valid,"
                " count(*) FILTER (WHERE invalid_at IS NOT NULL) AS invalid"
                " FROM facts WHERE user_id = $1",
                user_id,
            )
        assert row is not None
        return int(row["valid"]), int(row["invalid"])
