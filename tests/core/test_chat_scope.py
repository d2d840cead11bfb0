"""What a reply may draw on, by chat (docs/security.md, "Between chats"): one person,
linked on Telegram and Discord, writes in private chats and in groups in any order."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.engine import Engine
from core.inbound import ChatKind
from core.models import NewFact, Platform
from core.services import Services
from fakes.channel import RecordingChannel
from fakes.openai_server import FakeOpenAI
from tests.core.engine_helpers import engine_with, inbound, prompt_text

_people = itertools.count(1)


@dataclass(frozen=True)
class Place:
    platform: Platform
    chat: str
    kind: ChatKind

    @property
    def shared(self) -> bool:
        return self.kind is not ChatKind.PRIVATE


# Each place's chat id is made unique per person in `_person`.
PLACES = (
    Place(Platform.TELEGRAM, "private", ChatKind.PRIVATE),
    Place(Platform.DISCORD, "private", ChatKind.PRIVATE),
    Place(Platform.TELEGRAM, "group-a", ChatKind.GROUP),
    Place(Platform.TELEGRAM, "group-b", ChatKind.GROUP),
    Place(Platform.DISCORD, "channel", ChatKind.GROUP),
)


async def _link(engine: Engine, telegram: str, discord: str) -> None:
    """One person: the Discord identity linked into the Telegram one by `/link`."""
    channel = RecordingChannel()
    await engine.handle(inbound("/link", user=telegram, chat=f"{telegram}-private"), channel)
    code = re.search(r"/link ([A-Z0-9]{6,})", channel.sent[-1])
    assert code is not None, channel.sent
    await engine.handle(
        inbound(
            f"/link {code[1]}",
            user=discord,
            platform=Platform.DISCORD,
            chat=f"{discord}-private",
        ),
        channel,
    )
    assert "linked" in channel.sent[-1].lower(), channel.sent


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(st.integers(0, len(PLACES) - 1), min_size=2, max_size=8))
async def test_private_words_never_reach_a_group_whatever_the_order(
    services: Services, fake_llm: FakeOpenAI, order: list[int]
) -> None:
    """Every message carries a word unique to it and words common to all, so recall
    would find any earlier message if it could. A group's prompt holds none of the
    private chats' words nor another group's, nor what the memory job learned in
    private; a private prompt holds the words of every private message said so far (the
    window is larger than the run), whichever platform they were said on."""
    engine = engine_with(services, limits={"rate_per_minute": 1e6, "rate_burst": 1000})
    n = next(_people)
    telegram, discord = f"tg{n}", f"dc{n}"
    await _link(engine, telegram, discord)
    person = await services.users.find(f"telegram:{telegram}")
    assert person is not None
    # What the memory job keeps, learned from private words: a private fact, a summary
    # and a profile. None of it belongs in a group.
    await services.facts.add(person.id, NewFact("Sees a cardiologist", is_private=True))
    async with services.db.connection() as conn:
        await conn.execute(
            "UPDATE conversations SET summary = 'Talked about the cardiologist.'"
            " WHERE user_id = $1",
            person.id,
        )
        await conn.execute(
            "INSERT INTO conversation_context (user_id, communication_style, themes)"
            " VALUES ($1, 'mentions the cardiologist often', '[\"cardiologist\"]')"
            " ON CONFLICT (user_id) DO UPDATE SET communication_style ="
            " excluded.communication_style, themes = excluded.themes",
            person.id,
        )
    said: list[tuple[Place, str]] = []
    asked = len(fake_llm.chat_requests)
    for step, index in enumerate(order):
        place = PLACES[index]
        user = telegram if place.platform is Platform.TELEGRAM else discord
        word = f"word{n}x{step}{place.chat.replace('-', '')}"
        text = f"{word}: do you remember my balcony?"
        said.append((place, word))
        await engine.handle(
            inbound(
                text,
                user=user,
                platform=place.platform,
                chat=f"{user}-{place.chat}",
                kind=place.kind,
            ),
            RecordingChannel(),
        )
        assert len(fake_llm.chat_requests) == asked + step + 1  # this message's prompt:
        context = prompt_text(fake_llm.chat_requests[-1])
        for other, other_word in said[:-1]:
            if place.shared and other != place:
                assert other_word not in context, (place, other)
            if not place.shared and not other.shared:
                assert other_word in context, (place, other)
        if place.shared:
            assert "cardiologist" not in context
        else:
            assert "Sees a cardiologist" in context


async def test_with_memory_off_the_prompt_is_the_persona_and_the_recent_window(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    engine = engine_with(services, context={"recent_messages": 4})
    channel = RecordingChannel()
    await engine.handle(inbound("my dog is called Biscuit", user="m1"), channel)
    person = await services.users.find("telegram:m1")
    assert person is not None
    await services.facts.add(person.id, NewFact("Has a dog called Biscuit", importance=9))
    async with services.db.connection() as conn:
        await conn.execute(
            "UPDATE conversations SET summary = 'Biscuit the dog came up.' WHERE user_id = $1",
            person.id,
        )
    for n in range(3):
        await engine.handle(inbound(f"filler {n}", user="m1"), channel)
    await engine.handle(inbound("what is my dog called?", user="m1"), channel)
    remembering = prompt_text(fake_llm.chat_requests[-1])
    assert remembering.count("Biscuit") >= 3  # fact, summary, recall (out of the window)

    async with services.db.connection() as conn:
        await conn.execute(
            "UPDATE conversations SET memory_off_since = now() WHERE user_id = $1", person.id
        )
    await engine.handle(inbound("a secret while memory is off", user="m1"), channel)
    await engine.handle(inbound("what is my dog called?", user="m1"), channel)
    forgetful = prompt_text(fake_llm.chat_requests[-1])
    assert "Biscuit" not in forgetful
    assert "a secret while memory is off" in forgetful  # the recent window stays
    async with services.db.connection() as conn:
        remembered = await conn.fetchval(
            "SELECT remembered FROM messages WHERE content = 'a secret while memory is off'"
        )
    assert remembered is False
