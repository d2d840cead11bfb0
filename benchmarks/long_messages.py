"""Recall of long messages, before and after the `long_messages` job stores their passages.

    .venv/bin/python -m benchmarks.long_messages [--seeds 5 6 7 8 --passage-tokens 128
        --min-chars 1200 --dsn DSN --json PATH]

The dialogue sets (benchmarks/recall_dialogues.py) rewritten as a person who writes
long messages: the person's turns are joined, in order, into messages of at least
`--min-chars` characters (a diary-like entry telling the last days: the setup and the
answer of a fact, the follow-ups, the small talk around them), each dated at its first
turn; the assistant's turns are kept as they are. A
question's evidence is the long message holding its evidence turn. Stored as the
engine stores messages (the speaker's name in `search`, the older half archived, the
newest 20 excluded as the recent window; benchmarks/recall_sets.py), without facts.

For every question with evidence: the vector list (40 candidates) and the fused result
(`fuse`, the module defaults, as `HybridRecall.search` runs it), recall@10, first with
each message's one embedding (long texts: their 256-token windows averaged), then after
the `long_messages` job (passages of at most `--passage-tokens`). Reported over all questions
and over those whose evidence lies in a message of more than 256 tokens, with the
latency of `HybridRecall.search` before and after (2 shared cores: noisy).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS_DIR, database, print_table, run_benchmark
from benchmarks.recall_dialogues import Dialogues
from benchmarks.recall_dialogues import generate as dialogues
from benchmarks.recall_sets import RECENT_WINDOW, EvalQuestion, StoredRow, key, score, store
from core.documents.chunking import Chunker
from core.embedding.local import LocalEmbedder
from core.jobs.long_messages import (
    LONG_MESSAGE_TOKENS,
    PASSAGE_OVERLAP,
    PASSAGE_TOKENS,
    LongMessageJob,
)
from core.recall import when
from core.recall.candidates import RecallCandidates
from core.recall.hybrid import DEFAULT_WEIGHTS, HybridRecall, fuse
from core.recall.keywords import TextSearchRepository
from core.recall.vectors import RecallRepository
from core.storage.database import Database, create_pool

K = 10


def long_rows(data: Dialogues, min_chars: int) -> tuple[list[StoredRow], list[int]]:
    """The rows to store, and for each turn of `data` the row that holds it."""
    rows: list[StoredRow] = []
    row_of: list[int] = []
    pending: list[str] = []  # the person's turns not stored yet
    members: list[int] = []

    def flush() -> None:
        if pending:
            at = data.turns[members[0]].at
            rows.append(StoredRow("user", "\n\n".join(pending), at, data.person))
            for turn in members:
                row_of[turn] = len(rows) - 1
            pending.clear()
            members.clear()

    for turn in data.turns:
        row_of.append(-1)
        if turn.role == "user":
            pending.append(turn.text)
            members.append(turn.index)
            if sum(len(t) for t in pending) >= min_chars:
                flush()
        else:
            rows.append(StoredRow("assistant", turn.text, turn.at, data.assistant))
            row_of[turn.index] = len(rows) - 1
    flush()
    return rows, row_of


async def _lists(
    candidates: RecallCandidates,
    hybrid: HybridRecall,
    user_id: int,
    questions: Sequence[tuple[EvalQuestion, Any]],
    data: Dialogues,
    excluded: list[int],
) -> tuple[list[list[tuple[str, int]]], list[list[tuple[str, int]]], list[float]]:
    vector, fused, latencies = [], [], []
    size = DEFAULT_WEIGHTS.candidates(K)
    for question, embedding in questions:
        named = when.periods(question.text, data.now)
        text = when.with_days(question.text, named)
        v, t = await candidates.fetch(user_id, text, embedding, size, exclude_message_ids=excluded)
        vector.append([key(h.source, h.id) for h in v])
        items = fuse(v, t, now=data.now, weights=DEFAULT_WEIGHTS, limit=K, periods=named)
        fused.append([key(i.source, i.id) for i in items])
        started = time.perf_counter()
        await hybrid.search(
            user_id, question.text, embedding, K, now=data.now, exclude_message_ids=excluded
        )
        latencies.append((time.perf_counter() - started) * 1000)
    return vector, fused, latencies


async def run(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    started = time.perf_counter()
    chunker = Chunker.load()
    results: dict[str, Any] = {
        "min_chars": args.min_chars,
        "seeds": args.seeds,
        "passage_tokens": args.passage_tokens,
    }
    rankings: dict[str, list[list[tuple[str, int]]]] = {}
    asked: list[EvalQuestion] = []
    long_evidence: list[bool] = []
    latency: dict[str, list[float]] = {"before": [], "after": []}
    messages = long_messages = 0
    async with database(args.dsn, None) as dsn, LocalEmbedder() as embedder:
        pool = await create_pool(dsn, min_size=1, max_size=2)
        db = Database(pool)
        candidates = RecallCandidates(
            db, RecallRepository(db, dimensions=384), TextSearchRepository(db)
        )
        hybrid = HybridRecall(candidates)
        loaded = []
        for seed in args.seeds:
            data = dialogues(seed)
            rows, row_of = long_rows(data, args.min_chars)
            chat = f"long-{seed}-{args.min_chars}"
            user_id, ids, _ = await store(pool, embedder, chat, "speaker", rows, [])
            questions = [
                EvalQuestion(q.text, q.kind, tuple(dict.fromkeys(("m", ids[row_of[i]])
                                                                 for i in q.evidence)))
                for q in data.questions
                if q.evidence
            ]  # fmt: skip
            vectors = await embedder.embed([q.text for q in questions])
            loaded.append(
                (data, user_id, ids[-RECENT_WINDOW:], list(zip(questions, vectors, strict=True)))
            )
            asked += questions
            by_id = dict(zip(ids, rows, strict=True))
            long_ids = {i for i, r in by_id.items() if chunker.count(r.text) > LONG_MESSAGE_TOKENS}
            long_evidence += [any(e[1] in long_ids for e in q.evidence) for q in questions]
            messages += len(rows)
            long_messages += len(long_ids)
        async with pool.acquire() as c:
            await c.execute("ANALYZE")
        for phase in ("before", "after"):
            if phase == "after":
                overlap = round(args.passage_tokens * PASSAGE_OVERLAP / PASSAGE_TOKENS)
                cutter = Chunker.load(max_tokens=args.passage_tokens, overlap=overlap)
                job = LongMessageJob(db, embedder, chunker=cutter, max_rows=1_000_000)
                results["job"] = (await job.run()).counts
                async with pool.acquire() as c:
                    await c.execute("ANALYZE")
            vector: list[list[tuple[str, int]]] = []
            fused: list[list[tuple[str, int]]] = []
            for data, user_id, excluded, embedded in loaded:
                v, f, lat = await _lists(candidates, hybrid, user_id, embedded, data, excluded)
                vector += v
                fused += f
                latency[phase] += lat
            rankings[f"vector, {phase}"] = vector
            rankings[f"fused, {phase}"] = fused
        await pool.close()
    subsets = {
        "all questions": [True] * len(asked),
        "evidence in a long message": long_evidence,
    }
    table: dict[str, dict[str, float]] = {}
    for subset, chosen in subsets.items():
        subset_questions = [q for q, keep in zip(asked, chosen, strict=True) if keep]
        for name, ranked in rankings.items():
            kept = [r for r, keep in zip(ranked, chosen, strict=True) if keep]
            s = score(kept, subset_questions)
            table.setdefault(name, {})[subset] = round(s.recall10, 3)
            table[name]["n " + subset] = s.n
    results |= {
        "messages": messages,
        "long_messages": long_messages,
        "recall10": table,
        "search_ms": {
            phase: {
                "p50": round(statistics.median(values), 2),
                "p95": round(statistics.quantiles(values, n=20)[-1], 2),
            }
            for phase, values in latency.items()
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
    return {"command": "python -m benchmarks.long_messages " + " ".join(argv), "results": results}


def report(results: dict[str, Any]) -> None:
    table = results["recall10"]
    first = next(iter(table.values()))
    print(
        f"{results['messages']} messages, {results['long_messages']} of more than"
        f" {LONG_MESSAGE_TOKENS} tokens; job: {results.get('job')}"
    )
    print_table(
        "recall@10",
        ["list", *(f"{s} (n={first['n ' + s]})" for s in ("all questions",
                                                         "evidence in a long message"))],
        [[name, row["all questions"], row["evidence in a long message"]]
         for name, row in table.items()],
    )  # fmt: skip
    print("HybridRecall.search ms:", results["search_ms"])


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[5, 6, 7, 8])
    parser.add_argument("--min-chars", type=int, default=1200)
    parser.add_argument("--passage-tokens", type=int, default=PASSAGE_TOKENS)
    parser.add_argument("--dsn", default=None)
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "long_messages.json")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    run_benchmark(argv, _parse, run, report)


if __name__ == "__main__":
    main()
