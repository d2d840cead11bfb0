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
from core.i18n import N_
from core.storage.codes import CodePurpose, CodeRepository, looks_like_code
from core.storage.merge import MergeRepository, MergeResult

logger = logging.getLogger(__name__)

LINK_CODE_TTL = timedelta(minutes=10)


async def link(ctx: CommandContext, args: str) -> None:
    if await private_only(ctx):
        return
    services, t = ctx.services, ctx.texts
    codes = CodeRepository(services.db)
    if not args:
        code, minutes = await issue_code(ctx, CodePurpose.LINK, LINK_CODE_TTL)
        await ctx.channel.send(
            t.gettext("Your link code: {code}", code=code)
            + "\n"
            + t.ngettext(
                "From your other account (on any platform), send /link {code} within {n} "
                "minute; both accounts then share this conversation and memory. "
                "Never give this code to anyone else.",
                "From your other account (on any platform), send /link {code} within {n} "
                "minutes; both accounts then share this conversation and memory. "
                "Never give this code to anyone else.",
                minutes,
                code=code,
            )
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
            t.gettext(
                "That code is wrong, used or expired. Send /link on your other account for a "
                "new one."
            )
        )
    elif result is None:
        await ctx.channel.send(
            t.gettext(
                "That code belongs to this same conversation, so there is nothing to link: "
                "send it from your other account."
            )
        )
    else:
        logger.info("user %s linked into user %s", ctx.user.id, owner)
        moved_messages = t.ngettext(
            "{n} message", "{n} messages", result.messages + result.archived_messages
        )
        moved_facts = t.ngettext("{n} fact", "{n} facts", result.facts)
        await ctx.channel.send(
            t.gettext(
                "Linked! This account now shares one conversation and memory with your other "
                "account ({messages} and {facts} moved over).",
                messages=moved_messages,
                facts=moved_facts,
            )
        )


LINK_COMMANDS = [
    Command("link", "/link [code]", N_("Link another account to this conversation"), link),
]
