"""Messages through real discord.py, the fake Discord API and the real engine."""

from __future__ import annotations

from adapters.discord import DiscordAdapter
from core.media.texts import NO_VISION
from core.services import Services
from fakes.discord_gateway import (
    BOT_ID,
    BOT_NAME,
    BOT_ROLE_ID,
    TEXT_CHANNEL_ID,
    THREAD_ID,
    FakeDiscord,
    user_payload,
)
from fakes.openai_server import FakeOpenAI
from tests.adapters.discord.conftest import deliver

ALICE_ID = 4242
ALICE = user_payload(ALICE_ID, "alice")
BOT = user_payload(BOT_ID, BOT_NAME, bot=True)
MESSAGES = r"/channels/\d+/messages"


async def test_dm_conversation_is_answered_stored_and_streamed(
    adapter: DiscordAdapter, fake_discord: FakeDiscord, services: Services
) -> None:
    dm = fake_discord.dm_channel_id(ALICE_ID)
    await deliver(fake_discord, adapter, "MESSAGE_CREATE", fake_discord.dm_message(ALICE, "hello"))
    await deliver(fake_discord, adapter, "MESSAGE_CREATE", fake_discord.dm_message(ALICE, "again"))

    assert fake_discord.texts_in(dm) == ["echo: hello", "echo: again"]
    # Streamed: a first partial message, then edited into the final text.
    assert len(fake_discord.calls_to("POST", MESSAGES)) == 2
    assert fake_discord.calls_to("PATCH", MESSAGES + r"/\d+")
    assert fake_discord.calls_to("POST", rf"/channels/{dm}/typing")
    for sent in fake_discord.sent_to(dm):
        assert "message_reference" not in sent  # no quoting in a DM
        assert sent["allowed_mentions"] == {"parse": []}
    user = await services.users.find(f"discord:{ALICE_ID}")
    assert user is not None
    assert user.display_name == "Alice"
    assert await services.messages.count(user.id) == 4


async def test_a_mention_in_a_guild_is_answered_with_a_reply(
    adapter: DiscordAdapter, fake_discord: FakeDiscord
) -> None:
    message = fake_discord.guild_message(ALICE, f"<@{BOT_ID}> what is up?", mentions=[BOT])
    await deliver(fake_discord, adapter, "MESSAGE_CREATE", message)

    [reply] = fake_discord.sent_to(TEXT_CHANNEL_ID)
    assert reply["content"] == "echo: what is up?"  # the mention is not part of the text
    assert str(reply["message_reference"]["message_id"]) == message["id"]
    assert reply["message_reference"]["fail_if_not_exists"] is False
    # Only the person answered may be pinged; never @everyone, roles or others.
    assert reply["allowed_mentions"] == {"parse": [], "replied_user": True}


async def test_nickname_mentions_role_mentions_and_replies_address_the_bot(
    adapter: DiscordAdapter, fake_discord: FakeDiscord
) -> None:
    nick = fake_discord.guild_message(ALICE, f"hey <@!{BOT_ID}>", mentions=[BOT])
    await deliver(fake_discord, adapter, "MESSAGE_CREATE", nick)
    role = fake_discord.guild_message(
        ALICE, f"<@&{BOT_ROLE_ID}> role call", mention_roles=[BOT_ROLE_ID], channel_id=THREAD_ID
    )
    await deliver(fake_discord, adapter, "MESSAGE_CREATE", role)
    [answer_in_thread] = fake_discord.sent_to(THREAD_ID)
    reply = fake_discord.guild_message(
        ALICE, "and a reply", channel_id=THREAD_ID, reply_to=answer_in_thread
    )
    await deliver(fake_discord, adapter, "MESSAGE_CREATE", reply)

    assert fake_discord.texts_in(TEXT_CHANNEL_ID) == ["echo: hey"]
    assert fake_discord.texts_in(THREAD_ID) == ["echo: role call", "echo: and a reply"]


