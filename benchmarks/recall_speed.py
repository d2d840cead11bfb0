"""Recall for heavy users: `HybridRecall.search` at 50k rows per user.

    .venv/bin/python -m benchmarks.recall_speed [--samples N --common-share X --dsn DSN
        --json PATH]

Next to the foundation benchmark (benchmarks/foundation.py, which times the vector list
alone over a million generated rows), this one times what a turn runs: both candidate
lists and their fusion, for the users the `user_indexes` job gives indexes of their own:

- `messages`: 50k messages (the older half archived) and the planted facts, the turns of
  25 generated dialogue conversations (benchmarks/recall_dialogues.py) told by one
  person whose display name is in every message of theirs (the worst case for keyword
  search: a question naming them matches half of their rows); a fifth of them long
  (`--long-share`), with 3 passages each in `message_passages`;
- `facts`: 50k facts (the same texts) and 2k messages;
- 40 other users with 1k messages each, so that no index or table holds one user only.

Texts are embedded with the real `LocalEmbedder`; the questions are the dialogue sets'
own (asked of a user's whole history). Reported per user: latency of `search` (k = 10)
and of each list alone, the plans (EXPLAIN ANALYZE with buffers) of the keyword query,
and the overlap of its top 40 with the exact plan's (the one every smaller user gets);
for the `messages` user, fused recall@10 of the questions with either keyword plan.
`--common-share` sets `user_indexes.COMMON_TERM_SHARE` for the run (to choose it). The
load average is recorded with every run: the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np

from benchmarks.common import (
    RESULTS_DIR,
    Stats,
    bulk_connection,
    database,
    halfvec_binary,
    measure,
    server_info,
)
from benchmarks.recall_dialogues import Dialogues
from benchmarks.recall_dialogues import generate as dialogues
from core.embedding.local import LocalEmbedder
from core.recall import user_indexes, when
from core.recall.candidates import RecallCandidates
from core.recall.hybrid import HybridRecall, fuse
from core.recall.keywords import TextSearchRepository
from core.recall.statements import Ranking, Source, keyword_statement
from core.recall.user_indexes import UserIndexRepository
from core.recall.vectors import RecallRepository, recall_plan
from core.storage.database import Database, create_pool
from fakes.archiving import move_to_archive

DIM = 384
K = 10
SEEDS = range(1, 26)  # 25 conversations: 50,104 turns
HEAVY_ROWS = 50_000
OTHER_USERS = 40
OTHER_ROWS = 1_000
NAME = "Maya"
# Replies of 50-400 tokens (as the latency benchmark's model writes them): about 40 % of
# them are longer than 256 tokens, so a fifth of all messages, with 3 passages of at most
# 128 tokens each (docs/recall.md "Long messages").
LONG_SHARE = 0.2
PASSAGES_PER_LONG = 3
_MESSAGE_COLUMNS = [
    "user_id", "role", "content", "platform", "chat_id", "platform_message_id", "status",
    "embedding", "created_at", "speaker",
]  # fmt: skip
_FACT_COLUMNS = ["user_id", "content", "importance", "embedding", "created_at", "valid_from"]


async def fill(
    dsn: str, sets: Sequence[Dialogues], embedder: LocalEmbedder, *, long_share: float
) -> tuple[dict[str, int], list[int]]:
    """The users of the module docstring: their ids by name, and the message id of each
    turn of `sets` (in order) stored for the `messages` user."""
    turns = [t for d in sets for t in d.turns][:HEAVY_ROWS]
    planted = [f for d in sets for f in d.facts]
    texts = sorted({t.text for t in turns} | {f.text for f in planted})
    embedded = np.array(await embedder.embed(texts))
    vectors = dict(zip(texts, halfvec_binary(embedded), strict=True))
    row_of = {text: i for i, text in enumerate(texts)}
    rng = random.Random(7)
    conn = await bulk_connection(dsn)
    try:
        ids: dict[str, int] = {}
        for name in ("messages", "facts", *(f"other{i}" for i in range(OTHER_USERS))):
            ids[name] = await conn.fetchval(
                "INSERT INTO users (display_name) VALUES ($1) RETURNING id", NAME
            )
            await conn.execute("INSERT INTO conversations (user_id) VALUES ($1)", ids[name])

        def messages(user_id: int, rows: Sequence[Any]) -> list[tuple[Any, ...]]:
            return [
                (user_id, t.role, t.text, "console", str(user_id), f"{user_id}-{i}",
                 "answered" if t.role == "user" else None, vectors[t.text], t.at,
                 NAME if t.role == "user" else "Mira")
                for i, t in enumerate(rows)
            ]  # fmt: skip

        await conn.copy_records_to_table(
            "messages", records=messages(ids["messages"], turns), columns=_MESSAGE_COLUMNS
        )
        await conn.copy_records_to_table(
            "messages", records=messages(ids["facts"], turns[:2000]), columns=_MESSAGE_COLUMNS
        )
        for i in range(OTHER_USERS):
            picked = rng.sample(turns, OTHER_ROWS)
            await conn.copy_records_to_table(
                "messages", records=messages(ids[f"other{i}"], picked), columns=_MESSAGE_COLUMNS
            )
        facts = [(ids["messages"], f.text, f.importance, vectors[f.text], f.at, f.at)
                 for f in planted]  # fmt: skip
        facts += [
            (ids["facts"], t.text, 5, vectors[t.text], t.at, t.at)
            for t in turns[: HEAVY_ROWS - 2000]
        ]
        await conn.copy_records_to_table("facts", records=facts, columns=_FACT_COLUMNS)
        await conn.execute(
            "UPDATE conversations c SET message_count ="
            " (SELECT count(*) FROM messages m WHERE m.user_id = c.user_id)"
        )
        heavy = await conn.fetch(
            "SELECT id FROM messages WHERE user_id = $1 ORDER BY id", ids["messages"]
        )
        message_ids = [r["id"] for r in heavy]
        older = message_ids[: len(message_ids) // 2]
        # Long messages' passages (the `long_messages` job): each near its message's own
        # vector, so recall's answers stay the same while the passages cost what they do.
        noise = np.random.default_rng(9)
        long = sorted(rng.sample(range(len(message_ids)), int(len(message_ids) * long_share)))
        passages = []
        for i in long:
            own = embedded[row_of[turns[i].text]]
            near = own + noise.normal(0, 0.05, (PASSAGES_PER_LONG, DIM))
            near /= np.linalg.norm(near, axis=1, keepdims=True)
            passages += [
                (message_ids[i], ids["messages"], n, vector)
                for n, vector in enumerate(halfvec_binary(near))
            ]
        await conn.copy_records_to_table(
            "message_passages",
            records=passages,
            columns=["message_id", "user_id", "position", "embedding"],
        )
        await conn.execute(
            "UPDATE messages SET passages = $2 WHERE id = ANY($1::bigint[])",
            [message_ids[i] for i in long],
            PASSAGES_PER_LONG,
        )
    finally:
        await conn.close()
    pool = await create_pool(dsn, min_size=1, max_size=1)
    try:
        await move_to_archive(Database(pool), older)
        async with pool.acquire() as c:
            await c.execute("VACUUM ANALYZE")
    finally:
        await pool.close()
    return ids, message_ids


async def _plan(db: Database, user_id: int, question: str, *, approximate: bool) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the keyword list's query for `question`."""
    sql = keyword_statement(Ranking.BM25, indexed=approximate)
    async with db.connection() as c, recall_plan(c, approximate=approximate):
        rows = await c.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, user_id, question, [], None, 40)
    return "\n".join(r[0] for r in rows)


