"""Commands over a person's data as a whole: `/export` and `/delete_me`.

Both answer only in a private chat, where nobody else reads the answer. What they
cover, and what they leave, is in docs/security.md ("Export", "Erasure").
"""

from __future__ import annotations

import asyncio
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
from core.export import ExportFile, ExportTooLargeError, export_files
from core.recall.user_indexes import UserIndexRepository
from core.storage.codes import CodePurpose, CodeRepository, looks_like_code
from core.storage.exports import ExportClaims
from core.storage.merge import lock_users

logger = logging.getLogger(__name__)

DELETE_CODE_TTL = timedelta(minutes=5)
# How long a running export keeps others of the same person out when its process dies
# before it ends (a living one ends its claim itself).
EXPORT_CLAIM_TTL = timedelta(minutes=10)
EXPORT_RUNNING = "Your export is already being prepared; it will arrive here shortly."
EXPORT_TOO_LARGE = (
    "I couldn't export your data: one item in it is larger than the {mb} MB a file may be "
    "here, so I sent nothing. Please ask the bot's operator for your export."
)


async def export(ctx: CommandContext, args: str) -> None:
    """One export at a time per person, on whichever replica (`ExportClaims`)."""
    no_arguments(args)
    if await private_only(ctx):
        return
    services = ctx.services
    claims = ExportClaims(services.db)
    holder = await claims.claim(ctx.user.id, now=services.clock(), ttl=EXPORT_CLAIM_TTL)
    if holder is None:
        await ctx.channel.send(EXPORT_RUNNING)
        return
    try:
        await _send_export(ctx)
    finally:
        await asyncio.shield(claims.release(ctx.user.id, holder))


async def _send_export(ctx: CommandContext) -> None:
    max_bytes = ctx.services.settings.export_max_bytes
    try:
        files = await export_files(
            ctx.services, ctx.user.id, now=ctx.services.clock(), max_bytes=max_bytes
        )
    except ExportTooLargeError as exc:
        logger.warning("user %s: export not sent: %s", ctx.user.id, exc)
        await ctx.channel.send(EXPORT_TOO_LARGE.format(mb=_megabytes(max_bytes)))
        return
    logger.info(
        "user %s exported %s bytes in %s files",
        ctx.user.id,
        sum(len(f.data) for f in files),
        len(files),
    )
    if len(files) > 1:
        await ctx.channel.send(
            f"Your data is more than one file of {_megabytes(max_bytes)} MB can hold here, "
            f"so it comes in {len(files)} parts (JSON, gzip-compressed): the first holds "
            "everything but our messages, the others the messages, oldest first."
        )
    for number, file in enumerate(files, start=1):
        await ctx.channel.send_file(file.filename, file.data, _caption(file, number, len(files)))


def _caption(file: ExportFile, number: int, parts: int) -> str:
    if parts > 1:
        return f"Your data, part {number} of {parts}."
    if file.filename.endswith(".gz"):
        return "Everything I have stored about you, as JSON (gzip-compressed)."
    return "Everything I have stored about you, as JSON."


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.3g}"


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
    await _drop_own_indexes(ctx, ctx.user.id)


async def _drop_own_indexes(ctx: CommandContext, user_id: int) -> None:
    """The largest users have recall indexes of their own, named after their id and
    defined by it (`core.recall.user_indexes`): dropped now rather than at the
    user_indexes job's next run. Not in the erasure's transaction (a concurrent drop
    cannot be); if it fails, that job drops them."""
    indexes = UserIndexRepository(
        ctx.services.db, dimensions=ctx.services.settings.embedding_dimensions
    )
    try:
        if user_id in await indexes.indexed_users(complete=False):
            await indexes.drop(user_id)
    except Exception:
        logger.warning("user %s: own indexes left to the user_indexes job", user_id, exc_info=True)


PERSONAL_DATA_COMMANDS = [
    Command("export", "/export", "Download all your data as JSON", export),
    Command("delete_me", "/delete_me [code]", "Erase everything about you", delete_me),
]
