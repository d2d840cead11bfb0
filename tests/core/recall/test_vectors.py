from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.models import NewFact, Platform, SharedChat
from core.recall.statements import Source
from core.recall.vectors import RecallRepository
from core.storage.database import Database, create_pool
from core.storage.facts import FactRepository
from core.storage.messages import MessageRepository
from core.storage.users import UserRepository
from fakes.archiving import move_to_archive

DIM = 384


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    normalised: np.ndarray = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return normalised


def _clustered(rng: np.random.Generator, n: int, clusters: int = 50) -> np.ndarray:
    """Vectors shaped like real embeddings: topics (centroids) with spread around them."""
    centroids = _unit(rng, clusters)
    vectors = centroids[rng.integers(0, clusters, n)] + 0.03 * rng.standard_normal((n, DIM))
    vectors = vectors.astype(np.float32)
    normalised: np.ndarray = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return normalised


def _brute_force(query: np.ndarray, vectors: np.ndarray, k: int) -> list[int]:
    # Stored as halfvec: compare with what the database actually holds.
    stored = vectors.astype(np.float16).astype(np.float32)
    stored /= np.linalg.norm(stored, axis=1, keepdims=True)
    q = query.astype(np.float16).astype(np.float32)
    q /= np.linalg.norm(q)
    return list(np.argsort(-(stored @ q), kind="stable")[:k])


async def _fill(db: Database, platform_user_id: str, vectors: np.ndarray) -> tuple[int, list[int]]:
    user, _ = await UserRepository(db).get_or_create(Platform.TELEGRAM, platform_user_id)
    messages = MessageRepository(db)
    ids = []
    for i, vector in enumerate(vectors):
        stored = await messages.add_user_message(
            user.id,
            f"{platform_user_id} message {i}",
            platform=Platform.TELEGRAM,
            chat_id=platform_user_id,
            platform_message_id=str(i),
            embedding=vector,
        )
        ids.append(stored.message.id)
    return user.id, ids


async def test_exact_recall_matches_brute_force(db: Database) -> None:
    rng = np.random.default_rng(1)
    vectors = _unit(rng, 200)
    user_id, ids = await _fill(db, "u", vectors)
    recall = RecallRepository(db, dimensions=DIM)
    for query in _unit(rng, 10):
        hits = await recall.nearest(user_id, query, 10, approximate=False)
        assert [h.id for h in hits] == [ids[i] for i in _brute_force(query, vectors, 10)]
        similarities = [h.similarity for h in hits]
        assert similarities == sorted(similarities, reverse=True)


