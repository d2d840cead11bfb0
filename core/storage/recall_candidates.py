"""Both candidate lists of hybrid recall, in one round trip.

Hybrid recall (core.hybrid_recall) fuses a user's rows nearest to the message's
embedding (`RecallRepository`) with their best keyword matches
(`TextSearchRepository`). Each list is its own repository's query; here both run as one
statement, a UNION ALL of the two with each row tagged by its list and position, so a
turn pays one round trip for them instead of two (docs/pipeline.md). Both queries are
scoped by the same user id parameter.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np

from core.storage.database import Connection, Database
from core.storage.recall import APPROXIMATE_SETTINGS, RecallHit, RecallRepository, recall_hit
from core.storage.text_search import TextHit, TextSearchRepository, text_hit


class RecallCandidates:
    def __init__(self, db: Database, vectors: RecallRepository, text: TextSearchRepository) -> None:
        self._db = db
        self._vectors = vectors
        self._text = text
        self._queries = {
            approximate: _both(vectors, text, approximate) for approximate in (False, True)
        }

    async def fetch(
        self,
        user_id: int,
        query: str,
        embedding: np.ndarray[Any, Any] | None,
        limit: int,
        *,
        include_private: bool = True,
        exclude_message_ids: Collection[int] = (),
        conn: Connection | None = None,
    ) -> tuple[list[RecallHit], list[TextHit]]:
        """What `RecallRepository.nearest(user_id, embedding, limit, ...)` and
        `TextSearchRepository.search(user_id, query, limit, ...)` return, at once.
        Without an embedding (the embedder is down), only the keyword list."""
        if embedding is None:
            text_hits = await self._text.search(
                user_id,
                query,
                limit,
                exclude_message_ids=exclude_message_ids,
                include_private=include_private,
                conn=conn,
            )
            return [], text_hits
        args = (
            *self._vectors.arguments(
                user_id, embedding, limit, include_private, exclude_message_ids
            ),
            query.replace("\x00", ""),  # PostgreSQL text cannot hold NUL
        )
        async with self._db.connection(conn) as c:
            approximate = await self._vectors.has_own_index(user_id, conn=c)
            if approximate:
                async with c.transaction():
                    await c.execute(APPROXIMATE_SETTINGS)
                    rows = await c.fetch(self._queries[True], *args)
            else:
                rows = await c.fetch(self._queries[False], *args)
        vector_hits = [recall_hit(r) for r in rows if r["list"] == _VECTOR]
        text_hits = [text_hit(r) for r in rows if r["list"] == _TEXT]
        return vector_hits, text_hits


_VECTOR = "vector"
_TEXT = "text"


def _both(vectors: RecallRepository, text: TextSearchRepository, approximate: bool) -> str:
    # `RecallRepository.query` takes $1 user, $2 embedding, $3 k, $4 include private facts,
    # $5 excluded message ids; the keyword query gets the same and its text as $6.
    nearest = vectors.query(approximate=approximate)
    matching = text.query(user="$1", text="$6", excluded="$5", include_private="$4", limit="$3")
    # row_number() counts each list in the order its query returned it (best first).
    return (
        f"SELECT '{_VECTOR}' AS list, row_number() OVER () AS position, source, id, content,"
        " created_at, importance, role, distance, NULL::float8 AS rank, NULL::float8 AS coverage"
        f" FROM ({nearest}) AS v"
        f" UNION ALL SELECT '{_TEXT}', row_number() OVER (), source, id, content, created_at,"
        " importance, role, NULL, rank, coverage"
        f" FROM ({matching}) AS t"
        " ORDER BY list, position"
    )
