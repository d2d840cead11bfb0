"""Wake-ups for turns waiting on another process's turn of the same person.

A turn that ends while another process has a turn of the person queued sends a
notification (`core.storage.turns.TURN_ENDED_CHANNEL`, the user id as payload). One
dedicated connection per process listens for them: not a pooled one, because a
listening connection is held for the life of the process and the pool is small, and
the pool's connections must stay interchangeable.

The listener is an accelerator, never a dependency: when its connection drops it
reconnects in the background with backoff, and meanwhile waiters only wait out their
poll delay (`Wakeup.wait` times out). Notifications sent while it was down are lost,
so every waiter is woken when the connection is lost and again once it is back: each
reads its turn's state again rather than sleeping through a turn that ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import asyncpg

from core.storage.turns import TURN_ENDED_CHANNEL

logger = logging.getLogger(__name__)

APPLICATION_NAME = "onethread-turn-wakeups"
"""The listener's `application_name` (what `pg_stat_activity` shows for it)."""


class Wakeup:
    """One waiting turn's doorbell, rung when a turn of its person ends elsewhere."""

    def __init__(self) -> None:
        self._rung = asyncio.Event()

    def ring(self) -> None:
        self._rung.set()

    async def wait(self, seconds: float) -> bool:
        """Until rung or `seconds` passed; whether it was rung. A ring that came while
        nobody waited (as the caller read its turn's state) counts: the caller reads
        again rather than missing the end it announced."""
        try:
            async with asyncio.timeout(seconds):
                await self._rung.wait()
        except TimeoutError:
            return False
        self._rung.clear()
        return True


class TurnWakeups:
    """The process's listener for turn ends. Use as an async context manager (or
    `start` / `close`); `watch` a person while one of their turns waits."""

    def __init__(
        self,
        dsn: str,
        *,
        connect_timeout: float = 10.0,
        ping_interval: float = 30.0,
        reconnect_first: float = 0.5,
        reconnect_max: float = 30.0,
    ) -> None:
        """`ping_interval`: how often the idle connection is checked, so one that died
        silently (a network cut, no FIN) is noticed and replaced."""
        self._dsn = dsn
        self._connect_timeout = connect_timeout
        self._ping_interval = ping_interval
        self._reconnect_first = reconnect_first
        self._reconnect_max = reconnect_max
        self._watchers: dict[int, set[Wakeup]] = {}
        self._conn: asyncpg.Connection[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._first_try = asyncio.Event()

    @property
    def listening(self) -> bool:
        """Whether notifications arrive now (else waiters rely on their poll)."""
        return self._conn is not None and not self._conn.is_closed()

    async def start(self) -> None:
        """Connect and listen in the background; returns after the first attempt, so a
        reachable database is listened to from the start. A failed attempt does not
        fail the start: it is retried with backoff."""
        if self._task is None:
            self._first_try.clear()
            self._task = asyncio.create_task(self._run(), name="turn-wakeups")
            await self._first_try.wait()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> TurnWakeups:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @contextlib.contextmanager
    def watch(self, user_id: int) -> Iterator[Wakeup]:
        """A doorbell for the person's turn ends, from before the caller's next read of
        its turn's state (a notification between that read and the wait still rings)."""
        wakeup = Wakeup()
        watchers = self._watchers.setdefault(user_id, set())
        watchers.add(wakeup)
        try:
            yield wakeup
        finally:
            watchers.discard(wakeup)
            if not watchers:
                del self._watchers[user_id]

    def _ring_all(self) -> None:
        for watchers in self._watchers.values():
            for wakeup in watchers:
                wakeup.ring()

    def _on_notification(self, conn: object, pid: int, channel: str, payload: object, /) -> None:
        try:
            user_id = int(str(payload))
        except ValueError:
            return
        for wakeup in self._watchers.get(user_id, ()):
            wakeup.ring()

    async def _run(self) -> None:
        """Listen, and after each failure try again with backoff: from `reconnect_first`,
        doubling to `reconnect_max`, fresh again after a connection that lasted."""
        loop = asyncio.get_running_loop()
        delay = self._reconnect_first
        while True:
            try:
                conn = await self._connect()
            except Exception as exc:  # whatever it was, waiters poll: try again later
                # The DSN holds the password: only the kind of error is logged.
                logger.warning(
                    "turn wake-ups: cannot listen (%s); waiting turns poll; retry in %.1f s",
                    type(exc).__name__,
                    delay,
                )
                self._first_try.set()
            else:
                self._first_try.set()
                since = loop.time()
                try:
                    await self._listen(conn)
                finally:
                    self._conn = None
                    self._ring_all()
                    conn.terminate()
                if loop.time() - since >= self._reconnect_max:
                    delay = self._reconnect_first
                logger.warning("turn wake-ups: connection lost; reconnect in %.1f s", delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._reconnect_max)

    async def _connect(self) -> asyncpg.Connection[Any]:
        conn: asyncpg.Connection[Any] = await asyncpg.connect(
            self._dsn,
            timeout=self._connect_timeout,
            server_settings={"application_name": APPLICATION_NAME},
        )
        try:
            await conn.add_listener(TURN_ENDED_CHANNEL, self._on_notification)
        except BaseException:
            conn.terminate()
            raise
        return conn

    async def _listen(self, conn: asyncpg.Connection[Any]) -> None:
        """Until `conn` is lost (terminated, or silent at a ping)."""
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _: lost.set())
        self._conn = conn
        self._ring_all()  # what ended while nobody listened was not announced
        while not conn.is_closed():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._ping_interval):
                    await lost.wait()
                return
            try:
                async with asyncio.timeout(self._connect_timeout):
                    await conn.execute("SELECT 1")
            except Exception:  # any failure: a new connection is the cure
                return
