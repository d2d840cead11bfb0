"""The command interface: what a command receives and how it is declared.

Commands are platform-neutral: they read and write through `Services` and answer
through `ctx.channel`, in the person's language (`ctx.texts`, core/i18n). Adapters
expose them natively (Telegram's command menu, Discord slash commands) from
`Command.name`, `.description` (marked for the catalogs, translated per language by the
adapters) and `.admin`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from config.persona import Persona
from core.errors import OnethreadError
from core.i18n import N_, Texts, texts_for
from core.inbound import Inbound
from core.models import Message, User
from core.ports import ReplyChannel
from core.services import Services
from core.storage.codes import CodePurpose, CodeRepository

PRIVATE_ONLY = N_("Please send this command in a private chat with me.")


class UsageError(OnethreadError):
    """Wrong arguments: the dispatcher answers with the command's usage line."""


@dataclass(frozen=True, slots=True)
class CommandContext:
    services: Services
    persona: Persona
    inbound: Inbound
    user: User
    is_admin: bool
    channel: ReplyChannel
    # Answer one stored user message again through the full pipeline (`/retry`).
    answer_again: Callable[[Message], Awaitable[None]]

    @property
    def texts(self) -> Texts:
        """The bot's texts in the person's language: the one they chose, else their
        platform's."""
        return texts_for(self.user.language, self.inbound.language, self.user.locale)


Handler = Callable[[CommandContext, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    usage: str
    """The command's syntax (`/forget <number|all>`), shown as it is in every language."""
    description: str
    """In English, marked with `N_` (the menus and `/help` translate it)."""
    handler: Handler
    admin: bool = False


_COMMAND = re.compile(r"^/([A-Za-z0-9_]{1,32})(?:@([A-Za-z0-9_]+))?(?:\s+(.*))?$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class ParsedCommand:
    name: str
    args: str
    addressee: str | None


def parse_command(text: str) -> ParsedCommand | None:
    """`/name@bot args` -> its parts; None when the text is not a command."""
    match = _COMMAND.match(text.strip())
    if match is None:
        return None
    return ParsedCommand(match[1].lower(), (match[3] or "").strip(), match[2])


async def private_only(ctx: CommandContext) -> bool:
    """True (after telling the user) when the command must not run in this chat."""
    if ctx.inbound.is_private:
        return False
    await ctx.channel.send(ctx.texts.gettext(PRIVATE_ONLY))
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


def one_line(text: str, limit: int) -> str:
    """`text` on one line (whitespace runs made one space), cut to `limit` characters
    with "…" when longer."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"
