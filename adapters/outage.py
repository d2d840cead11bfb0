"""Riding out a database outage on platforms that do not deliver a message twice.

Telegram keeps an unacknowledged update and delivers it again, so its adapter simply
retries until the database is back. Discord's gateway does not: there the message is
kept in memory and retried with backoff for a while (`HOLD_SECONDS`); only if the
outage lasts longer is it dropped, and the person was already told to expect a late
answer or to write again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from core.engine import Engine
from core.errors import StorageUnavailable
from core.inbound import Inbound
from core.ports import ReplyChannel

logger = logging.getLogger(__name__)

FIRST_DELAY_SECONDS = 1.0
MAX_DELAY_SECONDS = 30.0
HOLD_SECONDS = 600.0


async def handle_through_outage(
    engine: Engine,
    inbound: Inbound,
    channel: ReplyChannel,
    *,
    hold_seconds: float = HOLD_SECONDS,
    first_delay: float = FIRST_DELAY_SECONDS,
    on_stored: Callable[[], None] | None = None,
) -> bool:
    """`engine.handle`, retried while the database is unavailable; False if given up.

    `on_stored` goes to every try (`Engine.handle`): a try can store the message and
    still fail later, so it may be called again by the next one."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + hold_seconds
    delay = first_delay
    while True:
        try:
            await engine.handle(inbound, channel, on_stored=on_stored)
            return True
        except StorageUnavailable:
            if loop.time() + delay > deadline:
                logger.error(
                    "database unavailable for %.0f s; dropped %s message %s",
                    hold_seconds,
                    inbound.platform,
                    inbound.message_id,
                )
                return False
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_DELAY_SECONDS)
