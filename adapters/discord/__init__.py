"""Discord: gateway events in, `Inbound` to the engine, replies back out.

`adapter` owns the client and its lifecycle, `translate` turns messages and slash
commands into `Inbound`, `channel` renders and sends answers, `slash` exposes the core
commands as application commands, `catch_up` reads the DMs written while the bot was
down. See docs/discord.md for setting up the bot.
"""

from adapters.discord.adapter import DiscordAdapter, DiscordStartError
from adapters.discord.channel import DiscordMessenger

__all__ = ["DiscordAdapter", "DiscordMessenger", "DiscordStartError"]
