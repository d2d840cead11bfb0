"""A small fake of an OpenAI-compatible HTTP API, for tests that drive the real SDK.

    async with FakeOpenAI() as fake:
        client = AsyncOpenAI(base_url=fake.base_url, api_key="test")
        fake.push_reply("hello")
        fake.push_fault(HttpError(429, retry_after=0.01))

Endpoints: ``POST /v1/chat/completions`` (JSON or SSE when ``stream`` is true, with a
final usage chunk when ``stream_options.include_usage`` is set), ``POST /v1/embeddings``,
``POST /v1/audio/transcriptions`` (multipart form: ``file``, ``model``,
``response_format`` json or verbose_json; see `Transcription`) and ``GET /v1/models``.
Chat messages may hold image content parts (``image_url`` with a base64 data URL): with
``vision`` off they are refused (400) like a text-only model does, and a data URL that
is not base64 is "invalid image" (400). Every chat and embedding request body is recorded before any
fault applies, so tests can count attempts and assert on the prompt.

Reply text comes from the queue filled by `push_reply`, else from `responder`
(default: echo the last user message). Faults pushed with `push_fault` are consumed
one per chat or embedding request, in order. Nothing depends on the wall clock except
the injected `Delay` and an optional `LatencyProfile` (a hosted model's pace, for
benchmarks), whose waits also end early when the server shuts down so a slow answer
never holds up teardown.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import json
import math
import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from aiohttp import web

from fakes.local_server import LocalServer

JSONObject = dict[str, Any]
Responder = Callable[[JSONObject], str]
"""Produces the reply text for a chat request body."""
Embedder = Callable[[str, int], Sequence[float]]
"""Maps (text, dimensions) to a vector; returned as is, so tests control similarity."""


@dataclass(frozen=True, slots=True)
class HttpError:
    """Answer with this status and an OpenAI-style error body."""

    status: int
    retry_after: float | None = None
    message: str = "injected failure"


@dataclass(frozen=True, slots=True)
class Delay:
    """Wait this many seconds (or until shutdown), then answer normally."""

    seconds: float


@dataclass(frozen=True, slots=True)
class MalformedJson:
    """Answer 200 with ``application/json`` whose body is not valid JSON."""


@dataclass(frozen=True, slots=True)
class BreakStream:
    """Drop the connection after ``after_chunks`` content chunks.

    Streamed requests get the initial role chunk and then ``after_chunks`` content
    chunks; non-streamed requests get the headers and half a body.
    """

    after_chunks: int = 1


Fault = HttpError | Delay | MalformedJson | BreakStream


@dataclass(frozen=True, slots=True)
class Transcription:
    """What ``/audio/transcriptions`` answers for one request: the text, and how sure
    Whisper was (reported in ``verbose_json`` segments)."""

    text: str
    avg_logprob: float = -0.2
    no_speech_prob: float = 0.01


# The first bytes of audio formats Whisper reads (ogg, wav, mp3 with ID3 or a frame
# sync, flac, webm, mp4 / m4a); anything else is "Invalid file format", as from OpenAI.
_AUDIO_MAGIC = (b"OggS", b"RIFF", b"ID3", b"\xff\xfb", b"fLaC", b"\x1aE\xdf\xa3")


@dataclass(frozen=True, slots=True)
class Pace:
    """How one answer is paced: drawn from a `LatencyProfile` per chat request."""

    first_token_s: float
    tokens_per_second: float
    tokens: int


@dataclass(frozen=True, slots=True)
class LatencyProfile:
    """A hosted model's pace, for benchmarks under real model latency.

    Per chat request: the time to the first token is log-normal (median
    `first_token_median_s`, shape `first_token_sigma`: p99 about 5x the median) and cut
    at `first_token_max_s`; the speed is uniform in `tokens_per_second`; the length is
    uniform in `reply_tokens` (at most the request's ``max_tokens``), the reply text's
    words repeated or cut to it (a word is the fake's token). Streamed answers come
    `tokens_per_chunk` words per SSE chunk at that speed, other answers whole once they
    would have finished. Draws come from one RNG seeded with `seed`, in request order.
    """

    first_token_median_s: float = 0.8
    first_token_sigma: float = 0.7
    first_token_max_s: float = 5.0
    tokens_per_second: tuple[float, float] = (30.0, 80.0)
    reply_tokens: tuple[int, int] = (50, 400)
    tokens_per_chunk: int = 4
    seed: int = 0

    def draw(self, rng: np.random.Generator) -> Pace:
        first_token = self.first_token_median_s * math.exp(
            self.first_token_sigma * rng.standard_normal()
        )
        low, high = self.reply_tokens
        return Pace(
            first_token_s=min(first_token, self.first_token_max_s),
            tokens_per_second=float(rng.uniform(*self.tokens_per_second)),
            tokens=int(rng.integers(low, high, endpoint=True)),
        )


def echo_responder(request: JSONObject) -> str:
    """The default reply: ``echo: <last user message>``."""
    for message in reversed(request.get("messages", [])):
        if isinstance(message, dict) and message.get("role") == "user":
            return f"echo: {_content_text(message.get('content'))}"
    return "echo:"


def hash_embedder(text: str, dimensions: int) -> list[float]:
    """A unit vector seeded by the text's SHA-256: equal texts, equal vectors."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(dimensions)
    unit = vector / np.linalg.norm(vector)
    return [float(x) for x in unit]


def count_tokens(text: str) -> int:
    """The fake's token count: whitespace-separated words."""
    return len(text.split())


class FakeOpenAI(LocalServer):
    """An OpenAI-compatible server on 127.0.0.1 with a free port; see the module doc."""

    def __init__(
        self,
        *,
        model: str = "fake-model",
        embedding_dimensions: int = 8,
        responder: Responder = echo_responder,
        embedder: Embedder = hash_embedder,
        latency: LatencyProfile | None = None,
    ) -> None:
        self.model = model
        self.embedding_dimensions = embedding_dimensions
        self.responder = responder
        self.embedder = embedder
        self.supports_json_schema = True
        """When false, requests with a ``json_schema`` response_format get a 400."""
        self.report_usage = True
        """When false, no usage is ever reported (like some local servers)."""
        self.chat_requests: list[JSONObject] = []
        self.chat_authorizations: list[str | None] = []
        """The Authorization header of each chat request, in order."""
        self.embedding_requests: list[JSONObject] = []
        self.chat_in_flight = 0
        """Chat requests being answered now."""
        self.vision = True
        """When false, chat requests with image content parts get a 400."""
        self.supports_verbose_json = True
        """When false, transcription requests for ``verbose_json`` get a 400."""
        self.transcription_requests: list[JSONObject] = []
        """Each transcription request's form fields, with its ``authorization`` header,
        the file's ``filename``,
        ``content_type`` and ``size`` (its bytes in ``data``)."""
        self.transcriptions_waiting = 0
        self.transcriptions_waiting_peak = 0
        """Transcription requests held by a `Delay` fault now, and at most at once."""
        self._transcripts: deque[Transcription] = deque()
        self._transcription_faults: deque[Fault] = deque()
        self._latency = latency
        self._pace_rng = np.random.default_rng(latency.seed if latency is not None else 0)
        self._replies: deque[str] = deque()
        self._faults: deque[Fault] = deque()
        super().__init__()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``; only valid while the server runs."""
        if self._port is None:
            raise RuntimeError("FakeOpenAI is not running")
        return f"http://127.0.0.1:{self._port}/v1"

    def push_reply(self, *texts: str) -> None:
        """Queue reply texts; each is used once, before `responder` is asked."""
        self._replies.extend(texts)

    def push_transcript(self, *transcripts: Transcription | str) -> None:
        """Queue what the next transcription requests hear (default: "hello from a
        recording of N bytes")."""
        self._transcripts.extend(Transcription(t) if isinstance(t, str) else t for t in transcripts)

    def push_transcription_fault(self, *faults: HttpError | Delay) -> None:
        """Queue faults for transcription requests only, one per request."""
        self._transcription_faults.extend(faults)

    def clear(self) -> None:
        """Drop scripted replies, transcripts and faults that a test left unused."""
        self._replies.clear()
        self._faults.clear()
        self._transcripts.clear()
        self._transcription_faults.clear()

    def push_fault(self, *faults: Fault) -> None:
        """Queue faults; each chat or embedding request consumes one."""
        self._faults.extend(faults)

    @property
    def pending_faults(self) -> int:
        return len(self._faults)

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_post("/v1/audio/transcriptions", self._transcriptions)
        app.router.add_get("/v1/models", self._models)
        return app

    # -- handlers ---------------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        self.chat_in_flight += 1
        try:
            return await self._answer_chat(request)
        finally:
            self.chat_in_flight -= 1

    async def _answer_chat(self, request: web.Request) -> web.StreamResponse:
        body = await _read_json(request)
        if body is None:
            return _error(400, "request body is not a JSON object")
        self.chat_requests.append(body)
        self.chat_authorizations.append(request.headers.get("Authorization"))
        streamed = body.get("stream") is True
        fault = await self._take_fault()
        if isinstance(fault, HttpError):
            return _error(fault.status, fault.message, retry_after=fault.retry_after)
        if isinstance(fault, MalformedJson):
            return _malformed()
        refused = self._image_refusal(body)
        if refused is not None:
            return _error(400, refused)
        response_format = body.get("response_format")
        if (
            isinstance(response_format, dict)
            and response_format.get("type") == "json_schema"
            and not self.supports_json_schema
        ):
            return _error(400, "response_format json_schema is not supported")
        text = self._replies.popleft() if self._replies else self.responder(body)
        pace = self._pace(body)
        if pace is not None:
            text = _sized(text, pace.tokens)
        if isinstance(fault, BreakStream):
            return await self._break(request, body, text, fault.after_chunks)
        if streamed and pace is not None:
            return await self._stream_paced(request, body, text, pace)
        if streamed:
            return await self._stream(request, body, text)
        if pace is not None:
            await self._wait(pace.first_token_s + pace.tokens / pace.tokens_per_second)
        return web.json_response(self._completion(body, text))

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        body = await _read_json(request)
        if body is None:
            return _error(400, "request body is not a JSON object")
        self.embedding_requests.append(body)
        fault = await self._take_fault()
        if isinstance(fault, HttpError):
            return _error(fault.status, fault.message, retry_after=fault.retry_after)
        if isinstance(fault, MalformedJson | BreakStream):
            return _malformed()
        raw = body.get("input")
        texts = [raw] if isinstance(raw, str) else raw
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            return _error(400, "input must be a string or a list of strings")
        dimensions = body.get("dimensions") or self.embedding_dimensions
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, text in enumerate(texts):
            vector = list(self.embedder(text, int(dimensions)))
            embedding: str | list[float] = (
                base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
                if as_base64
                else vector
            )
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(count_tokens(t) for t in texts)
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": body.get("model", self.model),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def _transcriptions(self, request: web.Request) -> web.StreamResponse:
        if not request.content_type.startswith("multipart/form-data"):
            return _error(400, "expected a multipart/form-data body")
        form = await request.post()
        fields: JSONObject = {k: v for k, v in form.items() if isinstance(v, str)}
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            return _error(400, "file is required")
        data = upload.file.read()
        upload.file.close()
        fields.update(
            filename=upload.filename,
            content_type=upload.content_type,
            size=len(data),
            data=data,
            authorization=request.headers.get("Authorization"),
        )
        self.transcription_requests.append(fields)
        fault = self._transcription_faults.popleft() if self._transcription_faults else None
        if isinstance(fault, Delay):
            self.transcriptions_waiting += 1
            self.transcriptions_waiting_peak = max(
                self.transcriptions_waiting_peak, self.transcriptions_waiting
            )
            try:
                await self._wait(fault.seconds)
            finally:
                self.transcriptions_waiting -= 1
        elif isinstance(fault, HttpError):
            return _error(fault.status, fault.message, retry_after=fault.retry_after)
        if "model" not in fields:
            return _error(400, "model is required")
        response_format = fields.get("response_format", "json")
        if response_format == "verbose_json" and not self.supports_verbose_json:
            return _error(400, "response_format 'verbose_json' is not compatible with this model")
        if not data.startswith(_AUDIO_MAGIC) and data[4:8] != b"ftyp":
            return _error(400, "Invalid file format. Supported formats: flac, mp3, mp4, ogg, wav")
        heard = (
            self._transcripts.popleft()
            if self._transcripts
            else Transcription(f"hello from a recording of {len(data)} bytes")
        )
        if response_format != "verbose_json":
            return web.json_response({"text": heard.text})
        segment = {
            "id": 0,
            "seek": 0,
            "start": 0.0,
            "end": 1.0,
            "text": heard.text,
            "tokens": [],
            "temperature": 0.0,
            "avg_logprob": heard.avg_logprob,
            "compression_ratio": 1.0,
            "no_speech_prob": heard.no_speech_prob,
        }
        return web.json_response(
            {
                "task": "transcribe",
                "language": "english",
                "duration": 1.0,
                "text": heard.text,
                "segments": [segment] if heard.text else [],
            }
        )

    def _image_refusal(self, body: JSONObject) -> str | None:
        """Why a chat request's image parts are refused, as OpenAI says it; None when
        they are fine (or there are none)."""
        for message in body.get("messages", []):
            content = message.get("content") if isinstance(message, dict) else None
            for part in content if isinstance(content, list) else ():
                if not isinstance(part, dict) or part.get("type") != "image_url":
                    continue
                if not self.vision:
                    return "Invalid content type. image_url is only supported by certain models."
                url = str((part.get("image_url") or {}).get("url", ""))
                head, _, encoded = url.partition(";base64,")
                try:
                    base64.b64decode(encoded, validate=True)
                except ValueError:
                    return "Invalid image."
                if not head.startswith("data:image/") or not encoded:
                    return "Invalid image."
        return None

    async def _models(self, request: web.Request) -> web.StreamResponse:
        model = {"id": self.model, "object": "model", "created": 0, "owned_by": "fake"}
        return web.json_response({"object": "list", "data": [model]})

    # -- helpers ----------------------------------------------------------------------

    def _pace(self, body: JSONObject) -> Pace | None:
        """This answer's pace under the latency profile (None without one)."""
        if self._latency is None:
            return None
        pace = self._latency.draw(self._pace_rng)
        max_tokens = body.get("max_tokens")
        if isinstance(max_tokens, int) and 0 < max_tokens < pace.tokens:
            pace = dataclasses.replace(pace, tokens=max_tokens)
        return pace

    async def _wait(self, seconds: float) -> None:
        """Sleep `seconds`, or less when the server shuts down."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), timeout=seconds)

    async def _take_fault(self) -> Fault | None:
        """Pop the next fault; a `Delay` is served here and then answers normally."""
        fault = self._faults.popleft() if self._faults else None
        if isinstance(fault, Delay):
            await self._wait(fault.seconds)
            return None
        return fault

    def _usage(self, body: JSONObject, text: str) -> JSONObject:
        prompt = sum(
            count_tokens(_content_text(m.get("content")))
            for m in body.get("messages", [])
            if isinstance(m, dict)
        )
        completion = count_tokens(text)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def _completion(self, body: JSONObject, text: str) -> JSONObject:
        number = len(self.chat_requests)
        return {
            "id": f"chatcmpl-fake-{number}",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", self.model),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": self._usage(body, text) if self.report_usage else None,
        }

    def _chunks(self, body: JSONObject, text: str, words_per_chunk: int = 1) -> list[JSONObject]:
        """The SSE payloads for `text`: role chunk, one chunk per `words_per_chunk`
        words, final chunk (and the usage chunk when asked for)."""
        number = len(self.chat_requests)
        model = body.get("model", self.model)

        def chunk(delta: JSONObject, finish: str | None = None) -> JSONObject:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return {
                "id": f"chatcmpl-fake-{number}",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [choice],
            }

        chunks = [chunk({"role": "assistant", "content": ""})]
        pieces = _pieces(text)
        chunks += [
            chunk({"content": "".join(pieces[i : i + words_per_chunk])})
            for i in range(0, len(pieces), words_per_chunk)
        ]
        chunks.append(chunk({}, "stop"))
        options = body.get("stream_options")
        if self.report_usage and isinstance(options, dict) and options.get("include_usage") is True:
            chunks.append(
                {
                    "id": f"chatcmpl-fake-{number}",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": model,
                    "choices": [],
                    "usage": self._usage(body, text),
                }
            )
        return chunks

    async def _stream(
        self, request: web.Request, body: JSONObject, text: str
    ) -> web.StreamResponse:
        response = await _start_sse(request)
        for payload in self._chunks(body, text):
            await response.write(_sse(payload))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _stream_paced(
        self, request: web.Request, body: JSONObject, text: str, pace: Pace
    ) -> web.StreamResponse:
        """`_stream` at `pace`: the role chunk and the first content chunk after
        `pace.first_token_s`, each next content chunk when its first token is due, the
        final chunks when the last token is. Once the server shuts down, all at once."""
        assert self._latency is not None
        per_chunk = self._latency.tokens_per_chunk
        started = asyncio.get_running_loop().time()
        response = await _start_sse(request)
        await self._wait(pace.first_token_s)
        for index, payload in enumerate(self._chunks(body, text, per_chunk)):
            # Payload 0 is the role chunk, then content chunks, then the final ones.
            tokens_before = min(max(0, index - 1) * per_chunk, pace.tokens)
            await self._sleep_until(
                started + pace.first_token_s + tokens_before / pace.tokens_per_second
            )
            await response.write(_sse(payload))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _sleep_until(self, due: float) -> None:
        """Sleep until the loop's clock reads `due`, unless the server is shutting down.

        For the short waits between chunks: a plain sleep costs far less CPU than
        `_wait`'s, which matters at thousands of chunks a second."""
        delay = due - asyncio.get_running_loop().time()
        if delay > 0 and not self._closing.is_set():
            await asyncio.sleep(delay)

    async def _break(
        self, request: web.Request, body: JSONObject, text: str, after_chunks: int
    ) -> web.StreamResponse:
        if body.get("stream") is True:
            response = await _start_sse(request)
            for payload in self._chunks(body, text)[: 1 + after_chunks]:
                await response.write(_sse(payload))
        else:
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            whole = json.dumps(self._completion(body, text)).encode()
            response.content_length = len(whole)
            await response.prepare(request)
            await response.write(whole[: len(whole) // 2])
        _drop_connection(request)
        return response


def _content_text(content: object) -> str:
    """Text of a message ``content``: a string or a list of ``{"type": "text"}`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def _sized(text: str, words: int) -> str:
    """`text`'s words repeated or cut to `words` words (unchanged when it has none)."""
    have = text.split()
    if not have:
        return text
    return " ".join((have * (words // len(have) + 1))[:words])


def _pieces(text: str) -> list[str]:
    """Split into word-sized pieces that join back to exactly `text`."""
    return re.findall(r"\s*\S+\s*", text) or ([text] if text else [])


async def _read_json(request: web.Request) -> JSONObject | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _error(status: int, message: str, *, retry_after: float | None = None) -> web.Response:
    headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
    kind = "rate_limit_error" if status == 429 else "fake_error"
    return web.json_response(
        {"error": {"message": message, "type": kind, "code": None, "param": None}},
        status=status,
        headers=headers,
    )


def _malformed() -> web.Response:
    return web.Response(
        body=b'{"id": "chatcmpl-broken", "choices": [', content_type="application/json"
    )


async def _start_sse(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    return response


def _sse(payload: JSONObject) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def _drop_connection(request: web.Request) -> None:
    """Abort the TCP connection so the client sees a truncated body."""
    transport = request.transport
    if transport is not None:
        transport.abort()
