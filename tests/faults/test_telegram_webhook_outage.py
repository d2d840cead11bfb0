"""Webhook mode through a database outage longer than the webhook's ack timeout.

The fake Telegram POSTs each update to the adapter's webhook (the real
python-telegram-bot and tornado) and delivers it again after every error status, as
Telegram does. The database is an embedded server of the test's own, crashed with
`pg_ctl stop -m immediate` and started again. A message that arrives meanwhile cannot
be stored: Telegram must get an error status (never 200) until it is, and the message
must then be answered exactly once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from bot.database import open_database
from core.notices import STORAGE_DOWN
from core.services import Services
from core.storage.database import Database, create_pool
from fakes.service import EmbeddedDatabase
from fakes.telegram_api import FakeTelegram, wait_until
from tests.adapters.telegram.helpers import make_adapter, running
from tests.conftest import make_settings
from tests.core.engine_helpers import engine_with

ACK_TIMEOUT = 0.5
BEFORE = 6001
DURING = 6002


@pytest.fixture
async def database(data_dir: Path) -> AsyncIterator[tuple[str, EmbeddedDatabase]]:
    """A migrated embedded server that the test may crash and start again (itself: the
    process does not restart it, see test_embedded_restart.py for that)."""
    settings = make_settings(onethread_data_dir=data_dir, db={"embedded_restart_attempts": 0})
    async with open_database(settings) as location:
        yield location.dsn, EmbeddedDatabase(settings.embedded_database_dir)


async def _user_messages(dsn: str, chat_id: int) -> list[tuple[str, str]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT role, content FROM messages WHERE chat_id = $1 ORDER BY id", str(chat_id)
        )
    finally:
        await conn.close()
    return [(row["role"], row["content"]) for row in rows]


async def test_an_update_is_refused_until_its_message_is_stored_then_answered_once(
    database: tuple[str, EmbeddedDatabase], services: Services
) -> None:
    dsn, server = database
    pool = await create_pool(dsn, min_size=1, max_size=4)
    try:
        engine = engine_with(replace(services, db=Database(pool)))
        async with FakeTelegram() as tg:
            adapter = make_adapter(
                engine,
                tg,
                mode="webhook",
                webhook_url="https://bot.example.test/telegram/hook",
                webhook_secret="outage-test-secret",
                webhook_listen="127.0.0.1",
                webhook_port=0,
                webhook_ack_timeout=ACK_TIMEOUT,
            )
            async with running(adapter):
                tg.webhook_address = f"http://127.0.0.1:{adapter.webhook_port}/telegram/hook"
                before = tg.push_message("before the outage", user_id=BEFORE)
                await wait_until(lambda: tg.texts(BEFORE) == ["echo: before the outage"])

                await asyncio.to_thread(server.crash)
                try:
                    during = tg.push_message("during the outage", user_id=DURING)
                    # Refused, delivered again, refused again: the outage outlasts the
                    # ack timeout several times over.
                    await wait_until(lambda: len(tg.webhook_statuses(during)) >= 3, within=30)
                    refused_while_down = tg.webhook_statuses(during)
                    assert tg.texts(DURING) == [STORAGE_DOWN]
                finally:
                    await asyncio.to_thread(server.start)

                await wait_until(lambda: tg.webhook_statuses(during)[-1:] == [200], within=60)
                # Acknowledged only once stored.
                assert ("user", "during the outage") in await _user_messages(dsn, DURING)
                await wait_until(
                    lambda: tg.texts(DURING)[-1:] == ["echo: during the outage"], within=30
                )
    finally:
        await pool.close()

    assert tg.webhook_statuses(before) == [200]
    assert set(refused_while_down) == {503}
    *refused, accepted = tg.webhook_statuses(during)
    assert set(refused) == {503}
    assert accepted == 200
    # Told once that the answer would come, then answered exactly once.
    assert tg.texts(DURING) == [STORAGE_DOWN, "echo: during the outage"]
    assert await _user_messages(dsn, DURING) == [
        ("user", "during the outage"),
        ("assistant", "echo: during the outage"),
    ]
