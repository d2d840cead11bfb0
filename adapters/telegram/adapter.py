"""`TelegramAdapter`: the bot's life on Telegram, from getMe to the last handled update.

    adapter = TelegramAdapter(engine, token=..., base_url=..., mode="polling", ...)
    await adapter.start()     # getMe, command menus, then polling or the webhook server
    ...                       # adapter.messenger for broadcasts, adapter.connected for readiness
    await adapter.stop()      # stop fetching, let running handlers finish, close

Updates are translated (`translate.py`) and handed to `Engine.handle`, which owns every
policy decision. Only `message`, `callback_query` (a press of a button under one of our
messages: the command it carries) and `my_chat_member` updates are requested: edited
messages are not, because the conversation already answered the original text.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Literal
from urllib.parse import urlsplit

from telegram import BotCommand, BotCommandScopeChat, CallbackQuery, Update
from telegram.constants import ChatMemberStatus
from telegram.error import TelegramError
from telegram.ext import AIORateLimiter, ExtBot

from adapters.recovery import recover_forever
from adapters.telegram.channel import Clock, TelegramChannel, TelegramMessenger
from adapters.telegram.dispatch import Dispatcher, OnStored
from adapters.telegram.files import TelegramFiles
from adapters.telegram.polling import Poller
from adapters.telegram.sender import Sender
from adapters.telegram.translate import BotIdentity, callback_inbound, to_inbound
from adapters.telegram.webhook import WebhookServer
from core.commands.base import Command
from core.engine import Engine
from core.i18n import DEFAULT_LANGUAGE, languages, texts
from core.inbound import ChatKind
from core.models import Message, Platform
from core.ports import ReplyChannel

logger = logging.getLogger(__name__)

ALLOWED_UPDATES = ("message", "callback_query", "my_chat_member")

Mode = Literal["polling", "webhook"]


def file_url_for(base_url: str) -> str:
    """The file-download base that goes with an API base (`.../bot` -> `.../file/bot`)."""
    head, _, tail = base_url.rstrip("/").rpartition("/")
    return f"{head}/file/{tail}"


class TelegramAdapter:
    def __init__(
        self,
        engine: Engine,
        *,
        token: str,
        base_url: str = "https://api.telegram.org/bot",
        base_file_url: str | None = None,
        mode: Mode = "polling",
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        webhook_listen: str = "0.0.0.0",  # noqa: S104 - a server inside a container
        webhook_port: int = 8443,
        admin_chat_ids: Sequence[str] = (),
        commands: Sequence[Command] = (),
        poll_timeout: int = 30,
        edit_interval: float = 1.0,
        flood_retries: int = 3,
        handler_timeout: float = 600.0,
        shutdown_timeout: float = 10.0,
        webhook_ack_timeout: float = 50.0,
        clock: Clock = time.monotonic,
    ) -> None:
        if mode == "webhook" and (not webhook_url or not webhook_secret):
            raise ValueError("webhook mode needs webhook_url and webhook_secret")
        self._engine = engine
        self._mode = mode
        self._webhook_url = webhook_url
        self._webhook_secret = webhook_secret or ""
        self._webhook_listen = webhook_listen
        self._webhook_port = webhook_port
        self._admin_chat_ids = list(admin_chat_ids)
        self._commands = list(commands)
        self._poll_timeout = poll_timeout
        self._edit_interval = edit_interval
        self._shutdown_timeout = shutdown_timeout
        self._webhook_ack_timeout = webhook_ack_timeout
        self._clock = clock
        # The rate limiter paces sends below Telegram's limits and waits out RetryAfter.
        self._bot = ExtBot(
            token,
            base_url=base_url,
            base_file_url=base_file_url or file_url_for(base_url),
            rate_limiter=AIORateLimiter(max_retries=flood_retries),
        )
        self._sender = Sender(self._bot)
        self._dispatcher = Dispatcher(self._handle_update, handler_timeout=handler_timeout)
        self.messenger = TelegramMessenger(self._sender)
        self.files = TelegramFiles(self._bot)
        self._me: BotIdentity | None = None
        self._poller: Poller | None = None
        self._webhook: WebhookServer | None = None
        self._recovery: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        """Ready: polling got an answer from Telegram lately, or the webhook is serving."""
        if self._poller is not None:
            return self._poller.connected
        return self._webhook is not None

    @property
    def webhook_port(self) -> int | None:
        """The port the webhook server listens on, once started."""
        return self._webhook.port if self._webhook is not None else None

    async def start(self) -> None:
        """Log in, publish the command menus, start receiving; undone if it fails."""
        try:
            await self._bot.initialize()
            me = self._bot.bot
            self._me = BotIdentity(me.id, me.username or "")
            logger.info("telegram bot @%s (%s) starting in %s mode", me.username, me.id, self._mode)
            await self._publish_commands()
            if self._mode == "webhook":
                await self._start_webhook()
            else:
                await self._bot.delete_webhook(drop_pending_updates=False)
                self._poller = Poller(
                    self._bot,
                    self._dispatcher,
                    timeout=self._poll_timeout,
                    allowed_updates=ALLOWED_UPDATES,
                )
                self._poller.start()
            self._recovery = asyncio.create_task(
                recover_forever(self._engine, Platform.TELEGRAM, self._orphan_channel),
                name="telegram-recovery",
            )
        except BaseException:
            await self.stop()
            raise

    async def _start_webhook(self) -> None:
        assert self._webhook_url is not None
        server = WebhookServer(
            self._bot,
            self._dispatcher,
            listen=self._webhook_listen,
            port=self._webhook_port,
            path=urlsplit(self._webhook_url).path or "/",
            secret=self._webhook_secret,
            ack_timeout=self._webhook_ack_timeout,
        )
        await server.start()
        self._webhook = server
        # Every replica sets the same webhook: idempotent. It is not deleted on stop,
        # because the other replicas keep serving it.
        await self._bot.set_webhook(
            self._webhook_url,
            secret_token=self._webhook_secret,
            allowed_updates=ALLOWED_UPDATES,
        )

    async def stop(self) -> None:
        """Stop receiving, let running handlers finish (up to the timeout), log out."""
        recovery, self._recovery = self._recovery, None
        if recovery is not None:
            recovery.cancel()
            with suppress(asyncio.CancelledError):
                await recovery
        poller, self._poller = self._poller, None
        webhook, self._webhook = self._webhook, None
        if poller is not None:
            await poller.stop(self._shutdown_timeout)
        if webhook is not None:
            await webhook.stop(self._shutdown_timeout)
        await self._dispatcher.drain(self._shutdown_timeout)
        await self._bot.shutdown()

    @asynccontextmanager
    async def _orphan_channel(
        self, message: Message, private: bool
    ) -> AsyncIterator[ReplyChannel | None]:
        """Where to answer a message a dead process left unanswered (`recover_forever`)."""
        if message.chat_id is None:
            yield None
            return
        replied = message.platform_message_id
        yield TelegramChannel(
            self._sender,
            int(message.chat_id),
            reply_to=None if private or replied is None else int(replied),
            clock=self._clock,
            edit_interval=self._edit_interval,
        )

    async def _publish_commands(self) -> None:
        """The command menus: user commands for all, in English by default and in each
        language with a catalog for people whose app is in it (`language_code`); every
        command, in English, in admins' private chats (operators: the admin commands
        and their answers are English)."""
        everyone = [BotCommand(c.name, c.description) for c in self._commands]
        for language in languages():
            t = texts(language)
            users = [
                BotCommand(c.name, t.gettext(c.description)) for c in self._commands if not c.admin
            ]
            code = None if language == DEFAULT_LANGUAGE else language
            try:
                await self._bot.set_my_commands(users, language_code=code)
            except TelegramError as exc:
                logger.warning("could not set the telegram command menu (%s): %s", language, exc)
        if not any(c.admin for c in self._commands):
            return
        for chat_id in self._admin_chat_ids:
            try:
                await self._bot.set_my_commands(everyone, scope=BotCommandScopeChat(int(chat_id)))
            except (TelegramError, ValueError) as exc:
                # Typically "chat not found": that admin has not started the bot yet.
                logger.warning("could not set the admin command menu for %s: %s", chat_id, exc)

    async def _handle_update(self, update: Update, on_stored: OnStored) -> None:
        """Hand a message to the engine; `on_stored` tells the dispatcher when Telegram
        may forget the update (updates that never reach the engine: when this returns)."""
        assert self._me is not None
        if update.my_chat_member is not None:
            change = update.my_chat_member
            status = change.new_chat_member.status
            if status in (ChatMemberStatus.LEFT, ChatMemberStatus.BANNED):
                logger.info("telegram bot removed from chat %s", change.chat.id)
            else:
                logger.info("telegram bot is %s in chat %s", status, change.chat.id)
            return
        if update.callback_query is not None:
            await self._pressed(update.callback_query, on_stored)
            return
        message = update.message
        if message is None:
            return  # edited messages, channel posts: not asked for, ignored if they come
        if message.migrate_to_chat_id is not None:
            self._sender.migrated(message.chat.id, message.migrate_to_chat_id)
            return
        inbound = to_inbound(message, self._me)
        if inbound is None:
            return
        channel = TelegramChannel(
            self._sender,
            message.chat.id,
            reply_to=None if inbound.chat_kind is ChatKind.PRIVATE else message.message_id,
            clock=self._clock,
            edit_interval=self._edit_interval,
        )
        await self._engine.handle(inbound, channel, on_stored=on_stored)

    async def _pressed(self, query: CallbackQuery, on_stored: OnStored) -> None:
        """A button pressed: stop the client's spinner at once, then run the command the
        button carries, answered in the chat with a new message."""
        try:
            await self._bot.answer_callback_query(query.id)
        except TelegramError as exc:
            # Typically "query is too old": the press still counts.
            logger.info("could not answer telegram callback query %s: %s", query.id, exc)
        inbound = callback_inbound(query)
        if inbound is None or query.message is None:
            return
        channel = TelegramChannel(
            self._sender,
            query.message.chat.id,
            reply_to=None,
            clock=self._clock,
            edit_interval=self._edit_interval,
        )
        await self._engine.handle(inbound, channel, on_stored=on_stored)
