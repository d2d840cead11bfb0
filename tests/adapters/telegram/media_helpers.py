"""Running a Telegram adapter that reads voice notes and photos, in tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from core.engine import Engine
from core.llm.transcription import Transcriber
from core.models import Message, Platform
from core.services import Services
from fakes.telegram_api import FakeTelegram
from tests.adapters.telegram.helpers import make_adapter, running
from tests.conftest import make_settings
from tests.core.engine_helpers import PERSONA

OGG = b"OggS\x00\x02" + bytes(range(250))
"""A voice note as far as the fake transcription endpoint can tell (Ogg's first bytes)."""
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF" + bytes(300)
"""A photo as far as the bot can tell (JPEG's first bytes)."""


@asynccontextmanager
async def media_bot(
    services: Services, tg: FakeTelegram, transcriber: Transcriber | None, **settings: Any
) -> AsyncIterator[Services]:
    """The adapter running on an engine with `transcriber` and `settings`, its file
    source registered as `bot` does; the services it runs on."""
    media = replace(services, settings=make_settings(**settings), transcriber=transcriber, files={})
    adapter = make_adapter(Engine(media, persona=PERSONA), tg)
    media.files[Platform.TELEGRAM] = adapter.files
    async with running(adapter):
        yield media


async def conversation(services: Services, user_id: int) -> list[Message]:
    """The person's messages and replies, oldest first."""
    user = await services.users.find(f"telegram:{user_id}")
    if user is None:
        return []
    return list(reversed(await services.messages.history(user.id)))
