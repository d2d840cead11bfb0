"""Archive benchmark: how fast the archive job moves messages, what it does to a live
turn meanwhile, and how many users per second the memory job gets through.

    .venv/bin/python -m benchmarks.archive [--users N --messages N --embeddings all|none
        --batch-size N --keep-recent N --samples N --memory-users N --dsn DSN
        --data-dir DIR --shared-buffers SIZE --max-wal-size SIZE --json PATH]

1. fill (COPY, secondary indexes built after the load): `--users` users sharing
   `--messages` messages, all 60 days old and all read by the memory job, with
   embeddings (`all`, 384 dimensions, clustered) or without (`none`);
2. idle: `--samples` turns, one at a time: store a user message (with its embedding),
   then load a prompt's context (recent window, conversation, facts), as in
   benchmarks/foundation.py;
3. archive: `ArchiveJob` with `--keep-recent` and `--batch-size`, while the same turn
   loop runs next to it: the job's messages/s, and the turn p99 while it runs;
4. memory: `--memory-users` users get 20 unread messages each; `MemoryJob` (pool,
   concurrency 4) against the fake OpenAI server answering at once, with the local
   embedder: users/s.

The embedded server runs with the service's settings (`bot.database.
embedded_server_settings`: cache size and WAL size; `--shared-buffers`, `--max-wal-size`
override them). The embeddings matter less since migrations 0004 and 0007 (no shared
HNSW index on the archive nor on the live table; docs/jobs.md).
Results: a table on stdout and `benchmarks/results/archive.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
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
    bulk_connection,
    clustered,
    database,
    elapsed_since,
    halfvec_binary,
    print_table,
    redact,
    server_info,
    unit,
    write_json,
)
from bot.database import embedded_server_settings
from config.settings import ArchiveSettings, DatabaseSettings, MemorySettings, Settings
from core.embedding.local import LocalEmbedder
from core.jobs.archive import ArchiveJob
from core.jobs.memory import MemoryJob
from core.llm.client import ChatClient
from core.models import Platform
from core.services import Services
from core.storage.database import Database, create_pool
from core.storage.messages import MessageRepository
from core.tokens import TokenCounter
from fakes.openai_server import FakeOpenAI

DIM = 384
TOPICS = 200
COPY_BATCH = 50_000
BENCH_CHAT = "bench-archive"
UNREAD_PER_USER = 20


async def fill(dsn: str, users: int, messages: int, embeddings: bool, seed: int) -> float:
    """A fresh data set; seconds it took."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    centroids = unit(rng, TOPICS, DIM)
    conn = await bulk_connection(dsn)
    try:
        await conn.execute("TRUNCATE users, job_runs, reembed_progress RESTART IDENTITY CASCADE")
        with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
            await conn.execute("SET session_replication_role = replica")  # no FK triggers
        await conn.execute("SET synchronous_commit = off")
        await conn.execute("SET maintenance_work_mem = '3GB'")  # HNSW build in memory
        indexes = await conn.fetch(
            "SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS ddl"
            " FROM pg_index i WHERE i.indrelid = 'messages'::regclass"
            " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)"
        )
        for index in indexes:
            await conn.execute(f"DROP INDEX {index['name']}")
        ids = range(1, users + 1)
        await conn.copy_records_to_table(
            "users", records=((u, f"User {u}") for u in ids), columns=["id", "display_name"]
        )
        await conn.copy_records_to_table(
            "identities",
            records=(("telegram", str(u), u) for u in ids),
            columns=["platform", "platform_user_id", "user_id"],
        )
        await conn.copy_records_to_table(
            "conversations", records=((u,) for u in ids), columns=["user_id"]
        )
        await conn.copy_records_to_table(
            "conversation_context", records=((u,) for u in ids), columns=["user_id"]
        )
        owners = rng.integers(1, users + 1, messages)
        old = datetime.now(UTC) - timedelta(days=60)
        snapshot = json.dumps({"recent": 20, "facts": 12})
        columns = ["id", "user_id", "role", "content", "platform", "chat_id"]
        columns += ["platform_message_id", "status", "context_snapshot", "embedding", "created_at"]
        for lo in range(0, messages, COPY_BATCH):
            hi = min(lo + COPY_BATCH, messages)
            vectors = (
                halfvec_binary(clustered(rng, hi - lo, centroids))
                if embeddings
                else [None] * (hi - lo)
            )
            records = []
            for j in range(hi - lo):
                row = lo + j
                user_turn = row % 2 == 0
                records.append(
                    (
                        row + 1,
                        int(owners[row]),
                        "user" if user_turn else "assistant",
                        f"Message {row} about topic {row % 97}, with some words to index.",
                        "telegram",
                        str(owners[row]),
                        str(row) if user_turn else None,
                        "answered" if user_turn else None,
                        None if user_turn else snapshot,
                        vectors[j],
                        old + timedelta(seconds=row),
                    )
                )
            await conn.copy_records_to_table("messages", records=records, columns=columns)
        for index in indexes:
            await conn.execute(index["ddl"])
        await conn.execute(
            "SELECT setval(pg_get_serial_sequence('messages', 'id'), max(id)) FROM messages"
        )
        await conn.execute(
            "SELECT setval(pg_get_serial_sequence('users', 'id'), max(id)) FROM users"
        )
        await conn.execute(
            "UPDATE conversation_context cc SET last_read_message_id = m.max_id"
            " FROM (SELECT user_id, max(id) AS max_id FROM messages GROUP BY user_id) m"
            " WHERE m.user_id = cc.user_id"
        )
        await conn.execute(
            "UPDATE conversations c SET message_count = m.n"
            " FROM (SELECT user_id, count(*) AS n FROM messages GROUP BY user_id) m"
            " WHERE m.user_id = c.user_id"
        )
        await conn.execute("VACUUM (ANALYZE)")
        with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CHECKPOINT")
    finally:
        await conn.close()
    return elapsed_since(started)


