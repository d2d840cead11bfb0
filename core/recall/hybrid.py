"""Recall for the prompt: vector similarity fused with keyword rank.

Embeddings find paraphrases but can miss exact names and numbers ("Zorblax-7", "4471");
keyword search finds those but misses paraphrases. Both rankings are computed over one
user's facts and messages (archive included) and fused with weighted reciprocal rank
fusion (RRF), which needs no calibration between cosine similarities and BM25 scores:

    rrf(item) = w_vector / (K + rank_vector)
              + w_text * coverage ** p / (K + rank_text)
                (ranks start at 1; a list that did not return the item adds nothing)
    score     = rrf * importance_factor * recency_factor
    importance_factor = 1 + importance_boost * (importance - 5) / 5   (facts, 1..10)
                      = 1                                           (messages)
    recency_factor    = floor + (1 - floor) * 0.5 ** (age_days / half_life_days)

Higher is better. `rank_vector` orders by cosine similarity (`1 - cosine distance`),
`rank_text` by BM25 over ANY of the query's terms (core.recall.keywords), and
`coverage` is the share of the query's IDF the row matches. Plain RRF gives the first
keyword hit full credit even when it shares only a common word with the query ("how is
my new dog?" -> "tried a new recipe"); the coverage factor keeps that vote small and
leaves rare-name and number matches (coverage ~1) at full weight.

Defaults (`RecallWeights`): K=5, w_vector=1, w_text=0.5, p=1, floor=0.8, half-life 30
days, tuned on benchmark seeds 1-2 and reported on seeds 3-4 (docs/recall.md). On that
synthetic conversation the local embedder is the stronger list, so the keyword side
weighs less, unlike the public benchmark where keywords were stronger: re-tune with
benchmarks/recall_quality.py when the data or the embedder changes. Recency is mild:
it prefers the newer of two similar statements ("where do I live now") without burying
old evidence. Ties go to the newer item.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import numpy as np

from core.models import SharedChat
from core.recall.candidates import RecallCandidates
from core.recall.keywords import TextHit
from core.recall.vectors import RecallHit, Source
from core.storage.database import Connection

_Hit = TypeVar("_Hit", RecallHit, TextHit)


@dataclass(frozen=True, slots=True)
class RecallWeights:
    """The constants of the formula in the module docstring (tuned in docs/recall.md)."""

    k: float = 5.0
    text: float = 0.5
    vector: float = 1.0
    #: The keyword vote is scaled by coverage ** coverage_power (0: plain RRF).
    coverage_power: float = 1.0
    importance_boost: float = 0.3
    recency_floor: float = 0.8
    half_life_days: float = 30.0
    #: Each list contributes its best `max(candidate_factor * k, min_candidates)` rows.
    candidate_factor: int = 4
    min_candidates: int = 40

    def candidates(self, k: int) -> int:
        return max(self.candidate_factor * k, self.min_candidates)


DEFAULT_WEIGHTS = RecallWeights()


@dataclass(frozen=True, slots=True)
class RecalledItem:
    """One fact or earlier message for the prompt.

    `role` is "user" or "assistant" for messages (so the prompt can say who said it),
    None for facts. `similarity` is the cosine similarity when the vector side found the
    item; `text_rank` / `vector_rank` are its 1-based positions in each list.
    """

    source: Source
    id: int
    content: str
    created_at: datetime
    score: float
    similarity: float | None
    text_rank: int | None
    vector_rank: int | None
    importance: int | None = None
    role: str | None = None


class HybridRecall:
    def __init__(
        self, candidates: RecallCandidates, *, weights: RecallWeights = DEFAULT_WEIGHTS
    ) -> None:
        self._candidates = candidates
        self._weights = weights

    async def search(
        self,
        user_id: int,
        query: str,
        embedding: np.ndarray[Any, Any] | None,
        k: int,
        *,
        now: datetime,
        exclude_message_ids: Collection[int] = (),
        shared_chat: SharedChat | None = None,
        conn: Connection | None = None,
    ) -> list[RecalledItem]:
        """The `k` best items of this user for `query`, best first.

        Without an embedding (embedder down) recall is keyword-only. Messages in
        `exclude_message_ids` (the recent window, already in the prompt) are never
        returned; in a `shared_chat`, only that chat's messages and facts that are not
        private; never a message not `remembered`.
        """
        if k <= 0:
            return []
        vector_hits, text_hits = await self._candidates.fetch(
            user_id,
            query,
            embedding,
            self._weights.candidates(k),
            shared_chat=shared_chat,
            exclude_message_ids=exclude_message_ids,
            conn=conn,
        )
        return self.rank(
            vector_hits, text_hits, k, now=now, exclude_message_ids=exclude_message_ids
        )

    def rank(
        self,
        vector_hits: Sequence[RecallHit],
        text_hits: Sequence[TextHit],
        k: int,
        *,
        now: datetime,
        exclude_message_ids: Collection[int] = (),
    ) -> list[RecalledItem]:
        """The `k` best of both candidate lists, fused (`fuse`)."""
        return fuse(
            vector_hits,
            text_hits,
            now=now,
            weights=self._weights,
            exclude=frozenset(exclude_message_ids),
            limit=k,
        )


@dataclass(slots=True)
class _Entry:
    source: Source
    id: int
    content: str
    created_at: datetime
    importance: int | None
    role: str | None = None
    similarity: float | None = None
    text_rank: int | None = None
    vector_rank: int | None = None
    coverage: float = 1.0


def fuse(
    vector_hits: Sequence[RecallHit],
    text_hits: Sequence[TextHit],
    *,
    now: datetime,
    weights: RecallWeights = DEFAULT_WEIGHTS,
    exclude: Collection[int] = (),
    limit: int | None = None,
) -> list[RecalledItem]:
    """Both ranked lists (best first) fused by the module's formula, best first; the
    best `limit` of them if given (only those become items: a turn keeps 8 of up to 80).

    Pure, so that benchmarks can tune `weights` without querying again. Messages whose
    id is in `exclude` are dropped (facts have their own ids and are never excluded).
    """
    entries: dict[tuple[Source, int], _Entry] = {}
    for rank, hit in enumerate(_kept(vector_hits, exclude), 1):
        entry = entries.setdefault(
            (hit.source, hit.id),
            _Entry(hit.source, hit.id, hit.content, hit.created_at, hit.importance, hit.role),
        )
        entry.similarity = hit.similarity
        entry.vector_rank = rank
    for rank, text_hit in enumerate(_kept(text_hits, exclude), 1):
        entry = entries.setdefault(
            (text_hit.source, text_hit.id),
            _Entry(
                text_hit.source,
                text_hit.id,
                text_hit.content,
                text_hit.created_at,
                text_hit.importance,
            ),
        )
        entry.role = text_hit.role
        entry.text_rank = rank
        entry.coverage = text_hit.coverage
    scored = [(_score(entry, now, weights), entry) for entry in entries.values()]
    scored.sort(key=lambda pair: (-pair[0], -pair[1].created_at.timestamp(), pair[1].id))
    return [_item(entry, score) for score, entry in scored[:limit]]


def _kept(hits: Sequence[_Hit], exclude: Collection[int]) -> list[_Hit]:
    return [h for h in hits if h.source == Source.FACTS or h.id not in exclude]


def _score(entry: _Entry, now: datetime, weights: RecallWeights) -> float:
    score = 0.0
    if entry.text_rank is not None:
        vote = entry.coverage**weights.coverage_power if weights.coverage_power else 1.0
        score += weights.text * vote / (weights.k + entry.text_rank)
    if entry.vector_rank is not None:
        score += weights.vector / (weights.k + entry.vector_rank)
    if entry.importance is not None:
        score *= 1 + weights.importance_boost * (entry.importance - 5) / 5
    age_days = max((now - entry.created_at).total_seconds(), 0.0) / 86400
    decay = 0.5 ** (age_days / weights.half_life_days) if weights.half_life_days > 0 else 1.0
    return score * (weights.recency_floor + (1 - weights.recency_floor) * decay)


def _item(entry: _Entry, score: float) -> RecalledItem:
    return RecalledItem(
        source=entry.source,
        id=entry.id,
        content=entry.content,
        created_at=entry.created_at,
        score=score,
        similarity=entry.similarity,
        text_rank=entry.text_rank,
        vector_rank=entry.vector_rank,
        importance=entry.importance,
        role=entry.role,
    )
