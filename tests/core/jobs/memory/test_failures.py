"""A failure in the middle of a user's update leaves that user as before; the next run
completes it. Other users of the same run are not affected."""

from __future__ import annotations

from typing import Any

from core.jobs.memory import MemoryJob
from core.jobs.memory.reconciliation import Reconciler
from core.services import Services
from core.storage.database import Connection
from fakes.openai_server import FakeOpenAI
from tests.core.jobs.memory.helpers import (
    ScriptedModel,
    conversation,
    fact,
    read_position,
    set_read_position,
    update,
)


class InjectedCrashError(Exception):
    pass


async def _state(services: Services, user_id: int) -> tuple[int, int, int, str]:
    """(read position, summary version, facts, communication style) of a user."""
    conversation_row = await services.users.conversation(user_id)
    async with services.db.connection() as conn:
        style = await conn.fetchval(
            "SELECT communication_style FROM conversation_context WHERE user_id = $1", user_id
        )
    return (
        await read_position(services, user_id),
        conversation_row.summary_version,
        len(await services.facts.all(user_id)),
        str(style),
    )


async def test_a_crash_before_commit_leaves_the_user_intact(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    fake_llm.responder = ScriptedModel(extraction=lambda prompt: update(fact("Likes tea")))
    users = [(await conversation(services, name, ["hi there"]))[0] for name in ("ka", "kb", "kc")]
    victim = users[1]
    before = await _state(services, victim)

    async def crash_for_victim(user_id: int, conn: Connection) -> None:
        if user_id == victim:
            raise InjectedCrashError

    outcome = await MemoryJob(services, before_commit=crash_for_victim).run()

    assert outcome.counts["users"] == 2
    assert outcome.counts["failed"] == 1
    assert outcome.errors == [f"user {victim}: InjectedCrashError"]
    assert await _state(services, victim) == before
    for other in (users[0], users[2]):
        position, version, facts, _ = await _state(services, other)
        assert (position > 0, version, facts) == (True, 1, 1)
    # Counts of the failed user were not reported as done.
    assert outcome.counts["facts_added"] == 2

    again = await MemoryJob(services).run()
    assert again.counts["users"] == 1
    assert (await _state(services, victim))[1:] == (1, 1, "short and direct")


async def test_a_model_failure_for_the_second_user_is_retried_next_run(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    down = {"on": True}

    def extraction(prompt: str) -> dict[str, object]:
        return update(fact("Says hello"))

    model = ScriptedModel(extraction=extraction)

    def responder(body: dict[str, Any]) -> str:
        # For the second user only, the model answers without any JSON object (both
        # the structured request and the client's prompted fallback).
        if down["on"] and "second user" in str(body["messages"]):
            return "sorry, I cannot do that"
        return model(body)

    fake_llm.responder = responder
    first, _ = await conversation(services, "la", ["hello from the first user"])
    second, _ = await conversation(services, "lb", ["hello from the second user"])
    third, _ = await conversation(services, "lc", ["hello from the third user"])

    outcome = await MemoryJob(services).run()

    assert outcome.counts["users"] == 2
    assert outcome.counts["failed"] == 1
    assert "LLMBadResponse" in outcome.errors[0]
    assert await read_position(services, second) == 0
    assert await services.facts.all(second) == []
    assert await read_position(services, first) > 0
    assert await read_position(services, third) > 0

    down["on"] = False
    outcome = await MemoryJob(services).run()
    assert outcome.counts["users"] == 1
    assert await read_position(services, second) > 0
    assert len(await services.facts.all(second)) == 1


async def test_malformed_fields_are_dropped_not_stored(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    fake_llm.responder = ScriptedModel(
        extraction=lambda prompt: {
            "facts": [{"content": ""}, "nonsense", {"content": "Likes tea", "importance": 99}],
            "summary": 42,
            "insights": "not a list",
        }
    )
    user_id, _ = await conversation(services, "ma", ["hello"])
    outcome = await MemoryJob(services).run()
    assert outcome.counts["users"] == 1
    (stored,) = await services.facts.all(user_id)
    assert (stored.content, stored.importance) == ("Likes tea", 10)
    assert (await services.users.conversation(user_id)).summary == ""
    assert await read_position(services, user_id) > 0


class _Overtaken(Reconciler):
    """Moves the read position while the job is thinking, as another runner would."""

    def __init__(self, services: Services, position: int) -> None:
        super().__init__(services.llm, services.recall)
        self._services = services
        self._position = position

    async def plan(self, user_id, candidates, embeddings, *, conn=None):  # type: ignore[no-untyped-def]
        await set_read_position(self._services, user_id, self._position)
        return await super().plan(user_id, candidates, embeddings, conn=conn)


async def test_a_position_moved_meanwhile_writes_nothing(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    fake_llm.responder = ScriptedModel(extraction=lambda prompt: update(fact("Likes tea")))
    user_id, ids = await conversation(services, "na", ["hello", "tea"])
    outcome = await MemoryJob(services, reconciler=_Overtaken(services, ids[1])).run()
    assert outcome.counts["skipped"] == 1
    assert outcome.counts["users"] == 0
    assert await services.facts.all(user_id) == []
    assert (await services.users.conversation(user_id)).summary_version == 0
    assert await read_position(services, user_id) == ids[1]
