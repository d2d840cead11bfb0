"""Vector recall: the nearest facts and messages of one user to a query embedding.

Scores follow one convention: `similarity = 1 - cosine distance`, higher is more similar.

Two plans, chosen per user:
- exact: the user's rows are found through the B-tree on `user_id` and ordered by exact
  distance. Recall is 1.0 and, for the small sets nearly every user has, it is the
  fastest plan (up to about 5k rows: docs/benchmarks.md).
- approximate: a user with partial HNSW indexes of their own (the largest users, built
  by the `user_indexes` job, core/recall/user_indexes.py) is searched through them with
  `hnsw.iterative_scan`; a few times `k` candidates per source are re-sorted by exact
  distance. Plans are custom per call (see `_APPROXIMATE_SETTINGS`).
There are no shared vector indexes (migrations 0004 and 0007): a filtered scan of one
index over every user's vectors was slower than the exact plan for users below the
threshold and missed rows for the large ones, and inserting into it was the largest
cost of storing a message. Every plan filters on `user_id`, so another user's rows can
never be returned. The statements are `core.recall.statements.nearest_statement`, one
per set of sources and plan; this repository binds their values.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import numpy as np

from core.models import SharedChat
from core.recall.statements import Source, nearest_statement
from core.recall.user_indexes import UserIndexRepository
from core.storage.database import Connection, Database

# Candidates the HNSW scan keeps per step: recall@10 0.945 at 100, above 0.95 at 200
# (tests/core/recall/test_user_indexes.py); 0.999 for the foundation benchmark's 50k-row user.
EF_SEARCH = 200
# How long the set of users with indexes of their own is reused before it is read again
# (seconds). The user_indexes job changes it rarely; until then a new index is simply
# not used yet, and a dropped one makes the approximate query an exact one.
INDEXED_USERS_TTL = 60.0


# Settings of an approximate recall, sent in one round trip inside its transaction.
# - relaxed_order: the iterative scan may return rows slightly out of order, which the
#   re-sort above repairs; measured lower latency than strict_order at the same
#   recall.
# - force_custom_plan: asyncpg prepares statements, and after five runs PostgreSQL may
#   switch to a generic plan, which cannot see that `user_id = $1` is a heavy user and
#   picks the B-tree: recall then silently became an exact scan of 50k rows (60-350 ms).
#   Only a custom plan can use a partial index whose predicate names the user id.
_APPROXIMATE_SETTINGS = (
    "SET LOCAL hnsw.iterative_scan = relaxed_order;"
    f" SET LOCAL hnsw.ef_search = {EF_SEARCH:d};"
    " SET LOCAL plan_cache_mode = force_custom_plan"
)


ALL_SOURCES = frozenset(Source)


@dataclass(frozen=True, slots=True)
class RecallHit:
    source: Source
    id: int
    content: str
    similarity: float
    created_at: datetime
    importance: int | None
    role: str | None  # "user" or "assistant" for messages, None for facts


def recall_hit(row: asyncpg.Record) -> RecallHit:
    """A row of `nearest_statement`'s result."""
    return RecallHit(
        source=Source(row["source"]),
        id=row["id"],
        content=row["content"],
        similarity=1.0 - float(row["distance"]),
        created_at=row["created_at"],
        importance=row["importance"],
        role=row["role"],
    )


