"""The pool gives connections back without a reset round trip (and `Database`, after a
block that ended normally, in one turn of the event loop, to whoever waits first), and
still never hands out one in a transaction, skipping its WAL flushes, or holding a job's
claim."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any, cast

import asyncpg
import pytest

from core.errors import StorageBusy, StorageUnavailable
from core.models import Platform
from core.services import Services
from core.storage.broadcasts import BroadcastRepository
from core.storage.database import (
    Connection,
    Database,
    Pool,
    asynchronous_commit,
    create_pool,
)
from core.storage.memory_store import MemoryStore
from core.storage.message_passages import MessagePassageRepository, MessageTable

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _pool(services: Services) -> Pool:
    pool = services.db.pool
    assert pool is not None
    return pool


Take = Callable[[Pool], AbstractAsyncContextManager[Any]]


def _from_the_pool(pool: Pool) -> AbstractAsyncContextManager[Any]:
    """asyncpg's own checkout: given back by `Pool.release`."""
    return pool.acquire()


def _through_database(pool: Pool) -> AbstractAsyncContextManager[Any]:
    """The repositories' checkout: given back in the caller's task after a normal end."""
    return Database(pool).connection()


TAKES = pytest.mark.parametrize("take", [_from_the_pool, _through_database])


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
    """A failed statement in a transaction `asynchronous_commit`'s block did not end."""
    async with asynchronous_commit(conn):
        await conn.execute("BEGIN")
        await conn.execute("SELECT 1 / 0")


async def _leave_a_transaction_open(conn: Connection) -> None:
    """A transaction `asynchronous_commit`'s block did not end: its rollback on release
    would undo the reset of the setting."""
    async with asynchronous_commit(conn):
        await conn.execute("BEGIN")
        await conn.execute("SELECT 1")


@TAKES
async def test_giving_a_connection_back_sends_nothing(pooled: Services, take: Take) -> None:
    pool = _pool(pooled)
    async with take(pool) as conn:
        pid = conn.get_server_pid()
        await conn.fetchval("SELECT 'the last statement'::text")

    seen = await _backend(pool, pid)

    assert seen["state"] == "idle"
    assert seen["query"] == "SELECT 'the last statement'::text"


@TAKES
async def test_a_transaction_left_open_is_rolled_back_on_release(
    pooled: Services, take: Take
) -> None:
    pool = _pool(pooled)
    async with take(pool) as conn:
        pid = conn.get_server_pid()
        await conn.execute("BEGIN")
        await conn.execute("INSERT INTO users DEFAULT VALUES")  # never committed

    seen = await _backend(pool, pid)

    assert seen["state"] == "idle"
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM users") == 0


@TAKES
@pytest.mark.parametrize("block", [_fail_in_a_transaction_left_open, _leave_a_transaction_open])
async def test_a_connection_whose_commit_setting_may_not_be_restored_is_closed(
    pooled: Services, block: Callable[[Connection], Awaitable[None]], take: Take
) -> None:
    pool = _pool(pooled)
    async with take(pool) as conn:
        pid = conn.get_server_pid()
        if block is _fail_in_a_transaction_left_open:
            # The block's own error, not one from setting the WAL flushes back.
            with pytest.raises(asyncpg.exceptions.DivisionByZeroError):
                await block(cast(Connection, conn))
        else:
            await block(cast(Connection, conn))
    async with pool.acquire() as a, pool.acquire() as b:
        assert pid not in (a.get_server_pid(), b.get_server_pid())
        for conn in (a, b):
            assert await conn.fetchval("SHOW synchronous_commit") == "on"
        assert not await a.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid)


async def _claim_a_user(services: Services, conn: Connection) -> Callable[[Connection], Any]:
    """The memory job's claim on user 7, taken on `conn`; how another connection tries it."""
    store = MemoryStore(services.db)
    assert await store.try_claim(7, conn=conn)
    return lambda other: store.try_claim(7, conn=other)


