"""The engine under slow models: no connection held while the model writes, a cap on
model calls, a deadline per reply, and what happens to a turn cut short."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import timedelta

import pytest

from core.engine import Engine
from core.models import Message, MessageRole, MessageStatus, Platform
from core.notices import INTERNAL_ERROR, INTERRUPTED, STILL_WORKING, TOO_SLOW
from core.ports import ReplyChannel
from core.services import Services
from core.storage.database import Database, create_pool
from core.storage.handled_commands import HandledCommandRepository
from core.storage.turns import NewMessage, ReadLimits, TurnStore
from fakes.channel import RecordingChannel, RecordingSink
from fakes.openai_server import Delay, FakeOpenAI
from fakes.telegram_api import wait_until
from tests.core.engine_helpers import engine_with, inbound


@pytest.fixture
async def small_pool(fresh_dsn: str, services: Services) -> AsyncIterator[Services]:
    """The services on a pool of two connections."""
    pool = await create_pool(fresh_dsn, min_size=1, max_size=2)
    try:
        yield replace(services, db=Database(pool))
    finally:
        await pool.close()


async def _statuses(services: Services, who: str) -> list[tuple[str, MessageStatus | None]]:
    user = await services.users.find(f"telegram:{who}")
    assert user is not None
    return [(m.content, m.status) for m in reversed(await services.messages.history(user.id))]


async def test_people_stream_at_once_on_a_pool_of_two(
    small_pool: Services, fake_llm: FakeOpenAI
) -> None:
    """Eight replies in flight at once on two connections, and a command from someone
    else answered meanwhile: nobody waits for a connection while a model writes."""
    engine = engine_with(small_pool)
    fake_llm.push_fault(*(Delay(3.0) for _ in range(8)))
    channels = [RecordingChannel() for _ in range(8)]
    stored: list[int] = []
    writing = [
        asyncio.create_task(
            engine.handle(
                inbound(f"hi {i}", user=f"p{i}"),
                channels[i],
                on_stored=functools.partial(stored.append, i),
            )
        )
        for i in range(8)
    ]
    await wait_until(lambda: len(fake_llm.chat_requests) == 8)
    assert sorted(stored) == list(range(8))  # acknowledged before any reply
    helper = RecordingChannel()
    await asyncio.wait_for(engine.handle(inbound("/help", user="other"), helper), 2.0)
    assert helper.sent and not any(t.done() for t in writing)
    await asyncio.gather(*writing)
    assert [c.texts for c in channels] == [[f"echo: hi {i}"] for i in range(8)]


async def test_model_calls_are_capped_and_the_queued_see_typing(
    pooled: Services, fake_llm: FakeOpenAI
) -> None:
    engine = engine_with(pooled, llm_max_concurrency=2)
    fake_llm.push_fault(*(Delay(2.0) for _ in range(4)))
    channels = [RecordingChannel() for _ in range(4)]
    tasks = [
        asyncio.create_task(engine.handle(inbound(f"q{i}", user=f"c{i}"), channels[i]))
        for i in range(4)
    ]
    await wait_until(lambda: len(fake_llm.chat_requests) == 2)
    await asyncio.sleep(0.3)
    assert len(fake_llm.chat_requests) == 2  # the other two wait for a slot
    assert all(c.typing_count >= 1 for c in channels)
    await asyncio.gather(*tasks)
    assert len(fake_llm.chat_requests) == 4
    assert sorted(c.last for c in channels) == [f"echo: q{i}" for i in range(4)]
    # Each reply's snapshot keeps how long it waited for a model slot.
    waited = []
    for i in range(4):
        user = await pooled.users.find(f"telegram:c{i}")
        assert user is not None
        reply = (await pooled.messages.history(user.id, limit=1))[0]
        assert reply.role is MessageRole.ASSISTANT and reply.context_snapshot is not None
        waited.append(reply.context_snapshot["timings_ms"]["model_slot_ms"])
    first, second = sorted(waited)[:2], sorted(waited)[2:]
    assert all(ms < 500 for ms in first) and all(ms >= 1500 for ms in second)


async def test_a_reply_past_its_deadline_is_given_up_and_retryable(
    pooled: Services, fake_llm: FakeOpenAI
) -> None:
    engine = engine_with(pooled, reply_deadline_seconds=0.3)
    fake_llm.push_fault(Delay(5.0))
    channel = RecordingChannel()
    await engine.handle(inbound("too slow", user="late"), channel)
    assert channel.texts == [TOO_SLOW]
    assert await _statuses(pooled, "late") == [("too slow", MessageStatus.FAILED)]
    await engine.handle(inbound("/retry", user="late"), channel)
    assert channel.last == "echo: too slow"


async def test_a_turn_cancelled_mid_reply_is_failed_and_the_person_told(
    pooled: Services, fake_llm: FakeOpenAI
) -> None:
    engine = engine_with(pooled)
    fake_llm.push_fault(Delay(30.0))
    channel = RecordingChannel()
    task = asyncio.create_task(engine.handle(inbound("cut short", user="cut"), channel))
    await wait_until(lambda: len(fake_llm.chat_requests) == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert channel.sent == [INTERRUPTED]
    assert await _statuses(pooled, "cut") == [("cut short", MessageStatus.FAILED)]


async def test_retry_while_the_reply_is_being_written_does_not_answer_twice(
    pooled: Services, fake_llm: FakeOpenAI
) -> None:
    """A /retry of a message that looks stuck (the clock moved on) is checked again
    under the person's turn order, in this process and on another replica."""
    engine = engine_with(pooled)
    fake_llm.push_fault(Delay(1.0))
    channel = RecordingChannel()
    first = asyncio.create_task(engine.handle(inbound("slow", user="eager"), channel))
    await wait_until(lambda: len(fake_llm.chat_requests) == 1)
    started = pooled.clock()
    pooled.clock = lambda: started + timedelta(hours=1)
    await engine.handle(inbound("/retry", user="eager"), channel)
    assert channel.sent == [STILL_WORKING]
    replica = engine_with(pooled)
    await replica.handle(inbound("/retry", user="eager"), channel)
    assert channel.sent == [STILL_WORKING, STILL_WORKING]
    await first
    assert channel.last == "echo: slow"
    assert len(fake_llm.chat_requests) == 1


