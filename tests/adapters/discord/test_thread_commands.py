"""The commands that let a person steer their own thread, through real discord.py
against the fake Discord API: buttons are message components (discord.py's dynamic
items), a press comes back as a component interaction."""

from __future__ import annotations

from typing import Any

from adapters.discord import DiscordAdapter
from core.commands.base import PRIVATE_ONLY
from core.commands.history import OLDER
from core.models import Platform, User
from core.services import Services
from fakes.discord_gateway import BOT_ID, BOT_NAME, FakeDiscord, user_payload
from tests.adapters.discord.conftest import deliver
from tests.core.commands import add_exchange

BEA_ID = 6161
BEA = user_payload(BEA_ID, "bea")
BOT = user_payload(BOT_ID, BOT_NAME, bot=True)
EPHEMERAL = 64


async def discord_user(services: Services) -> User:
    user, _ = await services.users.get_or_create(Platform.DISCORD, str(BEA_ID))
    return user


def original(fake: FakeDiscord, interaction: dict[str, Any]) -> dict[str, Any]:
    [first, *_] = fake.interaction_messages[str(interaction["token"])]
    assert first.get("original")
    return first


def who_said_what(text: str) -> list[str]:
    return [line.split(" ", 2)[2] for line in text.splitlines()[1:]]


async def test_history_pages_back_with_a_button(
    adapter: DiscordAdapter, fake_discord: FakeDiscord, services: Services
) -> None:
    user = await discord_user(services)
    for n in range(6):  # 12 messages: a page of 10, then 2
        await add_exchange(services, user, f"story part {n}")
    typed = fake_discord.dm_message(BEA, "/history")
    await deliver(fake_discord, adapter, "MESSAGE_CREATE", typed)
    [first] = fake_discord.sent_to(fake_discord.dm_channel_id(BEA_ID))
    assert "story part 5" in first["content"]

    press = fake_discord.press(BEA, first, OLDER)
    await deliver(fake_discord, adapter, "INTERACTION_CREATE", press)

    [callback] = fake_discord.interaction_callbacks
    assert callback["type"] == 5  # deferred, then the page
    assert not (callback.get("data") or {}).get("flags", 0) & EPHEMERAL
    older = original(fake_discord, press)
    assert who_said_what(str(older["content"])) == ["Me: re: story part 0", "You: story part 0"]
    assert older["components"] == []  # the beginning: no older page


async def test_search_by_slash_command_and_history_refused_in_a_server(
    adapter: DiscordAdapter, fake_discord: FakeDiscord, services: Services
) -> None:
    user = await discord_user(services)
    await add_exchange(services, user, "my sister lives in Lisbon")
    search = fake_discord.command_interaction(BEA, "search", "Lisbon")
    await deliver(fake_discord, adapter, "INTERACTION_CREATE", search)
    in_server = fake_discord.command_interaction(BEA, "history", in_guild=True)
    await deliver(fake_discord, adapter, "INTERACTION_CREATE", in_server)

    assert sorted(who_said_what(str(original(fake_discord, search)["content"]))) == [
        "Me: re: my sister lives in Lisbon",
        "You: my sister lives in Lisbon",
    ]
    assert original(fake_discord, in_server)["content"] == PRIVATE_ONLY


async def test_why_in_answer_to_a_reply_and_by_slash_command_in_a_server(
    adapter: DiscordAdapter, fake_discord: FakeDiscord
) -> None:
    dm = fake_discord.dm_channel_id(BEA_ID)
    for text in ("I like green tea", "and long walks"):
        await deliver(fake_discord, adapter, "MESSAGE_CREATE", fake_discord.dm_message(BEA, text))
    tea_reply, _ = fake_discord.sent_to(dm)
    asking = fake_discord.dm_message(BEA, "/why", reply_to=tea_reply)
    await deliver(fake_discord, adapter, "MESSAGE_CREATE", asking)
    in_server = fake_discord.guild_message(
        BEA, f"<@{BOT_ID}> the server plays chess", mentions=[BOT]
    )
    await deliver(fake_discord, adapter, "MESSAGE_CREATE", in_server)
    slash = fake_discord.command_interaction(BEA, "why", in_guild=True)
    await deliver(fake_discord, adapter, "INTERACTION_CREATE", slash)

    private_why = fake_discord.texts_in(dm)[2]
    assert '("echo: I like green tea")' in private_why  # the reply it answers, not the last
    server_why = str(original(fake_discord, slash)["content"])
    assert '("echo: the server plays chess")' in server_why
    assert "tea" not in server_why and "walks" not in server_why
    [callback] = fake_discord.interaction_callbacks
    assert callback["data"]["flags"] & EPHEMERAL  # only the asker sees it


async def test_stats_by_slash_command_are_the_persons_own(
    adapter: DiscordAdapter, fake_discord: FakeDiscord, services: Services
) -> None:
    user = await discord_user(services)
    await add_exchange(services, user, "hello")
    slash = fake_discord.command_interaction(BEA, "stats")
    await deliver(fake_discord, adapter, "INTERACTION_CREATE", slash)
    content = str(original(fake_discord, slash)["content"])
    assert content.startswith("Your numbers:")
    assert "Messages: 2 so far, yours and mine; kept now: 1 of yours and 1 of mine" in content


async def test_persona_by_slash_command_in_a_dm_and_refused_in_a_server(
    adapter: DiscordAdapter, fake_discord: FakeDiscord, services: Services
) -> None:
    in_dm = fake_discord.command_interaction(BEA, "persona", "formal")
    await deliver(fake_discord, adapter, "INTERACTION_CREATE", in_dm)
    in_server = fake_discord.command_interaction(BEA, "persona", "casual", in_guild=True)
    await deliver(fake_discord, adapter, "INTERACTION_CREATE", in_server)

    done = str(original(fake_discord, in_dm)["content"])
    assert done.startswith("Done.\nHow you asked me to talk to you:\n- a formal way of talking")
    assert original(fake_discord, in_server)["content"] == PRIVATE_ONLY
    user = await discord_user(services)
    assert (await services.users.conversation(user.id)).persona_overrides == {"formality": "formal"}
