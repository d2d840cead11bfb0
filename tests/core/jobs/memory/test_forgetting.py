"""`/forget all` while the memory job works on the same person: whatever the order,
nothing forgotten comes back."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence

from core.embedding.base import Vector
from core.jobs.memory import MemoryJob
from core.jobs.memory.extraction import Candidate
from core.jobs.memory.reconciliation import FactChange, Reconciler
from core.models import Platform
from core.services import Services
from core.snapshot import ContextSnapshot
from core.storage.database import Connection
from core.storage.memory_store import MEMORY_LOCK_CLASS, lock_key
from core.storage.turns import NewMessage, ReadLimits, Reply, TurnStore
from fakes.openai_server import FakeOpenAI
from tests.core.commands import run
from tests.core.jobs.memory.helpers import ScriptedModel, conversation, fact, read_position, update


class ThinkingReconciler(Reconciler):
    """Plans as usual, then runs `meanwhile` before the job applies the plan: the
    moment between reading a batch and writing what it taught."""

    def __init__(self, services: Services, meanwhile: Callable[[], Awaitable[None]]) -> None:
        super().__init__(services.llm, services.recall)
        self._meanwhile = meanwhile

    async def plan(
        self,
        user_id: int,
        candidates: Sequence[Candidate],
        embeddings: Sequence[Vector],
        *,
        conn: Connection | None = None,
    ) -> list[FactChange]:
        changes = await super().plan(user_id, candidates, embeddings, conn=conn)
        await self._meanwhile()
        return changes


def teaches_rex(fake_llm: FakeOpenAI) -> None:
    fake_llm.responder = ScriptedModel(
        extraction=lambda prompt: update(fact("Has a dog named Rex"), summary="Ann has Rex.")
    )


async def assert_forgotten(services: Services, user_id: int, position: int) -> None:
    assert await services.facts.all(user_id) == []
    assert (await services.users.conversation(user_id)).summary == ""
    assert await services.messages.count(user_id) == 0
    assert await read_position(services, user_id) == position
    memory = await services.users.conversation(user_id)
    assert memory.summary_through_message_id == position


async def test_a_run_that_read_before_forget_all_writes_nothing(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    """The run's claim and the command share one session here, so the command does not
    wait: the run's apply step finds the read position moved and writes nothing."""
    teaches_rex(fake_llm)
    user_id, ids = await conversation(services, "fa", ["I have a dog named Rex"])
    user = await services.users.get(user_id)
    assert user is not None
    replies: list[str] = []

    async def forget_all() -> None:
        replies.append((await run(services, user, "/forget all confirm")).text)

    outcome = await MemoryJob(services, reconciler=ThinkingReconciler(services, forget_all)).run()

    assert replies and replies[0].startswith("Done.")
    assert outcome.counts["skipped"] == 1
    assert outcome.counts["users"] == 0 and outcome.counts["facts_added"] == 0
    await assert_forgotten(services, user_id, ids[-1])


async def waits_for_the_memory_lock(services: Services, user_id: int) -> bool:
    async with services.db.connection() as conn:
        return bool(
            await conn.fetchval(
                "SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory'"
                " AND NOT granted AND classid::bigint = $1 AND objid::bigint = $2)",
                MEMORY_LOCK_CLASS,
                lock_key(user_id),
            )
        )


async def test_forget_all_waits_for_a_running_job_then_forgets_what_it_wrote(
    pooled: Services, fake_llm: FakeOpenAI
) -> None:
    teaches_rex(fake_llm)
    user_id, ids = await conversation(pooled, "fb", ["I have a dog named Rex"])
    user = await pooled.users.get(user_id)
    assert user is not None
    thinking, go_on = asyncio.Event(), asyncio.Event()

    async def pause() -> None:
        thinking.set()
        await go_on.wait()

    running = asyncio.create_task(
        MemoryJob(pooled, reconciler=ThinkingReconciler(pooled, pause)).run()
    )
    await asyncio.wait_for(thinking.wait(), 10)
    forgetting = asyncio.create_task(run(pooled, user, "/forget all confirm"))
    # pg_locks offers no event to wait for.
    while not await waits_for_the_memory_lock(pooled, user_id):  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    assert not forgetting.done()

    go_on.set()
    outcome = await asyncio.wait_for(running, 10)
    assert outcome.counts["users"] == 1 and outcome.counts["facts_added"] == 1
    done = await asyncio.wait_for(forgetting, 10)

    assert done.text.startswith("Done. I forgot everything I had learned about you (1 fact,")
    await assert_forgotten(pooled, user_id, ids[-1])
    # A later run finds nothing to read, so nothing comes back.
    assert (await MemoryJob(pooled).run()).counts["users"] == 0
    assert await pooled.facts.all(user_id) == []


async def test_the_reply_to_a_message_kept_by_forget_all_is_not_learned_from(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    """A message being answered while the person forgets everything is kept (set
    aside); the reply recorded afterwards is not learned from either."""
    model = ScriptedModel(extraction=lambda prompt: update(fact("Has a dog named Rex")))
    fake_llm.responder = model
    user_id, _ = await conversation(services, "fc", ["hello"])
    user = await services.users.get(user_id)
    assert user is not None
    turns = TurnStore(services.db, holder=uuid.uuid4(), lease_seconds=30)
    opened = await turns.open(
        user_id,
        NewMessage("my dog is called Rex", Platform.TELEGRAM, "chat", "m-rex", None),
        ReadLimits(window=5, facts=5, shared_chat=False),
        take_lease=True,
    )
    assert opened.message is not None and opened.message.remembered

    await run(services, user, "/forget all confirm")
    snapshot = ContextSnapshot(
        summary_version=0,
        fact_ids=(),
        recalled=(),
        window_ids=(),
        shared_chat=False,
        tokens={},
        model="fake-model",
        tokens_in=1,
        tokens_out=1,
        timings_ms={},
    )
    reply = await turns.close(
        user_id,
        opened.message,  # as read when the turn began: still remembered then
        Reply("Rex is a fine name", snapshot, 1, 1, "fake-model", 1, None),
        delivered=True,
    )
    outcome = await MemoryJob(services).run()

    assert model.extraction_prompts == []
    assert outcome.counts["passed_over"] == 1
    assert await read_position(services, user_id) == reply.id
    assert await services.facts.all(user_id) == []
    assert not reply.remembered  # so recall never finds it either
