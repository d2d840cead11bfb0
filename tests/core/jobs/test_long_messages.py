"""The `long_messages` job: a long message is recalled by the passage a question is
about, live or archived, in its own chat only; a new text or model clears its passages,
and they go wherever their message goes (archive, retention, merge, `/forget all`)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from core.embedding.base import Embedder, Vector
from core.jobs.long_messages import LongMessageJob
from core.jobs.reembed import Reembedder
from core.models import Platform, SharedChat
from core.recall.statements import Source
from core.recall.vectors import RecallHit, RecallRepository
from core.services import Services
from core.storage.archive_store import ArchiveRepository
from core.storage.memory_store import MemoryStore
from core.storage.merge import MergeRepository
from core.storage.message_passages import MessagePassageRepository, MessageTable
from core.storage.messages import MessageRepository
from fakes.archiving import move_to_archive
from tests.core.jobs.test_reembed import HashEmbedder

WEATHER = (
    "The weather this week was grey and wet, with rain every morning and a cold wind from"
    " the north in the afternoon, so the streets stayed damp until evening. "
) * 12  # about 400 tokens, past the local model's 256
KITTEN = "By the way, my sister's new kitten is called Zorro, a black tabby."
QUESTION = "What is my sister's kitten called?"
# Nearer the question than the long message's one vector, farther than its last passage.
NEAR_MISSES = (
    "My sister is coming to stay with us next weekend.",
    "The neighbour's cat keeps sleeping on our garden wall.",
    "We keep saying we should get a pet one day.",
    "What should we call the new lemon tree on the balcony?",
)
# Longer than 250 characters, yet one passage: read by the job, given none.
MEDIUM = (
    "Lunch was a big bowl of noodle soup with far too much chilli in it, then a slow walk"
    " back along the canal while the sun finally came out, and a long chat with Sam"
    " about whether we should repaint the kitchen yellow or leave it white until the spring."
    " Sam says yellow."
)


async def _say(
    services: Services, user_id: int, text: str, n: int, *, chat: str | None = None
) -> int:
    [vector] = await services.embedder.embed([text])
    stored = await MessageRepository(services.db).add_user_message(
        user_id,
        text,
        platform=Platform.TELEGRAM,
        chat_id=chat or str(user_id),
        platform_message_id=f"{user_id}-{n}",
        embedding=vector,
        shared_chat=chat is not None,
    )
    return stored.message.id


async def _user(services: Services, platform_id: str) -> int:
    user, _ = await services.users.get_or_create(Platform.TELEGRAM, platform_id)
    return user.id


async def _nearest(services: Services, user_id: int, k: int, **scope: object) -> list[RecallHit]:
    [question] = await services.embedder.embed([QUESTION])
    recall = RecallRepository(services.db, dimensions=384)
    return await recall.nearest(user_id, question, k, **scope)  # type: ignore[arg-type]


async def _passages(services: Services, table: str, message_id: int) -> int | None:
    """The message's `passages`, after checking it counts its rows in `message_passages`."""
    async with services.db.connection() as conn:
        counted = await conn.fetchval(f"SELECT passages FROM {table} WHERE id = $1", message_id)
        stored = await conn.fetchval(
            "SELECT count(*) FROM message_passages WHERE message_id = $1", message_id
        )
    assert stored == (counted or 0)
    return None if counted is None else int(counted)


async def test_a_long_message_is_recalled_by_the_passage_a_question_is_about(
    services: Services,
) -> None:
    user_id = await _user(services, "long")
    long_id = await _say(services, user_id, WEATHER + KITTEN, 0)
    medium_id = await _say(services, user_id, MEDIUM, 1)
    for n, text in enumerate(NEAR_MISSES, 2):
        await _say(services, user_id, text, n)

    before = await _nearest(services, user_id, 10)
    assert [h.id for h in before].index(long_id) >= len(NEAR_MISSES)  # diluted by the weather

    outcome = await LongMessageJob(services.db, services.embedder).run()
    assert outcome.counts["long"] == 1
    assert outcome.counts["not_long"] == 1  # MEDIUM: read, one passage
    assert outcome.counts["passages"] == await _passages(services, "messages", long_id)
    assert outcome.counts["passages"] >= 3
    assert await _passages(services, "messages", medium_id) == 0

    after = await _nearest(services, user_id, 10)
    assert after[0].id == long_id
    assert after[0].source is Source.MESSAGES
    assert after[0].content == WEATHER + KITTEN  # the whole message, found by its end
    assert len({h.id for h in after}) == len(after)  # once, though found two ways
    assert after[0].similarity > next(h for h in before if h.id == long_id).similarity + 0.1

    again = await LongMessageJob(services.db, services.embedder).run()
    assert again.counts == {"long": 0, "passages": 0, "not_long": 0, "skipped": 0}


