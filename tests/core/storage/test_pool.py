"""The pool gives connections back without a reset round trip, and still never hands
out one in a transaction, skipping its WAL flushes, or holding a job's claim."""

from __future__ import annotations

from typing import cast

import asyncpg
import pytest

from core.services import Services
from core.storage.database import Connection, Pool, asynchronous_commit
from core.storage.memory_store import MemoryStore


def _pool(services: Services) -> Pool:
    pool = services.db.pool
    assert pool is not None
    return pool


async def _backend(pool: Pool, pid: int) -> asyncpg.Record:
    """What another connection sees of backend `pid`: its state and last statement."""
    async with pool.acquire() as a, pool.acquire() as b:
        for conn in (a, b):
            if conn.get_server_pid() != pid:
                row = await conn.fetchrow(
                    "SELECT state, query FROM pg_stat_activity WHERE pid = $1", pid
                )
                assert row is not None
                return row
    raise AssertionError("both connections were the one asked about")


async def _fail_in_a_transaction_left_open(conn: Connection) -> None:
    """Leave `asynchronous_commit` with a failed statement in a transaction it did not
    end: setting the WAL flushes back fails, on a live connection."""
    async with asynchronous_commit(conn):
        await conn.execute("BEGIN")
        await conn.execute("SELECT 1 / 0")


async def test_giving_a_connection_back_sends_nothing(pooled: Services) -> None:
    pool = _pool(pooled)
    async with pool.acquire() as conn:
        pid = conn.get_server_pid()
        await conn.fetchval("SELECT 'the last statement'::text")

    seen = await _backend(pool, pid)

    assert seen["state"] == "idle"
    assert seen["query"] == "SELECT 'the last statement'::text"


async def test_a_transaction_left_open_is_rolled_back_on_release(pooled: Services) -> None:
    pool = _pool(pooled)
    async with pool.acquire() as conn:
        pid = conn.get_server_pid()
        await conn.execute("BEGIN")
        await conn.execute("INSERT INTO users DEFAULT VALUES")  # never committed

    seen = await _backend(pool, pid)

    assert seen["state"] == "idle"
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM users") == 0


async def test_a_connection_whose_commit_setting_cannot_be_restored_is_closed(
    pooled: Services,
) -> None:
    pool = _pool(pooled)
    async with pool.acquire() as conn:
        pid = conn.get_server_pid()
        with pytest.raises(asyncpg.exceptions.InFailedSQLTransactionError):
            await _fail_in_a_transaction_left_open(cast(Connection, conn))
    async with pool.acquire() as a, pool.acquire() as b:
        assert pid not in (a.get_server_pid(), b.get_server_pid())
        for conn in (a, b):
            assert await conn.fetchval("SHOW synchronous_commit") == "on"
        assert not await a.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid)


async def test_a_claim_left_held_is_released_when_the_pool_takes_the_connection_back(
    pooled: Services,
) -> None:
    pool = _pool(pooled)
    store = MemoryStore(pooled.db)
    async with pool.acquire() as a, pool.acquire() as b:
        assert await store.try_claim(7, conn=cast(Connection, a))
        assert not await store.try_claim(7, conn=cast(Connection, b))
        await store.release(7, conn=cast(Connection, b))  # not b's: a no-op
        claimed_by = a.get_server_pid()
    # a went back without releasing its claim (a job cut short between its statements).
    async with pool.acquire() as c, pool.acquire() as d:
        assert claimed_by in (c.get_server_pid(), d.get_server_pid())
        for conn in (c, d):
            assert (
                await conn.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = $1",
                    claimed_by,
                )
                == 0
            )
        other = d if c.get_server_pid() == claimed_by else c
        assert await store.try_claim(7, conn=cast(Connection, other))
        await store.release(7, conn=cast(Connection, other))
