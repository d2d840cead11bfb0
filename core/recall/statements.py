"""Every SQL statement of recall, each written whole in this module.

Recall has three statements, in a few variants each:
- `nearest_statement`: a user's rows nearest to an embedding (`RecallRepository`);
- `keyword_statement`: a user's best keyword matches (`TextSearchRepository`);
- `candidates_statement`: both lists in one round trip (`RecallCandidates`), a UNION ALL
  of the first two with each row tagged by its list and position.
The third holds the other two, so all three are composed here, from this module's
private helpers, and leave it as complete statements with fixed `$n` positions (each
function's docstring lists them). The repositories only pick a variant and bind values:
no SQL fragment or parameter position crosses a module boundary. Variants are chosen by
typed values only (sources, plan, ranking, and the embedding dimension, which SQL needs
as a literal type modifier). Every value of a search is a `$n` parameter, and every
statement is scoped by the user id parameter, so another user's rows are never read.

An approximate (or indexed) variant must run inside `core.recall.vectors.recall_plan`,
whose custom plans show the planner the literal user id.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum


class Source(StrEnum):
    """Where a recalled row comes from: the `source` column of every statement here."""

    FACTS = "facts"
    MESSAGES = "messages"
    ARCHIVE = "archive"


class Ranking(StrEnum):
    """How the keyword statement ranks its rows (core/recall/keywords.py)."""

    BM25 = "bm25"
    TS_RANK = "ts_rank"
    TS_RANK_CD = "ts_rank_cd"


#: Okapi BM25 parameters: term-frequency saturation and length normalisation (the usual
#: defaults; chat messages are short, so neither matters much; see docs/recall.md).
BM25_K1 = 1.2
BM25_B = 0.75
#: At most this many distinct query terms: a pasted page must not become a huge OR query.
MAX_QUERY_TERMS = 64
# Each source's HNSW scan returns this many of the user's rows (at least), in the index's
# approximate order; the outer query re-sorts them by exact distance and keeps k.
CANDIDATES_PER_K = 4
MIN_CANDIDATES = 40

#: The `list` column of `candidates_statement`: which list a row belongs to.
VECTOR_LIST = "vector"
TEXT_LIST = "text"


@dataclass(frozen=True, slots=True)
class _Nearest:
    """Where each value of a vector search is in its statement."""

    user: str = "$1"
    embedding: str = "$2"
    k: str = "$3"
    shared_chat: str = "$4"
    excluded: str = "$5"


@dataclass(frozen=True, slots=True)
class _Keywords:
    """Where each value of a keyword search is in its statement."""

    user: str = "$1"
    text: str = "$2"
    excluded: str = "$3"
    shared_chat: str = "$4"
    limit: str = "$5"


# Both lists in one statement: the vector search's parameters, then the query text.
_CANDIDATES_NEAREST = _Nearest()
_CANDIDATES_KEYWORDS = _Keywords(user="$1", text="$6", excluded="$5", shared_chat="$4", limit="$3")


def nearest_statement(sources: Collection[Source], *, approximate: bool, dimensions: int) -> str:
    """The user's `$3` rows of `sources` nearest to the embedding, nearest first.

    Parameters: `$1` user id, `$2` embedding (halfvec), `$3` k, `$4` shared chat
    (`SharedChat.as_argument()`, or NULL for the private chat), `$5` excluded message
    ids. Columns: source, id, content, distance, created_at, importance, role.
    """
    return _nearest(sources, dimensions, approximate, _Nearest())


def keyword_statement(ranking: Ranking, *, indexed: bool) -> str:
    """The user's `$5` rows sharing the most informative terms with the text, best first.

    Parameters: `$1` user id, `$2` query text (no NUL character), `$3` excluded message
    ids, `$4` shared chat (or NULL), `$5` limit. Columns: source, id, content,
    created_at, role, importance, rank, coverage.
    """
    return _KEYWORD_STATEMENTS[(ranking, indexed)]


def candidates_statement(ranking: Ranking, *, approximate: bool, dimensions: int) -> str:
    """Both lists of hybrid recall (every source), each row tagged by its list
    (`VECTOR_LIST`, `TEXT_LIST`) and its position in it, best first; `approximate`
    picks the approximate vector plan and the indexed keyword plan.

    Parameters: `$1`-`$5` of `nearest_statement` (its `$3` k also limits the keyword
    list), then `$6` the query text. Columns: list, position, source, id, content,
    created_at, importance, role, distance, rank, coverage.
    """
    matching = _keywords(ranking, _CANDIDATES_KEYWORDS, indexed=approximate)
    # Each list's position, best first: the order its own statement returns it in.
    keyword = (
        f"SELECT '{TEXT_LIST}' AS list,"
        " row_number() OVER (ORDER BY rank DESC, created_at DESC, id DESC) AS position,"
        " source, id, content,"
        " created_at, importance, role, NULL::float8 AS distance, rank, coverage"
        f" FROM ({matching}) AS t"
    )
    nearest = _nearest(frozenset(Source), dimensions, approximate, _CANDIDATES_NEAREST)
    return (
        f"SELECT '{VECTOR_LIST}' AS list,"
        " row_number() OVER (ORDER BY distance, id) AS position, source, id, content,"
        " created_at, importance, role, distance, NULL::float8 AS rank,"
        " NULL::float8 AS coverage"
        f" FROM ({nearest}) AS v"
        f" UNION ALL {keyword}"
        " ORDER BY list, position"
    )


# Vector search, two plans (core/recall/vectors.py):
# - exact: the user's rows through the B-tree on `user_id`, ordered by exact distance;
# - approximate: through the user's partial HNSW indexes (their expression and predicate
#   are matched here), over-fetching; the outer ORDER BY re-sorts by exact distance.
_SELECTS = {
    Source.FACTS: (
        "SELECT 'facts' AS source, id, content, {distance} AS distance, created_at, importance,"
        " NULL AS role FROM facts WHERE user_id = {p.user} AND invalid_at IS NULL"
        " AND ({p.shared_chat}::text[] IS NULL OR NOT is_private)"
    ),
    Source.MESSAGES: (
        "SELECT 'messages' AS source, id, content, {distance} AS distance, created_at,"
        " NULL::smallint AS importance, role FROM messages WHERE user_id = {p.user}"
        " AND id <> ALL({p.excluded}::bigint[]) AND remembered"
        " AND ({p.shared_chat}::text[] IS NULL OR (shared_chat"
        " AND ARRAY[platform, chat_id] = {p.shared_chat}::text[]))"
    ),
    Source.ARCHIVE: (
        "SELECT 'archive' AS source, id, content, {distance} AS distance, created_at,"
        " NULL::smallint AS importance, role FROM messages_archive WHERE user_id = {p.user}"
        " AND remembered AND ({p.shared_chat}::text[] IS NULL OR (shared_chat"
        " AND ARRAY[platform, chat_id] = {p.shared_chat}::text[]))"
    ),
}


# Long messages by their passages (`message_passages`, migration 0020): one scan of the
# user's passages for every source asked, each joined with the filters of its `_SELECTS`.
_PASSAGE_JOINS = {
    Source.MESSAGES: (
        " LEFT JOIN messages m ON m.id = e.message_id AND m.user_id = e.user_id"
        " AND m.id <> ALL({p.excluded}::bigint[]) AND m.remembered"
        " AND ({p.shared_chat}::text[] IS NULL OR (m.shared_chat"
        " AND ARRAY[m.platform, m.chat_id] = {p.shared_chat}::text[]))"
    ),
    Source.ARCHIVE: (
        " LEFT JOIN messages_archive a ON a.id = e.message_id AND a.user_id = e.user_id"
        " AND a.remembered AND ({p.shared_chat}::text[] IS NULL OR (a.shared_chat"
        " AND ARRAY[a.platform, a.chat_id] = {p.shared_chat}::text[]))"
    ),
}
#: The alias of each source's table in `_PASSAGE_JOINS`.
_ALIASES = {Source.MESSAGES: "m", Source.ARCHIVE: "a"}


def _passages(
    sources: Collection[Source],
    distance: str,
    limit: str,
    dimensions: int,
    approximate: bool,
    p: _Nearest,
) -> str:
    """The user's passages nearest to the embedding whose message is in one of
    `sources` (messages, archive or both), as rows of that message: exact, each message
    once, by its nearest passage; approximate, the nearest passages in the index's order
    (a message may come more than once; the over-fetch leaves room for that)."""
    joined = sorted(set(sources) & _PASSAGE_JOINS.keys())

    def pick(column: str) -> str:
        if len(joined) == 1:
            return f"{_ALIASES[joined[0]]}.{column}"
        return "coalesce(" + ", ".join(f"{_ALIASES[s]}.{column}" for s in joined) + ")"

    source = (
        f"'{joined[0].value}'"
        if len(joined) == 1
        else f"CASE WHEN m.id IS NOT NULL THEN '{Source.MESSAGES.value}'"
        f" ELSE '{Source.ARCHIVE.value}' END"
    )
    found = " OR ".join(f"{_ALIASES[s]}.id IS NOT NULL" for s in joined)
    joins = "".join(_PASSAGE_JOINS[s].format(p=p) for s in joined)
    once = "" if approximate else "DISTINCT ON (e.message_id) "
    select = (
        f"SELECT {once}{source} AS source, e.message_id AS id, {pick('content')} AS content,"
        f" {distance} AS distance, {pick('created_at')} AS created_at,"
        f" NULL::smallint AS importance, {pick('role')} AS role"
        f" FROM message_passages e{joins}"
        f" WHERE e.user_id = {p.user} AND ({found})"
        f" AND vector_dims(e.embedding) = {dimensions:d}"
    )
    if approximate:
        return f"({select} ORDER BY distance LIMIT {limit})"
    return (
        f"(SELECT * FROM ({select} ORDER BY e.message_id, distance) AS nearest_passage"
        f" ORDER BY distance LIMIT {limit})"
    )


def _distance(column: str, dimensions: int, approximate: bool, p: _Nearest) -> str:
    if approximate:
        # The expression and predicate match the per-user partial HNSW indexes.
        return f"{column}::halfvec({dimensions}) <=> {p.embedding}::halfvec({dimensions})"
    # A plain expression the HNSW index does not match: exact ordering.
    return f"{column} <=> {p.embedding}"


def _nearest(sources: Collection[Source], dimensions: int, approximate: bool, p: _Nearest) -> str:
    distance = _distance("embedding", dimensions, approximate, p)
    # Approximate: over-fetch, the outer ORDER BY re-sorts by exact distance.
    limit = f"greatest({p.k} * {CANDIDATES_PER_K:d}, {MIN_CANDIDATES:d})" if approximate else p.k
    parts = []
    for source in sorted(sources):
        select = _SELECTS[source].format(distance=distance, p=p)
        parts.append(
            f"({select} AND vector_dims(embedding) = {dimensions:d}"
            f" ORDER BY distance LIMIT {limit})"
        )
    if _PASSAGE_JOINS.keys() & set(sources):
        # Approximate: through the user's HNSW index on their passages, whose scan goes
        # on while the messages' filters drop what it finds.
        passage = _distance("e.embedding", dimensions, approximate, p)
        parts.append(_passages(sources, passage, limit, dimensions, approximate, p))
    # Every parameter is typed here, whichever sources the query reads (an unused CTE
    # costs nothing, and PostgreSQL refuses parameters whose type it cannot infer).
    params = f"WITH p AS (SELECT {p.shared_chat}::text[], {p.excluded}::bigint[]) "
    hits = " UNION ALL ".join(parts)
    if _PASSAGE_JOINS.keys() & set(sources):
        # A long message may come several times (its embedding, its passages): nearest.
        hits = (
            f"SELECT DISTINCT ON (source, id) * FROM ({hits}) AS found"
            " ORDER BY source, id, distance"
        )
    return f"{params}SELECT * FROM ({hits}) AS hits ORDER BY distance, id LIMIT {p.k}"


# A lexeme may hold quotes or backslashes (`o'brien`): both are escaped for tsquery input.
_QUOTED = "'''' || replace(replace(lexeme, '\\', '\\\\'), '''', '''''') || ''''"


# Keyword search (core/recall/keywords.py): the query's lexemes, in the text search
# configuration of the person's newest message, OR-ed into a tsquery. That message is
# the first from `user_id >= $1` in the order `user_id, id DESC`, which only the B-tree on
# `(user_id, id DESC)` gives (and kept only if it is the user's): with `WHERE user_id = $1
# ORDER BY id DESC`, a custom plan for a user holding much of the table walked the
# primary key back through everyone's newer messages (10 ms for a heavy user whose
# messages were old, and worse the larger the table).
#
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
def _matching(p: _Keywords, *, indexed: bool) -> str:
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
        coalesce((SELECT n.search_config FROM (
                      SELECT user_id, search_config FROM messages
                      WHERE user_id >= {p.user} ORDER BY user_id, id DESC LIMIT 1) AS n
                  WHERE n.user_id = {p.user}), 'english'),
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


def _ts_rank(function: str, p: _Keywords, indexed: bool) -> str:
    return f"""
