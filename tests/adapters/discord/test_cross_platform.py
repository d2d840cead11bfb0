"""One person on Telegram and Discord: link the identities, then one conversation."""

from __future__ import annotations

import re

import pytest

from adapters.discord import DiscordAdapter
from core.services import Services
from fakes.discord_gateway import FakeDiscord, user_payload
from fakes.openai_server import FakeOpenAI
from fakes.telegram_api import FakeTelegram
from tests.adapters.discord.conftest import deliver, eventually
from tests.adapters.telegram.helpers import make_adapter, running
from tests.core.engine_helpers import engine_with

TELEGRAM_ID = 555
DISCORD_ID = 777
DISCORD_USER = user_payload(DISCORD_ID, "sam")


@pytest.fixture
def services(pooled: Services) -> Services:
    """The engine on a pool: the Telegram adapter looks for unanswered messages beside
    the engine's turns, and one connection runs one statement at a time."""
    return pooled


@pytest.fixture(autouse=True)
def _ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "1")


async def test_linked_identities_feed_one_conversation(
    adapter: DiscordAdapter,
    fake_discord: FakeDiscord,
    services: Services,
    fake_llm: FakeOpenAI,
) -> None:
    dm = fake_discord.dm_channel_id(DISCORD_ID)
    async with FakeTelegram() as telegram, running(make_adapter(engine_with(services), telegram)):
        telegram.push_message("I keep bees on my balcony", user_id=TELEGRAM_ID)
        await eventually(lambda: len(telegram.texts(TELEGRAM_ID)) == 1)
        telegram.push_message("/link", user_id=TELEGRAM_ID)
        await eventually(lambda: len(telegram.texts(TELEGRAM_ID)) == 2)
        code = re.search(r"/link ([A-Z0-9]{6,})", telegram.texts(TELEGRAM_ID)[-1])
        assert code is not None, telegram.texts(TELEGRAM_ID)[-1]

        payload = fake_discord.dm_message(DISCORD_USER, f"/link {code[1]}")
        await deliver(fake_discord, adapter, "MESSAGE_CREATE", payload)
        assert "linked" in fake_discord.texts_in(dm)[-1].lower()

        on_telegram = await services.users.find(f"telegram:{TELEGRAM_ID}")
        on_discord = await services.users.find(f"discord:{DISCORD_ID}")
        assert on_telegram is not None
        assert on_discord is not None
        assert on_telegram.id == on_discord.id

        # What was said on Telegram is in the Discord conversation's prompt...
        payload = fake_discord.dm_message(DISCORD_USER, "what do I keep on my balcony?")
        await deliver(fake_discord, adapter, "MESSAGE_CREATE", payload)
        prompt = "\n".join(m["content"] for m in fake_llm.chat_requests[-1]["messages"])
        assert "I keep bees on my balcony" in prompt

        # ...and what was said on Discord reaches Telegram's.
        telegram.push_message("and what did I just ask?", user_id=TELEGRAM_ID)
        await eventually(lambda: len(telegram.texts(TELEGRAM_ID)) == 3)
        prompt = "\n".join(m["content"] for m in fake_llm.chat_requests[-1]["messages"])
        assert "what do I keep on my balcony?" in prompt
    conversation = await services.users.conversation(on_telegram.id)
    assert conversation.message_count == 6
