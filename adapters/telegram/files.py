"""Telegram's side of `core.media.files.FileSource`: `getFile`, then the file's URL
under the bot's file base (`TELEGRAM_BASE_FILE_URL`, a self-hosted Bot API server's own).

Telegram's Bot API hands out files of at most 20 MB: `getFile` answers "file is too
big" above that, which is reported as `FileTooLarge` like our own limit."""

from __future__ import annotations

from telegram import Bot
from telegram.error import BadRequest, TelegramError

from core.media.files import FileTooLarge, FileUnavailable


class TelegramFiles:
    def __init__(self, bot: Bot) -> None:
        self._bot = bot

    async def fetch(self, ref: str, *, max_bytes: int) -> bytes:
        try:
            file = await self._bot.get_file(ref)
        except BadRequest as exc:
            if "too big" in exc.message.lower():
                raise FileTooLarge(None) from exc
            raise FileUnavailable(f"telegram refused the file: {type(exc).__name__}") from exc
        except TelegramError as exc:
            raise FileUnavailable(
                f"telegram did not hand the file over: {type(exc).__name__}"
            ) from exc
        if file.file_size is not None and file.file_size > max_bytes:
            raise FileTooLarge(file.file_size)
        try:
            data = await file.download_as_bytearray()
        except TelegramError as exc:
            raise FileUnavailable(f"downloading the file failed: {type(exc).__name__}") from exc
        if len(data) > max_bytes:
            raise FileTooLarge(len(data))
        return bytes(data)