async def test_recall_spans_facts_messages_and_archive(db: Database) -> None:
    rng = np.random.default_rng(2)
    a, b, c, noise = _unit(rng, 4)
    user, _ = await UserRepository(db).get_or_create(Platform.TELEGRAM, "x")
    messages = MessageRepository(db)
    live = await messages.add_user_message(
        user.id,
        "live",
        platform=Platform.TELEGRAM,
        chat_id="x",
        platform_message_id="1",
        embedding=a,
    )
    old = await messages.add_user_message(
        user.id,
        "old",
        platform=Platform.TELEGRAM,
        chat_id="x",
        platform_message_id="2",
        embedding=b,
    )
    await move_to_archive(db, [old.message.id])
    facts = FactRepository(db)
    fact = await facts.add(user.id, NewFact("a fact", importance=9), embedding=c)
    private = await facts.add(user.id, NewFact("private", is_private=True), embedding=noise)
    gone = await facts.add(user.id, NewFact("no longer true"), embedding=a)
    await facts.invalidate(user.id, gone.id)
    recall = RecallRepository(db, dimensions=DIM)

    hits = await recall.nearest(user.id, b, 10)
    assert hits[0].source is Source.ARCHIVE and hits[0].id == old.message.id
    assert hits[0].similarity > 0.99
    assert {h.source: h.role for h in hits if h.source is not Source.FACTS} == {
        Source.ARCHIVE: "user",
        Source.MESSAGES: "user",
    }
    assert all(h.role is None for h in hits if h.source is Source.FACTS)
    found = {(h.source, h.id) for h in hits}
    assert found == {
        (Source.MESSAGES, live.message.id),
        (Source.ARCHIVE, old.message.id),
        (Source.FACTS, fact.id),
        (Source.FACTS, private.id),
    }
    # In a group: none of the private chat's messages, no private fact; that group's own
    # messages only, and never one that is not `remembered`.
    group = SharedChat(Platform.TELEGRAM, "-100")
    in_group = await messages.add_user_message(
        user.id, "g", platform=Platform.TELEGRAM, chat_id="-100", platform_message_id="3",
        embedding=b, shared_chat=True,
    )  # fmt: skip
    await messages.add_user_message(
        user.id, "h", platform=Platform.TELEGRAM, chat_id="-200", platform_message_id="4",
        embedding=b, shared_chat=True,
    )  # fmt: skip
    public = await recall.nearest(user.id, b, 10, shared_chat=group)
    assert {(h.source, h.id) for h in public} == {
        (Source.MESSAGES, in_group.message.id),
        (Source.FACTS, fact.id),
    }
    async with db.connection() as conn:
        await conn.execute("UPDATE messages SET remembered = false WHERE user_id = $1", user.id)
    unremembered = await recall.nearest(user.id, b, 10, sources={Source.MESSAGES})
    assert unremembered == []
    only_facts = await recall.nearest(user.id, c, 10, sources={Source.FACTS})
    assert only_facts[0].id == fact.id
    without_window = await recall.nearest(
        user.id, a, 10, sources={Source.MESSAGES}, exclude_message_ids=[live.message.id]
    )
    assert without_window == []


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=12), min_size=2, max_size=5),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    k=st.integers(min_value=1, max_value=20),
    approximate=st.booleans(),
)
async def test_recall_never_returns_another_users_rows(
    db: Database, sizes: list[int], seed: int, k: int, approximate: bool
) -> None:
    rng = np.random.default_rng(seed)
    async with db.connection() as conn:
        example = conn.transaction()
        await example.start()
        try:
            recall = RecallRepository(db, dimensions=DIM)
            owners: dict[int, set[int]] = {}
            for n, size in enumerate(sizes):
                user_id, user_ids = await _fill(db, f"h{n}", _unit(rng, size))
                owners[user_id] = set(user_ids)
            for user_id, ids in owners.items():
                hits = await recall.nearest(user_id, _unit(rng, 1)[0], k, approximate=approximate)
                assert {h.id for h in hits} <= ids
                if not approximate:
                    assert len(hits) == min(k, len(ids))
        finally:
            # Each example starts from the same state.
            await example.rollback()


async def test_a_large_user_without_own_index_is_searched_exactly(fresh_dsn: str) -> None:
    """No shared vector index (migration 0007): until the user_indexes job builds theirs,
    a large user's recall is the exact plan, whatever `approximate` asks for."""
    rng = np.random.default_rng(7)
    pool = await create_pool(fresh_dsn)
    try:
        db = Database(pool)
        users = UserRepository(db)
        heavy, _ = await users.get_or_create(Platform.TELEGRAM, "heavy")
        other, _ = await users.get_or_create(Platform.TELEGRAM, "other")
        heavy_vectors = _clustered(rng, 3000)
        async with pool.acquire() as conn:
            for user_id, vectors in ((heavy.id, heavy_vectors), (other.id, _clustered(rng, 3000))):
                await conn.copy_records_to_table(
                    "messages",
                    records=[
                        (
                            user_id,
                            "user",
                            f"m{i}",
                            "telegram",
                            "c",
                            str(user_id * 100000 + i),
                            "answered",
                            v,
                        )
                        for i, v in enumerate(vectors)
                    ],
                    columns=[
                        "user_id",
                        "role",
                        "content",
                        "platform",
                        "chat_id",
                        "platform_message_id",
                        "status",
                        "embedding",
                    ],
                )
            await conn.execute("ANALYZE messages")
            vector_indexes = await conn.fetchval(
                "SELECT count(*) FROM pg_indexes WHERE indexdef LIKE '%hnsw%'"
            )
            ids = [
                r["id"]
                for r in await conn.fetch(
                    "SELECT id FROM messages WHERE user_id = $1 ORDER BY id", heavy.id
                )
            ]
        assert vector_indexes == 0
        recall = RecallRepository(db, dimensions=DIM)
        for query in _clustered(rng, 5):
            expected = [ids[i] for i in _brute_force(query, heavy_vectors, 10)]
            for approximate in (None, True):
                hits = await recall.nearest(heavy.id, query, 10, approximate=approximate)
                assert [h.id for h in hits] == expected
            assert "hnsw" not in (await recall.explain(heavy.id, query, 10)).lower()
    finally:
        await pool.close()
