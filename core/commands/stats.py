"""`/stats`: a person's own numbers; admins get the deployment's instead
(`core.commands.admin.stats`, audited, with its chart).

Both show one person's data or everyone's, so both answer only in a private chat.
"""

from __future__ import annotations

from core.commands import admin
from core.commands.base import Command, CommandContext, counted, no_arguments, private_only
from core.storage.person_stats import PersonStatsRepository


async def stats(ctx: CommandContext, args: str) -> None:
    no_arguments(args)
    if await private_only(ctx):
        return
    if ctx.is_admin:
        await admin.stats(ctx, args)
        return
    numbers = await PersonStatsRepository(ctx.services.db).of(ctx.user.id)
    await ctx.channel.send(
        "Your numbers:\n"
        f"We first talked on {numbers.since:%Y-%m-%d} (UTC).\n"
        f"Messages: {numbers.messages} so far, yours and mine; kept now: "
        f"{numbers.kept_yours} of yours and {numbers.kept_mine} of mine (/history).\n"
        f"What I know about you: {counted(numbers.facts, 'fact')} (/memory).\n"
        f"Tokens: {numbers.tokens_in} read to answer you, {numbers.tokens_out} written to you."
    )


STATS_COMMANDS = [
    Command(
        "stats",
        "/stats",
        "Your numbers: messages, since when, facts, tokens (admins: everyone's)",
        stats,
    ),
]
