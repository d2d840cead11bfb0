"""Pipeline benchmark: what the engine itself costs per message, without the models.

    .venv/bin/python -m benchmarks.pipeline --data-dir DIR [--samples N --warmup N
        --concurrency N --per-user N --pool-size N --profile --json PATH]

The real `Engine` on `Services` built over a pool, at the foundation benchmark's data
size (the same fill, reused from `--data-dir`; filled first when missing), with:

- the real `ChatClient` (openai SDK, streaming) against `FakeOpenAI` in a process of its
  own (`benchmarks.fake_llm`, so its CPU is not counted as the pipeline's), answering at
  once with a fixed short reply;
- a trivial embedder (`HashEmbedder`: a unit vector seeded by the text's hash);
- rate limits set out of reach (the token bucket is still taken, one query a message).

Measured: `Engine.handle` wall time, one message at a time, each from another of the
filled users (chosen as likely to write as they wrote so far), so that recall and the
context read real rows; the same minus the LLM stage (the `ChatClient.stream` call as
the engine consumes it: the fake's HTTP round trip, the SDK, the progressive updates),
which is the engine's own overhead; the engine's stage timings (`timings_ms` of the
reply snapshot); and throughput with `--concurrency` users writing at once, each
sending `--per-user` messages one after another. CPU seconds of this process, of the
PostgreSQL server and of the fake LLM's process are recorded per phase, which says
which side limits throughput.

`--profile` runs the sequential phase again under cProfile with a query logger on
every pool connection, and prints where the time goes (Python functions, SQL
statements). Its timings are inflated by the profiler; use it for shares, not bars.

Messages are stored under platform message ids `pipeline-*` and removed (with their
replies and the conversation counters they moved) before and after the run, so a
kept data folder stays as the fill left it (but for `last_seen_at`/`last_activity_at`
of the users who wrote). Results: a table on stdout and `benchmarks/results/pipeline.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import time
import uuid
import zlib
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import asyncpg
import numpy as np

from benchmarks.common import (
    RESULTS_DIR,
    Stats,
    database,
    fake_llm_child,
    prewarm,
    print_table,
    redact,
    replica_processes,
    run_benchmark,
    server_info,
)
from benchmarks.foundation import FillSpec, _ensure_filled, _sentences
from config import Settings
from core.embedding.base import Vector
from core.engine import LEASE_SECONDS, Engine
from core.inbound import ChatKind, Inbound
from core.llm.client import ChatClient, Message, StreamEvent
from core.models import Message as StoredMessage
from core.models import Platform
from core.persona import load_persona
from core.services import Services
from core.storage.database import Connection, Database, Pool, create_pool
from core.storage.turns import Reply, TurnStore
from core.tokens import TokenCounter
from fakes.channel import RecordingChannel

DIM = 384
REPLY = "Sure, I will keep that in mind."
ID_PREFIX = "pipeline-"
STAGES = ("embed_ms", "store_ms", "assemble_ms", "llm_ms", "record_ms")
BARS = {"p50_ms": 5.0, "p99_ms": 20.0, "messages_per_second": 300.0}


# --- the pieces around the engine ---------------------------------------------------------


class HashEmbedder:
    """A trivial `Embedder`: one of `_VECTORS` unit vectors, picked by the text's hash
    (equal texts, equal vectors). Trivial means nearly free: drawing a vector per text
    cost about 0.2 ms, which counted as the pipeline's CPU."""

    model_name = "bench-hash"
    dimensions = DIM

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        return [_VECTORS[zlib.crc32(text.encode()) % len(_VECTORS)] for text in texts]


