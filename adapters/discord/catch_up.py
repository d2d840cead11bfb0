"""Catching up on DMs written while the bot was down.

Discord's gateway never delivers a message again: one written while no process was
connected exists only in its channel's history. So at start the process that serves
DMs (shard 0) looks at the DM channel of everyone who wrote to the bot privately within
`RECENT`, reads its history after the newest message of theirs the database stored, and
hands each message of theirs to the usual path. One that the gateway delivered
meanwhile is stored once and answered once (the engine knows it by its message id); a
text command that already ran is not run again.

Only DMs: reading the history of every server channel the bot is in would cost one
request per channel at every start, and answering a mention hours later in a
conversation that has moved on would surprise everyone in it. A message the bot refused
without storing it (too long, a file) is refused again if it is the newest in its DM.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

import discord

from core.errors import StorageUnavailable
from core.models import Platform
from core.storage.messages import MessageRepository, PrivateChat

logger = logging.getLogger(__name__)

RECENT = timedelta(days=7)
"""People who wrote privately within this long have their DMs read at start."""
MAX_CHATS = 500
"""At most this many DM channels, the most recently active first (two requests each)."""
MAX_PER_CHAT = 100
"""At most this many messages per channel (one history request), the oldest first."""

Handover = Callable[[discord.Message], Awaitable[None]]
"""Hands one message to the engine; returns once it is stored (or needs no storing), so
one chat's messages are stored in the order they were written."""


async def catch_up(client: discord.Client, messages: MessageRepository, handover: Handover) -> None:
    """Hand over the DMs written while the bot was down; errors are logged here."""
    try:
        chats = await messages.recent_private_chats(
            Platform.DISCORD, within=RECENT, limit=MAX_CHATS
        )
        handed = 0
        for chat in chats:
            handed += await _catch_up_chat(client, chat, handover)
    except StorageUnavailable:
        logger.warning("could not catch up on discord DMs: database unreachable")
        return
    except Exception:
        logger.exception("catching up on discord DMs failed")
        return
    if handed:
        logger.info("caught up on %s discord DMs written while the bot was down", handed)


async def _catch_up_chat(client: discord.Client, chat: PrivateChat, handover: Handover) -> int:
    if not (chat.chat_id.isdigit() and chat.newest_message_id.isdigit()):
        return 0
    handed = 0
    try:
        channel = await client.fetch_channel(int(chat.chat_id))
        if not isinstance(channel, discord.DMChannel):
            return 0
        after = discord.Object(id=int(chat.newest_message_id))
        async for message in channel.history(after=after, oldest_first=True, limit=MAX_PER_CHAT):
            if not message.author.bot:
                await handover(message)
                handed += 1
    except discord.HTTPException as exc:
        # Gone (NotFound), no longer reachable (Forbidden), or failing after discord.py's
        # retries: this DM is skipped, the others are still read.
        logger.warning(
            "could not read discord DM channel %s to catch up: HTTP %s (code %s)",
            chat.chat_id,
            exc.status,
            exc.code,
        )
    return handed
