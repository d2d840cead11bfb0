"""The archive and retention jobs, and erasure, on the real database. Time is the
injected clock: "40 days later" is a clock, not a wait."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from config.settings import ArchiveSettings
from core.export import collect
from core.jobs.archive import ArchiveJob, RetentionJob
from core.models import MessageStatus, MessageType, NewFact, Platform
from core.recall.statements import Source
from core.services import Services
from core.storage.archive_store import ARCHIVE_LOCK_CLASS
from core.storage.memory_store import lock_key
from core.storage.message_audio import MessageAudioRepository
from core.storage.turns import NewMessage, ReadLimits, TurnStore
from tests.core.jobs.memory.helpers import conversation, say, set_read_position

LATER = timedelta(days=40)


def _archive(services: Services, *, later: timedelta = LATER, **archive: int) -> ArchiveJob:
    now = datetime.now(UTC) + later
    settings = ArchiveSettings(**{"after_days": 30, **archive})
    return ArchiveJob(services.db, settings, clock=lambda: now)


def _retention(services: Services, *, later: timedelta = LATER, **archive: int) -> RetentionJob:
    now = datetime.now(UTC) + later
    return RetentionJob(services.db, ArchiveSettings(**archive), clock=lambda: now)


async def _rows(services: Services, table: str, user_id: int) -> dict[int, dict[str, Any]]:
    async with services.db.connection() as conn:
        rows = await conn.fetch(f"SELECT * FROM {table} WHERE user_id = $1 ORDER BY id", user_id)
    return {r["id"]: {k: v for k, v in dict(r).items() if k != "archived_at"} for r in rows}


async def test_only_old_messages_read_by_the_memory_job_move(services: Services) -> None:
    user_id, ids = await conversation(services, "aa", [f"message {i}" for i in range(5)])
    await set_read_position(services, user_id, ids[5])
    before = await _rows(services, "messages", user_id)

    outcome = await _archive(services, keep_recent_messages=2, batch_size=2).run()

    # Read up to ids[5]; the newest two (ids[8], ids[9]) would be kept anyway.
    assert outcome.counts == {"messages": 6, "users": 1, "batches": 3, "skipped": 0}
    archived = await _rows(services, "messages_archive", user_id)
    assert list(archived) == ids[:6]
    assert list(await _rows(services, "messages", user_id)) == ids[6:]
    # Same ids, every column (embedding, snapshot, delivery, search) as it was.
    assert archived == {i: before[i] for i in ids[:6]}


async def test_the_recent_window_young_messages_and_pending_ones_stay(
    services: Services,
) -> None:
    user_id, ids = await conversation(services, "ab", [f"message {i}" for i in range(4)])
    await set_read_position(services, user_id, ids[-1])
    assert (await _archive(services, later=timedelta(days=29)).run()).counts["messages"] == 0
    await services.messages.set_status(user_id, ids[0], MessageStatus.PENDING)
    outcome = await _archive(services, keep_recent_messages=3).run()
    assert list(await _rows(services, "messages", user_id)) == [ids[0], *ids[-3:]]
    assert outcome.counts["messages"] == 4


async def test_unread_messages_are_never_archived(services: Services) -> None:
    user_id, _ = await conversation(services, "ac", ["hello", "again"])
    outcome = await _archive(services, keep_recent_messages=1).run()
    assert outcome.counts["messages"] == 0
    assert len(await _rows(services, "messages", user_id)) == 4


async def test_archived_messages_are_still_found(services: Services) -> None:
    texts = ["My grandmother's recipe uses cardamom", "The weather is nice", "ok then"]
    user_id, ids = await conversation(services, "ad", texts)
    await set_read_position(services, user_id, ids[-1])
    await _archive(services, keep_recent_messages=2).run()
    assert list(await _rows(services, "messages_archive", user_id)) == ids[:4]

    (query,) = await services.embedder.embed(["grandmother recipe with cardamom"])
    hits = await services.recall.nearest(user_id, query, 3)
    assert (hits[0].source, hits[0].id) == (Source.ARCHIVE, ids[0])
    found = await services.messages.search(user_id, "cardamom")
    assert [(h.message.id, h.message.archived) for h in found] == [(ids[0], True)]
    page = await services.messages.history(user_id, limit=3)
    older = await services.messages.history(user_id, before_id=page[-1].id, limit=10)
    assert [m.id for m in page + older] == ids[::-1]
    assert [m.archived for m in older] == [True] * len(older)
    exported = await collect(services, user_id, now=datetime.now(UTC))
    assert [m["id"] for m in exported["messages"]] == ids


async def test_retention_deletes_old_archived_messages_only_when_on(services: Services) -> None:
    user_id, ids = await conversation(services, "ae", ["one", "two", "three"])
    await set_read_position(services, user_id, ids[-1])
    await _archive(services, keep_recent_messages=2).run()

    off = await _retention(services).run()
    assert off.note is not None and "off" in off.summary()
    assert len(await _rows(services, "messages_archive", user_id)) == 4

    soon = await _retention(services, retention_days=60, batch_size=3).run()
    assert soon.counts == {"deleted": 0}
    later = timedelta(days=61)
    due = await _retention(services, later=later, retention_days=60, batch_size=3).run()
    assert due.counts == {"deleted": 4}
    assert await _rows(services, "messages_archive", user_id) == {}
    assert list(await _rows(services, "messages", user_id)) == ids[-2:]


async def test_erasing_a_user_leaves_no_row_anywhere(services: Services) -> None:
    user_id, ids = await conversation(services, "af", ["my secret", "more", "and more"])
    other_id, _ = await conversation(services, "ag", ["someone else"])
    await set_read_position(services, user_id, ids[-1])
    await _archive(services, keep_recent_messages=2).run()
    await services.facts.add(user_id, NewFact("Has a secret"))
    assert await _rows(services, "messages_archive", user_id)
    async with services.db.connection() as conn:
        await conn.execute(
            "INSERT INTO admin_audit (actor_id, action, target_user_id) VALUES ($1, 'ban', $2)",
            other_id,
            user_id,
        )
        await conn.execute("INSERT INTO rate_limits (user_id, tat) VALUES ($1, now())", user_id)

    assert await services.users.delete(user_id)

    async with services.db.connection() as conn:
        columns = await conn.fetch(
            "SELECT c.table_name, c.column_name FROM information_schema.columns c"
            " JOIN information_schema.tables t USING (table_schema, table_name)"
            " WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'"
            " AND c.column_name IN ('user_id', 'target_user_id', 'actor_id', 'id')"
            " AND (c.column_name <> 'id' OR c.table_name = 'users')"
        )
        assert {r["table_name"] for r in columns} >= {
            "users",
            "identities",
            "conversations",
            "conversation_context",
            "messages",
            "messages_archive",
            "facts",
            "admin_audit",
        }
        left = {}
        for row in columns:
            table, column = row["table_name"], row["column_name"]
            left[f"{table}.{column}"] = await conn.fetchval(
                f'SELECT count(*) FROM "{table}" WHERE "{column}" = $1', user_id
            )
        # The other user is untouched.
        assert await conn.fetchval("SELECT count(*) FROM messages WHERE user_id = $1", other_id)
    assert {name: n for name, n in left.items() if n} == {}


async def test_two_archivers_at_once_move_everything_once(pooled: Services) -> None:
    users = []
    for i in range(6):
        user_id, ids = await conversation(pooled, f"b{i}", [f"m{j}" for j in range(6)])
        await set_read_position(pooled, user_id, ids[-1])
        users.append((user_id, ids))
    first = _archive(pooled, keep_recent_messages=2, batch_size=3)
    second = _archive(pooled, keep_recent_messages=2, batch_size=3)

    outcomes = await asyncio.gather(first.run(), second.run())

    assert not any(o.errors for o in outcomes)
    assert sum(o.counts["messages"] for o in outcomes) == 6 * 10
    for user_id, ids in users:
        assert list(await _rows(pooled, "messages_archive", user_id)) == ids[:10]
        assert list(await _rows(pooled, "messages", user_id)) == ids[10:]
    # Messages written after a user was archived are simply live.
    await say(pooled, users[0][0], ["new"])
    assert len(await _rows(pooled, "messages", users[0][0])) == 4


async def test_a_user_another_archiver_holds_is_skipped_until_released(
    pooled: Services,
) -> None:
    user_id, ids = await conversation(pooled, "c0", [f"m{j}" for j in range(6)])
    await set_read_position(pooled, user_id, ids[-1])
    key = (ARCHIVE_LOCK_CLASS, lock_key(user_id))
    assert pooled.db.pool is not None
    async with pooled.db.pool.acquire() as other:
        await other.execute("SELECT pg_advisory_lock($1, $2)", *key)
        held = await _archive(pooled, keep_recent_messages=2).run()
        await other.execute("SELECT pg_advisory_unlock($1, $2)", *key)

    assert held.counts == {"messages": 0, "users": 0, "batches": 0, "skipped": 1}
    assert list(await _rows(pooled, "messages", user_id)) == ids
    released = await _archive(pooled, keep_recent_messages=2).run()
    assert released.counts == {"messages": 10, "users": 1, "batches": 1, "skipped": 0}


async def test_asynchronous_commit_ends_with_the_run(services: Services) -> None:
    user_id, ids = await conversation(services, "c1", [f"m{j}" for j in range(3)])
    await set_read_position(services, user_id, ids[-1])
    async with services.db.connection() as conn:
        before = await conn.fetchval("SHOW synchronous_commit")

        outcome = await _archive(services, keep_recent_messages=2).run()

        assert outcome.counts["messages"] == 4
        assert await conn.fetchval("SHOW synchronous_commit") == before == "on"


async def test_a_voice_note_keeps_its_type_and_attachments_in_the_archive_and_export(
    services: Services,
) -> None:
    user_id, _ = await conversation(services, "ae", ["hello"])
    store = TurnStore(services.db, holder=uuid.uuid4(), lease_seconds=30)
    voice = {"kind": "voice", "mime_type": "audio/ogg", "ref": "f1", "transcript": "hi there"}
    new = NewMessage(
        "hi there", Platform.TELEGRAM, "c", "v1", None,
        message_type=MessageType.VOICE, attachments=(voice,),
    )  # fmt: skip
    opened = await store.open(user_id, new, ReadLimits(10, 5, False), take_lease=True)
    assert opened.message is not None
    await store.fail(user_id, opened.message.id)
    newer = await say(services, user_id, ["after the voice note"])
    await set_read_position(services, user_id, newer[-1])

    await _archive(services, keep_recent_messages=1).run()

    archived = await _rows(services, "messages_archive", user_id)
    assert archived[opened.message.id]["message_type"] == "voice"
    assert archived[opened.message.id]["attachments"] == [voice]
    exported = await collect(services, user_id, now=datetime.now(UTC))
    [entry] = [m for m in exported["messages"] if m["id"] == opened.message.id]
    assert (entry["message_type"], entry["attachments"], entry["archived"]) == (
        "voice",
        [voice],
        True,
    )


async def test_a_kept_recording_follows_its_message_into_the_archive_and_out_at_retention(
    services: Services,
) -> None:
    """`message_audio` names messages by id, which the move keeps: archived, the
    recording is still the message's (and exported with it); deleted by retention, it
    goes too. Another person's recording stays."""
    audio = MessageAudioRepository(services.db)
    user_id, ids = await conversation(services, "ah", ["first voice note", "second", "third"])
    other_id, other_ids = await conversation(services, "ai", ["someone else's"])
    await audio.keep(user_id, ids[0], mime_type="audio/ogg", data=b"OggS first")
    await audio.keep(user_id, ids[4], mime_type="audio/ogg", data=b"OggS third")
    await audio.keep(other_id, other_ids[0], mime_type="audio/ogg", data=b"OggS other")
    # Only the person's own messages, only once.
    assert not await audio.keep(user_id, other_ids[0], mime_type="audio/ogg", data=b"x")
    assert not await audio.keep(user_id, ids[1], mime_type="audio/ogg", data=b"a reply")
    assert not await audio.keep(user_id, ids[0], mime_type="audio/ogg", data=b"again")
    await set_read_position(services, user_id, ids[-1])

    assert (await _archive(services, keep_recent_messages=2).run()).counts["messages"] == 4

    assert ids[0] in await _rows(services, "messages_archive", user_id)
    kept = await audio.of_user(user_id)
    assert [(a.message_id, a.data) for a in kept] == [
        (ids[0], b"OggS first"),
        (ids[4], b"OggS third"),
    ]
    exported = await collect(services, user_id, now=datetime.now(UTC))
    [entry] = [m for m in exported["messages"] if m["id"] == ids[0]]
    assert entry["archived"] and entry["audio"]["data_base64"] == "T2dnUyBmaXJzdA=="

    due = await _retention(services, later=timedelta(days=61), retention_days=60).run()
    assert due.counts == {"deleted": 4}
    assert [a.message_id for a in await audio.of_user(user_id)] == [ids[4]]  # still live
    assert [a.message_id for a in await audio.of_user(other_id)] == [other_ids[0]]
