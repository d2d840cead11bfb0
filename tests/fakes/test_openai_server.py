"""The fake OpenAI server itself, driven through the real SDK."""

from __future__ import annotations

import base64
import math
from collections.abc import AsyncIterator, Sequence

import numpy as np
import openai
import pytest
from openai import AsyncOpenAI

from fakes.openai_server import FakeOpenAI, HttpError, LatencyProfile, hash_embedder


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(embedding_dimensions=16) as server:
        yield server


@pytest.fixture
async def sdk(fake: FakeOpenAI) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=fake.base_url, api_key="test", max_retries=0) as client:
        yield client


async def test_base_url_points_at_a_free_local_port(fake: FakeOpenAI) -> None:
    assert fake.base_url.startswith("http://127.0.0.1:")
    assert fake.base_url.endswith("/v1")
    assert not fake.base_url.endswith(":0/v1")


async def test_lists_its_model(sdk: AsyncOpenAI) -> None:
    models = [model.id async for model in await sdk.models.list()]

    assert models == ["fake-model"]


async def test_embeddings_are_deterministic_unit_vectors(
    fake: FakeOpenAI, sdk: AsyncOpenAI
) -> None:
    first = await sdk.embeddings.create(model="e", input=["cat", "dog"])
    again = await sdk.embeddings.create(model="e", input="cat", dimensions=4)
    same = await sdk.embeddings.create(model="e", input="cat", dimensions=4)

    cat, dog = (item.embedding for item in first.data)
    assert len(cat) == 16
    assert cat != dog
    # The SDK asks for base64 float32 by default, hence the tolerance.
    assert math.isclose(float(np.linalg.norm(cat)), 1.0, rel_tol=1e-6)
    assert again.data[0].embedding == same.data[0].embedding
    assert len(again.data[0].embedding) == 4
    assert fake.embedding_requests[0]["input"] == ["cat", "dog"]


async def test_embeddings_in_base64(sdk: AsyncOpenAI) -> None:
    result = await sdk.embeddings.create(model="e", input="cat", encoding_format="base64")

    # Asked for explicitly, base64 comes back undecoded, whatever the type hints say.
    raw: object = result.data[0].embedding
    assert isinstance(raw, str)
    decoded = np.frombuffer(base64.b64decode(raw), dtype="<f4")
    assert np.allclose(decoded, hash_embedder("cat", 16), atol=1e-6)


async def test_embedder_can_be_replaced(fake: FakeOpenAI, sdk: AsyncOpenAI) -> None:
    def by_length(text: str, dimensions: int) -> Sequence[float]:
        return [float(len(text))] * dimensions

    fake.embedder = by_length

    result = await sdk.embeddings.create(model="e", input="abc", dimensions=2)

    assert result.data[0].embedding == [3.0, 3.0]


async def test_responder_and_reply_queue(fake: FakeOpenAI, sdk: AsyncOpenAI) -> None:
    fake.responder = lambda request: f"{len(request['messages'])} messages"
    fake.push_reply("scripted")
    messages: list[openai.types.chat.ChatCompletionMessageParam] = [
        {"role": "user", "content": "hi"}
    ]

    first = await sdk.chat.completions.create(model="m", messages=messages)
    second = await sdk.chat.completions.create(model="m", messages=messages)

    assert first.choices[0].message.content == "scripted"
    assert second.choices[0].message.content == "1 messages"


async def test_faults_are_consumed_one_per_request(fake: FakeOpenAI, sdk: AsyncOpenAI) -> None:
    fake.push_fault(HttpError(429, retry_after=3), HttpError(500))
    messages: list[openai.types.chat.ChatCompletionMessageParam] = [
        {"role": "user", "content": "hi"}
    ]

    with pytest.raises(openai.RateLimitError) as limited:
        await sdk.chat.completions.create(model="m", messages=messages)
    with pytest.raises(openai.InternalServerError):
        await sdk.chat.completions.create(model="m", messages=messages)
    answer = await sdk.chat.completions.create(model="m", messages=messages)

    assert limited.value.response.headers["retry-after"] == "3"
    assert answer.choices[0].message.content == "echo: hi"
    assert fake.pending_faults == 0
    assert len(fake.chat_requests) == 3


async def test_stream_has_no_usage_chunk_unless_asked(sdk: AsyncOpenAI) -> None:
    stream = await sdk.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], stream=True
    )

    chunks = [chunk async for chunk in stream]

    assert all(chunk.usage is None for chunk in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "echo: hi"


async def test_latency_profile_shapes_replies() -> None:
    profile = LatencyProfile(
        first_token_median_s=0.001,
        first_token_max_s=0.002,
        tokens_per_second=(1e6, 1e6),
        reply_tokens=(5, 12),
        tokens_per_chunk=3,
        seed=7,
    )
    rng = np.random.default_rng(1)
    draws = [LatencyProfile().draw(rng) for _ in range(2000)]
    first_tokens = [d.first_token_s for d in draws]

    async with (
        FakeOpenAI(latency=profile) as fake,
        AsyncOpenAI(base_url=fake.base_url, api_key="test", max_retries=0) as sdk,
    ):
        stream = await sdk.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "one two"}], stream=True
        )
        pieces = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        capped = await sdk.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "one two"}], max_tokens=4
        )

    words = [p.split() for p in pieces if p]
    assert 5 <= sum(map(len, words)) <= 12
    assert all(len(w) == 3 for w in words[:-1])
    assert "".join(pieces).startswith("echo: one two echo:")
    assert capped.choices[0].message.content == "echo: one two echo:"
    # Log-normal around 0.8 s with a long tail, cut at 5 s; speed and length uniform.
    assert 0.7 < float(np.median(first_tokens)) < 0.9
    assert float(np.percentile(first_tokens, 99)) > 3.0
    assert max(first_tokens) <= 5.0
    assert all(30 <= d.tokens_per_second <= 80 and 50 <= d.tokens <= 400 for d in draws)
