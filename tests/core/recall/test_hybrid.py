from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from core.embedding.base import Vector
from core.embedding.local import LocalEmbedder
from core.models import NewFact, Platform, SharedChat
from core.recall.candidates import RecallCandidates
from core.recall.hybrid import HybridRecall, RecallWeights, fuse, text_confidence
from core.recall.keywords import TextHit, TextSearchRepository
from core.recall.statements import Source
from core.recall.vectors import RecallHit, RecallRepository
from core.recall.when import Period
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


async def test_a_period_named_in_the_question_lifts_what_was_said_then(
    db: Database, local_embedder: LocalEmbedder
) -> None:
    conv = await (Conversation(db, local_embedder, "a")).start()
    await conv.filler()
    january = await conv.say("Booked a scan for my knee, the doctor wants to check.", days_ago=140)
    march = await conv.say("My knee is acting up again after the run.", days_ago=80)
    may = await conv.say("Knee feels much better, did five km without pain!", days_ago=20)

    for question, wanted in [
        ("What did I say about my knee in January?", january),
        ("How was my knee in March?", march),
        ("How was my knee last month?", may),
    ]:
        found = await conv.ask(question, k=3)
        assert found[0] == (Source.MESSAGES, wanted), question
    # Without a period, the newest of the three.
    assert (await conv.ask("How is my knee?", k=3))[0] == (Source.MESSAGES, may)


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


def _vector_hit(
    i: int, similarity: float = 0.5, *, days_ago: float = 1, source: Source = Source.MESSAGES
) -> RecallHit:
    role = None if source is Source.FACTS else "assistant"
    return RecallHit(source, i, f"v{i}", similarity, NOW - timedelta(days=days_ago), None, role)


def _text_hit(
    i: int,
    rank: float = 1.0,
    *,
    days_ago: float = 1,
    source: Source = Source.MESSAGES,
    importance: int | None = None,
) -> TextHit:
    return TextHit(source, i, f"t{i}", NOW - timedelta(days=days_ago), "user", importance, rank)


#: No recency, no sessions, no protected slots: only the normalised scores.
PLAIN = RecallWeights(recency_floor=1.0, session_share=0.0, protected=0)


def test_text_confidence_is_how_far_the_best_keyword_hit_stands_out() -> None:
    weights = RecallWeights(confidence_floor=1.0, confidence_cap=2.0, few_hits_confidence=1.5)
    assert text_confidence([], weights) == 0.0
    assert text_confidence([3.0, 3.0, 3.0, 3.0], weights) == 0.0  # nothing stands out
    # z_top of [4, 1, 1, 1, 1] = (4 - 1.6) / 1.2 = 2: 2 - floor 1 = 1.
    assert abs(text_confidence([4.0, 1.0, 1.0, 1.0, 1.0], weights) - 1.0) < 1e-9
    assert text_confidence([40.0] + [1.0] * 30, weights) == 2.0  # capped
    assert text_confidence([5.0, 1.0], weights) == 0.5  # too few hits to measure


def test_fuse_follows_the_documented_formula() -> None:
    weights = replace(PLAIN, text=0.5, confidence_floor=1.0, confidence_cap=2.0)
    vector = [_vector_hit(1, 0.8, days_ago=10), _vector_hit(2, 0.6, days_ago=20),
              _vector_hit(3, 0.4, days_ago=30)]  # fmt: skip
    text = [_text_hit(4, 4.0, days_ago=40), _text_hit(2, 1.0, days_ago=20)]
    text += [_text_hit(10 + i, 1.0, days_ago=50 + i) for i in range(3)]
    c_text = text_confidence([h.rank for h in text], weights)
    assert abs(c_text - 1.0) < 1e-9

    by_id = {i.id: i for i in fuse(vector, text, now=NOW, weights=weights)}

    w = 0.5 * c_text
    assert abs(by_id[1].score - 1.0) < 1e-9  # (0.8 - 0.4) / (0.8 - 0.4)
    assert abs(by_id[2].score - (0.5 + w * 1.0 / 4.0)) < 1e-9
    assert abs(by_id[3].score - 0.0) < 1e-9
    assert abs(by_id[4].score - w * 1.0) < 1e-9
    assert by_id[2].role == "user" and by_id[1].role == "assistant"
    assert (by_id[2].vector_rank, by_id[2].text_rank) == (2, 2)


def test_a_keyword_list_that_does_not_stand_out_leaves_the_vector_order() -> None:
    vector = [_vector_hit(i, 0.9 - i / 100, days_ago=i) for i in range(1, 13)]
    # Common words only: no keyword hit stands out (z_top = 1, the confidence floor).
    text = [_text_hit(100 + i, 2.0 + i % 2 / 10, days_ago=200 + i) for i in range(30)]

    weights = replace(PLAIN, text=0.5, confidence_floor=1.0)
    items = fuse(vector, text, now=NOW, weights=weights, limit=10)

    assert [i.id for i in items] == list(range(1, 11))


