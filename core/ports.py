"""What the engine needs from a platform: a way to answer, and a way to reach people.

Adapters implement these; the engine never knows which platform it talks to.
Implementations handle the platform's limits themselves: splitting long text,
rendering Markdown safely, throttling edits, waiting out rate limits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from core.models import Platform

BUTTON_COMMAND_MAX_BYTES = 64
"""Telegram's limit for what a button carries (`callback_data`); Discord's is 100."""


@dataclass(frozen=True, slots=True)
class Button:
    """A button under a message: pressing it sends `command` (e.g. `/history 1234`) as the
    person who pressed it, exactly as if they had typed it, so the engine checks it like
    any command. Platforms without buttons show the command instead."""

    label: str
    command: str

    def __post_init__(self) -> None:
        if len(self.command.encode()) > BUTTON_COMMAND_MAX_BYTES:
            raise ValueError(f"a button's command is at most {BUTTON_COMMAND_MAX_BYTES} bytes")


class ReplySink(Protocol):
    """One reply being written, shown progressively where the platform allows it."""

    async def update(self, text: str) -> None:
        """The reply so far. May be throttled or ignored; must not raise for delivery."""

    async def finish(self, text: str) -> str | None:
        """The complete reply: render it, split it to the platform's limits, send it.
        The platform's id of the reply's (first) message, where it has ids: a person
        answering that message with `/why` asks about this reply."""


class ReplyChannel(Protocol):
    """The chat one inbound message came from."""

    async def send(self, text: str, *, buttons: Sequence[Button] = ()) -> None:
        """Send a complete message (command answers, notices), with `buttons` under it
        (under its last part, when it is split)."""

    async def send_file(self, filename: str, data: bytes, caption: str | None = None) -> None:
        """Send a document (e.g. `/export`)."""

    async def typing(self) -> None:
        """Show that a reply is being prepared."""

    def start_reply(self) -> ReplySink:
        """Begin a (streamed) reply to the inbound message."""


class Messenger(Protocol):
    """Reaches a person outside a reply (broadcasts) on one platform."""

    platform: Platform

    async def send_private(self, chat_id: str, text: str) -> None:
        """Send to a private chat; raise `DeliveryError` when it cannot be delivered."""
