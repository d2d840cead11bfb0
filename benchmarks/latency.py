"""Latency benchmark: the engine under a real model's pace, with thousands of people.

    .venv/bin/python -m benchmarks.latency [--users 2000 --think 12 --ramp 20
        --seconds 90 --commands-per-second 5 --pool-size N --llm-max-concurrency N
        --tokens-per-chunk 4 --replicas 1 --data-dir DIR | --dsn DSN --json PATH]

The real `Engine` on `Services` over a pool of the service's default size
(`DB_POOL_MAX_SIZE`, or `--pool-size`), in `--replicas` engine processes (default 1)
sharing the database and the fake model, as replicas of the service would. Each is a
child process (`benchmarks.latency_replica`, on uvloop) with a pool of its own of
pool size // replicas connections (at least 1: together they keep to the pool size),
its own `LLM_MAX_CONCURRENCY` (the setting is per process), and every N-th person and
`/help` sender, at its share of the `/help` rate; each warms up, then all start at one
moment this process gives (on the wall clock). With:

- the real `ChatClient` (openai SDK, streaming) against `FakeOpenAI` in a process of its
  own (`benchmarks.fake_llm --latency`, so its CPU is not counted as the engine's),
  answering at a hosted model's pace: time to first token log-normal (median 0.8 s,
  long tail cut at 5 s), 30-80 tokens/s, 50-400 tokens, a few tokens per SSE chunk,
  seeded (`fakes.openai_server.LatencyProfile`);
- a trivial embedder (`benchmarks.pipeline.HashEmbedder`);
- rate limits out of reach; `LLM_MAX_CONCURRENCY` from `--llm-max-concurrency` when the
  code has that setting;
- an empty database (every person is created by their first message).

This process keeps the database, the fake model, the verdicts at the end and the CPU
meters of PostgreSQL and the fake, and merges what the replicas measured.

Each of `--users` people (private chat) starts within the first `--ramp` seconds, sends
a message, waits for the whole reply, thinks `--think` seconds (+-50%, seeded) and
writes again, for `--seconds` after the ramp (the loaded window); meanwhile
`--command-users` other people send `/help` at `--commands-per-second`. With
`--group-share`, that share of the people also write in a group chat (`--group-size` to
a group, addressed to the bot) at the same time, from a second start and think time; a
group's messages go to replica `group % N`, a person's private ones to `person % N`.
Then nobody
writes and the run waits up to `--drain` seconds for what is owed; what is still
waiting after that is cancelled and counted as unfinished.

Measured:
- replies in flight (model streams the engine processes are consuming) and messages in
  the engine (`Engine.handle` running), sampled every 0.1 s in each replica and summed
  over them per 0.1 s, and the chat requests the fake is answering (sampled in its
  process): peak, and p50 over the loaded window;
- engine overhead excluding model time: per recorded reply to a message sent in the
  loaded window (as are the latencies below), its `Engine.handle` wall time minus its
  model stream (the `ChatClient.stream` call as the engine consumes it,
  as `benchmarks.pipeline` measures it) and minus its wait for the same person's
  earlier replies (`queued_ms`), so waiting for a pool connection counts as overhead;
  also apart for group messages, and the reply snapshots' stage timings (over all
  replicas);
- when the person saw typing and the first text, from sending;
- `/help` answered: from sending until the answer was sent;
- memory: the engine processes' RSS idle (after a warm-up) and at their peaks, each
  summed over them, and per reply in flight: (peaks - idles) / peak replies in flight;
- from the database at the end: lost (a message sent, and not cancelled at the end, that
  was never stored or has no reply and is not `answered`) and answered twice (more than
  one reply); replies out of their person's order, and group replies whose window or
  recall held a message of another chat;
- errors by kind, over the whole run: the engine's failure counter
  (`onethread_replies_failed`), exceptions `Engine.handle` raised, notices sent instead
  of a reply;
- CPU of the engine processes (summed, and each when several), the PostgreSQL server
  and the fake over the loaded window.

Results: tables on stdout and `benchmarks/results/latency.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast, get_args

import asyncpg
import numpy as np
import psutil
from prometheus_client import REGISTRY

from benchmarks.common import (
    RESULTS_DIR,
    Stats,
    database,
    fake_llm_child,
    print_table,
    redact,
    replica_processes,
    replica_ready,
    replica_result,
    run_benchmark,
    server_info,
)
from benchmarks.foundation import _sentences
from benchmarks.pauses import PauseWatch, gc_summary
from benchmarks.pipeline import CpuMeter, HashEmbedder, postmaster_pid
from bot.heap import settle as settle_heap
from config import Settings
from core.engine import LEASE_SECONDS, Engine
from core.inbound import ChatKind, Inbound
from core.llm.client import ChatClient, Message, StreamEvent
from core.metrics import FailureReason
from core.models import Message as StoredMessage
from core.models import Platform
from core.persona import load_persona
from core.ports import Button, ReplySink
from core.services import Services
from core.storage.database import Connection, Database, create_pool
from core.storage.turn_wakeups import TurnWakeups
from core.storage.turns import Reply, TurnStore
from core.tokens import TokenCounter
from fakes.openai_server import LatencyProfile

REPLY = "Sure, I will keep that in mind and tell you more about it when you ask me again."
STAGES = ("embed_ms", "store_ms", "queued_ms", "assemble_ms", "model_slot_ms", "record_ms")
SAMPLE_EVERY = 0.1
BARS = {"replies_in_flight": 500, "overhead_p99_ms": 20.0, "command_p99_ms": 100.0}
CONCURRENCY_SETTING = "llm_max_concurrency"


# --- what the benchmark learns about each message -------------------------------------------


@dataclass(slots=True)
class TurnLog:
    """One chat message's model stream and stage timings, filled in while its
    `Engine.handle` runs (in that task, found through `_TURN`)."""

    llm_s: float = 0.0
    stages: dict[str, int] | None = None
    """The recorded reply's `timings_ms` (None: no reply was recorded)."""


