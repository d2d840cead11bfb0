"""Runs update handlers: one chat's updates stored in arrival order, their turns at once.

Both polling and webhooks feed updates here, and both need to know when Telegram may
forget an update: once its message is stored (the engine's `on_stored`), or once its
handler has finished. `submit` returns that moment (`Submission.acknowledgeable`)
besides the handler's task, so an update is acknowledged as soon as a crash could no
longer lose it, however long its reply takes.

A chat's next update starts only when the previous one is acknowledgeable, so a
chat's messages are stored in the order Telegram delivered them; their turns then run
concurrently (the engine orders one person's turns itself). While the database is down
the handler is retried with backoff, so the update is never acknowledgeable before it
is stored, and the chat's later updates wait behind it. Other handler errors are
logged here, once; a handler that hangs is cancelled after `handler_timeout`, which
makes its update acknowledgeable, so one stuck update cannot hold back the rest forever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from telegram import Update

from core.errors import StorageUnavailable

logger = logging.getLogger(__name__)

# Backoff while the database is down (the engine raises StorageUnavailable).
RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 30.0

OnStored = Callable[[], None]
Handler = Callable[[Update, OnStored], Awaitable[None]]
"""Handles one update and calls `on_stored` once Telegram need not deliver it again."""


@dataclass(frozen=True, slots=True)
class Submission:
    """How far one submitted update has got."""

    acknowledgeable: asyncio.Future[None]
    """Done once Telegram need not deliver the update again: its message is stored, or
    its handler finished. Cancelled when the handler was cancelled before either
    (shutdown): the update must then come again."""
    finished: asyncio.Task[None]
    """The handler, retries included; it never fails (errors are logged)."""


class Dispatcher:
    def __init__(self, handle: Handler, *, handler_timeout: float) -> None:
        self._handle = handle
        self._handler_timeout = handler_timeout
        # Per chat, the `acknowledgeable` of its latest update: the next one waits for it.
        self._tails: dict[str, asyncio.Future[None]] = {}
        self._running: dict[int, Submission] = {}

    def submit(self, update: Update) -> Submission:
        """Start handling `update` once the chat's earlier updates are acknowledgeable.

        An update delivered again while it is still being handled (a webhook retry)
        gets the running submission instead of a second handler.
        """
        update_id = update.update_id
        running = self._running.get(update_id)
        if running is not None:
            return running
        chat = update.effective_chat
        key = f"chat:{chat.id}" if chat is not None else f"update:{update_id}"
        acknowledgeable = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(self._run(self._tails.get(key), update, acknowledgeable))
        submission = Submission(acknowledgeable, task)
        self._tails[key] = acknowledgeable
        self._running[update_id] = submission

        def forget(done: asyncio.Task[None]) -> None:
            if not acknowledgeable.done():
                acknowledgeable.cancel()  # cancelled before it was stored
            if self._running.get(update_id) is submission:
                del self._running[update_id]
            if self._tails.get(key) is acknowledgeable:
                del self._tails[key]

        task.add_done_callback(forget)
        return submission

    async def _run(
        self,
        previous: asyncio.Future[None] | None,
        update: Update,
        acknowledgeable: asyncio.Future[None],
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])

        def on_stored() -> None:
            if not acknowledgeable.done():
                acknowledgeable.set_result(None)

        await self._attempt(update, on_stored)
        on_stored()  # finished: delivering it again would not help

    async def _attempt(self, update: Update, on_stored: OnStored) -> None:
        """Run the handler until it returns or fails for a reason other than the database."""
        delay = RETRY_FIRST_SECONDS
        while True:
            try:
                async with asyncio.timeout(self._handler_timeout):
                    await self._handle(update, on_stored)
                return
            except StorageUnavailable:
                # Not stored (or stored, but its reply not recorded): try again; a
                # shutdown meanwhile leaves an unstored update to come again.
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

    async def drain(self, grace: float) -> None:
        """Let running handlers finish within `grace` seconds; cancel the rest."""
        tasks = {submission.finished for submission in self._running.values()}
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace)
        if pending:
            logger.warning("cancelling %s telegram handlers still running", len(pending))
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
