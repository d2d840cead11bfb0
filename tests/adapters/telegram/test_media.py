"""Voice notes and photos end to end: real python-telegram-bot against the fake Bot API
(getFile and the file download), the real engine on the test database, the real openai
SDK against the fake model server (transcriptions, image content parts)."""

from __future__ import annotations

from typing import Any

from core.llm.transcription import Transcriber
from core.media import texts
from core.media.prepare import PHOTO_TAG
from core.models import MessageStatus, MessageType
from core.services import Services
from fakes.openai_server import Delay, FakeOpenAI, HttpError, Transcription
from fakes.telegram_api import FakeTelegram, wait_until
from tests.adapters.telegram.media_helpers import JPEG, OGG, conversation, media_bot

MB = 1024 * 1024


def _voice(tg: FakeTelegram, file_id: str, **fields: Any) -> dict[str, Any]:
    return {**tg.file_json(file_id), "duration": 3, "mime_type": "audio/ogg", **fields}


def _photo(tg: FakeTelegram, file_id: str) -> list[dict[str, Any]]:
    thumb = {"file_id": "thumb", "file_unique_id": "ut", "width": 90, "height": 60}
    return [thumb, {**tg.file_json(file_id), "width": 1280, "height": 960}]


async def test_a_voice_note_is_transcribed_stored_as_voice_and_answered_like_text(
    services: Services, tg: FakeTelegram, fake_llm: FakeOpenAI, transcriber: Transcriber
) -> None:
    file_id = tg.add_file(OGG)
    fake_llm.push_transcript("please water the tomatoes tomorrow")
    async with media_bot(services, tg, transcriber):
        tg.push_message(user_id=2001, voice=_voice(tg, file_id))
        await wait_until(lambda: tg.texts(2001) == ["echo: please water the tomatoes tomorrow"])

    assert [c.params["file_id"] for c in tg.calls_to("getFile")] == [file_id]
    assert tg.downloads == ["voice/file_1"]
    [sent] = fake_llm.transcription_requests
    assert (sent["model"], sent["filename"], sent["content_type"]) == (
        "whisper-1",
        "voice.ogg",
        "audio/ogg",
    )
    assert sent["data"] == OGG
    message, reply = await conversation(services, 2001)
    assert message.message_type is MessageType.VOICE
    assert message.content == "please water the tomatoes tomorrow"
    assert message.status is MessageStatus.ANSWERED
    # Metadata and what was made of it; never the audio.
    assert message.attachments == (
        {
            "kind": "voice",
            "mime_type": "audio/ogg",
            "size": len(OGG),
            "ref": file_id,
            "transcript": "please water the tomatoes tomorrow",
        },
    )
    assert reply.context_snapshot is not None
    assert reply.context_snapshot["attachments"] == [
        {"message_id": message.id, "kind": "voice", "used_as": "transcript"}
    ]
    hits = await services.messages.search(message.user_id, "tomatoes")
    assert message.id in [h.message.id for h in hits]


async def test_what_was_heard_is_shown_when_unclear_and_nothing_heard_is_said(
    services: Services, tg: FakeTelegram, fake_llm: FakeOpenAI, transcriber: Transcriber
) -> None:
    fake_llm.push_transcript(Transcription("maybe the tomatoes", avg_logprob=-1.6), "")
    async with media_bot(services, tg, transcriber):
        tg.push_message(user_id=2002, voice=_voice(tg, tg.add_file(OGG)))
        await wait_until(lambda: len(tg.texts(2002)) == 2)
        tg.push_message(user_id=2002, voice=_voice(tg, tg.add_file(OGG)))
        await wait_until(lambda: len(tg.texts(2002)) == 3)

    assert tg.texts(2002) == [
        texts.HEARD.format(text="maybe the tomatoes"),
        "echo: maybe the tomatoes",
        texts.NOTHING_HEARD,
    ]
    statuses = [m.status for m in await conversation(services, 2002) if m.status is not None]
    assert statuses == [MessageStatus.ANSWERED, MessageStatus.FAILED]


async def test_voice_notes_are_made_into_text_within_the_model_cap(
    services: Services, tg: FakeTelegram, fake_llm: FakeOpenAI, transcriber: Transcriber
) -> None:
    """Downloads and transcriptions hold files in memory: they take a model slot
    (LLM_MAX_CONCURRENCY) like a reply does."""
    fake_llm.push_transcription_fault(*(Delay(0.3) for _ in range(3)))
    async with media_bot(services, tg, transcriber, llm_max_concurrency=1):
        for person in (2021, 2022, 2023):
            tg.push_message(user_id=person, voice=_voice(tg, tg.add_file(OGG)))
        await wait_until(lambda: all(len(tg.texts(p)) == 1 for p in (2021, 2022, 2023)))
    assert fake_llm.transcriptions_waiting_peak == 1
    assert all(
        tg.texts(p)[0].startswith("echo: hello from a recording") for p in (2021, 2022, 2023)
    )


