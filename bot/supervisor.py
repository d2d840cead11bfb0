"""Keeps the embedded PostgreSQL server running: when its postmaster dies, start it again.

A postmaster that dies (the OOM killer, an operator's kill -9, a crash) takes every
connection with it, and nothing else would start it again while the processes using it
keep running: the service would stay up, not ready, for ever. Every process that opened
the embedded database (`bot.database.open_database`) watches it, once a second, and
starts it again when it is gone. PostgreSQL's crash recovery replays the WAL at that
start, so every committed transaction is kept; the pool reconnects by itself, and the
platforms' retries (`adapters/outage.py`, the Telegram dispatcher) answer what arrived
meanwhile.

Who restarts it: every process notices. They take turns on the data folder's start lock
(the `flock` that serialises starters, `bot.database.start_lock_path`), and each one
looks again once it holds it: the first finds the server still dead and starts it, the
others find it running and do nothing. The lock is tried without blocking and waited
for asynchronously, so a process stopping meanwhile is not held up.

Bounded: a start can fail for a while (PostgreSQL refuses to start while the dead
postmaster's pid still exists, i.e. until its parent reaps it; backends of the old
server may still hold its shared memory for a moment) or for good (a full disk, a
damaged data folder). It is retried with backoff, 0.5 s doubling to 30 s, `attempts`
times in a row; then `gave_up` is set, and the service exits with status 1 so that the
container's restart policy (or the operator, told by the log) takes over. Every attempt
is logged and counted (`onethread_embedded_restarts_total{outcome}`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

import psutil

from bot.database import start_lock_path
from bot.pgtools import tool
from core import metrics

logger = logging.getLogger(__name__)

CHECK_EVERY_SECONDS = 1.0
FIRST_DELAY_SECONDS = 0.5
MAX_DELAY_SECONDS = 30.0
LOCK_WAIT_SECONDS = 180.0
# pg_ctl waits this long for the server to accept connections; crash recovery of a lot
# of WAL can take longer, and then the server goes on starting by itself.
START_WAIT_SECONDS = 120

Outcome = Literal["running", "restarted", "failed"]


def postmaster_alive(pgdata: Path) -> bool:
    """Whether the postmaster named in `pgdata/postmaster.pid` runs (a zombie does not:
    it is dead, waiting for its parent to reap it)."""
    pid = _postmaster_pid(pgdata)
    if pid is None:
        return False
    try:
        process = psutil.Process(pid)
        status: str = process.status()
        name: str = process.name()
    except psutil.Error:
        return False
    return status != psutil.STATUS_ZOMBIE and name.startswith("postgres")


def _postmaster_pid(pgdata: Path) -> int | None:
    try:
        first = (pgdata / "postmaster.pid").read_text().split("\n", 1)[0].strip()
    except OSError:
        return None
    return int(first) if first.isdigit() else None


class EmbeddedSupervisor:
    """Watches one data folder's server for one process; see the module docstring."""

    def __init__(
        self,
        pgdata: Path,
        socket_dir: Path,
        *,
        attempts: int,
        user: str | None = None,
        every: float = CHECK_EVERY_SECONDS,
        first_delay: float = FIRST_DELAY_SECONDS,
        max_delay: float = MAX_DELAY_SECONDS,
    ) -> None:
        """`socket_dir`: where the server's Unix socket was, so that every DSN handed
        out stays valid; `user`: the system user the server runs as (None: ours)."""
        self.pgdata = pgdata
        self._socket_dir = socket_dir
        self._attempts = attempts
        self._user = user
        self._every = every
        self._first_delay = first_delay
        self._max_delay = max_delay
        self._lock_path = start_lock_path(pgdata)
        self.gave_up = asyncio.Event()
        """Set when `attempts` starts in a row failed; the watch has ended."""

    @property
    def enabled(self) -> bool:
        return self._attempts > 0

    async def watch(self) -> None:
        """Check the server every `every` seconds and recover it, until cancelled or
        given up."""
        if not self.enabled:
            return
        while True:
            await asyncio.sleep(self._every)
            if postmaster_alive(self.pgdata):
                continue
            logger.warning(
                "the embedded PostgreSQL server in %s is not running; starting it again",
                self.pgdata,
            )
            try:
                recovered = await self.recover()
            except Exception:
                logger.exception("restarting the embedded server in %s failed", self.pgdata)
                continue
            if not recovered:
                self.gave_up.set()
                return

    async def recover(self) -> bool:
        """Start the server again, or find that another process did; False once
        `attempts` starts in a row failed."""
        delay = self._first_delay
        began = time.monotonic()
        problem = "no attempt allowed (DB_EMBEDDED_RESTART_ATTEMPTS=0)"
        for attempt in range(1, self._attempts + 1):
            outcome, problem = await self.restart_once()
            if outcome != "failed":
                if outcome == "restarted":
                    logger.warning(
                        "the embedded PostgreSQL server in %s runs again (started after "
                        "%.1f s, attempt %d; crash recovery keeps every committed "
                        "transaction)",
                        self.pgdata,
                        time.monotonic() - began,
                        attempt,
                    )
                return True
            if attempt == self._attempts:
                break
            logger.warning(
                "could not start the embedded PostgreSQL server in %s (attempt %d of %d: "
                "%s); next attempt in %.1f s",
                self.pgdata,
                attempt,
                self._attempts,
                problem,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_delay)
        logger.error(
            "gave up starting the embedded PostgreSQL server in %s after %d attempts (%s); "
            "its log is %s",
            self.pgdata,
            self._attempts,
            problem,
            self.pgdata / "log",
        )
        return False

    async def restart_once(self) -> tuple[Outcome, str]:
        """One attempt, under the start lock: "running" if the server runs (another
        process started it), "restarted", or "failed" with what went wrong."""
        try:
            async with self._start_lock():
                if postmaster_alive(self.pgdata):
                    logger.info(
                        "the embedded server in %s was started by another process", self.pgdata
                    )
                    return "running", ""
                _reap(_postmaster_pid(self.pgdata))
                problem = await asyncio.to_thread(self._start)
        except TimeoutError:
            problem = f"another process held {self._lock_path.name} for {LOCK_WAIT_SECONDS:g} s"
        if problem:
            metrics.count_embedded_restart("failed")
            return "failed", problem
        metrics.count_embedded_restart("restarted")
        return "restarted", ""

    @contextlib.asynccontextmanager
    async def _start_lock(self) -> AsyncIterator[None]:
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            async with asyncio.timeout(LOCK_WAIT_SECONDS):
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        await asyncio.sleep(0.05)
            yield
        finally:
            os.close(fd)  # drops the lock

    def _start(self) -> str:
        """`pg_ctl start` with the server's former socket folder; "" when it started,
        else why not (pg_ctl's complaint and the server log's last FATAL line)."""
        command = [
            str(tool("pg_ctl")),
            "-D", str(self.pgdata),
            "-w", "-t", str(START_WAIT_SECONDS),
            "-o", '-h ""',
            "-o", f"-k {self._socket_dir}",
            "-l", str(self.pgdata / "log"),
            "start",
        ]  # fmt: skip
        # Files, not pipes: the server inherits pg_ctl's output and would hold a pipe open.
        with tempfile.TemporaryFile("w+") as output:
            try:
                result = subprocess.run(  # noqa: S603 - our own program, no shell
                    command,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    user=self._user,
                    timeout=START_WAIT_SECONDS + 30,
                    check=False,
                )
            except (OSError, subprocess.SubprocessError) as exc:
                return f"pg_ctl failed: {type(exc).__name__}"
            if result.returncode == 0:
                return ""
            output.seek(0)
            said = [line.strip() for line in output.read().splitlines() if line.strip()]
        return _last_fatal(self.pgdata) or (said[-1] if said else "pg_ctl failed")


def _reap(pid: int | None) -> None:
    """Reap the dead postmaster if it is our child (it is when this process runs as
    PID 1 of a container without --init): PostgreSQL will not start while it exists."""
    if pid is not None:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


def _last_fatal(pgdata: Path) -> str:
    """The server log's last FATAL or PANIC line, without its timestamp."""
    try:
        with (pgdata / "log").open("rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - 8192))
            tail = log.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    for line in reversed(tail):
        for level in ("FATAL:", "PANIC:"):
            if level in line:
                return level + line.split(level, 1)[1]
    return ""
