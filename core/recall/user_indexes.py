"""Partial HNSW and GIN indexes of their own for the few very large users.

Most users are searched exactly (B-tree on `user_id`); above a few thousand rows that
grows too slow. There are no shared vector indexes (migration 0007): in one index over
every user's vectors a large user owns a few percent of them, so a filtered search
walks many times more candidates than it keeps, and both its latency and its recall
suffered (docs/benchmarks.md), while every insert paid for it. Nor shared full-text
indexes (migration 0008), for the same reasons. A large user, by rows (messages and
valid facts: a user heavy in facts is as slow to search as one heavy in messages), gets
indexes holding only their rows (`WHERE user_id = N`): per table, an HNSW index on the
embedding and a GIN index on `search`, and an HNSW index on their long messages'
passages; recall's queries use custom plans, so the planner sees the literal user id
and picks them.

These indexes are the only DDL outside migrations, on purpose: which users need one
depends on the data, not on the schema version. They are built `CONCURRENTLY` (writes
go on meanwhile), named `<table>_embedding_<dim>_u<user id>` and
`<table>_search_u<user id>`, and dropped when the user no longer qualifies or is gone.
A user counts as indexed once the passages' and both kinds of `messages` are built.
Names and predicates are built from integers only.
"""

from __future__ import annotations

import re

from core.storage.database import Connection, Database

TABLES = ("messages", "messages_archive", "facts")
#: Long messages' passages (migration 0020): an HNSW index of their own, no `search`.
PASSAGES = "message_passages"
_PER_USER_INDEX = re.compile(
    r"^(messages|messages_archive|facts|message_passages)_embedding_(?P<dimensions>\d+)_u\d+$"
)


def index_name(table: str, dimensions: int, user_id: int) -> str:
    return f"{table}_embedding_{dimensions:d}_u{user_id:d}"


def search_index_name(table: str, user_id: int) -> str:
    return f"{table}_search_u{user_id:d}"


#: A term in more than this share of an indexed user's rows is common: keyword recall
#: does not look it up through their GIN indexes (core/recall/statements.py).
COMMON_TERM_SHARE = 0.02


def _search_stats_sql(user_id: int) -> str:
    """The statement writing the user's `user_search_stats` (migration 0017): their rows
    (remembered messages, live and archived, and valid facts) and the terms in more than
    `COMMON_TERM_SHARE` of them, counted by `ts_stat` over their `search` vectors. What
    the person said with memory off (or set aside) is never counted."""
    rows = (
        f"SELECT search FROM messages WHERE user_id = {user_id:d} AND remembered"
        f" UNION ALL SELECT search FROM messages_archive"
        f" WHERE user_id = {user_id:d} AND remembered"
        f" UNION ALL SELECT search FROM facts WHERE user_id = {user_id:d} AND invalid_at IS NULL"
    )
    return f"""
WITH counted AS (
    SELECT count(*) AS n FROM ({rows}) AS r
), common AS (
    SELECT s.word, s.ndoc::real / c.n AS share
    FROM ts_stat('{rows}') AS s, counted c
    WHERE s.ndoc > {COMMON_TERM_SHARE} * c.n
)
INSERT INTO user_search_stats AS u (user_id, rows, common_terms, common_shares)
SELECT {user_id:d}, c.n,
       coalesce((SELECT array_agg(word ORDER BY word) FROM common), '{{}}'),
       coalesce((SELECT array_agg(share ORDER BY word) FROM common), '{{}}')
FROM counted c
ON CONFLICT (user_id) DO UPDATE
    SET rows = excluded.rows, common_terms = excluded.common_terms,
        common_shares = excluded.common_shares, computed_at = now()
"""


# A user's rows: messages (live and archived, as the conversation counts them) and valid
# facts. Read by the job only (a scan of the facts table, grouped).
_ROWS = """
WITH rows AS (
    SELECT c.user_id, c.message_count + coalesce(f.facts, 0) AS n
    FROM conversations c
    LEFT JOIN (SELECT user_id, count(*) AS facts FROM facts WHERE invalid_at IS NULL
               GROUP BY user_id) f USING (user_id)
)
"""


