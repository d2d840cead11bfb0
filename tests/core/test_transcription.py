"""`Transcriber` through the real openai SDK against the fake `/audio/transcriptions`."""

from __future__ import annotations

import pytest

from bot.services import _transcriber
from core.llm.errors import LLMError, LLMRateLimited, LLMUnavailable
from core.llm.transcription import Transcriber
from fakes.openai_server import FakeOpenAI, HttpError, Transcription
from tests.conftest import make_settings

OGG = b"OggS" + bytes(64)


async def test_a_transcript_is_sure_or_unclear_as_whisper_says(
    transcriber: Transcriber, fake_llm: FakeOpenAI
) -> None:
    fake_llm.push_transcript(
        Transcription(" clear words "),
        Transcription("mumble", no_speech_prob=0.9),
        Transcription("guess", avg_logprob=-1.3),
    )
    heard = [
        await transcriber.transcribe(OGG, filename="voice.ogg", mime_type="audio/ogg")
        for _ in range(3)
    ]
    assert [(t.text, t.unclear) for t in heard] == [
        ("clear words", False),
        ("mumble", True),
        ("guess", True),
    ]
    assert fake_llm.transcription_requests[0]["model"] == "whisper-1"


@pytest.mark.parametrize(
    ("fault", "error", "status"),
    [
        (HttpError(429), LLMRateLimited, 429),
        (HttpError(503), LLMUnavailable, 503),
        (HttpError(400, message="Invalid file format."), LLMError, 400),
    ],
)
async def test_failures_surface_as_llm_errors_without_the_key(
    transcriber: Transcriber,
    fake_llm: FakeOpenAI,
    fault: HttpError,
    error: type[LLMError],
    status: int,
) -> None:
    fake_llm.push_transcription_fault(fault)
    with pytest.raises(error) as raised:
        await transcriber.transcribe(OGG, filename="voice.ogg", mime_type="audio/ogg")
    assert type(raised.value) is error
    assert raised.value.status_code == status
    assert "sk-test-secret" not in str(raised.value)


async def test_an_unreachable_endpoint_is_unavailable() -> None:
    client = Transcriber(base_url="http://127.0.0.1:9/v1", api_key=None, model="m", max_retries=0)
    with pytest.raises(LLMUnavailable):
        await client.transcribe(OGG, filename="voice.ogg", mime_type="audio/ogg")
    await client.aclose()


async def test_the_transcription_endpoint_defaults_to_the_chat_endpoint(
    fake_llm: FakeOpenAI,
) -> None:
    assert _transcriber(make_settings()) is None
    settings = make_settings(
        openai_base_url=fake_llm.base_url, openai_api_key="sk-chat", transcription_model="w"
    )
    client = _transcriber(settings)
    assert client is not None
    fake_llm.push_transcript("through the chat endpoint")
    heard = await client.transcribe(OGG, filename="voice.ogg", mime_type="audio/ogg")
    await client.aclose()
    assert heard.text == "through the chat endpoint"
    elsewhere = _transcriber(
        make_settings(
            openai_base_url=fake_llm.base_url,
            transcription_model="w",
            transcription_base_url="http://127.0.0.1:9/v1",
        )
    )
    assert elsewhere is not None
    with pytest.raises(LLMUnavailable):
        await elsewhere.transcribe(OGG, filename="voice.ogg", mime_type="audio/ogg")
    await elsewhere.aclose()


async def test_the_chat_key_never_goes_to_another_transcription_host(
    fake_llm: FakeOpenAI,
) -> None:
    async with FakeOpenAI() as local_whisper:
        for own_key, sent in ((None, "Bearer not-needed"), ("sk-whisper", "Bearer sk-whisper")):
            client = _transcriber(
                make_settings(
                    openai_base_url=fake_llm.base_url,
                    openai_api_key="sk-chat",
                    transcription_model="w",
                    transcription_base_url=local_whisper.base_url,
                    transcription_api_key=own_key,
                )
            )
            assert client is not None
            await client.transcribe(OGG, filename="voice.ogg", mime_type="audio/ogg")
            await client.aclose()
            assert local_whisper.transcription_requests[-1]["authorization"] == sent
    assert fake_llm.transcription_requests == []
