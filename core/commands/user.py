"""Commands every user has: about the bot and their memory (their data as a whole:
`core.commands.personal_data`).

Commands that show or erase personal data answer only in a private chat: in a group,
`/memory` would read one person's facts out to everyone.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from core.commands.base import Command, CommandContext, UsageError, no_arguments, private_only
from core.models import MessageStatus

logger = logging.getLogger(__name__)

# A pending message younger than this is probably still being answered.
RETRY_PENDING_AFTER = timedelta(minutes=1)


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
    Command("retry", "/retry", "Answer your last message again if it failed", retry),
]
