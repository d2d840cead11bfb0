"""OpenAIEmbedder against a small fake of the embeddings API on 127.0.0.1."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import openai
import pytest
from aiohttp import web

from core.embedding import EmbeddingError, EmbeddingUnavailableError
from core.embedding.openai_embedder import OpenAIEmbedder

API_KEY = "sk-test-secret-key-0123456789"


@dataclass
class FakeAPI:
    """Answers POST /v1/embeddings with unnormalised, shuffled, text-dependent vectors."""

    dimensions: int = 8
    status: int = 200
    requests: list[dict[str, Any]] = field(default_factory=list)

    async def embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        if self.status != 200:
            error = {"message": "nope", "type": "error", "param": None, "code": None}
            return web.json_response({"error": error}, status=self.status)
        data = [
            {"object": "embedding", "index": i, "embedding": vector(text, self.dimensions)}
            for i, text in enumerate(body["input"])
        ]
        random.Random(len(data)).shuffle(data)
        usage = {"prompt_tokens": 1, "total_tokens": 1}
        return web.json_response(
            {"object": "list", "data": data, "model": body["model"], "usage": usage}
        )


def vector(text: str, dimensions: int) -> list[float]:
    return [float(len(text) + 1 + j) for j in range(dimensions)]


@pytest.fixture
async def api() -> AsyncIterator[tuple[FakeAPI, str]]:
    fake = FakeAPI()
    app = web.Application()
    app.router.add_post("/v1/embeddings", fake.embeddings)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield fake, f"http://{host}:{port}/v1"
    finally:
        await runner.cleanup()


@pytest.fixture
async def client(api: tuple[FakeAPI, str]) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(api_key=API_KEY, base_url=api[1], max_retries=0) as client:
        yield client


async def test_embeds_in_order_normalised_and_batched(
    api: tuple[FakeAPI, str], client: openai.AsyncOpenAI
) -> None:
    fake, _ = api
    embedder = OpenAIEmbedder(
        client, model_name="text-embedding-3-small", dimensions=8, max_batch=2
    )
    texts = ["a", "bb", "ccc", "dddd", "eeeee"]

    vectors = await embedder.embed(texts)

    assert [len(request["input"]) for request in fake.requests] == [2, 2, 1]
    assert all("dimensions" not in request for request in fake.requests)
    for text, got in zip(texts, vectors, strict=True):
        expected = np.asarray(vector(text, 8), dtype=np.float32)
        np.testing.assert_allclose(got, expected / np.linalg.norm(expected), rtol=1e-6)
        assert got.dtype == np.float32


async def test_sends_dimensions_only_when_asked(
    api: tuple[FakeAPI, str], client: openai.AsyncOpenAI
) -> None:
    fake, _ = api
    embedder = OpenAIEmbedder(
        client, model_name="text-embedding-3-small", dimensions=8, send_dimensions=True
    )

    await embedder.embed(["hello"])

    assert fake.requests[0]["dimensions"] == 8
    assert await embedder.embed([]) == []
    assert len(fake.requests) == 1


async def test_wrong_dimensions_are_refused(
    api: tuple[FakeAPI, str], client: openai.AsyncOpenAI
) -> None:
    api[0].dimensions = 5
    embedder = OpenAIEmbedder(client, model_name="m", dimensions=8)

    with pytest.raises(EmbeddingError, match="5 dimensions, expected 8"):
        await embedder.embed(["hello"])


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, EmbeddingError), (400, EmbeddingError), (429, EmbeddingUnavailableError)],
)
async def test_api_errors_become_embedding_errors(
    api: tuple[FakeAPI, str],
    client: openai.AsyncOpenAI,
    status: int,
    error: type[EmbeddingError],
) -> None:
    api[0].status = status
    embedder = OpenAIEmbedder(client, model_name="m", dimensions=8)

    with pytest.raises(error) as caught:
        await embedder.embed(["hello"])

    assert isinstance(caught.value.__cause__, openai.APIStatusError)
    assert f"HTTP {status}" in str(caught.value)
    assert API_KEY not in str(caught.value)
    assert (status == 429) == isinstance(caught.value, EmbeddingUnavailableError)


async def test_unreachable_server_is_transient() -> None:
    async with openai.AsyncOpenAI(
        api_key=API_KEY, base_url="http://127.0.0.1:9/v1", max_retries=0
    ) as client:
        embedder = OpenAIEmbedder(client, model_name="m", dimensions=8)
        with pytest.raises(EmbeddingUnavailableError):
            await embedder.embed(["hello"])
