"""Keyword search for recall over one user's messages, archived messages and valid facts.

Why not `MessageRepository.search`: that one serves a person searching their history,
so it uses `websearch_to_tsquery` (every word must match). A question asked to the bot
("what was the name of my sister's dog?") almost never has all its words in one earlier
message, so recall matches ANY of the query's terms: the query is run through the text
search configuration of the person's language (that of their newest message, as the
turn stored it: `search_config`, migration 0016; stemming, stop words dropped), and its
lexemes are OR-ed into a tsquery. A query of stop words only matches nothing. Rows
stored while the person wrote in another language keep that language's lexemes and
match only where they agree.

Ranking (higher = better), chosen by measurement (benchmarks/recall_quality.py,
docs/recall.md):
- `BM25` (default): Okapi BM25 computed in SQL. Document frequencies come for free from
  the candidate set itself (every row holding a query term matches the OR query), N is
  the user's row count, the average length is the candidates' (length = distinct
  lexemes). Rare terms (names, numbers) dominate, which is what ts_rank lacks: it has no
  IDF, so "live" counts as much as "Zorblax".
- `TS_RANK`, `TS_RANK_CD`: PostgreSQL's own functions, kept for comparison.

The statements are `core.recall.statements.keyword_statement` (one per ranking and
plan); this repository binds their values. Every value travels as a `$n` parameter;
lexemes are quoted for the tsquery syntax in SQL. Every statement is scoped by
`user_id`, so another user's rows are never read.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from core.models import SharedChat
from core.recall.statements import Ranking, Source, keyword_statement
from core.recall.vectors import recall_plan
from core.storage.database import Connection, Database


@dataclass(frozen=True, slots=True)
class TextHit:
    """One row matching at least one query term; `rank` is higher for better matches.

    `coverage` (BM25 only, else 1.0) is the share of the query's information the row
    matches: the IDF of the query terms it holds over the IDF of all query terms, in
    (0, 1]. "What was Zorblax-7 about?" against a row with "Zorblax-7" is near 1; "how is
    my new dog?" against "a new recipe" is small, because "new" is common and "dog" is
    missing. Recall scales the keyword vote by it.
    """

    source: Source
    id: int
    content: str
    created_at: datetime
    role: str | None
    importance: int | None
    rank: float
    coverage: float = 1.0


def text_hit(row: asyncpg.Record) -> TextHit:
    """A row of `keyword_statement`'s result."""
    return TextHit(
        source=Source(row["source"]),
        id=row["id"],
        content=row["content"],
        created_at=row["created_at"],
        role=row["role"],
        importance=row["importance"],
        rank=float(row["rank"]),
        coverage=float(row["coverage"]),
    )


def storable_text(text: str) -> str:
    """PostgreSQL text cannot hold NUL characters."""
    return text.replace("\x00", "")


class TextSearchRepository:
    def __init__(self, db: Database, *, ranking: Ranking = Ranking.BM25) -> None:
        self._db = db
        self._ranking = ranking

    @property
    def ranking(self) -> Ranking:
        return self._ranking

    async def search(
        self,
        user_id: int,
        query: str,
        limit: int,
        *,
        exclude_message_ids: Collection[int] = (),
        shared_chat: SharedChat | None = None,
        indexed: bool = False,
        conn: Connection | None = None,
    ) -> list[TextHit]:
        """The `limit` rows of this user sharing the most informative terms with `query`.

        Ties (equal rank) go to the newer row. `exclude_message_ids` applies to live and
        archived messages (archived rows keep their ids), never to facts. Scoped
        to `shared_chat` as `RecallRepository.nearest` is; a message not `remembered` is
        never found. `indexed`: the user has indexes of their own (`RecallRepository.
        has_own_index`): the indexed plan (core/recall/statements.py, above `_matching`).
        """
        if limit <= 0:
            return []
        text = storable_text(query)
        async with self._db.connection(conn) as c, recall_plan(c, approximate=indexed):
            rows = await c.fetch(
                keyword_statement(self._ranking, indexed=indexed),
                user_id,
                text,
                list(exclude_message_ids),
                None if shared_chat is None else shared_chat.as_argument(),
                limit,
            )
        return [text_hit(r) for r in rows]
