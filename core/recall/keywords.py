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

Every value travels as a `$n` parameter; lexemes are quoted for the tsquery syntax in
SQL. Every query is scoped by `user_id`, so another user's rows are never read.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import asyncpg

from core.models import SharedChat
from core.recall.vectors import Source, recall_plan
from core.storage.database import Connection, Database

#: Okapi BM25 parameters: term-frequency saturation and length normalisation (the usual
#: defaults; chat messages are short, so neither matters much; see docs/recall.md).
BM25_K1 = 1.2
BM25_B = 0.75
#: At most this many distinct query terms: a pasted page must not become a huge OR query.
MAX_QUERY_TERMS = 64


class Ranking(StrEnum):
    BM25 = "bm25"
    TS_RANK = "ts_rank"
    TS_RANK_CD = "ts_rank_cd"


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


@dataclass(frozen=True, slots=True)
class _Placeholders:
    """Where each value of a search is in its statement (`$n`)."""

    user: str
    text: str
    excluded: str
    shared_chat: str
    limit: str


_OWN_PLACEHOLDERS = _Placeholders("$1", "$2", "$3", "$4", "$5")


# A lexeme may hold quotes or backslashes (`o'brien`): both are escaped for tsquery input.
_QUOTED = "'''' || replace(replace(lexeme, '\\', '\\\\'), '''', '''''') || ''''"


# Exact plan (`indexed=False`: every user without indexes of their own): matching is
# `ts_match_vq(search, q)`, the function behind `search @@ q`, on purpose: a function call
# cannot use a GIN index, so the plan reads the user's rows through the B-tree on user_id
# and tests each. With `@@`, the cached generic plan intersected the user's rows with a
# GIN scan of each query term over every user's rows; common words made that 3.5 ms a
# turn instead of 0.45 (docs/pipeline.md). There are no shared GIN indexes (migration
# 0008).
#
# Indexed plan (`indexed=True`: a user with indexes of their own, run inside
# `recall_plan`, whose custom plans show the planner the literal user id): matching is
# `search @@ q` through the user's own partial GIN indexes (core/recall/user_indexes.py),
# with the query's selective terms only. A term the `user_indexes` job found in more
# than `COMMON_TERM_SHARE` of the user's rows (`user_search_stats`, migration 0017; the
# person's own name is in half of their messages) finds no candidates, BM25 weighing it
# little anyway while matching it means scoring thousands of rows; it still scores the
# candidates the other terms find, with its share as document frequency. A question of
# common terms only gets no keyword list (the vector list answers it).
def _matching(p: _Placeholders, *, indexed: bool) -> str:
    if indexed:
        query = f"""common AS (
    SELECT c.lexeme, c.share::float8 AS share
    FROM user_search_stats s, unnest(s.common_terms, s.common_shares) AS c (lexeme, share)
    WHERE s.user_id = {p.user}
), q AS (
    SELECT string_agg({_QUOTED}, ' | ') FILTER (WHERE c.share IS NULL)::tsquery AS q,
           array_agg(lexeme) AS lexemes,
           coalesce(array_agg(lexeme) FILTER (WHERE c.share IS NOT NULL), '{{}}') AS common,
           coalesce(array_agg(c.share) FILTER (WHERE c.share IS NOT NULL), '{{}}')
               AS common_shares
    FROM terms LEFT JOIN common c USING (lexeme)
)"""
        match = "{t}.search @@ (SELECT q.q FROM q)"
    else:
        query = f"""q AS (
    SELECT string_agg({_QUOTED}, ' | ')::tsquery AS q, array_agg(lexeme) AS lexemes,
           '{{}}'::text[] AS common, '{{}}'::float8[] AS common_shares
    FROM terms
)"""
        match = "ts_match_vq({t}.search, q.q)"
    m, a, f = (match.format(t=t) for t in "maf")
    return f"""
terms AS (
    SELECT DISTINCT lexeme FROM unnest(to_tsvector(
        coalesce((SELECT search_config FROM messages WHERE user_id = {p.user}
                  ORDER BY id DESC LIMIT 1), 'english'),
        {p.text}::text))
    LIMIT {MAX_QUERY_TERMS:d}
), {query}, docs AS (
    SELECT 'messages' AS source, m.id, m.content, m.created_at, m.role,
           NULL::smallint AS importance, m.search
    FROM messages m, q
    WHERE m.user_id = {p.user} AND {m}
      AND m.id <> ALL({p.excluded}::bigint[]) AND m.remembered
      AND ({p.shared_chat}::text[] IS NULL
           OR (m.shared_chat AND ARRAY[m.platform, m.chat_id] = {p.shared_chat}::text[]))
    UNION ALL
    SELECT 'archive', a.id, a.content, a.created_at, a.role, NULL::smallint, a.search
    FROM messages_archive a, q
    WHERE a.user_id = {p.user} AND {a}
      AND a.id <> ALL({p.excluded}::bigint[]) AND a.remembered
      AND ({p.shared_chat}::text[] IS NULL
           OR (a.shared_chat AND ARRAY[a.platform, a.chat_id] = {p.shared_chat}::text[]))
    UNION ALL
    SELECT 'facts', f.id, f.content, f.created_at, NULL, f.importance, f.search
    FROM facts f, q
    WHERE f.user_id = {p.user} AND f.invalid_at IS NULL
      AND ({p.shared_chat}::text[] IS NULL OR NOT f.is_private)
      AND {f}
)"""


