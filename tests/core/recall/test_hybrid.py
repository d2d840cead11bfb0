from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime, timedelta

from core.embedding.base import Vector
from core.embedding.local import LocalEmbedder
from core.models import NewFact, Platform, SharedChat
from core.recall.candidates import RecallCandidates
from core.recall.hybrid import HybridRecall, RecallWeights, fuse
from core.recall.keywords import TextHit, TextSearchRepository
from core.recall.vectors import RecallHit, RecallRepository, Source
from core.storage.database import Database
from core.storage.facts import FactRepository
from core.storage.messages import MessageRepository
from core.storage.users import UserRepository

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)

FILLER = [
    "Rainy again today, I didn't even bother going for a walk.",
    "Work was long, three meetings back to back.",
    "Made lasagne for dinner, turned out better than last time.",
    "Watched a documentary about octopuses last night.",
    "The train was late this morning, classic.",
    "Went to a live gig on Saturday, my ears are still ringing.",
    "Cleaned the whole flat today, feels good.",
    "My phone screen cracked right after the warranty ran out.",
    "Got stuck in traffic for an hour and listened to a podcast.",
    "I keep forgetting to water the plants.",
    "Tried a new recipe with lentils, honestly not bad.",
    "Saw a fox in the garden this morning.",
]


class Conversation:
    """One user's history with real embeddings and chosen dates."""

    def __init__(self, db: Database, embedder: LocalEmbedder, name: str) -> None:
        self.db = db
        self.embedder = embedder
        self.name = name
        self.user_id = 0
        self._n = 0

    async def start(self) -> Conversation:
        user, _ = await UserRepository(self.db).get_or_create(Platform.TELEGRAM, self.name)
        self.user_id = user.id
        return self

    async def say(self, text: str, *, days_ago: float = 1.0, assistant: bool = False) -> int:
        messages = MessageRepository(self.db)
        [vector] = await self.embedder.embed([text])
        self._n += 1
        stored = await messages.add_user_message(
            self.user_id,
            text if not assistant else "(question)",
            platform=Platform.TELEGRAM,
            chat_id=self.name,
            platform_message_id=str(self._n),
            embedding=None if assistant else vector,
        )
        message_id = stored.message.id
        if assistant:
            reply = await messages.add_assistant_message(
                self.user_id,
                text,
                reply_to_id=message_id,
                platform=Platform.TELEGRAM,
                chat_id=self.name,
                context_snapshot={},
                tokens_in=1,
                tokens_out=1,
                model="m",
                response_ms=1,
                embedding=vector,
            )
            message_id = reply.id
        async with self.db.connection() as conn:
            await conn.execute(
                "UPDATE messages SET created_at = $2 WHERE id = $1",
                message_id,
                NOW - timedelta(days=days_ago),
            )
        return message_id

    async def fact(self, text: str, *, is_private: bool = False, importance: int = 5) -> int:
        [vector] = await self.embedder.embed([text])
        fact = await FactRepository(self.db).add(
            self.user_id,
            NewFact(text, is_private=is_private, importance=importance),
            embedding=vector,
        )
        return fact.id

    async def filler(self) -> None:
        for i, text in enumerate(FILLER):
            await self.say(text, days_ago=30 + i)

    async def ask(
        self,
        query: str,
        k: int = 5,
        *,
        exclude_message_ids: Collection[int] = (),
        shared_chat: SharedChat | None = None,
    ) -> list[tuple[Source, int]]:
        items = await self.recall().search(
            self.user_id,
            query,
            await self.vector(query),
            k,
            now=NOW,
            exclude_message_ids=exclude_message_ids,
            shared_chat=shared_chat,
        )
        return [(i.source, i.id) for i in items]

    async def vector(self, query: str) -> Vector:
        [vector] = await self.embedder.embed([query])
        return vector

    def recall(self) -> HybridRecall:
        return HybridRecall(
            RecallCandidates(
                self.db, RecallRepository(self.db, dimensions=384), TextSearchRepository(self.db)
            )
        )


