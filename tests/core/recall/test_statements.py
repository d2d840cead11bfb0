"""Recall's statements take their values at the positions their docstrings promise.

The repositories bind values by position (core/recall/statements.py); PostgreSQL
prepares every variant here and reports the type it inferred for each `$n`, so a
statement whose positions drifted from its documented order fails to prepare or
reports other types.
"""

from __future__ import annotations

import itertools

import pytest

from core.recall.statements import (
    Ranking,
    Source,
    candidates_statement,
    keyword_statement,
    nearest_statement,
)
from core.storage.database import Database
from tests.core.recall.test_vectors import DIM

KEYWORDS = ["int8", "text", "int8[]", "text[]", "int8"]


def _nearest(*, approximate: bool) -> list[str]:
    # k is inferred from its first use: an int8 LIMIT, or, approximate, an int4 in
    # greatest($3 * 4, 40). Both take a Python int.
    return ["int8", "halfvec", "int4" if approximate else "int8", "text[]", "int8[]"]


async def _parameter_types(db: Database, sql: str) -> list[str]:
    async with db.connection() as conn:
        statement = await conn.prepare(sql)
    return [t.name for t in statement.get_parameters()]


@pytest.mark.parametrize("approximate", [False, True])
async def test_nearest_statements(db: Database, approximate: bool) -> None:
    for n in range(1, len(Source) + 1):
        for sources in itertools.combinations(Source, n):
            sql = nearest_statement(sources, approximate=approximate, dimensions=DIM)
            assert await _parameter_types(db, sql) == _nearest(approximate=approximate)


@pytest.mark.parametrize("indexed", [False, True])
@pytest.mark.parametrize("ranking", list(Ranking))
async def test_keyword_statements(db: Database, ranking: Ranking, indexed: bool) -> None:
    assert await _parameter_types(db, keyword_statement(ranking, indexed=indexed)) == KEYWORDS


@pytest.mark.parametrize("approximate", [False, True])
@pytest.mark.parametrize("ranking", list(Ranking))
async def test_candidates_statements(db: Database, ranking: Ranking, approximate: bool) -> None:
    sql = candidates_statement(ranking, approximate=approximate, dimensions=DIM)
    assert await _parameter_types(db, sql) == [*_nearest(approximate=approximate), "text"]
