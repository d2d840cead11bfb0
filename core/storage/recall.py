"""Vector recall: the nearest facts and messages of one user to a query embedding.

Scores follow one convention: `similarity = 1 - cosine distance`, higher is more similar.

Two plans, chosen per user by size:
- exact: the user's rows are found through the B-tree on `user_id` and ordered by exact
  distance. Recall is 1.0 and, for the small sets nearly every user has, it is the
  fastest plan.
- approximate: for a user with more rows than `exact_max_rows`, the partial HNSW index of
  the configured dimension is scanned with `hnsw.iterative_scan`, which keeps scanning
  until enough of *this user's* rows have been found; a few times `k` candidates per
  source are re-sorted by exact distance. Rows of other users are filtered out by the
  same `user_id` predicate, so they can never be returned. Plans are custom per call
  (see `_APPROXIMATE_SETTINGS`).
The switch-over point is measured in benchmarks/foundation.py (docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import numpy as np
from pgvector import HalfVector

from core.storage.database import Connection, Database
from core.storage.user_indexes import index_name

# Candidates the HNSW scan keeps per step. 100 gave recall@10 0.68 on clustered 384-dim
# data with a user owning half the rows; 400 gave 0.98 (tests/core/storage/test_recall.py).
# On the foundation benchmark (a 50k-row user among 1.1M rows) 400 gives 0.91 and 800
# gives 0.96 at twice the latency (docs/benchmarks.md).
EF_SEARCH = 400
OWN_INDEX_EF_SEARCH = 200
# Each source's HNSW scan returns this many of the user's rows (at least), in the index's
# approximate order; the outer query re-sorts them by exact distance and keeps k.
CANDIDATES_PER_K = 4
MIN_CANDIDATES = 40


# Settings of an approximate recall, sent in one round trip inside its transaction.
# - relaxed_order: the iterative scan may return rows slightly out of order, which the
#   re-sort above repairs; measured lower latency than strict_order at the same
#   recall.
# - force_custom_plan: asyncpg prepares statements, and after five runs PostgreSQL may
#   switch to a generic plan, which cannot see that `user_id = $1` is a heavy user and
#   picks the B-tree: recall then silently became an exact scan of 50k rows (60-350 ms).
#   A custom plan also lets the planner pick, per source, the B-tree for a source where
#   this user has few rows (e.g. few facts) and HNSW where they have many.
def _approximate_settings(ef_search: int) -> str:
    return (
        "SET LOCAL hnsw.iterative_scan = relaxed_order;"
        f" SET LOCAL hnsw.ef_search = {ef_search:d};"
        " SET LOCAL plan_cache_mode = force_custom_plan"
    )


_APPROXIMATE_SETTINGS = _approximate_settings(EF_SEARCH)
# A user with indexes of their own (core/storage/user_indexes.py) needs no filtering,
# so a shorter candidate list does (tests/core/test_user_indexes.py: recall@10 0.945
# at 100, above 0.95 at OWN_INDEX_EF_SEARCH).
_OWN_INDEX_SETTINGS = _approximate_settings(OWN_INDEX_EF_SEARCH)


class Source(StrEnum):
    FACTS = "facts"
    MESSAGES = "messages"
    ARCHIVE = "archive"


ALL_SOURCES = frozenset(Source)


@dataclass(frozen=True, slots=True)
class RecallHit:
    source: Source
    id: int
    content: str
    similarity: float
    created_at: datetime
    importance: int | None


_SELECTS = {
    Source.FACTS: (
        "SELECT 'facts' AS source, id, content, {distance} AS distance, created_at, importance"
        " FROM facts WHERE user_id = $1 AND invalid_at IS NULL"
        " AND ($4::boolean OR NOT is_private)"
    ),
    Source.MESSAGES: (
        "SELECT 'messages' AS source, id, content, {distance} AS distance, created_at,"
        " NULL::smallint AS importance FROM messages WHERE user_id = $1"
        " AND id <> ALL($5::bigint[])"
    ),
    Source.ARCHIVE: (
        "SELECT 'archive' AS source, id, content, {distance} AS distance, created_at,"
        " NULL::smallint AS importance FROM messages_archive WHERE user_id = $1"
    ),
}


def _query(sources: Collection[Source], dimensions: int, approximate: bool) -> str:
    if approximate:
        # The expression and predicate match the partial HNSW indexes of migration 0001.
        distance = f"embedding::halfvec({dimensions}) <=> $2::halfvec({dimensions})"
    else:
        # A plain expression the HNSW index does not match: exact ordering.
        distance = "embedding <=> $2"
    # Approximate: over-fetch, the outer ORDER BY re-sorts by exact distance.
    limit = f"greatest($3 * {CANDIDATES_PER_K:d}, {MIN_CANDIDATES:d})" if approximate else "$3"
    parts = []
    for source in sorted(sources):
        select = _SELECTS[source].format(distance=distance)
        parts.append(
            f"({select} AND vector_dims(embedding) = {dimensions:d}"
            f" ORDER BY distance LIMIT {limit})"
        )
    # Every parameter is typed here, whichever sources the query reads (an unused CTE
    # costs nothing, and PostgreSQL refuses parameters whose type it cannot infer).
    params = "WITH p AS (SELECT $4::boolean, $5::bigint[]) "
    union = " UNION ALL ".join(parts)
    return f"{params}SELECT * FROM ({union}) AS hits ORDER BY distance, id LIMIT $3"


class RecallRepository:
    def __init__(self, db: Database, *, dimensions: int, exact_max_rows: int = 5000) -> None:
        self._db = db
        self._dimensions = dimensions
        self._exact_max_rows = exact_max_rows
        self._queries = {
            (frozenset(s), a): _query(s, dimensions, a)
            for s in _subsets(ALL_SOURCES)
            for a in (False, True)
        }

    async def nearest(
        self,
        user_id: int,
        embedding: np.ndarray[Any, Any],
        k: int,
        *,
        sources: Collection[Source] = ALL_SOURCES,
        include_private: bool = True,
        exclude_message_ids: Collection[int] = (),
        approximate: bool | None = None,
        conn: Connection | None = None,
    ) -> list[RecallHit]:
        """The `k` rows of this user nearest to `embedding`, most similar first.

        `approximate=None` picks the plan by the user's message count.
        """
        if len(embedding) != self._dimensions:
            raise ValueError(f"query has {len(embedding)} dimensions, expected {self._dimensions}")
        if not sources:
            return []
        vector = HalfVector(np.asarray(embedding, dtype=np.float32))
        async with self._db.connection(conn) as c:
            own_index = False
            if approximate is None:
                row = await c.fetchrow(
                    "SELECT message_count, to_regclass($2) IS NOT NULL AS own_index"
                    " FROM conversations WHERE user_id = $1",
                    user_id,
                    index_name("messages", self._dimensions, user_id),
                )
                approximate = row is not None and row["message_count"] > self._exact_max_rows
                own_index = row is not None and row["own_index"]
            query = self._queries[(frozenset(sources), approximate)]
            args = (user_id, vector, k, include_private, list(exclude_message_ids))
            if approximate:
                async with c.transaction():
                    await c.execute(_OWN_INDEX_SETTINGS if own_index else _APPROXIMATE_SETTINGS)
                    rows = await c.fetch(query, *args)
            else:
                rows = await c.fetch(query, *args)
        return [
            RecallHit(
                source=Source(r["source"]),
                id=r["id"],
                content=r["content"],
                similarity=1.0 - float(r["distance"]),
                created_at=r["created_at"],
                importance=r["importance"],
            )
            for r in rows
        ]

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
        vector = HalfVector(np.asarray(embedding, dtype=np.float32))
        query = self._queries[(ALL_SOURCES, approximate)]
        async with self._db.connection(conn) as c, c.transaction():
            if approximate:
                await c.execute(_APPROXIMATE_SETTINGS)
            rows = await c.fetch("EXPLAIN " + query, user_id, vector, k, True, [])
        return "\n".join(r[0] for r in rows)


def _subsets(sources: frozenset[Source]) -> list[frozenset[Source]]:
    items = sorted(sources)
    return [
        frozenset(s for i, s in enumerate(items) if mask & (1 << i))
        for mask in range(1, 1 << len(items))
    ]
