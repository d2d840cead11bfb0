"""The broadcast job: send queued broadcasts (`/broadcast`), paced, resumable.

A run claims the oldest unfinished broadcast that this process can send (all of its
platforms have a messenger here) and no other sender holds, sends it, and claims the
next, until none is left; so a broadcast queued while a run is busy is sent by that
run. A process without messengers (`python -m bot jobs`, the CLI) sends nothing.

Per recipient (in user id order): their private chats are tried oldest identity first
through `Messenger.send_private` until one accepts; a user counts as failed when none
does (`DeliveryError`). Then the cursor and the counts are written in one statement,
before the next send: a crash loses nothing and repeats at most the recipient in
flight (`core.storage.broadcasts`). Sends are spaced `1 / per_second` apart through
the injected `sleep`, the run's first one excepted.

A broadcast ends as done here, with its closing `admin_audit` row in the same
transaction (actor: the admin who queued it); a cancelled one (`/broadcast cancel`)
is left at the next recipient, and the cancelling command writes its audit row.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Sequence

from core.errors import DeliveryError
from core.jobs.registry import JobOutcome
from core.services import Services
from core.storage.audit import AuditRepository
from core.storage.broadcasts import Broadcast, BroadcastRepository, BroadcastStatus, Recipient
from core.storage.database import Connection

logger = logging.getLogger(__name__)

# Telegram allows about 30 private messages a second per bot.
BROADCAST_PER_SECOND = 20.0
# How often the scheduler looks for broadcasts to resume (after a restart, or queued
# by a process that does not send them itself).
BROADCAST_INTERVAL_SECONDS = 30
USERS_PAGE = 100

Sleep = Callable[[float], Awaitable[None]]


class BroadcastJob:
    name = "broadcast"

    def __init__(
        self,
        services: Services,
        *,
        per_second: float = BROADCAST_PER_SECOND,
        sleep: Sleep = asyncio.sleep,
        users_page: int = USERS_PAGE,
    ) -> None:
        self._services = services
        self._repo = BroadcastRepository(services.db)
        self._audit = AuditRepository(services.db)
        self._pause = 1.0 / per_second
        self._sleep = sleep
        self._users_page = users_page

    async def run(self) -> JobOutcome:
        platforms = list(self._services.messengers)
        if not platforms:
            return JobOutcome(note="no platform in this process")
        outcome = JobOutcome()
        pace = _Pace(self._sleep, self._pause)
        # One connection for the run: it holds the claim, and writes the progress, so a
        # sender that lost its claim (connection gone) cannot write any either.
        async with self._services.db.connection() as conn:
            clock = self._services.clock
            while broadcast := await self._repo.claim_next(platforms, at=clock(), conn=conn):
                logger.info(
                    "broadcast %s: sending, after user %s", broadcast.id, broadcast.last_user_id
                )
                try:
                    await self._send(broadcast, pace, outcome, conn)
                finally:
                    await asyncio.shield(self._repo.release(broadcast.id, conn=conn))
        return outcome

    async def _send(
        self, broadcast: Broadcast, pace: _Pace, outcome: JobOutcome, conn: Connection
    ) -> None:
        after = broadcast.last_user_id
        while page := await self._repo.recipients(
            broadcast.platforms, after_user_id=after, users=self._users_page, conn=conn
        ):
            for user_id, chats in itertools.groupby(page, key=lambda r: r.user_id):
                delivered = await self._deliver(broadcast, user_id, list(chats), pace)
                outcome.add("sent" if delivered else "failed")
                status = await self._repo.advance(
                    broadcast.id, user_id, delivered=delivered, conn=conn
                )
                if status is not BroadcastStatus.RUNNING:
                    logger.info("broadcast %s: stopped, %s", broadcast.id, status or "deleted")
                    outcome.add("cancelled")
                    return
                after = user_id
        now = self._services.clock()
        async with self._services.db.transaction(conn) as tx:
            done = await self._repo.finish(broadcast.id, at=now, conn=tx)
            if done is None:  # cancelled (or deleted) after the last recipient
                outcome.add("cancelled")
                return
            await self._audit.record(
                done.admin_id,
                "broadcast_done",
                details={
                    "broadcast": done.id,
                    "sent": done.sent,
                    "failed": done.failed,
                    "total": done.total,
                },
                at=now,
                conn=tx,
            )
        outcome.add("broadcasts")
        logger.info("broadcast %s: done, sent %s, failed %s", done.id, done.sent, done.failed)

    async def _deliver(
        self, broadcast: Broadcast, user_id: int, chats: Sequence[Recipient], pace: _Pace
    ) -> bool:
        """True once one of the user's chats accepted the text."""
        for chat in chats:
            await pace.wait()
            messenger = self._services.messengers[chat.platform]
            try:
                await messenger.send_private(chat.chat_id, broadcast.text)
            except DeliveryError as exc:
                logger.info(
                    "broadcast %s to user %s on %s failed: %s",
                    broadcast.id,
                    user_id,
                    chat.platform,
                    exc,
                )
                continue
            return True
        return False


class _Pace:
    """Spaces a run's sends `pause` seconds apart (the first one goes at once)."""

    def __init__(self, sleep: Sleep, pause: float) -> None:
        self._sleep = sleep
        self._pause = pause
        self._first = True

    async def wait(self) -> None:
        if self._first:
            self._first = False
        else:
            await self._sleep(self._pause)
