"""Both recall lists in one round trip are exactly what the two repositories return."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from core.models import NewFact, Platform
from core.recall.candidates import RecallCandidates
from core.recall.keywords import Ranking, TextSearchRepository
from core.recall.vectors import RecallRepository
from core.storage.database import Database
from core.storage.directory import Directory, NewMessage, TurnRecall
from core.storage.facts import FactRepository
from core.storage.messages import MessageRepository
from core.storage.users import UserRepository
from fakes.archiving import move_to_archive
from tests.core.recall.test_vectors import DIM, _unit

WORDS = ("beagle", "slipper", "garden", "violin", "tax", "Zorblax-7", "4471", "train")


async def _fill(db: Database, name: str, rng: np.random.Generator) -> list[int]:
    user, _ = await UserRepository(db).get_or_create(Platform.TELEGRAM, name)
    messages = MessageRepository(db)
    ids = []
    for i, vector in enumerate(_unit(rng, 40)):
        words = " ".join(WORDS[j % len(WORDS)] for j in range(i % 5, i % 5 + 1 + i % 3))
        stored = await messages.add_user_message(
            user.id,
            f"{name} said {words} number {i}",
            platform=Platform.TELEGRAM,
            chat_id=name,
            platform_message_id=str(i),
            embedding=vector,
        )
        ids.append(stored.message.id)
    facts = FactRepository(db)
    for i, vector in enumerate(_unit(rng, 6)):
        await facts.add(
            user.id,
            NewFact(f"{name} likes the {WORDS[i]}", importance=1 + i, is_private=i % 2 == 0),
            embedding=vector,
        )
    await move_to_archive(db, ids[:10])
    return [user.id, *ids]


async def test_one_round_trip_returns_both_lists_as_the_repositories_do(db: Database) -> None:
    rng = np.random.default_rng(5)
    user_id, *ids = await _fill(db, "ann", rng)
    other_id, *_ = await _fill(db, "bob", rng)
    vectors = RecallRepository(db, dimensions=DIM)
    for ranking in Ranking:
        text = TextSearchRepository(db, ranking=ranking)
        candidates = RecallCandidates(db, vectors, text)
        for query, embedding in zip(
            ("beagle slipper", "what about Zorblax-7 and 4471?", "the garden train"),
            _unit(rng, 3),
            strict=True,
        ):
            for private, excluded in ((True, []), (False, ids[10:20])):
                got = await candidates.fetch(
                    user_id,
                    query,
                    embedding,
                    12,
                    include_private=private,
                    exclude_message_ids=excluded,
                )
                expected = (
                    await vectors.nearest(
                        user_id,
                        embedding,
                        12,
                        include_private=private,
                        exclude_message_ids=excluded,
                    ),
                    await text.search(
                        user_id, query, 12, include_private=private, exclude_message_ids=excluded
                    ),
                )
                assert got == expected
                assert len(got[0]) == 12 and len(got[1]) > 3
                assert other_id != user_id  # and none of bob's rows (the same words):
                assert all("bob" not in hit.content for hits in got for hit in hits)


async def test_without_an_embedding_only_keywords(db: Database) -> None:
    user_id, *_ = await _fill(db, "cy", np.random.default_rng(6))
    text = TextSearchRepository(db)
    candidates = RecallCandidates(db, RecallRepository(db, dimensions=DIM), text)
    got = await candidates.fetch(user_id, "violin\x00 tax", None, 5)
    assert got == ([], await text.search(user_id, "violin tax", 5))
    assert got[1]


async def test_a_turn_reads_the_candidates_with_its_state(db: Database) -> None:
    rng = np.random.default_rng(7)
    user_id, *ids = await _fill(db, "dee", rng)
    await _fill(db, "eve", rng)
    candidates = RecallCandidates(
        db, RecallRepository(db, dimensions=DIM), TextSearchRepository(db)
    )
    directory = Directory(db)
    answered = ids[12]  # an older message being answered (e.g. redelivered): not recalled
    query = "beagle slipper garden"
    for embedding in (_unit(rng, 1)[0], None):
        for private in (True, False):
            recall = TurnRecall(candidates, query, embedding, 12, answered)
            state = await directory.turn_state(
                user_id, recent=6, facts=5, include_private=private, recall=recall
            )
            excluded = [m.id for m in state.recent] + [answered]
            assert len(excluded) == 7
            assert (state.vector_hits, state.text_hits) == await candidates.fetch(
                user_id,
                query,
                embedding,
                12,
                include_private=private,
                exclude_message_ids=excluded,
            )
            assert len(state.vector_hits) == (0 if embedding is None else 12)
            assert len(state.text_hits) > 3
            found = [(h.source, h.id) for h in state.vector_hits]
            found += [(h.source, h.id) for h in state.text_hits]
            assert not {i for source, i in found if source != "facts"} & set(excluded)
            plain = await directory.turn_state(user_id, recent=6, facts=5, include_private=private)
            assert (plain.conversation, plain.recent, plain.facts) == (
                state.conversation,
                state.recent,
                state.facts,
            )
            assert not plain.vector_hits and not plain.text_hits


async def test_a_turn_storing_its_message_reads_what_storing_it_first_would(
    db: Database,
) -> None:
    """`turn_state(storing=...)` stores the message in the statement that reads the
    turn: the same window (the message added by the caller), facts and recall lists as
    storing it, then reading with it left out (but for the keyword ranks' row count);
    once only, however often it comes."""
    rng = np.random.default_rng(11)
    user_id, *_ = await _fill(db, "fay", rng)
    await _fill(db, "gus", rng)
    candidates = RecallCandidates(
        db, RecallRepository(db, dimensions=DIM), TextSearchRepository(db)
    )
    directory = Directory(db)
    messages = MessageRepository(db)
    users = UserRepository(db)
    text = "beagle garden 4471 tonight"
    for n, (embedding, private) in enumerate(((_unit(rng, 1)[0], True), (None, False))):
        new = NewMessage(text, Platform.TELEGRAM, "fay", f"new-{n}", embedding)
        before = await users.conversation(user_id)
        async with db.connection() as conn:
            attempt = conn.transaction()
            await attempt.start()
            state = await directory.turn_state(
                user_id,
                recent=5,
                facts=5,
                include_private=private,
                recall=TurnRecall(candidates, text, embedding, 12, None),
                storing=new,
                conn=conn,
            )
            await attempt.rollback()
        stored = await messages.add_user_message(
            user_id,
            text,
            platform=Platform.TELEGRAM,
            chat_id="fay",
            platform_message_id=f"new-{n}",
            embedding=embedding,
        )
        expected = await directory.turn_state(
            user_id,
            recent=6,
            facts=5,
            include_private=private,
            recall=TurnRecall(candidates, text, embedding, 12, stored.message.id),
        )
        assert state.stored is not None
        assert replace(state.stored, id=0, created_at=stored.message.created_at) == replace(
            stored.message, id=0, created_at=stored.message.created_at
        )
        assert [m.id for m in state.recent] == [m.id for m in expected.recent[:-1]]
        assert expected.recent[-1].id == stored.message.id
        assert state.facts == expected.facts
        assert state.vector_hits == expected.vector_hits
        # The same keyword hits in the same order; their BM25 ranks differ a little, as
        # the user's row count (N, in the IDF) does not count the message being stored.
        assert [(h.source, h.id) for h in state.text_hits] == [
            (h.source, h.id) for h in expected.text_hits
        ]
        assert [h.rank for h in state.text_hits] == pytest.approx(
            [h.rank for h in expected.text_hits], rel=0.05
        )
        assert len(state.text_hits) > 3
        assert len(state.vector_hits) == (0 if embedding is None else 12)
        assert state.conversation == before
        # Stored before: the statement stores nothing, counts nothing, and says so.
        again = await directory.turn_state(
            user_id, recent=5, facts=5, include_private=private, storing=new
        )
        assert again.stored is None
        after = await users.conversation(user_id)
        assert after.message_count == before.message_count + 1
