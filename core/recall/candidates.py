"""Both candidate lists of hybrid recall, at once.

Hybrid recall (core.recall.hybrid) fuses a user's rows nearest to the message's
embedding (`RecallRepository`) with their best keyword matches
(`TextSearchRepository`). Here both run as one statement,
`core.recall.statements.candidates_statement`: a UNION ALL of the two repositories'
statements with each row tagged by its list and position, so a turn pays one round trip
for them instead of two (docs/pipeline.md), through `HybridRecall.search`. Both lists
are scoped by the same user id parameter. The largest users' lists (indexes of their
own) run instead as the two repositories' statements side by side (`fetch`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable
from operator import itemgetter
from typing import Any

import asyncpg
import numpy as np

from core.models import SharedChat
from core.recall.keywords import TextHit, TextSearchRepository, storable_text
from core.recall.statements import VECTOR_LIST, Source, candidates_statement
from core.recall.vectors import RecallHit, RecallRepository, recall_plan
from core.storage.database import Connection, Database


class RecallCandidates:
    def __init__(self, db: Database, vectors: RecallRepository, text: TextSearchRepository) -> None:
        self._db = db
        self._vectors = vectors
        self._text = text
        self._queries = {
            a: candidates_statement(text.ranking, approximate=a, dimensions=vectors.dimensions)
            for a in (False, True)
        }

    async def fetch(
        self,
        user_id: int,
        query: str,
        embedding: np.ndarray[Any, Any] | None,
        limit: int,
        *,
        shared_chat: SharedChat | None = None,
        exclude_message_ids: Collection[int] = (),
        conn: Connection | None = None,
    ) -> tuple[list[RecallHit], list[TextHit]]:
        """What `RecallRepository.nearest(user_id, embedding, limit, ...)` and
        `TextSearchRepository.search(user_id, query, limit, ...)` return, at once.
        Without an embedding (the embedder is down), only the keyword list.

        For a user with indexes of their own, on the pool, the two lists run side by
        side on two connections: each takes a few milliseconds there (scans of four
        HNSW indexes; of GIN indexes and BM25), and one after the other in one
        statement their sum was over the 10 ms a turn may spend (docs/recall.md,
        "Heavy users"). Everyone else's lists take about a millisecond together: one
        round trip is cheaper than two connections.
        """
        # A user with indexes of their own: both lists use them (`recall_plan`).
        approximate = await self._vectors.has_own_index(user_id, conn=conn)
        if approximate and embedding is not None and conn is None and self._db.pool is not None:
            return await self._side_by_side(
                user_id, query, embedding, limit, shared_chat, exclude_message_ids
            )
        async with self._db.connection(conn) as c:
            if embedding is None:
                text_hits = await self._text.search(
                    user_id,
                    query,
                    limit,
                    exclude_message_ids=exclude_message_ids,
                    shared_chat=shared_chat,
                    indexed=approximate,
                    conn=c,
                )
                return [], text_hits
            args = (
                *self._vectors.arguments(
                    user_id, embedding, limit, shared_chat, exclude_message_ids
                ),
                storable_text(query),
            )
            async with recall_plan(c, approximate=approximate):
                rows = await c.fetch(self._queries[approximate], *args)
        return split(rows)

    async def _side_by_side(
        self,
        user_id: int,
        query: str,
        embedding: np.ndarray[Any, Any],
        limit: int,
        shared_chat: SharedChat | None,
        exclude_message_ids: Collection[int],
    ) -> tuple[list[RecallHit], list[TextHit]]:
        """Both lists of a user with indexes of their own, each on a pooled connection.

        Two statements read two snapshots: a message archived between them may come as
        a live message in one list and an archived one in the other (the fusion ranks
        them as two items; harmless, and rare: it needs the archive job that instant).
        """
        vector = asyncio.ensure_future(
            self._vectors.nearest(
                user_id,
                embedding,
                limit,
                shared_chat=shared_chat,
                exclude_message_ids=exclude_message_ids,
                approximate=True,
            )
        )
        text = asyncio.ensure_future(
            self._text.search(
                user_id,
                query,
                limit,
                exclude_message_ids=exclude_message_ids,
                shared_chat=shared_chat,
                indexed=True,
            )
        )
        try:
            vector_hits, text_hits = await asyncio.gather(vector, text)
        except BaseException:
            # One failed (or the turn was cancelled): the other gives its connection back
            # now rather than when its statement ends.
            vector.cancel()
            text.cancel()
            raise
        return vector_hits, text_hits


def split(
    rows: Iterable[asyncpg.Record | tuple[Any, ...]],
) -> tuple[list[RecallHit], list[TextHit]]:
    """The two lists of `candidates_statement`'s rows (records, or tuples in its column
    order), each best first. Built by position: a turn decodes up to 80 of them."""
    vector_hits: list[RecallHit] = []
    text_hits: list[TextHit] = []
    for r in sorted(rows, key=itemgetter(0, 1)):
        if r[0] == VECTOR_LIST:
            # As `recall_hit`: similarity = 1 - cosine distance.
            vector_hits.append(
                RecallHit(_SOURCES[r[2]], r[3], r[4], 1.0 - float(r[8]), r[5], r[6], r[7])
            )
        else:
            text_hits.append(
                TextHit(_SOURCES[r[2]], r[3], r[4], r[5], r[7], r[6], float(r[9]), float(r[10]))
            )
    return vector_hits, text_hits


_SOURCES = {source.value: source for source in Source}
