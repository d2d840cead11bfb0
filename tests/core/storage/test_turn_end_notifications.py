"""A turn's end is announced (`TURN_ENDED_CHANNEL`) only when another process has a turn
of the person queued: NOTIFY costs every commit a database-wide lock, so the common
case, nobody waiting, must not send one.

Notifications are delivered at commit, so these tests commit: a database of their own.
Each ends with a marker notification sent after the turn ended; the first thing the
listener receives tells whether the turn's end was announced, without waiting for
something that might never come."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from core.storage.database import Database
from core.storage.turns import TURN_ENDED_CHANNEL, TurnStore
from tests.core.turn_helpers import LIMITS, close_turn, open_turn, person

MARKER = "marker"


class Listener:
    """A connection listening on the channel, as another process's would."""

    def __init__(self, conn: asyncpg.Connection[Any]) -> None:
        self.conn = conn
        self.received: asyncio.Queue[str] = asyncio.Queue()

    def on_notification(self, conn: object, pid: int, channel: str, payload: object, /) -> None:
        self.received.put_nowait(str(payload))

    async def after_marker(self, db: Database) -> list[str]:
        """What arrived before a marker sent now (all of it: notifications are
        delivered in commit order)."""
        async with db.connection() as conn:
            await conn.execute("SELECT pg_notify($1, $2)", TURN_ENDED_CHANNEL, MARKER)
        seen: list[str] = []
        async with asyncio.timeout(5):
            while (payload := await self.received.get()) != MARKER:
                seen.append(payload)
        return seen


@pytest.fixture
async def listener(fresh_dsn: str) -> AsyncIterator[Listener]:
    conn: asyncpg.Connection[Any] = await asyncpg.connect(fresh_dsn)
    listening = Listener(conn)
    await conn.add_listener(TURN_ENDED_CHANNEL, listening.on_notification)
    try:
        yield listening
    finally:
        await conn.close()


def _store(db: Database) -> TurnStore:
    return TurnStore(db, holder=uuid.uuid4(), lease_seconds=30)


async def _open(store: TurnStore, user_id: int, message_id: str) -> int:
    opened = await open_turn(store, user_id, message_id)
    assert opened.message is not None
    return opened.message.id


async def _close(store: TurnStore, user_id: int, message_id: int) -> None:
    await close_turn(store, user_id, await store.resume(user_id, message_id, LIMITS))


async def test_a_turn_ending_with_nobody_queued_announces_nothing(
    pooled_db: Database, listener: Listener
) -> None:
    user_id = await person(pooled_db, "alone")
    store = _store(pooled_db)
    replied = await _open(store, user_id, "1")
    await _close(store, user_id, replied)
    failed = await _open(store, user_id, "2")
    await store.fail(user_id, failed)
    released = await _open(store, user_id, "3")
    await store.release(user_id, released)
    assert await listener.after_marker(pooled_db) == []


async def test_a_turn_ending_before_another_replicas_queued_turn_announces_it(
    pooled_db: Database, listener: Listener
) -> None:
    """`close`, `fail` and `release` each announce the end, with the person's id."""
    user_id = await person(pooled_db, "busy")
    other_user = await person(pooled_db, "bystander")
    await _open(_store(pooled_db), other_user, "x")  # someone else's turn changes nothing
    here, there = _store(pooled_db), _store(pooled_db)
    ending = await _open(here, user_id, "1")
    waiting = await _open(there, user_id, "2")
    await _close(here, user_id, ending)
    assert await listener.after_marker(pooled_db) == [str(user_id)]
    await there.fail(user_id, waiting)
    assert await listener.after_marker(pooled_db) == []  # nobody was left queued
    ending = await _open(here, user_id, "3")
    await _open(there, user_id, "4")
    await here.fail(user_id, ending)
    ending = await _open(here, user_id, "5")
    await here.release(user_id, ending)
    assert await listener.after_marker(pooled_db) == [str(user_id), str(user_id)]


async def test_a_turn_ending_before_its_own_processs_queued_turn_announces_nothing(
    pooled_db: Database, listener: Listener
) -> None:
    """The process wakes its own queued turns itself (`core.turn_order`)."""
    user_id = await person(pooled_db, "burst")
    store = _store(pooled_db)
    first = await _open(store, user_id, "1")
    await _open(store, user_id, "2")
    await _close(store, user_id, first)
    assert await listener.after_marker(pooled_db) == []


async def test_ending_a_turn_that_is_not_ones_own_announces_nothing(
    pooled_db: Database, listener: Listener
) -> None:
    user_id = await person(pooled_db, "taken")
    owner, stranger = _store(pooled_db), _store(pooled_db)
    running = await _open(owner, user_id, "1")
    await _open(owner, user_id, "2")
    await _open(stranger, user_id, "3")
    await stranger.release(user_id, running)  # holds neither its row nor its lease
    assert await listener.after_marker(pooled_db) == []
