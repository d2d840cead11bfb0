"""Generated voice notes, photos and files through both real libraries: damaged or
random bytes, sizes that lie, files that are gone, transcriptions that fail or hear
nothing, with and without transcription and vision configured.

After every example: nothing was logged at ERROR, and every message got a clear answer:
refused with a notice and not stored, or stored and then answered, or stored, left
failed (for /retry) and the person told why. Nothing the bot said is anything else.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.discord import DiscordAdapter
from core.commands.registry import COMMANDS
from core.documents import texts as doc_texts
from core.engine import Engine
from core.llm.transcription import Transcriber
from core.media import texts
from core.models import Platform
from core.services import Services
from core.storage.database import Pool
from fakes.discord_gateway import FakeDiscord, user_payload
from fakes.openai_server import FakeOpenAI, HttpError
from fakes.telegram_api import FakeTelegram, message, wait_until
from tests.adapters.discord.conftest import eventually
from tests.adapters.telegram.helpers import make_adapter, running
from tests.core.engine_helpers import PERSONA
from tests.security.conftest import ErrorLog, PooledServices

MB = 1024 * 1024
_ids = itertools.count(8_000_000)
_MAGIC = [b"", b"OggS", b"ID3", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF8"]
_CONTENT = st.builds(
    lambda magic, rest: magic + rest, st.sampled_from(_MAGIC), st.binary(max_size=48)
)
_ALPHABET = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
_CAPTION = st.one_of(st.none(), st.text(_ALPHABET, max_size=40))
_HEARD = st.one_of(st.text(_ALPHABET, max_size=40), st.just(""), st.just("<fault>"))

_REFUSALS = {texts.NO_TRANSCRIPTION, texts.NO_VISION, texts.UNSUPPORTED_KIND}
_REFUSALS |= {doc_texts.UNSUPPORTED.format(filename=name) for name in ("mystery",)}
_FAILURES = {
    texts.NOTHING_HEARD,
    texts.TRANSCRIPTION_FAILED,
    texts.CORRUPT_AUDIO,
    texts.CORRUPT_IMAGE,
    texts.VISION_FAILED,
    texts.DOWNLOAD_FAILED_PHOTO,
    texts.DOWNLOAD_FAILED_VOICE,
    texts.DOWNLOAD_FAILED_DOCUMENT,
}
# Documents of random bytes: a "PDF" without its header is damaged.
_FAILURES |= {doc_texts.CORRUPT.format(filename="notes.pdf")}
_TOO_LARGE = (texts.TOO_LARGE.split("(")[0], doc_texts.TOO_LARGE.split("{")[0])

# Both platforms' generated cases: a dozen examples each, the same every run.
_GENERATED = settings(
    max_examples=12,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _kind_of(text: str) -> str:
    """What one thing the bot said is: a reply, a refusal, a failure, a note."""
    if text.startswith("echo: "):
        return "reply"
    if text in _REFUSALS:
        return "refusal"
    if text.startswith(_TOO_LARGE):
        return "too large"  # a refusal before storing, a failure after
    if text in _FAILURES:
        return "failure"
    if text == texts.CAPTION_ONLY or text.startswith(texts.HEARD.split("{")[0]):
        return "note"
    return f"unknown: {text!r}"


async def _rows(pool: Pool, platform: str, chat_id: int) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT role, status, message_type, attachments FROM messages"
        " WHERE platform = $1 AND chat_id = $2 ORDER BY id",
        platform,
        str(chat_id),
    )
    return [dict(r) for r in rows]


async def _settled(pool: Pool, platform: str, chat_id: int, sent: Callable[[], list[str]]) -> bool:
    """The chat's message is refused, or answered and recorded, or failed; and told."""
    rows = await _rows(pool, platform, chat_id)
    users = [r for r in rows if r["role"] == "user"]
    if any(r["status"] == "pending" for r in users) or not sent():
        return False
    answered = any(r["status"] == "answered" for r in users)
    return not answered or any(r["role"] == "assistant" for r in rows)


