"""`ChatClient`: chat completions from any OpenAI-compatible endpoint.

Retries belong to the openai SDK: it retries 408/409/429/5xx, timeouts and connection
errors ``max_retries`` times with exponential backoff, honouring ``Retry-After``. The
SDK cannot retry a stream whose body breaks after the 200 arrived, so `stream` retries
that itself, but only while no text has reached the caller; once text was yielded a
failure is raised, because the caller may already have shown it. Whatever is left
surfaces as one of the `core.llm.errors` types, chained to the SDK exception.

``timeout`` bounds connecting and each read, not the whole answer, so a long stream
that keeps producing tokens is never cut off.

HTTP goes through the SDK's aiohttp transport (`DefaultAioHttpClient`) rather than its
default httpx one: the same requests and retries, about 0.6 ms less CPU per streamed
answer (aiohttp parses HTTP in C; docs/pipeline.md). That transport reports every
failed or dropped connection as a connect *timeout*; `_connection_failure` tells them
apart again, so an unreachable endpoint is "unavailable", not "slow".
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import aiohttp
import openai
from openai import AsyncOpenAI, AsyncStream, DefaultAioHttpClient, RequestOptions
from openai.types.chat import ChatCompletion
from openai.types.chat.completion_create_params import ResponseFormat

from core.llm.errors import (
    LLMBadResponse,
    LLMError,
    LLMRateLimited,
    LLMTimeout,
    LLMUnavailable,
)

logger = logging.getLogger(__name__)

Message = Mapping[str, Any]
"""One chat message: ``{"role": "system" | "user" | "assistant", "content": ...}``; the
content is text, or a list of content parts (``{"type": "text", "text": ...}``,
``{"type": "image_url", "image_url": {"url": ...}}``) for a model with vision."""

DEFAULT_BASE_URL = "https://api.openai.com/v1"
MAX_STREAM_RETRY_DELAY = 8.0
_UNSUPPORTED_STATUSES = frozenset({400, 422})
# `post` sends the API key only when asked to, as the typed methods do.
_AUTHENTICATED: RequestOptions = {"security": {"bearer_auth": True}}


@dataclass(frozen=True, slots=True)
class Completion:
    """A finished answer. Token counts are None when the server reported no usage.

    ``latency_ms`` runs from the call to the last byte, retries included.
    """

    text: str
    tokens_in: int | None
    tokens_out: int | None
    model: str
    latency_ms: float
    finish_reason: str | None = None


@dataclass(frozen=True, slots=True)
class TextDelta:
    """The next piece of a streamed answer."""

    text: str


StreamEvent = TextDelta | Completion
"""`ChatClient.stream` yields `TextDelta`s, then exactly one `Completion` on success."""


class ChatClient:
    """Talks to one model behind one OpenAI-compatible base URL.

    ``base_url=None`` means OpenAI itself; ``api_key=None`` or ``""`` suits local servers.
    Use as ``async with ChatClient(...) as llm:`` or call `aclose`. ``max_retries=0``
    switches every retry off (tests), ``stream_retry_delay`` is the first backoff of the
    stream retry (doubled per attempt, capped at 8 s).
    """

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str | None,
        model: str,
        timeout: float = 60.0,
        max_retries: int = 2,
        stream_usage: bool = True,
        stream_retry_delay: float = 0.5,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        # Local servers ignore the key, but the SDK refuses an empty one. Both values are
        # passed explicitly so the SDK never falls back to reading the environment.
        self._api_key = api_key or "not-needed"
        base_url = base_url or DEFAULT_BASE_URL
        self._model = model
        self._timeout = timeout
        self._max_retries = max_retries
        self._stream_usage = stream_usage
        self._stream_retry_delay = stream_retry_delay
        self._clock = clock
        self._json_schema_supported = True
        self._sdk = AsyncOpenAI(
            base_url=base_url,
            api_key=self._api_key,
            timeout=timeout,
            max_retries=max_retries,
            http_client=DefaultAioHttpClient(timeout=timeout),
        )

    @property
    def model(self) -> str:
        return self._model

    async def aclose(self) -> None:
        await self._sdk.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Completion:
        """One answer, not streamed."""
        return await self._complete(messages, max_tokens=max_tokens, temperature=temperature)

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """Yield `TextDelta`s as they arrive, then one `Completion` with the whole text.

        If the stream breaks, an `LLMError` is raised and no `Completion` is yielded, so
        partial text is never reported as an answer. Close the iterator early with
        ``contextlib.aclosing`` to release the connection at once.
        """
        attempt = 0
        started = self._clock()
        while True:
            try:
                body = self._body(messages, max_tokens=max_tokens, temperature=temperature)
                body["stream"] = True
                if self._stream_usage:
                    body["stream_options"] = {"include_usage": True}
                chunks = await self._sdk.post(
                    "/chat/completions",
                    body=body,
                    cast_to=ChatCompletion,
                    options=_AUTHENTICATED,
                    stream=True,
                    # Chunks as plain JSON: building a pydantic model of each one cost
                    # more than reading the three fields we need (docs/pipeline.md).
                    stream_cls=AsyncStream[object],
                )
            except (openai.OpenAIError, ValueError) as exc:
                raise self._error(exc, "streamed chat completion") from exc
            parts: list[str] = []
            model = self._model
            finish_reason: str | None = None
            tokens_in: int | None = None
            tokens_out: int | None = None
            try:
                async with chunks:
                    async for raw in chunks:
                        chunk = _StreamChunk.read(raw)
                        model = chunk.model or model
                        if chunk.usage is not None:
                            tokens_in, tokens_out = chunk.usage
                        finish_reason = chunk.finish_reason or finish_reason
                        if chunk.text:
                            parts.append(chunk.text)
                            yield TextDelta(chunk.text)
                if finish_reason is None:
                    raise LLMUnavailable(f"stream from model {self._model} ended without finishing")
            except (openai.OpenAIError, LLMUnavailable, ValueError) as exc:
                if not parts and attempt < self._max_retries and _worth_retrying(exc):
                    attempt += 1
                    delay = min(
                        self._stream_retry_delay * 2 ** (attempt - 1), MAX_STREAM_RETRY_DELAY
                    )
                    logger.warning(
                        "stream from model %s failed before any text (%s); retry %s of %s in %.2fs",
                        self._model,
                        type(exc).__name__,
                        attempt,
                        self._max_retries,
                        delay,
                    )
                    await asyncio.sleep(delay)
                    continue
                if isinstance(exc, LLMError):
                    raise
                raise self._error(exc, "streamed chat completion") from exc
            yield Completion(
                text="".join(parts),
                tokens_in=tokens_in,
                tokens_out=tokens_out,
                model=model,
                latency_ms=(self._clock() - started) * 1000,
                finish_reason=finish_reason,
            )
            return

    async def complete_json(
        self,
        messages: Sequence[Message],
        *,
        schema: dict[str, Any],
        schema_name: str,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> dict[str, Any]:
        """An answer parsed as a JSON object, asked for with structured output if possible.

        First asks with a ``json_schema`` response_format. If the endpoint refuses that
        (400/422; remembered for this client) or answers with no JSON object, asks again
        with the schema spelled out in the system prompt and takes the first JSON object
        in the text. The result is not validated against the schema.
        """
        if self._json_schema_supported:
            response_format: ResponseFormat = {
                "type": "json_schema",
                "json_schema": {"name": schema_name, "schema": schema, "strict": True},
            }
            try:
                completion = await self._complete(
                    messages,
                    max_tokens=max_tokens,
                    temperature=temperature,
                    response_format=response_format,
                )
            except LLMError as exc:
                if type(exc) is not LLMError or exc.status_code not in _UNSUPPORTED_STATUSES:
                    raise
                self._json_schema_supported = False
                logger.info(
                    "endpoint refused json_schema output for model %s (HTTP %s); "
                    "prompting for JSON instead",
                    self._model,
                    exc.status_code,
                )
            else:
                parsed = extract_json_object(completion.text)
                if parsed is not None:
                    return parsed
                logger.warning(
                    "structured output from model %s held no JSON object; prompting for JSON",
                    self._model,
                )
        completion = await self._complete(
            _with_json_instruction(messages, schema, schema_name),
            max_tokens=max_tokens,
            temperature=temperature,
        )
        parsed = extract_json_object(completion.text)
        if parsed is None:
            raise LLMBadResponse(f"model {self._model} answered without a JSON object")
        return parsed

    async def _complete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None,
        temperature: float | None,
        response_format: ResponseFormat | None = None,
    ) -> Completion:
        started = self._clock()
        body = self._body(messages, max_tokens=max_tokens, temperature=temperature)
        if response_format is not None:
            body["response_format"] = response_format
        try:
            response = await self._sdk.post(
                "/chat/completions", body=body, cast_to=ChatCompletion, options=_AUTHENTICATED
            )
        except (openai.OpenAIError, ValueError) as exc:
            raise self._error(exc, "chat completion") from exc
        latency_ms = (self._clock() - started) * 1000
        return self._to_completion(response, latency_ms)

    def _body(
        self, messages: Sequence[Message], *, max_tokens: int | None, temperature: float | None
    ) -> dict[str, object]:
        """The request body as plain JSON. The SDK's typed `chat.completions.create`
        walks every prompt message through its TypedDict transform first, which cost
        more CPU than the rest of a turn's Python (docs/pipeline.md); our messages are
        plain role/content pairs already. Unset options are left out, not sent as null.
        """
        body: dict[str, object] = {
            "model": self._model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
        }
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if temperature is not None:
            body["temperature"] = temperature
        return body

    def _to_completion(self, response: ChatCompletion, latency_ms: float) -> Completion:
        # Without strict validation the SDK builds models from whatever JSON arrived, so
        # a missing field shows up as AttributeError here rather than in the SDK.
        try:
            choice = response.choices[0]
            text = choice.message.content
            usage = response.usage
            model = response.model or self._model
            finish_reason = choice.finish_reason
        except (AttributeError, IndexError, TypeError) as exc:
            raise LLMBadResponse(f"model {self._model} sent a completion without a choice") from exc
        if not isinstance(text, str):
            raise LLMBadResponse(f"model {self._model} sent a completion without text")
        return Completion(
            text=text,
            tokens_in=usage.prompt_tokens if usage is not None else None,
            tokens_out=usage.completion_tokens if usage is not None else None,
            model=model,
            latency_ms=latency_ms,
            finish_reason=finish_reason,
        )

    def _error(self, exc: BaseException, what: str) -> LLMError:
        return sdk_error(
            exc, f"{what} with model {self._model}", timeout=self._timeout, api_key=self._api_key
        )


def sdk_error(exc: BaseException, where: str, *, timeout: float, api_key: str) -> LLMError:
    """Map an openai SDK (or decoding) exception to our errors, with a message of our own
    beginning with `where`; the server's words in it have `api_key` masked."""
    if isinstance(exc, openai.RateLimitError):
        return LLMRateLimited(
            f"{where}: rate limited (HTTP 429)",
            retry_after=_retry_after(exc.response.headers),
            status_code=429,
        )
    if isinstance(exc, openai.APITimeoutError) and _connection_failure(exc) is None:
        return LLMTimeout(f"{where}: no answer within {timeout:g}s")
    if isinstance(exc, openai.APIConnectionError):
        return LLMUnavailable(f"{where}: connection failed ({_cause_name(exc)})")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status >= 500 or status in (408, 409):
            return LLMUnavailable(f"{where}: endpoint failed (HTTP {status})", status_code=status)
        detail = _server_message(exc.body)
        if len(api_key) >= 4:
            detail = detail.replace(api_key, "***")
        return LLMError(
            f"{where}: endpoint refused (HTTP {status}) {detail}".rstrip(), status_code=status
        )
    if isinstance(exc, openai.APIResponseValidationError | ValueError):
        return LLMBadResponse(f"{where}: malformed response ({type(exc).__name__})")
    if isinstance(exc, openai.APIError):
        # An error event inside a stream that had already answered 200.
        return LLMUnavailable(f"{where}: endpoint reported an error mid-stream")
    return LLMError(f"{where}: {type(exc).__name__}")


