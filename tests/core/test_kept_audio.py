"""The largest recording kept (`kept_audio_max_bytes`) always fits one export file, with
the largest transcript in the costliest characters beside it."""

from __future__ import annotations

import gzip
import json
import random
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from core.export import collect, package
from core.media.kept_audio import kept_audio_max_bytes
from core.models import Platform
from core.services import Services
from core.storage.message_audio import MessageAudioRepository
from tests.conftest import make_settings
from tests.core.commands import make_user


@pytest.mark.parametrize(
    ("export_max_bytes", "max_message_chars"), [(64 * 1024, 2000), (10**6, 8000)]
)
async def test_the_largest_recording_kept_exports_within_the_file_limit(
    services: Services, export_max_bytes: int, max_message_chars: int
) -> None:
    settings = make_settings(
        media_keep_audio=True,
        export_max_bytes=export_max_bytes,
        limits={"max_message_chars": max_message_chars},
    )
    services = replace(services, settings=settings)
    limit = kept_audio_max_bytes(settings)
    assert 0 < limit <= settings.media_max_bytes
    user = await make_user(services, "1")
    transcript = "\x01" * max_message_chars  # escaped as "\u0001": 6 bytes each
    stored = await services.messages.add_user_message(
        user.id, "[Voice message]", platform=Platform.TELEGRAM, chat_id="c", platform_message_id="v"
    )
    message_id = stored.message.id
    attachment = {
        "kind": "voice",
        "mime_type": "audio/ogg",
        "ref": "f" * 200,
        "transcript": transcript,
    }
    await services.messages.record_made_from(
        user.id, message_id, content=transcript, attachments=[attachment], embedding=None
    )
    recording = random.Random(7).randbytes(limit)
    repository = MessageAudioRepository(services.db)
    assert await repository.keep(user.id, message_id, mime_type="audio/ogg", data=recording)

    files = package(
        await collect(services, user.id, now=datetime.now(UTC)), max_bytes=export_max_bytes
    )

    assert all(len(f.data) <= export_max_bytes for f in files)
    last = files[-1]
    document = json.loads(
        gzip.decompress(last.data) if last.filename.endswith(".gz") else last.data
    )
    [exported] = [m for m in document["messages"] if m["id"] == message_id]
    assert exported["content"] == transcript and "audio" in exported
