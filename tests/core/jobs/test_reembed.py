"""Re-embedding every fact, message (live and archived) and document chunk, resumably."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from config.settings import ArchiveSettings
from core.embedding.base import EmbeddingError, Vector, l2_normalise
from core.jobs.archive import ArchiveJob
from core.jobs.reembed import Reembedder, ReembedProgress
from core.models import NewFact, Platform
from core.services import Services
from core.storage.archive_store import EmbeddedTable
from core.storage.documents import DocumentRepository, MediaType, NewChunk, NewDocument
from tests.core.jobs.memory.helpers import conversation, set_read_position


class HashEmbedder:
    """An `Embedder` of another model: deterministic vectors from a hash of the text.

    `fail_on_call` makes that call (1-based) raise, like a provider going down.
    """

    def __init__(self, model_name: str, dimensions: int, fail_on_call: int | None = None) -> None:
        self.model_name = model_name
        self.dimensions = dimensions
        self.fail_on_call = fail_on_call
        self.calls: list[list[str]] = []

    def vector(self, text: str) -> Vector:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        raw = np.random.default_rng(seed).standard_normal((1, self.dimensions))
        vector: Vector = l2_normalise(raw)[0]
        return vector

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        self.calls.append(list(texts))
        if len(self.calls) == self.fail_on_call:
            raise EmbeddingError("provider down")
        return [self.vector(t) for t in texts]


async def _seed(services: Services) -> int:
    """A user with 6 live messages, 4 archived ones, 2 facts and a document of 2 chunks;
    all rows: 14."""
    user_id, ids = await conversation(services, "re", [f"message {i}" for i in range(5)])
    await set_read_position(services, user_id, ids[-1])
    now = datetime.now(UTC) + timedelta(days=40)
    settings = ArchiveSettings(keep_recent_messages=6)
    await ArchiveJob(services.db, settings, clock=lambda: now).run()
    for text in ("Likes tea", "Has a cat"):
        await services.facts.add(user_id, NewFact(text))
    vector = np.ones(384, dtype=np.float32) / np.sqrt(384)
    document = NewDocument(
        "notes.txt",
        MediaType.TEXT,
        20,
        None,
        b"sha",
        Platform.TELEGRAM,
        None,
        "re",
        [NewChunk(n, None, None, 0, f"chunk {n}", vector) for n in range(2)],
    )
    repository = DocumentRepository(services.db)
    await repository.add(user_id, document, max_documents=5)
    return user_id


async def _embeddings(services: Services, user_id: int) -> dict[tuple[str, int], Vector | None]:
    found: dict[tuple[str, int], Vector | None] = {}
    async with services.db.connection() as conn:
        for source in EmbeddedTable:
            rows = await conn.fetch(
                f"SELECT id, embedding FROM {source.table} WHERE user_id = $1", user_id
            )
            for row in rows:
                vector = row["embedding"]
                found[(source.value, row["id"])] = (
                    None if vector is None else np.asarray(vector.to_list(), dtype=np.float32)
                )
    return found


async def _dims(services: Services, user_id: int) -> list[int | None]:
    async with services.db.connection() as conn:
        return [
            r["d"]
            for source in EmbeddedTable
            for r in await conn.fetch(
                f"SELECT vector_dims(embedding) AS d FROM {source.table} WHERE user_id = $1",
                user_id,
            )
        ]


async def _contents(services: Services, user_id: int) -> dict[tuple[str, int], str]:
    found = {}
    async with services.db.connection() as conn:
        for source in EmbeddedTable:
            rows = await conn.fetch(
                f"SELECT id, content FROM {source.table} WHERE user_id = $1", user_id
            )
            found.update({(source.value, r["id"]): r["content"] for r in rows})
    return found


async def test_every_row_gets_the_new_model_and_progress_is_reported(services: Services) -> None:
    user_id = await _seed(services)
    embedder = HashEmbedder("other-model", 16)
    seen: list[ReembedProgress] = []
    reembedder = Reembedder(services, embedder=embedder, batch_size=3, progress=seen.append)
    assert await reembedder.remaining() == {
        EmbeddedTable.FACTS: 2,
        EmbeddedTable.MESSAGES: 6,
        EmbeddedTable.DOCUMENT_CHUNKS: 2,
        EmbeddedTable.ARCHIVE: 4,
    }

    outcome = await reembedder.run()

    assert outcome.counts == {"facts": 2, "messages": 6, "document_chunks": 2, "archive": 4}
    contents = await _contents(services, user_id)
    for key, vector in (await _embeddings(services, user_id)).items():
        assert vector is not None
        np.testing.assert_allclose(vector, embedder.vector(contents[key]), atol=2e-3)
    finals = {p.source: p for p in seen}
    assert {s: (p.done, p.total) for s, p in finals.items()} == {
        EmbeddedTable.FACTS: (2, 2),
        EmbeddedTable.MESSAGES: (6, 6),
        EmbeddedTable.DOCUMENT_CHUNKS: (2, 2),
        EmbeddedTable.ARCHIVE: (4, 4),
    }
    assert await reembedder.remaining() == dict.fromkeys(EmbeddedTable, 0)

    # Done for this model: a second run has nothing to do; --restart does it all again.
    assert (await reembedder.run()).counts == {
        "facts": 0,
        "messages": 0,
        "document_chunks": 0,
        "archive": 0,
    }
    again = Reembedder(services, embedder=embedder, restart=True)
    assert (await again.run()).counts == {
        "facts": 2,
        "messages": 6,
        "document_chunks": 2,
        "archive": 4,
    }


async def test_an_interrupted_run_resumes_after_the_last_batch(services: Services) -> None:
    user_id = await _seed(services)
    failing = HashEmbedder("other-model", 16, fail_on_call=3)
    with pytest.raises(EmbeddingError):
        await Reembedder(services, embedder=failing, batch_size=4).run()
    # Facts (one batch of 2) and the first batch of 4 messages were written.
    assert (await _dims(services, user_id)).count(16) == 6

    resumed = HashEmbedder("other-model", 16)
    outcome = await Reembedder(services, embedder=resumed, batch_size=4).run()
    assert outcome.counts == {"facts": 0, "messages": 2, "document_chunks": 2, "archive": 4}
    assert sum(len(call) for call in resumed.calls) == 8

    # Another model starts over.
    third = HashEmbedder("third-model", 8)
    assert (await Reembedder(services, embedder=third).run()).counts["messages"] == 6
    assert await _dims(services, user_id) == [8] * 14
