"""At most `LLM_MAX_CONCURRENCY` model calls at once, the rest waiting in arrival order,
with the typing indicator shown while they wait (and until the first words arrive)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress

from core import metrics

logger = logging.getLogger(__name__)

# Telegram shows "typing" for about 5 s, Discord for 10: sent again before it fades.
TYPING_EVERY_SECONDS = 4.0


class ModelSlots:
    def __init__(self, limit: int) -> None:
        # asyncio.Semaphore wakes waiters first come, first served.
        self._slots = asyncio.Semaphore(limit)

    @asynccontextmanager
    async def slot(
        self, typing: Callable[[], Awaitable[None]], first_words: asyncio.Event
    ) -> AsyncIterator[None]:
        """Hold one model slot. `typing` is sent now and every few seconds, while
        waiting for the slot and then for the model, until `first_words` is set."""
        keep_typing = asyncio.create_task(_keep_typing(typing, first_words))
        try:
            metrics.MODEL_QUEUE.inc()
            try:
                await self._slots.acquire()
            finally:
                metrics.MODEL_QUEUE.dec()
            try:
                yield
            finally:
                self._slots.release()
        finally:
            keep_typing.cancel()
            with suppress(asyncio.CancelledError):
                await keep_typing


async def _keep_typing(typing: Callable[[], Awaitable[None]], until: asyncio.Event) -> None:
    while not until.is_set():
        try:
            await typing()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("could not show the typing indicator", exc_info=True)
        with suppress(TimeoutError):
            await asyncio.wait_for(until.wait(), TYPING_EVERY_SECONDS)
