"""Every call that puts something in a Telegram chat, with the fallbacks they all need.

- Text is cleaned of characters no chat shows (`adapters.text.clean`) and split to the
  limit; Markdown is rendered to HTML, and when Telegram answers 400 "can't parse
  entities", the same chunk is sent again as plain text, so a reply is never lost to a
  rendering bug.
- A group upgraded to a supergroup answers `ChatMigrated`: the new id is remembered
  and the call is repeated there (and later calls go there directly).
- Flood control (`RetryAfter`) is waited out by PTB's `AIORateLimiter`, which the bot
  is built with; what still fails surfaces as a `TelegramError` to the caller.

Logs never contain message text (only chat and message ids) or the token.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    Message,
    ReplyParameters,
)
from telegram.constants import ChatAction, ParseMode
from telegram.error import BadRequest, ChatMigrated

from adapters.chunking import split_message
from adapters.telegram.render import markdown_to_html
from adapters.text import clean
from core.ports import Button

logger = logging.getLogger(__name__)

MESSAGE_LIMIT = 4096
"""Telegram's limit for one message's text (after entity parsing)."""

_T = TypeVar("_T")


def split_for_telegram(text: str) -> list[str]:
    """Chunks of cleaned (`adapters.text.clean`) Markdown source that each fit one
    message. Every text the bot sends passes here first.

    Telegram counts UTF-16 code units, so a chunk heavy with emoji is split again.
    """
    chunks: list[str] = []
    for chunk in split_message(clean(text), MESSAGE_LIMIT):
        units = len(chunk.encode("utf-16-le")) // 2
        if units <= MESSAGE_LIMIT:
            chunks.append(chunk)
        else:
            chunks += split_message(chunk, max(64, MESSAGE_LIMIT * len(chunk) // units - 64))
    return chunks


def keyboard(buttons: Sequence[Button]) -> InlineKeyboardMarkup | None:
    """Buttons as an inline keyboard, in one row; a press comes back as a callback query
    carrying the button's command (`callback_data`)."""
    if not buttons:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(b.label, callback_data=b.command) for b in buttons]]
    )


def _cannot_parse(exc: BadRequest) -> bool:
    return "can't parse entities" in exc.message.lower()


def not_modified(exc: BadRequest) -> bool:
    return "message is not modified" in exc.message.lower()


class Sender:
    """Sends to chats through one bot; shared by every channel and the messenger."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self._migrated: dict[int, int] = {}

    def chat(self, chat_id: int) -> int:
        """Where `chat_id` lives now (its supergroup, if it migrated)."""
        return self._migrated.get(chat_id, chat_id)

    def migrated(self, old: int, new: int) -> None:
        logger.info("telegram chat %s migrated to %s", old, new)
        self._migrated[old] = new

    async def _in_chat(self, chat_id: int, call: Callable[[int], Awaitable[_T]]) -> _T:
        target = self.chat(chat_id)
        try:
            return await call(target)
        except ChatMigrated as exc:
            self.migrated(chat_id, exc.new_chat_id)
            return await call(exc.new_chat_id)

    async def send_chunk(
        self,
        chat_id: int,
        chunk: str,
        *,
        markdown: bool,
        reply_to: int | None = None,
        buttons: Sequence[Button] = (),
    ) -> Message:
        """One message of at most `MESSAGE_LIMIT` characters, quoting `reply_to`, with
        `buttons` under it."""
        markup = keyboard(buttons)
        quote = (
            ReplyParameters(reply_to, allow_sending_without_reply=True)
            if reply_to is not None
            else None
        )

        async def send(target: int) -> Message:
            if markdown:
                try:
                    return await self.bot.send_message(
                        target,
                        markdown_to_html(chunk),
                        ParseMode.HTML,
                        reply_parameters=quote,
                        reply_markup=markup,
                    )
                except BadRequest as exc:
                    if not _cannot_parse(exc):
                        raise
                    logger.warning("telegram rejected our HTML in chat %s; sending plain", target)
            return await self.bot.send_message(
                target, chunk, reply_parameters=quote, reply_markup=markup
            )

        return await self._in_chat(chat_id, send)

    async def send_text(
        self,
        chat_id: int,
        text: str,
        *,
        markdown: bool,
        reply_to: int | None = None,
        buttons: Sequence[Button] = (),
    ) -> list[Message]:
        """All of `text`, split to the limit; only the first message quotes `reply_to`,
        only the last one has the `buttons`."""
        chunks = split_for_telegram(text)
        sent: list[Message] = []
        for index, chunk in enumerate(chunks, start=1):
            sent.append(
                await self.send_chunk(
                    chat_id,
                    chunk,
                    markdown=markdown,
                    reply_to=None if sent else reply_to,
                    buttons=buttons if index == len(chunks) else (),
                )
            )
        return sent

    async def edit_chunk(self, chat_id: int, message_id: int, chunk: str) -> None:
        """Replace a message's text with rendered `chunk`; "not modified" is success."""

        async def edit(target: int) -> None:
            try:
                try:
                    await self.bot.edit_message_text(
                        markdown_to_html(chunk), target, message_id, parse_mode=ParseMode.HTML
                    )
                except BadRequest as exc:
                    if not _cannot_parse(exc):
                        raise
                    await self.bot.edit_message_text(chunk, target, message_id)
            except BadRequest as exc:
                if not not_modified(exc):
                    raise

        await self._in_chat(chat_id, edit)

    async def typing(self, chat_id: int) -> None:
        await self._in_chat(
            chat_id, lambda target: self.bot.send_chat_action(target, ChatAction.TYPING)
        )

    async def send_document(
        self,
        chat_id: int,
        filename: str,
        data: bytes,
        *,
        caption: str | None = None,
        reply_to: int | None = None,
    ) -> Message:
        quote = (
            ReplyParameters(reply_to, allow_sending_without_reply=True)
            if reply_to is not None
            else None
        )

        async def send(target: int) -> Message:
            return await self.bot.send_document(
                target,
                InputFile(data, filename=filename),
                caption=None if caption is None else clean(caption),
                reply_parameters=quote,
            )

        return await self._in_chat(chat_id, send)
