"""The core commands as Discord slash commands.

Each command gets one optional string option `args` when its usage line has arguments
(`/forget <number|all>`); what the user types there is handed to the engine as the text
`/name args`, exactly like a typed command, so parsing and policy stay in core. Admin
commands carry `default_member_permissions = administrator`, which hides them from
everybody else in guilds; that is only a convenience: the engine checks ADMIN_IDS and
roles on every call, so a forged interaction gets the usual refusal.

Commands are global, usable in guilds and in the bot's DMs, installed with the bot
(not user-installable: a user install would let them run in DMs between two other
people, where the bot cannot answer). A command this version does not have (Discord
clients keep showing removed commands for a while after a sync) is run like any other,
so the engine gives its usual "unknown command" answer instead of a failed interaction.

Descriptions are localised (`CatalogTranslator`, installed with `tree.set_translator`):
each Discord locale gets the description from the catalog of its language (core/i18n),
so a person's client shows the menu in its own language; names stay as they are (they
are what people type).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

import discord
from discord import app_commands

from core.commands.base import Command
from core.i18n import DEFAULT_LANGUAGE, supported, texts

logger = logging.getLogger(__name__)

Runner = Callable[[discord.Interaction, str, str], Awaitable[None]]
"""Called with (interaction, command name, arguments) for every slash command used."""

ADMIN_PERMISSIONS = discord.Permissions(administrator=True)
_DESCRIPTION_MAX = 100


def arguments_of(usage: str) -> str:
    """`/forget <number|all>` -> `<number|all>`; empty when the command takes none."""
    return usage.partition(" ")[2].strip()


class CatalogTranslator(app_commands.Translator):
    """Command descriptions in every Discord locale that has a catalog; None (Discord
    shows the English text) for names, English locales and texts not translated."""

    async def translate(
        self,
        string: app_commands.locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        if context.location is not app_commands.TranslationContextLocation.command_description:
            return None
        language = supported(locale.value)
        if language is None or language == DEFAULT_LANGUAGE:
            return None
        english = string.extras.get("msgid", string.message)
        translated = texts(language).gettext(english)
        return translated[:_DESCRIPTION_MAX] if translated != english else None


def build_tree(
    client: discord.Client, commands: Sequence[Command], run: Runner
) -> app_commands.CommandTree[discord.Client]:
    tree: app_commands.CommandTree[discord.Client] = app_commands.CommandTree(
        client,
        allowed_contexts=app_commands.AppCommandContext(guild=True, dm_channel=True),
        allowed_installs=app_commands.AppInstallationType(guild=True),
    )
    for command in commands:
        tree.add_command(slash_command(command, run))

    @tree.error
    async def on_error(
        interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        if isinstance(error, app_commands.CommandNotFound) and not error.parents:
            logger.info("discord: slash command /%s is not one of ours", error.name)
            await run(interaction, error.name, "")
            return
        logger.error("discord: slash command failed", exc_info=error)

    return tree


def slash_command(command: Command, run: Runner) -> app_commands.Command[Any, ..., None]:
    arguments = arguments_of(command.usage)
    callback = (
        _with_args(command.name, arguments, run) if arguments else _no_args(command.name, run)
    )
    slash: app_commands.Command[Any, ..., None] = app_commands.Command(
        name=command.name,
        description=app_commands.locale_str(
            command.description[:_DESCRIPTION_MAX], msgid=command.description
        ),
        callback=callback,
    )
    if command.admin:
        slash.default_permissions = ADMIN_PERMISSIONS
    return slash


Callback = Callable[..., Coroutine[Any, Any, None]]


def _no_args(name: str, run: Runner) -> Callback:
    async def callback(interaction: discord.Interaction) -> None:
        await run(interaction, name, "")

    return callback


def _with_args(name: str, arguments: str, run: Runner) -> Callback:
    async def callback(interaction: discord.Interaction, args: str | None = None) -> None:
        await run(interaction, name, args or "")

    app_commands.describe(args=arguments[:_DESCRIPTION_MAX])(callback)
    return callback
