"""Foundation benchmark: storing a message, loading a prompt's context, vector recall.

    .venv/bin/python -m benchmarks.foundation [--users N --messages N --facts N
        --heavy-rows N --data-dir DIR --dsn DSN --json PATH]

Fills a database with generated users, conversations, messages and facts (COPY, with
the secondary indexes built after the load), then times the repositories the engine
uses on every turn, one call at a time:

- store: `MessageRepository.add_user_message` with an embedding (HNSW insert included);
- context: recent window (20) + conversation (summary) + valid facts (30);
- recall: `RecallRepository.nearest(k=10)` for ordinary users and for one heavy user,
  and recall@10 of the heavy user's HNSW plan against the exact plan;
- switch-over: exact and HNSW top-10 latency for users of 1k..20k rows, which is what
  `CONTEXT_EXACT_RECALL_MAX_ROWS` (`exact_max_rows`: above it, the `user_indexes` job
  gives a user HNSW indexes of their own) should be chosen from. Each probe user gets
  indexes of their own for the HNSW column; afterwards the job drops those it would
  not have built.

With `--data-dir` the embedded server keeps its data, and a later run with the same
sizes skips the fill. Results: a table on stdout and `benchmarks/results/foundation.json`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np

from benchmarks.common import (
    RESULTS_DIR,
    ContextLoad,
    Stats,
    Timer,
    Vectors,
    bulk_connection,
    clustered,
    database,
    elapsed_since,
    halfvec_binary,
    measure,
    prewarm,
    print_table,
    redact,
    run_benchmark,
    server_info,
    unit,
)
from bot.database import prepare
from core.jobs.user_indexes import UserIndexJob
from core.models import Platform
from core.recall.user_indexes import UserIndexRepository
from core.recall.vectors import RecallRepository
from core.storage.database import Database, create_pool
from core.storage.messages import MessageRepository

DIM = 384
TOPICS = 200
BATCH = 50_000
FACT_SHARE = 0.1  # of a heavy or probe user's rows
MARKER = "benchmark_fill"  # key in the heavy user's settings: the parameters of the fill
BENCH_CHAT = "bench-store"  # chat id of the messages the store benchmark adds


@dataclass(frozen=True, slots=True)
class FillSpec:
    users: int
    messages: int
    facts: int
    heavy_rows: int
    probe_sizes: tuple[int, ...]
    seed: int

    @property
    def heavy_id(self) -> int:
        return self.users + 1

    def probe_id(self, index: int) -> int:
        return self.users + 2 + index

    def special_rows(self) -> list[tuple[int, int]]:
        """(user id, rows) of the heavy user and the probe users."""
        sizes = [self.heavy_rows, *self.probe_sizes]
        return [(self.users + 1 + i, rows) for i, rows in enumerate(sizes)]


# --- fill -------------------------------------------------------------------------------


def _vocabulary(rng: np.random.Generator) -> list[str]:
    syllables = ["ka", "lo", "mi", "ra", "te", "su", "ne", "po", "da", "vi", "ro", "an", "el"]
    words = {"".join(rng.choice(syllables, int(rng.integers(1, 4)))) for _ in range(4000)}
    return sorted(words)


def _sentences(rng: np.random.Generator, count: int, lo: int, hi: int) -> list[str]:
    words = _vocabulary(rng)
    return [
        " ".join(rng.choice(words, int(rng.integers(lo, hi)))).capitalize() + "."
        for _ in range(count)
    ]


def _skewed_counts(rng: np.random.Generator, users: int, total: int) -> np.ndarray[Any, Any]:
    """`total` rows over `users`: a few users talk a lot, most a little (log-normal)."""
    if users == 0 or total == 0:
        return np.zeros(users, dtype=np.int64)
    weights = rng.lognormal(0.0, 1.2, users)
    counts: np.ndarray[Any, Any] = rng.multinomial(total, weights / weights.sum())
    return counts


def _owners(
    counts: np.ndarray[Any, Any],
    specials: list[tuple[int, int]],
    share: float,
    rng: np.random.Generator,
) -> np.ndarray[Any, Any]:
    """The owner of each row in insertion order: users interleaved, as in real traffic."""
    ids = [np.repeat(np.arange(1, len(counts) + 1), counts)]
    ids += [np.full(round(rows * share), uid) for uid, rows in specials]
    owners = np.concatenate(ids)
    rng.shuffle(owners)
    return owners


def _sequence_in_owner(owners: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """For each row, how many rows of the same owner precede it (0, 1, 2, ...)."""
    order = np.argsort(owners, kind="stable")
    sorted_owners = owners[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_owners)) + 1]
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(owners)]))
    sequence = np.empty(len(owners), dtype=np.int64)
    sequence[order] = np.arange(len(owners)) - run_start
    return sequence


async def fill(dsn: str, spec: FillSpec) -> dict[str, float]:
    """Generate the data set; returns how long each phase took (seconds)."""
    rng = np.random.default_rng(spec.seed)
    centroids = unit(rng, TOPICS, DIM)
    texts = _sentences(rng, 5000, 4, 30)
    summaries = [" ".join(texts[i : i + 8]) for i in range(0, 800, 8)]
    timings: dict[str, float] = {}
    conn = await bulk_connection(dsn)
    try:
        with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
            await conn.execute("SET session_replication_role = replica")  # no FK triggers
        await conn.execute("SET synchronous_commit = off")
        await conn.execute("SET maintenance_work_mem = '3GB'")
        await conn.execute("SET max_parallel_maintenance_workers = 2")
        indexes = await conn.fetch(
            "SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS ddl"
            " FROM pg_index i WHERE i.indrelid IN ('messages'::regclass, 'facts'::regclass)"
            " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)"
        )
        for index in indexes:
            await conn.execute(f"DROP INDEX {index['name']}")

        start = time.perf_counter()
        message_counts = _skewed_counts(rng, spec.users, spec.messages)
        fact_counts = _skewed_counts(rng, spec.users, spec.facts)
        specials = spec.special_rows()
        special_messages = {uid: round(rows * (1 - FACT_SHARE)) for uid, rows in specials}
        total_users = spec.users + len(specials)
        await _fill_users(conn, rng, total_users, message_counts, special_messages, summaries)
        timings["users"] = elapsed_since(start)

        start = time.perf_counter()
        owners = _owners(message_counts, specials, 1 - FACT_SHARE, rng)
        await _fill_messages(conn, rng, owners, centroids, texts)
        timings["messages"] = elapsed_since(start)

        start = time.perf_counter()
        owners = _owners(fact_counts, specials, FACT_SHARE, rng)
        await _fill_facts(conn, rng, owners, centroids, texts)
        timings["facts"] = elapsed_since(start)

        for index in indexes:
            start = time.perf_counter()
            await conn.execute(index["ddl"])
            timings[f"index {index['name']}"] = elapsed_since(start)
        for table in ("users", "messages", "facts"):  # ids were given: move the sequences on
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id))"
                f" FROM {table} HAVING max(id) IS NOT NULL"
            )
        start = time.perf_counter()
        await conn.execute("VACUUM (ANALYZE)")
        with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CHECKPOINT")
        timings["vacuum analyze"] = elapsed_since(start)
        await conn.execute(
            "UPDATE users SET settings = jsonb_build_object($2::text, $3::jsonb) WHERE id = $1",
            spec.heavy_id,
            MARKER,
            json.dumps(asdict(spec)),
        )
    finally:
        await conn.close()
    return timings


async def _fill_users(
    conn: asyncpg.Connection[Any],
    rng: np.random.Generator,
    total: int,
    message_counts: np.ndarray[Any, Any],
    special_messages: dict[int, int],
    summaries: list[str],
) -> None:
    counts = np.concatenate([message_counts, np.zeros(total - len(message_counts), np.int64)])
    for uid, n in special_messages.items():
        counts[uid - 1] = n
    ids = range(1, total + 1)
    await conn.copy_records_to_table(
        "users",
        records=((uid, f"User {uid}", "en") for uid in ids),
        columns=["id", "display_name", "locale"],
    )
    discord = rng.random(total) < 0.1
    await conn.copy_records_to_table(
        "identities",
        records=[
            *(("telegram", str(uid), uid, f"user{uid}", str(uid)) for uid in ids),
            *(
                ("discord", str(10**9 + uid), uid, f"d{uid}", None)
                for uid in ids
                if discord[uid - 1]
            ),
        ],
        columns=["platform", "platform_user_id", "user_id", "username", "private_chat_id"],
    )
    now = datetime.now(UTC)
    await conn.copy_records_to_table(
        "conversations",
        records=(
            (
                uid,
                summaries[uid % len(summaries)] if counts[uid - 1] else "",
                int(counts[uid - 1] > 0),
                int(counts[uid - 1]),
                now if counts[uid - 1] else None,
            )
            for uid in ids
        ),
        columns=["user_id", "summary", "summary_version", "message_count", "last_activity_at"],
    )
    await conn.copy_records_to_table(
        "conversation_context",
        records=((uid, "friendly, short answers") for uid in ids),
        columns=["user_id", "communication_style"],
    )


async def _fill_messages(
    conn: asyncpg.Connection[Any],
    rng: np.random.Generator,
    owners: np.ndarray[Any, Any],
    centroids: Vectors,
    texts: list[str],
) -> None:
    sequence = _sequence_in_owner(owners)
    start = datetime.now(UTC) - timedelta(days=365)
    step = timedelta(days=365) / max(len(owners), 1)
    snapshot = json.dumps({"recent": 20, "facts": 12, "recalled": 5})
    columns = [
        "id",
        "user_id",
        "role",
        "content",
        "platform",
        "chat_id",
        "platform_message_id",
        "status",
        "context_snapshot",
        "tokens_in",
        "tokens_out",
        "model",
        "embedding",
        "created_at",
    ]
    for lo in range(0, len(owners), BATCH):
        hi = min(lo + BATCH, len(owners))
        vectors = halfvec_binary(clustered(rng, hi - lo, centroids))
        picks = rng.integers(0, len(texts), hi - lo)
        records = []
        for j in range(hi - lo):
            row = lo + j
            uid = int(owners[row])
            seq = int(sequence[row])
            user_turn = seq % 2 == 0
            records.append(
                (
                    row + 1,
                    uid,
                    "user" if user_turn else "assistant",
                    texts[picks[j]],
                    "telegram",
                    str(uid),
                    str(seq) if user_turn else None,
                    "answered" if user_turn else None,
                    None if user_turn else snapshot,
                    None if user_turn else 900,
                    None if user_turn else 60,
                    None if user_turn else "gpt-4o-mini",
                    vectors[j],
                    start + step * row,
                )
            )
        await conn.copy_records_to_table("messages", records=records, columns=columns)


async def _fill_facts(
    conn: asyncpg.Connection[Any],
    rng: np.random.Generator,
    owners: np.ndarray[Any, Any],
    centroids: Vectors,
    texts: list[str],
) -> None:
    now = datetime.now(UTC)
    categories = ["general", "preference", "person", "work", "health"]
    columns = [
        "id",
        "user_id",
        "content",
        "category",
        "importance",
        "confidence",
        "is_private",
        "embedding",
        "invalid_at",
    ]
    for lo in range(0, len(owners), BATCH):
        hi = min(lo + BATCH, len(owners))
        n = hi - lo
        vectors = halfvec_binary(clustered(rng, n, centroids))
        picks = rng.integers(0, len(texts), n)
        importance = rng.integers(1, 11, n)
        private = rng.random(n) < 0.1
        invalid = rng.random(n) < 0.1
        records = [
            (
                lo + j + 1,
                int(owners[lo + j]),
                texts[picks[j]],
                categories[picks[j] % 5],
                int(importance[j]),
                0.9,
                bool(private[j]),
                vectors[j],
                now if invalid[j] else None,
            )
            for j in range(n)
        ]
        await conn.copy_records_to_table("facts", records=records, columns=columns)


async def _ensure_filled(dsn: str, spec: FillSpec, *, embedded: bool) -> dict[str, float] | None:
    """Fill the database unless it holds this very fill already; the fill's timings."""
    conn = await asyncpg.connect(dsn)
    try:
        marker = await conn.fetchval(
            "SELECT settings -> $2::text FROM users WHERE id = $1", spec.heavy_id, MARKER
        )
        if marker is not None and json.loads(marker) == json.loads(json.dumps(asdict(spec))):
            return None
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM users)"):
            if not embedded:
                raise SystemExit("the database given by --dsn holds other data: use an empty one")
            print("the data folder holds another fill: recreating the database")
            name = await conn.fetchval("SELECT current_database()")
            await conn.close()
            admin = await asyncpg.connect(dsn.rsplit("/", 1)[0] + "/postgres")
            try:
                await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
                await admin.execute(f'CREATE DATABASE "{name}"')
            finally:
                await admin.close()
            await prepare(dsn)
    finally:
        if not conn.is_closed():
            await conn.close()
    print(f"filling: {spec}")
    start = time.perf_counter()
    timings = await fill(dsn, spec)
    timings["total"] = elapsed_since(start)
    print(f"filled in {timings['total']} s: {timings}")
    return timings