class RecallRepository:
    def __init__(self, db: Database, *, dimensions: int) -> None:
        self._db = db
        self._dimensions = dimensions
        self._user_indexes = UserIndexRepository(db, dimensions=dimensions)
        self._indexed_users: frozenset[int] = frozenset()
        self._indexed_users_read_at = -INDEXED_USERS_TTL
        self._queries = {
            (s, a): nearest_statement(s, approximate=a, dimensions=dimensions)
            for s in _subsets(ALL_SOURCES)
            for a in (False, True)
        }

    @property
    def dimensions(self) -> int:
        """The embedding dimension the statements are written for."""
        return self._dimensions

    async def nearest(
        self,
        user_id: int,
        embedding: np.ndarray[Any, Any],
        k: int,
        *,
        sources: Collection[Source] = ALL_SOURCES,
        shared_chat: SharedChat | None = None,
        exclude_message_ids: Collection[int] = (),
        approximate: bool | None = None,
        conn: Connection | None = None,
    ) -> list[RecallHit]:
        """The `k` rows of this user nearest to `embedding`, most similar first: for a
        reply in `shared_chat`, only that chat's messages and facts that are not private
        (None: the person's private chat, everything); never a message not `remembered`.

        `approximate=None` picks the approximate plan if the user has indexes of their
        own; `approximate=True` without them is exact too (no index to approximate with).
        """
        args = self.arguments(user_id, embedding, k, shared_chat, exclude_message_ids)
        if not sources:
            return []
        async with self._db.connection(conn) as c:
            if approximate is None:
                approximate = await self.has_own_index(user_id, conn=c)
            query = self._queries[(frozenset(sources), approximate)]
            async with recall_plan(c, approximate=approximate):
                rows = await c.fetch(query, *args)
        return [recall_hit(r) for r in rows]

    def arguments(
        self,
        user_id: int,
        embedding: np.ndarray[Any, Any],
        k: int,
        shared_chat: SharedChat | None,
        exclude_message_ids: Collection[int],
    ) -> tuple[Any, ...]:
        """The values of `nearest_statement`'s `$1`-`$5`, in order."""
        vector = self.vector_argument(embedding)
        chat = None if shared_chat is None else shared_chat.as_argument()
        return (user_id, vector, k, chat, list(exclude_message_ids))

    def vector_argument(self, embedding: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """The query embedding as the queries' parameter: half precision, as stored."""
        if len(embedding) != self._dimensions:
            raise ValueError(f"query has {len(embedding)} dimensions, expected {self._dimensions}")
        return np.asarray(embedding, dtype=np.float16)

    async def has_own_index(self, user_id: int, *, conn: Connection | None = None) -> bool:
        """Whether the user has HNSW indexes of their own (read at most once per
        `INDEXED_USERS_TTL`): their recall is approximate."""
        return user_id in await self._users_with_own_index(conn)

    async def _users_with_own_index(self, conn: Connection | None) -> frozenset[int]:
        now = time.monotonic()
        if now - self._indexed_users_read_at >= INDEXED_USERS_TTL:
            self._indexed_users = frozenset(await self._user_indexes.indexed_users(conn=conn))
            self._indexed_users_read_at = now
        return self._indexed_users

    async def explain(
        self,
        user_id: int,
        embedding: np.ndarray[Any, Any],
        k: int,
        *,
        approximate: bool = True,
        conn: Connection | None = None,
    ) -> str:
        """The query plan of a recall (benchmarks and tests check the index is used)."""
        vector = self.vector_argument(embedding)
        query = self._queries[(ALL_SOURCES, approximate)]
        async with self._db.connection(conn) as c, recall_plan(c, approximate=approximate):
            rows = await c.fetch("EXPLAIN " + query, user_id, vector, k, None, [])
        return "\n".join(r[0] for r in rows)


@asynccontextmanager
async def recall_plan(conn: Connection, *, approximate: bool) -> AsyncIterator[None]:
    """Where a recall statement runs: an approximate one in a transaction after
    `_APPROXIMATE_SETTINGS` (they are SET LOCAL), an exact one as it is."""
    if not approximate:
        yield
        return
    async with conn.transaction():
        await conn.execute(_APPROXIMATE_SETTINGS)
        yield


def _subsets(sources: frozenset[Source]) -> list[frozenset[Source]]:
    items = sorted(sources)
    return [
        frozenset(s for i, s in enumerate(items) if mask & (1 << i))
        for mask in range(1, 1 << len(items))
    ]
