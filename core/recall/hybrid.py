"""Recall for the prompt: vector similarity and keyword rank, fused by normalised score.

Embeddings find paraphrases but miss exact names and numbers ("Zorblax-7", "4471");
keyword search finds those and what is said in the question's own words, but misses
paraphrases. Which list is right changes from one question, and one conversation, to the
next: on our synthetic benchmark the vector list is far better, on the dialogue benchmark
the keyword list is (docs/recall.md). Rank fusion with fixed weights cannot follow that;
this fusion normalises each list's scores per query and weighs the keyword list by how
sure it is, measured on its own scores:

    v(item)   = (sim - sim_min) / (sim_max - sim_min)    over the vector candidates
    t(item)   = bm25 / bm25_max                          over the keyword candidates
                (an item a list did not return gets 0 from it)
    z_top     = (bm25_max - mean bm25) / std bm25        over the keyword candidates
                (how far its best hit stands out; `few_hits_confidence` below 3 hits)
    c_text    = clip(z_top - confidence_floor, 0, confidence_cap)
    base      = (v + w_text * c_text * t) * importance_factor * recency_factor * date_factor
    score     = base + session_share * (sum of the 2 best `base` of the item's session) / 2

    importance_factor = 1 + importance_boost * (importance - 5) / 5   (facts, 1..10)
                      = 1                                           (messages)
    recency_factor    = floor + (1 - floor) * 0.5 ** (age_days / half_life_days)
    date_factor       = 1 + date_boost   (said within a period the question names:
                                          "in May", "last spring", core.recall.when)
                      = 1                (otherwise, or the question names none)

A session is a chain of candidates (messages and facts) each within `session_gap_hours`
of the previous one: a question's answer is often told over a few turns, of which one
list finds the setup ("we adopted a dog!") and neither the answer ("Biscuit, a beagle
mix"); the session term lifts the whole exchange. The `k` kept are the best by score,
except that each list's first `protected` candidates are always among them (so the
fused top `k` never loses what either list is surest of; the keyword list's only when
c_text > 0), then sorted by score. Higher
is better; equal scores go to the newer item.

A keyword list whose best hit does not stand out (a question sharing only common words
with the history) gets no weight; one with a clear best hit (a rare name, the question's
own words) weighs up to `w_text * confidence_cap` against the vector list's 1. Scores
are relative to the query's candidates: the top item scores about 1 or more even when
nothing fits, so whether anything does is in `similarity` (cosine), not in `score`.

The weights of `RecallWeights` are tuned on the synthetic benchmark
(benchmarks/recall_dataset.py) and reported on the dialogue benchmark
(benchmarks/recall_dialogues.py), which their tuning never saw; docs/recall.md has the
numbers and how the form of the formula was chosen.
"""

from __future__ import annotations

import heapq
import statistics
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import numpy as np

from core.models import SharedChat
from core.recall import when
from core.recall.candidates import RecallCandidates
from core.recall.keywords import TextHit
from core.recall.statements import Source
from core.recall.vectors import RecallHit
from core.recall.when import Period
from core.storage.database import Connection

_Hit = TypeVar("_Hit", RecallHit, TextHit)