async def turn_loop(
    db: Database, users: int, samples: int | None, stop: asyncio.Event | None, seed: int
) -> Stats:
    """Store-and-load turns, one at a time: `samples` of them, or until `stop` is set."""
    rng = np.random.default_rng(seed)
    centroids = unit(np.random.default_rng(seed + 1), TOPICS, DIM)
    messages, load_context = MessageRepository(db), ContextLoad(db)
    timer = Timer()
    run = time.time_ns()
    i = 0
    while (samples is not None and i < samples) or (stop is not None and not stop.is_set()):
        user_id = int(rng.integers(1, users + 1))
        vector = clustered(rng, 1, centroids)[0]
        async with timer.sample():
            await messages.add_user_message(
                user_id,
                "What did I tell you about my sister's wedding?",
                platform=Platform.TELEGRAM,
                chat_id=BENCH_CHAT,
                platform_message_id=f"{run}-{i}",
                embedding=vector,
            )
            await load_context(user_id)
        i += 1
    return timer.stats()


async def archive_while_chatting(
    db: Database, opts: argparse.Namespace
) -> tuple[dict[str, Any], Stats]:
    job = ArchiveJob(
        db,
        ArchiveSettings(
            after_days=30, keep_recent_messages=opts.keep_recent, batch_size=opts.batch_size
        ),
    )
    stop = asyncio.Event()
    turns = asyncio.create_task(turn_loop(db, opts.users, None, stop, opts.seed + 7))
    started = time.perf_counter()
    try:
        outcome = await job.run()
    finally:
        seconds = time.perf_counter() - started
        stop.set()
    during = await turns
    moved = outcome.counts["messages"]
    return {
        "messages": moved,
        "users": outcome.counts["users"],
        "batches": outcome.counts["batches"],
        "seconds": round(seconds, 1),
        "messages_per_s": round(moved / seconds) if seconds else 0,
        "errors": outcome.errors[:3],
    }, during


def _instant_memory_model(body: dict[str, Any]) -> str:
    prompt = str(body["messages"][-1]["content"])
    if "New messages:" in prompt:
        return json.dumps(
            {
                "facts": [
                    {
                        "content": f"Mentioned topic {len(prompt) % 50}",
                        "category": "general",
                        "importance": 5,
                        "is_private": False,
                        "confidence": 0.9,
                        "source_message_ids": [],
                    }
                ],
                "summary": "The user talks about topics.",
                "insights": ["likes topics"],
                "communication_style": "short",
                "themes": ["topics"],
            }
        )
    return json.dumps({"decisions": []})