_TURN: ContextVar[TurnLog] = ContextVar("latency_turn")


class MeteredChatClient(ChatClient):
    """The real client; counts the streams being consumed and times each one for the
    message whose `Engine.handle` asked for it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.streaming = 0

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> AsyncIterator[StreamEvent]:
        turn = _TURN.get(None)
        self.streaming += 1
        started = time.perf_counter()
        try:
            async for event in super().stream(
                messages, max_tokens=max_tokens, temperature=temperature
            ):
                yield event
        finally:
            self.streaming -= 1
            if turn is not None:
                turn.llm_s += time.perf_counter() - started


class ReplyRecorder(TurnStore):
    """The real turn store; hands each recorded reply's stage timings to its turn.

    The engine adds `record_ms` to that dict after recording the reply, so it is
    complete once `Engine.handle` returns."""

    async def close(
        self,
        user_id: int,
        message: StoredMessage,
        reply: Reply,
        *,
        delivered: bool,
        conn: Connection | None = None,
    ) -> StoredMessage:
        turn = _TURN.get(None)
        if turn is not None:
            turn.stages = cast(dict[str, int], reply.snapshot.timings_ms)
        return await super().close(user_id, message, reply, delivered=delivered, conn=conn)


class TimedSink:
    """A `ReplySink` keeping when the first text came, never the texts (every update of
    hundreds of streamed replies would be most of the process's memory)."""

    __slots__ = ("first_text",)

    def __init__(self) -> None:
        self.first_text: float | None = None

    async def update(self, text: str) -> None:
        if self.first_text is None:
            self.first_text = time.perf_counter()

    async def finish(self, text: str) -> None:
        await self.update(text)


class TimedChannel:
    """A `ReplyChannel` keeping when typing showed and the first notice was sent, the
    notices' texts, and its reply's sink."""

    __slots__ = ("notices", "sent_at", "sink", "typing_at")

    def __init__(self) -> None:
        self.typing_at: float | None = None
        self.sent_at: float | None = None
        self.notices: list[str] = []
        self.sink: TimedSink | None = None

    async def send(self, text: str, *, buttons: Sequence[Button] = ()) -> None:
        self.sent_at = self.sent_at or time.perf_counter()
        self.notices.append(text)

    async def send_file(self, filename: str, data: bytes, caption: str | None = None) -> None:
        await self.send(caption or filename)

    async def typing(self) -> None:
        self.typing_at = self.typing_at or time.perf_counter()

    def start_reply(self) -> ReplySink:
        self.sink = TimedSink()
        return self.sink


# --- the crowd ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Load:
    users: int
    think_s: float
    ramp_s: float
    seconds: float
    drain_s: float
    commands_per_second: float
    command_users: int
    warmup: int
    seed: int
    group_share: float = 0.0
    """The share of `users` who also write in a group chat, at the same time."""
    group_size: int = 8


@dataclass
class Seen:
    """What people saw of the messages sent in one phase, in numbers only (so that the
    process's memory is the engine's)."""

    overhead_ms: list[float] = field(default_factory=list)
    group_overhead_ms: list[float] = field(default_factory=list)
    """`overhead_ms` of the messages said in group chats."""
    model_ms: list[float] = field(default_factory=list)
    typing_ms: list[float] = field(default_factory=list)
    first_text_ms: list[float] = field(default_factory=list)
    stage_ms: dict[str, list[int]] = field(default_factory=lambda: {s: [] for s in STAGES})
    command_ms: list[float] = field(default_factory=list)
    commands_sent: int = 0
    commands_unanswered: int = 0

    @classmethod
    def merged(cls, parts: Sequence[dict[str, Any]]) -> Seen:
        """What several replicas' people saw (each part is a `Seen` as a dict), as one."""
        seen = cls()
        for part in parts:
            for name in (f.name for f in fields(cls)):
                mine, theirs = getattr(seen, name), part[name]
                if isinstance(mine, list):
                    mine.extend(theirs)
                elif isinstance(mine, dict):
                    for stage, samples in theirs.items():
                        mine[stage].extend(samples)
                else:
                    setattr(seen, name, mine + theirs)
        return seen


def message_id(run: str, number: int) -> str:
    """The platform message id of chat message `number` of the crowd `run`."""
    return f"{run}-m{number}"


@dataclass
class Crowd:
    """People writing to the engine. What they saw goes to `seen` as it was when they
    sent the message: a new one starts each phase (warm-up, ramp, loaded window)."""

    engine: Engine
    llm: MeteredChatClient
    texts: list[str]
    rng: np.random.Generator
    run: str
    """Unique per run and replica: part of every message's id (and of the warm-up's
    people's)."""
    people: str
    """Unique per run, the same in every replica: part of every person's and group's id
    (a person's private and group messages may go to different replicas)."""
    sent: int = 0
    """Chat messages sent so far, warm-up included; also the next one's number."""
    in_engine: int = 0
    unfinished: set[int] = field(default_factory=set)
    """Numbers of the chat messages cancelled at the end."""
    commands_sent: int = 0
    seen: Seen = field(default_factory=Seen)
    errors: Counter[str] = field(default_factory=Counter)
    """Over the whole run."""

    def inbound(self, person: str, text: str, message_id: str, group: str | None = None) -> Inbound:
        """A message from `person` in their private chat, or in `group` (addressed to
        the bot)."""
        return Inbound(
            platform=Platform.TELEGRAM,
            platform_user_id=person,
            chat_id=group or person,
            chat_kind=ChatKind.PRIVATE if group is None else ChatKind.GROUP,
            message_id=message_id,
            text=text,
            sent_at=datetime.now(UTC),
            display_name=person,
        )

    async def chat(self, person: int, group: int | None = None) -> None:
        """One message from `person` (warm-up people are negative) in their private
        chat or in `group`, until its reply is recorded."""
        number, seen = self.sent, self.seen
        self.sent += 1
        inbound = self.inbound(
            f"{self.people if person >= 0 else self.run}-p{person}",
            self.texts[number % len(self.texts)],
            message_id(self.run, number),
            None if group is None else f"{self.people}-g{group}",
        )
        turn, channel = TurnLog(), TimedChannel()
        with self._in_engine(turn):
            started = time.perf_counter()
            try:
                await self.engine.handle(inbound, channel)
            except asyncio.CancelledError:
                self.unfinished.add(number)
                raise
            except Exception as exc:
                self.errors[f"Engine.handle raised {type(exc).__name__}"] += 1
                return
        self._settle(seen, started, time.perf_counter(), turn, channel, group is not None)

    def sent_messages(self) -> SentMessages:
        return SentMessages(self.run, self.sent, sorted(self.unfinished))

    @contextmanager
    def _in_engine(self, turn: TurnLog) -> Iterator[None]:
        token = _TURN.set(turn)
        self.in_engine += 1
        try:
            yield
        finally:
            self.in_engine -= 1
            _TURN.reset(token)

    def _settle(
        self,
        seen: Seen,
        started: float,
        ended: float,
        turn: TurnLog,
        channel: TimedChannel,
        in_group: bool,
    ) -> None:
        for notice in channel.notices:
            self.errors[f"notice instead of a reply: {notice[:50]}"] += 1
        if turn.stages is None:
            return  # no reply recorded: the engine's counter or the notices say why
        # Waiting for the person's own earlier reply (`queued_ms`) is that reply's model
        # time, not overhead.
        queued_s = turn.stages.get("queued_ms", 0) / 1000
        overhead_ms = (ended - started - turn.llm_s - queued_s) * 1000
        seen.overhead_ms.append(overhead_ms)
        if in_group:
            seen.group_overhead_ms.append(overhead_ms)
        seen.model_ms.append(turn.llm_s * 1000)
        for stage, samples in seen.stage_ms.items():
            samples.append(turn.stages.get(stage, 0))
        if channel.typing_at is not None:
            seen.typing_ms.append((channel.typing_at - started) * 1000)
        if channel.sink is not None and channel.sink.first_text is not None:
            seen.first_text_ms.append((channel.sink.first_text - started) * 1000)

    async def command(self, person: int) -> None:
        """`/help` from `person`, until it is answered."""
        seen = self.seen
        self.commands_sent += 1
        seen.commands_sent += 1
        channel = TimedChannel()
        message_id = f"{self.run}-c{self.commands_sent}"
        inbound = self.inbound(f"{self.run}-c{person}", "/help", message_id)
        started = time.perf_counter()
        try:
            await self.engine.handle(inbound, channel)
        except asyncio.CancelledError:
            seen.commands_unanswered += 1
            raise
        except Exception as exc:
            self.errors[f"Engine.handle raised {type(exc).__name__} (/help)"] += 1
            return
        if channel.sent_at is None:
            self.errors["/help without an answer"] += 1
        else:
            seen.command_ms.append((channel.sent_at - started) * 1000)

    async def person(
        self, person: int, start: float, stop: float, think_s: float, group: int | None = None
    ) -> None:
        """Write (in `group`, or the private chat), wait for the reply, think, and again
        while the next message would be sent before `stop` (monotonic)."""
        next_at = start
        while next_at < stop:
            await _sleep_until(next_at)
            await self.chat(person, group)
            next_at = time.monotonic() + think_s * self.rng.uniform(0.5, 1.5)

    async def commands(self, people: Sequence[int], rate: float, start: float, stop: float) -> None:
        """`/help` at a steady `rate` from `people` (others) in turn, from `start` to
        `stop`; returns once every one of them is answered."""
        async with asyncio.TaskGroup() as group:
            sent = 0
            while (due := start + sent / rate) < stop:
                await _sleep_until(due)
                group.create_task(self.command(people[sent % len(people)]))
                sent += 1


async def _sleep_until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - time.monotonic()))