async def test_a_command_an_outage_interrupted_runs_when_delivered_again(
    services: Services,
) -> None:
    engine = engine_with(services)
    channel = RecordingChannel()
    admission = await services.users.get_or_create(Platform.TELEGRAM, "u1")
    # Claimed, then the database went away before the command finished.
    claims = HandledCommandRepository(services.db)
    assert await claims.claim(
        admission[0].id, Platform.TELEGRAM, "chat-u1", "cmd-9", now=services.clock()
    )
    await engine.handle(inbound("/help", message_id="cmd-9"), channel)
    assert len(channel.sent) == 1  # it ran
    await engine.handle(inbound("/help", message_id="cmd-9"), channel)
    assert len(channel.sent) == 1  # and only once


async def test_start_up_answers_messages_a_dead_process_left_pending(
    pooled: Services, fake_llm: FakeOpenAI
) -> None:
    user, _ = await pooled.users.get_or_create(
        Platform.TELEGRAM, "orphan", private_chat_id="chat-orphan"
    )
    dead = TurnStore(pooled.db, holder=uuid.uuid4(), lease_seconds=0.1)
    new = NewMessage("still there?", Platform.TELEGRAM, "chat-orphan", "m-1", None)
    limits = ReadLimits(window=10, facts=5, shared_chat=False)
    opened = await dead.open(user.id, new, limits, take_lease=True)
    assert opened.message is not None
    await asyncio.sleep(0.2)  # the process died: its turn expires
    channels: dict[str, RecordingChannel] = {}

    @asynccontextmanager
    async def channel_for(message: Message, private: bool) -> AsyncIterator[ReplyChannel]:
        assert private
        yield channels.setdefault(str(message.chat_id), RecordingChannel())

    engine: Engine = engine_with(pooled)
    assert await engine.recover(Platform.TELEGRAM, channel_for) == 1
    assert channels["chat-orphan"].texts == ["echo: still there?"]
    assert await engine.recover(Platform.TELEGRAM, channel_for) == 0
    history = await pooled.messages.history(user.id)
    assert [m.role for m in reversed(history)] == [MessageRole.USER, MessageRole.ASSISTANT]


async def test_a_turn_a_bug_ends_is_failed_and_the_next_one_goes_on(
    pooled: Services, fake_llm: FakeOpenAI
) -> None:
    """An unexpected error in the middle of a turn ends it: the message is left failed,
    the person gets the apology, and their next message is not kept waiting for it."""

    class Breaking(RecordingChannel):
        def start_reply(self) -> RecordingSink:
            if not self.replies:
                self.replies.append(RecordingSink())
                raise RuntimeError("a bug")
            return super().start_reply()

    engine = engine_with(pooled)
    channel = Breaking()
    await engine.handle(inbound("first", user="unlucky"), channel)
    assert channel.sent == [INTERNAL_ERROR]
    await asyncio.wait_for(engine.handle(inbound("second", user="unlucky"), channel), 10)
    assert channel.last == "echo: second"
    assert (await _statuses(pooled, "unlucky"))[0] == ("first", MessageStatus.ANSWERED)
