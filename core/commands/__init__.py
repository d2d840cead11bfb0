"""Platform-neutral user and admin commands; the engine calls `dispatch`."""

from core.commands.base import Command, CommandContext, ParsedCommand, UsageError, parse_command
from core.commands.registry import COMMANDS, dispatch

__all__ = [
    "COMMANDS",
    "Command",
    "CommandContext",
    "ParsedCommand",
    "UsageError",
    "dispatch",
    "parse_command",
]
