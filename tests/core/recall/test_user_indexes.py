"""Very large users get vector indexes of their own, and recall uses them."""

from __future__ import annotations

import numpy as np

from core.jobs.user_indexes import UserIndexJob
from core.models import Platform
from core.recall.candidates import RecallCandidates
from core.recall.keywords import TextSearchRepository
from core.recall.user_indexes import UserIndexRepository, index_name
from core.recall.vectors import RecallRepository
from core.storage.database import Database, create_pool
from core.storage.users import UserRepository
from tests.core.recall.test_vectors import DIM, _brute_force, _clustered


async def _fill(db: Database, name: str, vectors: np.ndarray) -> tuple[int, list[int]]:
    user, _ = await UserRepository(db).get_or_create(Platform.TELEGRAM, name)
    async with db.connection() as conn:
        await conn.copy_records_to_table(
            "messages",
            records=[
                (user.id, "user", f"{name} {i}", "telegram", name, str(i), "answered", v)
                for i, v in enumerate(vectors)
            ],
            columns=[
                "user_id", "role", "content", "platform", "chat_id",
                "platform_message_id", "status", "embedding",
            ],
        )  # fmt: skip
        await conn.execute(
            "UPDATE conversations SET message_count = $2 WHERE user_id = $1", user.id, len(vectors)
        )
        ids = [
            r["id"]
            for r in await conn.fetch(
                "SELECT id FROM messages WHERE user_id = $1 ORDER BY id", user.id
            )
        ]
        await conn.execute("ANALYZE messages")
    return user.id, ids


async def test_large_users_get_their_own_index_and_recall_uses_it(fresh_dsn: str) -> None:
    rng = np.random.default_rng(11)
    pool = await create_pool(fresh_dsn, min_size=1, max_size=4)
    try:
        db = Database(pool)
        large_vectors = _clustered(rng, 3000)
        large, large_ids = await _fill(db, "large", large_vectors)
        small, small_ids = await _fill(db, "small", _clustered(rng, 300))
        job = UserIndexJob(db, dimensions=DIM, min_messages=1000)

        outcome = await job.run()
        assert outcome.counts["created"] == 1
        assert await UserIndexRepository(db, dimensions=DIM).indexed_users() == {large}
        assert (await job.run()).counts["kept"] == 1

        recall = RecallRepository(db, dimensions=DIM)
        queries = _clustered(rng, 20)
        assert index_name("messages", DIM, large) in await recall.explain(large, queries[0], 10)
        found = 0
        for query in queries:
            hits = await recall.nearest(large, query, 10)
            assert {h.id for h in hits} <= set(large_ids)
            truth = {large_ids[i] for i in _brute_force(query, large_vectors, 10)}
            found += len(truth & {h.id for h in hits})
        assert found / (10 * len(queries)) >= 0.95
        small_hits = await recall.nearest(small, queries[0], 10)
        assert {h.id for h in small_hits} <= set(small_ids)
        # Both recall lists in one round trip take the same (approximate) plan.
        text = TextSearchRepository(db)
        candidates = RecallCandidates(db, recall, text)
        for query in queries[:3]:
            assert await candidates.fetch(large, "large 17", query, 10) == (
                await recall.nearest(large, query, 10),
                await text.search(large, "large 17", 10),
            )

        # After a change of embedding dimension the old indexes go, new ones come.
        other = UserIndexJob(db, dimensions=DIM * 2, min_messages=1000)
        assert (await other.run()).counts == {"created": 1, "dropped": 3, "kept": 0, "unindexed": 0}
        assert await UserIndexRepository(db, dimensions=DIM).indexed_users() == set()
        assert await UserIndexRepository(db, dimensions=DIM * 2).indexed_users() == {large}
        assert (await job.run()).counts == {"created": 1, "dropped": 3, "kept": 0, "unindexed": 0}

        # An erased user's indexes go with the next run.
        await UserRepository(db).delete(large)
        assert (await job.run()).counts["dropped"] == 1
        assert await UserIndexRepository(db, dimensions=DIM).indexed_users() == set()
    finally:
        await pool.close()


async def test_users_past_the_cap_are_counted_and_searched_exactly(fresh_dsn: str) -> None:
    rng = np.random.default_rng(12)
    pool = await create_pool(fresh_dsn, min_size=1, max_size=4)
    try:
        db = Database(pool)
        larger, _ = await _fill(db, "larger", _clustered(rng, 40))
        large_vectors = _clustered(rng, 30)
        large, large_ids = await _fill(db, "large", large_vectors)
        await _fill(db, "small", _clustered(rng, 5))
        job = UserIndexJob(db, dimensions=DIM, min_messages=10, max_users=1)

        outcome = await job.run()

        assert (outcome.counts["created"], outcome.counts["unindexed"]) == (1, 1)
        assert await UserIndexRepository(db, dimensions=DIM).indexed_users() == {larger}
        query = _clustered(rng, 1)[0]
        hits = await RecallRepository(db, dimensions=DIM).nearest(large, query, 10)
        assert [h.id for h in hits] == [
            large_ids[i] for i in _brute_force(query, large_vectors, 10)
        ]
    finally:
        await pool.close()