WITH {_matching(p, indexed=indexed)}
SELECT source, id, content, created_at, role, importance, {function}(search, q.q) AS rank,
       1.0::float8 AS coverage
FROM docs, q
ORDER BY rank DESC, created_at DESC, id DESC
LIMIT {p.limit}
"""


def _row_count(p: _Keywords, indexed: bool) -> str:
    """N of BM25: the user's rows. Indexed: as the `user_indexes` job last counted them
    (counting 50k rows would cost more than the search)."""
    if indexed:
        return f"""coalesce(
                   (SELECT rows FROM user_search_stats WHERE user_id = {p.user}),
                   (SELECT message_count FROM conversations WHERE user_id = {p.user}))"""
    return f"""(SELECT count(*) FROM messages WHERE user_id = {p.user})
               + (SELECT count(*) FROM messages_archive WHERE user_id = {p.user})
               + (SELECT count(*) FROM facts WHERE user_id = {p.user} AND invalid_at IS NULL)"""


def _bm25(p: _Keywords, indexed: bool) -> str:
    """Okapi BM25 in SQL: document frequencies from the candidates themselves (every row
    holding a query term matches the OR query), N the user's rows (`_row_count`), the
    average length the candidates' (length = distinct lexemes)."""
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


def _keywords(ranking: Ranking, p: _Keywords, *, indexed: bool) -> str:
    if ranking is Ranking.BM25:
        return _bm25(p, indexed)
    return _ts_rank(ranking.value, p, indexed)


# Composed once, at import: they depend on nothing configured.
_KEYWORD_STATEMENTS = {
    (ranking, indexed): _keywords(ranking, _Keywords(), indexed=indexed)
    for ranking in Ranking
    for indexed in (False, True)
}