def _ts_rank_query(function: str, p: _Placeholders, indexed: bool) -> str:
    return f"""
WITH {_matching(p, indexed=indexed)}
SELECT source, id, content, created_at, role, importance, {function}(search, q.q) AS rank,
       1.0::float8 AS coverage
FROM docs, q
ORDER BY rank DESC, created_at DESC, id DESC
LIMIT {p.limit}
"""


def _row_count(p: _Placeholders, indexed: bool) -> str:
    """N of BM25: the user's rows. Indexed: as the `user_indexes` job last counted them
    (counting 50k rows would cost more than the search)."""
    if indexed:
        return f"""coalesce(
                   (SELECT rows FROM user_search_stats WHERE user_id = {p.user}),
                   (SELECT message_count FROM conversations WHERE user_id = {p.user}))"""
    return f"""(SELECT count(*) FROM messages WHERE user_id = {p.user})
               + (SELECT count(*) FROM messages_archive WHERE user_id = {p.user})
               + (SELECT count(*) FROM facts WHERE user_id = {p.user} AND invalid_at IS NULL)"""


def _bm25_query(p: _Placeholders, indexed: bool) -> str:
    return f"""
WITH {_matching(p, indexed=indexed)},
tf AS (
    SELECT d.source, d.id, t.lexeme, greatest(cardinality(t.positions), 1) AS tf,
           length(d.search) AS dl
    FROM docs d, q, unnest(d.search) AS t
    WHERE t.lexeme = ANY(q.lexemes)
), df AS (
    SELECT lexeme, count(*) AS df FROM tf GROUP BY lexeme
), stats AS (
    SELECT greatest({_row_count(p, indexed)}, (SELECT count(*) FROM docs))::float8 AS n,
           greatest((SELECT avg(length(search)) FROM docs), 1)::float8 AS avgdl
), estimated AS (
    SELECT c.lexeme, c.share FROM q, unnest(q.common, q.common_shares) AS c (lexeme, share)
), idf AS (
    SELECT t.lexeme, ln(1 + (s.n - d.df + 0.5) / (d.df + 0.5)) AS idf
    FROM terms t LEFT JOIN df USING (lexeme) LEFT JOIN estimated c USING (lexeme), stats s,
         LATERAL (SELECT coalesce(c.share * s.n, df.df, 0)::float8 AS df) AS d
), scores AS (
    SELECT tf.source, tf.id,
           sum(idf.idf * tf.tf * ({BM25_K1} + 1)
               / (tf.tf + {BM25_K1} * (1 - {BM25_B} + {BM25_B} * tf.dl / s.avgdl))) AS rank,
           sum(idf.idf) / (SELECT sum(idf) FROM idf) AS coverage
    FROM tf JOIN idf USING (lexeme), stats s
    GROUP BY tf.source, tf.id
)
SELECT d.source, d.id, d.content, d.created_at, d.role, d.importance, s.rank, s.coverage
FROM docs d JOIN scores s USING (source, id)
ORDER BY s.rank DESC, d.created_at DESC, d.id DESC
LIMIT {p.limit}
"""


def _query(ranking: Ranking, p: _Placeholders, *, indexed: bool) -> str:
    if ranking is Ranking.BM25:
        return _bm25_query(p, indexed)
    return _ts_rank_query(ranking.value, p, indexed)


def text_hit(row: asyncpg.Record) -> TextHit:
    """A row of `TextSearchRepository.query`'s result."""
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
        self._queries = {i: _query(ranking, _OWN_PLACEHOLDERS, indexed=i) for i in (False, True)}

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
        has_own_index`): the indexed plan (module comments above `_matching`).
        """
        if limit <= 0:
            return []
        text = storable_text(query)
        async with self._db.connection(conn) as c, recall_plan(c, approximate=indexed):
            rows = await c.fetch(
                self._queries[indexed],
                user_id,
                text,
                list(exclude_message_ids),
                None if shared_chat is None else shared_chat.as_argument(),
                limit,
            )
        return [text_hit(r) for r in rows]

    def query(
        self,
        *,
        user: str,
        text: str,
        excluded: str,
        shared_chat: str,
        limit: str,
        indexed: bool = False,
    ) -> str:
        """The SQL of `search` with its values at the given `$n` placeholders, to be part
        of a larger statement (`core.recall.candidates`); an `indexed` one runs inside
        `recall_plan`. The text must hold no NUL character (`search` replaces them)."""
        placeholders = _Placeholders(user, text, excluded, shared_chat, limit)
        return _query(self._ranking, placeholders, indexed=indexed)
