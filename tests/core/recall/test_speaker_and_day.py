"""Who said a message and the day it was said are searchable with it (migration 0016):
the speaker is the author's own name at the time, never another person's; a day the
question names finds that day's messages whatever words they use."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg

from core.models import NewFact, Platform
from core.recall.candidates import RecallCandidates
from core.recall.hybrid import HybridRecall
from core.recall.keywords import TextSearchRepository
from core.recall.vectors import RecallRepository
from core.snapshot import ContextSnapshot
from core.storage import migrations
from core.storage.database import Database
from core.storage.facts import FactRepository
from core.storage.messages import MessageRepository, text_search_config
from core.storage.turns import NewMessage, ReadLimits, Reply, TurnStore
from core.storage.users import UserRepository
from fakes.archiving import move_to_archive

LIMITS = ReadLimits(window=10, facts=5, shared_chat=False)
SNAPSHOT = ContextSnapshot(
    summary_version=0, fact_ids=(), recalled=(), window_ids=(), shared_chat=False, tokens={}
)


async def _user(db: Database, platform_id: str, name: str | None) -> int:
    user, _ = await UserRepository(db).get_or_create(
        Platform.TELEGRAM, platform_id, display_name=name
    )
    return user.id


async def _say(db: Database, user_id: int, text: str, n: int) -> int:
    stored = await MessageRepository(db).add_user_message(
        user_id,
        text,
        platform=Platform.TELEGRAM,
        chat_id=str(user_id),
        platform_message_id=f"{user_id}-{n}",
    )
    return stored.message.id


def _recall(db: Database) -> HybridRecall:
    return HybridRecall(
        RecallCandidates(db, RecallRepository(db, dimensions=384), TextSearchRepository(db))
    )


async def test_a_turn_stores_the_persons_name_and_the_assistants(db: Database) -> None:
    maya = await _user(db, "1", "Maya")
    store = TurnStore(db, holder=uuid.uuid4(), lease_seconds=30, assistant_name="Mira")
    opened = await store.open(
        maya,
        NewMessage("we adopted a dog", Platform.TELEGRAM, "c", "1", None),
        LIMITS,
        take_lease=True,
    )
    assert opened.message is not None
    reply = Reply("lovely, what breed?", SNAPSHOT, 1, 1, "m", 5, None)
    answer = await store.close(maya, opened.message, reply, delivered=True)
    async with db.connection() as c:
        rows = await c.fetch("SELECT id, speaker FROM messages WHERE user_id = $1", maya)
    speakers = {r["id"]: r["speaker"] for r in rows}
    assert speakers == {opened.message.id: "Maya", answer.id: "Mira"}
    keyword = TextSearchRepository(db)
    assert [h.id for h in await keyword.search(maya, "what did Maya say", 5)] == [opened.message.id]
    assert [h.id for h in await keyword.search(maya, "what did Mira suggest", 5)] == [answer.id]


async def test_a_name_is_the_authors_own_as_it_was(db: Database) -> None:
    maya = await _user(db, "1", "Maya")
    tom = await _user(db, "2", "Tom")
    nameless = await _user(db, "3", None)
    said_as_maya = await _say(db, maya, "my knee hurts", 1)
    toms = await _say(db, tom, "my knee hurts too", 1)
    await _say(db, nameless, "my knee is fine", 1)
    # A new display name names the messages said after it, not those before.
    async with db.connection() as c:
        await c.execute("UPDATE users SET display_name = 'Maya Lee' WHERE id = $1", maya)
    said_as_lee = await _say(db, maya, "still hurts", 2)
    keyword = TextSearchRepository(db)

    assert [h.id for h in await keyword.search(tom, "Maya", 5)] == []
    assert [h.id for h in await keyword.search(tom, "Tom", 5)] == [toms]
    assert [h.id for h in await keyword.search(nameless, "Maya Tom", 5)] == []
    assert {h.id for h in await keyword.search(maya, "Maya", 5)} == {said_as_maya, said_as_lee}
    assert [h.id for h in await keyword.search(maya, "Lee", 5)] == [said_as_lee]


async def test_an_archived_message_keeps_its_speaker_and_day(db: Database) -> None:
    maya = await _user(db, "1", "Maya")
    old = await _say(db, maya, "the flat has mould", 1)
    async with db.connection() as c:
        await c.execute("UPDATE messages SET created_at = '2025-05-08 23:30+00' WHERE id = $1", old)
    await move_to_archive(db, [old])
    keyword = TextSearchRepository(db)

    assert [h.id for h in await keyword.search(maya, "Maya", 5)] == [old]
    assert [h.id for h in await keyword.search(maya, "20250508", 5)] == [old]
    async with db.connection() as c:
        assert await c.fetchval("SELECT speaker FROM messages_archive WHERE id = $1", old) == "Maya"


async def test_a_day_the_question_names_finds_that_days_messages(db: Database) -> None:
    maya = await _user(db, "1", "Maya")
    that_day = await _say(db, maya, "the plumber finally came", 1)
    other_day = await _say(db, maya, "the electrician finally came", 2)
    async with db.connection() as c:
        # 23:30 UTC: the day is UTC's, whatever the server's time zone.
        await c.execute("SET LOCAL TimeZone = 'Pacific/Auckland'")
        await c.execute(
            "UPDATE messages SET created_at = '2025-05-08 23:30+00' WHERE id = $1", that_day
        )
        await c.execute(
            "UPDATE messages SET created_at = '2025-05-09 08:00+00' WHERE id = $1", other_day
        )
        await c.execute("RESET TimeZone")
    recall = _recall(db)
    now = datetime(2025, 6, 1, tzinfo=UTC)

    for question in ("What happened on 2025-05-08?", "what did I say on May 8th?"):
        items = await recall.search(maya, question, None, 5, now=now)
        assert [i.id for i in items][:1] == [that_day], question
    items = await recall.search(maya, "What happened on 9 May 2025?", None, 5, now=now)
    assert [i.id for i in items][:1] == [other_day]


async def test_the_migration_names_the_stored_messages_of_their_authors(empty_dsn: str) -> None:
    conn = await asyncpg.connect(empty_dsn)
    try:
        shipped = migrations.load_migrations()
        await migrations.migrate(conn, [m for m in shipped if m.version < 16])
        maya, tom = [
            await conn.fetchval("INSERT INTO users (display_name) VALUES ($1) RETURNING id", n)
            for n in ("Maya", "Tom")
        ]
        for user, role, n in ((maya, "user", 1), (maya, "assistant", 2), (tom, "user", 3)):
            await conn.execute(
                "INSERT INTO messages (user_id, role, content, platform, platform_message_id,"
                " status, created_at)"
                " VALUES ($1, $2, 'the flat has mould', 'console', $3, $4, '2025-05-08 12:00+00')",
                user,
                role,
                str(n),
                "answered" if role == "user" else None,
            )
        await conn.execute(
            "WITH moved AS (DELETE FROM messages WHERE platform_message_id = '3' RETURNING *)"
            " INSERT INTO messages_archive (id, user_id, role, content, platform,"
            " platform_message_id, status, search, created_at)"
            " SELECT id, user_id, role, content, platform, platform_message_id, status, search,"
            " created_at FROM moved"
        )

        await migrations.migrate(conn, shipped)

        rows = await conn.fetch(
            "SELECT user_id, role, speaker, search::text AS search FROM messages"
            " UNION ALL SELECT user_id, role, speaker, search::text FROM messages_archive"
            " ORDER BY 1, 2 DESC"
        )
        assert [(r["user_id"], r["role"], r["speaker"]) for r in rows] == [
            (maya, "user", "Maya"),
            (maya, "assistant", None),
            (tom, "user", "Tom"),
        ]
        assert [r["search"] for r in rows] == [
            "'20250508':6 'flat':3 'maya':1 'mould':5",
            "'20250508':5 'flat':2 'mould':4",
            "'20250508':6 'flat':3 'mould':5 'tom':1",
        ]
    finally:
        await conn.close()


async def test_recall_reads_the_persons_language(db: Database) -> None:
    greta = await _user(db, "1", "Greta")
    store = TurnStore(db, holder=uuid.uuid4(), lease_seconds=30, assistant_name="Mira")
    opened = await store.open(
        greta,
        NewMessage(
            "Ich habe zwei Katzen und einen alten Hund",
            Platform.TELEGRAM,
            "c",
            "1",
            None,
            search_config=text_search_config("de-AT"),
        ),
        LIMITS,
        take_lease=True,
    )
    assert opened.message is not None
    reply = Reply("Wie heißen die Katzen?", SNAPSHOT, 1, 1, "m", 5, None)
    answer = await store.close(greta, opened.message, reply, delivered=True)
    fact = await FactRepository(db).add(greta, NewFact("Hat zwei Katzen"))
    keyword = TextSearchRepository(db)

    # German stemming on both sides: "Katze" finds "Katzen", "Hunde" finds "Hund".
    found = {h.id for h in await keyword.search(greta, "Wie geht es der Katze?", 10)}
    assert found == {opened.message.id, answer.id, fact.id}
    assert [h.id for h in await keyword.search(greta, "Hunde", 10)] == [opened.message.id]
    async with db.connection() as c:
        configs = await c.fetch(
            "SELECT search_config::text AS config FROM messages WHERE user_id = $1"
            " UNION ALL SELECT search_config::text FROM facts WHERE user_id = $1",
            greta,
        )
    assert [r["config"] for r in configs] == ["german"] * 3


async def test_a_person_of_unknown_language_is_read_in_english(db: Database) -> None:
    ann = await _user(db, "1", None)
    said = await _say(db, ann, "My cats were sleeping all day", 1)
    keyword = TextSearchRepository(db)
    assert [h.id for h in await keyword.search(ann, "is my cat asleep?", 5)] == [said]


async def test_a_person_without_messages_is_read_in_english_not_in_the_next_persons_language(
    db: Database,
) -> None:
    ann = await _user(db, "1", "Ann")  # a lower id than Greta's, and no message yet
    greta = await _user(db, "2", "Greta")
    await MessageRepository(db).add_user_message(
        greta,
        "Ich habe zwei Katzen",
        platform=Platform.TELEGRAM,
        chat_id="2",
        platform_message_id="2-1",
        language="de",
    )
    fact = await FactRepository(db).add(ann, NewFact("Has two cats"))
    # English stemming ("cats" -> "cat"), which German would not do.
    assert [h.id for h in await TextSearchRepository(db).search(ann, "my cat", 5)] == [fact.id]
