"""The fake Discord's channels and history, read as Discord answers them: raw, and
through the real discord.py (whose paging relies on Discord's order)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import pytest

from fakes.discord_gateway import TEXT_CHANNEL_ID, FakeDiscord, user_payload

ALICE_ID = 7171
ALICE = user_payload(ALICE_ID, "alice")


@pytest.fixture
async def fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        monkeypatch.setattr(discord.http.Route, "BASE", server.api_base)
        yield server


@pytest.fixture
async def client(fake: FakeDiscord) -> AsyncIterator[discord.Client]:
    """Logged in over REST only (no gateway)."""
    bot = discord.Client(intents=discord.Intents.none())
    await bot.login("test-token")
    try:
        yield bot
    finally:
        await bot.close()


def _written(fake: FakeDiscord, count: int) -> list[str]:
    """`count` DMs from Alice written while the bot was down; their ids, oldest first."""
    ids = []
    for number in range(count):
        message = fake.dm_message(ALICE, f"m{number}")
        fake.sent_while_down(message)
        ids.append(message["id"])
    return ids


async def _get(fake: FakeDiscord, path: str, **query: Any) -> tuple[int, Any]:
    params = {k: str(v) for k, v in query.items()}
    async with (
        aiohttp.ClientSession() as session,
        session.get(fake.api_base + path, params=params) as response,
    ):
        return response.status, await response.json()


async def test_a_page_is_newest_first_and_after_starts_right_after(fake: FakeDiscord) -> None:
    ids = _written(fake, 5)
    path = f"/channels/{fake.dm_channel_id(ALICE_ID)}/messages"

    async def page(**query: Any) -> list[str]:
        status, messages = await _get(fake, path, **query)
        assert status == 200
        return [m["id"] for m in messages]

    assert await page(limit=2) == [ids[4], ids[3]]
    assert await page(after=ids[0], limit=2) == [ids[2], ids[1]]
    assert await page(before=ids[2]) == [ids[1], ids[0]]
    assert (await _get(fake, path, limit=101))[0] == 400
    assert await _get(fake, "/channels/1/messages") == (
        404,
        {"message": "Unknown Channel", "code": 10003},
    )


async def test_discord_py_reads_history_after_a_message_oldest_first_across_pages(
    fake: FakeDiscord, client: discord.Client
) -> None:
    ids = _written(fake, 230)
    channel = await client.fetch_channel(fake.dm_channel_id(ALICE_ID))
    assert isinstance(channel, discord.DMChannel)

    after = discord.Object(id=int(ids[9]))
    read = [m async for m in channel.history(after=after, oldest_first=True, limit=None)]

    assert [str(m.id) for m in read] == ids[10:]
    assert [m.content for m in read[:2]] == ["m10", "m11"]
    assert all(m.channel is channel and m.author.id == ALICE_ID for m in read)


async def test_channels_and_messages_are_fetched_or_not_found(
    fake: FakeDiscord, client: discord.Client
) -> None:
    [written] = _written(fake, 1)
    dm = await client.fetch_channel(fake.dm_channel_id(ALICE_ID))
    assert isinstance(dm, discord.DMChannel)
    assert (await dm.fetch_message(int(written))).content == "m0"
    assert isinstance(await client.fetch_channel(TEXT_CHANNEL_ID), discord.TextChannel)

    with pytest.raises(discord.NotFound):
        await dm.fetch_message(fake.new_id())
    with pytest.raises(discord.NotFound):
        await client.fetch_channel(fake.new_id())


async def test_the_bots_own_messages_are_kept_in_history(
    fake: FakeDiscord, client: discord.Client
) -> None:
    [written] = _written(fake, 1)
    channel = await client.fetch_channel(fake.dm_channel_id(ALICE_ID))
    assert isinstance(channel, discord.DMChannel)
    await channel.send("from the bot")

    read = [m async for m in channel.history(after=discord.Object(id=int(written)))]
    assert [(m.content, m.author.bot) for m in read] == [("from the bot", True)]
