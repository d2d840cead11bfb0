"""`TurnOrder.until_running` with `TurnWakeups`: a turn waiting for another replica's turn
of the person goes on when that turn's end is announced, and falls back to polling when
the listener is down.

Each test has two replicas (two turn stores, each its own holder) on one pool; only the
waiting one has a listener. Poll delays that cannot explain a timely wake-up (30 s) make
the wake-up the only explanation where a test needs it to be."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from core.storage.database import Connection, Database
from core.storage.turn_wakeups import APPLICATION_NAME, TurnWakeups
from core.storage.turns import Opened, ReadLimits, TurnStore
from core.turn_order import TurnOrder
from fakes.telegram_api import wait_until
from tests.core.turn_helpers import LIMITS, close_turn, open_turn, person

NEVER = 30.0
"""A poll delay no test waits out."""


class ObservedStore(TurnStore):
    """A replica's turn store that counts its `resume` statements."""

    def __init__(self, db: Database) -> None:
        super().__init__(db, holder=uuid.uuid4(), lease_seconds=30)
        self.resumed = 0

    async def resume(
        self, user_id: int, message_id: int, limits: ReadLimits, *, conn: Connection | None = None
    ) -> Opened:
        opened = await super().resume(user_id, message_id, limits, conn=conn)
        self.resumed += 1
        return opened


@pytest.fixture
def db(pooled_db: Database) -> Database:
    """Every test here needs statements that commit, on several connections."""
    return pooled_db


async def _listener_pid(db: Database) -> int | None:
    async with db.connection() as conn:
        pid: int | None = await conn.fetchval(
            "SELECT pid FROM pg_stat_activity"
            " WHERE application_name = $1 AND datname = current_database()",
            APPLICATION_NAME,
        )
    return pid


async def _waiting(
    db: Database, wakeups: TurnWakeups, name: str, *, poll_max: float
) -> tuple[int, ObservedStore, Opened, asyncio.Task[tuple[Opened, float]]]:
    """Replica A runs a turn of the person; replica B's turn waits for it, resumed once.
    The user id, A's store and turn, and B's wait."""
    user_id = await person(db, name)
    a, b = ObservedStore(db), ObservedStore(db)
    running = await open_turn(a, user_id, "a")
    assert running.state is not None
    queued = await open_turn(b, user_id, "b")
    assert queued.state is None and queued.message is not None
    order = TurnOrder(
        b, wakeups=wakeups, poll_first=NEVER, poll_max=poll_max, poll_max_listening=NEVER
    )
    waiting = asyncio.create_task(order.until_running(user_id, queued.message.id, LIMITS))
    await wait_until(lambda: b.resumed == 1)
    assert not waiting.done()
    return user_id, a, running, waiting


async def test_a_waiting_turn_goes_on_as_soon_as_the_other_replicas_turn_ends(
    db: Database, fresh_dsn: str
) -> None:
    async with TurnWakeups(fresh_dsn) as wakeups:
        assert wakeups.listening
        user_id, a, running, waiting = await _waiting(db, wakeups, "woken", poll_max=NEVER)
        await close_turn(a, user_id, running)
        async with asyncio.timeout(5):
            opened, waited = await waiting
        assert opened.state is not None
        assert 0 < waited < 5  # the time it waited, not the poll delay


async def test_without_a_listener_a_waiting_turn_polls(db: Database) -> None:
    user_id = await person(db, "polled")
    a, b = ObservedStore(db), ObservedStore(db)
    running = await open_turn(a, user_id, "a")
    queued = await open_turn(b, user_id, "b")
    assert queued.message is not None
    order = TurnOrder(b, poll_first=0.01, poll_max=0.05)
    waiting = asyncio.create_task(order.until_running(user_id, queued.message.id, LIMITS))
    await wait_until(lambda: b.resumed >= 3)
    await close_turn(a, user_id, running)
    async with asyncio.timeout(5):
        opened, waited = await waiting
    assert opened.state is not None and waited > 0


async def test_while_the_listener_is_down_waiting_turns_poll(db: Database, fresh_dsn: str) -> None:
    """Its connection terminated and not back yet: the waiting turn is woken by the
    loss (a turn's end may go unannounced meanwhile), then polls at `poll_max`."""
    async with TurnWakeups(fresh_dsn, reconnect_first=NEVER) as wakeups:
        user_id, a, running, waiting = await _waiting(db, wakeups, "unheard", poll_max=0.05)
        pid = await _listener_pid(db)
        assert pid is not None
        async with db.connection() as conn:
            assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
        await wait_until(lambda: not wakeups.listening, within=5)
        await close_turn(a, user_id, running)
        async with asyncio.timeout(5):
            opened, _ = await waiting
        assert opened.state is not None
        assert not wakeups.listening


async def test_the_listener_reconnects_and_wakes_turns_again(db: Database, fresh_dsn: str) -> None:
    async with TurnWakeups(fresh_dsn, reconnect_first=0.05) as wakeups:
        before = await _listener_pid(db)
        assert before is not None
        async with db.connection() as conn:
            assert await conn.fetchval("SELECT pg_terminate_backend($1)", before)

        async def listening_again() -> bool:
            pid = await _listener_pid(db)
            return pid not in (None, before) and wakeups.listening

        await wait_until(listening_again, within=5)
        user_id, a, running, waiting = await _waiting(db, wakeups, "again", poll_max=NEVER)
        await close_turn(a, user_id, running)
        async with asyncio.timeout(5):
            opened, _ = await waiting
        assert opened.state is not None


async def test_an_unreachable_database_does_not_stop_the_start_nor_show_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dsn = "postgresql://onethread:hunter2-secret@127.0.0.1:1/onethread"
    async with TurnWakeups(dsn, connect_timeout=2, reconnect_first=NEVER) as wakeups:
        assert not wakeups.listening
        with wakeups.watch(1) as wakeup:
            assert not await wakeup.wait(0.01)
    assert "cannot listen" in caplog.text
    assert "hunter2" not in caplog.text