async def _keyword_overlap(
    db: Database, user_id: int, questions: Sequence[str]
) -> dict[str, float]:
    """How much of the exact plan's top 40 the plan of an indexed user keeps."""
    shares = []
    async with db.connection() as c:
        for q in questions:
            lists = []
            for indexed in (False, True):
                async with recall_plan(c, approximate=indexed):
                    rows = await c.fetch(
                        keyword_statement(Ranking.BM25, indexed=indexed), user_id, q, [], None, 40
                    )
                lists.append([(r["source"], r["id"]) for r in rows])
            exact, used = lists
            if exact:
                shares.append(len(set(exact) & set(used)) / len(exact))
    return {"questions": len(shares), "mean_share_of_exact_top40": float(np.mean(shares))}


async def _recall_at_10(
    db: Database,
    user_id: int,
    questions: Sequence[tuple[str, Any, set[int]]],
    now: datetime,
) -> dict[str, float]:
    """Fused recall@10 of the `messages` user's questions (text, query vector, evidence
    message ids) with the keyword list of the exact plan and of the indexed one (the
    vector list as the user's indexes give it, in both)."""
    vectors = RecallRepository(db, dimensions=DIM)
    text = TextSearchRepository(db)
    found = {"exact keyword plan": 0.0, "indexed keyword plan": 0.0}
    for question, vector, evidence in questions:
        keyword_query = when.with_days(question, when.periods(question, now))
        v = await vectors.nearest(user_id, vector, 40)
        for name, indexed in (("exact keyword plan", False), ("indexed keyword plan", True)):
            t = await text.search(user_id, keyword_query, 40, indexed=indexed)
            items = fuse(v, t, now=now, limit=K, periods=when.periods(question, now))
            top = {i.id for i in items if i.source is not Source.FACTS}
            found[name] += len(top & evidence) / len(evidence)
    return {name: round(total / len(questions), 3) for name, total in found.items()} | {
        "questions": len(questions)
    }