class UserIndexRepository:
    def __init__(self, db: Database, *, dimensions: int) -> None:
        self._db = db
        self._dimensions = dimensions
        self._names = (
            re.compile(rf"^messages_embedding_{dimensions:d}_u(\d+)$"),
            re.compile(r"^messages_search_u(\d+)$"),
            re.compile(rf"^{PASSAGES}_embedding_{dimensions:d}_u(\d+)$"),
        )

    async def largest_users(self, min_rows: int, limit: int) -> list[int]:
        """Users with more than `min_rows` rows (messages and valid facts), largest
        first."""
        async with self._db.connection() as c:
            rows = await c.fetch(
                f"{_ROWS} SELECT user_id FROM rows WHERE n > $1 ORDER BY n DESC, user_id LIMIT $2",
                min_rows,
                limit,
            )
        return [r["user_id"] for r in rows]

    async def count_users_above(self, min_rows: int) -> int:
        async with self._db.connection() as c:
            count = await c.fetchval(f"{_ROWS} SELECT count(*) FROM rows WHERE n > $1", min_rows)
        return int(count)

    async def indexed_users(
        self, *, complete: bool = True, conn: Connection | None = None
    ) -> set[int]:
        """Users with valid own indexes on `messages` (vector and full text) and on
        their passages; with `complete=False`, with any of them (some of a user's may
        be missing: built before the others existed, or a build failed half-way)."""
        async with self._db.connection(conn) as c:
            rows = await c.fetch(
                "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                " WHERE i.indisvalid"
                " AND (c.relname LIKE $1 OR c.relname LIKE $2 OR c.relname LIKE $3)",
                f"messages\\_embedding\\_{self._dimensions:d}\\_u%",
                "messages\\_search\\_u%",
                f"message\\_passages\\_embedding\\_{self._dimensions:d}\\_u%",
            )
        found: list[set[int]] = [set() for _ in self._names]
        for row in rows:
            for users, name in zip(found, self._names, strict=True):
                match = name.match(row["relname"])
                if match:
                    users.add(int(match[1]))
        return set.intersection(*found) if complete else set.union(*found)

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
        """Build the user's indexes, those missing only (an invalid leftover of a failed
        build is replaced). The `messages` ones last: they make the user indexed."""
        async with self._db.connection() as c:
            await self._create_hnsw(c, PASSAGES, user_id)
            for table in reversed(TABLES):
                valid = " AND invalid_at IS NULL" if table == "facts" else ""
                await self._create_hnsw(c, table, user_id, valid)
                text = search_index_name(table, user_id)
                await _drop_if_invalid(c, text)
                await c.execute(
                    f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {text} ON {table}"
                    f" USING gin (search) WHERE user_id = {user_id:d}{valid}"
                )

    async def _create_hnsw(
        self, conn: Connection, table: str, user_id: int, valid: str = ""
    ) -> None:
        """The user's HNSW index on `table` (`valid`: the rows' own condition, e.g. a
        fact not invalidated), replacing an invalid leftover of a failed build."""
        name = index_name(table, self._dimensions, user_id)
        await _drop_if_invalid(conn, name)
        await conn.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {table}"
            f" USING hnsw ((embedding::halfvec({self._dimensions:d})) halfvec_cosine_ops)"
            f" WHERE user_id = {user_id:d}"
            f" AND vector_dims(embedding) = {self._dimensions:d}{valid}"
        )

    async def count_terms(self, user_id: int) -> None:
        """Count the user's rows and common terms again (`user_search_stats`), for
        keyword recall through their indexes."""
        async with self._db.connection() as c:
            await c.execute(_search_stats_sql(user_id))

    async def drop(self, user_id: int) -> None:
        async with self._db.connection() as c:
            await c.execute("DELETE FROM user_search_stats WHERE user_id = $1", user_id)
            passages = index_name(PASSAGES, self._dimensions, user_id)
            await c.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {passages}")
            for table in TABLES:
                for name in (
                    index_name(table, self._dimensions, user_id),
                    search_index_name(table, user_id),
                ):
                    await c.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


async def _drop_if_invalid(conn: Connection, name: str) -> None:
    invalid = await conn.fetchval(
        "SELECT NOT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE c.relname = $1",
        name,
    )
    if invalid:
        await conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