def _check(rows: list[dict[str, Any]], sent: list[str], where: str) -> None:
    kinds = [_kind_of(text) for text in sent]
    assert not [k for k in kinds if k.startswith("unknown")], where + f" {kinds}"
    users = [r for r in rows if r["role"] == "user"]
    if not users:
        assert len(sent) == 1 and kinds[0] in ("refusal", "too large"), where + f" {kinds}"
        return
    [user] = users
    if user["status"] == "answered":
        assert kinds[-1] == "reply", where + f" {kinds}"
        told = kinds[:-1]
        if user["message_type"] == "text" and told[:1] in (["refusal"], ["too large"]):
            told = told[1:]  # a file refused before download; its caption answered
        assert set(told) <= {"note"}, where + f" {kinds}"
    else:
        assert user["status"] == "failed", where
        assert kinds[-1] in ("failure", "too large"), where + f" {kinds}"
        assert set(kinds[:-1]) <= {"note"}, where + f" {kinds}"
    for attachment in user["attachments"] or []:
        assert set(attachment) <= {
            *("kind", "name", "mime_type", "size", "ref", "caption"),
            *("transcript", "description", "document_id"),
        }, where  # metadata only, never the file


def _media_services(
    pooled: PooledServices, transcriber: Transcriber, *, hears: bool, vision: bool
) -> Services:
    base = pooled(llm_vision=vision)
    return replace(base, transcriber=transcriber if hears else None, files={})


def _queue_transcript(fake_llm: FakeOpenAI, heard: str) -> None:
    if heard == "<fault>":
        fake_llm.push_transcription_fault(HttpError(500))
    else:
        fake_llm.push_transcript(heard)


# -- Telegram --------------------------------------------------------------------------


@dataclass(frozen=True)
class TelegramCase:
    kind: str
    data: bytes
    declared: int | None
    caption: str | None
    heard: str


_TELEGRAM_KINDS = ["voice", "audio", "video_note", "photo", "document", "sticker"]
telegram_cases = st.builds(
    TelegramCase,
    kind=st.sampled_from(_TELEGRAM_KINDS),
    data=_CONTENT,
    declared=st.one_of(st.none(), st.sampled_from([0, 100, 19 * MB, 21 * MB, 40 * MB])),
    caption=_CAPTION,
    heard=_HEARD,
)


def _telegram_update(tg: FakeTelegram, case: TelegramCase, user: int) -> dict[str, Any]:
    file_id = tg.add_file(case.data, size=case.declared)
    fields: dict[str, Any] = {"file_id": file_id, "file_unique_id": f"u{file_id}"}
    if case.declared is not None:
        fields["file_size"] = case.declared
    by_kind: dict[str, dict[str, Any]] = {
        "voice": {"voice": {**fields, "duration": 2, "mime_type": "audio/ogg"}},
        "audio": {"audio": {**fields, "duration": 2, "mime_type": "audio/mpeg"}},
        "video_note": {"video_note": {**fields, "length": 240, "duration": 2}},
        "photo": {"photo": [{**fields, "width": 640, "height": 480}]},
        "document": {"document": {**fields, "file_name": "notes.pdf"}},
        "sticker": {
            "sticker": {
                **fields,
                **{"width": 1, "height": 1, "is_animated": False, "is_video": False},
                "type": "regular",
            }
        },
    }
    media = by_kind[case.kind]
    if case.caption is not None:
        media["caption"] = case.caption
    return {"message": message(None, user_id=user, **media)}


