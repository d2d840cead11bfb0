"""Building and running a `TelegramAdapter` against `FakeTelegram` in tests."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from adapters.telegram import TelegramAdapter
from core.commands.registry import COMMANDS
from core.engine import Engine
from fakes.telegram_api import FakeTelegram


def stepping_clock(step: float) -> Callable[[], float]:
    """A clock that moves `step` seconds every time it is read."""
    ticks = itertools.count()
    return lambda: next(ticks) * step


def make_adapter(engine: Engine, tg: FakeTelegram, **overrides: Any) -> TelegramAdapter:
    options: dict[str, Any] = {
        "token": tg.token,
        "base_url": tg.base_url,
        "base_file_url": tg.base_file_url,
        "mode": "polling",
        "admin_chat_ids": ["900"],
        "commands": list(COMMANDS.values()),
        "poll_timeout": 1,
        "shutdown_timeout": 5.0,
        # Frozen clock: the streamed message is sent once and edited only by `finish`.
        "clock": lambda: 0.0,
    }
    options.update(overrides)
    return TelegramAdapter(engine, **options)


@asynccontextmanager
async def running(adapter: TelegramAdapter) -> AsyncIterator[TelegramAdapter]:
    await adapter.start()
    try:
        yield adapter
    finally:
        await adapter.stop()


@asynccontextmanager
async def storing_blocked(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """Hold the `messages` table so that no message can be stored until the block ends
    (the database is up; the statement storing a message just waits)."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute("LOCK TABLE messages IN EXCLUSIVE MODE")
            yield conn
    finally:
        await conn.close()


async def a_statement_waits(conn: asyncpg.Connection) -> bool:
    """Whether a statement in the database waits for a lock (e.g. `storing_blocked`'s).
    Inside a transaction PostgreSQL keeps the first view of the statistics it read:
    dropped first, so each call sees the sessions as they are now."""
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    waiting: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock')"
    )
    return waiting
