"""`Transcriber`: speech to text through an OpenAI-compatible ``/audio/transcriptions``
endpoint (OpenAI's whisper-1 or gpt-4o-transcribe, or a local Whisper-compatible server).

The transcript is asked for as ``verbose_json`` first: Whisper's segments say how sure
it was (average log-probability, probability of no speech), which is what tells an
unclear recording apart (Whisper's own thresholds, -1.0 and 0.6). Endpoints that refuse
that format (gpt-4o-transcribe answers 400) are asked for plain ``json`` from then on,
and their transcripts are never called unclear. Retries belong to the openai SDK, as
for chat; failures surface as `core.llm.errors` types.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import openai
from openai import AsyncOpenAI
from openai.types.audio import TranscriptionVerbose

from core.llm.client import DEFAULT_BASE_URL, sdk_error
from core.llm.errors import LLMBadResponse, LLMError

logger = logging.getLogger(__name__)

# Whisper's defaults for a segment it is unsure of (`logprob_threshold`,
# `no_speech_threshold` in openai-whisper's `transcribe`).
UNSURE_LOGPROB = -1.0
NO_SPEECH = 0.6
_REFUSED_FORMAT_STATUSES = frozenset({400, 422})


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    unclear: bool
    """The model was unsure of some of it, or heard mostly no speech."""


class Transcriber:
    """One transcription model behind one OpenAI-compatible base URL (None: OpenAI).
    Use as ``async with`` or call `aclose`."""

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str | None,
        model: str,
        timeout: float = 60.0,
        max_retries: int = 2,
    ) -> None:
        self._model = model
        self._timeout = timeout
        self._verbose = True
        self._api_key = api_key or "not-needed"
        # Both given explicitly, so the SDK never reads the environment.
        self._sdk = AsyncOpenAI(
            base_url=base_url or DEFAULT_BASE_URL,
            api_key=self._api_key,
            timeout=timeout,
            max_retries=max_retries,
        )

    @property
    def model(self) -> str:
        return self._model

    async def aclose(self) -> None:
        await self._sdk.close()

    async def transcribe(self, audio: bytes, *, filename: str, mime_type: str) -> Transcript:
        """What was said in `audio`. The endpoint tells the format by `filename`'s
        extension (OpenAI: flac, mp3, mp4, mpeg, mpga, m4a, ogg, wav, webm)."""
        file = (filename, audio, mime_type)
        if self._verbose:
            try:
                verbose = await self._sdk.audio.transcriptions.create(
                    model=self._model, file=file, response_format="verbose_json"
                )
            except openai.APIStatusError as exc:
                if exc.status_code not in _REFUSED_FORMAT_STATUSES or not _names_format(exc):
                    raise self._error(exc) from exc
                self._verbose = False
                logger.info(
                    "transcription model %s refused verbose_json (HTTP %s); asking for json",
                    self._model,
                    exc.status_code,
                )
            except (openai.OpenAIError, ValueError) as exc:
                raise self._error(exc) from exc
            else:
                return _from_verbose(verbose)
        try:
            plain = await self._sdk.audio.transcriptions.create(
                model=self._model, file=file, response_format="json"
            )
        except (openai.OpenAIError, ValueError) as exc:
            raise self._error(exc) from exc
        if not isinstance(plain.text, str):
            raise LLMBadResponse(f"transcription model {self._model} sent no text")
        return Transcript(plain.text.strip(), unclear=False)

    def _error(self, exc: BaseException) -> LLMError:
        return sdk_error(
            exc,
            f"transcription with model {self._model}",
            timeout=self._timeout,
            api_key=self._api_key,
        )


def _names_format(exc: openai.APIStatusError) -> bool:
    """Whether a refusal is about the response format (not about the audio)."""
    return "response_format" in str(exc.body) or "verbose_json" in str(exc.body)


def _from_verbose(result: TranscriptionVerbose) -> Transcript:
    text = result.text.strip() if isinstance(result.text, str) else ""
    segments = result.segments or []
    unclear = any(s.avg_logprob < UNSURE_LOGPROB or s.no_speech_prob > NO_SPEECH for s in segments)
    return Transcript(text, unclear=unclear)
