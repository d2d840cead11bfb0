from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

from core.models import MessageRole, MessageStatus, Platform
from core.storage.database import Database, create_pool
from core.storage.messages import (
    _TEXT_SEARCH_CONFIGS,
    MessageRepository,
    PrivateChat,
    text_search_config,
)
from core.storage.users import UserRepository
from fakes.archiving import move_to_archive
from tests.core.storage.turn_reads import turn_state


async def _user(db: Database, platform_user_id: str = "1") -> int:
    user, _ = await UserRepository(db).get_or_create(Platform.TELEGRAM, platform_user_id)
    return user.id


async def test_user_message_is_stored_pending_and_counted(db: Database) -> None:
    user_id = await _user(db)
    messages = MessageRepository(db)
    stored = await messages.add_user_message(
        user_id, "hello", platform=Platform.TELEGRAM, chat_id="c1", platform_message_id="m1"
    )
    assert not stored.duplicate
    assert stored.message.status is MessageStatus.PENDING
    assert stored.message.role is MessageRole.USER
    conversation = await UserRepository(db).conversation(user_id)
    assert conversation.message_count == 1


async def test_a_turns_window_holds_each_message_as_stored_but_its_snapshot(
    db: Database,
) -> None:
    user_id = await _user(db)
    messages = MessageRepository(db)
    asked = await messages.add_user_message(
        user_id, "q", platform=Platform.DISCORD, chat_id="c", platform_message_id="1"
    )
    await messages.add_assistant_message(
        user_id,
        "a",
        reply_to_id=asked.message.id,
        platform=Platform.DISCORD,
        chat_id="c",
        context_snapshot={"facts": [1]},
        tokens_in=100,
        tokens_out=5,
        model="m",
        response_ms=12,
    )
    failed = await messages.add_user_message(
        user_id, "q2", platform=Platform.TELEGRAM, chat_id="t", platform_message_id="2"
    )
    await messages.set_status(user_id, failed.message.id, MessageStatus.FAILED)
    await messages.add_user_message(
        user_id, "q3", platform=Platform.TELEGRAM, chat_id="t", platform_message_id="3"
    )
    window = (await turn_state(db, user_id, window=10, facts=0)).recent
    stored = await messages.history(user_id, limit=10)
    assert window == [dataclasses.replace(m, context_snapshot=None) for m in reversed(stored)]
    assert [m.status for m in window] == [
        MessageStatus.ANSWERED,
        None,
        MessageStatus.FAILED,
        MessageStatus.PENDING,
    ]
    assert window[1].model == "m" and window[1].response_ms == 12


async def test_redelivered_message_is_a_duplicate_and_changes_nothing(db: Database) -> None:
    user_id = await _user(db)
    messages = MessageRepository(db)
    first = await messages.add_user_message(
        user_id, "hi", platform=Platform.TELEGRAM, chat_id="c1", platform_message_id="m1"
    )
    again = await messages.add_user_message(
        user_id, "hi (edited)", platform=Platform.TELEGRAM, chat_id="c1", platform_message_id="m1"
    )
    assert again.duplicate and again.message.id == first.message.id
    assert again.message.content == "hi"
    # The same message id in another chat is another message.
    other = await messages.add_user_message(
        user_id, "hi", platform=Platform.TELEGRAM, chat_id="c2", platform_message_id="m1"
    )
    assert not other.duplicate
    assert (await UserRepository(db).conversation(user_id)).message_count == 2


async def test_reply_marks_message_answered_and_keeps_snapshot(db: Database) -> None:
    user_id = await _user(db)
    messages = MessageRepository(db)
    asked = await messages.add_user_message(
        user_id, "q", platform=Platform.DISCORD, chat_id="c", platform_message_id="1"
    )
    snapshot = {"facts": [1, 2], "tokens": {"recent": 10}}
    reply = await messages.add_assistant_message(
        user_id,
        "a",
        reply_to_id=asked.message.id,
        platform=Platform.DISCORD,
        chat_id="c",
        context_snapshot=snapshot,
        tokens_in=100,
        tokens_out=5,
        model="m",
        response_ms=12,
    )
    assert reply.context_snapshot == snapshot and reply.reply_to_id == asked.message.id
    stored = await messages.get(user_id, reply.id)
    assert stored is not None and stored.context_snapshot == snapshot
    # The prompt's window leaves the snapshots out.
    window = (await turn_state(db, user_id, window=5, facts=0)).recent
    assert [m.context_snapshot for m in window] == [None, None]
    question = await messages.get(user_id, asked.message.id)
    assert question is not None and question.status is MessageStatus.ANSWERED
    conversation = await UserRepository(db).conversation(user_id)
    assert (conversation.message_count, conversation.tokens_in, conversation.tokens_out) == (
        2,
        100,
        5,
    )


