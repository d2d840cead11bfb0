"""The core ports on Telegram: `ReplyChannel`, `ReplySink` (streamed replies), `Messenger`.

A reply streams into one message: the first partial text is sent, later partials edit
it at most once per `edit_interval` seconds (Telegram allows about one message per
second per chat), and `finish` makes the last edit and sends what does not fit as
further messages. In groups, the first message of an answer quotes the question.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from telegram.error import BadRequest, TelegramError

from adapters.chunking import STREAMING_CURSOR
from adapters.telegram.sender import Sender, split_for_telegram
from core.errors import DeliveryError
from core.models import Platform
from core.ports import Button

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
"""Monotonic seconds; injected so tests control edit throttling."""


class TelegramReplySink:
    """One streamed reply; see the module doc."""

    def __init__(
        self,
        sender: Sender,
        chat_id: int,
        *,
        reply_to: int | None,
        clock: Clock,
        edit_interval: float,
    ) -> None:
        self._sender = sender
        self._chat_id = chat_id
        self._reply_to = reply_to
        self._clock = clock
        self._edit_interval = edit_interval
        self._message_id: int | None = None
        self._shown: str | None = None
        self._shown_at: float | None = None

    async def update(self, text: str) -> None:
        """Show the reply so far (its first message's worth); throttled; never raises."""
        if not text.strip():
            return
        now = self._clock()
        if self._shown_at is not None and now - self._shown_at < self._edit_interval:
            return
        preview = split_for_telegram(text + STREAMING_CURSOR)[0]
        if preview == self._shown:
            return
        self._shown_at = now
        try:
            await self._show(preview)
        except TelegramError as exc:
            logger.warning("streamed update to chat %s failed: %s", self._chat_id, exc)

    async def _show(self, chunk: str) -> None:
        if self._message_id is None:
            sent = await self._sender.send_chunk(
                self._chat_id, chunk, markdown=True, reply_to=self._reply_to
            )
            self._message_id = sent.message_id
        else:
            await self._sender.edit_chunk(self._chat_id, self._message_id, chunk)
        self._shown = chunk

    async def finish(self, text: str) -> str:
        """The whole reply; the id of its first message. Raises `DeliveryError` when
        Telegram would not take it."""
        chunks = split_for_telegram(text) or ["…"]
        try:
            first, rest = chunks[0], chunks[1:]
            if self._message_id is None or first != self._shown:
                try:
                    await self._show(first)
                except BadRequest as exc:
                    if self._message_id is None:
                        raise
                    # The streamed message is gone (deleted, too old): send a new one.
                    logger.info("final edit in chat %s failed (%s); resending", self._chat_id, exc)
                    self._message_id = None
                    await self._show(first)
            for chunk in rest:
                await self._sender.send_chunk(self._chat_id, chunk, markdown=True)
        except TelegramError as exc:
            raise DeliveryError(f"telegram chat {self._chat_id}: {exc}") from exc
        assert self._message_id is not None
        return str(self._message_id)


class TelegramChannel:
    """The chat one update came from."""

    def __init__(
        self,
        sender: Sender,
        chat_id: int,
        *,
        reply_to: int | None,
        clock: Clock,
        edit_interval: float,
    ) -> None:
        self._sender = sender
        self._chat_id = chat_id
        self._reply_to = reply_to
        self._clock = clock
        self._edit_interval = edit_interval

    async def send(self, text: str, *, buttons: Sequence[Button] = ()) -> None:
        """Command answers and notices: plain text (they are not Markdown), split; the
        buttons as an inline keyboard under the last part."""
        try:
            await self._sender.send_text(
                self._chat_id, text, markdown=False, reply_to=self._reply_to, buttons=buttons
            )
        except TelegramError as exc:
            raise DeliveryError(f"telegram chat {self._chat_id}: {exc}") from exc

    async def send_file(self, filename: str, data: bytes, caption: str | None = None) -> None:
        try:
            await self._sender.send_document(
                self._chat_id, filename, data, caption=caption, reply_to=self._reply_to
            )
        except TelegramError as exc:
            raise DeliveryError(f"telegram chat {self._chat_id}: {exc}") from exc

    async def typing(self) -> None:
        """Show "typing…" for about 5 s (the engine sends it again while a reply is on its
        way, `core.model_slots`)."""
        await self._sender.typing(self._chat_id)

    def start_reply(self) -> TelegramReplySink:
        return TelegramReplySink(
            self._sender,
            self._chat_id,
            reply_to=self._reply_to,
            clock=self._clock,
            edit_interval=self._edit_interval,
        )


class TelegramMessenger:
    """Private messages outside a reply (broadcasts): `core.ports.Messenger`."""

    platform = Platform.TELEGRAM

    def __init__(self, sender: Sender) -> None:
        self._sender = sender

    async def send_private(self, chat_id: str, text: str) -> None:
        try:
            await self._sender.send_text(int(chat_id), text, markdown=False)
        except ValueError as exc:
            raise DeliveryError(f"not a telegram chat id: {chat_id!r}") from exc
        except TelegramError as exc:
            # Forbidden (blocked, deactivated), BadRequest (chat not found), and what is
            # left of network trouble and flood control after retries.
            raise DeliveryError(f"telegram chat {chat_id}: {exc}") from exc
