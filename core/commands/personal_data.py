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
from core.i18n import N_, Texts
from core.recall.user_indexes import UserIndexRepository
from core.storage.codes import CodePurpose, CodeRepository, looks_like_code
from core.storage.exports import ExportClaims
from core.storage.merge import lock_users

logger = logging.getLogger(__name__)

DELETE_CODE_TTL = timedelta(minutes=5)
# How long a running export keeps others of the same person out when its process dies
# before it ends (a living one ends its claim itself).
EXPORT_CLAIM_TTL = timedelta(minutes=10)
EXPORT_RUNNING = N_("Your export is already being prepared; it will arrive here shortly.")
EXPORT_TOO_LARGE = N_(
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
        await ctx.channel.send(ctx.texts.gettext(EXPORT_RUNNING))
        return
    try:
        await _send_export(ctx)
    finally:
        await asyncio.shield(claims.release(ctx.user.id, holder))


async def _send_export(ctx: CommandContext) -> None:
    max_bytes, t = ctx.services.settings.export_max_bytes, ctx.texts
    try:
        files = await export_files(
            ctx.services, ctx.user.id, now=ctx.services.clock(), max_bytes=max_bytes
        )
    except ExportTooLargeError as exc:
        logger.warning("user %s: export not sent: %s", ctx.user.id, exc)
        await ctx.channel.send(t.gettext(EXPORT_TOO_LARGE, mb=_megabytes(max_bytes)))
        return
    logger.info(
        "user %s exported %s bytes in %s files",
        ctx.user.id,
        sum(len(f.data) for f in files),
        len(files),
    )
    if len(files) > 1:
        await ctx.channel.send(
            t.gettext(
                "Your data is more than one file of {mb} MB can hold here, so it comes in "
                "{parts} parts (JSON, gzip-compressed): the first holds everything but our "
                "messages, the others the messages, oldest first.",
                mb=_megabytes(max_bytes),
                parts=len(files),
            )
        )
    for number, file in enumerate(files, start=1):
        caption = _caption(t, file, number, len(files))
        await ctx.channel.send_file(file.filename, file.data, caption)


def _caption(t: Texts, file: ExportFile, number: int, parts: int) -> str:
    if parts > 1:
        return t.gettext("Your data, part {number} of {parts}.", number=number, parts=parts)
    if file.filename.endswith(".gz"):
        return t.gettext("Everything I have stored about you, as JSON (gzip-compressed).")
    return t.gettext("Everything I have stored about you, as JSON.")


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.3g}"


async def delete_me(ctx: CommandContext, args: str) -> None:
    """Two steps: a code first, so that erasure is never one mistyped command away."""
    if await private_only(ctx):
        return
    services, t = ctx.services, ctx.texts
    codes = CodeRepository(services.db)
    if not args:
        code, minutes = await issue_code(ctx, CodePurpose.DELETE, DELETE_CODE_TTL)
        await ctx.channel.send(
            t.gettext(
                "This erases everything I have about you: our conversation, what I remember "
                "and your linked accounts. It cannot be undone."
            )
            + "\n"
            + t.ngettext(
                "To confirm, send /delete_me {code} within {n} minute.",
                "To confirm, send /delete_me {code} within {n} minutes.",
                minutes,
                code=code,
            )
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
            t.gettext("That code is wrong or has expired. Send /delete_me to get a new one.")
        )
        return
    logger.info("user %s erased themselves", ctx.user.id)
    await ctx.channel.send(t.gettext("Done. Everything about you is erased. Goodbye!"))
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
    Command("export", "/export", N_("Download all your data as JSON"), export),
    Command("delete_me", "/delete_me [code]", N_("Erase everything about you"), delete_me),
]
