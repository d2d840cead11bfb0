"""Nothing Discord delivered is lost: Discord never delivers a message twice, so the
adapter answers what a dead process left pending, tells the person when a reply is
cut short at shutdown, and catches up on DMs written while no process was connected."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from adapters.chunking import STREAMING_CURSOR
from adapters.discord import DiscordAdapter
from core.llm.client import ChatClient
from core.models import MessageStatus, Platform
from core.notices import INTERRUPTED
from core.services import Services
from core.storage.turns import NewMessage, ReadLimits, TurnStore
from fakes.discord_gateway import BOT_ID, BOT_NAME, TEXT_CHANNEL_ID, FakeDiscord, user_payload
from fakes.service import SlowLLM, eventually
from tests.adapters.discord.conftest import StartAdapter, deliver

ALICE_ID, BOB_ID, CAROL_ID, DAVE_ID = 5151, 5252, 5353, 5454
ALICE = user_payload(ALICE_ID, "alice")
BOB = user_payload(BOB_ID, "bob")
BOT = user_payload(BOT_ID, BOT_NAME, bot=True)


async def _left_pending(
    services: Services, dead: TurnStore, author_id: int, text: str, chat_id: str, message_id: str
) -> int:
    """What a process that died mid-reply leaves behind: the message stored, pending,
    its turn held by `dead` (whose lease runs out). Its id."""
    private = chat_id != str(TEXT_CHANNEL_ID)
    user, _ = await services.users.get_or_create(
        Platform.DISCORD, str(author_id), private_chat_id=chat_id if private else None
    )
    new = NewMessage(text, Platform.DISCORD, chat_id, message_id, None, shared_chat=not private)
    limits = ReadLimits(window=10, facts=5, shared_chat=not private)
    opened = await dead.open(user.id, new, limits, take_lease=True)
    assert opened.message is not None
    return opened.message.id


async def _status(services: Services, author_id: int, message_id: int) -> MessageStatus | None:
    user = await services.users.find(f"discord:{author_id}")
    assert user is not None
    message = await services.messages.get(user.id, message_id)
    assert message is not None
    return message.status


async def test_messages_a_dead_process_left_pending_are_answered_where_they_came_from(
    adapter: DiscordAdapter, fake_discord: FakeDiscord, services: Services
) -> None:
    dm = fake_discord.dm_message(ALICE, "still there?")
    mention = fake_discord.guild_message(BOB, f"<@{BOT_ID}> anyone?", mentions=[BOT])
    gone = fake_discord.dm_message(user_payload(CAROL_ID, "carol"), "deleted since")
    for message in (dm, mention):
        fake_discord.sent_while_down(message)  # in their channels; `gone` is not
    dead = TurnStore(services.db, holder=uuid.uuid4(), lease_seconds=0.1)
    ids = {
        "dm": await _left_pending(
            services, dead, ALICE_ID, "still there?", dm["channel_id"], dm["id"]
        ),
        "mention": await _left_pending(
            services, dead, BOB_ID, "anyone?", mention["channel_id"], mention["id"]
        ),
        "gone": await _left_pending(
            services, dead, CAROL_ID, "deleted since", gone["channel_id"], gone["id"]
        ),
        "no channel": await _left_pending(
            services, dead, DAVE_ID, "channel deleted", str(fake_discord.new_id()), "1"
        ),
    }

    async def all_done() -> bool:
        statuses = [
            await _status(services, author, ids[key])
            for key, author in (
                ("dm", ALICE_ID),
                ("mention", BOB_ID),
                ("gone", CAROL_ID),
                ("no channel", DAVE_ID),
            )
        ]
        return statuses == [MessageStatus.ANSWERED] * 2 + [MessageStatus.FAILED] * 2

    # The running adapter finds them once their turns expire (it looks every few seconds).
    await eventually(all_done, within=20, what="the orphans answered or failed")

    assert fake_discord.texts_in(int(dm["channel_id"])) == ["echo: still there?"]
    [answer] = fake_discord.sent_to(TEXT_CHANNEL_ID)
    assert answer["content"] == "echo: anyone?"
    assert str(answer["message_reference"]["message_id"]) == mention["id"]  # quoted, as live
    assert fake_discord.sent_to(int(gone["channel_id"])) == []


@pytest.fixture
async def slow_llm() -> AsyncIterator[ChatClient]:
    """A model client whose answers stream one word every 0.3 s."""
    async with SlowLLM(embedding_dimensions=384, word_delay=0.3) as llm:
        llm.push_reply(" ".join(["word"] * 200))
        async with ChatClient(
            base_url=llm.base_url, api_key="test", model="fake-model", max_retries=0
        ) as client:
            yield client


async def test_a_reply_cut_short_at_stop_is_failed_and_the_person_told(
    start_adapter: StartAdapter,
    fake_discord: FakeDiscord,
    services: Services,
    slow_llm: ChatClient,
) -> None:
    adapter = await start_adapter(stop_timeout=0.05, llm=slow_llm)
    dm = fake_discord.dm_channel_id(ALICE_ID)
    await fake_discord.dispatch("MESSAGE_CREATE", fake_discord.dm_message(ALICE, "tell me all"))
    await eventually(
        lambda: [t[-2:] for t in fake_discord.texts_in(dm)] == [STREAMING_CURSOR],
        what="a preview of the reply",
    )

    await adapter.stop()

    [preview, notice] = fake_discord.texts_in(dm)
    assert preview.endswith(STREAMING_CURSOR)
    assert notice == INTERRUPTED
    user = await services.users.find(f"discord:{ALICE_ID}")
    assert user is not None
    [message] = await services.messages.history(user.id)
    assert message.status is MessageStatus.FAILED


async def test_dms_written_while_the_bot_was_down_are_answered_once_after_start(
    start_adapter: StartAdapter, fake_discord: FakeDiscord
) -> None:
    dm = fake_discord.dm_channel_id(ALICE_ID)
    first = await start_adapter()
    await deliver(fake_discord, first, "MESSAGE_CREATE", fake_discord.dm_message(ALICE, "before"))
    await first.stop()
    for text in ("while you were away", "and this", "/help"):
        fake_discord.sent_while_down(fake_discord.dm_message(ALICE, text))
    mention = fake_discord.guild_message(BOB, f"<@{BOT_ID}> and me?", mentions=[BOT])
    fake_discord.sent_while_down(mention)

    second = await start_adapter()
    await eventually(lambda: not second.catching_up and second.in_flight == 0)

    texts = fake_discord.texts_in(dm)
    answers = [text for text in texts if text.startswith("echo: ")]
    assert answers == ["echo: before", "echo: while you were away", "echo: and this"]
    assert len(texts) == 4  # and the help (commands do not wait for the person's turn)
    # Only DMs are caught up: server channels are not read.
    assert fake_discord.sent_to(TEXT_CHANNEL_ID) == []
    assert fake_discord.calls_to("GET", rf"/channels/{TEXT_CHANNEL_ID}/messages") == []

    # The next start reads the DM again after the newest stored message: the command
    # that ran is not run again, the bot's own replies are not answered.
    await second.stop()
    third = await start_adapter()
    await eventually(lambda: not third.catching_up and third.in_flight == 0)
    assert len(fake_discord.calls_to("GET", rf"/channels/{dm}/messages")) == 2
    assert fake_discord.texts_in(dm) == texts