async def test_messages_are_invisible_to_other_users(db: Database) -> None:
    alice, bob = await _user(db, "a"), await _user(db, "b")
    messages = MessageRepository(db)
    stored = await messages.add_user_message(
        alice, "secret plan", platform=Platform.TELEGRAM, chat_id="x", platform_message_id="1"
    )
    assert await messages.get(bob, stored.message.id) is None
    assert await messages.history(bob) == []
    assert await messages.search(bob, "secret") == []
    await messages.set_status(bob, stored.message.id, MessageStatus.FAILED)
    mine = await messages.get(alice, stored.message.id)
    assert mine is not None and mine.status is MessageStatus.PENDING


async def test_history_pages_by_keyset_across_archive(db: Database) -> None:
    user_id = await _user(db)
    messages = MessageRepository(db)
    ids = []
    for i in range(25):
        stored = await messages.add_user_message(
            user_id, f"m{i}", platform=Platform.TELEGRAM, chat_id="c", platform_message_id=str(i)
        )
        ids.append(stored.message.id)
    # Move the oldest ten to the archive, the way the archive job does.
    await move_to_archive(db, ids[:10])
    seen: list[int] = []
    before = None
    while True:
        page = await messages.history(user_id, before_id=before, limit=7)
        if not page:
            break
        seen.extend(m.id for m in page)
        before = page[-1].id
    assert seen == sorted(ids, reverse=True)
    archived = {m.id for m in await messages.history(user_id, limit=100) if m.archived}
    assert archived == set(ids[:10])
    window = (await turn_state(db, user_id, window=3, facts=0)).recent
    assert [m.content for m in window] == ["m22", "m23", "m24"]


async def test_full_text_search_finds_words_and_ranks(db: Database) -> None:
    user_id = await _user(db)
    messages = MessageRepository(db)
    texts = [
        "My cat Zorblax likes tuna",
        "We went hiking in the mountains",
        "Zorblax knocked over the vase again, Zorblax is a menace",
        "Running every morning",
    ]
    for i, text in enumerate(texts):
        await messages.add_user_message(
            user_id, text, platform=Platform.TELEGRAM, chat_id="c", platform_message_id=str(i)
        )
    hits = await messages.search(user_id, "zorblax")
    assert [h.message.content for h in hits] == [texts[2], texts[0]]
    # Stemming: "run" finds "Running", "hike" finds "hiking".
    assert [h.message.content for h in await messages.search(user_id, "run")] == [texts[3]]
    assert [h.message.content for h in await messages.search(user_id, "hike")] == [texts[1]]
    # User input is a query, never SQL.
    assert await messages.search(user_id, "'; DROP TABLE messages; --") == []


async def test_full_text_search_follows_the_persons_language(db: Database) -> None:
    user_id = await _user(db)
    messages = MessageRepository(db)
    said = "Ich habe zwei Katzen und einen alten Hund"
    await messages.add_user_message(
        user_id, said, platform=Platform.TELEGRAM, chat_id="c", platform_message_id="1"
    )
    await move_to_archive(db, [(await messages.history(user_id))[0].id])
    # German stemming: "Katze" finds "Katzen", "Hunde" finds "Hund"; English's does not.
    for language in ("de", "de-AT", "de_DE"):
        found = await messages.search(user_id, "Katze Hunde", language=language)
        assert [h.message.content for h in found] == [said]
        assert found[0].message.archived
    assert await messages.search(user_id, "Katze", language="en") == []
    assert await messages.search(user_id, "Katze") == []
    # A language PostgreSQL has no stemmer for is searched word for word.
    assert text_search_config("ja") == "simple"
    assert [h.message.content for h in await messages.search(user_id, "Katzen", language="ja")]


async def test_every_language_maps_to_a_configuration_postgresql_has(db: Database) -> None:
    async with db.connection() as conn:
        known = {r["cfgname"] for r in await conn.fetch("SELECT cfgname FROM pg_ts_config")}
    tags = [*_TEXT_SEARCH_CONFIGS, "pt-BR", "zz", None]
    assert {text_search_config(tag) for tag in tags} <= known


