"""Answering, on every platform, the messages a dead process left unanswered.

A platform delivers a message once it is stored, so when the process answering it
dies, nobody would answer it. Its turn expires (`core.storage.turns`), and every
running process looks for such orphans now and then (`Engine.recover`): the first to
find one answers it in the chat it came from.
"""

from __future__ import annotations

import asyncio
import logging

from core.engine import ChannelFor, Engine
from core.errors import StorageUnavailable
from core.models import Platform

logger = logging.getLogger(__name__)

# A dead process's turns expire `core.engine.LEASE_SECONDS` after its last renewal.
EVERY_SECONDS = 5.0


async def recover_forever(
    engine: Engine, platform: Platform, channel_for: ChannelFor, *, every: float = EVERY_SECONDS
) -> None:
    """Look for `platform`'s orphans now and every `every` seconds, until cancelled."""
    while True:
        try:
            await engine.recover(platform, channel_for)
        except StorageUnavailable:
            logger.warning(
                "could not look for unanswered %s messages: database unreachable", platform
            )
        except Exception:
            logger.exception("looking for unanswered %s messages failed", platform)
        await asyncio.sleep(every)
