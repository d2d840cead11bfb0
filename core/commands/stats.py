"""`/stats`: a person's own numbers; admins get the deployment's instead
(`core.commands.admin.stats`, audited, with its chart).

Both show one person's data or everyone's, so both answer only in a private chat.
"""

from __future__ import annotations

from core.commands import admin
from core.commands.base import Command, CommandContext, no_arguments, private_only
from core.i18n import N_
from core.storage.person_stats import PersonStatsRepository


async def stats(ctx: CommandContext, args: str) -> None:
    no_arguments(args)
    if await private_only(ctx):
        return
    if ctx.is_admin:
        await admin.stats(ctx, args)
        return
    numbers = await PersonStatsRepository(ctx.services.db).of(ctx.user.id)
    t = ctx.texts
    lines = [
        t.gettext("Your numbers:"),
        t.gettext("We first talked on {date} (UTC).", date=f"{numbers.since:%Y-%m-%d}"),
        t.gettext(
            "Messages: {messages} so far, yours and mine; kept now: {yours} of yours and "
            "{mine} of mine (/history).",
            messages=numbers.messages,
            yours=numbers.kept_yours,
            mine=numbers.kept_mine,
        ),
        t.ngettext(
            "What I know about you: {n} fact (/memory).",
            "What I know about you: {n} facts (/memory).",
            numbers.facts,
        ),
        t.gettext(
            "Tokens: {read} read to answer you, {written} written to you.",
            read=numbers.tokens_in,
            written=numbers.tokens_out,
        ),
    ]
    await ctx.channel.send("\n".join(lines))


STATS_COMMANDS = [
    Command(
        "stats",
        "/stats",
        N_("Your numbers: messages, since when, facts, tokens (admins: everyone's)"),
        stats,
    ),
]
