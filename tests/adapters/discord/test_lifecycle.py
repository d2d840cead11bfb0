"""Start, stop, sharding and the messenger of the Discord adapter."""

from __future__ import annotations

import discord
import pytest
import yarl

from adapters.discord import DiscordAdapter, DiscordStartError
from adapters.discord.adapter import INTENTS
from core.errors import DeliveryError
from core.services import Services
from fakes.discord_gateway import FakeDiscord, user_payload
from fakes.openai_server import Delay, FakeOpenAI
from tests.adapters.discord.conftest import StartAdapter, eventually
from tests.core.engine_helpers import engine_with

ALICE_ID = 6161
ALICE = user_payload(ALICE_ID, "alice")
MESSAGE_CONTENT_INTENT = 1 << 15


def _connected(adapter: DiscordAdapter) -> bool:
    return adapter.connected


async def test_start_identifies_with_the_intents_and_stop_disconnects(
    adapter: DiscordAdapter, fake_discord: FakeDiscord
) -> None:
    assert adapter.connected
    [identify] = fake_discord.identifies
    assert identify["intents"] == INTENTS.value
    assert identify["intents"] & MESSAGE_CONTENT_INTENT
    assert identify["token"] == "test-token"
    assert fake_discord.heartbeats >= 1

    await adapter.stop()
    assert not _connected(adapter)  # a function: mypy would keep the narrowing above
    await eventually(lambda: fake_discord.connected_shards == [])
    await adapter.stop()  # stopping twice is harmless


async def test_a_refused_login_fails_the_start_and_leaves_nothing_open(
    services: Services, fake_discord: FakeDiscord
) -> None:
    fake_discord.fail("GET", "/users/@me", status=401)
    adapter = DiscordAdapter(engine_with(services), token="wrong", commands=[])
    with pytest.raises(DiscordStartError, match="LoginFailure"):
        await adapter.start()
    assert not adapter.connected
    assert fake_discord.identifies == []


async def test_disallowed_intents_fail_the_start(
    services: Services, fake_discord: FakeDiscord
) -> None:
    # What Discord does when MESSAGE CONTENT is not enabled in the Developer Portal.
    fake_discord.close_after_identify = 4014
    adapter = DiscordAdapter(
        engine_with(services), token="test-token", commands=[], guild_ready_timeout=0.01
    )
    with pytest.raises(DiscordStartError) as failure:
        await adapter.start()
    assert isinstance(failure.value.__cause__, discord.PrivilegedIntentsRequired)
    assert not adapter.connected


async def test_configured_shards_are_identified(
    start_adapter: StartAdapter, fake_discord: FakeDiscord, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With a fixed shard count discord.py skips GET /gateway/bot and uses the default URL.
    monkeypatch.setattr(
        discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake_discord.gateway_url)
    )
    adapter = await start_adapter(shard_ids=[1], shard_count=2)

    assert adapter.connected
    assert [identify["shard"] for identify in fake_discord.identifies] == [[1, 2]]
    assert fake_discord.calls_to("GET", "/gateway/bot") == []


async def test_stop_lets_a_reply_in_progress_finish(
    adapter: DiscordAdapter, fake_discord: FakeDiscord, fake_llm: FakeOpenAI
) -> None:
    fake_llm.push_fault(Delay(0.3))
    await fake_discord.dispatch("MESSAGE_CREATE", fake_discord.dm_message(ALICE, "slow one"))
    await eventually(lambda: len(fake_llm.chat_requests) == 1)
    assert adapter.in_flight == 1

    await adapter.stop()
    assert adapter.in_flight == 0
    assert fake_discord.texts_in(fake_discord.dm_channel_id(ALICE_ID)) == ["echo: slow one"]


async def test_the_messenger_sends_privately_and_reports_refusals(
    adapter: DiscordAdapter, fake_discord: FakeDiscord
) -> None:
    dm = fake_discord.dm_channel_id(ALICE_ID)
    await adapter.messenger.send_private(str(dm), "@everyone a notice")
    [sent] = fake_discord.sent_to(dm)
    assert sent["content"] == "@everyone a notice"
    assert sent["allowed_mentions"] == {"parse": []}

    fake_discord.fail("POST", rf"/channels/{dm}/messages", status=403)
    with pytest.raises(DeliveryError):
        await adapter.messenger.send_private(str(dm), "blocked")
    with pytest.raises(DeliveryError):
        await adapter.messenger.send_private("not-a-channel", "nowhere")
