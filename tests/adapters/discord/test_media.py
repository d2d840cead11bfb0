"""Voice messages and images through real discord.py: attachment URLs served by the fake
Discord on 127.0.0.1, the real engine, transcription and vision on the fake model."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import replace
from typing import Any

import pytest

from adapters.discord import DiscordAdapter
from core.commands.registry import COMMANDS
from core.documents import texts as doc_texts
from core.engine import Engine
from core.llm.transcription import Transcriber
from core.media import texts
from core.models import Message, MessageStatus, MessageType, Platform
from core.services import Services
from fakes.discord_gateway import FakeDiscord, user_payload
from fakes.openai_server import Delay, FakeOpenAI, HttpError
from tests.adapters.discord.conftest import deliver
from tests.adapters.telegram.media_helpers import JPEG, OGG
from tests.conftest import make_settings
from tests.core.engine_helpers import PERSONA

ALICE_ID = 5151
ALICE = user_payload(ALICE_ID, "alice")
PNG = b"\x89PNG\r\n\x1a\n" + bytes(200)

StartMedia = Callable[..., Awaitable[DiscordAdapter]]


@pytest.fixture
async def start_media(
    services: Services, fake_discord: FakeDiscord, transcriber: Transcriber
) -> AsyncIterator[StartMedia]:
    """Start an adapter whose engine transcribes and has `settings`, its file source
    registered as `bot` does."""
    async with AsyncExitStack() as stack:

        async def start(**settings: Any) -> DiscordAdapter:
            media = replace(
                services, settings=make_settings(**settings), transcriber=transcriber, files={}
            )
            adapter = DiscordAdapter(
                Engine(media, persona=PERSONA),
                token="test-token",
                commands=list(COMMANDS.values()),
                messages=services.messages,
                guild_ready_timeout=0.01,
                ready_timeout=10.0,
                clock=lambda: 0.0,
            )
            media.files[Platform.DISCORD] = adapter.files
            await adapter.start()
            stack.push_async_callback(adapter.stop)
            return adapter

        yield start


async def _conversation(services: Services) -> list[Message]:
    user = await services.users.find(f"discord:{ALICE_ID}")
    assert user is not None
    return list(reversed(await services.messages.history(user.id)))


async def test_a_voice_message_is_fetched_from_its_url_transcribed_and_answered(
    start_media: StartMedia, fake_discord: FakeDiscord, fake_llm: FakeOpenAI, services: Services
) -> None:
    adapter = await start_media()
    voice = fake_discord.attachment("voice-message.ogg", "audio/ogg", data=OGG)
    fake_llm.push_transcript("remind me about the dentist")
    await deliver(
        fake_discord,
        adapter,
        "MESSAGE_CREATE",
        fake_discord.dm_message(ALICE, "", attachments=[voice]),
    )

    dm = fake_discord.dm_channel_id(ALICE_ID)
    assert fake_discord.texts_in(dm) == ["echo: remind me about the dentist"]
    assert fake_discord.downloads == [voice["id"]]
    [sent] = fake_llm.transcription_requests
    assert (sent["filename"], sent["data"]) == ("audio.ogg", OGG)
    message, _reply = await _conversation(services)
    assert (message.message_type, message.content) == (
        MessageType.AUDIO,
        "remind me about the dentist",
    )
    assert message.attachments[0]["ref"] == voice["url"]


async def test_an_image_goes_to_a_vision_model_with_its_caption(
    start_media: StartMedia, fake_discord: FakeDiscord, fake_llm: FakeOpenAI, services: Services
) -> None:
    adapter = await start_media(llm_vision=True)
    image = fake_discord.attachment("cake.png", "image/png", data=PNG)
    fake_llm.push_reply("A chocolate birthday cake with candles.", "Happy birthday!")
    message = fake_discord.dm_message(ALICE, "baked this today", attachments=[image])
    await deliver(fake_discord, adapter, "MESSAGE_CREATE", message)

    assert fake_discord.texts_in(fake_discord.dm_channel_id(ALICE_ID)) == ["Happy birthday!"]
    _describe, answer = fake_llm.chat_requests
    parts = answer["messages"][-1]["content"]
    assert parts[0] == {
        "type": "text",
        "text": "[Photo: A chocolate birthday cake with candles.]\nbaked this today",
    }
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,")
    stored, _reply = await _conversation(services)
    assert stored.message_type is MessageType.PHOTO


async def test_retry_answers_a_described_photo_whose_link_has_expired(
    start_media: StartMedia, fake_discord: FakeDiscord, fake_llm: FakeOpenAI, services: Services
) -> None:
    adapter = await start_media(llm_vision=True)
    dm = fake_discord.dm_channel_id(ALICE_ID)
    image = fake_discord.attachment("cake.png", "image/png", data=PNG)
    fake_llm.push_reply("A chocolate birthday cake with candles.")
    fake_llm.push_fault(Delay(0), HttpError(500))  # described, then the answer fails
    message = fake_discord.dm_message(ALICE, "baked this today", attachments=[image])
    await deliver(fake_discord, adapter, "MESSAGE_CREATE", message)
    assert len(fake_discord.texts_in(dm)) == 1  # the apology
    fake_discord.expire(image)
    fake_llm.push_reply("Happy birthday!")
    await deliver(fake_discord, adapter, "MESSAGE_CREATE", fake_discord.dm_message(ALICE, "/retry"))

    assert fake_discord.texts_in(dm)[-1] == "Happy birthday!"
    assert fake_discord.downloads == [image["id"], image["id"]]
    prompt = fake_llm.chat_requests[-1]["messages"][-1]
    assert prompt["content"] == "[Photo: A chocolate birthday cake with candles.]\nbaked this today"
    stored, reply = await _conversation(services)
    assert stored.status is MessageStatus.ANSWERED
    assert reply.context_snapshot is not None
    assert reply.context_snapshot["attachments"][0]["used_as"] == "description"


async def test_an_attachment_gone_or_too_large_gets_a_clear_answer(
    start_media: StartMedia, fake_discord: FakeDiscord, fake_llm: FakeOpenAI, services: Services
) -> None:
    adapter = await start_media(llm_vision=True)
    dm = fake_discord.dm_channel_id(ALICE_ID)
    huge = fake_discord.attachment("long.ogg", "audio/ogg", size=26 * 1024 * 1024, data=OGG)
    await deliver(
        fake_discord,
        adapter,
        "MESSAGE_CREATE",
        fake_discord.dm_message(ALICE, "", attachments=[huge]),
    )
    assert fake_discord.texts_in(dm) == [texts.TOO_LARGE.format(size="26.0 MB", limit="20.0 MB")]
    assert fake_discord.downloads == []  # refused from the metadata alone

    gone = fake_discord.attachment("photo.jpg", "image/jpeg", size=len(JPEG))  # no content: 404
    await deliver(
        fake_discord,
        adapter,
        "MESSAGE_CREATE",
        fake_discord.dm_message(ALICE, "", attachments=[gone]),
    )
    assert fake_discord.texts_in(dm)[1] == texts.DOWNLOAD_FAILED_PHOTO
    [stored] = await _conversation(services)
    assert (stored.status, stored.content) == (MessageStatus.FAILED, "[Photo]")

    # The CDN drops the connection (no HTTP status at all): the same clear answer.
    reset = fake_discord.attachment("note.ogg", "audio/ogg", size=len(OGG), reset=True)
    await deliver(
        fake_discord,
        adapter,
        "MESSAGE_CREATE",
        fake_discord.dm_message(ALICE, "", attachments=[reset]),
    )
    assert fake_discord.texts_in(dm)[2] == texts.DOWNLOAD_FAILED_VOICE
    assert [m.status for m in await _conversation(services)] == [MessageStatus.FAILED] * 2
    assert fake_llm.chat_requests == []


async def test_a_text_file_is_kept_as_a_document_and_recalled_for_a_later_question(
    start_media: StartMedia, fake_discord: FakeDiscord, fake_llm: FakeOpenAI, services: Services
) -> None:
    adapter = await start_media()
    dm = fake_discord.dm_channel_id(ALICE_ID)
    notes = (
        b"Car notes. The winter tyres are stored in the garage of my brother. The next "
        b"service of the car is due in October, at the garage on Mill Street."
    )
    text_file = fake_discord.attachment("car.txt", "text/plain; charset=utf-8", data=notes)
    await deliver(
        fake_discord,
        adapter,
        "MESSAGE_CREATE",
        fake_discord.dm_message(ALICE, "", attachments=[text_file]),
    )
    assert fake_discord.texts_in(dm) == [
        doc_texts.KEPT.format(filename="car.txt", parts="1 passage")
    ]
    assert fake_discord.downloads == [text_file["id"]]
    question = fake_discord.dm_message(ALICE, "where are my winter tyres?")
    await deliver(fake_discord, adapter, "MESSAGE_CREATE", question)

    assert fake_discord.texts_in(dm)[1] == "echo: where are my winter tyres?"
    system = fake_llm.chat_requests[-1]["messages"][0]["content"]
    assert 'from "car.txt"' in system and "garage of my brother" in system
    document, _question, _reply = await _conversation(services)
    assert (document.message_type, document.status) == (
        MessageType.DOCUMENT,
        MessageStatus.ANSWERED,
    )
    assert document.attachments[0]["ref"] == text_file["url"]


async def test_a_file_of_a_kind_not_kept_is_refused_before_download(
    start_media: StartMedia, fake_discord: FakeDiscord, services: Services
) -> None:
    adapter = await start_media()
    archive = fake_discord.attachment("photos.zip", "application/zip", data=b"PK\x03\x04")
    await deliver(
        fake_discord,
        adapter,
        "MESSAGE_CREATE",
        fake_discord.dm_message(ALICE, "", attachments=[archive]),
    )
    assert fake_discord.texts_in(fake_discord.dm_channel_id(ALICE_ID)) == [
        doc_texts.UNSUPPORTED.format(filename="photos.zip")
    ]
    assert fake_discord.downloads == []
    assert await services.users.find(f"discord:{ALICE_ID}") is None  # nothing stored
