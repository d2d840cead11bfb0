"""`DiscordAdapter`: the bot's Discord presence, with an explicit async lifecycle.

    adapter = DiscordAdapter(engine, token=..., commands=COMMANDS.values(), messages=...)
    await adapter.start()     # log in, sync slash commands, connect; returns once ready
    ...                       # adapter.messenger reaches users for broadcasts
    await adapter.stop()      # stop taking events, let handlers finish, disconnect

Each gateway event runs in its own task (discord.py dispatches that way); the adapter
only translates and hands it to `Engine.handle`, which owns every policy. Slash
commands and presses of the buttons under the bot's messages (`buttons.py`) go the same
way, as commands. Edited
messages (MESSAGE_UPDATE) are deliberately ignored: the bot already answered the
original, and answering edits would fork the one conversation.

Discord never delivers a message twice, so once ready the adapter also answers what
would otherwise be lost: messages a dead process stored but never answered
(`adapters.recovery`, replying to the original message), and DMs written while no
process was connected (`catch_up`, from the channels' history).

Sharding: discord.py's `AutoShardedClient` runs this process's `shard_ids` out of
`shard_count` (both from DISCORD_SHARD_IDS / DISCORD_SHARD_COUNT); without them Discord
recommends the count and this process runs every shard.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any

import discord

from adapters.discord.buttons import PressableClient
from adapters.discord.catch_up import catch_up
from adapters.discord.channel import (
    EDIT_INTERVAL,
    Clock,
    DiscordMessenger,
    DiscordReplyChannel,
    InteractionOutlet,
    MessageOutlet,
)
from adapters.discord.files import DiscordFiles
from adapters.discord.slash import CatalogTranslator, Runner, build_tree
from adapters.discord.translate import command_inbound, to_inbound
from adapters.outage import handle_through_outage
from adapters.recovery import recover_forever
from core.commands.base import Command
from core.engine import Engine
from core.errors import OnethreadError
from core.models import Message, Platform
from core.ports import ReplyChannel
from core.storage.messages import MessageRepository

logger = logging.getLogger(__name__)

INTENTS = discord.Intents(guilds=True, guild_messages=True, dm_messages=True, message_content=True)
"""MESSAGE CONTENT is privileged: without it guild messages arrive with empty text
unless they mention the bot, so replies to the bot could not be read."""


class DiscordStartError(OnethreadError):
    """The bot could not log in, sync its commands or connect to the gateway."""


class _Client(PressableClient):
    """discord.py calls `on_<event>` methods; these forward to the adapter, and so do
    presses of the buttons under the bot's messages (`on_press`, as slash commands)."""

    def __init__(
        self,
        on_message: Callable[[discord.Message], Awaitable[None]],
        on_press: Runner,
        **options: Any,
    ) -> None:
        # Voice is never used; don't warn about its missing libraries at every start.
        discord.VoiceClient.warn_nacl = False
        discord.VoiceClient.warn_dave = False
        super().__init__(on_press, intents=INTENTS, **options)
        self._forward_message = on_message

    async def on_message(self, message: discord.Message) -> None:
        await self._forward_message(message)