async def test_an_endpoint_without_verbose_json_is_asked_for_json(
    services: Services, tg: FakeTelegram, fake_llm: FakeOpenAI, transcriber: Transcriber
) -> None:
    fake_llm.supports_verbose_json = False
    fake_llm.push_transcript("first", "second")
    async with media_bot(services, tg, transcriber):
        tg.push_message(user_id=2003, voice=_voice(tg, tg.add_file(OGG)))
        await wait_until(lambda: tg.texts(2003) == ["echo: first"])
        tg.push_message(user_id=2003, voice=_voice(tg, tg.add_file(OGG)))
        await wait_until(lambda: tg.texts(2003) == ["echo: first", "echo: second"])
    formats = [r.get("response_format") for r in fake_llm.transcription_requests]
    assert formats == ["verbose_json", "json", "json"]  # refused once, remembered


async def test_a_failed_transcription_keeps_the_message_and_retry_answers_it(
    services: Services, tg: FakeTelegram, fake_llm: FakeOpenAI, transcriber: Transcriber
) -> None:
    fake_llm.push_transcription_fault(HttpError(500))
    fake_llm.push_transcript("call the plumber")
    async with media_bot(services, tg, transcriber):
        tg.push_message(user_id=2004, voice=_voice(tg, tg.add_file(OGG)))
        await wait_until(lambda: tg.texts(2004) == [texts.TRANSCRIPTION_FAILED])
        [stored] = await conversation(services, 2004)
        assert (stored.status, stored.message_type) == (MessageStatus.FAILED, MessageType.VOICE)
        tg.push_message("/retry", user_id=2004)
        await wait_until(lambda: len(tg.texts(2004)) == 2)
    assert tg.texts(2004)[1] == "echo: call the plumber"
    message, _reply = await conversation(services, 2004)
    assert (message.id, message.status) == (stored.id, MessageStatus.ANSWERED)


async def test_a_damaged_recording_and_a_slow_transcription_get_clear_answers(
    services: Services, tg: FakeTelegram, fake_llm: FakeOpenAI, transcriber: Transcriber
) -> None:
    async with media_bot(services, tg, transcriber, reply_deadline_seconds=0.5):
        tg.push_message(user_id=2005, voice=_voice(tg, tg.add_file(b"not a recording")))
        await wait_until(lambda: tg.texts(2005) == [texts.CORRUPT_AUDIO])
        fake_llm.push_transcription_fault(Delay(3))
        tg.push_message(user_id=2005, voice=_voice(tg, tg.add_file(OGG)))
        await wait_until(lambda: len(tg.texts(2005)) == 2, within=5)
    assert tg.texts(2005)[1] == texts.TOO_SLOW_VOICE
    statuses = [m.status for m in await conversation(services, 2005)]
    assert statuses == [MessageStatus.FAILED, MessageStatus.FAILED]


async def test_files_too_large_are_refused_before_download_or_when_telegram_says_so(
    services: Services, tg: FakeTelegram, fake_llm: FakeOpenAI, transcriber: Transcriber
) -> None:
    said_large = tg.add_file(OGG, size=30 * MB)
    async with media_bot(services, tg, transcriber):
        tg.push_message(user_id=2006, voice=_voice(tg, said_large))
        await wait_until(lambda: len(tg.texts(2006)) == 1)
    assert tg.texts(2006) == [texts.TOO_LARGE.format(size="30.0 MB", limit="20.0 MB")]
    assert tg.calls_to("getFile") == [] and fake_llm.transcription_requests == []
    assert await conversation(services, 2006) == []  # refused, not stored

    # Above the Bot API's 20 MB but within ours: Telegram refuses it in getFile.
    async with media_bot(services, tg, transcriber, media_max_bytes=50 * MB):
        tg.push_message(user_id=2007, voice=_voice(tg, tg.add_file(OGG, size=25 * MB)))
        await wait_until(lambda: len(tg.texts(2007)) == 1)
    assert tg.texts(2007) == [texts.TOO_LARGE_UNSIZED.format(limit="50.0 MB")]
    [stored] = await conversation(services, 2007)
    assert stored.status is MessageStatus.FAILED