@dataclass
class Sampler:
    """Replies in flight, messages in the engine and RSS, every `SAMPLE_EVERY` s."""

    crowd: Crowd
    samples: list[tuple[float, int, int, int]] = field(default_factory=list)

    async def run(self) -> None:
        process = psutil.Process()
        while True:
            rss = process.memory_info().rss
            crowd = self.crowd
            self.samples.append((time.monotonic(), crowd.llm.streaming, crowd.in_engine, rss))
            await asyncio.sleep(SAMPLE_EVERY)


# --- one engine process (a replica) ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    """The load's moments on one clock: people start from `start`, all have started by
    `loaded`, nobody writes after `stop`."""

    start: float
    loaded: float
    stop: float

    @classmethod
    def of(cls, load: Load, start: float) -> Window:
        return cls(start, start + load.ramp_s, start + load.ramp_s + load.seconds)

    def levels(self, samples: Sequence[Sequence[float]], column: int) -> dict[str, float]:
        """A sampled count's peak since `start`, and its p50 from `loaded` to `stop`."""
        since = [s[column] for s in samples if s[0] >= self.start]
        loaded = [s[column] for s in samples if self.loaded <= s[0] <= self.stop]
        return {
            "peak": max(since, default=0),
            "p50_loaded": round(float(np.percentile(loaded, 50)), 1) if loaded else float("nan"),
        }