class DiscordAdapter:
    def __init__(
        self,
        engine: Engine,
        *,
        token: str,
        commands: Sequence[Command],
        messages: MessageRepository | None = None,
        api_base_url: str | None = None,
        shard_ids: list[int] | None = None,
        shard_count: int | None = None,
        ready_timeout: float = 60.0,
        stop_timeout: float = 10.0,
        guild_ready_timeout: float = 2.0,
        edit_interval: float = EDIT_INTERVAL,
        clock: Clock = time.monotonic,
    ) -> None:
        """`messages`: where to find the DMs to catch up on at start (None: none).
        `api_base_url`: Discord's REST API, e.g. `https://discord.com/api/v10`; it is
        discord.py's for the whole process (`discord.http.Route.BASE`), None leaves
        it as it is. `guild_ready_timeout` is how long discord.py waits for further
        guilds after READY before it calls the shard ready; tests make it short."""
        if shard_ids is not None and shard_count is None:
            raise ValueError("shard_ids need shard_count")
        self._engine = engine
        self._token = token
        self._messages = messages
        self._api_base_url = api_base_url
        self._ready_timeout = ready_timeout
        self._stop_timeout = stop_timeout
        self._edit_interval = edit_interval
        self._clock = clock
        self._client = _Client(
            self._on_message,
            self._on_command,
            shard_ids=shard_ids,
            shard_count=shard_count,
            guild_ready_timeout=guild_ready_timeout,
            chunk_guilds_at_startup=False,
        )
        self._tree = build_tree(self._client, commands, self._on_command)
        self.messenger = DiscordMessenger(self._client)
        self.files = DiscordFiles(self._client)
        self._gateway: asyncio.Task[None] | None = None
        self._logged_in = False
        self._started = False
        self._accepting = False
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._recovery: asyncio.Task[None] | None = None
        self._catch_up: asyncio.Task[None] | None = None
        self.processed = 0
        """Events finished since start, ignored ones included (for tests and health)."""

    @property
    def connected(self) -> bool:
        """Started, ready, and every shard of this process has an open gateway."""
        client = self._client
        if self._gateway is None or self._gateway.done() or client.is_closed():
            return False
        shards = client.shards.values()
        return client.is_ready() and all(not shard.is_closed() for shard in shards)

    @property
    def in_flight(self) -> int:
        """Events being handled right now."""
        return len(self._in_flight)

    @property
    def catching_up(self) -> bool:
        """Still reading the DMs written while the bot was down (`catch_up`)."""
        return self._catch_up is not None and not self._catch_up.done()

    async def start(self) -> None:
        """Log in, sync the slash commands, connect every shard; return once ready.

        On failure everything opened so far is closed again and `DiscordStartError`
        is raised.
        """
        if self._gateway is not None or self._logged_in:
            raise RuntimeError("a DiscordAdapter starts once")
        client = self._client
        if self._api_base_url is not None:
            discord.http.Route.BASE = self._api_base_url.rstrip("/")
        try:
            self._logged_in = True
            await client.login(self._token)
            await self._tree.set_translator(CatalogTranslator())
            synced = await self._tree.sync()
            logger.info("discord slash commands synced: %s", len(synced))
            self._accepting = True
            self._gateway = asyncio.create_task(client.connect(), name="discord-gateway")
            self._gateway.add_done_callback(self._gateway_ended)
            await self._wait_ready(self._gateway)
        except asyncio.CancelledError:
            await self._close()
            raise
        except Exception as exc:
            await self._close()
            if isinstance(exc, DiscordStartError):
                raise
            raise DiscordStartError(f"discord did not start: {type(exc).__name__}: {exc}") from exc
        self._started = True
        user = client.user
        logger.info(
            "discord connected as %s, shards %s of %s",
            user.id if user else None,
            client.shard_ids or "all",
            client.shard_count,
        )
        self._recovery = asyncio.create_task(
            recover_forever(self._engine, Platform.DISCORD, self._orphan_channel),
            name="discord-recovery",
        )
        if self._messages is not None and 0 in client.shards:  # DMs arrive on shard 0
            self._catch_up = asyncio.create_task(
                catch_up(client, self._messages, self._hand_over), name="discord-catch-up"
            )

    async def _wait_ready(self, gateway: asyncio.Task[None]) -> None:
        ready = asyncio.create_task(self._client.wait_until_ready())
        try:
            done, _ = await asyncio.wait(
                {ready, gateway}, timeout=self._ready_timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            ready.cancel()
        if ready in done:
            return
        if gateway in done:
            raise DiscordStartError(
                "the gateway closed before the bot was ready"
            ) from gateway.exception()
        raise DiscordStartError(f"not ready within {self._ready_timeout} s")

    async def stop(self) -> None:
        """Stop taking events and looking for lost ones, give handlers `stop_timeout`
        seconds, then disconnect. A reply cut short is failed and the person told
        (`Engine`), while the client can still send."""
        self._accepting = False
        for task in (self._catch_up, self._recovery):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._catch_up = self._recovery = None
        pending = set(self._in_flight)
        if pending:
            _, late = await asyncio.wait(pending, timeout=self._stop_timeout)
            if late:
                logger.warning("cancelling %s discord handlers still running", len(late))
                for task in late:
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)
        await self._close()

    async def _close(self) -> None:
        self._accepting = False
        if self._logged_in and not self._client.is_closed():
            await self._client.close()
        gateway, self._gateway = self._gateway, None
        if gateway is None or gateway.done():
            return  # an early end was reported by `_gateway_ended`
        try:
            await gateway
        except Exception:
            logger.warning("discord gateway ended with an error while closing", exc_info=True)

    def _gateway_ended(self, task: asyncio.Task[None]) -> None:
        """Report a gateway that gave up (fatal close code, intents refused) at once;
        `connected` turns false, which is what health checks watch."""
        if task.cancelled():
            return
        error = task.exception()
        if error is not None and self._started:  # during `start` it is raised instead
            logger.error("discord gateway stopped: %s", type(error).__name__, exc_info=error)

    async def _on_message(
        self, message: discord.Message, *, on_stored: Callable[[], None] | None = None
    ) -> None:
        me = self._client.user
        if not self._accepting or me is None:
            return
        with self._tracked():
            inbound = to_inbound(message, me)
            if inbound is None:
                return
            outlet = MessageOutlet(message, quote=not inbound.is_private)
            await handle_through_outage(
                self._engine, inbound, self._reply_channel(outlet), on_stored=on_stored
            )

    async def _hand_over(self, message: discord.Message) -> None:
        """Handle a message read from history in a task of its own, as discord.py runs
        gateway events; return once it is stored (or its handling ended)."""
        stored = asyncio.Event()
        handler = asyncio.create_task(self._on_message(message, on_stored=stored.set))
        # Tracked from now on, so `stop` waits for it even before it first runs.
        self._in_flight.add(handler)
        handler.add_done_callback(self._in_flight.discard)
        waiting = asyncio.create_task(stored.wait())
        try:
            await asyncio.wait({handler, waiting}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()

    @contextlib.asynccontextmanager
    async def _orphan_channel(
        self, message: Message, private: bool
    ) -> AsyncIterator[ReplyChannel | None]:
        """Where to answer a message a dead process left unanswered (`recover_forever`):
        a reply to it, or None when it can no longer be fetched."""
        source = await self._fetch_source(message)
        if source is None:
            yield None
            return
        yield self._reply_channel(MessageOutlet(source, quote=not private))

    async def _fetch_source(self, message: Message) -> discord.Message | None:
        """The Discord message a stored one came from; None when its channel or itself
        is gone or out of reach. Other failures raise: the message stays pending and is
        tried again."""
        chat_id, message_id = message.chat_id or "", message.platform_message_id or ""
        if not (chat_id.isdigit() and message_id.isdigit()):
            return None
        client = self._client
        try:
            channel = client.get_channel(int(chat_id)) or await client.fetch_channel(int(chat_id))
            if not isinstance(channel, discord.abc.Messageable):
                return None
            return await channel.fetch_message(int(message_id))
        except (discord.NotFound, discord.Forbidden) as exc:
            logger.warning(
                "discord message %s in channel %s is out of reach: HTTP %s (code %s)",
                message_id,
                chat_id,
                exc.status,
                exc.code,
            )
            return None

    async def _on_command(self, interaction: discord.Interaction, name: str, args: str) -> None:
        if not self._accepting:
            return
        with self._tracked():
            inbound = command_inbound(interaction, name, args)
            try:
                # Within Discord's 3 s; the engine's answer edits this "thinking..." state.
                await interaction.response.defer(ephemeral=not inbound.is_private, thinking=True)
            except discord.HTTPException as exc:
                logger.warning(
                    "could not defer interaction %s: HTTP %s", interaction.id, exc.status
                )
                return
            outlet = InteractionOutlet(interaction, ephemeral=not inbound.is_private)
            await handle_through_outage(self._engine, inbound, self._reply_channel(outlet))

    def _reply_channel(self, outlet: InteractionOutlet | MessageOutlet) -> DiscordReplyChannel:
        return DiscordReplyChannel(outlet, clock=self._clock, interval=self._edit_interval)

    @contextlib.contextmanager
    def _tracked(self) -> Iterator[None]:
        """Count the current task as in flight so `stop` can wait for it; log what
        escapes the engine (which should be nothing), never the message text."""
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            yield
        except Exception:
            logger.exception("a discord event handler failed")
        finally:
            if task is not None:
                self._in_flight.discard(task)
            self.processed += 1
