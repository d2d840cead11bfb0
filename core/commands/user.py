"""Commands every user has: about the bot, their memory, their data.

Commands that show or erase personal data answer only in a private chat: in a group,
`/memory` would read one person's facts out to everyone.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from core.commands.base import Command, CommandContext, UsageError
from core.export import export_json
from core.models import MessageStatus
from core.storage.codes import CodePurpose, CodeRepository, looks_like_code
from core.storage.merge import lock_users

logger = logging.getLogger(__name__)

DELETE_CODE_TTL = timedelta(minutes=5)
# A pending message younger than this is probably still being answered.
RETRY_PENDING_AFTER = timedelta(minutes=1)
EXPORT_FILENAME = "onethread-export.json"
PRIVATE_ONLY = "Please send this command in a private chat with me."


async def private_only(ctx: CommandContext) -> bool:
    """True (after telling the user) when the command must not run in this chat."""
    if ctx.inbound.is_private:
        return False
    await ctx.channel.send(PRIVATE_ONLY)
    return True


async def issue_code(ctx: CommandContext, purpose: CodePurpose, ttl: timedelta) -> tuple[str, int]:
    """A fresh one-time code for the caller, and its lifetime in whole minutes."""
    code = await CodeRepository(ctx.services.db).create(
        ctx.user.id, purpose, now=ctx.services.clock(), ttl=ttl
    )
    return code, int(ttl.total_seconds() // 60)


def no_arguments(args: str) -> None:
    if args:
        raise UsageError("this command takes no arguments")


async def start(ctx: CommandContext, args: str) -> None:
    name = ctx.user.display_name or ctx.inbound.display_name
    hello = f"Hi {name}!" if name else "Hi!"
    await ctx.channel.send(
        f"{hello} I keep one conversation with you, wherever you write to me, and I remember "
        "what matters to you between chats. Just talk to me.\n"
        "Send /help to see what else I can do, /memory to see what I know about you."
    )


async def memory(ctx: CommandContext, args: str) -> None:
    no_arguments(args)
    if await private_only(ctx):
        return
    facts = await ctx.services.facts.valid(ctx.user.id)
    if not facts:
        await ctx.channel.send("I don't know anything about you yet.")
        return
    lines = [f"{n}. {fact.content}" for n, fact in enumerate(facts, start=1)]
    await ctx.channel.send(
        "What I know about you:\n" + "\n".join(lines) + "\n\nSend /forget <number> or /forget all."
    )


async def forget(ctx: CommandContext, args: str) -> None:
    """Numbers are positions in `/memory`'s list, which both read from `facts.valid`."""
    if not args:
        raise UsageError("give a number from /memory, or all")
    if await private_only(ctx):
        return
    if args.lower() == "all":
        removed = await ctx.services.facts.delete_all(ctx.user.id)
        logger.info("user %s forgot all %s facts", ctx.user.id, removed)
        await ctx.channel.send(
            f"Done: I forgot everything I knew about you ({removed} facts)."
            if removed
            else "There was nothing to forget."
        )
        return
    if not args.isdigit() or len(args) > 6:
        raise UsageError("give a number from /memory, or all")
    number = int(args)
    facts = await ctx.services.facts.valid(ctx.user.id)
    if not 1 <= number <= len(facts):
        await ctx.channel.send(
            f"There is no fact {number}; /memory lists {len(facts)}."
            if facts
            else "I don't know anything about you, so there is nothing to forget."
        )
        return
    fact = facts[number - 1]
    await ctx.services.facts.delete(ctx.user.id, fact.id)
    logger.info("user %s forgot fact %s", ctx.user.id, fact.id)
    await ctx.channel.send(f'Forgotten: "{fact.content}"')


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


async def retry(ctx: CommandContext, args: str) -> None:
    """Answer the latest user message again when it failed (or seems stuck)."""
    no_arguments(args)
    message = await ctx.services.messages.latest_from_user(ctx.user.id)
    if message is None or message.status is MessageStatus.ANSWERED:
        await ctx.channel.send("There is nothing to retry.")
        return
    stuck = ctx.services.clock() - message.created_at >= RETRY_PENDING_AFTER
    if message.status is MessageStatus.PENDING and not stuck:
        await ctx.channel.send("I'm still working on your last message.")
        return
    logger.info("user %s retries message %s", ctx.user.id, message.id)
    await ctx.answer_again(message)


USER_COMMANDS = [
    Command("start", "/start", "Say hello and see what I do", start),
    Command("memory", "/memory", "What I remember about you", memory),
    Command("forget", "/forget <number|all>", "Forget one thing (see /memory) or all", forget),
    Command("export", "/export", "Download all your data as JSON", export),
    Command("delete_me", "/delete_me [code]", "Erase everything about you", delete_me),
    Command("retry", "/retry", "Answer your last message again if it failed", retry),
]