async def test_a_photo_is_described_once_sent_as_an_image_and_found_later(
    services: Services, tg: FakeTelegram, fake_llm: FakeOpenAI
) -> None:
    file_id = tg.add_file(JPEG, folder="photos")
    fake_llm.push_reply("A vegetable garden with tomato plants.", "What a lovely garden!")
    async with media_bot(services, tg, None, llm_vision=True):
        tg.push_message(user_id=2008, photo=_photo(tg, file_id), caption="my garden in June")
        await wait_until(lambda: tg.texts(2008) == ["What a lovely garden!"])

    describe, answer = fake_llm.chat_requests
    assert describe.get("stream") is not True
    image = describe["messages"][-1]["content"][1]
    assert image["type"] == "image_url"
    assert image["image_url"]["url"].startswith("data:image/jpeg;base64,")
    made = f"[{PHOTO_TAG}: A vegetable garden with tomato plants.]\nmy garden in June"
    assert answer["messages"][-1]["content"] == [
        {"type": "text", "text": made},
        {"type": "image_url", "image_url": image["image_url"]},
    ]
    message, reply = await conversation(services, 2008)
    assert (message.message_type, message.content) == (MessageType.PHOTO, made)
    assert message.attachments[0]["description"] == "A vegetable garden with tomato plants."
    assert reply.context_snapshot is not None
    assert reply.context_snapshot["attachments"] == [
        {"message_id": message.id, "kind": "photo", "used_as": "image"}
    ]
    [hit] = await services.messages.search(message.user_id, "tomato garden")
    assert hit.message.id == message.id  # the description is what it was found by
    async with services.db.connection() as conn:
        embedded = await conn.fetchval(
            "SELECT embedding IS NOT NULL FROM messages WHERE id = $1", message.id
        )
    assert embedded


async def test_without_vision_a_photo_is_read_by_its_caption_and_the_person_told(
    services: Services, tg: FakeTelegram, fake_llm: FakeOpenAI
) -> None:
    async with media_bot(services, tg, None):
        tg.push_message(user_id=2009, photo=_photo(tg, tg.add_file(JPEG)), caption="my cat")
        await wait_until(lambda: len(tg.texts(2009)) == 2)
        tg.push_message(user_id=2009, photo=_photo(tg, tg.add_file(JPEG)))
        await wait_until(lambda: len(tg.texts(2009)) == 3)
    assert tg.texts(2009) == [texts.CAPTION_ONLY, "echo: my cat", texts.NO_VISION]
    assert tg.calls_to("getFile") == []
    [request] = fake_llm.chat_requests
    assert request["messages"][-1]["content"] == "my cat"
    message, reply = await conversation(services, 2009)
    assert message.message_type is MessageType.PHOTO
    assert reply.context_snapshot is not None
    assert reply.context_snapshot["attachments"][0]["used_as"] == "caption"


async def test_a_vision_failure_keeps_the_photo_and_retry_answers_it(
    services: Services, tg: FakeTelegram, fake_llm: FakeOpenAI
) -> None:
    fake_llm.vision = False  # the model behind LLM_VISION=true refuses images
    async with media_bot(services, tg, None, llm_vision=True):
        tg.push_message(user_id=2010, photo=_photo(tg, tg.add_file(b"\x00garbage")))
        await wait_until(lambda: tg.texts(2010) == [texts.CORRUPT_IMAGE])
        assert fake_llm.chat_requests == []  # a damaged file never reaches the model
        tg.push_message(user_id=2010, photo=_photo(tg, tg.add_file(JPEG)))
        await wait_until(lambda: len(tg.texts(2010)) == 2)
        assert tg.texts(2010)[1] == texts.VISION_FAILED
        fake_llm.vision = True
        fake_llm.push_reply("A red bicycle.", "Nice bike!")
        tg.push_message("/retry", user_id=2010)
        await wait_until(lambda: len(tg.texts(2010)) == 3)
    assert tg.texts(2010)[2] == "Nice bike!"
    # The damaged one stays in the window as a photo, and the answer answers it too.
    assert fake_llm.chat_requests[-1]["messages"][1]["content"] == "[Photo]"
    statuses = [m.status for m in await conversation(services, 2010) if m.status is not None]
    assert statuses == [MessageStatus.ANSWERED, MessageStatus.ANSWERED]


async def test_unknown_kinds_of_message_get_a_clear_answer(
    services: Services, tg: FakeTelegram, transcriber: Transcriber
) -> None:
    async with media_bot(services, tg, transcriber, llm_vision=True):
        tg.push_message(user_id=2011, location={"latitude": 1.5, "longitude": 2.5})
        await wait_until(lambda: len(tg.texts(2011)) == 1)
    assert tg.texts(2011) == [texts.UNSUPPORTED_KIND]
    assert await conversation(services, 2011) == []
