"""Helpers every benchmark shares: a database to run on, engine processes run as
replicas, generated embeddings, timing statistics, and the two outputs (a table on
stdout, a small JSON file).

Benchmarks are scripts, not tests: they time things on a real server and print what
they measured. Nothing here asserts on a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import numpy as np
import uvloop

from bot.database import EmbeddedServer, ensure_database, prepare, tune
from core.storage.database import Database
from core.storage.messages import MessageRepository
from core.storage.turns import ReadLimits, TurnStore

Vectors = np.ndarray[Any, np.dtype[np.float32]]

RESULTS_DIR = Path(__file__).resolve().parent / "results"


# --- the database ---------------------------------------------------------------------


@asynccontextmanager
async def database(
    dsn: str | None, data_dir: Path | None, *, server_settings: dict[str, str] | None = None
) -> AsyncIterator[str]:
    """A migrated database for the block: `dsn` as given, else an embedded server.

    The embedded server lives in `data_dir` (kept, so a filled database can be reused
    by the next run) or in a temporary folder deleted at the end. `server_settings`
    (e.g. `shared_buffers`) are written with ALTER SYSTEM to the embedded server, which
    is restarted when one of them needs it; they are ignored with `dsn`.
    """
    if dsn is not None:
        await prepare(dsn)
        yield dsn
        return
    with tempfile.TemporaryDirectory(prefix="onethread-bench-") as tmp:
        keep = data_dir is not None
        pgdata = data_dir / "postgres" if data_dir is not None else Path(tmp) / "postgres"
        server = EmbeddedServer(pgdata, delete_on_stop=not keep)
        embedded_dsn = await asyncio.to_thread(server.start)
        try:
            if server_settings and await tune(server.admin_dsn, server_settings):
                await asyncio.to_thread(server.stop)
                embedded_dsn = await asyncio.to_thread(server.start)
            await ensure_database(server.admin_dsn)
            await prepare(embedded_dsn)
            yield embedded_dsn
        finally:
            await asyncio.to_thread(server.stop)


def redact(dsn: str) -> str:
    """A DSN without its password, fit for a report."""
    parts = urlsplit(dsn)
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


async def bulk_connection(dsn: str) -> asyncpg.Connection[asyncpg.Record]:
    """A connection for COPY that takes embeddings pre-encoded (`halfvec_binary`).

    Encoding a million vectors through the pgvector codec one object at a time costs
    more than the whole COPY; numpy encodes them in one go.
    """
    conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(dsn)
    await conn.set_type_codec(
        "halfvec", encoder=bytes, decoder=bytes, format="binary", schema="public"
    )
    return conn


def halfvec_binary(vectors: Vectors) -> list[bytes]:
    """Vectors in the binary wire format of pgvector's `halfvec` (for `bulk_connection`)."""
    rows = np.ascontiguousarray(vectors.astype(">f2"))
    header = struct.pack(">HH", rows.shape[1], 0)
    return [header + row.tobytes() for row in rows]


async def prewarm(dsn: str, tables: Sequence[str]) -> int:
    """Load tables and their indexes into shared buffers (pg_prewarm): timings then show
    a server in its steady state rather than one just restarted. Returns the blocks
    read, 0 when pg_prewarm is not available."""
    conn = await asyncpg.connect(dsn)
    try:
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        except asyncpg.PostgresError:
            return 0
        blocks = await conn.fetchval(
            "SELECT sum(pg_prewarm(oid)) FROM pg_class WHERE oid IN ("
            "  SELECT t::regclass FROM unnest($1::text[]) AS t"
            "  UNION SELECT indexrelid FROM pg_index WHERE indrelid IN"
            "    (SELECT t::regclass FROM unnest($1::text[]) AS t))",
            list(tables),
        )
        return int(blocks or 0)
    finally:
        await conn.close()


async def server_info(conn: asyncpg.Connection[Any]) -> dict[str, str]:
    """What the numbers were measured on."""
    return {
        "postgresql": str(await conn.fetchval("SHOW server_version")),
        "pgvector": str(
            await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        ),
        "shared_buffers": str(await conn.fetchval("SHOW shared_buffers")),
        "nproc": str(_nproc()),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        # Other work on the machine skews latencies: record how busy it was.
        "load_average_1m": f"{_load_average():.1f}",
    }


