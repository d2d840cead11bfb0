"""Fixtures for driving the real discord.py client against `FakeDiscord`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import replace
from typing import Any

import discord
import pytest

from adapters.discord import DiscordAdapter
from core.commands.registry import COMMANDS
from core.llm.client import ChatClient
from core.services import Services
from fakes.discord_gateway import FakeDiscord
from fakes.openai_server import FakeOpenAI
from tests.core.engine_helpers import engine_with

StartAdapter = Callable[..., Awaitable[DiscordAdapter]]


async def eventually(condition: Callable[[], bool], *, within: float = 10.0) -> None:
    """Wait until `condition()` holds, polling; fail after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


async def deliver(fake: FakeDiscord, adapter: DiscordAdapter, event: str, data: Any) -> None:
    """Push one gateway event and wait until the adapter has finished with it."""
    before = adapter.processed
    await fake.dispatch(event, data)
    await eventually(lambda: adapter.processed > before and adapter.in_flight == 0)


@pytest.fixture
def services(pooled: Services) -> Services:
    """A pool over a database of the test's own, not the shared test connection: the
    adapter looks for orphans and catches up on DMs while it handles events, and one
    connection runs one statement at a time; turns expire by the server's clock."""
    return pooled


@pytest.fixture
async def fake_discord(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)
        yield fake


@pytest.fixture
async def start_adapter(
    services: Services, fake_discord: FakeDiscord, fake_llm: FakeOpenAI
) -> AsyncIterator[StartAdapter]:
    """Start adapters (engine settings as keyword arguments, `llm` another model
    client); all are stopped at the end."""
    async with AsyncExitStack() as stack:

        async def start(
            *,
            shard_ids: list[int] | None = None,
            shard_count: int | None = None,
            stop_timeout: float = 10.0,
            llm: ChatClient | None = None,
            **settings: Any,
        ) -> DiscordAdapter:
            adapter = DiscordAdapter(
                engine_with(services if llm is None else replace(services, llm=llm), **settings),
                token="test-token",
                commands=list(COMMANDS.values()),
                messages=services.messages,
                shard_ids=shard_ids,
                shard_count=shard_count,
                guild_ready_timeout=0.01,
                ready_timeout=10.0,
                stop_timeout=stop_timeout,
                # A clock that never moves: one partial message, then the final edit.
                clock=lambda: 0.0,
            )
            await adapter.start()
            stack.push_async_callback(adapter.stop)
            return adapter

        yield start


@pytest.fixture
async def adapter(start_adapter: StartAdapter) -> DiscordAdapter:
    return await start_adapter()
