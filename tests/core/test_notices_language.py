"""What the engine says on its own is in the person's language: the one they chose
(`/language`), else the one their platform tells; linking keeps a chosen language."""

from __future__ import annotations

from dataclasses import replace

from core.i18n import texts
from core.inbound import Attachment
from core.media.texts import NO_VISION, UNSUPPORTED_KIND
from core.models import Platform, UserStatus
from core.notices import BANNED, LLM_FAILED
from core.services import Services
from core.storage.merge import MergeRepository
from fakes.channel import RecordingChannel
from fakes.openai_server import FakeOpenAI, HttpError
from tests.core.engine_helpers import engine_with, inbound


async def _user_id(services: Services, name: str) -> int:
    user = await services.users.find(f"telegram:{name}")
    assert user is not None
    return user.id


async def test_a_model_failure_is_told_in_the_chosen_language(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    engine, channel = engine_with(services), RecordingChannel()
    await engine.handle(replace(inbound("/language ru"), language="de"), channel)
    fake_llm.push_fault(HttpError(500))
    await engine.handle(replace(inbound("hello"), language="de"), channel)
    assert channel.last == texts("ru").gettext(LLM_FAILED)
    assert channel.last.startswith("Извини, мне сейчас не удалось связаться")


async def test_notices_before_and_after_admission_follow_the_platforms_language(
    services: Services,
) -> None:
    engine, channel = engine_with(services), RecordingChannel()
    photo = inbound("", attachments=(Attachment("photo", ref="p1"),))  # no vision here
    await engine.handle(replace(photo, language="es-419"), channel)
    assert channel.last == texts("es").gettext(NO_VISION) != NO_VISION
    assert channel.last.startswith("Con el modelo de lenguaje que uso aquí no puedo ver")
    sticker = inbound("", attachments=(Attachment("sticker"),))
    await engine.handle(replace(sticker, language="uk"), channel)
    assert channel.last == texts("uk").gettext(UNSUPPORTED_KIND) != UNSUPPORTED_KIND
    await engine.handle(replace(inbound("hi"), language="es-419"), channel)
    await services.users.set_status(await _user_id(services, "u1"), UserStatus.BANNED)
    await engine.handle(replace(inbound("still here"), language="fr"), channel)
    assert channel.sent[-1] == "Tu as été banni de ce bot." == texts("fr").gettext(BANNED)


async def test_linking_keeps_a_chosen_language(services: Services) -> None:
    kept, _ = await services.users.get_or_create(Platform.TELEGRAM, "k1")
    merged, _ = await services.users.get_or_create(Platform.DISCORD, "m1")
    await services.users.set_language(merged.id, "uk")
    await MergeRepository(services.db).merge(kept.id, merged.id)
    after = await services.users.get(kept.id)
    assert after is not None and after.language == "uk"