async def test_counters_stay_consistent_under_concurrency(fresh_dsn: str) -> None:
    pool = await create_pool(fresh_dsn, min_size=5, max_size=10)
    try:
        db = Database(pool)
        user_id = await _user(db)
        messages = MessageRepository(db)
        results = await asyncio.gather(
            *(
                messages.add_user_message(
                    user_id,
                    "x",
                    platform=Platform.TELEGRAM,
                    chat_id="c",
                    platform_message_id=str(i % 40),
                )
                for i in range(80)
            )
        )
        assert sum(not r.duplicate for r in results) == 40
        assert (await UserRepository(db).conversation(user_id)).message_count == 40
        assert await messages.count(user_id) == 40
    finally:
        await pool.close()


async def test_delivery_mark_commits_asynchronously_only_on_its_own(fresh_dsn: str) -> None:
    """Alone, the mark skips the WAL flush for its own commit and nothing after it;
    inside a caller's transaction it leaves the transaction's commit as it was."""
    pool = await create_pool(fresh_dsn, min_size=1, max_size=1)
    try:
        db = Database(pool)
        user_id = await _user(db)
        messages = MessageRepository(db)
        asked = await messages.add_user_message(
            user_id, "q", platform=Platform.TELEGRAM, chat_id="c", platform_message_id="1"
        )
        replies = [
            await messages.add_assistant_message(
                user_id,
                f"a{i}",
                reply_to_id=asked.message.id,
                platform=Platform.TELEGRAM,
                chat_id="c",
                context_snapshot={},
                tokens_in=1,
                tokens_out=1,
                model="m",
                response_ms=1,
            )
            for i in range(2)
        ]
        async with db.connection() as conn:
            await messages.mark_delivered(user_id, replies[0].id, conn=conn)
            assert await conn.fetchval("SHOW synchronous_commit") == "on"
            async with conn.transaction():
                await messages.mark_delivered(user_id, replies[1].id, conn=conn)
                assert await conn.fetchval("SHOW synchronous_commit") == "on"
            delivered = await conn.fetchval(
                "SELECT count(*) FROM messages WHERE id = ANY($1) AND delivered_at IS NOT NULL",
                [r.id for r in replies],
            )
        assert delivered == 2
        assert await messages.undelivered_reply(user_id, asked.message.id) is None
    finally:
        await pool.close()


async def _private_chatter(
    db: Database, who: str, platform: Platform, *messages: tuple[str, str, int]
) -> None:
    """Someone seen now, with private chat `dm-<who>`, and their messages as (chat,
    platform message id, days ago)."""
    users = UserRepository(db)
    user, _ = await users.get_or_create(platform, who, private_chat_id=f"dm-{who}")
    repository = MessageRepository(db)
    async with db.connection() as conn:
        await conn.execute("UPDATE users SET last_seen_at = now() WHERE id = $1", user.id)
        for chat, message_id, days_ago in messages:
            stored = await repository.add_user_message(
                user.id, "hi", platform=platform, chat_id=chat, platform_message_id=message_id
            )
            await conn.execute(
                "UPDATE messages SET created_at = now() - make_interval(days => $2) WHERE id = $1",
                stored.message.id,
                days_ago,
            )


async def test_recent_private_chats_give_the_newest_stored_message_of_each(db: Database) -> None:
    discord = Platform.DISCORD
    await _private_chatter(db, "ann", discord, ("dm-ann", "11", 2), ("dm-ann", "12", 1))
    # A newer message in a server channel is not the private chat's.
    await _private_chatter(db, "bob", discord, ("dm-bob", "21", 3), ("guild", "22", 0))
    await _private_chatter(db, "cy", discord, ("dm-cy", "31", 8))  # too long ago
    await _private_chatter(db, "dee", discord, ("guild", "41", 0))  # never wrote privately
    await _private_chatter(db, "eve", Platform.TELEGRAM, ("dm-eve", "51", 0))
    messages = MessageRepository(db)

    recent = await messages.recent_private_chats(discord, within=timedelta(days=7), limit=10)
    assert recent == [PrivateChat("dm-ann", "12"), PrivateChat("dm-bob", "21")]
    assert await messages.recent_private_chats(discord, within=timedelta(days=7), limit=1) == [
        PrivateChat("dm-ann", "12")
    ]