@_GENERATED
@given(
    cases=st.lists(telegram_cases, min_size=1, max_size=3),
    hears=st.booleans(),
    vision=st.booleans(),
)
async def test_generated_telegram_media_get_a_clear_answer_and_nothing_accepted_is_lost(
    cases: list[TelegramCase],
    hears: bool,
    vision: bool,
    pooled: PooledServices,
    tg: FakeTelegram,
    fake_llm: FakeOpenAI,
    transcriber: Transcriber,
    error_log: ErrorLog,
) -> None:
    media = _media_services(pooled, transcriber, hears=hears, vision=vision)
    adapter = make_adapter(Engine(media, persona=PERSONA), tg)
    media.files[Platform.TELEGRAM] = adapter.files
    error_log.clear()
    fake_llm.clear()
    users = [next(_ids) for _ in cases]
    async with running(adapter):
        last = 0
        for case, user in zip(cases, users, strict=True):
            if case.kind in ("voice", "audio", "video_note"):
                _queue_transcript(fake_llm, case.heard)
            last = tg.push_update(_telegram_update(tg, case, user))
        await wait_until(lambda: tg.confirmed_below > last, within=30)
        for user in users:
            sent = partial(tg.texts, user)
            await wait_until(partial(_settled, pooled.pool, "telegram", user, sent), within=30)
    for case, user in zip(cases, users, strict=True):
        where = f"{case!r:.200} hears={hears} vision={vision}"
        _check(await _rows(pooled.pool, "telegram", user), tg.texts(user), where)
    assert error_log.errors() == []


# -- Discord ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DiscordCase:
    filename: str
    content_type: str | None
    data: bytes | None
    declared: int | None
    text: str
    heard: str


_FILES = [
    ("voice-message.ogg", "audio/ogg"),
    ("song.mp3", "audio/mpeg"),
    ("cat.png", "image/png"),
    ("cat.jpg", "image/jpeg"),
    ("notes.pdf", "application/pdf"),
    ("clip.mp4", "video/mp4"),
    ("mystery", None),
]
discord_cases = st.builds(
    lambda file, data, declared, text, heard: DiscordCase(
        file[0], file[1], data, declared, text, heard
    ),
    st.sampled_from(_FILES),
    st.one_of(st.none(), _CONTENT),
    st.one_of(st.none(), st.sampled_from([100, 19 * MB, 26 * MB])),
    st.text(_ALPHABET, max_size=40),
    _HEARD,
)


@_GENERATED
@given(
    cases=st.lists(discord_cases, min_size=1, max_size=3),
    hears=st.booleans(),
    vision=st.booleans(),
)
async def test_generated_discord_attachments_get_a_clear_answer_and_nothing_accepted_is_lost(
    cases: list[DiscordCase],
    hears: bool,
    vision: bool,
    pooled: PooledServices,
    fake_discord: FakeDiscord,
    fake_llm: FakeOpenAI,
    transcriber: Transcriber,
    error_log: ErrorLog,
) -> None:
    media = _media_services(pooled, transcriber, hears=hears, vision=vision)
    adapter = DiscordAdapter(
        Engine(media, persona=PERSONA),
        token="test-token",
        commands=list(COMMANDS.values()),
        guild_ready_timeout=0.01,
        ready_timeout=10.0,
        clock=lambda: 0.0,
    )
    media.files[Platform.DISCORD] = adapter.files
    error_log.clear()
    fake_llm.clear()
    channels: list[int] = []
    await adapter.start()
    try:
        for case in cases:
            if case.content_type is not None and case.content_type.startswith("audio/"):
                _queue_transcript(fake_llm, case.heard)
            author = user_payload(next(_ids), "someone")
            attachment = fake_discord.attachment(
                case.filename, case.content_type or "", size=case.declared, data=case.data
            )
            if case.content_type is None:
                del attachment["content_type"]
            event = fake_discord.dm_message(author, case.text, attachments=[attachment])
            channels.append(int(event["channel_id"]))
            await fake_discord.dispatch("MESSAGE_CREATE", event)
        for channel in channels:
            sent = partial(fake_discord.texts_in, channel)
            await wait_until(partial(_settled, pooled.pool, "discord", channel, sent), within=30)
        await eventually(lambda: adapter.in_flight == 0, within=30)
    finally:
        await adapter.stop()
    for case, channel in zip(cases, channels, strict=True):
        where = f"{case!r:.200} hears={hears} vision={vision}"
        _check(await _rows(pooled.pool, "discord", channel), fake_discord.texts_in(channel), where)
    assert error_log.errors() == []
