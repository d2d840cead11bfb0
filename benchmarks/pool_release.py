"""Giving pooled connections back when every connection is taken: asyncpg's own checkout
against `Database.connection`.

Many tasks share a small pool on one event loop, the cores busy, as in a crowd of turns:
each task sends messages one after another, a message being a few statements, each on a
connection taken from the pool and given back, with a little Python after each (the
work a turn does between its statements) and a short sleep for the model. Measured per
message (from its first checkout until its last connection is given back and the work
after it done): p50, p99, max, and messages per second, for

- `Pool.acquire`: asyncpg's checkout, given back by `Pool.release` in a task of its own;
- `Database.connection`: the repositories' checkout, given back in the caller's task,
  which then yields once (`core.storage.database._release_in_this_task`).

After an untimed round of each, the two alternate, `--rounds` times each, taking turns
at going first, on one embedded server (or `--dsn`).

    .venv/bin/python -m benchmarks.pool_release            # about a minute on 2 cores
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from benchmarks.common import (
    RESULTS_DIR,
    Stats,
    database,
    print_table,
    redact,
    run_benchmark,
    server_info,
)
from core.storage.database import Database, Pool, create_pool

Checkout = Callable[[Pool], AbstractAsyncContextManager[Any]]

CHECKOUTS: dict[str, Checkout] = {
    "Pool.acquire": lambda pool: pool.acquire(),
    "Database.connection": lambda pool: Database(pool).connection(),
}


def _busy(seconds: float) -> None:
    """Python work between two statements, holding the event loop as a turn does."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def _round(pool: Pool, checkout: Checkout, args: argparse.Namespace) -> dict[str, Any]:
    samples: list[float] = []

    async def task() -> None:
        for _ in range(args.messages):
            started = time.perf_counter()
            for _ in range(args.statements):
                async with checkout(pool) as conn:
                    await conn.fetchval("SELECT 1")
                _busy(args.work_ms / 1000)
            samples.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(args.sleep_ms / 1000)

    started = time.perf_counter()
    await asyncio.gather(*(task() for _ in range(args.tasks)))
    seconds = time.perf_counter() - started
    return Stats.of(samples).as_dict() | {"messages_per_second": round(len(samples) / seconds)}


async def run(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    async with database(args.dsn, None) as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            machine = await server_info(conn)
        finally:
            await conn.close()
        pool = await create_pool(dsn, min_size=args.pool_size, max_size=args.pool_size)
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in CHECKOUTS}
        names = list(CHECKOUTS)
        try:
            for name in names:  # warm-up
                await _round(pool, CHECKOUTS[name], args)
            for i in range(args.rounds):
                for name in names if i % 2 == 0 else names[::-1]:
                    rounds[name].append(await _round(pool, CHECKOUTS[name], args))
        finally:
            await pool.close()
    return {
        "benchmark": "pool_release",
        "command": "python -m benchmarks.pool_release " + " ".join(argv),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": redact(args.dsn) if args.dsn else "embedded",
        "machine": machine,
        "load": {
            k: getattr(args, k)
            for k in ("tasks", "pool_size", "messages", "statements", "work_ms", "sleep_ms")
        },
        "results": {"rounds": rounds},
    }


def report(results: dict[str, Any]) -> None:
    rows = [
        [name, i + 1, r["p50"], r["p99"], r["max"], r["messages_per_second"]]
        for name, rounds in results["rounds"].items()
        for i, r in enumerate(rounds)
    ]
    print_table(
        "Per message, every connection taken",
        ["checkout", "round", "p50 ms", "p99 ms", "max ms", "msg/s"],
        rows,
    )


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pool_release", description=__doc__)
    parser.add_argument("--tasks", type=int, default=50, help="tasks sending messages")
    parser.add_argument("--pool-size", type=int, default=20)
    parser.add_argument("--messages", type=int, default=40, help="messages per task")
    parser.add_argument("--statements", type=int, default=4, help="statements per message")
    parser.add_argument("--work-ms", type=float, default=0.3, help="Python after a statement")
    parser.add_argument("--sleep-ms", type=float, default=2.0, help="the model, per message")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dsn", help="an external database (default: embedded, scratch)")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "pool_release.json")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    run_benchmark(argv, _parse, run, report)


if __name__ == "__main__":
    main()