@dataclass(frozen=True, slots=True)
class ReplicaWork:
    """What one engine process needs to run its share of the crowd (sent as JSON): every
    `replicas`-th person and `/help` sender from its `index` on."""

    dsn: str
    fake_url: str
    run: str
    people_run: str
    index: int
    replicas: int
    pool_size: int
    llm_max_concurrency: int | None
    load: Load
    settle_heap: bool = True
    """As the service does once started (`bot.heap.settle`); off to measure without."""
    wakeups: bool = True
    """Turns waiting for another replica's turn are woken by its end, as in the service;
    off: they only poll."""

    @classmethod
    def from_order(cls, order: dict[str, Any]) -> ReplicaWork:
        return cls(**{**order, "load": Load(**order["load"])})

    @property
    def people(self) -> range:
        return range(self.load.users)[self.index :: self.replicas]

    @property
    def command_people(self) -> range:
        return range(self.load.command_users)[self.index :: self.replicas]

    @property
    def group_members(self) -> list[tuple[int, int]]:
        """(person, group) of the group chats' members this replica serves: the first
        `group_share` of the people, `group_size` to a group, every `replicas`-th group
        (so a member's private and group messages often go to different replicas)."""
        load = self.load
        members = round(load.users * load.group_share) // load.group_size * load.group_size
        return [
            (person, person // load.group_size)
            for person in range(members)
            if (person // load.group_size) % self.replicas == self.index
        ]


async def replica(work: ReplicaWork) -> None:
    """One engine process over a pool of its own (`benchmarks.latency_replica`): warms up,
    says it is ready, runs its share of the crowd from the start moment the parent gives
    with `go` (wall clock), and hands over what it measured, raw, as one JSON line."""
    load = work.load
    settings = latency_settings(work.pool_size, work.llm_max_concurrency)
    pool = await create_pool(
        work.dsn,
        min_size=settings.db.pool_min_size,
        max_size=settings.db.pool_max_size,
        command_timeout=settings.db.command_timeout_seconds,
    )
    try:
        async with (
            MeteredChatClient(
                base_url=work.fake_url,
                api_key="bench",
                model=settings.llm_model,
                timeout=settings.llm_timeout_seconds,
                max_retries=settings.llm_max_retries,
            ) as llm,
            # As `python -m bot run` wakes turns waiting for another replica's turn.
            TurnWakeups(work.dsn) as wakeups,
        ):
            # As bot/services.py builds it: a connection is awaited for at most the
            # configured time.
            db = Database(pool, acquire_timeout=settings.db.pool_acquire_timeout_seconds)
            tokens = await asyncio.to_thread(TokenCounter.load)
            services = Services(
                settings=settings, db=db, embedder=HashEmbedder(), llm=llm, tokens=tokens
            )
            recorder = ReplyRecorder(db, holder=uuid.uuid4(), lease_seconds=LEASE_SECONDS)
            engine = Engine(
                services,
                persona=load_persona(None),
                turns=recorder,
                wakeups=wakeups if work.wakeups else None,
            )
            texts = _sentences(np.random.default_rng(load.seed), 500, 6, 25)
            rng = np.random.default_rng(load.seed + 1 + work.index)
            crowd = Crowd(engine, llm, texts, rng, work.run, work.people_run)
            failed_before = failures_counted()
            # As bot/run.py: the turns' leases kept alive.
            await engine.start()
            try:
                await warm_up(crowd, load.warmup)
                gc.collect()
                if work.settle_heap:
                    settle_heap()
                idle_rss = psutil.Process().memory_info().rss
                start = _monotonic(float(await replica_ready()))
                sampler = Sampler(crowd)
                sampling = asyncio.create_task(sampler.run())
                pauses = PauseWatch()
                try:
                    cpu_s = await drive(crowd, work, Window.of(load, start), pauses)
                finally:
                    sampling.cancel()
            finally:
                await engine.stop()
            failed_after = failures_counted()
            engine_failures = {
                f"engine: {reason}": int(failed_after[reason] - failed_before[reason])
                for reason in failed_before
                if failed_after[reason] > failed_before[reason]
            }
            replica_result(
                {
                    "sent": asdict(crowd.sent_messages()),
                    "seen": asdict(crowd.seen),
                    "samples": [(round(t - start, 3), *counts) for t, *counts in sampler.samples],
                    "idle_rss": idle_rss,
                    "cpu_s": cpu_s,
                    "pauses": pauses.as_dict(),
                    "errors": {**engine_failures, **crowd.errors},
                }
            )
    finally:
        await pool.close()


def _monotonic(wall: float) -> float:
    """A moment given by the wall clock (`time.time()`), on this process's monotonic clock."""
    return time.monotonic() + (wall - time.time())


async def drive(crowd: Crowd, work: ReplicaWork, window: Window, pauses: PauseWatch) -> float:
    """This replica's people and `/help` senders, from the ramp to the drain; returns the
    CPU seconds this process used over the loaded window, and has `pauses` watch it."""
    load = work.load
    # Every replica draws every person's start: a person starts when they would in one
    # process, whichever replica they are in.
    starts = np.random.default_rng(load.seed).uniform(0, load.ramp_s, load.users)
    tasks = [
        asyncio.create_task(
            crowd.person(i, window.start + float(starts[i]), window.stop, load.think_s)
        )
        for i in work.people
    ]
    group_starts = np.random.default_rng(load.seed + 2).uniform(0, load.ramp_s, load.users)
    tasks += [
        asyncio.create_task(
            crowd.person(
                person, window.start + float(group_starts[person]), window.stop, load.think_s, group
            )
        )
        for person, group in work.group_members
    ]
    rate = load.commands_per_second
    if work.command_people and rate > 0:
        # Replica i sends the i-th of every `replicas` commands: one steady rate together.
        first = window.loaded + work.index / rate
        command_rate = rate / work.replicas
        tasks.append(
            asyncio.create_task(
                crowd.commands(work.command_people, command_rate, first, window.stop)
            )
        )
    crowd.seen = Seen()  # the ramp's
    await _sleep_until(window.loaded)
    crowd.seen = Seen()
    cpu = time.process_time()
    pauses.start()
    await _sleep_until(window.stop)
    await pauses.stop()
    cpu_s = time.process_time() - cpu
    _, pending = await asyncio.wait(tasks, timeout=load.drain_s)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return cpu_s


async def warm_up(crowd: Crowd, messages: int) -> None:
    """A few messages and one command at once: connections opened, code paths run."""
    async with asyncio.TaskGroup() as group:
        for i in range(messages):
            group.create_task(crowd.chat(-1 - i))
        group.create_task(crowd.command(-1))


def failures_counted() -> dict[str, float]:
    """The engine's failure counter, by reason (`core.metrics.REPLIES_FAILED`)."""
    return {
        reason: REGISTRY.get_sample_value("onethread_replies_failed_total", {"reason": reason})
        or 0.0
        for reason in get_args(FailureReason)
    }


def latency_settings(pool_size: int | None, llm_max_concurrency: int | None) -> Settings:
    """The service's settings (pool size and LLM_MAX_CONCURRENCY as configured unless
    given), with rate limits out of reach and the fake model."""
    values: dict[str, Any] = {
        "llm_model": "fake-model",
        "llm_max_retries": 0,
        "admin_ids": [],
        "limits": {"rate_per_minute": 1e9, "rate_burst": 1_000_000},
    }
    if pool_size is not None:
        values["db"] = {"pool_max_size": pool_size, "pool_min_size": 1}
    if llm_max_concurrency is not None and CONCURRENCY_SETTING in Settings.model_fields:
        values[CONCURRENCY_SETTING] = llm_max_concurrency
    elif llm_max_concurrency is not None:
        print("warning: this code has no LLM_MAX_CONCURRENCY; --llm-max-concurrency ignored")
    return Settings.model_validate(values)


# --- the run: the database, the fake model and the replicas ---------------------------------


@asynccontextmanager
async def fake_llm_process(seed: int, tokens_per_chunk: int) -> AsyncIterator[FakeLLM]:
    """`benchmarks.fake_llm --latency` in a child process."""
    async with fake_llm_child(
        REPLY, "--latency", "--seed", str(seed), "--tokens-per-chunk", str(tokens_per_chunk),
        "--in-flight-every", str(SAMPLE_EVERY),
        limit=2**26,  # the in-flight samples come as one long JSON line
    ) as (base_url, child):  # fmt: skip
        yield FakeLLM(base_url, child)


@dataclass(frozen=True, slots=True)
class FakeLLM:
    """The fake model's process (`fake_llm_process`)."""

    base_url: str
    process: asyncio.subprocess.Process

    async def in_flight(self) -> list[tuple[float, int]]:
        """The fake's samples of the chat requests it was answering."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(b"in-flight\n")
        await self.process.stdin.drain()
        return [(t, n) for t, n in json.loads(await self.process.stdout.readline())]


async def measure(
    dsn: str,
    load: Load,
    settings: Settings,
    tokens_per_chunk: int,
    replicas: int,
    *,
    settle_heap: bool = True,
    wakeups: bool = True,
) -> dict[str, Any]:
    """The crowd over `replicas` engine processes sharing the database and the fake model,
    from one start moment; what they measured, merged."""
    pool = await create_pool(dsn, min_size=1, max_size=1)  # for the verdicts at the end
    try:
        db = Database(pool)
        async with fake_llm_process(load.seed, tokens_per_chunk) as fake:
            meter = CpuMeter(await postmaster_pid(db), fake.process.pid)
            run = f"lat{time.time_ns()}"
            orders = [
                asdict(
                    ReplicaWork(
                        dsn=dsn,
                        fake_url=fake.base_url,
                        run=f"{run}r{i}",
                        people_run=run,
                        index=i,
                        replicas=replicas,
                        pool_size=max(1, settings.db.pool_max_size // replicas),
                        llm_max_concurrency=getattr(settings, CONCURRENCY_SETTING, None),
                        load=load,
                        settle_heap=settle_heap,
                        wakeups=wakeups,
                    )
                )
                for i in range(replicas)
            ]
            print(f"warming up: {load.warmup} messages at once in each of {replicas} engine(s)")
            async with replica_processes("benchmarks.latency_replica", orders) as children:
                print(
                    f"measuring: {load.users} people (ramp {load.ramp_s:.0f} s, think"
                    f" {load.think_s:.0f} s +-50%), {load.seconds:.0f} s loaded, /help at"
                    f" {load.commands_per_second:g}/s, {replicas} engine process(es)"
                )
                start = time.time() + START_LEAD_S
                await children.go(repr(start))
                window = Window.of(load, _monotonic(start))
                await _sleep_until(window.loaded)
                before = meter.read()
                await _sleep_until(window.stop)
                after = meter.read()
                print(f"  loaded window over; draining (up to {load.drain_s:.0f} s)")
                outputs = await children.results()
            fake_samples = [(t - window.start, n) for t, n in await fake.in_flight()]
        seen = Seen.merged([output["seen"] for output in outputs])
        counts = await verdicts(db, [SentMessages(**output["sent"]) for output in outputs])
        counts.update(await order_and_scope(db))
        return summarise(
            seen,
            Window.of(load, 0.0),  # the replicas' samples count from the common start
            outputs,
            fake_samples,
            messages={
                "sent": counts.pop("sent"),
                "stored": counts.pop("stored"),
                "replies_measured": len(seen.overhead_ms),
                **counts,
            },
            cpu=_cpu_percent(before, after, load.seconds, [o["cpu_s"] for o in outputs]),
        )
    finally:
        await pool.close()


START_LEAD_S = 1.0
"""From `go` to the replicas' common start: time for every one of them to hear it."""

CpuReading = tuple[float, float | None, float]
"""`CpuMeter.read()`: this process, the PostgreSQL server (None if remote), the fake."""


def _cpu_percent(
    before: CpuReading, after: CpuReading, seconds: float, engines_s: Sequence[float]
) -> dict[str, float | None]:
    """Each side's CPU over `seconds`, in % of one core: the engine processes' (their
    CPU seconds `engines_s`), summed and each when several, the server's, the fake's."""

    def share(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else round((b - a) * 100 / seconds, 1)

    engines = [share(0.0, s) for s in engines_s]
    if len(engines) == 1:
        percent = {"engine_process": engines[0]}
    else:
        percent = {"engine_processes": share(0.0, sum(engines_s))}
        percent.update({f"engine_replica_{i}": s for i, s in enumerate(engines, 1)})
    return {
        **percent,
        "postgresql": share(before[1], after[1]),
        "fake_llm": share(before[2], after[2]),
    }


@dataclass(frozen=True, slots=True)
class SentMessages:
    """The chat messages a crowd sent: numbers 0 to `count` - 1 of `run`, of which
    `unfinished` were cancelled at the end."""

    run: str
    count: int
    unfinished: list[int]


async def verdicts(db: Database, crowds: Sequence[SentMessages]) -> dict[str, int]:
    """Lost and answered-twice messages over every crowd's, as the database has them."""
    totals: Counter[str] = Counter()
    for sent in crowds:
        async with db.connection() as c:
            rows = await c.fetch(
                "SELECT m.platform_message_id AS id, m.status, count(r.id) AS replies"
                " FROM messages m LEFT JOIN messages r"
                "   ON r.reply_to_id = m.id AND r.role = 'assistant'"
                " WHERE m.role = 'user' AND m.platform_message_id LIKE $1"
                " GROUP BY m.id",
                f"{sent.run}-m%",
            )
        stored = {r["id"]: r for r in rows}
        unfinished = set(sent.unfinished)
        lost = 0
        for number in range(sent.count):
            if number in unfinished:
                continue
            row = stored.get(message_id(sent.run, number))
            if row is None or (row["replies"] == 0 and row["status"] != "answered"):
                lost += 1
        totals.update(
            {
                "sent": sent.count,
                "stored": len(rows),
                "unfinished_at_end": len(unfinished),
                "lost": lost,
                "answered_twice": sum(1 for r in rows if r["replies"] > 1),
            }
        )
    return dict(totals)


async def order_and_scope(db: Database) -> dict[str, int]:
    """Over every reply in the database: replies out of their person's order (recorded
    before the reply to an earlier message, or, in a private chat, written without the
    person's previous reply in its window: their turns overlapped), and replies in a
    group chat whose window or recall held a message from elsewhere (a private chat,
    another group)."""
    async with db.connection() as c:
        out_of_order = await c.fetchval(
            "WITH replies AS ("
            "  SELECT id, user_id, reply_to_id, shared_chat,"
            "    context_snapshot -> 'window_ids' AS window_ids,"
            "    lag(id) OVER (PARTITION BY user_id ORDER BY id) AS previous"
            "  FROM messages WHERE role = 'assistant')"
            " SELECT count(*) FROM replies a"
            " WHERE EXISTS (SELECT 1 FROM replies b WHERE b.user_id = a.user_id"
            "               AND b.reply_to_id > a.reply_to_id AND b.id < a.id)"
            "    OR (NOT a.shared_chat AND a.previous IS NOT NULL"
            "        AND NOT a.window_ids @> to_jsonb(a.previous))"
        )
        from_elsewhere = await c.fetchval(
            "WITH used AS ("
            "  SELECT r.id AS reply, r.chat_id, w::bigint AS message"
            "  FROM messages r,"
            "    jsonb_array_elements_text(r.context_snapshot -> 'window_ids') w"
            "  WHERE r.role = 'assistant' AND r.shared_chat"
            "  UNION ALL"
            "  SELECT r.id, r.chat_id, (x ->> 'id')::bigint"
            "  FROM messages r, jsonb_array_elements(r.context_snapshot -> 'recalled') x"
            "  WHERE r.role = 'assistant' AND r.shared_chat"
            "    AND x ->> 'source' IN ('messages', 'archive')),"
            " said AS ("
            "  SELECT id, chat_id, shared_chat FROM messages"
            "  UNION ALL SELECT id, chat_id, shared_chat FROM messages_archive)"
            " SELECT count(DISTINCT u.reply) FROM used u LEFT JOIN said m ON m.id = u.message"
            " WHERE m.id IS NULL OR NOT m.shared_chat OR m.chat_id <> u.chat_id"
        )
    return {
        "replies_out_of_order": int(out_of_order),
        "group_replies_drawing_on_other_chats": int(from_elsewhere),
    }


# --- results --------------------------------------------------------------------------------


Sample = tuple[float, int, int, int]
"""`Sampler`'s: when, replies streaming, messages in the engine, RSS (bytes)."""


def merge_samples(replicas: Sequence[Sequence[Sequence[float]]]) -> list[Sample]:
    """The replicas' samples on one time axis, one per `SAMPLE_EVERY` bucket: each column
    summed over the replicas, each counted with its latest sample so far (from the first
    bucket by which every one of them has sampled)."""
    buckets: dict[int, dict[int, Sample]] = defaultdict(dict)
    for replica, samples in enumerate(replicas):
        for t, streaming, in_engine, rss in samples:
            sample = (t, int(streaming), int(in_engine), int(rss))
            buckets[math.floor(t / SAMPLE_EVERY)][replica] = sample
    latest: dict[int, Sample] = {}
    merged = []
    for bucket in sorted(buckets):
        latest.update(buckets[bucket])
        if len(latest) == len(replicas):
            now = latest.values()
            merged.append(
                (
                    round(bucket * SAMPLE_EVERY, 3),
                    sum(s[1] for s in now),
                    sum(s[2] for s in now),
                    sum(s[3] for s in now),
                )
            )
    return merged


def summarise(
    seen: Seen,
    window: Window,
    replicas: Sequence[dict[str, Any]],
    fake_samples: list[tuple[float, int]],
    *,
    messages: dict[str, int],
    cpu: dict[str, float | None],
) -> dict[str, Any]:
    """The tables' numbers from what the `replicas` measured (their raw results)."""
    samples = merge_samples([r["samples"] for r in replicas])
    streaming_peak = max((s[1] for s in samples), default=0)
    idle_rss = sum(r["idle_rss"] for r in replicas)
    peak_rss = sum(max((s[3] for s in r["samples"]), default=r["idle_rss"]) for r in replicas)
    errors: Counter[str] = Counter()
    for r in replicas:
        errors.update(r["errors"])
    return {
        "engine_processes": len(replicas),
        "in_flight": {
            "replies_streaming": window.levels(samples, 1),
            "messages_in_engine": window.levels(samples, 2),
            "fake_model_calls": window.levels(fake_samples, 1),
        },
        "timeline": _timeline(window, samples, fake_samples),
        "engine_overhead_excl_model": Stats.of(seen.overhead_ms).as_dict(),
        "engine_overhead_excl_model_in_groups": Stats.of(seen.group_overhead_ms).as_dict(),
        "event_loop_lag": Stats.of(
            [ms for r in replicas for ms in r["pauses"]["lag_ms"]]
        ).as_dict(),
        "gc_pauses": gc_summary([r["pauses"]["gc_ms"] for r in replicas]),
        "model_stream": Stats.of(seen.model_ms).as_dict(),
        "typing_seen": Stats.of(seen.typing_ms).as_dict(),
        "first_text_seen": Stats.of(seen.first_text_ms).as_dict(),
        "stages": {stage: Stats.of(ms).as_dict() for stage, ms in seen.stage_ms.items()},
        "command_help": {
            **Stats.of(seen.command_ms).as_dict(),
            "sent": seen.commands_sent,
            "unanswered_at_end": seen.commands_unanswered,
        },
        "memory": {
            "idle_rss_mb": round(idle_rss / 2**20, 1),
            "peak_rss_mb": round(peak_rss / 2**20, 1),
            "per_reply_in_flight_kb": (
                round((peak_rss - idle_rss) / 1024 / streaming_peak, 1) if streaming_peak else None
            ),
        },
        "messages": messages,
        "errors": dict(errors),
        "cpu_percent_of_a_core_loaded": cpu,
    }


def _timeline(
    window: Window,
    samples: Sequence[Sample],
    fake_samples: list[tuple[float, int]],
    every: float = 10.0,
) -> list[dict[str, float]]:
    """Means per `every` seconds since the start of the ramp."""
    rows = []
    end = max((s[0] for s in samples), default=window.start)
    for start in np.arange(window.start, end, every):
        mine = [s for s in samples if start <= s[0] < start + every]
        theirs = [n for t, n in fake_samples if start <= t < start + every]
        if not mine:
            continue
        rows.append(
            {
                "t_s": round(float(start - window.start)),
                "replies_streaming": round(float(np.mean([s[1] for s in mine])), 1),
                "messages_in_engine": round(float(np.mean([s[2] for s in mine])), 1),
                "fake_model_calls": round(float(np.mean(theirs)), 1) if theirs else float("nan"),
                "rss_mb": round(max(s[3] for s in mine) / 2**20, 1),
            }
        )
    return rows


def bars(results: dict[str, Any]) -> dict[str, bool]:
    command = results["command_help"]
    messages = results["messages"]
    return {
        "ge_500_replies_streaming_at_once": results["in_flight"]["replies_streaming"]["peak"]
        >= BARS["replies_in_flight"],
        "overhead_p99_le_20ms": results["engine_overhead_excl_model"]["p99"]
        <= BARS["overhead_p99_ms"],
        "help_p99_le_100ms": command["p99"] <= BARS["command_p99_ms"]
        and command["unanswered_at_end"] == 0,
        "none_lost_none_twice": messages["lost"] == 0 and messages["answered_twice"] == 0,
        "in_order_and_groups_kept_apart": messages["replies_out_of_order"] == 0
        and messages["group_replies_drawing_on_other_chats"] == 0,
    }


def report(results: dict[str, Any]) -> None:
    flight = results["in_flight"]
    print_table(
        "In flight",
        ["what", "peak", "p50 while loaded"],
        [
            [name.replace("_", " "), levels["peak"], levels["p50_loaded"]]
            for name, levels in flight.items()
        ],
    )
    print_table(
        "Over time (means per 10 s since the ramp began)",
        ["t s", "replies streaming", "messages in engine", "fake model calls", "RSS MB"],
        [list(row.values()) for row in results["timeline"]],
    )
    latency = [
        ("engine overhead excl. model time", results["engine_overhead_excl_model"]),
        ("  of messages in group chats", results["engine_overhead_excl_model_in_groups"]),
        ("model stream (as the engine consumed it)", results["model_stream"]),
        ("typing seen, from sending", results["typing_seen"]),
        ("first text seen, from sending", results["first_text_seen"]),
        *((f"stage {stage}", stats) for stage, stats in results["stages"].items()),
        ("/help answered, from sending", results["command_help"]),
        ("event loop lag (a 5 ms sleep's delay)", results["event_loop_lag"]),
    ]
    print_table(
        "Latency (ms)",
        ["measure", "n", "mean", "p50", "p99", "max"],
        [[name, s["n"], s["mean"], s["p50"], s["p99"], s["max"]] for name, s in latency],
    )
    command, memory = results["command_help"], results["memory"]
    print_table(
        "Counts and memory",
        ["what", "value"],
        [
            ["engine processes (replicas)", results["engine_processes"]],
            *([name.replace("_", " "), n] for name, n in results["messages"].items()),
            ["/help sent", command["sent"]],
            ["/help unanswered at the end", command["unanswered_at_end"]],
            *([f"memory: {k.replace('_', ' ')}", _or_dash(v)] for k, v in memory.items()),
            *(
                [f"CPU % of a core, loaded: {k.replace('_', ' ')}", _or_dash(v)]
                for k, v in results["cpu_percent_of_a_core_loaded"].items()
            ),
        ],
    )
    print_table(
        "Garbage collections while loaded (all engine processes)",
        ["generation", "count", "total ms", "longest ms"],
        [[g, p["count"], p["total_ms"], p["max_ms"]] for g, p in results["gc_pauses"].items()],
    )
    errors = [[k, v] for k, v in results["errors"].items()] or [["none", 0]]
    print_table("Errors by kind", ["kind", "count"], errors)
    print_table("Bars", ["bar", "met"], [[k, v] for k, v in results["bars"].items()])


def _or_dash(value: object) -> object:
    return "-" if value is None else value


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.latency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--users", type=int, default=2000, help="people chatting")
    parser.add_argument("--think", type=float, default=12.0, help="mean seconds between replies")
    parser.add_argument("--ramp", type=float, default=20.0, help="seconds over which they start")
    parser.add_argument("--seconds", type=float, default=90.0, help="the loaded window")
    parser.add_argument("--drain", type=float, default=60.0, help="longest wait at the end")
    parser.add_argument("--commands-per-second", type=float, default=5.0)
    parser.add_argument("--command-users", type=int, default=100, help="people sending /help")
    parser.add_argument("--warmup", type=int, default=20, help="messages before measuring")
    parser.add_argument(
        "--group-share",
        type=float,
        default=0.0,
        help="the share of --users who also write in a group chat at the same time",
    )
    parser.add_argument("--group-size", type=int, default=8, help="members per group chat")
    parser.add_argument("--pool-size", type=int, help="default: DB_POOL_MAX_SIZE")
    parser.add_argument("--llm-max-concurrency", type=int, help="default: LLM_MAX_CONCURRENCY")
    parser.add_argument("--tokens-per-chunk", type=int, default=LatencyProfile().tokens_per_chunk)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--dsn", help="an external database (default: embedded, scratch)")
    parser.add_argument("--data-dir", type=Path, help="keep the embedded server's data here")
    parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="engine processes sharing the database, the fake model and the pool size;"
        " each runs every N-th person and /help sender",
    )
    parser.add_argument(
        "--unsettled-heap",
        action="store_true",
        help="leave the garbage collector as Python starts it (the service settles it,"
        " bot/heap.py)",
    )
    parser.add_argument(
        "--poll-only",
        action="store_true",
        help="engines without turn wake-ups: a turn waiting for another replica's turn"
        " only polls (the service listens for their ends, core/storage/turn_wakeups.py)",
    )
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "latency.json")
    args = parser.parse_args(argv)
    if not 1 <= args.replicas <= args.users:
        parser.error("--replicas must be from 1 to --users")
    if not 0 <= args.group_share <= 1 or args.group_size < 2:
        parser.error("--group-share must be from 0 to 1, --group-size at least 2")
    return args


async def run(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    load = Load(
        users=args.users,
        think_s=args.think,
        ramp_s=args.ramp,
        seconds=args.seconds,
        drain_s=args.drain,
        commands_per_second=args.commands_per_second,
        command_users=args.command_users,
        warmup=args.warmup,
        seed=args.seed,
        group_share=args.group_share,
        group_size=args.group_size,
    )
    settings = latency_settings(args.pool_size, args.llm_max_concurrency)
    async with database(args.dsn, args.data_dir) as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            machine = await server_info(conn)
        finally:
            await conn.close()
        results = await measure(
            dsn,
            load,
            settings,
            args.tokens_per_chunk,
            args.replicas,
            settle_heap=not args.unsettled_heap,
            wakeups=not args.poll_only,
        )
    machine["load_average_1_5_15_after"] = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    results["bars"] = bars(results)
    return {
        "benchmark": "latency",
        "command": "python -m benchmarks.latency " + " ".join(argv),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": redact(args.dsn) if args.dsn else "embedded",
        "machine": machine,
        "load": asdict(load),
        "engine": {
            "replicas": args.replicas,
            "pool_max_size": settings.db.pool_max_size,
            "pool_max_size_per_replica": max(1, settings.db.pool_max_size // args.replicas),
            "llm_max_concurrency": getattr(settings, CONCURRENCY_SETTING, None),
            "tokens_per_chunk": args.tokens_per_chunk,
            "heap_settled": not args.unsettled_heap,
        },
        "results": results,
    }


def main(argv: list[str] | None = None) -> None:
    run_benchmark(argv, _parse, run, report)


if __name__ == "__main__":
    main()
