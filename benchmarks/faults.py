"""Crash safety under repeated kill -9: is any Telegram message lost or answered twice?

    .venv/bin/python -m benchmarks.faults                  # 24 kills, embedded database
    .venv/bin/python -m benchmarks.faults --kills 40 --dsn postgresql://.../faultbench

The real service (`python -m bot run`) runs as a subprocess against the fake Telegram
Bot API and a slow fake model (fakes/service.py). Each round sends a few
messages from several chats, waits until a reply is in flight, waits a random extra
moment (so kills land anywhere: model thinking, preview streaming, reply recorded,
final edit) and kills the process with SIGKILL; the next round starts it again. After
the last kill one more start must answer everything. Without `--dsn` the service runs
its own embedded PostgreSQL in a temporary folder, so every kill also leaves that server
behind for the next start to join.

Counted per incoming message: its final reply text (`echo: <message>`) present once
(answered), never (lost), or more than once (duplicated); plus streamed previews a
kill left behind. Prints a table and writes benchmarks/results/faults.json.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS_DIR, Stats, print_table, redact, write_json
from fakes.service import (
    EmbeddedDatabase,
    Ledger,
    Service,
    SlowLLM,
    eventually,
    free_port,
    previews,
    service_env,
)
from fakes.telegram_api import FakeTelegram


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=24)
    parser.add_argument("--chats", type=int, default=4)
    parser.add_argument("--per-round", type=int, default=2, help="messages per chat per round")
    parser.add_argument("--max-extra", type=float, default=2.0, help="random wait before a kill")
    parser.add_argument("--first-byte-delay", type=float, default=0.3)
    parser.add_argument("--word-delay", type=float, default=0.15)
    parser.add_argument("--dsn", default=None, help="an external database (default: embedded)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "faults.json")
    parser.add_argument("--log", type=Path, default=None, help="keep the service's log here")
    return parser


def _stage(ledger: Ledger, llm: SlowLLM, answered_at_start: int, previews_at_start: int) -> str:
    """Where the pipeline was when the kill landed (as far as the fakes can see)."""
    if len(previews(ledger)) > previews_at_start:
        return "preview visible"
    if llm.in_flight > 0:
        return "model answering" if ledger.answered() == answered_at_start else "some delivered"
    return "between replies"


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    chats = [600 + i for i in range(args.chats)]
    stages: Counter[str] = Counter()
    start_ms: list[float] = []
    with tempfile.TemporaryDirectory(prefix="onethread-faults-") as tmp:
        tmp_path = Path(tmp)
        async with (
            FakeTelegram() as telegram,
            SlowLLM(
                embedding_dimensions=384,
                first_byte_delay=args.first_byte_delay,
                word_delay=args.word_delay,
            ) as llm,
        ):
            env = service_env(tmp_path, telegram, llm, http_port=free_port(), database_url=args.dsn)
            service = Service(env, tmp_path / "service.log")
            ledger = Ledger(telegram)
            database = EmbeddedDatabase(tmp_path / "postgres")
            embedded_restarts = 0
            began = time.perf_counter()
            try:
                for round_number in range(1, args.kills + 1):
                    if args.dsn is None and database.running():
                        embedded_restarts += 1  # left running by the killed process
                    started = time.perf_counter()
                    await service.start()
                    start_ms.append((time.perf_counter() - started) * 1000)
                    answered, shown = ledger.answered(), len(previews(ledger))
                    for sequence in range(args.per_round):
                        for chat in chats:
                            ledger.push(chat, f"chat {chat} round {round_number} part {sequence}")
                    await eventually(lambda: llm.in_flight > 0, what="a reply in flight")
                    await asyncio.sleep(rng.uniform(0, args.max_extra))
                    stages[_stage(ledger, llm, answered, shown)] += 1
                    await service.kill()
                if args.dsn is None and database.running():
                    embedded_restarts += 1
                started = time.perf_counter()
                await service.start()
                start_ms.append((time.perf_counter() - started) * 1000)
                await eventually(ledger.all_answered, within=300, what="every message answered")
                last = max(ledger.update_ids)
                await eventually(lambda: telegram.confirmed_below > last, what="acknowledged")
            finally:
                code = await service.terminate()
                if args.log is not None:
                    args.log.write_text(service.log_text())
            elapsed = time.perf_counter() - began
            server_left_running = args.dsn is None and database.running()
    outcome = ledger.outcome()
    result: dict[str, Any] = {
        "database": "embedded (started by the service)" if args.dsn is None else redact(args.dsn),
        "kills": args.kills,
        "chats": args.chats,
        "messages": outcome.messages,
        "answered_once": outcome.answered - len(outcome.duplicated),
        "lost": len(outcome.lost),
        "duplicated": len(outcome.duplicated),
        "previews_left_behind": len(outcome.partial),
        "kill_stages": dict(stages),
        "restarts_joining_a_running_embedded_server": embedded_restarts,
        "embedded_server_stopped_at_the_end": not server_left_running,
        "final_exit_status": code,
        "start_to_healthy_ms": Stats.of(start_ms).as_dict(),
        "elapsed_s": round(elapsed, 1),
        "settings": {
            "per_round": args.per_round,
            "max_extra_s": args.max_extra,
            "first_byte_delay_s": args.first_byte_delay,
            "word_delay_s": args.word_delay,
            "seed": args.seed,
        },
        "lost_messages": [f"{c}: {t}" for c, t in outcome.lost],
        "duplicated_messages": [f"{c}: {t}" for c, t in outcome.duplicated],
    }
    return result


def main() -> None:
    args = _parser().parse_args()
    result = asyncio.run(run(args))
    print_table(
        "kill -9 while replies are in flight",
        ["kills", "messages", "answered once", "lost", "duplicated", "previews left", "exit"],
        [
            [
                result["kills"],
                result["messages"],
                result["answered_once"],
                result["lost"],
                result["duplicated"],
                result["previews_left_behind"],
                result["final_exit_status"],
            ]
        ],
    )
    print_table(
        "where the kills landed",
        ["stage", "kills"],
        sorted(result["kill_stages"].items()),
    )
    starts = result["start_to_healthy_ms"]
    joined = result["restarts_joining_a_running_embedded_server"]
    print(
        f"\nstart to /healthz: p50 {starts['p50']:.0f} ms, max {starts['max']:.0f} ms; "
        f"embedded server joined after a kill: {joined}"
        f"; stopped at the end: {result['embedded_server_stopped_at_the_end']}; "
        f"total {result['elapsed_s']} s"
    )
    write_json(args.json, result)
    print(f"written to {args.json}")


if __name__ == "__main__":
    main()