async def _claim_a_broadcast(services: Services, conn: Connection) -> Callable[[Connection], Any]:
    """A broadcast sender's claim, taken on `conn`; how another connection tries it."""
    repository = BroadcastRepository(services.db)
    admin = await conn.fetchval("INSERT INTO users (role) VALUES ('admin') RETURNING id")
    await repository.queue("hi", admin_id=admin, platforms=[Platform.TELEGRAM], at=T0)
    assert await repository.claim_next([Platform.TELEGRAM], at=T0, conn=conn) is not None

    async def try_claim(other: Connection) -> bool:
        return await repository.claim_next([Platform.TELEGRAM], at=T0, conn=other) is not None

    return try_claim


async def _claim_a_table(services: Services, conn: Connection) -> Callable[[Connection], Any]:
    """The long_messages job's claim on the messages table, taken on `conn`; how another
    connection tries it."""
    repository = MessagePassageRepository(services.db)
    assert await repository.try_claim(MessageTable.MESSAGES, conn=conn)
    return lambda other: repository.try_claim(MessageTable.MESSAGES, conn=other)


@TAKES
@pytest.mark.parametrize("claim", [_claim_a_user, _claim_a_broadcast, _claim_a_table])
async def test_a_claim_left_held_is_released_when_the_pool_takes_the_connection_back(
    pooled: Services,
    claim: Callable[[Services, Connection], Awaitable[Callable[[Connection], Any]]],
    take: Take,
) -> None:
    pool = _pool(pooled)
    async with take(pool) as a, take(pool) as b:
        try_again = await claim(pooled, cast(Connection, a))
        assert not await try_again(cast(Connection, b))
        claimed_by = a.get_server_pid()
    # a went back still holding its claim (a job cut short between its statements).
    async with pool.acquire() as c, pool.acquire() as d:
        assert claimed_by in (c.get_server_pid(), d.get_server_pid())
        held = await c.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = $1", claimed_by
        )
        assert held == 0
        other = d if c.get_server_pid() == claimed_by else c
        assert await try_again(cast(Connection, other))


async def test_a_connection_goes_back_after_a_normal_end_in_one_turn_of_the_loop(
    fresh_dsn: str,
) -> None:
    """`Pool.release` would wait for a task of its own: three turns of the event loop,
    each behind every reply streaming (docs/benchmarks.md, "Latency")."""
    pool = await create_pool(fresh_dsn, max_size=1)
    db = Database(pool, acquire_timeout=5.0)
    loop = asyncio.get_running_loop()
    turns = 0
    ticking: list[asyncio.Handle] = []

    def count_a_turn() -> None:
        nonlocal turns
        turns += 1
        ticking.append(loop.call_soon(count_a_turn))

    count_a_turn()
    try:
        async with db.connection() as conn:
            assert await conn.fetchval("SELECT 1") == 1
            before = turns
        turns_to_give_back = turns - before
        back = pool.get_idle_size()
    finally:
        ticking[-1].cancel()
        await pool.close()
    assert before > 1  # the counter ran
    assert turns_to_give_back == 1
    assert back == 1


async def test_a_connection_given_back_goes_to_whoever_waited_for_it_first(
    fresh_dsn: str,
) -> None:
    """A task that gives its connection back and asks for one again at once does not
    take it from the one already waiting."""
    pool = await create_pool(fresh_dsn, max_size=1)
    db = Database(pool, acquire_timeout=5.0)
    order: list[str] = []
    waiting = asyncio.Event()

    async def statement(who: str) -> None:
        async with db.connection() as conn:
            order.append(who)
            await conn.fetchval("SELECT 1")

    async def waiter() -> None:
        waiting.set()
        await statement("waiter")

    try:
        async with db.connection() as conn:
            other = asyncio.create_task(waiter())
            await waiting.wait()
            await asyncio.sleep(0.05)  # the waiter is in the pool's queue
            await conn.fetchval("SELECT 1")
        await statement("again")
        await other
    finally:
        await pool.close()
    assert order == ["waiter", "again"]


