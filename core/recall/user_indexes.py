"""Partial HNSW indexes of their own for the few very large users.

Most users are searched exactly (B-tree on `user_id`); above a few thousand rows that
grows too slow. There are no shared vector indexes (migration 0007): in one index over
every user's vectors a large user owns a few percent of them, so a filtered search
walks many times more candidates than it keeps, and both its latency and its recall
suffered (docs/benchmarks.md), while every insert paid for it. A large user gets
indexes holding only their rows (`WHERE user_id = N`); recall's query uses custom
plans, so the planner sees the literal user id and picks them.

These indexes are the only DDL outside migrations, on purpose: which users need one
depends on the data, not on the schema version. They are built `CONCURRENTLY` (writes
go on meanwhile), named `<table>_embedding_<dim>_u<user id>`, and dropped when the user
no longer qualifies or is gone. Names and predicates are built from integers only.
"""

from __future__ import annotations

import re

from core.storage.database import Connection, Database

TABLES = ("messages", "messages_archive", "facts")
_PER_USER_INDEX = re.compile(
    r"^(messages|messages_archive|facts)_embedding_(?P<dimensions>\d+)_u\d+$"
)


def index_name(table: str, dimensions: int, user_id: int) -> str:
    return f"{table}_embedding_{dimensions:d}_u{user_id:d}"


class UserIndexRepository:
    def __init__(self, db: Database, *, dimensions: int) -> None:
        self._db = db
        self._dimensions = dimensions
        self._name = re.compile(rf"^messages_embedding_{dimensions:d}_u(\d+)$")

    async def largest_users(self, min_messages: int, limit: int) -> list[int]:
        """Users with more than `min_messages` messages, largest first."""
        async with self._db.connection() as c:
            rows = await c.fetch(
                "SELECT user_id FROM conversations WHERE message_count > $1"
                " ORDER BY message_count DESC, user_id LIMIT $2",
                min_messages,
                limit,
            )
        return [r["user_id"] for r in rows]

    async def count_users_above(self, min_messages: int) -> int:
        async with self._db.connection() as c:
            count = await c.fetchval(
                "SELECT count(*) FROM conversations WHERE message_count > $1", min_messages
            )
        return int(count)

    async def indexed_users(self, *, conn: Connection | None = None) -> set[int]:
        """Users with a valid own index on `messages`."""
        async with self._db.connection(conn) as c:
            rows = await c.fetch(
                "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                " WHERE i.indisvalid AND c.relname LIKE $1",
                f"messages_embedding_{self._dimensions:d}_u%",
            )
        found = set()
        for row in rows:
            match = self._name.match(row["relname"])
            if match:
                found.add(int(match[1]))
        return found

    async def other_dimension_indexes(self) -> list[str]:
        """Per-user indexes built for another embedding dimension (before a model
        change): recall only searches rows of the configured dimension, so they are
        dead weight on every insert."""
        async with self._db.connection() as c:
            rows = await c.fetch(
                "SELECT relname FROM pg_class WHERE relkind = 'i' AND relname LIKE $1",
                "%\\_embedding\\_%\\_u%",
            )
        names = []
        for row in rows:
            match = _PER_USER_INDEX.match(row["relname"])
            if match and int(match["dimensions"]) != self._dimensions:
                names.append(match[0])
        return sorted(names)

    async def drop_index(self, name: str) -> None:
        """Drop one index named by `other_dimension_indexes` (checked again here)."""
        if not _PER_USER_INDEX.match(name):
            raise ValueError(f"not a per-user index name: {name!r}")
        async with self._db.connection() as c:
            await c.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")

    async def create(self, user_id: int) -> None:
        """Build the user's indexes (an invalid leftover of a failed build is replaced)."""
        async with self._db.connection() as c:
            for table in TABLES:
                await _drop_if_invalid(c, index_name(table, self._dimensions, user_id))
                extra = " AND invalid_at IS NULL" if table == "facts" else ""
                await c.execute(
                    f"CREATE INDEX CONCURRENTLY IF NOT EXISTS"
                    f" {index_name(table, self._dimensions, user_id)} ON {table}"
                    f" USING hnsw ((embedding::halfvec({self._dimensions:d})) halfvec_cosine_ops)"
                    f" WHERE user_id = {user_id:d}"
                    f" AND vector_dims(embedding) = {self._dimensions:d}{extra}"
                )

    async def drop(self, user_id: int) -> None:
        async with self._db.connection() as c:
            for table in TABLES:
                await c.execute(
                    "DROP INDEX CONCURRENTLY IF EXISTS"
                    f" {index_name(table, self._dimensions, user_id)}"
                )


async def _drop_if_invalid(conn: Connection, name: str) -> None:
    invalid = await conn.fetchval(
        "SELECT NOT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE c.relname = $1",
        name,
    )
    if invalid:
        await conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
