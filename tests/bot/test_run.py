"""`python -m bot run` as a real process: fake Telegram Bot API, fake LLM, real database."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp

from fakes.openai_server import FakeOpenAI
from fakes.telegram_api import TOKEN, FakeTelegram


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _eventually(condition: Callable[[], bool], within: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def _status(url: str) -> int:
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            return response.status
    except aiohttp.ClientError:
        return 0


async def test_run_serves_telegram_and_stops_cleanly_on_sigterm(
    tmp_path: Path, fake_llm: FakeOpenAI, fresh_dsn: str
) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_TOKEN", "_API_KEY"))}
    env.update(
        ONETHREAD_DATA_DIR=str(tmp_path),
        DATABASE_URL=fresh_dsn,
        OPENAI_BASE_URL=fake_llm.base_url,
        LLM_MODEL="fake-model",
        HTTP_HOST="127.0.0.1",
        HTTP_PORT=str(port),
        LOG_LEVEL="INFO",
        ADMIN_IDS="telegram:101",
    )
    async with FakeTelegram() as telegram:
        env.update(TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_BASE_URL=telegram.base_url)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            ready = f"http://127.0.0.1:{port}/readyz"
            status = 0
            for _ in range(600):
                status = await _status(ready)
                if status == 200 or process.returncode is not None:
                    break
                await asyncio.sleep(0.1)
            assert status == 200
            telegram.push_message("Hello from Telegram", user_id=101)
            await _eventually(lambda: telegram.texts(101) == ["echo: Hello from Telegram"])
            assert telegram.calls_to("setMyCommands")
            metrics = await _fetch(f"http://127.0.0.1:{port}/metrics")
            assert 'onethread_messages_in_total{platform="telegram"} 1.0' in metrics
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()
    log = stderr.decode()
    assert "shutting down" in log
    # The long-lived heap is exempt from garbage collection once started (bot/heap.py).
    settled = re.search(r"start-up heap settled: (\d+) objects", log)
    assert settled is not None and int(settled.group(1)) > 100_000
    assert "Traceback" not in log
    assert TOKEN not in log
    assert "Hello from Telegram" not in log


async def _fetch(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return await response.text()
