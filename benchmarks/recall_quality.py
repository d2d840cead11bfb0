"""How well recall finds the evidence of questions about a long conversation.

Loads the synthetic conversations of benchmarks/recall_dataset.py (one user per seed
and embedding format) into a real PostgreSQL + pgvector (an embedded server in a temp
folder, or `--dsn`), embeds them with the real LocalEmbedder, and reports recall@5,
recall@10 and MRR@10 of the evidence messages for vector only, keyword only
(BM25 / ts_rank / ts_rank_cd) and the hybrid blend.

Honest tuning: the blend's weights are chosen by grid search on the `--tune-seeds`
conversations only; the table reports the `--eval-seeds` conversations, which the
search never saw. Messages older than the middle of each conversation are moved to
`messages_archive`, and the newest 20 are excluded as the prompt's recent window.

    .venv/bin/python -m benchmarks.recall_quality            # 3-8 min on 2 cores
    .venv/bin/python -m benchmarks.recall_quality --dsn postgresql://...

Writes benchmarks/results/recall_quality.json.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import asyncpg
import numpy as np

from benchmarks.common import database
from benchmarks.recall_dataset import Dataset, generate
from core.embedding.local import LocalEmbedder
from core.recall.candidates import RecallCandidates
from core.recall.hybrid import DEFAULT_WEIGHTS, HybridRecall, RecallWeights, fuse
from core.recall.keywords import Ranking, TextHit, TextSearchRepository
from core.recall.vectors import RecallHit, RecallRepository, Source
from core.storage.database import Connection, Database, create_pool
from fakes.archiving import move_to_archive

K = 10
RECENT_WINDOW = 20
FORMATS = ("plain", "dated")
RESULTS = Path(__file__).with_name("results") / "recall_quality.json"


def embedded_text(fmt: str, at: Any, role: str, text: str) -> str:
    """What gets embedded for a stored message: the text, or `[date] Speaker: text`."""
    if fmt == "plain":
        return text
    speaker = "User" if role == "user" else "Assistant"
    return f"[{at:%Y-%m-%d}] {speaker}: {text}"


@dataclass
class Conversation:
    """One data set loaded for one user in one embedding format."""

    data: Dataset
    fmt: str
    user_id: int
    ids: list[int]  # DatasetMessage.index -> messages.id
    excluded: list[int]
    query_vectors: list[np.ndarray[Any, Any]] = field(default_factory=list)

    def evidence(self, q: int) -> set[int]:
        return {self.ids[i] for i in self.data.questions[q].evidence}


async def load(
    pool: asyncpg.Pool[asyncpg.Record], data: Dataset, fmt: str, embedder: LocalEmbedder
) -> Conversation:
    texts = [embedded_text(fmt, m.at, m.role, m.text) for m in data.messages]
    unique = list(dict.fromkeys(texts))  # filler repeats: embed each text once
    by_text = dict(zip(unique, await embedder.embed(unique), strict=True))
    vectors = [by_text[t] for t in texts]
    chat = f"bench-{data.seed}-{fmt}"
    async with pool.acquire() as c, c.transaction():
        user_id = await c.fetchval(
            "INSERT INTO users (display_name) VALUES ($1) RETURNING id", chat
        )
        await c.execute("INSERT INTO conversations (user_id) VALUES ($1)", user_id)
        await c.executemany(
            "INSERT INTO messages (user_id, role, content, platform, chat_id,"
            " platform_message_id, status, embedding, created_at)"
            " VALUES ($1, $2, $3, 'console', $4, $5, $6, $7, $8)",
            [
                (
                    user_id,
                    m.role,
                    m.text,
                    chat,
                    str(m.index),
                    "answered" if m.role == "user" else None,
                    vector,
                    m.at,
                )
                for m, vector in zip(data.messages, vectors, strict=True)
            ],
        )
        rows = await c.fetch(
            "SELECT id, platform_message_id FROM messages WHERE user_id = $1", user_id
        )
        by_index = {int(r["platform_message_id"]): r["id"] for r in rows}
        ids = [by_index[m.index] for m in data.messages]
        middle = ids[len(ids) // 2]
        await move_to_archive(Database(cast(Connection, c)), [i for i in ids if i < middle])
        await c.execute(
            "UPDATE conversations SET message_count = $2 WHERE user_id = $1", user_id, len(ids)
        )
    conv = Conversation(data, fmt, user_id, ids, ids[-RECENT_WINDOW:])
    conv.query_vectors = list(await embedder.embed([q.text for q in data.questions]))
    return conv


# --------------------------------------------------------------------------- metrics


@dataclass(frozen=True, slots=True)
class Scores:
    recall5: float
    recall10: float
    mrr: float

    @property
    def objective(self) -> float:
        return (self.recall5 + self.recall10 + self.mrr) / 3


def score(rankings: Sequence[Sequence[int]], evidence: Sequence[set[int]]) -> Scores:
    r5, r10, rr = [], [], []
    for ranked, wanted in zip(rankings, evidence, strict=True):
        r5.append(len(wanted & set(ranked[:5])) / len(wanted))
        r10.append(len(wanted & set(ranked[:10])) / len(wanted))
        first = next((i for i, item in enumerate(ranked[:K], 1) if item in wanted), None)
        rr.append(0.0 if first is None else 1.0 / first)
    return Scores(statistics.fmean(r5), statistics.fmean(r10), statistics.fmean(rr))


def message_ids(items: Sequence[RecallHit | TextHit]) -> list[int]:
    return [h.id for h in items if h.source != Source.FACTS]


@dataclass
class Candidates:
    """Both lists for every question of one conversation, fetched once for tuning."""

    conv: Conversation
    vector: list[list[RecallHit]]
    text: dict[Ranking, list[list[TextHit]]]


async def candidates(db: Database, conv: Conversation, pool_size: int) -> Candidates:
    recall = RecallRepository(db, dimensions=384)
    vector = [
        await recall.nearest(conv.user_id, v, pool_size, exclude_message_ids=conv.excluded)
        for v in conv.query_vectors
    ]
    text: dict[Ranking, list[list[TextHit]]] = {}
    for ranking in Ranking:
        repo = TextSearchRepository(db, ranking=ranking)
        text[ranking] = [
            await repo.search(conv.user_id, q.text, pool_size, exclude_message_ids=conv.excluded)
            for q in conv.data.questions
        ]
    return Candidates(conv, vector, text)


def fused_scores(cands: Sequence[Candidates], ranking: Ranking, weights: RecallWeights) -> Scores:
    rankings: list[list[int]] = []
    evidence: list[set[int]] = []
    for c in cands:
        for q in range(len(c.conv.data.questions)):
            items = fuse(c.vector[q], c.text[ranking][q], now=c.conv.data.now, weights=weights)
            rankings.append([i.id for i in items[:K]])
            evidence.append(c.conv.evidence(q))
    return score(rankings, evidence)


def grid(ranking: Ranking) -> list[RecallWeights]:
    out = []
    for text, k, coverage, floor, half_life in itertools.product(
        (0.5, 1.0, 1.5, 2.0, 3.0), (2.0, 5.0, 10.0, 30.0, 60.0), (0.0, 1.0, 2.0),
        (0.7, 0.8, 0.9, 1.0), (30.0, 90.0),
    ):  # fmt: skip
        if floor == 1.0 and half_life != 90.0:
            continue  # no recency: the half-life does not matter
        if ranking is not Ranking.BM25 and coverage != 0.0:
            continue  # ts_rank gives no coverage
        out.append(RecallWeights(k=k, text=text, vector=1.0, coverage_power=coverage,
                                 recency_floor=floor, half_life_days=half_life))  # fmt: skip
    return out


def tune(cands: Sequence[Candidates], ranking: Ranking) -> tuple[RecallWeights, Scores]:
    scored = ((w, fused_scores(cands, ranking, w)) for w in grid(ranking))
    return max(scored, key=lambda pair: pair[1].objective)


# --------------------------------------------------------------------------- report


async def evaluate(
    db: Database, cands: Sequence[Candidates], weights: dict[Ranking, RecallWeights]
) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    evidence = [c.conv.evidence(q) for c in cands for q in range(len(c.conv.data.questions))]
    vector = [message_ids(v)[:K] for c in cands for v in c.vector]
    rows["vector only"] = score(vector, evidence)
    for ranking in Ranking:
        text = [message_ids(t)[:K] for c in cands for t in c.text[ranking]]
        rows[f"text only ({ranking.value})"] = score(text, evidence)
    for ranking in Ranking:
        rows[f"blend ({ranking.value}, tuned)"] = fused_scores(cands, ranking, weights[ranking])
    rows["blend (bm25, module defaults)"] = fused_scores(cands, Ranking.BM25, DEFAULT_WEIGHTS)
    # The real code path, end to end, with the defaults: must agree with `fuse` above.
    hybrid = HybridRecall(
        RecallCandidates(db, RecallRepository(db, dimensions=384), TextSearchRepository(db))
    )
    real: list[list[int]] = []
    latencies: list[float] = []
    for c in cands:
        for q, question in enumerate(c.conv.data.questions):
            started = time.perf_counter()
            items = await hybrid.search(
                c.conv.user_id,
                question.text,
                c.conv.query_vectors[q],
                K,
                now=c.conv.data.now,
                exclude_message_ids=c.conv.excluded,
            )
            latencies.append((time.perf_counter() - started) * 1000)
            real.append([i.id for i in items])
    rows["HybridRecall.search (defaults)"] = score(real, evidence)
    kinds = sorted({q.kind for c in cands for q in c.conv.data.questions})
    by_kind: dict[str, dict[str, float]] = {}
    for kind in kinds:
        picks = [
            i
            for i, (c, q) in enumerate(
                (c, q) for c in cands for q in range(len(c.conv.data.questions))
            )
            if c.conv.data.questions[q].kind == kind
        ]
        by_kind[kind] = {
            "n": len(picks),
            "vector": score([vector[i] for i in picks], [evidence[i] for i in picks]).recall10,
            "text": _kind_recall(cands, picks, evidence, Ranking.BM25),
            "blend": score([real[i] for i in picks], [evidence[i] for i in picks]).recall10,
        }
    return {
        "rows": {name: asdict(s) for name, s in rows.items()},
        "recall10_by_kind": by_kind,
        "latency_ms": {
            "p50": statistics.median(latencies),
            "p95": statistics.quantiles(latencies, n=20)[-1],
        },
    }


def _kind_recall(
    cands: Sequence[Candidates], picks: list[int], evidence: list[set[int]], ranking: Ranking
) -> float:
    text = [message_ids(t)[:K] for c in cands for t in c.text[ranking]]
    return score([text[i] for i in picks], [evidence[i] for i in picks]).recall10


def print_table(title: str, rows: dict[str, dict[str, float]]) -> None:
    print(f"\n{title}")
    print(f"{'':34} {'recall@5':>9} {'recall@10':>10} {'MRR@10':>8}")
    for name, s in rows.items():
        print(f"{name:34} {s['recall5']:9.3f} {s['recall10']:10.3f} {s['mrr']:8.3f}")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    pool = await create_pool(args.dsn, min_size=1, max_size=2)
    db = Database(pool)
    convs: dict[tuple[int, str], Conversation] = {}
    async with LocalEmbedder() as embedder:
        for seed in [*args.tune_seeds, *args.eval_seeds]:
            data = generate(seed, sessions=args.sessions)
            for fmt in FORMATS:
                convs[(seed, fmt)] = await load(pool, data, fmt, embedder)
                print(f"loaded seed {seed} ({fmt}): {len(data.messages)} messages,"
                      f" {len(data.questions)} questions", flush=True)  # fmt: skip
    async with pool.acquire() as c:
        await c.execute("ANALYZE")
    print(f"loaded in {time.perf_counter() - started:.0f} s", flush=True)
    pool_size = DEFAULT_WEIGHTS.candidates(K)
    cands = {key: await candidates(db, conv, pool_size) for key, conv in convs.items()}

    print(f"candidates fetched at {time.perf_counter() - started:.0f} s", flush=True)
    result: dict[str, Any] = {
        "command": "python -m benchmarks.recall_quality " + " ".join(args.argv),
        "tune_seeds": args.tune_seeds,
        "eval_seeds": args.eval_seeds,
        "sessions": args.sessions,
        "messages_per_conversation": [len(c.data.messages) for c in convs.values()],
        "questions_per_conversation": [len(c.data.questions) for c in convs.values()],
        "candidates_per_list": pool_size,
        "formats": {},
    }
    for fmt in FORMATS:
        tune_c = [cands[(s, fmt)] for s in args.tune_seeds]
        eval_c = [cands[(s, fmt)] for s in args.eval_seeds]
        tuned: dict[Ranking, RecallWeights] = {}
        tuning: dict[str, Any] = {}
        for ranking in Ranking:
            weights, on_tune = tune(tune_c, ranking)
            tuned[ranking] = weights
            tuning[ranking.value] = {"weights": asdict(weights), "tune_scores": asdict(on_tune)}
        report = await evaluate(db, eval_c, tuned)
        report["tuning"] = tuning
        result["formats"][fmt] = report
        print_table(f"embedded as {fmt!r}, eval seeds {args.eval_seeds}", report["rows"])
        print("recall@10 by question kind:", json.dumps(report["recall10_by_kind"]))
        print("tuned (bm25):", tuning["bm25"]["weights"])
        print("HybridRecall.search latency ms:", report["latency_ms"])
    await pool.close()
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def main() -> None:
    import sys

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--dsn", help="an existing database (default: an embedded server)")
    parser.add_argument("--tune-seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--eval-seeds", type=int, nargs="+", default=[3, 4])
    parser.add_argument("--sessions", type=int, default=320)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.argv = sys.argv[1:]
    result = asyncio.run(_main(args))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.output} ({result['seconds']} s)")


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    async with database(args.dsn, None) as dsn:
        args.dsn = dsn
        return await run(args)


if __name__ == "__main__":
    main()
