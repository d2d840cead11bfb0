"""Both recall data sets, stored as the engine stores them, and the metrics over them.

- `synthetic` (benchmarks/recall_dataset.py): one-line statements among one-line filler,
  questions in the second person, one speaker ("User" / "Assistant").
- `dialogues` (benchmarks/recall_dialogues.py): exchanges between a named person and a
  named assistant over months, third-person, temporal, multi-hop and unanswerable
  questions, with facts as the memory job writes them.

Each conversation is one user: messages (older half moved to `messages_archive`, the
newest `RECENT_WINDOW` excluded as the prompt's recent window) and facts, embedded with
a real local embedder (`LocalEmbedder` unless told). `fmt` decides what is stored for a
message, to measure what should be (docs/recall.md): `speaker` (what the engine stores)
embeds the text and stores the speaker's name as the message's `speaker`, so the
keyword side (the `search` column, generated from `speaker`, `content` and the day,
migration 0016) holds it; `plain` leaves `speaker` empty; `named` embeds
`[YYYY-MM-DD] Name: text` and leaves `speaker` empty.

An item is a key `("m", id)` for a message (live or archived: same ids) or `("f", id)`
for a fact. A question's evidence is a tuple of message keys; its `facts` answer it too:
an evidence message counts as found when it or one of the question's facts is.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import asyncpg
import numpy as np

from benchmarks.recall_dataset import Dataset
from benchmarks.recall_dialogues import Dialogues
from core.embedding.base import Embedder
from core.recall.statements import Source
from core.storage.database import Connection, Database
from fakes.archiving import move_to_archive

RECENT_WINDOW = 20
FORMATS = ("plain", "named", "speaker")
Key = tuple[str, int]


@dataclass(frozen=True, slots=True)
class EvalQuestion:
    text: str
    kind: str
    evidence: tuple[Key, ...]
    facts: tuple[Key, ...] = ()


@dataclass
class Conversation:
    """One data set (`name`, `seed`) loaded for one user in one format."""

    name: str
    seed: int
    fmt: str
    user_id: int
    now: datetime
    excluded: list[int]
    questions: list[EvalQuestion]
    query_vectors: list[np.ndarray[Any, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class StoredRow:
    role: str
    text: str
    at: datetime
    speaker: str


def embedded_text(fmt: str, row: StoredRow) -> str:
    """What gets embedded for a stored message: the text, or `[date] Name: text`."""
    if fmt == "named":
        return f"[{row.at:%Y-%m-%d}] {row.speaker}: {row.text}"
    return row.text


def stored_speaker(fmt: str, row: StoredRow) -> str | None:
    """The `speaker` stored with a message (searched by keyword with its text)."""
    return row.speaker if fmt == "speaker" else None


async def store(
    pool: asyncpg.Pool[asyncpg.Record],
    embedder: Embedder,
    chat: str,
    fmt: str,
    rows: Sequence[StoredRow],
    facts: Sequence[tuple[str, datetime, int]],
) -> tuple[int, list[int], list[int]]:
    """The user id, the message id of each row, the fact id of each fact."""
    texts = [embedded_text(fmt, r) for r in rows] + [f[0] for f in facts]
    unique = list(dict.fromkeys(texts))  # filler repeats: embed each text once
    by_text = dict(zip(unique, await embedder.embed(unique), strict=True))
    async with pool.acquire() as c, c.transaction():
        user_id = await c.fetchval(
            "INSERT INTO users (display_name) VALUES ($1) RETURNING id", chat
        )
        await c.execute("INSERT INTO conversations (user_id) VALUES ($1)", user_id)
        await c.executemany(
            "INSERT INTO messages (user_id, role, content, platform, chat_id,"
            " platform_message_id, status, embedding, created_at, speaker)"
            " VALUES ($1, $2, $3, 'console', $4, $5, $6, $7, $8, $9)",
            [
                (
                    user_id,
                    r.role,
                    r.text,
                    chat,
                    str(i),
                    "answered" if r.role == "user" else None,
                    by_text[embedded_text(fmt, r)],
                    r.at,
                    stored_speaker(fmt, r),
                )
                for i, r in enumerate(rows)
            ],
        )
        found = await c.fetch(
            "SELECT id, platform_message_id FROM messages WHERE user_id = $1", user_id
        )
        by_index = {int(r["platform_message_id"]): r["id"] for r in found}
        ids = [by_index[i] for i in range(len(rows))]
        middle = ids[len(ids) // 2]
        await move_to_archive(Database(cast(Connection, c)), [i for i in ids if i < middle])
        await c.execute(
            "UPDATE conversations SET message_count = $2 WHERE user_id = $1", user_id, len(ids)
        )
        fact_ids = [
            await c.fetchval(
                "INSERT INTO facts (user_id, content, importance, embedding, created_at,"
                " valid_from) VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
                user_id,
                text,
                importance,
                by_text[text],
                at,
            )
            for text, at, importance in facts
        ]
    return user_id, ids, fact_ids


async def load_synthetic(
    pool: asyncpg.Pool[asyncpg.Record],
    data: Dataset,
    fmt: str,
    embedder: Embedder,
    *,
    stored_by: Embedder | None = None,
) -> Conversation:
    """The synthetic set stored as the engine stores it; questions embedded by `embedder`,
    stored texts by `stored_by` (default: the same)."""
    rows = [
        StoredRow(m.role, m.text, m.at, "User" if m.role == "user" else "Assistant")
        for m in data.messages
    ]
    chat = f"synthetic-{data.seed}-{fmt}"
    user_id, ids, _ = await store(pool, stored_by or embedder, chat, fmt, rows, [])
    questions = [
        EvalQuestion(q.text, q.kind, tuple(("m", ids[i]) for i in q.evidence))
        for q in data.questions
    ]
    return await _finish(
        Conversation("synthetic", data.seed, fmt, user_id, data.now, ids[-RECENT_WINDOW:],
                     questions), embedder)  # fmt: skip


async def load_dialogues(
    pool: asyncpg.Pool[asyncpg.Record],
    data: Dialogues,
    fmt: str,
    embedder: Embedder,
    *,
    with_facts: bool = True,
    stored_by: Embedder | None = None,
) -> Conversation:
    """The dialogues set stored as the engine stores it; questions embedded by
    `embedder`, stored texts and facts by `stored_by` (default: the same)."""
    rows = [
        StoredRow(t.role, t.text, t.at, data.person if t.role == "user" else data.assistant)
        for t in data.turns
    ]
    facts = [(f.text, f.at, f.importance) for f in data.facts] if with_facts else []
    chat = f"dialogues-{data.seed}-{fmt}-{'facts' if with_facts else 'nofacts'}"
    user_id, ids, fact_ids = await store(pool, stored_by or embedder, chat, fmt, rows, facts)
    questions = [
        EvalQuestion(
            q.text,
            q.kind,
            tuple(("m", ids[i]) for i in q.evidence),
            tuple(("f", fact_ids[i]) for i in q.facts) if with_facts else (),
        )
        for q in data.questions
    ]
    return await _finish(
        Conversation("dialogues", data.seed, fmt, user_id, data.now, ids[-RECENT_WINDOW:],
                     questions), embedder)  # fmt: skip


async def _finish(conv: Conversation, embedder: Embedder) -> Conversation:
    conv.query_vectors = list(await embedder.embed([q.text for q in conv.questions]))
    return conv


def key(source: Source, item_id: int) -> Key:
    return ("f" if source is Source.FACTS else "m", item_id)


# --------------------------------------------------------------------------- metrics


@dataclass(frozen=True, slots=True)
class Scores:
    n: int
    recall5: float
    recall10: float
    mrr: float
    #: Share of questions whose every piece of evidence is in the top 10.
    all10: float

    @property
    def objective(self) -> float:
        return (self.recall5 + self.recall10 + self.mrr) / 3


def _found(ranked: Sequence[Key], q: EvalQuestion, k: int) -> list[bool]:
    top = set(ranked[:k])
    by_fact = any(f in top for f in q.facts)
    return [by_fact or e in top for e in q.evidence]


def score(rankings: Sequence[Sequence[Key]], questions: Sequence[EvalQuestion]) -> Scores:
    """Over the questions that have evidence (unanswerable ones are left out)."""
    r5, r10, rr, all10 = [], [], [], []
    for ranked, q in zip(rankings, questions, strict=True):
        if not q.evidence:
            continue
        at5, at10 = _found(ranked, q, 5), _found(ranked, q, 10)
        r5.append(sum(at5) / len(at5))
        r10.append(sum(at10) / len(at10))
        all10.append(float(all(at10)))
        wanted = set(q.evidence) | set(q.facts)
        first = next((i for i, item in enumerate(ranked[:10], 1) if item in wanted), None)
        rr.append(0.0 if first is None else 1.0 / first)
    if not r10:
        return Scores(0, 0.0, 0.0, 0.0, 0.0)
    return Scores(
        len(r10),
        statistics.fmean(r5),
        statistics.fmean(r10),
        statistics.fmean(rr),
        statistics.fmean(all10),
    )
