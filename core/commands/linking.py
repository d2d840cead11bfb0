"""`/link`: one person, several accounts, one conversation.

`/link` gives a code; `/link CODE` sent from another account merges that account's
user into the code owner's (the rules are in `core.storage.merge`). Checking the code,
using it up and merging happen in one transaction, so a failed merge leaves the code
usable and a used code cannot merge twice.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from core.commands.base import Command, CommandContext, UsageError, issue_code, private_only
from core.storage.codes import CodePurpose, CodeRepository, looks_like_code
from core.storage.merge import MergeRepository, MergeResult

logger = logging.getLogger(__name__)

LINK_CODE_TTL = timedelta(minutes=10)


async def link(ctx: CommandContext, args: str) -> None:
    if await private_only(ctx):
        return
    services = ctx.services
    codes = CodeRepository(services.db)
    if not args:
        code, minutes = await issue_code(ctx, CodePurpose.LINK, LINK_CODE_TTL)
        await ctx.channel.send(
            f"Your link code: {code}\n"
            f"From your other account (on any platform), send /link {code} within {minutes} "
            "minutes; both accounts then share this conversation and memory. "
            "Never give this code to anyone else."
        )
        return
    if " " in args or not looks_like_code(args):
        raise UsageError("give the code that /link showed on your other account")
    result: MergeResult | None = None
    async with services.db.transaction() as conn:
        owner = await codes.owner(
            args, CodePurpose.LINK, now=services.clock(), lock=True, conn=conn
        )
        if owner is not None and owner != ctx.user.id:
            await codes.consume(args, CodePurpose.LINK, now=services.clock(), conn=conn)
            result = await MergeRepository(services.db).merge(owner, ctx.user.id, conn=conn)
    if owner is None:
        await ctx.channel.send(
            "That code is wrong, used or expired. Send /link on your other account for a new one."
        )
    elif result is None:
        await ctx.channel.send(
            "That code belongs to this same conversation, so there is nothing to link: send it "
            "from your other account."
        )
    else:
        logger.info("user %s linked into user %s", ctx.user.id, owner)
        await ctx.channel.send(
            "Linked! This account now shares one conversation and memory with your other "
            f"account ({result.messages + result.archived_messages} messages and "
            f"{result.facts} facts moved over)."
        )


LINK_COMMANDS = [
    Command("link", "/link [code]", "Link another account to this conversation", link),
]
