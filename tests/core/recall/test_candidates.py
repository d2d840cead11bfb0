"""Both recall lists in one round trip are exactly what the two repositories return."""

from __future__ import annotations

import numpy as np

from core.models import NewFact, Platform, SharedChat
from core.recall.candidates import RecallCandidates
from core.recall.keywords import TextSearchRepository
from core.recall.statements import Ranking
from core.recall.vectors import RecallRepository
from core.storage.database import Database
from core.storage.facts import FactRepository
from core.storage.messages import MessageRepository
from core.storage.users import UserRepository
from fakes.archiving import move_to_archive
from tests.core.recall.test_vectors import DIM, _unit

GROUP = SharedChat(Platform.TELEGRAM, "-100")
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
            # Half of them said in a group (the same group id for every user).
            chat_id=GROUP.chat_id if i % 2 else name,
            platform_message_id=f"{name}-{i}",
            embedding=vector,
            shared_chat=i % 2 == 1,
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
            for shared, excluded in ((None, []), (GROUP, ids[10:20])):
                got = await candidates.fetch(
                    user_id,
                    query,
                    embedding,
                    12,
                    shared_chat=shared,
                    exclude_message_ids=excluded,
                )
                expected = (
                    await vectors.nearest(
                        user_id,
                        embedding,
                        12,
                        shared_chat=shared,
                        exclude_message_ids=excluded,
                    ),
                    await text.search(
                        user_id, query, 12, shared_chat=shared, exclude_message_ids=excluded
                    ),
                )
                assert got == expected
                assert len(got[0]) == 12 and len(got[1]) >= 3
                said_in = {hit.id for hits in got for hit in hits if hit.source != "facts"}
                if shared is not None:  # only the group's messages (the odd ones)
                    assert said_in <= set(ids[1:40:2])
                assert other_id != user_id  # and none of bob's rows (the same words):
                assert all("bob" not in hit.content for hits in got for hit in hits)


async def test_without_an_embedding_only_keywords(db: Database) -> None:
    user_id, *_ = await _fill(db, "cy", np.random.default_rng(6))
    text = TextSearchRepository(db)
    candidates = RecallCandidates(db, RecallRepository(db, dimensions=DIM), text)
    got = await candidates.fetch(user_id, "violin\x00 tax", None, 5)
    assert got == ([], await text.search(user_id, "violin tax", 5))
    assert got[1]
