from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.models import NewFact, Platform, SharedChat
from core.recall.keywords import TextSearchRepository
from core.recall.statements import Ranking, Source
from core.storage.database import Database
from core.storage.facts import FactRepository
from core.storage.messages import MessageRepository
from core.storage.users import UserRepository
from fakes.archiving import move_to_archive


async def _user(db: Database, name: str) -> int:
    user, _ = await UserRepository(db).get_or_create(Platform.TELEGRAM, name)
    return user.id


async def _say(
    db: Database, user_id: int, text: str, n: int, *, group: SharedChat | None = None
) -> int:
    stored = await MessageRepository(db).add_user_message(
        user_id,
        text,
        platform=Platform.TELEGRAM,
        chat_id=str(user_id) if group is None else group.chat_id,
        platform_message_id=str(n),
        shared_chat=group is not None,
    )
    return stored.message.id


@pytest.mark.parametrize("ranking", list(Ranking))
async def test_any_term_matches_and_rare_terms_rank_first(db: Database, ranking: Ranking) -> None:
    user = await _user(db, "a")
    berlin = await _say(db, user, "I live in Berlin with my cat", 1)
    music = await _say(db, user, "We love live music", 2)
    await _say(db, user, "Nothing in common here", 3)
    repo = TextSearchRepository(db, ranking=ranking)

    hits = await repo.search(user, "where do I live now, Berlin?", 10)

    assert [h.id for h in hits][:1] == [berlin]
    assert {h.id for h in hits} == {berlin, music}
    assert all(h.source is Source.MESSAGES and h.role == "user" for h in hits)
    assert hits[0].rank >= hits[1].rank


async def test_bm25_prefers_the_rare_term_over_a_repeated_common_one(db: Database) -> None:
    user = await _user(db, "a")
    for n in range(8):
        await _say(db, user, f"work work work meeting {n}", n)
    rare = await _say(db, user, "the Zorblax-7 launch went fine at work", 99)

    hits = await TextSearchRepository(db).search(user, "what about zorblax-7 at work", 3)

    assert hits[0].id == rare


async def test_archive_and_facts_are_searched_a_shared_chat_finds_its_own_only(
    db: Database,
) -> None:
    user = await _user(db, "a")
    old = await _say(db, user, "my locker number is 4471", 1)
    group, other_group = (
        SharedChat(Platform.TELEGRAM, "-100"),
        SharedChat(Platform.TELEGRAM, "-200"),
    )
    in_group = await _say(db, user, "locker 4471 again, said in the group", 2, group=group)
    elsewhere = await _say(db, user, "locker 4471, said in another group", 3, group=other_group)
    await move_to_archive(db, [old, in_group])
    facts = FactRepository(db)
    public = await facts.add(user, NewFact("Locker 4471 is at the north gym", importance=8))
    private = await facts.add(user, NewFact("PIN 4471 for the bank", is_private=True))
    gone = await facts.add(user, NewFact("Old locker 4471"))
    await facts.invalidate(user, gone.id)
    repo = TextSearchRepository(db)

    everything = {(h.source, h.id) for h in await repo.search(user, "4471", 10)}
    shared = await repo.search(user, "4471", 10, shared_chat=group)

    assert everything == {
        (Source.ARCHIVE, old),
        (Source.ARCHIVE, in_group),
        (Source.MESSAGES, elsewhere),
        (Source.FACTS, public.id),
        (Source.FACTS, private.id),
    }
    # In the group: its own message (archived or not), facts that are not private.
    assert {(h.source, h.id) for h in shared} == {
        (Source.ARCHIVE, in_group),
        (Source.FACTS, public.id),
    }
    fact_hit = next(h for h in shared if h.source is Source.FACTS)
    assert fact_hit.importance == 8 and fact_hit.role is None


async def test_excluded_messages_are_never_returned_but_facts_with_that_id_are(
    db: Database,
) -> None:
    user = await _user(db, "a")
    live = await _say(db, user, "the Zorblax prototype", 1)
    archived = await _say(db, user, "Zorblax again", 2)
    await move_to_archive(db, [archived])
    fact = await FactRepository(db).add(user, NewFact("Zorblax is a codename"))
    repo = TextSearchRepository(db)

    hits = await repo.search(user, "zorblax", 10, exclude_message_ids=[live, archived, fact.id])

    assert [(h.source, h.id) for h in hits] == [(Source.FACTS, fact.id)]


@pytest.mark.parametrize("query", ["", "   ", "the and of what is", "?!", "'", "\\"])
async def test_empty_or_stop_word_queries_match_nothing(db: Database, query: str) -> None:
    user = await _user(db, "a")
    await _say(db, user, "the and of what is ' \\ ?!", 1)

    assert await TextSearchRepository(db).search(user, query, 10) == []


@pytest.mark.parametrize(
    "query",
    [
        "o'brien",
        "x' | 'y",
        "a & b | !c <-> d:*",
        "'; DROP TABLE messages; --",
        "back\\slash\\",
        "''''",
        "🦊 fox",
    ],
)
async def test_injection_looking_input_is_only_text(db: Database, query: str) -> None:
    user = await _user(db, "a")
    match = await _say(db, user, "O'Brien saw a fox near the back\\slash table; drop it", 1)
    repo = TextSearchRepository(db)

    hits = await repo.search(user, query, 10)

    assert {h.id for h in hits} <= {match}
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM messages WHERE user_id = $1", user) == 1


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(query=st.text(max_size=60) | st.just("nul\x00byte"))
async def test_any_text_is_a_valid_query(db: Database, query: str) -> None:
    user = await _user(db, "fuzz")
    await _say(db, user, "some text with numbers 12 and names like Zorblax", 1)

    await TextSearchRepository(db).search(user, query, 5)


async def test_another_users_rows_are_never_returned(db: Database) -> None:
    alice = await _user(db, "alice")
    bob = await _user(db, "bob")
    await _say(db, alice, "Zorblax secret of alice", 1)
    await FactRepository(db).add(alice, NewFact("Zorblax fact of alice"))
    archived = await _say(db, alice, "Zorblax archived of alice", 2)
    await move_to_archive(db, [archived])
    mine = await _say(db, bob, "Zorblax of bob", 1)
    repo = TextSearchRepository(db)

    hits = await repo.search(bob, "zorblax secret fact archived alice", 10)

    assert [(h.source, h.id) for h in hits] == [(Source.MESSAGES, mine)]


async def test_long_queries_are_capped(db: Database) -> None:
    user = await _user(db, "a")
    await _say(db, user, "word1 word2", 1)
    query = " ".join(f"word{i}" for i in range(1000))

    hits = await TextSearchRepository(db).search(user, query, 5)

    assert len(hits) <= 1


async def test_coverage_is_the_share_of_query_information_a_row_matches(db: Database) -> None:
    user = await _user(db, "a")
    for n in range(6):
        await _say(db, user, f"a new day number {n}", n)
    rare = await _say(db, user, "Zorblax-7 shipped", 10)
    repo = TextSearchRepository(db)

    [exact] = await repo.search(user, "What was Zorblax-7 about?", 5)
    weak = await repo.search(user, "how is my new dog?", 5)

    assert exact.id == rare and exact.coverage > 0.99
    assert weak and all(0 < h.coverage < 0.4 for h in weak)