async def test_passages_follow_a_message_to_the_archive_and_keep_to_its_chat(
    services: Services,
) -> None:
    user_id = await _user(services, "scoped")
    private_id = await _say(services, user_id, WEATHER + KITTEN, 0)
    group_id = await _say(services, user_id, WEATHER + " " + KITTEN + " " + WEATHER, 1, chat="g")
    for n, text in enumerate(NEAR_MISSES, 2):
        await _say(services, user_id, text, n, chat="g")
    await LongMessageJob(services.db, services.embedder).run()
    await move_to_archive(services.db, [group_id])
    assert (await _passages(services, "messages_archive", group_id) or 0) >= 6

    private = await _nearest(services, user_id, 3)
    assert {h.id for h in private[:2]} == {private_id, group_id}
    in_group = await _nearest(services, user_id, 3, shared_chat=SharedChat(Platform.TELEGRAM, "g"))
    assert in_group[0].id == group_id
    assert in_group[0].source is Source.ARCHIVE
    assert private_id not in {h.id for h in in_group}  # said in private: never in the group
    excluded = await _nearest(services, user_id, 10, exclude_message_ids=[private_id])
    assert private_id not in {h.id for h in excluded}


async def test_a_new_text_or_model_clears_the_passages_for_the_next_run(
    services: Services,
) -> None:
    user_id = await _user(services, "renewed")
    voice_id = await _say(services, user_id, WEATHER + KITTEN, 0)
    other_id = await _say(services, user_id, KITTEN + " " + WEATHER, 1)
    job = LongMessageJob(services.db, services.embedder)
    await job.run()
    assert await _passages(services, "messages", voice_id) == 4

    # A transcript replaces the text: passages of the old one no longer hold.
    transcript = "Short now."
    [vector] = await services.embedder.embed([transcript])
    messages = MessageRepository(services.db)
    await messages.record_made_from(
        user_id, voice_id, content=transcript, attachments=[], embedding=vector
    )
    assert await _passages(services, "messages", voice_id) is None
    assert (await job.run()).counts == {"long": 0, "passages": 0, "not_long": 0, "skipped": 0}

    # Another model: every passage goes with the embedding it was made with.
    await Reembedder(services, embedder=HashEmbedder("other-model", 384)).run()
    assert await _passages(services, "messages", other_id) is None
    assert (await job.run()).counts["long"] == 1


async def test_a_text_changed_after_it_was_read_keeps_no_passages_of_the_old_one(
    services: Services,
) -> None:
    user_id = await _user(services, "raced")
    message_id = await _say(services, user_id, WEATHER + KITTEN, 0)
    repo = MessagePassageRepository(services.db)
    [read] = await repo.unread(MessageTable.MESSAGES, message_id - 1, 1)
    [vector] = await services.embedder.embed(["A transcript, longer than before. " * 10])
    await MessageRepository(services.db).record_made_from(
        user_id,
        message_id,
        content="A transcript, longer than before. " * 10,
        attachments=[],
        embedding=vector,
    )
    await repo.store(MessageTable.MESSAGES, [read], [[vector, vector]])
    assert await _passages(services, "messages", message_id) is None
    [unread] = await repo.unread(MessageTable.MESSAGES, message_id - 1, 1)
    assert unread.content.startswith("A transcript")


async def _until_someone_waits_for(services: Services, pid: int) -> None:
    """Until another backend waits for a lock that backend `pid` holds."""
    async with services.db.connection() as conn:
        async with asyncio.timeout(10):
            while not await conn.fetchval(  # noqa: ASYNC110 (the server has no event to await)
                "SELECT EXISTS (SELECT FROM pg_stat_activity"
                " WHERE $1::int = ANY (pg_blocking_pids(pid)))",
                pid,
            ):
                await asyncio.sleep(0.01)


async def test_passages_committed_while_the_text_is_rewritten_go_with_the_old_text(
    pooled: Services,
) -> None:
    """The job's write holds the message's row when a transcript replaces its text: the
    rewrite waits for the row, then deletes the passages the job committed meanwhile.
    (A DELETE inside the rewriting statement would read the snapshot taken before they
    were committed, and leave them.)"""
    services = pooled
    user_id = await _user(services, "interleaved")
    message_id = await _say(services, user_id, WEATHER + KITTEN, 0)
    repo = MessagePassageRepository(services.db)
    [read] = await repo.unread(MessageTable.MESSAGES, message_id - 1, 1)
    old, new = await services.embedder.embed([read.content, "Short now."])
    rewrite = None
    try:
        async with services.db.transaction() as job:
            await repo.store(MessageTable.MESSAGES, [read], [[old, old]], conn=job)
            rewrite = asyncio.create_task(
                MessageRepository(services.db).record_made_from(
                    user_id, message_id, content="Short now.", attachments=[], embedding=new
                )
            )
            await _until_someone_waits_for(services, job.get_server_pid())
        assert await rewrite
    finally:
        if rewrite is not None and not rewrite.done():
            rewrite.cancel()
    # The old text's passages are gone, and the new text is left for the job to read.
    assert await _passages(services, "messages", message_id) is None


