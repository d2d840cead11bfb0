"""One person on Telegram and Discord: link the identities, then one conversation."""

from __future__ import annotations

import re

import pytest

from adapters.discord import DiscordAdapter
from core.services import Services
from fakes.discord_gateway import BOT_ID, BOT_NAME, FakeDiscord, user_payload
from fakes.openai_server import FakeOpenAI
from fakes.telegram_api import FakeTelegram, mention
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


async def test_what_is_said_in_private_never_reaches_a_group_on_either_platform(
    adapter: DiscordAdapter,
    fake_discord: FakeDiscord,
    services: Services,
    fake_llm: FakeOpenAI,
) -> None:
    """One linked person: a secret told in the Telegram private chat stays out of the
    prompts of a Telegram group and a Discord server channel (window, recall, summary,
    profile), and is still in the private chats' prompts, on both platforms."""
    secret = "Just between us: my bank PIN is Zanzibar-7731 and I see a cardiologist"
    dm = fake_discord.dm_channel_id(DISCORD_ID)
    group = -4242
    bot = user_payload(BOT_ID, BOT_NAME, bot=True)
    async with FakeTelegram() as telegram, running(make_adapter(engine_with(services), telegram)):
        telegram.push_message(secret, user_id=TELEGRAM_ID)
        await eventually(lambda: len(telegram.texts(TELEGRAM_ID)) == 1)
        telegram.push_message("/link", user_id=TELEGRAM_ID)
        await eventually(lambda: len(telegram.texts(TELEGRAM_ID)) == 2)
        code = re.search(r"/link ([A-Z0-9]{6,})", telegram.texts(TELEGRAM_ID)[-1])
        assert code is not None
        await deliver(
            fake_discord,
            adapter,
            "MESSAGE_CREATE",
            fake_discord.dm_message(DISCORD_USER, f"/link {code[1]}"),
        )
        person = await services.users.find(f"telegram:{TELEGRAM_ID}")
        assert person is not None
        # What the memory job would have written from the private chat.
        async with services.db.connection() as conn:
            await conn.execute(
                "UPDATE conversations SET summary = 'They told you their PIN Zanzibar-7731.'"
                " WHERE user_id = $1",
                person.id,
            )
        asks = "@onethread_bot what was my bank PIN, Zanzibar? and the cardiologist?"
        telegram.push_message(asks, user_id=TELEGRAM_ID, chat_id=group, entities=[mention(asks)])
        await eventually(lambda: len(telegram.texts(group)) == 1)
        in_telegram_group = _prompt(fake_llm)
        channel_message = fake_discord.guild_message(
            DISCORD_USER, f"<@{BOT_ID}> remind me of my bank PIN, Zanzibar?", mentions=[bot]
        )
        await deliver(fake_discord, adapter, "MESSAGE_CREATE", channel_message)
        in_server_channel = _prompt(fake_llm)
        for prompt in (in_telegram_group, in_server_channel):
            assert "Zanzibar-7731" not in prompt
            assert "I see a cardiologist" not in prompt
        # The server channel does not see the Telegram group's words either.
        assert "the cardiologist?" not in in_server_channel

        await deliver(
            fake_discord,
            adapter,
            "MESSAGE_CREATE",
            fake_discord.dm_message(DISCORD_USER, "and my PIN?"),
        )
        assert secret in _prompt(fake_llm)
        telegram.push_message("what did I tell you about my heart?", user_id=TELEGRAM_ID)
        await eventually(lambda: len(telegram.texts(TELEGRAM_ID)) == 3)
        assert secret in _prompt(fake_llm)
    assert fake_discord.texts_in(dm)


def _prompt(fake_llm: FakeOpenAI) -> str:
    return "\n".join(m["content"] for m in fake_llm.chat_requests[-1]["messages"])
