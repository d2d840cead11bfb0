"""Every command by name, and `dispatch`, which the engine calls for a parsed command.

`dispatch` owns the rules all commands share: unknown names are the caller's to answer
(it returns False), admin commands refuse non-admins before anything runs (the attempt
is audited as `refused`, with the command's name and not its arguments, which may name
people), a `UsageError` becomes the command's usage line, and admin commands only run
in a private chat (their answers show other people's data).
"""

from __future__ import annotations

import logging

from core.commands.admin import ADMIN_COMMANDS, audit
from core.commands.base import (
    Command,
    CommandContext,
    ParsedCommand,
    UsageError,
    no_arguments,
    private_only,
)
from core.commands.broadcast import BROADCAST_COMMANDS
from core.commands.documents import DOCUMENT_COMMANDS
from core.commands.history import HISTORY_COMMANDS
from core.commands.language import LANGUAGE_COMMANDS
from core.commands.linking import LINK_COMMANDS
from core.commands.persona import PERSONA_COMMANDS
from core.commands.personal_data import PERSONAL_DATA_COMMANDS
from core.commands.stats import STATS_COMMANDS
from core.commands.user import USER_COMMANDS
from core.commands.why import WHY_COMMANDS
from core.i18n import N_

logger = logging.getLogger(__name__)

ADMINS_ONLY = N_("This command is for admins.")


async def help_command(ctx: CommandContext, args: str) -> None:
    """The commands in the person's language; admin commands stay in English (they are
    for the deployment's operators, as their answers are)."""
    no_arguments(args)
    t = ctx.texts
    lines = [t.gettext("Just write to me to talk. Commands:")]
    lines += [f"{c.usage} - {t.gettext(c.description)}" for c in COMMANDS.values() if not c.admin]
    if ctx.is_admin:
        lines.append(t.gettext("Admin commands:"))
        lines += [f"{c.usage} - {c.description}" for c in COMMANDS.values() if c.admin]
    await ctx.channel.send("\n".join(lines))


def build_commands() -> dict[str, Command]:
    """Name -> command, in the order `/help` and the platforms' menus show them."""
    help_ = Command("help", "/help", N_("This list"), help_command)
    ordered = [
        USER_COMMANDS[0],
        help_,
        *USER_COMMANDS[1:],
        *HISTORY_COMMANDS,
        *DOCUMENT_COMMANDS,
        *WHY_COMMANDS,
        *STATS_COMMANDS,
        *PERSONA_COMMANDS,
        *LANGUAGE_COMMANDS,
        *PERSONAL_DATA_COMMANDS,
        *LINK_COMMANDS,
        *ADMIN_COMMANDS,
        *BROADCAST_COMMANDS,
    ]
    commands = {c.name: c for c in ordered}
    assert len(commands) == len(ordered), "duplicate command name"
    return commands


COMMANDS: dict[str, Command] = build_commands()


async def dispatch(ctx: CommandContext, parsed: ParsedCommand) -> bool:
    """Run `parsed`; False when no command has that name (the caller answers that).

    Errors other than `UsageError` propagate to the engine's error boundary.
    """
    command = COMMANDS.get(parsed.name)
    if command is None:
        return False
    if command.admin:
        if not ctx.is_admin:
            logger.info("user %s refused admin command /%s", ctx.user.id, command.name)
            await audit(ctx, "refused", command=command.name)
            await ctx.channel.send(ctx.texts.gettext(ADMINS_ONLY))
            return True
        if await private_only(ctx):
            return True
    logger.info("user %s runs /%s", ctx.user.id, command.name)
    try:
        await command.handler(ctx, parsed.args)
    except UsageError:
        await ctx.channel.send(ctx.texts.gettext("Usage: {usage}", usage=command.usage))
    return True
