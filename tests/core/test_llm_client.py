"""ChatClient through the real openai SDK against the local fake server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from core.llm import (
    ChatClient,
    Completion,
    LLMBadResponse,
    LLMError,
    LLMRateLimited,
    LLMTimeout,
    LLMUnavailable,
    StreamEvent,
    TextDelta,
)
from core.llm.client import _StreamChunk, extract_json_object
from fakes.openai_server import BreakStream, Delay, FakeOpenAI, HttpError, MalformedJson

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "say something nice"},
]
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"mood": {"type": "string"}},
    "required": ["mood"],
    "additionalProperties": False,
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(model="fake-model") as server:
        yield server


def make_client(fake: FakeOpenAI, **overrides: Any) -> ChatClient:
    options: dict[str, Any] = {
        "base_url": fake.base_url,
        "api_key": "sk-test-secret-key",
        "model": "fake-model",
        "timeout": 5.0,
        "max_retries": 2,
        "stream_retry_delay": 0.01,
    }
    options.update(overrides)
    return ChatClient(**options)


@pytest.fixture
async def client(fake: FakeOpenAI) -> AsyncIterator[ChatClient]:
    async with make_client(fake) as llm:
        yield llm


async def collect(events: AsyncIterator[StreamEvent]) -> list[StreamEvent]:
    return [event async for event in events]


async def collect_into(seen: list[StreamEvent], events: AsyncIterator[StreamEvent]) -> None:
    """Like `collect`, but keeps what arrived before an exception."""
    async for event in events:
        seen.append(event)


# -- plain completions ----------------------------------------------------------------


async def test_complete_returns_text_and_usage(fake: FakeOpenAI, client: ChatClient) -> None:
    completion = await client.complete(MESSAGES)

    assert completion.text == "echo: say something nice"
    assert completion.tokens_in == 6
    assert completion.tokens_out == 4
    assert completion.model == "fake-model"
    assert completion.finish_reason == "stop"
    assert completion.latency_ms >= 0


async def test_the_fake_receives_exactly_the_prompt(fake: FakeOpenAI, client: ChatClient) -> None:
    await client.complete(MESSAGES)
    await client.complete(MESSAGES, max_tokens=50, temperature=0.2)

    first, second = fake.chat_requests
    assert first["messages"] == MESSAGES
    assert first["model"] == "fake-model"
    assert "max_tokens" not in first
    assert "temperature" not in first
    assert second["max_tokens"] == 50
    assert second["temperature"] == 0.2


async def test_the_api_key_goes_as_a_bearer_token(fake: FakeOpenAI, client: ChatClient) -> None:
    await client.complete(MESSAGES)
    await collect(client.stream(MESSAGES))
    fake.push_reply('{"mood": "fine"}')
    await client.complete_json(MESSAGES, schema=SCHEMA, schema_name="mood")

    assert fake.chat_authorizations == ["Bearer sk-test-secret-key"] * 3


async def test_a_keyless_client_sends_a_placeholder_key(fake: FakeOpenAI) -> None:
    async with make_client(fake, api_key=None) as keyless:
        await keyless.complete(MESSAGES)

    assert fake.chat_authorizations == ["Bearer not-needed"]


async def test_latency_comes_from_the_injected_clock(fake: FakeOpenAI) -> None:
    ticks = iter([10.0, 10.25, 20.0, 20.5])

    async with make_client(fake, clock=lambda: next(ticks)) as llm:
        completion = await llm.complete(MESSAGES)
        streamed = (await collect(llm.stream(MESSAGES)))[-1]

    assert completion.latency_ms == 250.0
    assert isinstance(streamed, Completion)
    assert streamed.latency_ms == 500.0


async def test_missing_usage_leaves_token_counts_empty(
    fake: FakeOpenAI, client: ChatClient
) -> None:
    fake.report_usage = False

    completion = await client.complete(MESSAGES)

    assert completion.tokens_in is None
    assert completion.tokens_out is None


# -- streaming ------------------------------------------------------------------------


async def test_stream_yields_deltas_then_one_completion_with_usage(
    fake: FakeOpenAI, client: ChatClient
) -> None:
    fake.push_reply("one two three")

    events = await collect(client.stream(MESSAGES))

    *deltas, final = events
    assert all(isinstance(event, TextDelta) for event in deltas)
    assert [event.text for event in deltas if isinstance(event, TextDelta)] == [
        "one ",
        "two ",
        "three",
    ]
    assert isinstance(final, Completion)
    assert final.text == "one two three"
    assert (final.tokens_in, final.tokens_out) == (6, 3)
    assert fake.chat_requests[0]["stream"] is True
    assert fake.chat_requests[0]["stream_options"] == {"include_usage": True}
    assert fake.chat_requests[0]["messages"] == MESSAGES


async def test_stream_without_usage_leaves_counting_to_the_caller(fake: FakeOpenAI) -> None:
    async with make_client(fake, stream_usage=False) as llm:
        events = await collect(llm.stream(MESSAGES))

    final = events[-1]
    assert isinstance(final, Completion)
    assert final.text == "echo: say something nice"
    assert (final.tokens_in, final.tokens_out) == (None, None)
    assert "stream_options" not in fake.chat_requests[0]


async def test_stream_broken_midway_raises_and_reports_no_answer(
    fake: FakeOpenAI, client: ChatClient
) -> None:
    fake.push_reply("one two three four")
    fake.push_fault(BreakStream(after_chunks=2))
    seen: list[StreamEvent] = []

    with pytest.raises(LLMUnavailable):
        await collect_into(seen, client.stream(MESSAGES))

    assert seen == [TextDelta("one "), TextDelta("two ")]
    assert len(fake.chat_requests) == 1, "text already shown: no retry"


async def test_stream_broken_before_any_text_is_retried(
    fake: FakeOpenAI, client: ChatClient
) -> None:
    fake.push_reply("lost", "found it")
    fake.push_fault(BreakStream(after_chunks=0))

    events = await collect(client.stream(MESSAGES))

    final = events[-1]
    assert isinstance(final, Completion)
    assert final.text == "found it"
    assert len(fake.chat_requests) == 2


async def test_stream_that_keeps_breaking_gives_up_after_the_retries(fake: FakeOpenAI) -> None:
    fake.push_fault(BreakStream(after_chunks=0), BreakStream(after_chunks=0))

    async with make_client(fake, max_retries=1) as llm:
        with pytest.raises(LLMUnavailable):
            await collect(llm.stream(MESSAGES))

    assert len(fake.chat_requests) == 2


async def test_stream_status_errors_are_retried_by_the_sdk(
    fake: FakeOpenAI, client: ChatClient
) -> None:
    fake.push_fault(HttpError(503, retry_after=0.01))

    events = await collect(client.stream(MESSAGES))

    assert isinstance(events[-1], Completion)
    assert len(fake.chat_requests) == 2


# -- retries and error mapping --------------------------------------------------------


async def test_rate_limit_is_retried_after_the_servers_delay(
    fake: FakeOpenAI, client: ChatClient
) -> None:
    fake.push_fault(HttpError(429, retry_after=0.05))

    completion = await client.complete(MESSAGES)

    assert completion.text == "echo: say something nice"
    assert len(fake.chat_requests) == 2


async def test_rate_limit_without_retries_carries_retry_after(fake: FakeOpenAI) -> None:
    fake.push_fault(HttpError(429, retry_after=7))

    async with make_client(fake, max_retries=0) as llm:
        with pytest.raises(LLMRateLimited) as caught:
            await llm.complete(MESSAGES)

    assert caught.value.retry_after == 7.0
    assert caught.value.status_code == 429


async def test_server_error_then_success(fake: FakeOpenAI, client: ChatClient) -> None:
    fake.push_fault(HttpError(500, retry_after=0.01))

    completion = await client.complete(MESSAGES)

    assert completion.text == "echo: say something nice"
    assert len(fake.chat_requests) == 2


async def test_unavailable_once_the_retries_are_spent(fake: FakeOpenAI, client: ChatClient) -> None:
    fake.push_fault(*[HttpError(503, retry_after=0.01)] * 3)

    with pytest.raises(LLMUnavailable) as caught:
        await client.complete(MESSAGES)

    assert caught.value.status_code == 503
    assert len(fake.chat_requests) == 3


async def test_slow_answer_beyond_the_timeout(fake: FakeOpenAI) -> None:
    fake.push_fault(Delay(2.0))

    async with make_client(fake, timeout=0.3, max_retries=0) as llm:
        with pytest.raises(LLMTimeout):
            await llm.complete(MESSAGES)


async def test_timeouts_are_retried(fake: FakeOpenAI) -> None:
    fake.push_fault(Delay(2.0))

    async with make_client(fake, timeout=0.3, max_retries=1) as llm:
        completion = await llm.complete(MESSAGES)

    assert completion.text == "echo: say something nice"
    assert len(fake.chat_requests) == 2


async def test_malformed_json_is_a_bad_response(fake: FakeOpenAI, client: ChatClient) -> None:
    fake.push_fault(MalformedJson())

    with pytest.raises(LLMBadResponse):
        await client.complete(MESSAGES)


async def test_truncated_body_is_retried(fake: FakeOpenAI, client: ChatClient) -> None:
    fake.push_fault(BreakStream())

    completion = await client.complete(MESSAGES)

    assert completion.text == "echo: say something nice"
    assert len(fake.chat_requests) == 2


async def test_an_endpoint_that_hangs_up_is_unavailable_not_slow() -> None:
    """The SDK's aiohttp transport reports a closed connection as a connect timeout;
    the client still says what happened: the endpoint could not be talked to."""

    async def hang_up(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        llm = ChatClient(
            base_url=f"http://127.0.0.1:{port}/v1", api_key="k", model="m", max_retries=0
        )
        async with llm:
            with pytest.raises(LLMUnavailable):
                await llm.complete(MESSAGES)
    finally:
        server.close()
        await server.wait_closed()


async def test_unreachable_endpoint_is_unavailable() -> None:
    async with FakeOpenAI() as gone:
        base_url = gone.base_url
    llm = ChatClient(base_url=base_url, api_key="k", model="m", timeout=2.0, max_retries=0)
    async with llm:
        with pytest.raises(LLMUnavailable):
            await llm.complete(MESSAGES)


async def test_refusals_are_plain_errors_without_the_api_key(fake: FakeOpenAI) -> None:
    fake.push_fault(HttpError(401, message="Incorrect API key provided: sk-test-secret-key"))

    async with make_client(fake) as llm:
        with pytest.raises(LLMError) as caught:
            await llm.complete(MESSAGES)

    assert type(caught.value) is LLMError
    assert caught.value.status_code == 401
    assert "sk-test-secret-key" not in str(caught.value)
    assert "Incorrect API key provided: ***" in str(caught.value)
    assert len(fake.chat_requests) == 1, "4xx is not retried"


# -- JSON answers ---------------------------------------------------------------------


async def test_complete_json_with_native_structured_output(
    fake: FakeOpenAI, client: ChatClient
) -> None:
    fake.push_reply('{"mood": "happy"}')

    result = await client.complete_json(MESSAGES, schema=SCHEMA, schema_name="mood")

    assert result == {"mood": "happy"}
    (request,) = fake.chat_requests
    assert request["messages"] == MESSAGES
    assert request["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "mood", "schema": SCHEMA, "strict": True},
    }


async def test_complete_json_falls_back_when_the_endpoint_refuses_schemas(
    fake: FakeOpenAI, client: ChatClient
) -> None:
    fake.supports_json_schema = False
    fake.push_reply('Sure:\n```json\n{"mood": "sad"}\n```', '{"mood": "calm"}')

    first = await client.complete_json(MESSAGES, schema=SCHEMA, schema_name="mood")
    second = await client.complete_json(MESSAGES, schema=SCHEMA, schema_name="mood")

    assert first == {"mood": "sad"}
    assert second == {"mood": "calm"}
    refused, fallback, remembered = fake.chat_requests
    assert "response_format" in refused
    assert "response_format" not in fallback
    assert "response_format" not in remembered, "the refusal is remembered"
    system = fallback["messages"][0]
    assert system["role"] == "system"
    assert system["content"].startswith("You are terse.")
    assert '"mood"' in system["content"]
    assert fallback["messages"][1:] == MESSAGES[1:]


async def test_complete_json_falls_back_when_the_answer_is_not_json(
    fake: FakeOpenAI, client: ChatClient
) -> None:
    fake.push_reply("I feel fine, thanks!", 'Here you go: {"mood": "fine"} hope it helps')

    result = await client.complete_json(MESSAGES, schema=SCHEMA, schema_name="mood")

    assert result == {"mood": "fine"}
    assert len(fake.chat_requests) == 2


async def test_complete_json_without_any_json_is_a_bad_response(
    fake: FakeOpenAI, client: ChatClient
) -> None:
    fake.push_reply("no", "still no")

    with pytest.raises(LLMBadResponse):
        await client.complete_json(MESSAGES, schema=SCHEMA, schema_name="mood")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('```json\n{"a": {"b": [1, 2]}}\n```', {"a": {"b": [1, 2]}}),
        ('```\n{"a": 1}\n```', {"a": 1}),
        ('Answer: {"a": "}{"} and more {"b": 2}', {"a": "}{"}),
        ('{broken {"a": 1}', {"a": 1}),
        ('<think>maybe {"a": 0}</think>{"a": 1}', {"a": 1}),
        ("[1, 2]", None),
        ("nothing here", None),
    ],
)
def test_extract_json_object(text: str, expected: dict[str, Any] | None) -> None:
    assert extract_json_object(text) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {"model": "m", "choices": [{"index": 0, "delta": {"content": "hi"}}]},
            ("m", "hi", None, None),
        ),
        (
            {"choices": [{"index": 1, "delta": {"content": "other choice"}}]},
            (None, None, None, None),
        ),
        (
            {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": True}},
            (None, None, None, (5, None)),
        ),
        (
            {"choices": [{"delta": {"content": 7}, "finish_reason": "stop"}], "model": ""},
            (None, None, "stop", None),
        ),
        ({"choices": "nonsense", "usage": "nonsense"}, (None, None, None, None)),
    ],
)
def test_stream_chunks_are_read_defensively(raw: dict[str, Any], expected: tuple[Any, ...]) -> None:
    chunk = _StreamChunk.read(raw)
    assert (chunk.model, chunk.text, chunk.finish_reason, chunk.usage) == expected


@pytest.mark.parametrize("raw", [None, [], "data", 3])
def test_a_stream_chunk_that_is_not_an_object_breaks_the_stream(raw: object) -> None:
    with pytest.raises(ValueError, match="not a JSON object"):
        _StreamChunk.read(raw)
