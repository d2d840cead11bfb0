"""`/memory` (what is kept, and switching learning on and off) and `/forget` (one fact
with the messages it came from, or everything with the conversation so far)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from core.commands import user as user_commands
from core.models import Message, MessageStatus, NewFact, Platform, User
from core.recall.user_indexes import UserIndexRepository
from core.services import Services
from core.storage.memory_store import MemoryStore
from core.storage.message_audio import MessageAudioRepository
from core.storage.turns import NewMessage, ReadLimits, TurnStore
from fakes.archiving import move_to_archive
from tests.core.commands import FakeClock, add_exchange, make_user, run, with_clock


async def remembered(services: Services, *messages: Message | None) -> list[bool]:
    """Whether each message (live or archived) is still `remembered`, as stored now."""
    flags = []
    for message in messages:
        assert message is not None
        stored = await services.messages.get(message.user_id, message.id)
        assert stored is not None
        flags.append(stored.remembered)
    return flags


async def with_audio(services: Services, *messages: Message | None) -> list[int]:
    """Keep a recording with each of these (user) messages, as MEDIA_KEEP_AUDIO does;
    their ids."""
    ids = []
    for message in messages:
        assert message is not None
        data = f"OggS {message.id}".encode()
        repository = MessageAudioRepository(services.db)
        assert await repository.keep(message.user_id, message.id, mime_type="audio/ogg", data=data)
        ids.append(message.id)
    return ids


async def kept_audio(services: Services, user: User) -> list[int]:
    """The messages whose recordings are kept, live or archived."""
    return [a.message_id for a in await MessageAudioRepository(services.db).of_user(user.id)]


async def learned(services: Services, user: User) -> None:
    """As if the memory job had read everything so far: a summary, a profile."""
    async with services.db.connection() as conn:
        await conn.execute(
            "UPDATE conversations SET summary = 'Ann talked about her dog.',"
            " summary_version = 3 WHERE user_id = $1",
            user.id,
        )
        await conn.execute(
            "UPDATE conversation_context SET communication_style = 'Short and direct.',"
            ' themes = \'["dogs", "tea"]\', insights = \'["likes examples"]\','
            " last_read_message_id = coalesce((SELECT max(id) FROM messages WHERE user_id = $1), 0)"
            " WHERE user_id = $1",
            user.id,
        )


async def test_memory_shows_facts_summary_profile_and_that_it_is_on(services: Services) -> None:
    user = await make_user(services, "1")
    await services.facts.add(user.id, NewFact("Has a dog named Rex", importance=8))
    await services.facts.add(user.id, NewFact("Likes tea", importance=2))
    await learned(services, user)
    text = (await run(services, user, "/memory")).text
    assert text == (
        "What I know about you:\n1. Has a dog named Rex\n2. Likes tea\n\n"
        "Our conversation so far, in short:\nAnn talked about her dog.\n\n"
        "How you like to talk: Short and direct.\n"
        "What we often talk about: dogs, tea\n"
        "What helps me talk with you:\n- likes examples\n\n"
        "Send /forget <number> to make me forget one fact, /forget all for everything.\n\n"
        "Memory is on: I learn from what you say. Send /memory off to stop that."
    )


async def test_memory_off_and_on_round_trip(services: Services) -> None:
    clock = FakeClock()
    services = with_clock(services, clock)
    user = await make_user(services, "1")
    assert (await services.users.conversation(user.id)).memory_off_since is None

    off = (await run(services, user, "/memory OFF")).text
    assert off.startswith("Memory is off.") and "never remembered" in off
    since = clock.now
    assert (await services.users.conversation(user.id)).memory_off_since == since
    shown = (await run(services, user, "/memory")).text
    assert shown.startswith("I don't know anything about you.")
    assert f"Memory is off (since {since:%Y-%m-%d %H:%M} UTC)" in shown

    clock.advance(hours=1)
    again = (await run(services, user, "/memory off")).text
    assert again.startswith(f"Memory is already off (since {since:%Y-%m-%d %H:%M} UTC)")
    assert (await services.users.conversation(user.id)).memory_off_since == since

    assert (await run(services, user, "/memory on")).text.startswith("Memory is on again")
    assert (await services.users.conversation(user.id)).memory_off_since is None
    assert (await run(services, user, "/memory on")).text.startswith("Memory is already on")
    assert (await run(services, user, "/memory")).text == "I don't know anything about you yet."


async def test_memory_switches_only_in_a_private_chat(services: Services) -> None:
    user = await make_user(services, "1")
    for text in ("/memory off", "/memory on", "/forget all confirm"):
        result = await run(services, user, text, private=False)
        assert result.channel.sent == ["Please send this command in a private chat with me."]
    assert (await services.users.conversation(user.id)).memory_off_since is None


async def test_forget_one_fact_sets_aside_the_messages_it_came_from(services: Services) -> None:
    user = await make_user(services, "1")
    other = await make_user(services, "2")
    dog, dog_reply = await add_exchange(services, user, "my dog is called Rex")
    walk, walk_reply = await add_exchange(services, user, "I walk Rex daily")
    tea, tea_reply = await add_exchange(services, user, "I like tea")
    assert walk_reply is not None
    recorded = await with_audio(services, dog, walk, tea)
    await move_to_archive(services.db, [walk.id, walk_reply.id])
    others, _ = await add_exchange(services, other, "my dog is called Rex")
    await services.facts.add(
        user.id, NewFact("Has a dog named Rex", importance=9, source_message_ids=(dog.id, walk.id))
    )
    await services.facts.add(user.id, NewFact("Likes tea", source_message_ids=(tea.id,)))
    # Someone else's message id in the sources (no such fact is ever stored) is not touched.
    await services.facts.add(other.id, NewFact("Has a dog", source_message_ids=(others.id,)))

    reply = (await run(services, user, "/forget 1")).text

    assert reply.startswith('Forgotten: "Has a dog named Rex". I also set aside the 4 messages')
    # Set aside, not deleted: like their text, their recordings stay (in /export).
    assert await kept_audio(services, user) == recorded
    assert [f.content for f in await services.facts.valid(user.id)] == ["Likes tea"]
    assert await remembered(services, dog, dog_reply, walk, walk_reply) == [False] * 4
    assert await remembered(services, tea, tea_reply, others) == [True] * 3
    assert (await run(services, user, "/forget 1")).text == 'Forgotten: "Likes tea". ' + (
        "I also set aside the 2 messages I learned it from: "
        "I won't recall them or learn from them again"
    )


async def test_forget_all_asks_first_and_changes_nothing(services: Services) -> None:
    user = await make_user(services, "1")
    await add_exchange(services, user, "hello")
    await services.facts.add(user.id, NewFact("Likes tea"))
    warning = (await run(services, user, "/forget all")).text
    assert "(1 fact," in warning and "cannot be undone" in warning and "/export" in warning
    assert warning.endswith("To go ahead, send /forget all confirm")
    assert len(await services.facts.all(user.id)) == 1
    assert await services.messages.count(user.id) == 2


async def test_forget_all_leaves_nothing_but_the_message_being_answered(
    services: Services,
) -> None:
    clock = FakeClock()
    services = with_clock(services, clock)
    user = await make_user(services, "1")
    other = await make_user(services, "2")
    old, old_reply = await add_exchange(services, user, "long ago")
    assert old_reply is not None
    await with_audio(services, old)
    await move_to_archive(services.db, [old.id, old_reply.id])
    await add_exchange(services, user, "yesterday")
    failed, _ = await add_exchange(services, user, "failed", answer=False)
    await services.messages.set_status(user.id, failed.id, MessageStatus.FAILED)
    await services.facts.add(user.id, NewFact("Likes tea"))
    gone = await services.facts.add(user.id, NewFact("Lived in Rome"))
    await services.facts.invalidate(user.id, gone.id)
    await learned(services, user)
    # A message being answered right now: its turn's queue row and lease.
    opened = await TurnStore(services.db, holder=uuid.uuid4(), lease_seconds=30).open(
        user.id,
        NewMessage("being answered", Platform.TELEGRAM, f"c{user.id}", "m-pending", None),
        ReadLimits(window=5, facts=5, shared_chat=False),
        take_lease=True,
    )
    pending = opened.message
    assert pending is not None
    await add_exchange(services, other, "bob's words")
    await services.facts.add(other.id, NewFact("bob's fact"))
    indexes = UserIndexRepository(services.db, dimensions=services.embedder.dimensions)
    for someone in (user, other):  # as if both were heavy users
        await indexes.count_terms(someone.id)
    before = await services.users.conversation(user.id)
    others = await services.messages.history(other.id)
    await with_audio(services, failed, pending, *[m for m in others if m.role.value == "user"])

    done = (await run(services, user, "/forget ALL confirm")).text

    assert done.startswith("Done. I forgot everything I had learned about you (2 facts,")
    assert "deleted our conversation up to now (5 messages)" in done
    assert await services.facts.all(user.id) == []
    history = await services.messages.history(user.id)
    assert [m.id for m in history] == [pending.id]
    assert await kept_audio(services, user) == [pending.id]  # the recordings went with them
    assert await remembered(services, pending) == [False]
    after = await services.users.conversation(user.id)
    assert after.summary == ""
    assert after.summary_version == before.summary_version + 1
    assert after.summary_through_message_id == pending.id
    assert (after.message_count, after.tokens_in) == (before.message_count, before.tokens_in)
    profile = await MemoryStore(services.db).context(user.id)
    assert profile is not None
    assert (profile.insights, profile.communication_style, profile.themes) == ([], "", [])
    assert profile.last_read_message_id == pending.id
    async with services.db.connection() as conn:
        turns = await conn.fetchval("SELECT count(*) FROM turns WHERE user_id = $1", user.id)
        leases = await conn.fetchval("SELECT count(*) FROM turn_leases WHERE user_id = $1", user.id)
        counted = await conn.fetch("SELECT user_id FROM user_search_stats")
    assert (turns, leases) == (1, 1)
    assert [r["user_id"] for r in counted] == [other.id]  # the person's words are gone too
    assert (await run(services, user, "/memory")).text == "I don't know anything about you yet."
    # Nobody else forgot anything.
    assert await services.messages.count(other.id) == 2
    assert len(await kept_audio(services, other)) == 1
    assert len(await services.facts.all(other.id)) == 1


async def test_forget_waits_for_a_memory_run_only_so_long(
    pooled: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A memory run holding the person past the wait: `/forget` says so and changes
    nothing (waiting for a run that ends: tests/core/jobs/memory/test_forgetting.py)."""
    monkeypatch.setattr(user_commands, "FORGET_WAIT", timedelta(milliseconds=100))
    user = await make_user(pooled, "1")
    await pooled.facts.add(user.id, NewFact("Likes tea"))
    store = MemoryStore(pooled.db)
    async with pooled.db.connection() as runner:
        assert await store.try_claim(user.id, conn=runner)
        for text in ("/forget 1", "/forget all confirm"):
            assert (await run(pooled, user, text)).text == user_commands.MEMORY_BUSY
        await store.release(user.id, conn=runner)
    assert len(await pooled.facts.all(user.id)) == 1
    assert (await run(pooled, user, "/forget 1")).text == 'Forgotten: "Likes tea"'
