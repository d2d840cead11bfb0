"""Handle one user's messages strictly one at a time, in this process and across processes.

In this process, an `asyncio.Lock` per user (FIFO, so messages are answered in arrival
order). Across processes (several replicas), a PostgreSQL session advisory lock on the
user id, held on the connection that the pipeline then uses for all of that user's
queries (the key is the user id). Users are independent: other users are never blocked.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from core.storage.database import Connection, Database


class UserLocks:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._locks: dict[int, asyncio.Lock] = {}
        self._waiters: dict[int, int] = {}

    def is_free(self, user_id: int) -> bool:
        """Whether `hold` would get this user's lock in this process without waiting."""
        return user_id not in self._locks

    @property
    def adopts(self) -> bool:
        """Whether `hold` may adopt an advisory lock that the statement accepting a
        message took on its connection (`UserRepository.admit(lock=True)`): on a pool,
        whose reset on release frees the lock also when the turn never comes."""
        return self._db.pool is not None

    @asynccontextmanager
    async def hold(
        self, user_id: int, conn: Connection | None = None, *, locked: bool = False
    ) -> AsyncIterator[Connection]:
        """Hold the user's lock; yield the connection to run the user's queries on:
        `conn`, or one from the pool. Pass `conn` only when `is_free` said so just
        before (nothing awaited in between), or a connection is held while waiting.
        `locked`: `conn` holds the user's advisory lock already (see `adopts`)."""
        lock = self._locks.setdefault(user_id, asyncio.Lock())
        self._waiters[user_id] = self._waiters.get(user_id, 0) + 1
        try:
            async with lock, self._db.connection(conn) as conn:
                if not locked:
                    await conn.execute("SELECT pg_advisory_lock($1)", user_id)
                try:
                    yield conn
                finally:
                    # A pooled connection is reset when the pool takes it back (here, or
                    # right after by the caller that lent it), and the reset (asyncpg's
                    # `get_reset_query`) releases every advisory lock: one round trip
                    # less per message. Another turn of this user meanwhile waits for it
                    # in pg_advisory_lock. A lone connection (tests, scripts) is never
                    # reset: unlock here.
                    if self._db.pool is None:
                        await asyncio.shield(conn.execute("SELECT pg_advisory_unlock($1)", user_id))
        finally:
            self._waiters[user_id] -= 1
            if self._waiters[user_id] == 0:
                del self._waiters[user_id]
                del self._locks[user_id]
