"""One engine replica of the pipeline benchmark's crowd, in a process of its own.

    python -m benchmarks.pipeline_replica   (driven by benchmarks.pipeline --replicas N)

Reads its work as one JSON line on stdin (`ReplicaWork` and its share of the users),
builds the engine as the benchmark does on a pool of its own, warms up, prints `ready`,
waits for `go`, runs its users' messages, and prints the phase as one JSON line: wall
and LLM times, stage timings, its own CPU seconds, and how many messages failed.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import fields

import uvloop

from benchmarks.common import replica_order, replica_ready, replica_result
from benchmarks.pipeline import ReplicaWork, bench_client, make_bench, people_writing
from core.storage.database import create_pool
from core.tokens import TokenCounter


async def replica() -> None:
    order = await replica_order()
    work = ReplicaWork(**{f.name: order[f.name] for f in fields(ReplicaWork)})
    users: list[int] = order["users"]
    pool = await create_pool(work.dsn, min_size=work.pool_size, max_size=work.pool_size)
    try:
        async with bench_client(work.fake_url) as llm:
            tokens = await asyncio.to_thread(TokenCounter.load)
            bench = make_bench(pool, llm, tokens, work.pool_size, work.seed)
            await people_writing(bench, users, work.warm)
            await replica_ready()
            failed_before, cpu = bench.failures, time.process_time()
            phase = await people_writing(bench, users, work.per_user)
            replica_result(
                {
                    "wall_ms": phase.wall_ms,
                    "llm_ms": phase.llm_ms,
                    "stages": phase.stages,
                    "python_cpu_s": time.process_time() - cpu,
                    "failures": bench.failures - failed_before,
                }
            )
    finally:
        await pool.close()


if __name__ == "__main__":
    uvloop.run(replica())