async def test_unaddressed_guild_messages_and_bots_are_ignored(
    adapter: DiscordAdapter,
    fake_discord: FakeDiscord,
    services: Services,
    fake_llm: FakeOpenAI,
) -> None:
    other = user_payload(777, "bob")
    chatter = fake_discord.guild_message(ALICE, f"talking to <@{other['id']}>", mentions=[other])
    await deliver(fake_discord, adapter, "MESSAGE_CREATE", chatter)
    other_bot = user_payload(999, "otherbot", bot=True)
    await deliver(
        fake_discord, adapter, "MESSAGE_CREATE", fake_discord.dm_message(other_bot, "beep")
    )
    own = fake_discord.guild_message(BOT, f"<@{BOT_ID}> talking to myself", mentions=[BOT])
    await deliver(fake_discord, adapter, "MESSAGE_CREATE", own)

    assert fake_discord.calls_to("POST", MESSAGES) == []
    assert fake_llm.chat_requests == []
    assert await services.users.find(f"discord:{ALICE_ID}") is None
    assert await services.users.find("discord:999") is None


async def test_a_photo_without_vision_is_refused_plainly(
    adapter: DiscordAdapter, fake_discord: FakeDiscord, fake_llm: FakeOpenAI
) -> None:
    photo = fake_discord.attachment("cat.png", "image/png")
    message = fake_discord.dm_message(ALICE, "", attachments=[photo])
    await deliver(fake_discord, adapter, "MESSAGE_CREATE", message)

    assert fake_discord.texts_in(fake_discord.dm_channel_id(ALICE_ID)) == [NO_VISION]
    assert fake_llm.chat_requests == []


async def test_a_long_reply_is_split_at_2000_with_code_blocks_intact(
    adapter: DiscordAdapter, fake_discord: FakeDiscord, fake_llm: FakeOpenAI
) -> None:
    code = "\n".join(f"    print('line {n:04d}')" for n in range(150))
    prose = " ".join(["Some words to fill the message."] * 40)
    long_reply = f"{prose}\n\n```python\n{code}\n```\n\n{prose}"
    fake_llm.push_reply(long_reply)
    await deliver(fake_discord, adapter, "MESSAGE_CREATE", fake_discord.dm_message(ALICE, "code?"))

    texts = fake_discord.texts_in(fake_discord.dm_channel_id(ALICE_ID))
    assert len(texts) >= 3
    assert all(len(text) <= 2000 for text in texts)
    for text in texts:
        assert text.count("```") % 2 == 0  # every message renders on its own
    shown = "\n".join(texts)
    assert all(f"print('line {n:04d}')" in shown for n in range(150))


async def test_a_429_on_send_is_waited_out_and_the_reply_delivered(
    adapter: DiscordAdapter, fake_discord: FakeDiscord
) -> None:
    fake_discord.rate_limit("POST", MESSAGES, retry_after=0.05, times=2)
    await deliver(fake_discord, adapter, "MESSAGE_CREATE", fake_discord.dm_message(ALICE, "hi"))

    assert fake_discord.texts_in(fake_discord.dm_channel_id(ALICE_ID)) == ["echo: hi"]
    assert len(fake_discord.calls_to("POST", MESSAGES)) == 3  # two 429s, then accepted


async def test_a_refused_reply_stays_recorded_and_is_sent_on_redelivery(
    adapter: DiscordAdapter, fake_discord: FakeDiscord, services: Services
) -> None:
    # The first partial message and the final send are both refused.
    fake_discord.fail("POST", MESSAGES, status=403, times=2)
    message = fake_discord.dm_message(ALICE, "are you there?")
    await deliver(fake_discord, adapter, "MESSAGE_CREATE", message)
    dm = fake_discord.dm_channel_id(ALICE_ID)
    assert fake_discord.texts_in(dm) == []
    user = await services.users.find(f"discord:{ALICE_ID}")
    assert user is not None
    assert await services.messages.count(user.id) == 2  # the reply is recorded

    await deliver(fake_discord, adapter, "MESSAGE_CREATE", message)  # Discord resends it
    assert fake_discord.texts_in(dm) == ["echo: are you there?"]
    assert await services.messages.count(user.id) == 2