@dataclass(frozen=True, slots=True)
class RecallWeights:
    """The constants of the formula in the module docstring (tuned in docs/recall.md)."""

    #: w_text: the keyword list's weight per unit of confidence (the vector list's is 1).
    text: float = 0.5
    #: c_text = clip(z_top - confidence_floor, 0, confidence_cap).
    confidence_floor: float = 0.5
    confidence_cap: float = 1.0
    #: z_top of a keyword list with fewer than 3 hits (no spread to measure).
    few_hits_confidence: float = 1.5
    session_share: float = 1.0
    session_gap_hours: float = 3.0
    #: Each list's first `protected` candidates are always among the `k` returned.
    protected: int = 2
    importance_boost: float = 0.3
    date_boost: float = 1.0
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
        named = when.periods(query, now)
        vector_hits, text_hits = await self._candidates.fetch(
            user_id,
            when.with_days(query, named),
            embedding,
            self._weights.candidates(k),
            shared_chat=shared_chat,
            exclude_message_ids=exclude_message_ids,
            conn=conn,
        )
        return self.rank(
            vector_hits,
            text_hits,
            k,
            now=now,
            exclude_message_ids=exclude_message_ids,
            periods=named,
        )

    def rank(
        self,
        vector_hits: Sequence[RecallHit],
        text_hits: Sequence[TextHit],
        k: int,
        *,
        now: datetime,
        exclude_message_ids: Collection[int] = (),
        periods: Sequence[Period] = (),
    ) -> list[RecalledItem]:
        """The `k` best of both candidate lists, fused (`fuse`)."""
        return fuse(
            vector_hits,
            text_hits,
            now=now,
            weights=self._weights,
            exclude=frozenset(exclude_message_ids),
            limit=k,
            periods=periods,
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
    #: v(item) and t(item) of the formula: 0 when the list did not return the item.
    vector: float = 0.0
    text: float = 0.0
    base: float = 0.0
    score: float = 0.0


def fuse(
    vector_hits: Sequence[RecallHit],
    text_hits: Sequence[TextHit],
    *,
    now: datetime,
    weights: RecallWeights = DEFAULT_WEIGHTS,
    exclude: Collection[int] = (),
    limit: int | None = None,
    periods: Sequence[Period] = (),
) -> list[RecalledItem]:
    """Both ranked lists (best first) fused by the module's formula, best first; the
    best `limit` of them if given (only those become items: a turn keeps 8 of up to 80).
    `periods`: those the question names (`core.recall.when.periods`).

    Pure, so that benchmarks can tune `weights` without querying again. Messages whose
    id is in `exclude` are dropped (facts have their own ids and are never excluded).
    """
    vectors = _kept(vector_hits, exclude)
    texts = _kept(text_hits, exclude)
    entries: dict[tuple[Source, int], _Entry] = {}
    similarities = [h.similarity for h in vectors]
    for rank, hit in enumerate(vectors, 1):
        entry = entries.setdefault(
            (hit.source, hit.id),
            _Entry(hit.source, hit.id, hit.content, hit.created_at, hit.importance, hit.role),
        )
        entry.similarity = hit.similarity
        entry.vector_rank = rank
        entry.vector = _min_max(hit.similarity, similarities)
    best_text = max((h.rank for h in texts), default=0.0)
    for rank, text_hit in enumerate(texts, 1):
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
        entry.text = text_hit.rank / best_text if best_text > 0 else 0.0
    text_weight = weights.text * text_confidence([h.rank for h in texts], weights)
    for entry in entries.values():
        entry.base = (entry.vector + text_weight * entry.text) * _prior(entry, now, weights)
        if any(entry.created_at in period for period in periods):
            entry.base *= 1 + weights.date_boost
    _add_sessions(list(entries.values()), weights)
    ranked = sorted(entries.values(), key=lambda e: (-e.score, -e.created_at.timestamp(), e.id))
    if limit is not None:
        ranked = _top(ranked, limit, weights.protected, text_counts=text_weight > 0)
    return [_item(entry, entry.score) for entry in ranked]


def text_confidence(ranks: Sequence[float], weights: RecallWeights = DEFAULT_WEIGHTS) -> float:
    """c_text of the formula for a keyword list's BM25 scores (any order)."""
    if not ranks:
        return 0.0
    if len(ranks) < 3:
        z_top = weights.few_hits_confidence
    else:
        spread = statistics.pstdev(ranks)
        z_top = (max(ranks) - statistics.fmean(ranks)) / spread if spread > 0 else 0.0
    return min(max(z_top - weights.confidence_floor, 0.0), weights.confidence_cap)


def _min_max(value: float, values: Sequence[float]) -> float:
    low, high = min(values), max(values)
    return (value - low) / (high - low) if high > low else 1.0


def _kept(hits: Sequence[_Hit], exclude: Collection[int]) -> list[_Hit]:
    return [h for h in hits if h.source == Source.FACTS or h.id not in exclude]


def _prior(entry: _Entry, now: datetime, weights: RecallWeights) -> float:
    """importance_factor * recency_factor."""
    factor = 1.0
    if entry.importance is not None:
        factor = 1 + weights.importance_boost * (entry.importance - 5) / 5
    age_days = max((now - entry.created_at).total_seconds(), 0.0) / 86400
    decay = 0.5 ** (age_days / weights.half_life_days) if weights.half_life_days > 0 else 1.0
    return factor * (weights.recency_floor + (1 - weights.recency_floor) * decay)


def _add_sessions(entries: list[_Entry], weights: RecallWeights) -> None:
    """score = base + session_share * (the 2 best `base` of the item's session) / 2."""
    entries.sort(key=lambda e: e.created_at)
    gap = weights.session_gap_hours * 3600
    start = 0
    for end in range(1, len(entries) + 1):
        if end < len(entries):
            step = (entries[end].created_at - entries[end - 1].created_at).total_seconds()
            if step <= gap:
                continue
        session = entries[start:end]
        best = heapq.nlargest(2, (e.base for e in session))
        bonus = weights.session_share * sum(best) / 2
        for e in session:
            e.score = e.base + bonus
        start = end


def _top(ranked: list[_Entry], limit: int, protected: int, *, text_counts: bool) -> list[_Entry]:
    """The best `limit` of `ranked` (best first) that hold each list's first `protected`
    (the keyword list's only if it `text_counts`: has some confidence)."""
    if limit <= 0:
        return []
    must = {
        id(e)
        for e in ranked
        if (e.vector_rank is not None and e.vector_rank <= protected)
        or (text_counts and e.text_rank is not None and e.text_rank <= protected)
    }
    free = max(limit - len(must), 0)
    kept: list[_Entry] = []
    for entry in ranked:
        if id(entry) in must:
            kept.append(entry)
        elif free > 0:
            kept.append(entry)
            free -= 1
    return kept[:limit]


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
