"""Very large users (in messages or in facts) get vector and full-text indexes of their
own, and recall uses them."""

from __future__ import annotations

import numpy as np

from core.jobs.user_indexes import UserIndexJob
from core.models import Platform
from core.recall.candidates import RecallCandidates
from core.recall.keywords import TextSearchRepository
from core.recall.statements import Ranking, keyword_statement
from core.recall.user_indexes import UserIndexRepository, index_name, search_index_name
from core.recall.vectors import RecallRepository, recall_plan
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


async def _keyword_plan(db: Database, user_id: int, query: str) -> str:
    """The plan of the keyword list of a user with indexes of their own."""
    sql = keyword_statement(Ranking.BM25, indexed=True)
    async with db.connection() as conn, recall_plan(conn, approximate=True):
        rows = await conn.fetch("EXPLAIN " + sql, user_id, query, [], None, 40)
    return "\n".join(r[0] for r in rows)


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
        # Both recall lists take the same (approximate) plan: side by side on two pooled
        # connections, or in one statement on the caller's connection.
        text = TextSearchRepository(db)
        candidates = RecallCandidates(db, recall, text)
        for query in queries[:3]:
            expected = (
                await recall.nearest(large, query, 10),
                await text.search(large, "large 17", 10, indexed=True),
            )
            assert await candidates.fetch(large, "large 17", query, 10) == expected
            async with db.connection() as conn:
                assert await candidates.fetch(large, "large 17", query, 10, conn=conn) == expected
                # A Database of one connection (scripts): one statement, not two at once.
                one = Database(conn)
                alone = RecallCandidates(
                    one, RecallRepository(one, dimensions=DIM), TextSearchRepository(one)
                )
                assert await alone.fetch(large, "large 17", query, 10) == expected

        plan = await _keyword_plan(db, large, "17")
        assert search_index_name("messages", large) in plan
        # The person's newest message (for the language) through the user's B-tree, not
        # by walking the primary key back past the small user's newer messages.
        assert "messages_pkey" not in plan

        # After a change of embedding dimension the old indexes go, new ones come.
        other = UserIndexJob(db, dimensions=DIM * 2, min_messages=1000)
        # (messages, archive, facts and passages)
        assert (await other.run()).counts == {"created": 1, "dropped": 4, "kept": 0, "unindexed": 0}
        assert await UserIndexRepository(db, dimensions=DIM).indexed_users() == set()
        assert await UserIndexRepository(db, dimensions=DIM * 2).indexed_users() == {large}
        assert (await job.run()).counts == {"created": 1, "dropped": 4, "kept": 0, "unindexed": 0}

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


async def test_a_user_heavy_in_facts_is_indexed_and_searched_by_keyword_through_it(
    fresh_dsn: str,
) -> None:
    rng = np.random.default_rng(13)
    pool = await create_pool(fresh_dsn, min_size=1, max_size=4)
    try:
        db = Database(pool)
        heavy, _ = await _fill(db, "heavy", _clustered(rng, 10))
        await _fill(db, "small", _clustered(rng, 50))
        async with db.connection() as conn:
            # Every fact says "Maya"; one in a hundred says "kayak".
            await conn.copy_records_to_table(
                "facts",
                records=[
                    (heavy, f"Maya likes {'kayak' if i % 100 == 0 else 'tea'} number {i}",
                     v)
                    for i, v in enumerate(_clustered(rng, 1500))
                ],
                columns=["user_id", "content", "embedding"],
            )  # fmt: skip
            await conn.execute("ANALYZE")
        job = UserIndexJob(db, dimensions=DIM, min_messages=1000)

        assert (await job.run()).counts["created"] == 1
        assert await UserIndexRepository(db, dimensions=DIM).indexed_users() == {heavy}
        text = TextSearchRepository(db)
        exact = await text.search(heavy, "does Maya own a kayak?", 40)
        indexed = await text.search(heavy, "does Maya own a kayak?", 40, indexed=True)
        # The common name finds nothing by itself; the rare word finds its 15 facts,
        # ranked as the exact plan ranks them (the name counts in both).
        assert [h.id for h in indexed] == [h.id for h in exact][:15]
        assert all("kayak" in h.content for h in indexed)
        assert await text.search(heavy, "Maya likes tea", 40, indexed=True) == []
        assert search_index_name("facts", heavy) in await _keyword_plan(db, heavy, "kayak")
    finally:
        await pool.close()


async def test_a_user_indexed_before_full_text_indexes_gets_them(fresh_dsn: str) -> None:
    rng = np.random.default_rng(14)
    pool = await create_pool(fresh_dsn, min_size=1, max_size=4)
    try:
        db = Database(pool)
        large, _ = await _fill(db, "large", _clustered(rng, 1200))
        job = UserIndexJob(db, dimensions=DIM, min_messages=1000)
        await job.run()
        repo = UserIndexRepository(db, dimensions=DIM)
        async with db.connection() as conn:
            await conn.execute(f"DROP INDEX {search_index_name('messages', large)}")
        assert await repo.indexed_users() == set()
        assert await repo.indexed_users(complete=False) == {large}

        assert (await job.run()).counts == {"created": 1, "dropped": 0, "kept": 0, "unindexed": 0}
        assert await repo.indexed_users() == {large}

        # Indexed before long messages had passages (migration 0020): theirs come too.
        async with db.connection() as conn:
            await conn.execute(f"DROP INDEX {index_name('message_passages', DIM, large)}")
        assert await repo.indexed_users() == set()
        assert (await job.run()).counts["created"] == 1
        assert await repo.indexed_users() == {large}
    finally:
        await pool.close()


async def test_a_large_users_long_messages_are_found_by_their_passages_index(
    fresh_dsn: str,
) -> None:
    rng = np.random.default_rng(15)
    pool = await create_pool(fresh_dsn, min_size=1, max_size=4)
    try:
        db = Database(pool)
        vectors = _clustered(rng, 1500)
        large, ids = await _fill(db, "large", vectors)
        # Every tenth message is long, with three passages each; the query is one of them.
        passages = _clustered(rng, 3 * len(ids[::10]))
        async with db.connection() as conn:
            await conn.copy_records_to_table(
                "message_passages",
                records=[
                    (message_id, large, n, passages[3 * i + n])
                    for i, message_id in enumerate(ids[::10])
                    for n in range(3)
                ],
                columns=["message_id", "user_id", "position", "embedding"],
            )
            await conn.execute("ANALYZE message_passages")
        await UserIndexJob(db, dimensions=DIM, min_messages=1000).run()
        recall = RecallRepository(db, dimensions=DIM)
        query = passages[3 * 42 + 2]  # the last passage of the 43rd long message

        plan = await recall.explain(large, query, 10)
        assert index_name("message_passages", DIM, large) in plan
        assert index_name("messages", DIM, large) in plan
        hits = await recall.nearest(large, query, 10)
        assert hits[0].id == ids[::10][42]
        assert hits[0].similarity > 0.99
        assert len({h.id for h in hits}) == len(hits)
        # Its passages do not count in the recent window, where the message itself is.
        hits = await recall.nearest(large, query, 10, exclude_message_ids=[ids[::10][42]])
        assert ids[::10][42] not in {h.id for h in hits}
    finally:
        await pool.close()