def _unit_vectors(n: int) -> list[Vector]:
    vectors = np.random.default_rng(0).standard_normal((n, DIM), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors.setflags(write=False)  # shared by every call
    return list(vectors)


_VECTORS = _unit_vectors(4096)


class TimedChatClient(ChatClient):
    """The real client; records how long each `stream` took as its caller consumed it.

    The span matches the engine's `llm_ms` (from the call until the last event was
    handled, progressive updates included), at `perf_counter` resolution.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.durations_ms: list[float] = []

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> AsyncIterator[StreamEvent]:
        started = time.perf_counter()
        try:
            async for event in super().stream(
                messages, max_tokens=max_tokens, temperature=temperature
            ):
                yield event
        finally:
            self.durations_ms.append((time.perf_counter() - started) * 1000)


class StageRecorder(TurnStore):
    """The real turn store; keeps each recorded reply's `timings_ms`.

    The engine adds `record_ms` to that same dict after recording the reply, so the kept
    dicts are complete once `Engine.handle` returns (the stored snapshot lacks it).
    """

    def __init__(self, db: Database) -> None:
        super().__init__(db, holder=uuid.uuid4(), lease_seconds=LEASE_SECONDS)
        self.timings: list[dict[str, int]] = []

    async def close(
        self,
        user_id: int,
        message: StoredMessage,
        reply: Reply,
        *,
        delivered: bool,
        conn: Connection | None = None,
    ) -> StoredMessage:
        self.timings.append(cast(dict[str, int], reply.snapshot.timings_ms))
        return await super().close(user_id, message, reply, delivered=delivered, conn=conn)


def bench_settings(pool_size: int) -> Settings:
    """The service's defaults, with rate limits out of reach and the pool sized."""
    return Settings.model_validate(
        {
            "llm_model": "fake-model",
            "llm_max_retries": 0,
            "admin_ids": [],
            "limits": {"rate_per_minute": 1e9, "rate_burst": 1_000_000},
            "db": {"pool_min_size": pool_size, "pool_max_size": pool_size},
        }
    )


@dataclass
class Bench:
    engine: Engine
    llm: TimedChatClient
    stages: StageRecorder
    texts: list[str]
    # Unique per run and process (replicas run at once): part of every message id.
    run: int = field(default_factory=lambda: time.time_ns() * 100_000 + os.getpid() % 100_000)
    sent: int = 0
    failures: int = 0

    def inbound(self, user_id: int) -> Inbound:
        """A private-chat message from a filled user (whose private chat id is their id)."""
        self.sent += 1
        return Inbound(
            platform=Platform.TELEGRAM,
            platform_user_id=str(user_id),
            chat_id=str(user_id),
            chat_kind=ChatKind.PRIVATE,
            message_id=f"{ID_PREFIX}{self.run}-{self.sent}",
            text=self.texts[self.sent % len(self.texts)],
            sent_at=datetime.now(UTC),
            display_name=f"User {user_id}",
        )

    async def handle(self, user_id: int) -> float:
        """One message through the engine; its wall time in ms."""
        channel = RecordingChannel()
        inbound = self.inbound(user_id)
        started = time.perf_counter()
        await self.engine.handle(inbound, channel)
        elapsed = (time.perf_counter() - started) * 1000
        if channel.sent or not channel.replies or channel.replies[-1].final != REPLY:
            self.failures += 1
        return elapsed


# --- bookkeeping ----------------------------------------------------------------------------


async def remove_bench_messages(db: Database) -> int:
    """Delete what earlier runs stored (messages, replies, counters moved, rate buckets)."""
    async with db.transaction() as c:
        users = await c.fetch(
            "WITH mine AS (SELECT id FROM messages WHERE platform = 'telegram'"
            "   AND platform_message_id LIKE $1),"
            " gone AS (DELETE FROM messages WHERE id IN (SELECT id FROM mine)"
            "   OR reply_to_id IN (SELECT id FROM mine)"
            "   RETURNING user_id, coalesce(tokens_in, 0) AS t_in,"
            "     coalesce(tokens_out, 0) AS t_out)"
            " UPDATE conversations c SET message_count = c.message_count - g.n,"
            "   tokens_in = c.tokens_in - g.t_in, tokens_out = c.tokens_out - g.t_out"
            " FROM (SELECT user_id, count(*) AS n, sum(t_in) AS t_in, sum(t_out) AS t_out"
            "   FROM gone GROUP BY user_id) g"
            " WHERE c.user_id = g.user_id RETURNING c.user_id",
            ID_PREFIX + "%",
        )
        ids = [r["user_id"] for r in users]
        await c.execute("DELETE FROM rate_limits WHERE user_id = ANY($1::bigint[])", ids)
    return len(ids)


async def writers(
    db: Database, spec: FillSpec
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Ordinary users with messages, and how likely each is to write next (as they wrote)."""
    async with db.connection() as c:
        rows = await c.fetch(
            "SELECT user_id, message_count FROM conversations"
            " WHERE user_id <= $1 AND message_count > 0",
            spec.users,
        )
    ids = np.array([r["user_id"] for r in rows], dtype=np.int64)
    counts = np.array([r["message_count"] for r in rows], dtype=np.float64)
    return ids, counts / counts.sum()


class CpuMeter:
    """CPU seconds used by this process, by the PostgreSQL server (when it is local) and
    by the fake LLM's process."""

    def __init__(self, postmaster: int | None, fake_llm: int) -> None:
        self._postmaster = postmaster
        self._fake_llm = fake_llm
        self._tick = os.sysconf("SC_CLK_TCK")

    def read(self) -> tuple[float, float | None, float]:
        return time.process_time(), self._server(), process_cpu_s(self._fake_llm)

    def charge(
        self, phase: Phase, before: tuple[float, float | None, float], *, python: bool = True
    ) -> None:
        """Give `phase` the CPU each side used since `before` (a `read`); this process's
        only with `python` (replicas report their own)."""
        cpu0, server0, fake0 = before
        cpu1, server1, fake1 = self.read()
        if python:
            phase.python_cpu_s = cpu1 - cpu0
        phase.fake_llm_cpu_s = fake1 - fake0
        if server0 is not None and server1 is not None:
            phase.server_cpu_s = server1 - server0

    def _server(self) -> float | None:
        if self._postmaster is None:
            return None
        ticks = 0
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid, ppid = int(entry.name), int(fields[1])
            if self._postmaster in (pid, ppid):
                ticks += int(fields[11]) + int(fields[12])  # utime, stime
            if pid == self._postmaster:
                # Backends and workers that exited: their time went to the postmaster
                # when it reaped them (cutime, cstime); without it the sum could shrink.
                ticks += int(fields[13]) + int(fields[14])
        return ticks / self._tick


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def postmaster_pid(db: Database) -> int | None:
    """The server's main process, when it runs on this machine (readable in /proc)."""
    async with db.connection() as c:
        backend = int(await c.fetchval("SELECT pg_backend_pid()"))
    return _parent_pid(backend)


def _parent_pid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


# --- phases --------------------------------------------------------------------------------


@dataclass
class Phase:
    wall_ms: list[float] = field(default_factory=list)
    llm_ms: list[float] = field(default_factory=list)
    stages: list[dict[str, int]] = field(default_factory=list)
    seconds: float = 0.0
    python_cpu_s: float = 0.0
    server_cpu_s: float | None = None
    fake_llm_cpu_s: float = 0.0
    failures: int = 0  # only from replicas; in this process `Bench.failures` counts

    def summary(self) -> dict[str, Any]:
        n = len(self.wall_ms)
        overhead = [w - llm for w, llm in zip(self.wall_ms, self.llm_ms, strict=False)]
        result: dict[str, Any] = {
            "messages": n,
            "seconds": round(self.seconds, 3),
            "messages_per_second": round(n / self.seconds, 1) if self.seconds else None,
            "handle_incl_fake_http": Stats.of(self.wall_ms).as_dict(),
            "llm_stage": Stats.of(self.llm_ms).as_dict(),
            "python_cpu_ms_per_message": round(self.python_cpu_s * 1000 / n, 2) if n else None,
            "fake_llm_cpu_ms_per_message": (
                round(self.fake_llm_cpu_s * 1000 / n, 2) if n else None
            ),
            "server_cpu_ms_per_message": (
                round(self.server_cpu_s * 1000 / n, 2)
                if n and self.server_cpu_s is not None
                else None
            ),
            "stage_mean_ms": {
                stage: round(float(np.mean([t.get(stage, 0) for t in self.stages])), 2)
                for stage in STAGES
            }
            if self.stages
            else {},
        }
        if len(self.llm_ms) == n:  # one message at a time: each wall time has its LLM time
            result["engine_overhead_excl_llm"] = Stats.of(overhead).as_dict()
        return result


async def sequential(bench: Bench, users: Sequence[int], meter: CpuMeter) -> Phase:
    """One message at a time, each from the next user in `users`."""
    phase = Phase()
    first_llm, first_stage = len(bench.llm.durations_ms), len(bench.stages.timings)
    before = meter.read()
    started = time.perf_counter()
    for user_id in users:
        phase.wall_ms.append(await bench.handle(int(user_id)))
    phase.seconds = time.perf_counter() - started
    meter.charge(phase, before)
    phase.llm_ms = bench.llm.durations_ms[first_llm:]
    phase.stages = bench.stages.timings[first_stage:]
    return phase


async def people_writing(bench: Bench, users: Sequence[int], per_user: int) -> Phase:
    """`len(users)` people writing at once, each `per_user` messages one after another;
    the phase's messages, wall time and stage timings (no CPU: the caller meters it)."""
    phase = Phase()
    first_llm, first_stage = len(bench.llm.durations_ms), len(bench.stages.timings)

    async def person(user_id: int) -> None:
        for _ in range(per_user):
            phase.wall_ms.append(await bench.handle(user_id))

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for user_id in users:
            group.create_task(person(int(user_id)))
    phase.seconds = time.perf_counter() - started
    phase.llm_ms = bench.llm.durations_ms[first_llm:]
    phase.stages = bench.stages.timings[first_stage:]
    return phase


async def concurrent(bench: Bench, users: Sequence[int], per_user: int, meter: CpuMeter) -> Phase:
    """`people_writing` in this process, with the CPU of each side."""
    before = meter.read()
    phase = await people_writing(bench, users, per_user)
    meter.charge(phase, before)
    return phase


async def concurrent_in_replicas(
    replicas: int, work: ReplicaWork, users: Sequence[int], meter: CpuMeter
) -> Phase:
    """The same crowd split over `replicas` engine processes sharing the database, as
    several replicas of the service would (`benchmarks.pipeline_replica`). Each warms
    up, then all start together; Python CPU is the sum of theirs."""
    orders = [
        {**asdict(work), "users": [int(u) for u in users[i::replicas]]} for i in range(replicas)
    ]
    async with replica_processes("benchmarks.pipeline_replica", orders) as children:
        before = meter.read()
        started = time.perf_counter()
        await children.go()
        outputs = await children.results()
        phase = Phase(seconds=time.perf_counter() - started)
        meter.charge(phase, before, python=False)
    for output in outputs:
        phase.wall_ms += output["wall_ms"]
        phase.llm_ms += output["llm_ms"]
        phase.stages += output["stages"]
        phase.python_cpu_s += output["python_cpu_s"]
        phase.failures += output["failures"]
    return phase


async def fake_round_trip(llm: ChatClient, samples: int) -> Stats:
    """The fake LLM alone: one short streamed completion, consumed to the end."""
    prompt = [{"role": "user", "content": "hello"}]
    timings: list[float] = []
    for i in range(samples + 10):
        started = time.perf_counter()
        async for _ in llm.stream(prompt, max_tokens=50):
            pass
        if i >= 10:
            timings.append((time.perf_counter() - started) * 1000)
    return Stats.of(timings)


# --- profiling -----------------------------------------------------------------------------


@dataclass(eq=False)  # hashed by identity: asyncpg keeps its loggers in a set
class QueryLog:
    """Client-side time per SQL statement (asyncpg query loggers on every connection)."""

    totals: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def __call__(self, record: Any) -> None:
        self.totals[" ".join(str(record.query).split())].append(record.elapsed * 1000)

    async def attach(self, pool: Pool, size: int) -> None:
        """Log on every connection of the pool (loggers stay when a connection is released)."""
        held = []
        try:
            for _ in range(size):
                held.append(await pool.acquire())
                held[-1].add_query_logger(self)
        finally:
            for conn in held:
                await pool.release(conn)

    def top(self, messages: int, limit: int = 20) -> list[dict[str, Any]]:
        rows = sorted(self.totals.items(), key=lambda kv: -sum(kv[1]))[:limit]
        return [
            {
                "query": query[:160],
                "calls_per_message": round(len(ms) / messages, 2),
                "ms_per_message": round(sum(ms) / messages, 3),
                "mean_ms": round(float(np.mean(ms)), 3),
            }
            for query, ms in rows
        ]


async def profile(
    bench: Bench, pool: Pool, pool_size: int, users: Sequence[int], meter: CpuMeter
) -> dict[str, Any]:
    log = QueryLog()
    await log.attach(pool, pool_size)
    profiler = cProfile.Profile()
    profiler.enable()
    phase = await sequential(bench, users, meter)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats(60)
    print(out.getvalue())
    return {"phase": phase.summary(), "sql": log.top(len(users))}


# --- the run ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Options:
    samples: int
    warmup: int
    concurrency: int
    per_user: int
    pool_size: int
    profile: bool
    replicas: int


@dataclass(frozen=True, slots=True)
class ReplicaWork:
    """What a replica process needs to run its share of the crowd (sent as JSON)."""

    dsn: str
    fake_url: str
    pool_size: int
    seed: int
    per_user: int
    warm: int


def make_bench(
    pool: Pool, llm: TimedChatClient, tokens: TokenCounter, pool_size: int, seed: int
) -> Bench:
    """The engine as the service builds it (bot/services.py: a connection awaited for at
    most the configured time), with the benchmark's embedder and recorders."""
    settings = bench_settings(pool_size)
    db = Database(pool, acquire_timeout=settings.db.pool_acquire_timeout_seconds)
    services = Services(
        settings=settings,
        db=db,
        embedder=HashEmbedder(),
        llm=llm,
        tokens=tokens,
    )
    stages = StageRecorder(db)
    engine = Engine(services, persona=load_persona(None), turns=stages)
    texts = _sentences(np.random.default_rng(seed), 500, 6, 25)
    return Bench(engine, llm, stages, texts)


def bench_client(fake_url: str) -> TimedChatClient:
    return TimedChatClient(base_url=fake_url, api_key="bench", model="fake-model", max_retries=0)


async def measure_all(dsn: str, spec: FillSpec, opts: Options) -> dict[str, Any]:
    pool = await create_pool(dsn, min_size=opts.pool_size, max_size=opts.pool_size)
    try:
        async with (
            fake_llm_child(REPLY) as (fake_url, fake),
            bench_client(fake_url) as llm,
        ):
            db = Database(pool)
            print(f"removed earlier benchmark messages of {await remove_bench_messages(db)} users")
            async with db.connection() as c:
                # Every run starts from the same state: no dead rows or index entries
                # left by the runs before (they slowed later runs down by up to 20%).
                await c.execute("VACUUM (ANALYZE) messages, conversations, users, rate_limits")
            tokens = await asyncio.to_thread(TokenCounter.load)
            bench = make_bench(pool, llm, tokens, opts.pool_size, spec.seed)
            meter = CpuMeter(await postmaster_pid(db), fake.pid)
            ids, weights = await writers(db, spec)
            rng = np.random.default_rng(spec.seed + 2)
            work = ReplicaWork(
                dsn=dsn,
                fake_url=fake_url,
                pool_size=max(1, opts.pool_size // opts.replicas),
                seed=spec.seed,
                per_user=opts.per_user,
                warm=max(1, opts.per_user // 10),
            )
            try:
                return await phases(bench, pool, opts, Writers(ids, weights, rng), meter, work)
            finally:
                await remove_bench_messages(db)
    finally:
        await pool.close()


@dataclass(frozen=True, slots=True)
class Writers:
    """Filled users, each as likely to write next as they wrote so far."""

    ids: np.ndarray[Any, Any]
    weights: np.ndarray[Any, Any]
    rng: np.random.Generator

    def pick(self, n: int, *, distinct: bool = False) -> list[int]:
        picked = self.rng.choice(self.ids, size=n, replace=not distinct, p=self.weights)
        return [int(user_id) for user_id in picked]


async def phases(
    bench: Bench,
    pool: Pool,
    opts: Options,
    people: Writers,
    meter: CpuMeter,
    work: ReplicaWork,
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    print("measuring: the fake LLM alone")
    results["fake_llm_round_trip"] = (await fake_round_trip(bench.llm, 200)).as_dict()
    print(f"measuring: {opts.samples} messages one at a time")
    await sequential(bench, people.pick(opts.warmup), meter)
    results["sequential"] = (await sequential(bench, people.pick(opts.samples), meter)).summary()
    print(f"  {results['sequential']}")
    print(f"measuring: {opts.concurrency} users at once, {opts.per_user} messages each")
    warm = max(1, opts.per_user // 10)
    await concurrent(bench, people.pick(opts.concurrency, distinct=True), warm, meter)
    crowd = people.pick(opts.concurrency, distinct=True)
    results["concurrent"] = (await concurrent(bench, crowd, opts.per_user, meter)).summary()
    results["concurrent"]["users"] = opts.concurrency
    print(f"  {results['concurrent']}")
    if opts.replicas > 1:
        print(f"measuring: the same in {opts.replicas} engine processes (replicas)")
        crowd = people.pick(opts.concurrency, distinct=True)
        phase = await concurrent_in_replicas(opts.replicas, work, crowd, meter)
        results["replicas"] = {**phase.summary(), "users": opts.concurrency}
        results["replicas"]["processes"] = opts.replicas
        bench.failures += phase.failures
        print(f"  {results['replicas']}")
    if opts.profile:
        print("profiling: one at a time, under cProfile and a query logger")
        results["profile"] = await profile(bench, pool, opts.pool_size, people.pick(300), meter)
    results["failed_messages"] = bench.failures
    return results


def bars(results: dict[str, Any]) -> dict[str, bool]:
    overhead = results["sequential"]["engine_overhead_excl_llm"]
    return {
        "p50_le_5ms": overhead["p50"] <= BARS["p50_ms"],
        "p99_le_20ms": overhead["p99"] <= BARS["p99_ms"],
        # One engine process, or several replicas of it when measured (--replicas).
        "ge_300_messages_per_second": max(
            results[phase]["messages_per_second"]
            for phase in ("concurrent", "replicas")
            if phase in results
        )
        >= BARS["messages_per_second"],
    }


def report(results: dict[str, Any]) -> None:
    seq, con = results["sequential"], results["concurrent"]
    crowds = [(f"{con['users']} at once", con)]
    if "replicas" in results:
        rep = results["replicas"]
        crowds.append((f"{rep['users']} at once, {rep['processes']} processes", rep))
    rows = [
        [name, s["n"], s["mean"], s["p50"], s["p99"], s["max"]]
        for name, s in (
            ("one at a time: engine overhead excl. LLM call", seq["engine_overhead_excl_llm"]),
            ("one at a time: handle incl. fake HTTP round trip", seq["handle_incl_fake_http"]),
            ("one at a time: LLM stage (fake + SDK + updates)", seq["llm_stage"]),
            ("fake LLM round trip alone", results["fake_llm_round_trip"]),
            (f"{con['users']} users at once: handle", con["handle_incl_fake_http"]),
            (f"{con['users']} users at once: LLM stage", con["llm_stage"]),
        )
    ]
    print_table("Latency (ms)", ["measure", "n", "mean", "p50", "p99", "max"], rows)
    print_table(
        "Per message",
        ["phase", "msg/s", "python CPU ms", "server CPU ms", "fake LLM CPU ms", *STAGES],
        [
            [
                name,
                p["messages_per_second"],
                p["python_cpu_ms_per_message"],
                p["server_cpu_ms_per_message"]
                if p["server_cpu_ms_per_message"] is not None
                else "-",
                p["fake_llm_cpu_ms_per_message"],
                *(p["stage_mean_ms"].get(s, 0.0) for s in STAGES),
            ]
            for name, p in [("one at a time", seq), *crowds]
        ],
    )
    if "profile" in results:
        print_table(
            "SQL under the profiler (client-side time, one at a time)",
            ["calls/msg", "ms/msg", "mean ms", "query"],
            [
                [q["calls_per_message"], q["ms_per_message"], q["mean_ms"], q["query"][:90]]
                for q in results["profile"]["sql"]
            ],
        )
    print_table("Bars", ["bar", "met"], [[k, v] for k, v in results["bars"].items()])
    print(f"\nfailed messages: {results['failed_messages']}")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.pipeline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--facts", type=int, default=100_000)
    parser.add_argument("--heavy-rows", type=int, default=50_000)
    parser.add_argument("--probe-sizes", default="1000,2000,5000,10000,20000")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--samples", type=int, default=2000, help="messages timed one at a time")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50, help="users writing at once")
    parser.add_argument("--per-user", type=int, default=40, help="messages each of them sends")
    parser.add_argument("--pool-size", type=int, default=20)
    parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="also run the crowd in this many engine processes (split pool, one database)",
    )
    parser.add_argument("--profile", action="store_true", help="also profile (see above)")
    parser.add_argument("--dsn", help="a database filled by benchmarks.foundation")
    parser.add_argument("--data-dir", type=Path, help="the embedded server's data (kept)")
    parser.add_argument("--shared-buffers", help="e.g. 4GB (default: as configured)")
    parser.add_argument("--no-prewarm", dest="prewarm", action="store_false")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "pipeline.json")
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
        args.samples,
        args.warmup,
        args.concurrency,
        args.per_user,
        args.pool_size,
        args.profile,
        args.replicas,
    )
    settings = {"shared_buffers": args.shared_buffers} if args.shared_buffers else None
    async with database(args.dsn, args.data_dir, server_settings=settings) as dsn:
        await _ensure_filled(dsn, spec, embedded=args.dsn is None)
        if args.prewarm:
            tables = ["users", "identities", "conversations", "facts", "messages"]
            print(f"prewarmed {await prewarm(dsn, tables)} blocks")
        conn = await asyncpg.connect(dsn)
        try:
            machine = await server_info(conn)
        finally:
            await conn.close()
        results = await measure_all(dsn, spec, opts)
    machine["load_average_1_5_15_after"] = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    results["bars"] = bars(results)
    return {
        "benchmark": "pipeline",
        "command": "python -m benchmarks.pipeline " + " ".join(argv),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": redact(args.dsn) if args.dsn else "embedded",
        "machine": machine,
        "fill": asdict(spec),
        "options": asdict(opts),
        "results": results,
    }


def main(argv: list[str] | None = None) -> None:
    run_benchmark(argv, _parse, run, report)


if __name__ == "__main__":
    main()