async def test_a_release_cancelled_while_it_waits_leaves_the_pool_whole(fresh_dsn: str) -> None:
    """Given back in the caller's task, a release that must wait (here: to roll back a
    transaction left open) can be cancelled midway: the pool still has its connection,
    and nothing of the transaction was kept."""
    pool = await create_pool(fresh_dsn, min_size=1, max_size=1)
    db = Database(pool, acquire_timeout=5.0)
    loop = asyncio.get_running_loop()

    async def leave_a_transaction_open() -> None:
        task = asyncio.current_task()
        assert task is not None
        async with db.connection() as conn:
            await conn.execute("BEGIN")
            await conn.execute("INSERT INTO users DEFAULT VALUES")
            # Runs once the release has sent its ROLLBACK and waits for the answer.
            loop.call_soon(task.cancel)

    try:
        with pytest.raises(asyncio.CancelledError):
            await asyncio.create_task(leave_a_transaction_open())
        async with db.connection() as again:
            assert not again.is_in_transaction()
            assert await again.fetchval("SELECT count(*) FROM users") == 0
        assert pool.get_idle_size() == 1
    finally:
        await pool.close()


async def test_a_block_that_fails_or_is_cancelled_still_gives_its_connection_back(
    fresh_dsn: str,
) -> None:
    """After an error (`Pool.release`): the connection comes back out of any
    transaction, whether the block failed or was cancelled in a statement."""
    pool = await create_pool(fresh_dsn, max_size=1)
    db = Database(pool, acquire_timeout=5.0)
    started = asyncio.Event()

    async def fail_in_a_transaction() -> None:
        async with db.connection() as conn:
            await conn.execute("BEGIN")
            raise ValueError("the block's own error")

    async def sleep_in_a_statement() -> None:
        async with db.connection() as conn:
            started.set()
            await conn.execute("SELECT pg_sleep(30)")

    try:
        with pytest.raises(ValueError, match="the block's own error"):
            await fail_in_a_transaction()
        task = asyncio.create_task(sleep_in_a_statement())
        await started.wait()
        await asyncio.sleep(0.05)  # into the statement
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with db.connection() as again:
            assert not again.is_in_transaction()
            assert await again.fetchval("SELECT 1") == 1
        assert pool.get_idle_size() == 1
    finally:
        await pool.close()


async def test_no_connection_free_in_time_is_storage_busy_and_the_pool_goes_on(
    fresh_dsn: str,
) -> None:
    pool = await create_pool(fresh_dsn, max_size=1)
    db = Database(pool, acquire_timeout=0.05)
    try:
        async with db.connection() as held:
            with pytest.raises(StorageBusy, match=r"within 0\.05 s"):
                async with db.connection():
                    pass
            assert await held.fetchval("SELECT 1") == 1
        # The waiter given up on left nothing behind: the one connection comes back.
        async with db.connection() as again:
            assert await again.fetchval("SELECT 2") == 2
        assert pool.get_idle_size() == 1
    finally:
        await pool.close()


async def test_a_connection_that_cannot_be_opened_in_time_is_an_outage_not_a_busy_pool() -> None:
    """Opening a pooled connection to a server that never answers times out inside the
    pool's `acquire`: that is an outage to report, not a pool with no connection free."""

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = await asyncpg.create_pool(
        f"postgresql://nobody@127.0.0.1:{port}/nothing", min_size=0, max_size=1, timeout=0.2
    )
    assert pool is not None
    try:
        with pytest.raises(StorageUnavailable) as caught:
            async with Database(pool, acquire_timeout=5.0).connection():
                pass
        assert not isinstance(caught.value, StorageBusy)
    finally:
        await pool.close()
        server.close()
        await server.wait_closed()