async def _slowest(db: Database, user_id: int, questions: Sequence[str]) -> list[dict[str, Any]]:
    """The 3 questions whose keyword list took longest, with their plans."""
    text = TextSearchRepository(db)
    took = []
    for q in questions:
        started = time.perf_counter()
        await text.search(user_id, q, 40, indexed=True)
        took.append(((time.perf_counter() - started) * 1000, q))
    took.sort(reverse=True)
    return [
        {"ms": round(ms, 2), "question": q, "plan": await _plan(db, user_id, q, approximate=True)}
        for ms, q in took[:3]
    ]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    sets = [dialogues(seed) for seed in SEEDS]
    questions = [q.text for d in sets for q in d.questions]
    now = max(d.now for d in sets) + timedelta(days=1)
    async with LocalEmbedder() as embedder:
        started = time.perf_counter()
        ids, message_ids = await fill(args.dsn, sets, embedder, long_share=args.long_share)
        filled = time.perf_counter() - started
        asked = random.Random(3).sample(questions, min(args.samples, len(questions)))
        query_vectors = list(await embedder.embed(asked))
    pool = await create_pool(args.dsn, min_size=1, max_size=2)
    db = Database(pool)
    user_indexes.COMMON_TERM_SHARE = args.common_share
    indexes = UserIndexRepository(db, dimensions=DIM)
    started = time.perf_counter()
    for name in ("messages", "facts"):
        await indexes.count_terms(ids[name])
        await indexes.create(ids[name])
    indexed = time.perf_counter() - started
    async with pool.acquire() as c:
        await c.execute("ANALYZE")
    info_conn = await asyncpg.connect(args.dsn)
    try:
        info = await server_info(info_conn)
    finally:
        await info_conn.close()
    vectors = RecallRepository(db, dimensions=DIM)
    text = TextSearchRepository(db)
    hybrid = HybridRecall(RecallCandidates(db, vectors, text))
    result: dict[str, Any] = {
        "server": info,
        "common_term_share": args.common_share,
        "long_share": args.long_share,
        "fill_seconds": round(filled, 1),
        "user_indexes_seconds": round(indexed, 1),
        "rows": {},
        "users": {},
    }
    async with pool.acquire() as c:
        for name in ("messages", "facts"):
            counted = await c.fetchrow(
                "SELECT (SELECT count(*) FROM messages WHERE user_id = $1) AS messages,"
                " (SELECT count(*) FROM messages_archive WHERE user_id = $1) AS archive,"
                " (SELECT count(*) FROM facts WHERE user_id = $1) AS facts",
                ids[name],
            )
            assert counted is not None
            result["rows"][name] = dict(counted)
    # The `messages` user's answerable questions whose evidence is all stored.
    evidenced: list[tuple[str, Any, set[int]]] = []
    offset = 0
    for d in sets:
        for q in d.questions:
            if q.evidence and all(offset + i < len(message_ids) for i in q.evidence):
                evidenced.append((q.text, q, {message_ids[offset + i] for i in q.evidence}))
        offset += len(d.turns)
    evidenced = random.Random(5).sample(evidenced, min(args.samples, len(evidenced)))
    async with LocalEmbedder() as embedder:
        vectors_of = await embedder.embed([q for q, _, _ in evidenced])
    quality = [(q, v, e) for (q, _, e), v in zip(evidenced, vectors_of, strict=True)]
    result["messages_user_fused_recall_at_10"] = await _recall_at_10(
        db, ids["messages"], quality, now
    )
    print("fused recall@10, messages user:", result["messages_user_fused_recall_at_10"])
    for name in ("messages", "facts"):
        user_id = ids[name]

        async def search(i: int, user_id: int = user_id) -> object:
            j = i % len(asked)
            return await hybrid.search(user_id, asked[j], query_vectors[j], K, now=now)

        async def keyword(i: int, user_id: int = user_id) -> object:
            return await text.search(user_id, asked[i % len(asked)], 40, indexed=True)

        async def vector(i: int, user_id: int = user_id) -> object:
            return await vectors.nearest(user_id, query_vectors[i % len(asked)], 40)

        load_before = os.getloadavg()
        timings: dict[str, Stats] = {
            "search": await measure(search, args.samples, warmup=args.warmup),
            "keyword list alone": await measure(keyword, args.samples, warmup=args.warmup),
            "vector list alone": await measure(vector, args.samples, warmup=args.warmup),
        }
        result["users"][name] = {
            "latency_ms": {k: s.as_dict() for k, s in timings.items()},
            "load_average": [round(x, 2) for x in (*load_before, *os.getloadavg())],
            "plan_exact": await _plan(db, user_id, asked[0], approximate=False),
            "plan_indexed": await _plan(db, user_id, asked[0], approximate=True),
            "keyword_overlap": await _keyword_overlap(db, user_id, asked[:100]),
            "slowest_keyword_questions": await _slowest(db, user_id, asked[:100]),
        }
        print(f"\n{name} user {result['rows'][name]}, load {result['users'][name]['load_average']}")
        for k, s in timings.items():
            print(f"  {k:20} p50 {s.p50:7.2f} ms  p99 {s.p99:7.2f} ms  max {s.max:7.2f} ms")
        print("  keyword overlap with the exact plan:", result["users"][name]["keyword_overlap"])
        for slow in result["users"][name]["slowest_keyword_questions"]:
            print(f"  slow: {slow['ms']} ms {slow['question']!r}")
    await pool.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--dsn", help="an empty database (default: an embedded server)")
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--common-share", type=float, default=user_indexes.COMMON_TERM_SHARE)
    parser.add_argument(
        "--long-share", type=float, default=LONG_SHARE, help="messages with passages"
    )
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "recall_speed.json")
    args = parser.parse_args()

    async def _main() -> dict[str, Any]:
        async with database(args.dsn, None) as dsn:
            args.dsn = dsn
            return await run(args)

    result = asyncio.run(_main())
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
