"""The memory job on the real database, with the real embedder, and a scripted model
behind the fake OpenAI server (`ScriptedModel`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.models import NewFact
from core.services import Services
from fakes.openai_server import FakeOpenAI
from tests.core.jobs.memory.helpers import (
    NOW,
    ScriptedModel,
    conversation,
    fact,
    job,
    message_ids,
    read_position,
    say,
    update,
)


async def test_new_facts_are_stored_with_sources_embeddings_and_time(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    user_id, ids = await conversation(services, "ann", ["I'm Ann, a nurse", "I have a dog, Rex"])
    async with services.db.connection() as conn:
        await conn.execute(
            "UPDATE messages SET created_at = $2 WHERE id = $1",
            ids[2],
            datetime(2025, 3, 13, 9, 30, tzinfo=UTC),
        )
    model = ScriptedModel(
        extraction=lambda prompt: update(
            fact("Works as a nurse", category="work", source_message_ids=[ids[0]]),
            fact("Has a dog named Rex", importance=7, source_message_ids=[ids[2], 999]),
        )
    )
    fake_llm.responder = model

    outcome = await job(services).run()

    assert outcome.counts["users"] == 1
    assert outcome.counts["messages"] == 4
    assert outcome.counts["facts_added"] == 2
    assert not outcome.errors
    # Every message is shown with its id, UTC time and weekday (relative dates).
    assert message_ids(model.extraction_prompts[0]) == ids
    line = f"[#{ids[2]}, 2025-03-13 09:30 UTC, Thursday] user: I have a dog, Rex"
    assert line in model.extraction_prompts[0]
    assert model.reconciliation_items == []  # nothing stored yet to compare with
    stored = {f.content: f for f in await services.facts.valid(user_id)}
    assert set(stored) == {"Works as a nurse", "Has a dog named Rex"}
    dog = stored["Has a dog named Rex"]
    assert dog.source_message_ids == (ids[2],)  # unknown ids dropped
    assert dog.importance == 7
    assert dog.valid_from == datetime(2025, 3, 13, 9, 30, tzinfo=UTC)
    assert stored["Works as a nurse"].category == "work"
    async with services.db.connection() as conn:
        dims = await conn.fetch(
            "SELECT vector_dims(embedding) AS d FROM facts WHERE user_id = $1", user_id
        )
    assert [r["d"] for r in dims] == [384, 384]


async def test_private_facts_are_kept_out_of_shared_chats(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    user_id, _ = await conversation(
        services, "bo", ["Between us: I have diabetes", "I love tea"], in_group=True
    )
    fake_llm.responder = ScriptedModel(
        extraction=lambda prompt: update(
            fact("Has diabetes", category="health", is_private=True), fact("Loves tea")
        )
    )
    await job(services).run()
    everything = {f.content for f in await services.facts.valid(user_id)}
    shareable = {f.content for f in await services.facts.valid(user_id, include_private=False)}
    assert everything == {"Has diabetes", "Loves tea"}
    assert shareable == {"Loves tea"}


async def test_a_fact_said_ten_times_stays_one_fact(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    user_id, _ = await conversation(services, "cy", [])
    model = ScriptedModel(
        # Said twice in each batch, too.
        extraction=lambda prompt: update(fact("Likes green tea"), fact("Likes green tea"))
    )
    fake_llm.responder = model
    said: list[int] = []
    for i in range(10):
        said += await say(services, user_id, [f"green tea again ({i})"], replies=False)
        outcome = await job(services).run()
        assert outcome.counts["users"] == 1
    facts = await services.facts.all(user_id)
    assert [f.content for f in facts] == ["Likes green tea"]
    assert sorted(facts[0].source_message_ids) == said
    assert outcome.counts["facts_restated"] == 1
    assert model.reconciliation_items == []  # identical: no need to ask


async def test_a_refined_fact_is_updated(services: Services, fake_llm: FakeOpenAI) -> None:
    user_id, first = await conversation(services, "di", ["I have a dog"], replies=False)
    model = ScriptedModel(extraction=lambda prompt: update(fact("Has a dog")))
    fake_llm.responder = model
    await job(services).run()
    (dog,) = await services.facts.valid(user_id)
    assert dog.is_private  # said in the private chat

    # Refined in a group: the fact stays private all the same.
    second = await say(services, user_id, ["His name is Rex"], replies=False, in_group=True)
    model.extraction = lambda prompt: update(fact("Has a dog named Rex"))
    model.reconciliation = lambda items: {
        "decisions": [{"candidate": 0, "action": "update", "fact_id": dog.id}]
    }
    outcome = await job(services).run()

    assert outcome.counts["facts_updated"] == 1
    (item,) = model.reconciliation_items[0]
    assert item["content"] == "Has a dog named Rex"
    assert [f["fact_id"] for f in item["stored_facts"]] == [dog.id]
    (updated,) = await services.facts.all(user_id)
    assert updated.id == dog.id
    assert updated.content == "Has a dog named Rex"
    assert sorted(updated.source_message_ids) == first + second
    assert updated.is_private


async def test_a_contradicted_fact_is_invalidated_not_deleted(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    user_id, _ = await conversation(services, "ed", ["I live in Berlin"], replies=False)
    model = ScriptedModel(extraction=lambda prompt: update(fact("Lives in Berlin")))
    fake_llm.responder = model
    await job(services).run()
    (berlin,) = await services.facts.valid(user_id)

    (moved,) = await say(services, user_id, ["I moved to Paris"], replies=False)
    moved_at = await services.messages.get(user_id, moved)
    assert moved_at is not None
    model.extraction = lambda prompt: update(fact("Lives in Paris"))
    model.reconciliation = lambda items: {
        "decisions": [{"candidate": 0, "action": "invalidate", "fact_id": berlin.id}]
    }
    outcome = await job(services).run()

    assert outcome.counts["facts_invalidated"] == 1
    assert outcome.counts["facts_added"] == 1
    assert [f.content for f in await services.facts.valid(user_id)] == ["Lives in Paris"]
    old = {f.id: f for f in await services.facts.all(user_id)}[berlin.id]
    assert old.invalid_at == moved_at.created_at


async def test_unusable_decisions_keep_the_information(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    user_id, _ = await conversation(services, "fa", ["I work as a nurse"], replies=False)
    model = ScriptedModel(extraction=lambda prompt: update(fact("Works as a nurse")))
    fake_llm.responder = model
    await job(services).run()
    await say(services, user_id, ["Now I teach"], replies=False)
    model.extraction = lambda prompt: update(fact("Works as a teacher"), fact("Likes chess"))
    # An update of a fact that was not offered, and no decision at all for the other.
    model.reconciliation = lambda items: {
        "decisions": [{"candidate": 0, "action": "update", "fact_id": 123456}]
    }
    await job(services).run()
    contents = sorted(f.content for f in await services.facts.valid(user_id))
    assert contents == ["Likes chess", "Works as a nurse", "Works as a teacher"]


async def test_summary_and_profile_are_updated_and_bounded(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    user_id, ids = await conversation(services, "gu", ["hello", "tell me about tea"])
    long_summary = " ".join(f"Sentence number {i} about tea." for i in range(100))
    model = ScriptedModel(
        extraction=lambda prompt: update(
            summary=long_summary,
            insights=["likes examples", "Likes examples", "asks follow-ups"],
            communication_style="Writes in lowercase.",
            themes=["tea", "travel"],
        )
    )
    fake_llm.responder = model
    await job(services, summary_max_chars=300).run()

    conversation_row = await services.users.conversation(user_id)
    assert 0 < len(conversation_row.summary) <= 300
    assert conversation_row.summary.startswith("Sentence number")
    assert conversation_row.summary.endswith("Sentence number 99 about tea.")
    assert conversation_row.summary_version == 1
    assert conversation_row.summary_through_message_id == ids[-1]
    async with services.db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT insights, communication_style, themes, updated_at"
            " FROM conversation_context WHERE user_id = $1",
            user_id,
        )
    assert row is not None
    assert row["insights"] == ["likes examples", "asks follow-ups"]
    assert row["communication_style"] == "Writes in lowercase."
    assert row["themes"] == ["tea", "travel"]
    assert row["updated_at"] == NOW

    # The next run starts from the stored summary; an empty rewrite keeps it.
    await say(services, user_id, ["more"])
    model.extraction = lambda prompt: update(summary="")
    await job(services, summary_max_chars=300).run()
    assert "Sentence number 99" in model.extraction_prompts[1]
    again = await services.users.conversation(user_id)
    assert again.summary == conversation_row.summary
    assert again.summary_version == 2


async def test_the_read_position_advances_exactly_once(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    user_id, ids = await conversation(services, "ha", ["one", "two"])
    model = ScriptedModel()
    fake_llm.responder = model
    await job(services).run()
    assert await read_position(services, user_id) == ids[-1]

    outcome = await job(services).run()
    assert outcome.counts["users"] == 0
    assert len(model.extraction_prompts) == 1
    assert (await services.users.conversation(user_id)).summary_version == 1

    more = await say(services, user_id, ["three"])
    await job(services).run()
    assert message_ids(model.extraction_prompts[1]) == more
    assert await read_position(services, user_id) == more[-1]
    assert (await services.users.conversation(user_id)).summary_version == 2


async def test_runs_are_bounded_per_user_and_per_run(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    fake_llm.responder = model = ScriptedModel()
    first, first_ids = await conversation(services, "ia", ["a", "b", "c"], replies=False)
    second, _ = await conversation(services, "ib", ["x"], replies=False)
    third, _ = await conversation(services, "ic", ["y"], replies=False)

    outcome = await job(services, users_per_run=2, messages_per_user=2).run()
    assert outcome.counts["users"] == 2
    assert message_ids(model.extraction_prompts[0]) == first_ids[:2]
    assert await read_position(services, first) == first_ids[1]
    assert await read_position(services, third) == 0

    await job(services, users_per_run=2, messages_per_user=2).run()
    assert await read_position(services, first) == first_ids[2]
    assert await read_position(services, third) > 0
    assert await read_position(services, second) > 0


async def test_an_existing_fact_from_elsewhere_is_reconciled(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    """Facts stored by other paths (commands) take part like the job's own."""
    user_id, _ = await conversation(services, "ja", ["I live in Berlin, Germany"], replies=False)
    (vector,) = await services.embedder.embed(["Lives in Berlin, Germany"])
    stored = await services.facts.add(
        user_id,
        NewFact("Lives in Berlin, Germany", valid_from=NOW - timedelta(days=1)),
        embedding=vector,
    )
    model = ScriptedModel(extraction=lambda prompt: update(fact("Lives in Berlin, Germany")))
    fake_llm.responder = model
    outcome = await job(services).run()
    assert outcome.counts["facts_restated"] == 1
    assert [f.id for f in await services.facts.valid(user_id)] == [stored.id]
