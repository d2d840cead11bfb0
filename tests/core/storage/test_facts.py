from __future__ import annotations

from core.models import NewFact, Platform
from core.storage.database import Database, create_pool
from core.storage.facts import FactRepository
from core.storage.users import UserRepository
from tests.core.storage.turn_reads import turn_state


async def test_invalidated_fact_is_kept_but_not_valid(db: Database) -> None:
    user, _ = await UserRepository(db).get_or_create(Platform.TELEGRAM, "1")
    facts = FactRepository(db)
    old = await facts.add(user.id, NewFact("Lives in Berlin", "location", importance=7))
    new = await facts.add(user.id, NewFact("Lives in Lisbon", "location", importance=7))
    assert await facts.invalidate(user.id, old.id)
    assert not await facts.invalidate(user.id, old.id)
    assert [f.id for f in await facts.valid(user.id)] == [new.id]
    everything = await facts.all(user.id)
    assert [(f.id, f.invalid_at is not None) for f in everything] == [
        (old.id, True),
        (new.id, False),
    ]
    # An invalidated fact cannot be restated.
    assert await facts.update(user.id, old.id, NewFact("Lives in Paris")) is None


async def test_update_merges_sources_and_private_facts_can_be_left_out(db: Database) -> None:
    user, _ = await UserRepository(db).get_or_create(Platform.TELEGRAM, "1")
    facts = FactRepository(db)
    fact = await facts.add(user.id, NewFact("Has a dog", source_message_ids=(1, 2)))
    updated = await facts.update(
        user.id, fact.id, NewFact("Has a dog named Rex", importance=8, source_message_ids=(2, 3))
    )
    assert updated is not None
    assert sorted(updated.source_message_ids) == [1, 2, 3]
    assert updated.importance == 8
    await facts.add(user.id, NewFact("Health detail", is_private=True))
    public = await facts.valid(user.id, include_private=False)
    assert [f.content for f in public] == ["Has a dog named Rex"]
    assert len(await facts.valid(user.id)) == 2


async def test_facts_are_scoped_by_user(db: Database) -> None:
    users = UserRepository(db)
    alice, _ = await users.get_or_create(Platform.TELEGRAM, "a")
    bob, _ = await users.get_or_create(Platform.TELEGRAM, "b")
    facts = FactRepository(db)
    fact = await facts.add(alice.id, NewFact("Alice's secret"))
    assert await facts.valid(bob.id) == []
    assert not await facts.invalidate(bob.id, fact.id)
    assert await facts.forget(bob.id, fact.id) is None
    assert await facts.forget(alice.id, fact.id) == 0
    assert await facts.all(alice.id) == []


async def test_a_turn_reads_the_same_valid_facts_in_its_one_query(fresh_dsn: str) -> None:
    """A turn reads facts as `valid` does (order, limit, private ones
    only when asked), without source ids, on a connection that never decoded a fact."""
    seeding = await create_pool(fresh_dsn, min_size=1, max_size=1)
    try:
        db = Database(seeding)
        user, _ = await UserRepository(db).get_or_create(Platform.TELEGRAM, "1")
        other, _ = await UserRepository(db).get_or_create(Platform.TELEGRAM, "2")
        facts = FactRepository(db)
        for i, importance in enumerate((3, 9, 5, 9, 1)):
            await facts.add(
                user.id,
                NewFact(f"fact {i}", importance=importance, is_private=i == 3),
                embedding=None,
            )
        gone = await facts.add(user.id, NewFact("no longer true", importance=10))
        await facts.invalidate(user.id, gone.id)
        await facts.add(other.id, NewFact("someone else's", importance=10))
        await facts.add(user.id, NewFact("with sources", importance=2, source_message_ids=(7,)))
    finally:
        await seeding.close()
    pool = await create_pool(fresh_dsn, min_size=1, max_size=1)
    try:
        db = Database(pool)
        for include_private, limit in ((True, 10), (False, 10), (True, 3)):
            state = await turn_state(
                db, user.id, window=5, facts=limit, include_private=include_private
            )
            expected = await FactRepository(db).valid(
                user.id, limit=limit, include_private=include_private
            )
            assert [f.id for f in state.facts] == [f.id for f in expected]
            assert [f.content for f in state.facts] == [f.content for f in expected]
            assert all(f.source_message_ids == () for f in state.facts)
        assert [f.content for f in state.facts] == ["fact 3", "fact 1", "fact 2"]  # newer first
    finally:
        await pool.close()
