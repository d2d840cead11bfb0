"""What the person keeps out of memory: messages not `remembered`, everything while
memory is off, and facts said in a private chat kept out of groups."""

from __future__ import annotations

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
    set_aside,
    update,
)


async def summary_version(services: Services, user_id: int) -> int:
    return (await services.users.conversation(user_id)).summary_version


async def test_messages_not_remembered_and_replies_to_them_are_not_learned_from(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    user_id, ids = await conversation(services, "ma", ["I'm Ann", "forget this: I'm 52", "bye"])
    # ids: Ann, ok, 52, ok, bye, ok. The middle one was a forgotten fact's source (its
    # reply still says it was remembered, as a reply recorded late would).
    await set_aside(services, [ids[2]])
    model = ScriptedModel()
    fake_llm.responder = model

    outcome = await job(services).run()

    assert message_ids(model.extraction_prompts[0]) == [ids[0], ids[1], ids[4], ids[5]]
    assert "I'm 52" not in model.extraction_prompts[0]  # (a message id may hold "52")
    assert outcome.counts["messages"] == 4 and outcome.counts["passed_over"] == 2
    assert await read_position(services, user_id) == ids[-1]


async def test_a_batch_with_nothing_to_learn_is_passed_over_without_the_model(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    user_id, ids = await conversation(services, "mb", ["secret one", "secret two"])
    await set_aside(services, ids)
    model = ScriptedModel()
    fake_llm.responder = model

    outcome = await job(services).run()

    assert model.extraction_prompts == [] and fake_llm.chat_requests == []
    assert outcome.counts["passed_over"] == 4 and outcome.counts["users"] == 0
    assert await read_position(services, user_id) == ids[-1]
    assert await summary_version(services, user_id) == 0
    assert (await job(services).run()).counts["passed_over"] == 0


async def test_nothing_is_learned_while_memory_is_off_nor_after_it_is_back_on(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    user_id, _ = await conversation(services, "mc", [])
    model = ScriptedModel(extraction=lambda prompt: update(fact("Likes tea")))
    fake_llm.responder = model
    assert await services.users.switch_memory(user_id, off=True, at=NOW)
    said_while_off = await say(services, user_id, ["I have a secret hobby"])

    outcome = await job(services).run()

    assert model.extraction_prompts == []
    assert outcome.counts["passed_over"] == 2
    assert await read_position(services, user_id) == said_while_off[-1]
    assert await services.facts.all(user_id) == []
    assert await summary_version(services, user_id) == 0

    assert await services.users.switch_memory(user_id, off=False, at=NOW)
    said_after = await say(services, user_id, ["I like tea"])
    outcome = await job(services).run()
    assert [message_ids(p) for p in model.extraction_prompts] == [said_after]
    assert outcome.counts["facts_added"] == 1


async def test_facts_keep_to_the_kind_of_chat_they_were_learned_in(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    user_id, in_private = await conversation(services, "md", ["I sleep badly"], replies=False)
    in_group = await say(services, user_id, ["I love chess", "me too, tea"], replies=False)
    fake_llm.responder = ScriptedModel(
        extraction=lambda prompt: update(
            fact("Sleeps badly", source_message_ids=in_private),
            fact("Loves chess", source_message_ids=in_group[:1]),
            fact("Likes tea", source_message_ids=[in_private[0], in_group[1]]),
            fact("Plays for money", is_private=True, source_message_ids=in_group[:1]),
        )
    )
    # The model cannot tell the chats apart: only the stored messages say which is which.
    async with services.db.connection() as conn:
        await conn.execute(
            "UPDATE messages SET shared_chat = true WHERE id = ANY($1::bigint[])", in_group
        )

    await job(services).run()

    stored = {f.content: f.is_private for f in await services.facts.valid(user_id)}
    assert stored == {
        "Sleeps badly": True,
        "Loves chess": False,
        "Likes tea": True,
        "Plays for money": True,
    }


async def test_a_shared_fact_said_again_in_private_becomes_private(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    user_id, _ = await conversation(services, "me", ["I love chess"], in_group=True)
    model = ScriptedModel(extraction=lambda prompt: update(fact("Loves chess")))
    fake_llm.responder = model
    await job(services).run()
    assert [f.is_private for f in await services.facts.valid(user_id)] == [False]

    await say(services, user_id, ["chess again, just between us"])
    outcome = await job(services).run()

    assert outcome.counts["facts_restated"] == 1
    assert [f.is_private for f in await services.facts.valid(user_id)] == [True]
