"""The broadcast job on the real database: everyone once, paced, resumable after a crash,
never sent twice by two runners, audited when it ends."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from datetime import UTC, datetime

import pytest

from core.jobs.broadcast import BROADCAST_PER_SECOND, BroadcastJob
from core.models import Platform, User, UserStatus
from core.services import Services
from core.storage.broadcasts import Broadcast, BroadcastRepository, BroadcastStatus
from tests.core.broadcast_helpers import add_chat, reachable
from tests.core.commands import FakeMessenger, HeldMessenger

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


class Sleeps:
    """An injected sleep that records the pauses and only yields to other tasks."""

    def __init__(self) -> None:
        self.pauses: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.pauses.append(seconds)
        await asyncio.sleep(0)  # lets other runners move


def with_messengers(services: Services, *messengers: FakeMessenger) -> Services:
    return dataclasses.replace(
        services, clock=lambda: T0, messengers={m.platform: m for m in messengers}
    )


async def queue(services: Services, admin: User, text: str = "Maintenance tonight") -> Broadcast:
    return await BroadcastRepository(services.db).queue(
        text, admin_id=admin.id, platforms=list(services.messengers), at=T0
    )


async def get(services: Services, broadcast: Broadcast) -> Broadcast:
    found = await BroadcastRepository(services.db).get(broadcast.id)
    assert found is not None
    return found


async def audit_rows(services: Services) -> list[tuple[int, str, dict[str, int]]]:
    async with services.db.connection() as conn:
        rows = await conn.fetch("SELECT actor_id, action, details FROM admin_audit ORDER BY id")
    return [(r["actor_id"], r["action"], r["details"]) for r in rows]


async def crowd(services: Services, count: int) -> tuple[User, list[str]]:
    """An admin and `count - 1` more reachable Telegram users; their chats by user id."""
    admin = await reachable(services, "p0", admin=True)
    for n in range(1, count):
        await reachable(services, f"p{n}")
    return admin, [f"p{n}-chat" for n in range(count)]


async def test_everyone_gets_it_once_paced_oldest_chat_first(services: Services) -> None:
    telegram = FakeMessenger(Platform.TELEGRAM, failing={"3-chat", "6-chat"})
    discord = FakeMessenger(Platform.DISCORD)
    services = with_messengers(services, telegram, discord)
    admin = await reachable(services, "1", admin=True)
    await reachable(services, "2")
    await reachable(services, "3")  # blocked the bot: failed
    banned = await reachable(services, "4")
    await services.users.set_status(banned.id, UserStatus.BANNED)
    await services.users.get_or_create(Platform.TELEGRAM, "5")  # no private chat known
    blocked_then_discord = await reachable(services, "6")
    await add_chat(services, blocked_then_discord, Platform.DISCORD, "d6")
    await reachable(services, "7", platform=Platform.DISCORD)
    broadcast = await queue(services, admin)
    sleeps = Sleeps()

    outcome = await BroadcastJob(services, sleep=sleeps, users_page=2).run()

    assert outcome.counts == {"sent": 4, "failed": 1, "broadcasts": 1}
    assert telegram.sent == [("1-chat", broadcast.text), ("2-chat", broadcast.text)]
    assert discord.sent == [("d6", broadcast.text), ("7-chat", broadcast.text)]
    assert sleeps.pauses == [1 / BROADCAST_PER_SECOND] * 5  # 6 attempts
    done = await get(services, broadcast)
    assert (done.status, done.sent, done.failed, done.total) == ("done", 4, 1, 5)
    assert done.started_at == done.finished_at == T0
    assert await audit_rows(services) == [
        (
            admin.id,
            "broadcast_done",
            {"broadcast": broadcast.id, "sent": 4, "failed": 1, "total": 5},
        )
    ]
    assert (await BroadcastJob(services, sleep=sleeps).run()).summary() == "nothing to do"
    assert len(telegram.sent) == 2


async def test_a_run_stopped_between_two_sends_resumes_with_the_rest(services: Services) -> None:
    telegram = FakeMessenger(Platform.TELEGRAM)
    services = with_messengers(services, telegram)
    admin, chats = await crowd(services, 7)
    broadcast = await queue(services, admin)

    async def crash_after_three(seconds: float) -> None:
        if len(telegram.sent) == 3:
            raise asyncio.CancelledError  # the process stops before the fourth send

    with pytest.raises(asyncio.CancelledError):
        await BroadcastJob(services, sleep=crash_after_three, users_page=2).run()
    stopped = await get(services, broadcast)
    assert (stopped.status, stopped.sent) == ("running", 3)

    outcome = await BroadcastJob(services, sleep=Sleeps(), users_page=2).run()

    assert outcome.counts == {"sent": 4, "broadcasts": 1}
    assert Counter(chat for chat, _ in telegram.sent) == Counter(chats)  # each exactly once
    done = await get(services, broadcast)
    assert (done.status, done.sent, done.failed) == ("done", 7, 0)
    assert [action for _, action, _ in await audit_rows(services)] == ["broadcast_done"]


class CrashingMessenger(FakeMessenger):
    """Delivers the `crash_at`-th message, then dies before anything is written down."""

    crash_at: int = 0

    async def send_private(self, chat_id: str, text: str) -> None:
        await super().send_private(chat_id, text)
        if len(self.sent) == self.crash_at:
            raise asyncio.CancelledError


async def test_a_crash_in_flight_repeats_only_that_recipient(services: Services) -> None:
    telegram = CrashingMessenger(Platform.TELEGRAM)
    telegram.crash_at = 4
    services = with_messengers(services, telegram)
    admin, chats = await crowd(services, 6)
    broadcast = await queue(services, admin)

    with pytest.raises(asyncio.CancelledError):
        await BroadcastJob(services, sleep=Sleeps()).run()
    telegram.crash_at = 0
    await BroadcastJob(services, sleep=Sleeps()).run()

    received = Counter(chat for chat, _ in telegram.sent)
    assert received == Counter(chats) + Counter([chats[3]])  # the one in flight, twice
    done = await get(services, broadcast)
    assert (done.status, done.sent) == ("done", 6)  # the lost attempt was never counted


async def test_a_cancelled_broadcast_stops_at_the_next_recipient(services: Services) -> None:
    telegram = FakeMessenger(Platform.TELEGRAM)
    services = with_messengers(services, telegram)
    admin, chats = await crowd(services, 6)
    broadcast = await queue(services, admin)

    async def cancel_after_two(seconds: float) -> None:
        if len(telegram.sent) == 2:
            await BroadcastRepository(services.db).cancel(broadcast.id, at=T0)

    outcome = await BroadcastJob(services, sleep=cancel_after_two).run()

    assert outcome.counts == {"sent": 3, "cancelled": 1}
    assert [chat for chat, _ in telegram.sent] == chats[:3]  # the third was in flight
    cancelled = await get(services, broadcast)
    assert (cancelled.status, cancelled.sent) == ("cancelled", 3)
    assert await audit_rows(services) == []  # the cancelling command audits it, not the job


async def test_a_process_without_platforms_sends_nothing(services: Services) -> None:
    telegram = FakeMessenger(Platform.TELEGRAM)
    admin, _ = await crowd(with_messengers(services, telegram), 2)
    broadcast = await queue(with_messengers(services, telegram), admin)
    discord_only = with_messengers(services, FakeMessenger(Platform.DISCORD))

    assert (await BroadcastJob(services).run()).summary() == "no platform in this process"
    assert (await BroadcastJob(discord_only).run()).summary() == "nothing to do"
    assert (await get(services, broadcast)).status is BroadcastStatus.QUEUED


async def test_a_second_runner_leaves_a_claimed_broadcast_alone(pooled: Services) -> None:
    telegram = HeldMessenger(Platform.TELEGRAM)
    entered, gate = telegram.entered, telegram.gate
    services = with_messengers(pooled, telegram)
    admin, chats = await crowd(services, 4)
    broadcast = await queue(services, admin)

    elsewhere = FakeMessenger(Platform.TELEGRAM)  # the second runner's process

    first = asyncio.create_task(BroadcastJob(services, sleep=Sleeps()).run())
    await entered.wait()  # the first runner holds the broadcast, mid-send
    second = await BroadcastJob(with_messengers(pooled, elsewhere), sleep=Sleeps()).run()
    gate.set()
    outcome = await first

    assert second.summary() == "nothing to do" and elsewhere.sent == []
    assert outcome.counts == {"sent": 4, "broadcasts": 1}
    assert [chat for chat, _ in telegram.sent] == chats
    assert (await get(services, broadcast)).status is BroadcastStatus.DONE


async def test_two_runners_at_once_send_each_broadcast_once(pooled: Services) -> None:
    telegram = FakeMessenger(Platform.TELEGRAM)
    services = with_messengers(pooled, telegram)
    admin, chats = await crowd(services, 8)
    first = await queue(services, admin, "first")
    second = await queue(services, admin, "second")

    outcomes = await asyncio.gather(
        BroadcastJob(services, sleep=Sleeps(), users_page=3).run(),
        BroadcastJob(services, sleep=Sleeps(), users_page=3).run(),
    )

    assert Counter(telegram.sent) == Counter(
        [(chat, text) for text in ("first", "second") for chat in chats]
    )
    assert sum(o.counts.get("broadcasts", 0) for o in outcomes) == 2
    for broadcast in (first, second):
        done = await get(services, broadcast)
        assert (done.status, done.sent) == ("done", 8)
    assert [action for _, action, _ in await audit_rows(services)] == ["broadcast_done"] * 2
