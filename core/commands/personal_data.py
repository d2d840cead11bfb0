"""Commands over a person's data as a whole: `/export` and `/delete_me`.

Both answer only in a private chat, where nobody else reads the answer.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from core.commands.base import (
    Command,
    CommandContext,
    UsageError,
    issue_code,
    no_arguments,
    private_only,
)
from core.export import export_json
from core.storage.codes import CodePurpose, CodeRepository, looks_like_code
from core.storage.merge import lock_users

logger = logging.getLogger(__name__)

DELETE_CODE_TTL = timedelta(minutes=5)
EXPORT_FILENAME = "onethread-export.json"


async def export(ctx: CommandContext, args: str) -> None:
    no_arguments(args)
    if await private_only(ctx):
        return
    data = await export_json(ctx.services, ctx.user.id, now=ctx.services.clock())
    logger.info("user %s exported %s bytes", ctx.user.id, len(data))
    await ctx.channel.send_file(
        EXPORT_FILENAME, data, "Everything I have stored about you, as JSON."
    )


async def delete_me(ctx: CommandContext, args: str) -> None:
    """Two steps: a code first, so that erasure is never one mistyped command away."""
    if await private_only(ctx):
        return
    services = ctx.services
    codes = CodeRepository(services.db)
    if not args:
        code, minutes = await issue_code(ctx, CodePurpose.DELETE, DELETE_CODE_TTL)
        await ctx.channel.send(
            "This erases everything I have about you: our conversation, what I remember and "
            "your linked accounts. It cannot be undone.\n"
            f"To confirm, send /delete_me {code} within {minutes} minutes."
        )
        return
    if " " in args or not looks_like_code(args):
        raise UsageError("give the code from /delete_me")
    async with services.db.transaction() as conn:
        owner = await codes.consume(
            args, CodePurpose.DELETE, now=services.clock(), user_id=ctx.user.id, conn=conn
        )
        if owner is not None:
            await lock_users(conn, ctx.user.id)  # let a reply in progress finish first
            await services.users.delete(ctx.user.id, conn=conn)
    if owner is None:
        await ctx.channel.send(
            "That code is wrong or has expired. Send /delete_me to get a new one."
        )
        return
    logger.info("user %s erased themselves", ctx.user.id)
    await ctx.channel.send("Done. Everything about you is erased. Goodbye!")


PERSONAL_DATA_COMMANDS = [
    Command("export", "/export", "Download all your data as JSON", export),
    Command("delete_me", "/delete_me [code]", "Erase everything about you", delete_me),
]
