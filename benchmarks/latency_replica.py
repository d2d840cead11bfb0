"""One engine process of the latency benchmark, with its share of the crowd.

    python -m benchmarks.latency_replica   (driven by benchmarks.latency [--replicas N])

Reads its work as one JSON line on stdin (`benchmarks.latency.ReplicaWork`), builds the
engine as the benchmark does on a pool of its own, warms up, prints `ready`, waits for
`go` and the common start moment (wall clock), runs its people and `/help` senders,
and prints what it measured, raw, as one JSON line (`benchmarks.latency.replica`).
"""

from __future__ import annotations

import uvloop

from benchmarks.common import replica_order
from benchmarks.latency import ReplicaWork, replica


async def main() -> None:
    await replica(ReplicaWork.from_order(await replica_order()))


if __name__ == "__main__":
    uvloop.run(main())  # the service's event loop (bot/cli.py)
