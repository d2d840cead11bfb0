"""Several runners at once, on a database of their own with a real pool: each user's
batch is processed by exactly one of them, and conversations go on meanwhile."""

from __future__ import annotations

import asyncio
import re
from collections import Counter

import pytest

from core.jobs.memory import MemoryJob
from core.services import Services
from core.storage.memory_store import MemoryStore
from fakes.channel import RecordingChannel
from fakes.openai_server import Delay, FakeOpenAI
from tests.core.engine_helpers import engine_with, inbound
from tests.core.jobs.memory.helpers import ScriptedModel, conversation, fact, read_position, update

_WHO = re.compile(r"I am (person-\d+)")


async def test_two_runners_process_each_user_once(pooled: Services, fake_llm: FakeOpenAI) -> None:
    model = ScriptedModel(extraction=lambda prompt: update(fact("Likes tea")))
    fake_llm.responder = model
    users = [
        (await conversation(pooled, f"p{i}", [f"I am person-{i}", "I like tea"])) for i in range(8)
    ]

    first, second = MemoryJob(pooled, concurrency=3), MemoryJob(pooled, concurrency=3)
    outcomes = await asyncio.gather(first.run(), second.run())

    assert sum(o.counts["users"] for o in outcomes) == 8
    assert not any(o.errors for o in outcomes)
    seen = Counter(who for p in model.extraction_prompts for who in _WHO.findall(p))
    assert seen == {f"person-{i}": 1 for i in range(8)}
    for user_id, ids in users:
        assert await read_position(pooled, user_id) == ids[-1]
        assert (await pooled.users.conversation(user_id)).summary_version == 1
        assert len(await pooled.facts.all(user_id)) == 1


async def test_a_user_claimed_elsewhere_is_skipped(pooled: Services, fake_llm: FakeOpenAI) -> None:
    fake_llm.responder = ScriptedModel()
    claimed, _ = await conversation(pooled, "q1", ["hello"])
    free, _ = await conversation(pooled, "q2", ["hello"])
    store = MemoryStore(pooled.db)
    async with pooled.db.connection() as other_runner:
        assert await store.try_claim(claimed, conn=other_runner)
        outcome = await MemoryJob(pooled).run()
        await store.release(claimed, conn=other_runner)
    assert outcome.counts["users"] == 1
    assert outcome.counts["skipped"] == 1
    assert await read_position(pooled, claimed) == 0
    assert await read_position(pooled, free) > 0

    assert (await MemoryJob(pooled).run()).counts["users"] == 1
    assert await read_position(pooled, claimed) > 0


async def test_the_user_can_chat_while_the_job_thinks(
    pooled: Services, fake_llm: FakeOpenAI
) -> None:
    model = ScriptedModel()
    fake_llm.responder = model
    engine = engine_with(pooled)
    channel = RecordingChannel()
    await engine.handle(inbound("first message", user="r1"), channel)
    found = await pooled.users.find("telegram:r1")
    assert found is not None
    requests_before = len(fake_llm.chat_requests)

    fake_llm.push_fault(Delay(30))  # the extraction call hangs until the test is done
    running = asyncio.create_task(MemoryJob(pooled).run())
    # The fake server records a request before delaying it, but offers no event.
    while len(fake_llm.chat_requests) == requests_before:  # noqa: ASYNC110
        await asyncio.sleep(0.01)

    await asyncio.wait_for(engine.handle(inbound("second message", user="r1"), channel), 10)
    assert channel.last == "echo"
    assert not running.done()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert await read_position(pooled, found.id) == 0
