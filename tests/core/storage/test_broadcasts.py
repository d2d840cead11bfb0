"""The broadcast repository: queueing, recipients by user id, the cursor and the claim."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.models import Platform, UserStatus
from core.services import Services
from core.storage.broadcasts import BroadcastRepository, BroadcastStatus, Recipient
from core.storage.database import Database, connect
from tests.core.broadcast_helpers import add_chat, reachable

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
BOTH = [Platform.TELEGRAM, Platform.DISCORD]


async def test_queue_counts_active_users_with_a_private_chat(services: Services) -> None:
    admin = await reachable(services, "1", admin=True)
    await reachable(services, "2")
    await add_chat(services, admin, Platform.DISCORD, "d1")  # still one person
    banned = await reachable(services, "3")
    await services.users.set_status(banned.id, UserStatus.BANNED)
    await services.users.get_or_create(Platform.TELEGRAM, "4")  # no private chat known
    await reachable(services, "5", platform=Platform.DISCORD)
    repository = BroadcastRepository(services.db)

    everyone = await repository.queue("Hi", admin_id=admin.id, platforms=BOTH, at=T0)
    telegram = await repository.queue("Hi", admin_id=admin.id, platforms=[Platform.TELEGRAM], at=T0)

    assert (everyone.total, telegram.total) == (3, 2)
    assert everyone.status is BroadcastStatus.QUEUED
    assert (everyone.sent, everyone.failed, everyone.last_user_id) == (0, 0, 0)
    assert everyone.platforms == BOTH and everyone.created_at == T0
    assert await repository.get(everyone.id) == everyone
    assert [b.id for b in await repository.recent(5)] == [telegram.id, everyone.id]
    assert await repository.get(telegram.id + 1) is None


async def test_recipients_come_by_user_id_oldest_identity_first(services: Services) -> None:
    first = await reachable(services, "1")
    await add_chat(services, first, Platform.DISCORD, "d1")
    second = await reachable(services, "2")
    third = await reachable(services, "3", platform=Platform.DISCORD)
    banned = await reachable(services, "4")
    await services.users.set_status(banned.id, UserStatus.BANNED)
    fifth = await reachable(services, "5")
    repository = BroadcastRepository(services.db)

    page = await repository.recipients(BOTH, after_user_id=0, users=2)
    assert page == [
        Recipient(first.id, Platform.TELEGRAM, "1-chat"),
        Recipient(first.id, Platform.DISCORD, "d1"),
        Recipient(second.id, Platform.TELEGRAM, "2-chat"),
    ]
    rest = await repository.recipients(BOTH, after_user_id=second.id, users=2)
    assert rest == [
        Recipient(third.id, Platform.DISCORD, "3-chat"),
        Recipient(fifth.id, Platform.TELEGRAM, "5-chat"),
    ]
    assert await repository.recipients(BOTH, after_user_id=fifth.id, users=2) == []
    telegram = await repository.recipients([Platform.TELEGRAM], after_user_id=0, users=10)
    assert [r.chat_id for r in telegram] == ["1-chat", "2-chat", "5-chat"]


async def test_advance_moves_the_cursor_and_counts(services: Services) -> None:
    admin = await reachable(services, "1", admin=True)
    repository = BroadcastRepository(services.db)
    queued = await repository.queue("Hi", admin_id=admin.id, platforms=BOTH, at=T0)
    async with services.db.connection() as conn:
        claimed = await repository.claim_next(BOTH, at=T0 + timedelta(seconds=1), conn=conn)
        assert claimed is not None and claimed.id == queued.id
        assert claimed.status is BroadcastStatus.RUNNING
        assert claimed.started_at == T0 + timedelta(seconds=1)
        assert await repository.advance(queued.id, 7, delivered=True, conn=conn) == "running"
        assert await repository.advance(queued.id, 9, delivered=False, conn=conn) == "running"
        done = await repository.finish(queued.id, at=T0 + timedelta(seconds=2), conn=conn)
        await repository.release(queued.id, conn=conn)
    assert done is not None
    assert (done.status, done.last_user_id, done.sent, done.failed) == ("done", 9, 1, 1)
    assert done.finished_at == T0 + timedelta(seconds=2)
    assert await repository.cancel(queued.id, at=T0) is None  # finished already


async def test_a_cancelled_broadcast_is_neither_claimed_nor_finished(services: Services) -> None:
    admin = await reachable(services, "1", admin=True)
    repository = BroadcastRepository(services.db)
    queued = await repository.queue("Hi", admin_id=admin.id, platforms=BOTH, at=T0)
    async with services.db.connection() as conn:
        assert await repository.claim_next(BOTH, at=T0, conn=conn) is not None
        cancelled = await repository.cancel(queued.id, at=T0 + timedelta(minutes=1), conn=conn)
        assert cancelled is not None and cancelled.status is BroadcastStatus.CANCELLED
        assert cancelled.finished_at == T0 + timedelta(minutes=1)
        assert await repository.advance(queued.id, 3, delivered=True, conn=conn) == "cancelled"
        assert await repository.finish(queued.id, at=T0, conn=conn) is None
        await repository.release(queued.id, conn=conn)
        assert await repository.claim_next(BOTH, at=T0, conn=conn) is None
    final = await repository.get(queued.id)
    assert final is not None and (final.status, final.sent) == ("cancelled", 1)


async def test_only_a_sender_reaching_every_platform_claims(services: Services) -> None:
    admin = await reachable(services, "1", admin=True)
    repository = BroadcastRepository(services.db)
    queued = await repository.queue("Hi", admin_id=admin.id, platforms=BOTH, at=T0)
    async with services.db.connection() as conn:
        assert await repository.claim_next([Platform.TELEGRAM], at=T0, conn=conn) is None
        assert await repository.claim_next([], at=T0, conn=conn) is None
        claimed = await repository.claim_next(BOTH, at=T0, conn=conn)
        assert claimed is not None and claimed.id == queued.id
        await repository.release(queued.id, conn=conn)


async def test_a_claimed_broadcast_is_skipped_by_other_sessions(fresh_dsn: str) -> None:
    first, second, third = [await connect(fresh_dsn) for _ in range(3)]
    try:
        repository = BroadcastRepository(Database(second))
        admin = await second.fetchval("INSERT INTO users (role) VALUES ('admin') RETURNING id")
        older = await repository.queue("one", admin_id=admin, platforms=BOTH, at=T0)
        newer = await repository.queue("two", admin_id=admin, platforms=BOTH, at=T0)

        held = await repository.claim_next(BOTH, at=T0, conn=first)
        other = await repository.claim_next(BOTH, at=T0, conn=second)
        assert held is not None and other is not None
        assert (held.id, other.id) == (older.id, newer.id)
        assert await repository.claim_next(BOTH, at=T0, conn=third) is None

        # The holder's server process dies (a crash): the broadcast is free, still running.
        assert await second.fetchval(
            "SELECT pg_terminate_backend($1, 10000)", first.get_server_pid()
        )
        resumed = await repository.claim_next(BOTH, at=T0 + timedelta(hours=1), conn=third)
        assert resumed is not None and resumed.id == older.id
        assert resumed.status is BroadcastStatus.RUNNING
        assert resumed.started_at == T0  # started once, resumed since
    finally:
        first.terminate()
        await second.close()
        await third.close()


async def test_erasing_the_admin_deletes_their_broadcasts(services: Services) -> None:
    admin = await reachable(services, "1", admin=True)
    repository = BroadcastRepository(services.db)
    queued = await repository.queue("Hi", admin_id=admin.id, platforms=BOTH, at=T0)
    assert await services.users.delete(admin.id)
    assert await repository.get(queued.id) is None
    async with services.db.connection() as conn:
        assert await repository.advance(queued.id, 5, delivered=True, conn=conn) is None


@pytest.mark.parametrize("broadcast_id", [2**31 - 1, 2**31, 2**32 + 5, 2**40])
async def test_any_id_can_be_claimed(services: Services, broadcast_id: int) -> None:
    """The lock's second key is an int4: ids beyond it are folded into it."""
    admin = await reachable(services, "1", admin=True)
    async with services.db.connection() as conn:
        await conn.execute(
            "INSERT INTO broadcasts (id, text, admin_id, platforms, total)"
            " OVERRIDING SYSTEM VALUE VALUES ($1, 'Hi', $2, '{telegram}', 0)",
            broadcast_id,
            admin.id,
        )
        repository = BroadcastRepository(services.db)
        claimed = await repository.claim_next([Platform.TELEGRAM], at=T0, conn=conn)
        assert claimed is not None and claimed.id == broadcast_id
        await repository.release(broadcast_id, conn=conn)
