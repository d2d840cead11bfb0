"""Embeddings cross to PostgreSQL in pgvector's binary format, numpy arrays included."""

from __future__ import annotations

import numpy as np
import pytest
from pgvector import HalfVector, Vector

from core.storage.database import Database, _vector_encoder


@pytest.mark.parametrize(
    ("vector_type", "dtype"), [(Vector, ">f4"), (HalfVector, ">f2")], ids=["vector", "halfvec"]
)
def test_numpy_arrays_encode_as_pgvector_would(
    vector_type: type[Vector] | type[HalfVector], dtype: str
) -> None:
    encode = _vector_encoder(vector_type, dtype)
    values = np.random.default_rng(3).standard_normal(384)
    for array in (values.astype(np.float32), values.astype(np.float16), values):
        assert encode(array) == vector_type(array).to_binary()
    as_list = [0.5, -1.25, 3.0]
    assert encode(as_list) == vector_type(as_list).to_binary()
    assert encode(vector_type(as_list)) == vector_type(as_list).to_binary()


async def test_vectors_round_trip_through_the_database(db: Database) -> None:
    values = np.random.default_rng(4).standard_normal(384).astype(np.float32)
    async with db.connection() as conn:
        half = await conn.fetchval("SELECT $1::halfvec", values)
        full = await conn.fetchval("SELECT $1::vector", values)
    assert np.array_equal(half.to_numpy(), values.astype(np.float16))
    assert np.array_equal(full.to_numpy(), values)