def test_a_keyword_hit_that_stands_out_goes_first() -> None:
    vector = [_vector_hit(i, 0.5 - i / 100, days_ago=i) for i in range(1, 11)]
    # A rare name: one row scores far above the rest; the vector list has it 6th.
    text = [_text_hit(6, 12.0, days_ago=6)] + [
        _text_hit(200 + i, 1.0, days_ago=400 + i) for i in range(20)
    ]
    weights = replace(PLAIN, text=0.5, confidence_floor=1.0, confidence_cap=2.0)
    flat = [_text_hit(6, 1.0, days_ago=6), *text[1:]]

    items = fuse(vector, text, now=NOW, weights=weights, limit=5)
    unsure = fuse(vector, flat, now=NOW, weights=weights, limit=5)

    assert (items[0].id, items[0].text_rank, items[0].vector_rank) == (6, 1, 6)
    assert unsure[0].id == 1


def test_each_lists_best_are_kept_even_when_their_scores_are_low() -> None:
    vector = [_vector_hit(i, 0.9 - i / 100, days_ago=i) for i in range(1, 20)]
    # A sure keyword list (one hit stands out) that weighs almost nothing.
    sure = [_text_hit(100, 10.0, days_ago=200), _text_hit(101, 1.0, days_ago=201)]
    sure += [_text_hit(102 + i, 0.5, days_ago=202 + i) for i in range(20)]
    weights = replace(PLAIN, text=0.01, protected=2)

    kept = [i.id for i in fuse(vector, sure, now=NOW, weights=weights, limit=5)]
    unprotected = fuse(vector, sure, now=NOW, weights=replace(weights, protected=0), limit=5)

    assert kept == [1, 2, 3, 100, 101]  # the vector's best three by score, then the two
    assert [i.id for i in unprotected] == [1, 2, 3, 4, 5]
    assert len(fuse(vector, sure, now=NOW, weights=weights, limit=3)) == 3
    # A keyword list without confidence (nothing stands out) has no protected slots.
    flat = [_text_hit(100 + i, 2.0, days_ago=200 + i) for i in range(20)]
    unsure = fuse(vector, flat, now=NOW, weights=weights, limit=5)
    assert [i.id for i in unsure] == [1, 2, 3, 4, 5]


def test_turns_of_a_strong_hits_session_are_lifted() -> None:
    strong = _vector_hit(1, 0.9, days_ago=100)
    weak = [_vector_hit(i, 0.5, days_ago=d) for i, d in [(2, 100 + 1 / 24), (3, 50)]]
    floor = _vector_hit(4, 0.1, days_ago=10)
    weights = replace(PLAIN, session_share=1.0, session_gap_hours=3.0)

    by_id = {i.id: i for i in fuse([strong, *weak, floor], [], now=NOW, weights=weights)}

    v_weak = (0.5 - 0.1) / (0.9 - 0.1)
    # 2 is an hour after 1: its session's two best are 1.0 and v_weak; 3 is alone.
    assert abs(by_id[2].score - (v_weak + (1.0 + v_weak) / 2)) < 1e-9
    assert abs(by_id[3].score - (v_weak + v_weak / 2)) < 1e-9
    assert by_id[2].score > by_id[3].score


def test_fuse_boosts_important_facts_and_prefers_newer_ties() -> None:
    weights = replace(PLAIN, importance_boost=0.3)
    fact = _vector_hit(7, 0.5, source=Source.FACTS)
    fact = replace(fact, importance=10)
    items = fuse([_vector_hit(1, 0.5), fact, _vector_hit(2, 0.1)], [], now=NOW, weights=weights)
    assert [i.id for i in items][:2] == [7, 1]  # same similarity: importance 10 first
    assert abs(items[0].score - 1.3) < 1e-9
    newer_first = fuse([_vector_hit(1, 0.5, days_ago=100), _vector_hit(2, 0.5, days_ago=1)],
                       [], now=NOW, weights=replace(PLAIN, recency_floor=1.0))  # fmt: skip
    assert [i.id for i in newer_first] == [2, 1]
    recent = fuse([_vector_hit(1, 0.5, days_ago=100), _vector_hit(2, 0.5, days_ago=1)],
                  [], now=NOW, weights=replace(PLAIN, recency_floor=0.8))  # fmt: skip
    assert recent[0].id == 2 and recent[0].score > recent[1].score


def test_fuse_boosts_what_was_said_in_a_named_period() -> None:
    vector = [_vector_hit(1, 0.9, days_ago=5), _vector_hit(2, 0.7, days_ago=70)]
    vector.append(_vector_hit(3, 0.1, days_ago=200))
    april = Period(NOW - timedelta(days=75), NOW - timedelta(days=45))
    weights = replace(PLAIN, date_boost=1.0)

    by_id = {i.id: i for i in fuse(vector, [], now=NOW, weights=weights, periods=[april])}

    assert abs(by_id[2].score - 2 * 0.75) < 1e-9  # (0.7 - 0.1) / 0.8, doubled
    assert abs(by_id[1].score - 1.0) < 1e-9
    assert fuse(vector, [], now=NOW, weights=weights, periods=[april])[0].id == 2


def test_fuse_drops_excluded_messages_but_not_facts() -> None:
    items = fuse(
        [_vector_hit(1), _vector_hit(1, source=Source.FACTS)],
        [_text_hit(1, source=Source.ARCHIVE)],
        now=NOW,
        exclude=[1],
    )
    assert [(i.source, i.id) for i in items] == [(Source.FACTS, 1)]
