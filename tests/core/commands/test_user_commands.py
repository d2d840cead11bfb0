from __future__ import annotations

import json

from core.models import Message, MessageStatus, NewFact, Platform, User
from core.services import Services
from fakes.archiving import move_to_archive
from tests.core.commands import FakeClock, add_exchange, make_user, run, with_clock


async def test_memory_numbers_facts_most_important_first(services: Services) -> None:
    user = await make_user(services, "1")
    await services.facts.add(user.id, NewFact("likes tea", importance=3))
    await services.facts.add(user.id, NewFact("lives in Oslo", importance=9))
    gone = await services.facts.add(user.id, NewFact("has a cat", importance=7))
    await services.facts.invalidate(user.id, gone.id)
    text = (await run(services, user, "/memory")).text
    assert "1. lives in Oslo" in text and "2. likes tea" in text and "cat" not in text


async def test_memory_when_empty(services: Services) -> None:
    user = await make_user(services, "1")
    assert "don't know anything" in (await run(services, user, "/memory")).text


async def test_forget_uses_the_numbers_of_memory(services: Services) -> None:
    user = await make_user(services, "1")
    other = await make_user(services, "2")
    for n in range(1, 5):
        await services.facts.add(user.id, NewFact(f"fact {n}", importance=n))
    await services.facts.add(other.id, NewFact("other's fact", importance=10))
    listing = (await run(services, user, "/memory")).text
    line_two = next(line for line in listing.splitlines() if line.startswith("2. "))
    assert line_two == "2. fact 3"
    assert (await run(services, user, "/forget 2")).text == 'Forgotten: "fact 3"'
    assert [f.content for f in await services.facts.valid(user.id)] == [
        "fact 4",
        "fact 2",
        "fact 1",
    ]
    assert "no fact 9" in (await run(services, user, "/forget 9")).text
    assert "no fact 0" in (await run(services, user, "/forget 0")).text
    assert len(await services.facts.valid(other.id)) == 1


async def test_personal_data_commands_refuse_group_chats(services: Services) -> None:
    user = await make_user(services, "1")
    await services.facts.add(user.id, NewFact("secret"))
    for text in ("/memory", "/forget 1", "/forget all", "/export", "/delete_me", "/link"):
        result = await run(services, user, text, private=False)
        assert result.channel.sent == ["Please send this command in a private chat with me."]
        assert result.channel.files == []
    assert len(await services.facts.valid(user.id)) == 1


async def test_export_holds_everything_of_mine_and_nothing_else(services: Services) -> None:
    user = await make_user(services, "1", username="ann")
    other = await make_user(services, "2", username="bob")
    first, first_reply = await add_exchange(services, user, "my first words")
    await add_exchange(services, user, "my second words")
    await add_exchange(services, other, "bob's words")
    assert first_reply is not None
    await move_to_archive(services.db, [first.id, first_reply.id])
    await services.facts.add(user.id, NewFact("likes tea"))
    old = await services.facts.add(user.id, NewFact("was in Rome"))
    await services.facts.invalidate(user.id, old.id)
    await services.facts.add(other.id, NewFact("bob's fact"))

    result = await run(services, user, "/export")
    [(filename, data, caption)] = result.channel.files
    assert filename == "onethread-export.json" and caption
    document = json.loads(data)
    assert document["profile"]["id"] == user.id
    assert [i["platform_user_id"] for i in document["identities"]] == ["1"]
    assert document["conversation"]["message_count"] == 4
    assert document["conversation_context"]["last_read_message_id"] == 0
    contents = [m["content"] for m in document["messages"]]
    assert contents == [
        "my first words",
        "re: my first words",
        "my second words",
        "re: my second words",
    ]
    assert [m["archived"] for m in document["messages"]] == [True, True, False, False]
    assert document["messages"][1]["context_snapshot"]["fact_ids"] == [1, 2]
    facts = {f["content"]: f["invalid_at"] for f in document["facts"]}
    assert facts.keys() == {"likes tea", "was in Rome"} and facts["was in Rome"] is not None
    assert "bob" not in data.decode() and str(other.id) not in {
        str(m["user_id"]) for m in document["messages"]
    }


async def test_retry_answers_a_failed_message_again(services: Services) -> None:
    user = await make_user(services, "1")
    await add_exchange(services, user, "answered")
    failed, _ = await add_exchange(services, user, "failed one", answer=False)
    await services.messages.set_status(user.id, failed.id, MessageStatus.FAILED)
    result = await run(services, user, "/retry")
    assert [m.id for m in result.retried] == [failed.id]


async def test_retry_a_stuck_pending_message_only_after_a_minute(services: Services) -> None:
    clock = FakeClock()
    services = with_clock(services, clock)
    user = await make_user(services, "1")
    pending, _ = await add_exchange(services, user, "pending one", answer=False)
    clock.now = pending.created_at
    early = await run(services, user, "/retry")
    assert early.retried == [] and "still working" in early.text
    clock.advance(minutes=2)
    assert [m.id for m in (await run(services, user, "/retry")).retried] == [pending.id]


async def test_retry_with_nothing_to_retry(services: Services) -> None:
    user = await make_user(services, "1")
    nothing = await run(services, user, "/retry")
    assert nothing.retried == [] and "nothing to retry" in nothing.text
    failed, _ = await add_exchange(services, user, "failed", answer=False)
    await services.messages.set_status(user.id, failed.id, MessageStatus.FAILED)
    await add_exchange(services, user, "later, answered")
    later = await run(services, user, "/retry")
    assert later.retried == [] and "nothing to retry" in later.text


async def said_in_a_group(
    services: Services, user: User, platform: Platform, status: MessageStatus
) -> Message:
    """A message of `user` in the group "group-1" of `platform`, left in `status`."""
    stored = await services.messages.add_user_message(
        user.id,
        f"in the {platform} group",
        platform=platform,
        chat_id="group-1",
        platform_message_id=f"{platform}-g1",
        shared_chat=True,
    )
    await services.messages.set_status(user.id, stored.message.id, status)
    return stored.message


async def test_retry_answers_the_last_message_of_this_chat_only(services: Services) -> None:
    user = await make_user(services, "1")
    private_failed, _ = await add_exchange(services, user, "private, failed", answer=False)
    await services.messages.set_status(user.id, private_failed.id, MessageStatus.FAILED)
    group = await said_in_a_group(services, user, Platform.TELEGRAM, MessageStatus.FAILED)
    # The newest message of all was said in a group of that id on another platform.
    await said_in_a_group(services, user, Platform.DISCORD, MessageStatus.ANSWERED)

    in_private = await run(services, user, "/retry")
    assert [m.id for m in in_private.retried] == [private_failed.id]
    in_group = await run(services, user, "/retry", private=False)
    assert [m.id for m in in_group.retried] == [group.id]
    in_discord_group = await run(services, user, "/retry", private=False, platform=Platform.DISCORD)
    assert in_discord_group.retried == [] and "nothing to retry" in in_discord_group.text


async def test_retry_in_a_group_never_answers_a_private_message(services: Services) -> None:
    user = await make_user(services, "1")
    failed, _ = await add_exchange(services, user, "private, failed", answer=False)
    await services.messages.set_status(user.id, failed.id, MessageStatus.FAILED)
    result = await run(services, user, "/retry", private=False)
    assert result.retried == [] and "nothing to retry" in result.text