async def test_an_old_message_is_found_by_meaning(
    db: Database, local_embedder: LocalEmbedder
) -> None:
    conv = await (Conversation(db, local_embedder, "a")).start()
    await conv.filler()
    puppy = await conv.say(
        "We picked up the beagle puppy from the breeder, he chewed a slipper already.",
        days_ago=200,
    )
    query = "How is my new dog doing?"

    items = await conv.recall().search(conv.user_id, query, await conv.vector(query), 3, now=NOW)

    assert items[0].source is Source.MESSAGES and items[0].id == puppy
    assert items[0].vector_rank == 1 and items[0].text_rank is None
    assert items[0].role == "user"
    assert items[0].similarity is not None and items[0].similarity > 0.3


async def test_exact_rare_names_and_numbers_are_found_by_keyword(
    db: Database, local_embedder: LocalEmbedder
) -> None:
    conv = await (Conversation(db, local_embedder, "a")).start()
    await conv.filler()
    zorblax = await conv.say("Zorblax-7 finally shipped, the team is exhausted.", days_ago=300)
    parcel = await conv.say("My parcel reference is 4471, stuck for days.", days_ago=250)
    await conv.say("My parcel reference is 9020 for the other one.", days_ago=240)

    for query, wanted in [("What was Zorblax-7 about?", zorblax), ("what was 4471?", parcel)]:
        items = await conv.recall().search(
            conv.user_id, query, await conv.vector(query), 3, now=NOW
        )
        assert items[0].id == wanted, query
        assert items[0].text_rank == 1
        # Without an embedding (embedder down) keyword recall still finds it.
        keyword_only = await conv.recall().search(conv.user_id, query, None, 3, now=NOW)
        assert keyword_only[0].id == wanted and keyword_only[0].vector_rank is None


async def test_assistant_messages_keep_their_role(
    db: Database, local_embedder: LocalEmbedder
) -> None:
    conv = await (Conversation(db, local_embedder, "a")).start()
    await conv.filler()
    reply = await conv.say("Your sister Ingrid's wedding is in Porto.", assistant=True)

    for embedding in (await conv.vector("sister wedding Porto"), None):
        items = await conv.recall().search(
            conv.user_id,
            "sister wedding Porto",
            embedding,
            2,
            now=NOW,
        )
        assert (items[0].id, items[0].role) == (reply, "assistant")


async def test_private_facts_only_when_allowed(db: Database, local_embedder: LocalEmbedder) -> None:
    conv = await (Conversation(db, local_embedder, "a")).start()
    await conv.filler()
    private = await conv.fact("The bank PIN is 4471.", is_private=True, importance=9)
    public = await conv.fact("The gym locker is 4471.", importance=3)

    shared = await conv.ask("What is 4471?", shared_chat=SharedChat(Platform.TELEGRAM, "-100"))
    alone = await conv.ask("What is 4471?")

    assert (Source.FACTS, private) not in shared
    assert (Source.FACTS, public) in shared
    assert alone[0] == (Source.FACTS, private)  # more important, same match


async def test_excluded_messages_are_never_returned(
    db: Database, local_embedder: LocalEmbedder
) -> None:
    conv = await (Conversation(db, local_embedder, "a")).start()
    await conv.filler()
    recent = [await conv.say(f"Zorblax number {i} talk", days_ago=0.01) for i in range(3)]
    async with db.connection() as conn:  # a fact whose id is also an excluded message id
        await conn.execute(
            "INSERT INTO facts (id, user_id, content) OVERRIDING SYSTEM VALUE"
            " VALUES ($1, $2, 'Zorblax is the codename of the warehouse system.')",
            recent[0],
            conv.user_id,
        )

    found = await conv.ask("Zorblax", k=20, exclude_message_ids=recent)

    assert not {(Source.MESSAGES, i) for i in recent} & set(found)
    assert (Source.FACTS, recent[0]) in found


