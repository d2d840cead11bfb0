"""Runs update handlers: one chat's updates in arrival order, different chats at once.

Both polling and webhooks feed updates here, and both need to know when an update's
handler has finished (that is when it may be acknowledged), so `submit` returns the
handler's task. While the database is down the handler is retried with backoff, so the
update is never acknowledged before it is stored. Other handler errors are logged here,
once; a handler that hangs is cancelled after `handler_timeout` so it cannot hold back
acknowledgements forever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from telegram import Update

from core.errors import StorageUnavailable

logger = logging.getLogger(__name__)

# Backoff while the database is down (the engine raises StorageUnavailable).
RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 30.0

Handler = Callable[[Update], Awaitable[None]]


class Dispatcher:
    def __init__(self, handle: Handler, *, handler_timeout: float) -> None:
        self._handle = handle
        self._handler_timeout = handler_timeout
        self._tails: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, update: Update) -> asyncio.Task[None]:
        """Start handling `update` after the chat's earlier updates; the task never fails."""
        chat = update.effective_chat
        key = f"chat:{chat.id}" if chat is not None else f"update:{update.update_id}"
        task = asyncio.create_task(self._run(self._tails.get(key), update))
        self._tails[key] = task
        self._tasks.add(task)

        def forget(done: asyncio.Task[None]) -> None:
            self._tasks.discard(done)
            if self._tails.get(key) is done:
                del self._tails[key]

        task.add_done_callback(forget)
        return task

    async def _run(self, previous: asyncio.Task[None] | None, update: Update) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        delay = RETRY_FIRST_SECONDS
        while True:
            try:
                async with asyncio.timeout(self._handler_timeout):
                    await self._handle(update)
                return
            except StorageUnavailable:
                # Not stored: keep the update unacknowledged and try again; a shutdown
                # meanwhile leaves it to be delivered again after the restart.
                logger.warning(
                    "database unavailable; telegram update %s retried in %.0f s",
                    update.update_id,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)
            except TimeoutError:
                logger.error("telegram update %s took too long and was cancelled", update.update_id)
                return
            except Exception:
                logger.exception("handling telegram update %s failed", update.update_id)
                return

    @property
    def busy(self) -> int:
        return len(self._tasks)

    async def drain(self, grace: float) -> None:
        """Let running handlers finish within `grace` seconds; cancel the rest."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
        if pending:
            logger.warning("cancelling %s telegram handlers still running", len(pending))
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
