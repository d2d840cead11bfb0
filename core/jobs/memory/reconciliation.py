"""Deciding what each candidate fact does to the user's stored facts.

For every candidate, the user's most similar valid facts are found by vector recall
(`RecallRepository.nearest(..., sources={Source.FACTS})`, similarity = 1 - cosine
distance, higher is more similar). Then:

- similarity >= `duplicate_similarity` to a stored fact: the same fact said again. It
  stays one fact; its sources grow (`Restated`). No LLM call.
- no stored fact >= `related_similarity`: a new fact (`Add`). No LLM call.
- otherwise the LLM decides, for all such candidates in one structured call
  (`fact_reconciliation`): add, update (rewrite the stored fact), invalidate (the stored
  fact stopped being true: it gets `invalid_at`, never deleted, and the candidate is
  added as the new truth) or ignore (nothing new).

A stored fact that is restated or updated stays private when it was, and becomes
private when the candidate is (`Candidate.is_private`: sensitive, or said in a private
chat).

Candidates that repeat each other within one batch are merged first, so a fact said
ten times in one batch is also stored once. The thresholds were read off the local
MiniLM model: a fact restated in the same words scores 1.0 (the extraction prompt asks
for a fixed third-person form, so repeats mostly are word for word), facts on one
subject 0.35-0.9 ("Lives in Berlin" / "Moved to Paris on 2025-03-01": 0.36, "Lives in
Berlin" / "Lives in Paris": 0.51), unrelated facts below 0.3. All questions of a batch
go into one call, so a low `related_similarity` costs at most one call per user and run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import numpy as np

from core.embedding.base import Vector
from core.jobs.memory.extraction import Candidate
from core.llm.client import ChatClient
from core.models import NewFact
from core.recall.statements import Source
from core.recall.vectors import RecallHit, RecallRepository
from core.storage.database import Connection

logger = logging.getLogger(__name__)

SCHEMA_NAME = "fact_reconciliation"
ACTIONS = ("add", "update", "invalidate", "ignore")
SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["decisions"],
    "properties": {
        "decisions": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["candidate", "action", "fact_id"],
                "properties": {
                    "candidate": {"type": "integer"},
                    "action": {"type": "string", "enum": list(ACTIONS)},
                    "fact_id": {"type": ["integer", "null"]},
                },
            },
        }
    },
}

SYSTEM = """You keep the stored facts about one user free of duplicates and contradictions.
For each candidate fact you get the stored facts most similar to it. Decide one action:
- "ignore": a stored fact already says it (fact_id: that fact).
- "update": it refines or corrects a stored fact that is still essentially true; the
  stored fact is rewritten with the candidate's wording (fact_id: that fact).
- "invalidate": it shows that a stored fact is no longer true (moved, changed jobs,
  ended a relationship); the stored fact is retired and the candidate stored as the
  new truth (fact_id: the retired fact).