@dataclass(frozen=True, slots=True)
class _StreamChunk:
    """What one `chat.completion.chunk` says about choice 0, read from its JSON."""

    model: str | None
    text: str | None
    finish_reason: str | None
    usage: tuple[int | None, int | None] | None

    @classmethod
    def read(cls, raw: object) -> _StreamChunk:
        """Raises ValueError for a chunk that is not a JSON object (a broken stream)."""
        if not isinstance(raw, dict):
            raise ValueError("stream chunk is not a JSON object")
        text = finish_reason = None
        for choice in _list(raw.get("choices")):
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                delta = choice.get("delta")
                content = delta.get("content") if isinstance(delta, dict) else None
                text = content if isinstance(content, str) else None
                reason = choice.get("finish_reason")
                finish_reason = reason if isinstance(reason, str) else None
        usage = raw.get("usage")
        counts = None
        if isinstance(usage, dict):
            counts = (
                _int_or_none(usage.get("prompt_tokens")),
                _int_or_none(usage.get("completion_tokens")),
            )
        return cls(_str_or_none(raw.get("model")), text, finish_reason, counts)


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def extract_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in `text`, looking inside ``` fences first; None if none.

    Reasoning models' ``<think>`` blocks are skipped, since they often hold drafts.
    """
    text = _THINK.sub("", text)
    candidates = [match.group(1) for match in _FENCE.finditer(text)]
    candidates.append(text)
    decoder = json.JSONDecoder()
    for candidate in candidates:
        start = candidate.find("{")
        while start != -1:
            try:
                value, _ = decoder.raw_decode(candidate, start)
            except ValueError:
                pass
            else:
                if isinstance(value, dict):
                    return value
            start = candidate.find("{", start + 1)
    return None


_FENCE = re.compile(r"```[a-zA-Z]*\s*\n?(.*?)```", re.DOTALL)
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)


def _with_json_instruction(
    messages: Sequence[Message], schema: dict[str, Any], schema_name: str
) -> list[Message]:
    """Add the JSON instruction to the first system message (or prepend one).

    Merging rather than appending a second system message keeps chat templates happy
    that accept a system message only in first position.
    """
    instruction = (
        f"Reply with one JSON object named {schema_name} and nothing else: no prose, "
        f"no code fences. It must match this JSON schema:\n{json.dumps(schema)}"
    )
    result = [dict(message) for message in messages]
    if result and result[0].get("role") == "system":
        result[0]["content"] = f"{result[0].get('content', '')}\n\n{instruction}"
    else:
        result.insert(0, {"role": "system", "content": instruction})
    return list[Message](result)


def _worth_retrying(exc: BaseException) -> bool:
    """Transport failures and in-stream error events; not malformed payloads."""
    if isinstance(exc, openai.APIConnectionError | LLMUnavailable):
        return True
    return isinstance(exc, openai.APIError) and not isinstance(
        exc, openai.APIStatusError | openai.APIResponseValidationError
    )


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from ``retry-after-ms`` or numeric ``retry-after``; None if absent or a date."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    return None


def _server_message(body: object) -> str:
    """The ``error.message`` of an OpenAI-style error body, shortened; else empty."""
    error = body.get("error", body) if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return f"- {message[:200]}" if isinstance(message, str) and message else ""


def _cause_name(exc: BaseException) -> str:
    cause = _connection_failure(exc) or exc.__cause__
    return type(cause).__name__ if cause is not None else type(exc).__name__


def _connection_failure(exc: BaseException) -> aiohttp.ClientConnectionError | None:
    """The refused, reset or closed connection behind an SDK error, if that is what it
    is (an aiohttp connection error that is not a timeout)."""
    cause: BaseException | None = exc
    for _ in range(5):  # the error and a few links of its `raise ... from` chain
        if cause is None:
            return None
        if isinstance(cause, aiohttp.ClientConnectionError) and not isinstance(
            cause, asyncio.TimeoutError
        ):
            return cause
        cause = cause.__cause__
    return None
