"""The vector list reads long messages' passages (`message_passages`): each message once,
by its nearest passage, from the user's own rows only, live or archived."""

from __future__ import annotations

import numpy as np

from core.jobs.long_messages import LongMessageJob
from core.models import Platform
from core.recall.candidates import RecallCandidates
from core.recall.keywords import TextSearchRepository
from core.recall.statements import Source
from core.recall.vectors import RecallRepository
from core.storage.database import Database
from core.storage.message_passages import MessagePassageRepository, MessageTable
from core.storage.messages import MessageRepository
from core.storage.users import UserRepository
from fakes.archiving import move_to_archive
from tests.core.jobs.test_reembed import HashEmbedder
from tests.core.recall.test_vectors import DIM, _unit

LONG = "It rained and rained all week long, and the streets stayed wet. " * 30


def _near(query: np.ndarray, rng: np.random.Generator, spread: float) -> np.ndarray:
    """A unit vector at about `spread` from the query (farther the larger)."""
    vector = query + spread * rng.standard_normal(DIM).astype(np.float32) / np.sqrt(DIM)
    normalised: np.ndarray = (vector / np.linalg.norm(vector)).astype(np.float32)
    return normalised


async def _user(db: Database, name: str) -> int:
    user, _ = await UserRepository(db).get_or_create(Platform.TELEGRAM, name)
    return user.id


async def _message(db: Database, user_id: int, n: int, embedding: np.ndarray) -> int:
    stored = await MessageRepository(db).add_user_message(
        user_id,
        f"{LONG} ({n})",
        platform=Platform.TELEGRAM,
        chat_id=str(user_id),
        platform_message_id=f"{user_id}-{n}",
        embedding=embedding,
    )
    return stored.message.id


async def _passages(db: Database, user_id: int, message_id: int, vectors: list[np.ndarray]) -> None:
    async with db.connection() as conn:
        await conn.executemany(
            "INSERT INTO message_passages (message_id, user_id, position, embedding)"
            " VALUES ($1, $2, $3, $4)",
            [(message_id, user_id, n, v.astype(np.float16)) for n, v in enumerate(vectors)],
        )


async def test_each_message_counts_once_so_the_next_one_is_not_crowded_out(
    db: Database,
) -> None:
    rng = np.random.default_rng(21)
    query = _unit(rng, 1)[0]
    ann = await _user(db, "ann")
    far = _unit(rng, 5)  # the messages' own embeddings say nothing about the query
    crowded = [await _message(db, ann, n, far[n]) for n in range(4)]
    # Three messages with three passages each near the query, then a fourth whose one
    # passage comes tenth: with k = 4 it must still be found.
    for n, message_id in enumerate(crowded[:3]):
        await _passages(db, ann, message_id, [_near(query, rng, 0.2 + 0.01 * n) for _ in range(3)])
    await _passages(db, ann, crowded[3], [_near(query, rng, 0.5)])
    others = [await _message(db, ann, n, _near(query, rng, 2.0)) for n in range(10, 16)]

    hits = await RecallRepository(db, dimensions=DIM).nearest(ann, query, 4, approximate=False)
    assert {h.id for h in hits[:3]} == set(crowded[:3])
    assert hits[3].id == crowded[3]
    assert {h.id for h in hits} == set(crowded)
    assert not {h.id for h in hits} & set(others)


async def test_another_users_identical_long_message_is_never_theirs(db: Database) -> None:
    rng = np.random.default_rng(22)
    query = _unit(rng, 1)[0]
    ann, bob = await _user(db, "ann"), await _user(db, "bob")
    anns = await _message(db, ann, 0, _unit(rng, 1)[0])
    bobs = await _message(db, bob, 0, _unit(rng, 1)[0])
    await _passages(db, ann, anns, [_near(query, rng, 1.0)])
    await _passages(db, bob, bobs, [query])  # Bob's is the nearer by far

    recall = RecallRepository(db, dimensions=DIM)
    for approximate in (False, True):
        hits = await recall.nearest(ann, query, 10, approximate=approximate)
        assert [h.id for h in hits] == [anns]
    candidates = RecallCandidates(db, recall, TextSearchRepository(db))
    vector, text = await candidates.fetch(ann, "rained all week", query, 10)
    assert [h.id for h in vector] == [anns]  # once, though found by embedding and passage
    assert [h.id for h in text] == [anns]


async def test_an_archived_long_message_is_found_by_its_passage_alone(db: Database) -> None:
    rng = np.random.default_rng(23)
    query = _unit(rng, 1)[0]
    ann = await _user(db, "ann")
    archived = await _message(db, ann, 0, _unit(rng, 1)[0])
    live = await _message(db, ann, 1, _near(query, rng, 0.6))
    await _passages(db, ann, archived, [_unit(rng, 1)[0], _near(query, rng, 0.2)])
    await move_to_archive(db, [archived])

    recall = RecallRepository(db, dimensions=DIM)
    only_archive = await recall.nearest(ann, query, 5, sources={Source.ARCHIVE})
    assert [(h.source, h.id) for h in only_archive] == [(Source.ARCHIVE, archived)]
    both = await recall.nearest(ann, query, 5)
    assert [(h.source, h.id) for h in both] == [(Source.ARCHIVE, archived), (Source.MESSAGES, live)]


async def test_passages_left_of_an_earlier_cut_are_replaced_not_a_failure(db: Database) -> None:
    rng = np.random.default_rng(24)
    ann = await _user(db, "ann")
    message_id = await _message(db, ann, 0, _unit(rng, 1)[0])
    # Five rows left behind (by some earlier cut), while the message is unread again.
    await _passages(db, ann, message_id, list(_unit(rng, 5)))

    outcome = await LongMessageJob(db, HashEmbedder("hash", DIM)).run()
    assert outcome.counts["long"] == 1
    async with db.connection() as conn:
        rows = await conn.fetch(
            "SELECT position FROM message_passages WHERE message_id = $1 ORDER BY position",
            message_id,
        )
        counted = await conn.fetchval("SELECT passages FROM messages WHERE id = $1", message_id)
    assert [r["position"] for r in rows] == list(range(counted))
    assert counted == outcome.counts["passages"] != 5
    assert await MessagePassageRepository(db).unread(MessageTable.MESSAGES, 0, 10) == []
