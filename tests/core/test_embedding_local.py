"""The offline MiniLM embedder, run for real on the shipped model."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from core.embedding import Embedder, EmbeddingError
from core.embedding.local import DIMENSIONS, LocalEmbedder, default_model_path

TEXTS = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The new movie is awesome.",
    "Wie spät ist es?",
    "",
    "The stock market fell sharply after the interest rate announcement, "
    "dragging technology shares to their lowest level in months.",
    "ok",
    "Can you remind me tomorrow to call my sister about her birthday party?",
]


@pytest.fixture(scope="module")
async def embedder() -> AsyncIterator[LocalEmbedder]:
    async with LocalEmbedder() as loaded:
        yield loaded


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b))


def test_is_an_embedder() -> None:
    embedder: Embedder = LocalEmbedder()
    assert embedder.dimensions == 384
    assert embedder.model_name == "all-MiniLM-L6-v2"


async def test_vectors_are_384_dim_float32_unit_vectors(embedder: LocalEmbedder) -> None:
    vectors = await embedder.embed(TEXTS)

    assert len(vectors) == len(TEXTS)
    for vector in vectors:
        assert vector.shape == (DIMENSIONS,)
        assert vector.dtype == np.float32
        assert np.isfinite(vector).all()
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)


async def test_no_texts_give_no_vectors(embedder: LocalEmbedder) -> None:
    assert await embedder.embed([]) == []


async def test_similar_sentences_are_closer_than_unrelated_ones(embedder: LocalEmbedder) -> None:
    food, bread, market, weather, rain = await embedder.embed(
        [
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "The stock market crashed today.",
            "What will the weather be like tomorrow?",
            "Is it going to rain tomorrow?",
        ]
    )

    assert cosine(food, bread) > 0.6
    assert cosine(food, bread) > cosine(food, market) + 0.3
    assert cosine(weather, rain) > cosine(weather, bread) + 0.3


async def test_batched_vectors_equal_one_by_one(embedder: LocalEmbedder) -> None:
    async with LocalEmbedder(batch_size=3) as small_batches:
        batched = await small_batches.embed(TEXTS)
    async with LocalEmbedder(max_batch_tokens=256) as token_capped:
        capped = await token_capped.embed([*TEXTS, "remember this word " * 200])
    one_by_one = [(await embedder.embed([text]))[0] for text in TEXTS]
    one_batch = await embedder.embed(TEXTS)

    for single, *grouped in zip(one_by_one, batched, capped, one_batch, strict=False):
        for vector in grouped:
            np.testing.assert_allclose(vector, single, atol=1e-5)


async def test_the_end_of_a_text_longer_than_the_window_counts(embedder: LocalEmbedder) -> None:
    weather = (
        "The weather this week was grey and wet, with rain every morning and a cold wind"
        " from the north in the afternoon, so the streets stayed damp until evening. "
    ) * 12  # about 400 tokens, past the model's 256
    ending = "By the way, my sister's new kitten is called Zorro, a black tabby."
    head_only, whole, short = await embedder.embed([weather, weather + ending, ending])
    [question] = await embedder.embed(["What is my sister's kitten called?"])

    # Cut at 256 tokens, both texts would have one vector; windowed, the ending counts,
    # and brings the long text nearer the question about it.
    assert cosine(whole, head_only) < 0.99
    assert cosine(question, whole) > cosine(question, head_only) + 0.05
    assert cosine(question, short) > cosine(question, whole)  # diluted, not lost
    np.testing.assert_allclose(np.linalg.norm(whole), 1.0, atol=1e-5)
    # A text within the window is embedded as it always was, alone or among long ones.
    [alone] = await embedder.embed([ending])
    np.testing.assert_allclose(short, alone, atol=1e-5)


async def test_corrupted_model_file_is_refused(tmp_path: Path) -> None:
    damaged = tmp_path / "model.onnx"
    shutil.copyfile(default_model_path(), damaged)
    with damaged.open("r+b") as file:
        file.seek(1_000_000)
        byte = file.read(1)
        file.seek(1_000_000)
        file.write(bytes([byte[0] ^ 0xFF]))

    broken = LocalEmbedder(model_path=damaged)

    with pytest.raises(EmbeddingError, match="sha256"):
        await broken.embed(["hello"])
    await broken.aclose()


async def test_missing_model_file_is_refused(tmp_path: Path) -> None:
    embedder = LocalEmbedder(model_path=tmp_path / "missing.onnx")

    with pytest.raises(EmbeddingError, match="missing"):
        async with embedder:
            pass
    with pytest.raises(EmbeddingError, match="closed"):  # a failed start cleaned up
        await embedder.embed(["hello"])


async def test_closed_embedder_refuses_work() -> None:
    embedder = LocalEmbedder()
    await embedder.aclose()

    with pytest.raises(EmbeddingError, match="closed"):
        await embedder.embed(["hello"])


async def test_event_loop_keeps_running_while_embedding(embedder: LocalEmbedder) -> None:
    texts = [f"message number {i} about the weather, food and plans " * 8 for i in range(256)]
    ticks_while_embedding = 0

    embedding = asyncio.create_task(embedder.embed(texts))
    await asyncio.sleep(0)  # let the embedding start
    while not embedding.done():
        ticks_while_embedding += 1
        await asyncio.sleep(0.001)
    vectors = await embedding

    assert len(vectors) == len(texts)
    # A blocking implementation finishes inside its first step: the loop never ticks.
    assert ticks_while_embedding >= 3
