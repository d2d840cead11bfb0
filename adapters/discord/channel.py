"""Answering on Discord: `ReplyChannel`, a streaming `ReplySink`, and the `Messenger`.

Two kinds of place take answers: a channel a message came from (answers in guilds quote
that message) and a slash-command interaction (deferred first, so the first answer edits
the "thinking..." response and later ones are followups). Both are an `Outlet`; the
channel and the sink only split, stream and throttle on top of it.

Discord renders Markdown itself, so text goes out unescaped (only cleaned of characters
no chat shows, `adapters.text.clean`); what must not happen is a reply pinging
`@everyone`, `@here`, a role or a third person, so every send carries `allowed_mentions`
that allow at most the author of the quoted message. discord.py waits out 429s itself
(it sleeps for `retry_after` and retries); other refusals become `DeliveryError`, logged
with the status only, never with the text.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import discord

from adapters.chunking import STREAMING_CURSOR, split_message
from adapters.discord.buttons import view_of
from adapters.text import clean
from core.errors import DeliveryError
from core.models import Platform
from core.ports import Button

logger = logging.getLogger(__name__)

MESSAGE_LIMIT = 2000
EDIT_INTERVAL = 1.2
"""Seconds between progressive edits of a streamed reply (Discord allows ~5 per 5 s)."""

NO_PINGS = discord.AllowedMentions.none()
QUOTE_PINGS = discord.AllowedMentions(everyone=False, users=False, roles=False, replied_user=True)

Clock = Callable[[], float]
Editor = Callable[[str], Awaitable[None]]
"""Replaces the text of one message already sent."""


@dataclass(frozen=True, slots=True)
class Posted:
    """One message sent: its id, and how to edit it."""

    id: str
    edit: Editor


class Outlet(Protocol):
    """Where one reply channel's messages go."""

    async def post(self, text: str, *, first: bool, view: discord.ui.View | None = None) -> Posted:
        """Send one message (`first` of an answer: quote the source), with `view`'s
        buttons under it."""

    async def post_file(self, filename: str, data: bytes, caption: str | None) -> None:
        """Send one file."""

    async def typing(self) -> None:
        """Show that an answer is coming."""


def split_for_discord(text: str) -> list[str]:
    """Chunks of cleaned text that each fit one message; every text sent passes here."""
    return split_message(clean(text), MESSAGE_LIMIT)


def _delivery_error(exc: discord.HTTPException, what: str) -> DeliveryError:
    logger.warning("discord refused to %s: HTTP %s (code %s)", what, exc.status, exc.code)
    return DeliveryError(f"discord refused to {what}: HTTP {exc.status}")


class MessageOutlet:
    """Answers to a message, in the channel (or thread, or DM) it was written in."""

    def __init__(self, source: discord.Message, *, quote: bool) -> None:
        self._source = source
        self._quote = quote

    async def _send(
        self,
        text: str | None,
        *,
        first: bool,
        file: discord.File | None = None,
        view: discord.ui.View | None = None,
    ) -> discord.Message:
        options: dict[str, Any] = {"allowed_mentions": NO_PINGS}
        if file is not None:
            options["file"] = file
        if view is not None:
            options["view"] = view
        if first and self._quote:
            # A deleted source must not cost the answer.
            options["reference"] = self._source.to_reference(fail_if_not_exists=False)
            options["allowed_mentions"] = QUOTE_PINGS
        return await self._source.channel.send(text, **options)

    async def post(self, text: str, *, first: bool, view: discord.ui.View | None = None) -> Posted:
        try:
            sent = await self._send(text, first=first, view=view)
        except discord.HTTPException as exc:
            raise _delivery_error(exc, "send a message") from exc
        return _posted(sent)

    async def post_file(self, filename: str, data: bytes, caption: str | None) -> None:
        file = discord.File(io.BytesIO(data), filename=filename)
        try:
            await self._send(caption, first=True, file=file)
        except discord.HTTPException as exc:
            raise _delivery_error(exc, "send a file") from exc

    async def typing(self) -> None:
        await self._source.channel.typing()


def _posted(sent: discord.Message | discord.WebhookMessage) -> Posted:
    async def edit(text: str) -> None:
        try:
            await sent.edit(content=text, allowed_mentions=NO_PINGS)
        except discord.HTTPException as exc:
            raise _delivery_error(exc, "edit a message") from exc

    return Posted(str(sent.id), edit)