class _HeldEmbedder:
    """The test's embedder, whose first call waits until `go` is set: a run caught
    half-way, as a replica's run is while it embeds."""

    def __init__(self, inner: Embedder) -> None:
        self.model_name = inner.model_name
        self.dimensions = inner.dimensions
        self.texts = 0
        self.embedding = asyncio.Event()
        self.go = asyncio.Event()
        self._inner = inner

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        self.texts += len(texts)
        self.embedding.set()
        await self.go.wait()
        return await self._inner.embed(texts)


async def test_two_runs_at_once_never_cut_the_same_table_twice(pooled: Services) -> None:
    """Two replicas' runs at once: the second skips the table the first is working on,
    and no message is embedded twice."""
    services = pooled
    user_id = await _user(services, "two-replicas")
    ids = [await _say(services, user_id, WEATHER + KITTEN, n) for n in range(3)]
    first_embedder, second_embedder = (_HeldEmbedder(services.embedder) for _ in range(2))
    second_embedder.go.set()
    first = asyncio.create_task(LongMessageJob(services.db, first_embedder).run())
    try:
        embedding = asyncio.create_task(first_embedder.embedding.wait())
        await asyncio.wait({first, embedding}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        embedding.cancel()
        assert first_embedder.embedding.is_set(), first  # (a run that ended says why)
        second = await LongMessageJob(services.db, second_embedder).run()
        assert second.counts == {"long": 0, "passages": 0, "not_long": 0, "skipped": 1}
        assert second_embedder.texts == 0
        first_embedder.go.set()
        outcome = await first
    finally:
        first_embedder.go.set()
        await asyncio.gather(first, return_exceptions=True)
    assert outcome.counts["long"] == 3
    assert first_embedder.texts == outcome.counts["passages"]
    counted = [await _passages(services, "messages", i) for i in ids]
    assert sum(n or 0 for n in counted) == outcome.counts["passages"]
    assert all(n is not None and n > 1 for n in counted)
    # Claims are given back: the next run finds the tables free, and nothing left to cut.
    assert (await LongMessageJob(services.db, second_embedder).run()).counts == {
        "long": 0, "passages": 0, "not_long": 0, "skipped": 0,
    }  # fmt: skip


async def _stored_passages(services: Services) -> dict[int, int]:
    """Message id -> user id of every stored passage."""
    async with services.db.connection() as conn:
        rows = await conn.fetch("SELECT DISTINCT message_id, user_id FROM message_passages")
    return {r["message_id"]: r["user_id"] for r in rows}


async def test_passages_go_where_their_messages_go(services: Services) -> None:
    ann = await _user(services, "ann")
    bob = await _user(services, "bob")
    kept = await _say(services, ann, WEATHER + KITTEN, 0)
    expiring = await _say(services, ann, KITTEN + " " + WEATHER, 1)
    bobs = await _say(services, bob, WEATHER + KITTEN, 2)
    forgotten = await _say(services, bob, KITTEN + WEATHER, 3)
    await LongMessageJob(services.db, services.embedder).run()
    await move_to_archive(services.db, [expiring])
    assert await _stored_passages(services) == {kept: ann, expiring: ann, bobs: bob, forgotten: bob}

    # Retention deletes archived messages for good, and their passages with them.
    expired = await ArchiveRepository(services.db).delete_expired(
        datetime.now(UTC) + timedelta(days=1), 10
    )
    assert expired == 1
    assert await _stored_passages(services) == {kept: ann, bobs: bob, forgotten: bob}

    # A merge gives Bob's to Ann, as it gives her his messages.
    await MergeRepository(services.db).merge(ann, bob)
    assert await _stored_passages(services) == {kept: ann, bobs: ann, forgotten: ann}
    hits = await _nearest(services, ann, 3)
    assert {kept, bobs} <= {h.id for h in hits}

    # `/forget all` deletes every message answered, and every passage of them.
    async with services.db.connection() as conn:
        await conn.execute("UPDATE messages SET status = 'answered' WHERE user_id = $1", ann)
    store = MemoryStore(services.db)
    async with services.db.transaction() as tx:
        assert await store.hold(ann, wait=timedelta(seconds=5), conn=tx)
        await store.forget_all(ann, at=datetime.now(UTC), conn=tx)
    assert await _stored_passages(services) == {}