async def memory_throughput(dsn: str, opts: argparse.Namespace) -> dict[str, Any]:
    """Users per second of the memory job when the model answers at once."""
    count = min(opts.memory_users, opts.users)
    pool = await create_pool(dsn, min_size=2, max_size=8)
    try:
        async with pool.acquire() as conn:
            # These users' newest live messages become unread again.
            await conn.execute(
                "UPDATE conversation_context cc SET last_read_message_id = coalesce(("
                " SELECT m.id FROM messages m WHERE m.user_id = cc.user_id"
                " ORDER BY m.id DESC OFFSET $2 LIMIT 1), 0) WHERE cc.user_id <= $1",
                count,
                UNREAD_PER_USER,
            )
        async with (
            FakeOpenAI(embedding_dimensions=DIM, responder=_instant_memory_model) as fake,
            ChatClient(base_url=fake.base_url, api_key=None, model="fake", max_retries=0) as llm,
            LocalEmbedder() as embedder,
        ):
            settings = Settings.model_validate(
                {
                    "llm_model": "fake-model",
                    "llm_max_retries": 0,
                    "memory": MemorySettings(users_per_run=count),
                }
            )
            services = Services(
                settings=settings,
                db=Database(pool),
                embedder=embedder,
                llm=llm,
                tokens=await asyncio.to_thread(TokenCounter.load),
            )
            started = time.perf_counter()
            outcome = await MemoryJob(services, concurrency=4).run()
            seconds = time.perf_counter() - started
    finally:
        await pool.close()
    users = outcome.counts["users"]
    return {
        "users": users,
        "messages": outcome.counts["messages"],
        "seconds": round(seconds, 1),
        "users_per_s": round(users / seconds, 1) if seconds else 0,
        "errors": outcome.errors[:3],
    }


async def main(opts: argparse.Namespace) -> dict[str, Any]:
    # The service's settings of the embedded server, unless overridden.
    server_settings = embedded_server_settings(DatabaseSettings())
    if opts.shared_buffers:
        server_settings["shared_buffers"] = opts.shared_buffers
    if opts.max_wal_size:
        server_settings["max_wal_size"] = opts.max_wal_size
    async with database(opts.dsn, opts.data_dir, server_settings=server_settings) as dsn:
        print(f"filling {opts.messages} messages of {opts.users} users ({opts.embeddings})")
        fill_s = await fill(dsn, opts.users, opts.messages, opts.embeddings == "all", opts.seed)
        print(f"filled in {fill_s} s")
        pool = await create_pool(dsn, min_size=2, max_size=4)
        try:
            db = Database(pool)
            async with pool.acquire() as conn:
                info = await server_info(conn)  # type: ignore[arg-type]
            print("measuring: idle turns")
            idle = await turn_loop(db, opts.users, opts.samples, None, opts.seed + 3)
            print("measuring: archive while chatting")
            archive, during = await archive_while_chatting(db, opts)
        finally:
            await pool.close()
        print("measuring: memory job")
        memory = await memory_throughput(dsn, opts)
    ratio = round(during.p99 / idle.p99, 2) if idle.p99 else None
    return {
        "parameters": {k: str(v) if isinstance(v, Path) else v for k, v in vars(opts).items()}
        | {"dsn": redact(opts.dsn) if opts.dsn else "embedded"},
        "server": info,
        "fill_seconds": fill_s,
        "archive": archive,
        "turn_idle": idle.as_dict(),
        "turn_during_archive": during.as_dict(),
        "turn_p99_ratio": ratio,
        "memory": memory,
        "bars": {
            "archive_messages_per_s >= 20000": archive["messages_per_s"] >= 20_000,
            "turn p99 during archive <= 2x idle": ratio is not None and ratio <= 2.0,
        },
    }


def _report(results: dict[str, Any]) -> None:
    archive, memory = results["archive"], results["memory"]
    idle, during = results["turn_idle"], results["turn_during_archive"]
    print_table(
        "archive job",
        ["messages", "users", "batches", "seconds", "messages/s"],
        [
            [
                archive["messages"],
                archive["users"],
                archive["batches"],
                archive["seconds"],
                archive["messages_per_s"],
            ]
        ],
    )
    print_table(
        "turn (store + context load), ms",
        ["when", "n", "p50", "p99", "max"],
        [
            ["idle", idle["n"], idle["p50"], idle["p99"], idle["max"]],
            ["during archive", during["n"], during["p50"], during["p99"], during["max"]],
        ],
    )
    print_table(
        "memory job (instant model, local embedder)",
        ["users", "messages", "seconds", "users/s"],
        [[memory["users"], memory["messages"], memory["seconds"], memory["users_per_s"]]],
    )
    print_table("bars", ["bar", "met"], [[k, v] for k, v in results["bars"].items()])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--embeddings", choices=["all", "none"], default="all")
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--keep-recent", type=int, default=20)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--memory-users", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dsn", default=None)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--shared-buffers", help="default: the service's")
    parser.add_argument("--max-wal-size", help="default: the service's")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "archive.json")
    return parser


def cli() -> None:
    opts = _parser().parse_args()
    results = asyncio.run(main(opts))
    _report(results)
    write_json(opts.json, results)
    print(f"\nwritten: {opts.json}")


if __name__ == "__main__":
    cli()