def _load_average() -> float:
    import os

    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def _nproc() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


def _cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return platform.processor()
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


# --- replicas: engine processes sharing one database ----------------------------------


class Replicas:
    """Child processes of a benchmark (`replica_processes`), each running an engine with
    its share of the work, as several replicas of the service would.

    The protocol: the parent writes a work order as one JSON line to each child's stdin;
    each child gets ready (builds, warms up) and prints `ready` (`replica_ready`); the
    parent writes `go` to all of them at once (`go`), maybe with a payload on the same
    line; each child prints its result as one JSON line (`replica_result`) and exits.
    """

    def __init__(self, children: Sequence[asyncio.subprocess.Process]) -> None:
        self._children = children

    async def go(self, payload: str = "") -> None:
        """Start them all: `go`, and `payload` after a space when there is one."""
        line = f"go {payload}".strip().encode() + b"\n"
        for child in self._children:
            assert child.stdin is not None
            child.stdin.write(line)
            await child.stdin.drain()

    async def results(self) -> list[dict[str, Any]]:
        """Each child's result, in the order of their work orders."""
        outputs = []
        for child in self._children:
            assert child.stdout is not None
            line = await child.stdout.readline()
            if not line:
                raise RuntimeError("a benchmark replica failed (its error is above)")
            outputs.append(json.loads(line))
        return outputs


@asynccontextmanager
async def replica_processes(
    module: str, orders: Sequence[dict[str, Any]]
) -> AsyncIterator[Replicas]:
    """`python -m module` once per work order, each given its order; the block starts
    when every one of them is ready, and waits for them to exit at its end (they are
    killed if the block fails)."""
    children: list[asyncio.subprocess.Process] = []
    try:
        for order in orders:
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-m", module,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                limit=2**26,  # the result is one long JSON line
            )  # fmt: skip
            children.append(child)
            assert child.stdin is not None
            child.stdin.write(json.dumps(order).encode() + b"\n")
            await child.stdin.drain()
        for child in children:
            assert child.stdout is not None
            if (await child.stdout.readline()).strip() != b"ready":
                raise RuntimeError("a benchmark replica did not start (its error is above)")
        yield Replicas(children)
    except BaseException:
        for child in children:
            if child.returncode is None:
                with suppress(ProcessLookupError):  # it exited meanwhile
                    child.kill()
        raise
    finally:
        for child in children:
            if child.stdin is not None:
                child.stdin.close()
            await child.wait()


async def replica_order() -> dict[str, Any]:
    """In a replica: its work order (`replica_processes`)."""
    order: dict[str, Any] = json.loads(await asyncio.to_thread(sys.stdin.readline))
    return order


async def replica_ready() -> str:
    """In a replica: say `ready`, wait for `go` and return its payload (`Replicas.go`)."""
    print("ready", flush=True)
    line: str = await asyncio.to_thread(sys.stdin.readline)
    if not line.startswith("go"):
        raise RuntimeError(f"a benchmark replica expected go, got {line!r}")
    return line.removeprefix("go").strip()


def replica_result(result: dict[str, Any]) -> None:
    """In a replica: hand the result to the parent, as one JSON line."""
    print(json.dumps(result), flush=True)


# --- embeddings -----------------------------------------------------------------------


def unit(rng: np.random.Generator, n: int, dim: int) -> Vectors:
    """`n` random unit vectors."""
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    normalised: Vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return normalised


def clustered(
    rng: np.random.Generator, n: int, centroids: Vectors, spread: float = 0.03
) -> Vectors:
    """Vectors shaped like real embeddings: topics (`centroids`) with noise around them.

    The same shape as `_clustered` in tests/core/recall/test_vectors.py; share one set
    of centroids between users so that, as with a real model, everybody's messages live
    in the same topics (which is what makes per-user filtering of an HNSW scan hard).
    """
    dim = centroids.shape[1]
    picked = centroids[rng.integers(0, len(centroids), n)]
    vectors = (picked + spread * rng.standard_normal((n, dim))).astype(np.float32)
    normalised: Vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return normalised