class InteractionOutlet:
    """Answers to a slash command that was deferred: edit the original, then followups."""

    def __init__(self, interaction: discord.Interaction, *, ephemeral: bool) -> None:
        self._interaction = interaction
        self._ephemeral = ephemeral
        self._answered = False

    async def post(self, text: str, *, first: bool, view: discord.ui.View | None = None) -> Posted:
        interaction = self._interaction
        try:
            if not self._answered:
                self._answered = True
                original = await interaction.edit_original_response(
                    content=text, allowed_mentions=NO_PINGS, view=view or discord.utils.MISSING
                )
                return _posted(original)
            followup = await interaction.followup.send(
                text,
                wait=True,
                ephemeral=self._ephemeral,
                allowed_mentions=NO_PINGS,
                view=view or discord.utils.MISSING,
            )
        except discord.HTTPException as exc:
            raise _delivery_error(exc, "answer an interaction") from exc
        return _posted(followup)

    async def post_file(self, filename: str, data: bytes, caption: str | None) -> None:
        interaction = self._interaction
        file = discord.File(io.BytesIO(data), filename=filename)
        try:
            if not self._answered:
                self._answered = True
                await interaction.edit_original_response(
                    content=caption, attachments=[file], allowed_mentions=NO_PINGS
                )
                return
            await interaction.followup.send(
                caption or "", file=file, ephemeral=self._ephemeral, allowed_mentions=NO_PINGS
            )
        except discord.HTTPException as exc:
            raise _delivery_error(exc, "send a file to an interaction") from exc

    async def typing(self) -> None:
        """The deferred response already shows "thinking..."."""


class StreamingSink:
    """One reply: the first partial text is sent at once, then edited at most every
    `interval` seconds; `finish` makes the messages match the final text exactly.

    Text longer than one message is split with `split_for_discord`; chunks already sent are
    edited when they changed, new ones are sent, so nothing is ever sent twice.
    """

    def __init__(self, outlet: Outlet, *, clock: Clock, interval: float) -> None:
        self._outlet = outlet
        self._clock = clock
        self._interval = interval
        self._sent: list[Posted] = []
        self._shown: list[str] = []
        self._last_show: float | None = None
        self._finished = False

    async def update(self, text: str) -> None:
        if self._finished:
            return
        now = self._clock()
        if self._last_show is not None and now - self._last_show < self._interval:
            return
        self._last_show = now
        try:
            await self._show(split_for_discord(text + STREAMING_CURSOR))
        except DeliveryError:
            # Progress is best effort; `finish` tries again with the whole text.
            return

    async def finish(self, text: str) -> str:
        """The whole reply; the id of its first message."""
        self._finished = True
        # Text can clean to nothing (only control characters); the reply still shows.
        chunks = split_for_discord(text) or ["…"]
        await self._show(chunks)
        for stale in self._sent[len(chunks) :]:
            # Streamed text that the final text dropped (e.g. trailing whitespace).
            await stale.edit("…")
        return self._sent[0].id

    async def _show(self, chunks: list[str]) -> None:
        for index, chunk in enumerate(chunks):
            if index < len(self._sent):
                if self._shown[index] != chunk:
                    await self._sent[index].edit(chunk)
                    self._shown[index] = chunk
            else:
                self._sent.append(await self._outlet.post(chunk, first=index == 0))
                self._shown.append(chunk)


class DiscordReplyChannel:
    """`core.ports.ReplyChannel` on top of an `Outlet`."""

    def __init__(
        self, outlet: Outlet, *, clock: Clock = time.monotonic, interval: float = EDIT_INTERVAL
    ) -> None:
        self._outlet = outlet
        self._clock = clock
        self._interval = interval

    async def send(self, text: str, *, buttons: Sequence[Button] = ()) -> None:
        """`text`, split; the buttons under its last part."""
        chunks = split_for_discord(text)
        for index, chunk in enumerate(chunks, start=1):
            last = index == len(chunks)
            await self._outlet.post(
                chunk, first=index == 1, view=view_of(buttons) if last else None
            )

    async def send_file(self, filename: str, data: bytes, caption: str | None = None) -> None:
        await self._outlet.post_file(filename, data, None if caption is None else clean(caption))

    async def typing(self) -> None:
        try:
            await self._outlet.typing()
        except discord.HTTPException as exc:
            logger.debug("typing indicator failed: HTTP %s", exc.status)

    def start_reply(self) -> StreamingSink:
        return StreamingSink(self._outlet, clock=self._clock, interval=self._interval)


class DiscordMessenger:
    """`core.ports.Messenger`: `chat_id` is a user's DM channel id, as the engine
    remembered it from a private message (no DM needs to be opened again)."""

    platform = Platform.DISCORD

    def __init__(self, client: discord.Client) -> None:
        self._client = client

    async def send_private(self, chat_id: str, text: str) -> None:
        if not chat_id.isdigit():
            raise DeliveryError(f"not a Discord channel id: {chat_id!r}")
        channel = self._client.get_partial_messageable(
            int(chat_id), type=discord.ChannelType.private
        )
        try:
            for chunk in split_for_discord(text):
                await channel.send(chunk, allowed_mentions=NO_PINGS)
        except discord.HTTPException as exc:
            # Forbidden: the user blocked the bot or left every shared server;
            # NotFound: the channel is gone. Anything else survived discord.py's retries.
            raise _delivery_error(exc, "send a private message") from exc
