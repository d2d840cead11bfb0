"""Load benchmark: many people chatting at once with the real service process.

    .venv/bin/python -m benchmarks.load [--users 1000 --seconds 120 --think 30
        --ramp 30 --pool-max 20 --dsn DSN --json PATH]

What runs: `python -m bot run` as a subprocess (as in production: its own event loop,
pool, embedder, PTB's rate limiter, polling), against
- `FakeTelegram` (fakes/telegram_api.py) in this process, serving the updates;
- `FakeOpenAI` answering at once (echo, streamed): the model costs nothing here, so
  what is measured is the service itself (embedding, storage, context, delivery);
- a real PostgreSQL (an embedded server in a temporary folder, or `--dsn`).

Each of `--users` people (one private chat each) starts within the first `--ramp`
seconds, sends a message, waits for the complete answer, thinks `--think` seconds
(+-50%, seeded) and writes again, until `--seconds` have passed; then the run drains
(no new messages; up to 120 s for the answers still owed).

Measured:
- messages/s: answered messages over the measuring window;
- latency: from pushing the update to the fake until the fake received the final
  text (the sendMessage or editMessageText that made the bot's message read exactly
  `echo: <message>`), p50/p99/max;
- peak RSS of the service process (psutil, sampled every 0.25 s);
- lost replies (a message never answered) and duplicated replies (an answer present in
  more than one bot message), both must be 0;
- the database agrees: one stored user message per message sent, all answered.

Telegram's own limits apply: PTB's `AIORateLimiter` keeps the bot under 30 requests/s
overall, and a reply costs 2-3 requests (sendMessage, editMessageText, sendChatAction),
so throughput tops out near 10-15 replies/s whatever the machine. Results: a table on
stdout and `benchmarks/results/load.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import socket
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import psutil

from benchmarks.common import (
    RESULTS_DIR,
    Stats,
    database,
    print_table,
    redact,
    server_info,
    write_json,
)
from fakes.openai_server import FakeOpenAI
from fakes.telegram_api import TOKEN, FakeTelegram

REPO = Path(__file__).resolve().parent.parent
DRAIN_SECONDS = 120.0


@dataclass
class Pending:
    """One message on its way: when it was pushed, and when its answer was complete."""

    expected: str
    pushed: float
    done: asyncio.Future[float]


class MeasuringTelegram(FakeTelegram):
    """The fake Bot API, noting the moment a bot message first reads as the full answer."""

    def __init__(self) -> None:
        super().__init__(max_poll=1.0)
        self.pending: dict[int, Pending] = {}

    def _saw(self, chat_id: int, text: str) -> None:
        waiting = self.pending.get(chat_id)
        if waiting is not None and text == waiting.expected and not waiting.done.done():
            waiting.done.set_result(time.perf_counter())

    async def _send_message(self, params: dict[str, Any], files: dict[str, Any]) -> Any:
        result = await super()._send_message(params, files)
        self._saw(self.messages[-1].chat_id, self.messages[-1].text)
        return result

    async def _edit_message_text(self, params: dict[str, Any], files: dict[str, Any]) -> Any:
        result = await super()._edit_message_text(params, files)
        chat_id = self._chat_id(params)
        for sent in self.chat(chat_id):
            if sent.message_id == params.get("message_id"):
                self._saw(chat_id, sent.text)
        return result


@dataclass
class Run:
    latencies_ms: list[float] = field(default_factory=list)
    sent: list[tuple[int, str]] = field(default_factory=list)
    unanswered: int = 0
    answered_in_window: int = 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _status(session: aiohttp.ClientSession, url: str) -> int:
    try:
        async with session.get(url) as response:
            return response.status
    except aiohttp.ClientError:
        return 0


async def _wait_ready(url: str, process: asyncio.subprocess.Process) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(1200):
            if await _status(session, url) == 200:
                return
            if process.returncode is not None:
                raise RuntimeError(f"the service exited with {process.returncode}")
            await asyncio.sleep(0.1)
    raise RuntimeError("the service did not become ready in 120 s")


async def _sample_rss(pid: int, peak: list[int], stop: asyncio.Event) -> None:
    process = psutil.Process(pid)
    while not stop.is_set():
        with contextlib.suppress(psutil.Error):
            peak[0] = max(peak[0], process.memory_info().rss)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=0.25)


async def _person(
    tg: MeasuringTelegram,
    run: Run,
    user_id: int,
    *,
    rng: random.Random,
    start_after: float,
    think: float,
    window_end: float,
) -> None:
    await asyncio.sleep(start_after)
    loop = asyncio.get_running_loop()
    n = 0
    while time.perf_counter() < window_end:
        text = f"load u{user_id} m{n} {rng.getrandbits(32):08x}"
        waiting = Pending(f"echo: {text}", time.perf_counter(), loop.create_future())
        tg.pending[user_id] = waiting
        tg.push_message(text, user_id=user_id, first_name=f"User{user_id}", username=None)
        run.sent.append((user_id, waiting.expected))
        n += 1
        remaining = window_end + DRAIN_SECONDS - time.perf_counter()
        try:
            done = await asyncio.wait_for(asyncio.shield(waiting.done), timeout=remaining)
        except TimeoutError:
            run.unanswered += 1
            return
        run.latencies_ms.append((done - waiting.pushed) * 1000.0)
        if done <= window_end:
            run.answered_in_window += 1
        pause = think * rng.uniform(0.5, 1.5)
        await asyncio.sleep(max(0.0, min(pause, window_end - time.perf_counter())))


def _service_env(args: argparse.Namespace, dsn: str, tg: FakeTelegram, llm: FakeOpenAI, port: int,
                 data_dir: Path) -> dict[str, str]:  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_TOKEN", "_API_KEY"))}
    env.update(
        ONETHREAD_DATA_DIR=str(data_dir),
        DATABASE_URL=dsn,
        OPENAI_BASE_URL=llm.base_url,
        LLM_MODEL="fake-model",
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_BASE_URL=tg.base_url,
        HTTP_HOST="127.0.0.1",
        HTTP_PORT=str(port),
        LOG_LEVEL="WARNING",
        DB_POOL_MAX_SIZE=str(args.pool_max),
        # The background jobs would compete for the CPU; they have their own benchmark.
        MEMORY_INTERVAL_SECONDS="86400",
        ARCHIVE_INTERVAL_SECONDS="86400",
        PTB_TIMEDELTA="1",
    )
    return env


async def _check_database(dsn: str, sent: int) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE role = 'user') AS stored,"
            " count(*) FILTER (WHERE role = 'user' AND status = 'answered') AS answered,"
            " count(*) FILTER (WHERE role = 'assistant' AND delivered_at IS NOT NULL)"
            "   AS delivered"
            " FROM messages"
        )
        assert row is not None
        return {"sent": sent, **{k: int(v) for k, v in dict(row).items()}}
    finally:
        await conn.close()


async def main(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    rng = random.Random(args.seed)
    async with (
        database(args.dsn, None) as dsn,
        MeasuringTelegram() as tg,
        FakeOpenAI(embedding_dimensions=384) as llm,
    ):
        conn = await asyncpg.connect(dsn)
        try:
            machine = await server_info(conn)
        finally:
            await conn.close()
        port = _free_port()
        data_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"onethread-load-{os.getpid()}"
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run",
            cwd=REPO,
            env=_service_env(args, dsn, tg, llm, port, data_dir),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stop_sampling = asyncio.Event()
        peak = [0]
        sampler = asyncio.create_task(_sample_rss(process.pid, peak, stop_sampling))
        run = Run()
        try:
            await _wait_ready(f"http://127.0.0.1:{port}/readyz", process)
            idle_rss = psutil.Process(process.pid).memory_info().rss
            begin = time.perf_counter()
            window_end = begin + args.seconds
            people = [
                _person(
                    tg,
                    run,
                    10_000 + i,
                    rng=random.Random(rng.getrandbits(64)),
                    start_after=args.ramp * i / max(1, args.users),
                    think=args.think,
                    window_end=window_end,
                )
                for i in range(args.users)
            ]
            await asyncio.gather(*people)
            finished = time.perf_counter()
        finally:
            if process.returncode is None:
                process.terminate()
            _, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
            stop_sampling.set()
            await sampler
        stored = await _check_database(dsn, len(run.sent))

    finals = Counter((m.chat_id, m.text) for m in tg.messages)
    expected = Counter((chat, text) for chat, text in run.sent)
    lost = sum(1 for key in expected if finals[key] == 0)
    duplicated = sum(1 for key in expected if finals[key] > 1)
    latency = Stats.of(run.latencies_ms)
    window = min(args.seconds, finished - begin)
    log_errors = sum(
        1 for line in stderr.decode(errors="replace").splitlines() if " ERROR " in line
    )
    result: dict[str, Any] = {
        "command": " ".join(["python -m benchmarks.load", *sys.argv[1:]]),
        "mode": "subprocess: python -m bot run, Telegram polling",
        "users": args.users,
        "seconds": args.seconds,
        "think_seconds": args.think,
        "ramp_seconds": args.ramp,
        "pool_max": args.pool_max,
        "messages_sent": len(run.sent),
        "messages_answered": len(run.latencies_ms),
        "answered_in_window": run.answered_in_window,
        "messages_per_second": round(run.answered_in_window / window, 2),
        "latency_ms": latency.as_dict(),
        "peak_rss_mb": round(peak[0] / 2**20, 1),
        "idle_rss_mb": round(idle_rss / 2**20, 1),
        "lost_replies": lost,
        "duplicated_replies": duplicated,
        "unanswered_after_drain": run.unanswered,
        "database": stored,
        "service_exit_code": process.returncode,
        "service_error_lines": log_errors,
        "telegram_api_calls": dict(Counter(c.method for c in tg.calls)),
        "machine": machine,
        "dsn": redact(dsn) if args.dsn else "embedded",
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    print_table(
        f"Load: {args.users} users, {args.seconds} s, think {args.think} s "
        f"(load average {machine['load_average_1m']}, {machine['nproc']} CPUs)",
        ["metric", "value"],
        [
            ["messages sent", len(run.sent)],
            ["messages answered", len(run.latencies_ms)],
            ["messages/s (window)", result["messages_per_second"]],
            ["latency p50 ms", latency.p50],
            ["latency p99 ms", latency.p99],
            ["latency max ms", latency.max],
            ["peak RSS MB", result["peak_rss_mb"]],
            ["lost replies", lost],
            ["duplicated replies", duplicated],
            ["db stored / answered / delivered",
             f"{stored['stored']} / {stored['answered']} / {stored['delivered']}"],
            ["service exit code", process.returncode],
            ["ERROR lines in service log", log_errors],
        ],
    )  # fmt: skip
    write_json(args.json, result)
    print(f"\nwritten to {args.json}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=120.0, help="measuring window")
    parser.add_argument("--think", type=float, default=30.0, help="mean pause between messages")
    parser.add_argument("--ramp", type=float, default=30.0, help="spread of the first messages")
    parser.add_argument("--pool-max", type=int, default=20, help="DB_POOL_MAX_SIZE")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dsn", default=None, help="an external database (default embedded)")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "load.json")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