# --- timing ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stats:
    """Latency of one operation, in milliseconds."""

    n: int
    mean: float
    p50: float
    p99: float
    max: float

    @classmethod
    def of(cls, samples_ms: Sequence[float]) -> Stats:
        if not samples_ms:
            return cls(0, float("nan"), float("nan"), float("nan"), float("nan"))
        data = np.asarray(samples_ms, dtype=np.float64)
        return cls(
            n=len(data),
            mean=round(float(data.mean()), 3),
            p50=round(float(np.percentile(data, 50)), 3),
            p99=round(float(np.percentile(data, 99)), 3),
            max=round(float(data.max()), 3),
        )

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


class Timer:
    """Collects samples: `async with timer.sample(): ...` or `timer.add(ms)`."""

    def __init__(self) -> None:
        self.samples: list[float] = []

    def add(self, ms: float) -> None:
        self.samples.append(ms)

    @asynccontextmanager
    async def sample(self) -> AsyncIterator[None]:
        start = time.perf_counter()
        yield
        self.samples.append((time.perf_counter() - start) * 1000.0)

    def stats(self) -> Stats:
        return Stats.of(self.samples)


async def measure(
    operation: Callable[[int], Awaitable[object]], samples: int, *, warmup: int
) -> Stats:
    """Run `operation(i)` `warmup` times untimed, then `samples` times timed, one at a time."""
    for i in range(warmup):
        await operation(i)
    timer = Timer()
    for i in range(samples):
        async with timer.sample():
            await operation(warmup + i)
    return timer.stats()


def elapsed_since(start: float) -> float:
    """Seconds since a `time.perf_counter()` reading, rounded for reports."""
    return round(time.perf_counter() - start, 1)


# --- output ---------------------------------------------------------------------------


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain text table; numbers right-aligned."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [
        max(len(str(h)), *(len(r[i]) for r in cells)) if cells else len(str(h))
        for i, h in enumerate(header)
    ]
    print(f"\n{title}")
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row, raw in zip(cells, rows, strict=True):
        print(
            "  ".join(
                c.rjust(w) if isinstance(v, int | float) else c.ljust(w)
                for c, w, v in zip(row, widths, raw, strict=True)
            )
        )


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write results (small: statistics, never raw samples) as indented JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def run_benchmark(
    argv: list[str] | None,
    parse: Callable[[list[str]], argparse.Namespace],
    run: Callable[[argparse.Namespace, list[str]], Coroutine[Any, Any, dict[str, Any]]],
    report: Callable[[dict[str, Any]], None],
) -> None:
    """A benchmark's `main`: parse the arguments, run, print the tables, write the JSON
    (`--json`) with the command line that produced it."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    data: dict[str, Any] = uvloop.run(run(args, argv))  # the service's event loop (bot/cli.py)
    report(data["results"])
    write_json(args.json, data)
    print(f"\nwritten: {args.json}")


class ContextLoad:
    """What a chat turn reads before recall, as `core.storage.turns` reads it for a
    stored message: conversation, memory context, the recent window and the facts, in
    one statement (`TurnStore.resume`), here for the user's newest message."""

    RECENT = 20
    FACTS = 30

    def __init__(self, db: Database) -> None:
        self._messages = MessageRepository(db)
        self._turns = TurnStore(db, holder=uuid.uuid4(), lease_seconds=60)
        self._latest: dict[int, int] = {}

    async def __call__(self, user_id: int) -> None:
        if user_id not in self._latest:
            latest = await self._messages.latest_from_user(user_id)
            assert latest is not None, f"user {user_id} has no message"
            self._latest[user_id] = latest.id
        message_id = self._latest[user_id]
        await self._turns.resume(
            user_id, message_id, ReadLimits(self.RECENT, self.FACTS, shared_chat=False)
        )
        await self._turns.release(user_id, message_id)


@asynccontextmanager
async def fake_llm_child(
    reply: str, *options: str, limit: int = 2**16
) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """`benchmarks.fake_llm REPLY OPTIONS...` in a child process, so that its CPU is not
    counted as the engine's: (its base URL, the process). `limit` bounds a line it
    writes back."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.fake_llm", reply, *options,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=limit,
    )  # fmt: skip
    assert child.stdin is not None
    assert child.stdout is not None
    try:
        base_url = (await child.stdout.readline()).decode().strip()
        if not base_url:
            raise RuntimeError("the fake LLM process did not start")
        yield base_url, child
    finally:
        child.stdin.close()
        await child.wait()
