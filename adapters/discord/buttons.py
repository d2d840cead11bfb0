"""Buttons under the bot's messages on Discord (`core.ports.Button`).

A button's `custom_id` is `onethread:` followed by the command it carries. discord.py's
dynamic items route a press of any such button, under any message (also one sent
before a restart), to `CommandButton.callback`, which hands the command to the client's
`runner` as if the person who pressed it had used the slash command. Nothing is kept
per message, and a view of these buttons never times out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import discord

from adapters.discord.slash import Runner
from core.commands.base import parse_command
from core.ports import Button

CUSTOM_ID_PREFIX = "onethread:"


class PressableClient(discord.AutoShardedClient):
    """A client whose buttons run commands through `runner`."""

    def __init__(self, runner: Runner, **options: Any) -> None:
        super().__init__(**options)
        self._runner = runner
        self.add_dynamic_items(CommandButton)

    async def pressed(self, interaction: discord.Interaction, command: str) -> None:
        parsed = parse_command(command)
        if parsed is None:
            return
        await self._runner(interaction, parsed.name, parsed.args)


class CommandButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=re.compile(re.escape(CUSTOM_ID_PREFIX) + r"(?P<command>/.+)", re.DOTALL),
):
    def __init__(self, label: str, command: str) -> None:
        super().__init__(
            discord.ui.Button(
                label=label,
                style=discord.ButtonStyle.secondary,
                custom_id=CUSTOM_ID_PREFIX + command,
            )
        )
        self.command = command

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction,
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> CommandButton:
        label = item.label if isinstance(item, discord.ui.Button) else None
        return cls(label or "", match["command"])

    async def callback(self, interaction: discord.Interaction) -> None:
        client = interaction.client
        if isinstance(client, PressableClient):
            await client.pressed(interaction, self.command)


def view_of(buttons: Sequence[Button]) -> discord.ui.View | None:
    """The buttons as a view to send with a message (None for none)."""
    if not buttons:
        return None
    view = discord.ui.View(timeout=None)
    for button in buttons:
        view.add_item(CommandButton(button.label, button.command))
    return view