- "add": it is new information (fact_id: null).
Answer with one decision per candidate."""


@dataclass(frozen=True, slots=True)
class Add:
    fact: NewFact
    embedding: Vector


@dataclass(frozen=True, slots=True)
class Update:
    fact_id: int
    fact: NewFact
    embedding: Vector


@dataclass(frozen=True, slots=True)
class Invalidate:
    fact_id: int
    at: datetime


@dataclass(frozen=True, slots=True)
class Restated:
    fact_id: int
    source_message_ids: tuple[int, ...]
    is_private: bool
    """Said this time in a way that makes the stored fact private (it never becomes
    less private by being said again)."""


FactChange = Add | Update | Invalidate | Restated


def new_fact(candidate: Candidate) -> NewFact:
    return NewFact(
        content=candidate.content,
        category=candidate.category,
        importance=candidate.importance,
        confidence=candidate.confidence,
        is_private=candidate.is_private,
        source_message_ids=candidate.source_message_ids,
        valid_from=candidate.said_at,
    )


def merge_repeats(
    candidates: Sequence[Candidate], embeddings: Sequence[Vector], threshold: float
) -> list[tuple[Candidate, Vector]]:
    """Candidates of one batch with repeats merged into their first occurrence."""
    kept: list[tuple[Candidate, Vector]] = []
    for candidate, embedding in zip(candidates, embeddings, strict=True):
        for index, (other, other_embedding) in enumerate(kept):
            if float(np.dot(embedding, other_embedding)) >= threshold:
                kept[index] = (_merged(other, candidate), other_embedding)
                break
        else:
            kept.append((candidate, embedding))
    return kept


def _merged(first: Candidate, again: Candidate) -> Candidate:
    return replace(
        first,
        importance=max(first.importance, again.importance),
        confidence=max(first.confidence, again.confidence),
        is_private=first.is_private or again.is_private,
        source_message_ids=tuple(sorted({*first.source_message_ids, *again.source_message_ids})),
        said_at=max(first.said_at, again.said_at),
    )


@dataclass(frozen=True, slots=True)
class _Question:
    candidate: Candidate
    embedding: Vector
    neighbours: list[RecallHit]


class Reconciler:
    """Plans the fact changes of one batch; see the module docstring."""

    def __init__(
        self,
        llm: ChatClient,
        recall: RecallRepository,
        *,
        neighbours: int = 5,
        duplicate_similarity: float = 0.92,
        related_similarity: float = 0.3,
    ) -> None:
        self._llm = llm
        self._recall = recall
        self._k = neighbours
        self._duplicate = duplicate_similarity
        self._related = related_similarity

    async def plan(
        self,
        user_id: int,
        candidates: Sequence[Candidate],
        embeddings: Sequence[Vector],
        *,
        conn: Connection | None = None,
    ) -> list[FactChange]:
        """The changes, in the order they must be applied. Reads only; raises `LLMError`
        when a needed decision cannot be had."""
        changes: list[FactChange] = []
        questions: list[_Question] = []
        for candidate, embedding in merge_repeats(candidates, embeddings, self._duplicate):
            hits = await self._recall.nearest(
                user_id, embedding, self._k, sources={Source.FACTS}, conn=conn
            )
            if hits and hits[0].similarity >= self._duplicate:
                changes.append(
                    Restated(hits[0].id, candidate.source_message_ids, candidate.is_private)
                )
                continue
            related = [h for h in hits if h.similarity >= self._related]
            if related:
                questions.append(_Question(candidate, embedding, related))
            else:
                changes.append(Add(new_fact(candidate), embedding))
        if questions:
            changes.extend(await self._decide(questions))
        return changes

    async def _decide(self, questions: list[_Question]) -> list[FactChange]:
        items = [
            {
                "candidate": index,
                "content": q.candidate.content,
                "stated_at": q.candidate.said_at.date().isoformat(),
                "stored_facts": [
                    {"fact_id": h.id, "content": h.content, "similarity": round(h.similarity, 2)}
                    for h in q.neighbours
                ],
            }
            for index, q in enumerate(questions)
        ]
        answer = await self._llm.complete_json(
            [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": json.dumps(items, ensure_ascii=False, indent=1)},
            ],
            schema=SCHEMA,
            schema_name=SCHEMA_NAME,
            temperature=0.0,
        )
        decisions: dict[int, tuple[str, int | None]] = {}
        raw = answer.get("decisions")
        for item in raw if isinstance(raw, list) else []:
            if not isinstance(item, dict):
                continue
            index, action, fact_id = item.get("candidate"), item.get("action"), item.get("fact_id")
            if isinstance(index, int) and action in ACTIONS and index not in decisions:
                decisions[index] = (str(action), fact_id if isinstance(fact_id, int) else None)
        changes: list[FactChange] = []
        for index, q in enumerate(questions):
            # No (usable) decision: keep the information rather than lose it.
            action, fact_id = decisions.get(index, ("add", None))
            if fact_id not in {h.id for h in q.neighbours}:
                fact_id = None
            changes.extend(self._change(q, action, fact_id))
        return changes

    def _change(self, q: _Question, action: str, fact_id: int | None) -> list[FactChange]:
        fact = new_fact(q.candidate)
        if action == "ignore":
            if fact_id is None:
                return []
            return [Restated(fact_id, fact.source_message_ids, fact.is_private)]
        if action == "update" and fact_id is not None:
            return [Update(fact_id, fact, q.embedding)]
        if action == "invalidate" and fact_id is not None:
            return [Invalidate(fact_id, q.candidate.said_at), Add(fact, q.embedding)]
        if action != "add":
            logger.info("reconciliation: %s without a valid fact id, adding instead", action)
        return [Add(fact, q.embedding)]