async def test_another_users_rows_are_never_returned(
    db: Database, local_embedder: LocalEmbedder
) -> None:
    alice = await (Conversation(db, local_embedder, "alice")).start()
    bob = await (Conversation(db, local_embedder, "bob")).start()
    await alice.say("Zorblax-7 secret plans of alice with the beagle puppy", days_ago=3)
    await alice.fact("Alice's Zorblax-7 PIN is 4471", is_private=True)
    mine = await bob.say("I like trains.", days_ago=3)

    found = await bob.ask("Zorblax-7 beagle puppy 4471 PIN", k=20)

    assert found == [(Source.MESSAGES, mine)]


def _vector_hit(i: int, days_ago: float = 1, source: Source = Source.MESSAGES) -> RecallHit:
    role = None if source is Source.FACTS else "assistant"
    return RecallHit(source, i, f"v{i}", 0.5, NOW - timedelta(days=days_ago), None, role)


def _text_hit(
    i: int, days_ago: float = 1, source: Source = Source.MESSAGES, importance: int | None = None
) -> TextHit:
    return TextHit(source, i, f"t{i}", NOW - timedelta(days=days_ago), "user", importance, 1.0)


def test_fuse_follows_the_documented_formula() -> None:
    weights = RecallWeights(k=10, text=2, vector=1, recency_floor=0.5, half_life_days=10)
    weak = TextHit(Source.MESSAGES, 3, "t3", NOW - timedelta(days=10), "user", None, 1.0, 0.25)
    items = fuse([_vector_hit(1), _vector_hit(2)], [_text_hit(2), weak], now=NOW,
                 weights=weights)  # fmt: skip
    by_id = {i.id: i for i in items}
    recency_1 = 0.5 + 0.5 * 0.5 ** (1 / 10)
    recency_10 = 0.5 + 0.5 * 0.5
    assert abs(by_id[1].score - recency_1 / 11) < 1e-12
    assert abs(by_id[2].score - (2 / 11 + 1 / 12) * recency_1) < 1e-12
    assert abs(by_id[3].score - 2 * 0.25 / 12 * recency_10) < 1e-12
    assert [i.id for i in items] == [2, 1, 3]
    assert by_id[2].role == "user" and by_id[1].role == "assistant"
    best_two = fuse([_vector_hit(1), _vector_hit(2)], [_text_hit(2), weak], now=NOW,
                    weights=weights, limit=2)  # fmt: skip
    assert best_two == items[:2]


def test_fuse_boosts_important_facts_and_prefers_newer_ties() -> None:
    weights = RecallWeights(k=10, text=1, vector=1, importance_boost=0.3)
    important = _text_hit(7, source=Source.FACTS, importance=10)
    items = fuse([], [_text_hit(1), important], now=NOW, weights=weights)
    assert items[0].id == 7  # rank 2, but importance 10 beats rank 1 at this k
    newer_first = fuse([], [_text_hit(1, days_ago=100), _text_hit(2, days_ago=1)], now=NOW)
    assert [i.id for i in newer_first] == [2, 1]
    # Same score (no recency): the newer one first.
    flat = RecallWeights(text=1, vector=1, recency_floor=1.0)
    same = fuse([_vector_hit(1, days_ago=5)], [_text_hit(2, days_ago=1)], now=NOW, weights=flat)
    assert [i.id for i in same] == [2, 1]


def test_fuse_drops_excluded_messages_but_not_facts() -> None:
    items = fuse(
        [_vector_hit(1), _vector_hit(1, source=Source.FACTS)],
        [_text_hit(1, source=Source.ARCHIVE)],
        now=NOW,
        exclude=[1],
    )
    assert [(i.source, i.id) for i in items] == [(Source.FACTS, 1)]
