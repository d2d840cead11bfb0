"""Polling under a slow model: nothing waits behind one slow reply, and a chat's
messages are still stored in the order Telegram delivered them.

The real python-telegram-bot polls the fake Bot API; the real engine answers on a
pool over a database of the test's own; the real openai SDK talks to the fake model.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from openai import AsyncOpenAI

from core.embedding.openai_embedder import OpenAIEmbedder
from core.llm.client import ChatClient
from core.services import Services
from core.storage.database import Pool
from fakes.openai_server import Delay, FakeOpenAI
from fakes.telegram_api import BOT_USERNAME, FakeTelegram, mention, wait_until
from tests.adapters.telegram.helpers import make_adapter, running
from tests.core.engine_helpers import engine_with

SLOW_CHAT = 5000
FIRST_OTHER_CHAT = 5001
OTHERS = 150
"""More than getUpdates returns at once (100): the offset has to move for the rest."""
GROUP = -100777


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        yield fake


async def test_a_very_slow_reply_holds_back_neither_the_offset_nor_other_chats(
    pooled: Services, tg: FakeTelegram, fake_llm: FakeOpenAI
) -> None:
    fake_llm.push_fault(Delay(600))
    async with ChatClient(
        base_url=fake_llm.base_url, api_key="sk-test", model="fake-model", timeout=600
    ) as patient:
        engine = engine_with(replace(pooled, llm=patient))
        async with running(make_adapter(engine, tg, shutdown_timeout=0.05)):
            slow = tg.push_message("take your time", user_id=SLOW_CHAT)
            await wait_until(lambda: len(fake_llm.chat_requests) == 1)
            chats = range(FIRST_OTHER_CHAT, FIRST_OTHER_CHAT + OTHERS)
            last = 0
            for chat in chats:
                last = tg.push_message(f"quick {chat}", user_id=chat)

            await wait_until(
                lambda: all(tg.texts(chat) == [f"echo: quick {chat}"] for chat in chats),
                within=180,
            )
            await wait_until(lambda: tg.confirmed_below > last)
            # Still being answered, and acknowledged all the same: its message is stored.
            assert tg.texts(SLOW_CHAT) == []
            assert len(fake_llm.chat_requests) == 1 + OTHERS
            assert slow < last


async def _stored_in_order(pool: Pool, chat_id: int) -> list[str]:
    rows = await pool.fetch(
        "SELECT content FROM messages WHERE role = 'user' AND chat_id = $1 ORDER BY id",
        str(chat_id),
    )
    return [row["content"] for row in rows]


async def test_a_chats_messages_are_stored_in_the_order_they_came(
    pooled: Services, tg: FakeTelegram, fake_llm: FakeOpenAI
) -> None:
    """Three people write to the bot in one group at once; the first message's
    embedding (computed before it is stored) is slow, yet it is stored first."""
    assert pooled.db.pool is not None
    async with AsyncOpenAI(base_url=fake_llm.base_url, api_key="sk-test") as client:
        embedder = OpenAIEmbedder(client, model_name="fake-embedding", dimensions=384)
        engine = engine_with(replace(pooled, embedder=embedder))
        fake_llm.push_fault(Delay(1.0))  # the next request: the first message's embedding
        said = ["first", "second", "third"]
        async with running(make_adapter(engine, tg)):
            for number, word in enumerate(said, start=1):
                text = f"@{BOT_USERNAME} {word}"
                tg.push_message(
                    text, user_id=5100 + number, chat_id=GROUP, entities=[mention(text)]
                )
            await wait_until(lambda: sorted(tg.texts(GROUP)) == [f"echo: {word}" for word in said])
    assert len(fake_llm.embedding_requests) >= len(said)
    assert await _stored_in_order(pooled.db.pool, GROUP) == said