# --- measurements -----------------------------------------------------------------------


async def _remove_bench_messages(db: Database) -> None:
    """Undo the store benchmark (so a kept data folder stays as it was filled)."""
    async with db.transaction() as c:
        await c.execute(
            "WITH gone AS (DELETE FROM messages WHERE platform = 'telegram' AND chat_id = $1"
            " RETURNING user_id)"
            " UPDATE conversations c SET message_count = c.message_count - g.n"
            " FROM (SELECT user_id, count(*) AS n FROM gone GROUP BY user_id) g"
            " WHERE c.user_id = g.user_id",
            BENCH_CHAT,
        )


async def _active_users(
    db: Database, spec: FillSpec
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Ordinary users with messages, and the chance each one is the next to write
    (proportional to how much they wrote so far)."""
    async with db.connection() as c:
        rows = await c.fetch(
            "SELECT user_id, message_count FROM conversations"
            " WHERE user_id <= $1 AND message_count > 0",
            spec.users,
        )
    ids = np.array([r["user_id"] for r in rows], dtype=np.int64)
    counts = np.array([r["message_count"] for r in rows], dtype=np.float64)
    return ids, counts / counts.sum()


async def measure_turn(
    db: Database,
    users: np.ndarray[Any, Any],
    rng: np.random.Generator,
    centroids: Vectors,
    samples: int,
    warmup: int,
) -> dict[str, Stats]:
    """Store a user message, then load the context of the reply (as one turn does)."""
    messages, load_context = MessageRepository(db), ContextLoad(db)
    vectors = clustered(rng, samples + warmup, centroids)
    run = time.time_ns()
    store, context, turn = Timer(), Timer(), Timer()
    for i, user_id in enumerate(users[: samples + warmup].tolist()):
        t0 = time.perf_counter()
        await messages.add_user_message(
            user_id,
            "What did I tell you about my sister's wedding?",
            platform=Platform.TELEGRAM,
            chat_id=BENCH_CHAT,
            platform_message_id=f"{run}-{i}",
            embedding=vectors[i],
        )
        t1 = time.perf_counter()
        await load_context(user_id)
        t2 = time.perf_counter()
        if i >= warmup:
            store.add((t1 - t0) * 1000)
            context.add((t2 - t1) * 1000)
            turn.add((t2 - t0) * 1000)
    return {"store": store.stats(), "context": context.stats(), "turn": turn.stats()}


def _hit_keys(hits: list[Any]) -> set[tuple[str, int]]:
    return {(h.source.value, h.id) for h in hits}


async def recall_at_k(
    recall: RecallRepository, user_id: int, queries: Vectors, k: int = 10
) -> float:
    """Mean share of the exact top-k that the HNSW plan finds."""
    found = 0
    for query in queries:
        approx = await recall.nearest(user_id, query, k, approximate=True)
        exact = await recall.nearest(user_id, query, k, approximate=False)
        found += len(_hit_keys(approx) & _hit_keys(exact))
        expected = len(exact)
        if expected < k:  # a tiny user: count against what exists
            found += k - expected
    return round(found / (k * len(queries)), 4)


async def time_recall(
    recall: RecallRepository,
    user_ids: list[int],
    queries: Vectors,
    *,
    warmup: int,
    approximate: bool | None = None,
) -> Stats:
    async def one(i: int) -> object:
        return await recall.nearest(
            user_ids[i % len(user_ids)], queries[i % len(queries)], 10, approximate=approximate
        )

    return await measure(one, len(queries) - warmup, warmup=warmup)


def _indexes_used(plan: str) -> list[str]:
    return sorted(set(re.findall(r"(?:Index Scan using|Index Scan on) (\w+)", plan)))


@dataclass(frozen=True, slots=True)
class Options:
    spec: FillSpec
    samples: int
    warmup: int
    switch_samples: int
    recall_queries: int
    exact_max_rows: int


async def measure_all(dsn: str, opts: Options) -> dict[str, Any]:
    spec = opts.spec
    rng = np.random.default_rng(spec.seed + 1)
    centroids = unit(np.random.default_rng(spec.seed), TOPICS, DIM)  # the fill's topics
    pool = await create_pool(dsn, min_size=2, max_size=4)
    try:
        db = Database(pool)
        await _remove_bench_messages(db)
        # As the service's scheduler would have: the largest users get their own indexes.
        user_indexes = UserIndexJob(db, dimensions=DIM, min_messages=opts.exact_max_rows)
        print(f"user_indexes job: {(await user_indexes.run()).counts}")
        recall = RecallRepository(db, dimensions=DIM)
        ids, weights = await _active_users(db, spec)
        n = opts.samples + opts.warmup
        chosen = rng.choice(ids, size=n, p=weights)
        results: dict[str, Any] = {}

        print("measuring: store + context")
        turn = await measure_turn(db, chosen, rng, centroids, opts.samples, opts.warmup)
        await _remove_bench_messages(db)
        results.update({k: v.as_dict() for k, v in turn.items()})
        print(f"  {results['store']}\n  {results['context']}")

        print("measuring: recall")
        queries = clustered(rng, n, centroids)
        results["recall_users"] = (
            await time_recall(recall, chosen.tolist(), queries, warmup=opts.warmup)
        ).as_dict()
        results["recall_heavy"] = (
            await time_recall(recall, [spec.heavy_id], queries, warmup=opts.warmup)
        ).as_dict()
        results["recall_heavy_exact"] = (
            await time_recall(
                recall,
                [spec.heavy_id],
                queries[: opts.switch_samples + opts.warmup],
                warmup=opts.warmup,
                approximate=False,
            )
        ).as_dict()
        print(f"  users {results['recall_users']}\n  heavy {results['recall_heavy']}")
        heavy_queries = clustered(rng, opts.recall_queries, centroids)
        results["recall_at_10_heavy"] = await recall_at_k(recall, spec.heavy_id, heavy_queries)
        results["plans"] = {
            "heavy_hnsw": _indexes_used(await recall.explain(spec.heavy_id, queries[0], 10)),
            "user_exact": _indexes_used(
                await recall.explain(int(chosen[0]), queries[0], 10, approximate=False)
            ),
        }

        print("measuring: exact/HNSW switch-over")
        switch = []
        for user_id, rows in spec.special_rows()[1:] + spec.special_rows()[:1]:
            await UserIndexRepository(db, dimensions=DIM).create(user_id)
            q = clustered(rng, opts.switch_samples + opts.warmup, centroids)
            exact = await time_recall(recall, [user_id], q, warmup=opts.warmup, approximate=False)
            hnsw = await time_recall(recall, [user_id], q, warmup=opts.warmup, approximate=True)
            print(f"  {rows} rows: exact {exact}\n  {rows} rows: hnsw {hnsw}")
            switch.append(
                {
                    "user_rows": rows,
                    "messages": round(rows * (1 - FACT_SHARE)),
                    "exact": exact.as_dict(),
                    "hnsw": hnsw.as_dict(),
                    "hnsw_recall_at_10": await recall_at_k(recall, user_id, q[:50]),
                }
            )
        results["switch_over"] = switch
        await user_indexes.run()  # drops the probe users' indexes below the threshold
        return results
    finally:
        await pool.close()


def _bars(results: dict[str, Any]) -> dict[str, bool]:
    return {
        "recall_heavy_p99_le_10ms": results["recall_heavy"]["p99"] <= 10.0,
        "recall_at_10_heavy_ge_0.95": results["recall_at_10_heavy"] >= 0.95,
        "store_p99_le_10ms": results["store"]["p99"] <= 10.0,
        "context_p99_le_10ms": results["context"]["p99"] <= 10.0,
    }


def _recommend_exact_max_rows(switch: list[dict[str, Any]]) -> int | None:
    """The largest measured message count whose exact p99 still beats the HNSW p99
    (or whose HNSW recall is too low to use)."""
    best = None
    for row in sorted(switch, key=lambda r: r["user_rows"]):
        if row["exact"]["p99"] <= row["hnsw"]["p99"] or row["hnsw_recall_at_10"] < 0.95:
            best = row["messages"]
        else:
            break
    return best


def report(results: dict[str, Any]) -> None:
    rows = [
        [name, s["n"], s["mean"], s["p50"], s["p99"], s["max"]]
        for name, s in (
            ("store user message", results["store"]),
            ("load context (20 + summary + 30 facts)", results["context"]),
            ("turn (store + context)", results["turn"]),
            ("recall top-10, users (auto plan)", results["recall_users"]),
            ("recall top-10, heavy user (auto plan)", results["recall_heavy"]),
            ("recall top-10, heavy user, exact", results["recall_heavy_exact"]),
        )
    ]
    print_table("Latency (ms)", ["operation", "n", "mean", "p50", "p99", "max"], rows)
    print(f"\nrecall@10 of the heavy user's HNSW plan vs exact: {results['recall_at_10_heavy']}")
    print(f"plans: {results['plans']}")
    print_table(
        "Exact vs HNSW top-10 by user size (ms)",
        ["rows", "messages", "exact p50", "exact p99", "hnsw p50", "hnsw p99", "hnsw recall@10"],
        [
            [
                r["user_rows"],
                r["messages"],
                r["exact"]["p50"],
                r["exact"]["p99"],
                r["hnsw"]["p50"],
                r["hnsw"]["p99"],
                r["hnsw_recall_at_10"],
            ]
            for r in results["switch_over"]
        ],
    )
    print_table("Bars", ["bar", "met"], [[k, v] for k, v in results["bars"].items()])
    print(f"\nrecommended exact_max_rows (messages): {results['recommended_exact_max_rows']}")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.foundation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--facts", type=int, default=100_000)
    parser.add_argument("--heavy-rows", type=int, default=50_000)
    parser.add_argument(
        "--probe-sizes",
        default="1000,2000,5000,10000,20000",
        help="rows of the users timed for the exact/HNSW switch-over",
    )
    parser.add_argument("--samples", type=int, default=500, help="timed calls per metric")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--switch-samples", type=int, default=100)
    parser.add_argument("--recall-queries", type=int, default=100)
    parser.add_argument("--exact-max-rows", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--dsn", help="an empty migrated-or-not database (default: embedded)")
    parser.add_argument(
        "--data-dir", type=Path, help="keep the embedded server's data here and reuse the fill"
    )
    parser.add_argument(
        "--shared-buffers",
        help="shared_buffers of the embedded server, e.g. 4GB (default: as configured)",
    )
    parser.add_argument(
        "--no-prewarm",
        dest="prewarm",
        action="store_false",
        help="skip loading the tables into shared buffers (pg_prewarm) before timing",
    )
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "foundation.json")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    spec = FillSpec(
        users=args.users,
        messages=args.messages,
        facts=args.facts,
        heavy_rows=args.heavy_rows,
        probe_sizes=tuple(int(s) for s in args.probe_sizes.split(",") if s),
        seed=args.seed,
    )
    opts = Options(
        spec,
        args.samples,
        args.warmup,
        args.switch_samples,
        args.recall_queries,
        args.exact_max_rows,
    )
    settings = {"shared_buffers": args.shared_buffers} if args.shared_buffers else None
    async with database(args.dsn, args.data_dir, server_settings=settings) as dsn:
        timings = await _ensure_filled(dsn, spec, embedded=args.dsn is None)
        if args.prewarm:
            tables = ["users", "identities", "conversations", "facts", "messages"]
            print(f"prewarmed {await prewarm(dsn, tables)} blocks")
        conn = await asyncpg.connect(dsn)
        try:
            machine = await server_info(conn)
        finally:
            await conn.close()
        results = await measure_all(dsn, opts)
    results["bars"] = _bars(results)
    results["recommended_exact_max_rows"] = _recommend_exact_max_rows(results["switch_over"])
    return {
        "benchmark": "foundation",
        "command": "python -m benchmarks.foundation " + " ".join(argv),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": redact(dsn) if args.dsn else "embedded",
        "machine": machine,
        "fill": {**asdict(spec), "seconds": timings},
        "options": {k: v for k, v in asdict(opts).items() if k != "spec"},
        "results": results,
    }


def main(argv: list[str] | None = None) -> None:
    run_benchmark(argv, _parse, run, report)


if __name__ == "__main__":
    main()
