"""MEDIA_KEEP_AUDIO end to end: real python-telegram-bot against the fake Bot API, the
real engine on the test database, the real openai SDK against the fake transcription
endpoint; the recording kept (or not) and in `/export` sent through `sendDocument`."""

from __future__ import annotations

import base64
import gzip
import json
import random
import re
from typing import Any

from core.llm.transcription import Transcriber
from core.media.kept_audio import kept_audio_max_bytes
from core.services import Services
from core.storage.message_audio import MessageAudioRepository
from fakes.openai_server import FakeOpenAI
from fakes.telegram_api import FakeTelegram, wait_until
from tests.adapters.telegram.media_helpers import OGG, conversation, media_bot
from tests.conftest import make_settings


def _voice(tg: FakeTelegram, data: bytes, mime_type: str = "audio/ogg") -> dict[str, Any]:
    return {**tg.file_json(tg.add_file(data)), "duration": 3, "mime_type": mime_type}


def _recording(size: int, seed: int) -> bytes:
    """A voice note of `size` bytes that compresses no better than a real one."""
    return OGG[:6] + random.Random(seed).randbytes(size - 6)


def _exported_messages(tg: FakeTelegram, max_bytes: int) -> list[dict[str, Any]]:
    """The messages of the export the bot sent, from however many files, each checked
    to be no larger than `max_bytes`."""
    messages: list[dict[str, Any]] = []
    for call in tg.calls_to("sendDocument"):
        name, data = call.files["document"]
        assert len(data) <= max_bytes, (name, len(data))
        document = json.loads(gzip.decompress(data) if name.endswith(".gz") else data)
        messages += document.get("messages", [])
    return messages


def _all_parts_sent(tg: FakeTelegram) -> bool:
    """The export's files are all sent: as many as its first file's caption says."""
    calls = tg.calls_to("sendDocument")
    if not calls:
        return False
    match = re.search(r"part 1 of (\d+)", str(calls[0].params.get("caption", "")))
    return len(calls) == (int(match[1]) if match else 1)


async def test_with_the_setting_on_a_voice_note_is_kept_and_exported(
    services: Services, tg: FakeTelegram, fake_llm: FakeOpenAI, transcriber: Transcriber
) -> None:
    fake_llm.push_transcript("buy oat milk", "and bread")
    async with media_bot(services, tg, transcriber, media_keep_audio=True) as media:
        tg.push_message(user_id=3001, voice=_voice(tg, OGG))
        await wait_until(lambda: tg.texts(3001) == ["echo: buy oat milk"])
        tg.push_message(user_id=3001, voice=_voice(tg, OGG + b"more", "audio/mpeg"))
        await wait_until(lambda: len(tg.texts(3001)) == 2)
        tg.push_message("/export", user_id=3001)
        await wait_until(lambda: len(tg.calls_to("sendDocument")) == 1)
        max_bytes = media.settings.export_max_bytes

    first, _, second, _ = await conversation(services, 3001)
    kept = await MessageAudioRepository(services.db).of_user(first.user_id)
    assert [(a.message_id, a.mime_type, a.data) for a in kept] == [
        (first.id, "audio/ogg", OGG),
        (second.id, "audio/mpeg", OGG + b"more"),
    ]
    exported = {m["id"]: m for m in _exported_messages(tg, max_bytes)}
    audio = exported[first.id]["audio"]
    assert (audio["mime_type"], base64.b64decode(audio["data_base64"])) == ("audio/ogg", OGG)
    assert exported[first.id]["content"] == "buy oat milk"
    assert base64.b64decode(exported[second.id]["audio"]["data_base64"]) == OGG + b"more"
    # Replies have no recording.
    assert [m["id"] for m in exported.values() if "audio" in m] == [first.id, second.id]


async def test_with_the_setting_off_nothing_but_the_transcript_is_kept(
    services: Services, tg: FakeTelegram, fake_llm: FakeOpenAI, transcriber: Transcriber
) -> None:
    fake_llm.push_transcript("buy oat milk")
    async with media_bot(services, tg, transcriber):
        tg.push_message(user_id=3002, voice=_voice(tg, OGG))
        await wait_until(lambda: tg.texts(3002) == ["echo: buy oat milk"])
        tg.push_message("/export", user_id=3002)
        await wait_until(lambda: len(tg.calls_to("sendDocument")) == 1)

    message, _ = await conversation(services, 3002)
    assert message.content == "buy oat milk"
    assert await MessageAudioRepository(services.db).of_user(message.user_id) == []
    async with services.db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM message_audio") == 0
    assert all("audio" not in m for m in _exported_messages(tg, 8 * 1024 * 1024))


async def test_a_recording_too_large_to_export_is_transcribed_but_not_kept(
    services: Services, tg: FakeTelegram, fake_llm: FakeOpenAI, transcriber: Transcriber
) -> None:
    """Kept recordings are bounded by what one export file can hold: every file of the
    export stays within EXPORT_MAX_BYTES, even when every kept recording is as large as
    may be kept."""
    settings: dict[str, Any] = {
        "media_keep_audio": True,
        "export_max_bytes": 64 * 1024,
        "limits": {"max_message_chars": 500},
    }
    limit = kept_audio_max_bytes(make_settings(**settings))
    assert 0 < limit < 64 * 1024 * 3 // 4
    sizes = [limit + 1, limit, limit, 1000]
    fake_llm.push_transcript("too long", "just fits", "fits again", "short")
    async with media_bot(services, tg, transcriber, **settings):
        for n, size in enumerate(sizes):
            tg.push_message(user_id=3003, voice=_voice(tg, _recording(size, n)))
            await wait_until(lambda n=n: len(tg.texts(3003)) == n + 1)  # type: ignore[misc]
        tg.push_message("/export", user_id=3003)
        await wait_until(lambda: _all_parts_sent(tg))

    assert tg.texts(3003)[:4] == [
        "echo: too long",
        "echo: just fits",
        "echo: fits again",
        "echo: short",
    ]
    messages = [m for m in await conversation(services, 3003) if m.role.value == "user"]
    kept = await MessageAudioRepository(services.db).of_user(messages[0].user_id)
    assert [a.message_id for a in kept] == [m.id for m in messages[1:]]
    assert [len(a.data) for a in kept] == sizes[1:]
    exported = _exported_messages(tg, 64 * 1024)
    assert len(tg.calls_to("sendDocument")) > 2  # in parts: the bound was needed
    with_audio = {
        m["id"]: base64.b64decode(m["audio"]["data_base64"]) for m in exported if "audio" in m
    }
    assert with_audio == {a.message_id: a.data for a in kept}
