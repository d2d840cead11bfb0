"""`python -m bot run`: the whole service, built in one exit stack and closed in reverse.

(database, opened by the caller) -> services -> jobs -> turn wake-ups -> engine ->
adapters -> scheduler -> health server; then wait for SIGTERM or Ctrl-C (or for the
embedded server to be given up, bot/supervisor.py). On the way out, adapters stop
fetching first and let in-flight replies finish (or be recorded as failed), then the
wake-ups' connection, the pool and the database close.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from contextlib import AsyncExitStack, suppress

from pydantic import SecretStr

from bot.backup_job import backup_age_seconds
from bot.database import DatabaseLocation
from bot.health import HealthServer, ReadinessProbe
from bot.heap import settle as settle_heap
from bot.jobs import build_registry
from bot.scheduler import JobScheduler
from bot.services import build_services
from bot.supervisor import EmbeddedSupervisor
from config import Settings
from core import metrics
from core.commands.registry import COMMANDS
from core.engine import Engine
from core.errors import DatabaseSetupError
from core.models import Platform
from core.persona import load_persona
from core.services import Services
from core.storage.turn_wakeups import TurnWakeups

logger = logging.getLogger(__name__)


def missing_platform_settings(settings: Settings) -> str | None:
    if settings.telegram_bot_token is None and settings.discord_bot_token is None:
        return (
            "no platform is configured: set TELEGRAM_BOT_TOKEN and/or DISCORD_BOT_TOKEN "
            "(see README.md, 'Setting up the bots')."
        )
    return None


async def run_service(
    settings: Settings, location: DatabaseLocation, *, stop: asyncio.Event | None = None
) -> None:
    """Run on a prepared database until `stop` is set (or SIGTERM / SIGINT arrives).

    Raises `DatabaseSetupError` after stopping when the embedded server died and could
    not be started again (`bot.supervisor`), so that the process exits with status 1.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    supervisor = location.supervisor
    try:
        async with AsyncExitStack() as stack:
            if supervisor is not None:
                stack.push_async_callback(_cancel, asyncio.create_task(_stop_on(supervisor, stop)))
            services = await stack.enter_async_context(build_services(settings, location))
            metrics.register_pool(services.db.pool)
            stack.callback(metrics.register_pool, None)
            backups = settings.backup_dir
            metrics.watch_backup_age(lambda: backup_age_seconds(backups, services.clock()))
            services.jobs = build_registry(services, location)
            wakeups = await stack.enter_async_context(TurnWakeups(location.dsn))
            engine = Engine(
                services, persona=load_persona(settings.context.persona_file), wakeups=wakeups
            )
            await engine.start()
            stack.push_async_callback(engine.stop)
            probes = await _start_adapters(settings, engine, services, stack)
            await stack.enter_async_context(JobScheduler(services.jobs))
            for probe in probes:
                metrics.watch_adapter(probe.name, probe.is_ready)
            health = HealthServer(
                services.db,
                probes,
                host=settings.http_host,
                port=settings.http_port,
            )
            await health.start()
            stack.push_async_callback(health.stop)
            frozen = settle_heap()
            logger.info("onethread is running (start-up heap settled: %d objects)", frozen)
            await stop.wait()
            logger.info("shutting down")
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    if supervisor is not None and supervisor.gave_up.is_set():
        raise DatabaseSetupError(
            f"the embedded PostgreSQL server in {supervisor.pgdata} died and could not be "
            f"started again; its log is {supervisor.pgdata / 'log'}"
        )


async def _stop_on(supervisor: EmbeddedSupervisor, stop: asyncio.Event) -> None:
    """Stop the service once the embedded server is given up (bot/supervisor.py)."""
    await supervisor.gave_up.wait()
    logger.error("stopping: the embedded database cannot be started again")
    stop.set()


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task


async def _start_adapters(
    settings: Settings, engine: Engine, services: Services, stack: AsyncExitStack
) -> list[ReadinessProbe]:
    """Start every adapter whose token is set; stop them first on the way out."""
    commands = list(COMMANDS.values())
    probes: list[ReadinessProbe] = []
    if settings.telegram_bot_token is not None:
        # Opt in to python-telegram-bot 22's timedelta durations (else it warns on every
        # RetryAfter); must be set before telegram is imported.
        os.environ.setdefault("PTB_TIMEDELTA", "1")
        from adapters.telegram import TelegramAdapter

        telegram = TelegramAdapter(
            engine,
            token=settings.telegram_bot_token.get_secret_value(),
            base_url=str(settings.telegram_base_url),
            base_file_url=_optional_str(settings.telegram_base_file_url),
            mode=settings.telegram_mode.value,
            webhook_url=_optional_str(settings.telegram_webhook_url),
            webhook_secret=_optional_secret(settings.telegram_webhook_secret),
            webhook_listen=settings.telegram_webhook_listen,
            webhook_port=settings.telegram_webhook_port,
            admin_chat_ids=[
                admin.platform_user_id
                for admin in settings.admin_ids
                if admin.platform == Platform.TELEGRAM.value
            ],
            commands=commands,
        )
        services.files[Platform.TELEGRAM] = telegram.files
        await telegram.start()
        stack.push_async_callback(telegram.stop)
        services.messengers[Platform.TELEGRAM] = telegram.messenger
        probes.append(ReadinessProbe("telegram", lambda: telegram.connected))
    if settings.discord_bot_token is not None:
        from adapters.discord import DiscordAdapter

        discord = DiscordAdapter(
            engine,
            token=settings.discord_bot_token.get_secret_value(),
            commands=commands,
            messages=services.messages,
            api_base_url=str(settings.discord_api_base_url),
            shard_ids=settings.discord_shard_ids,
            shard_count=settings.discord_shard_count,
        )
        services.files[Platform.DISCORD] = discord.files
        await discord.start()
        stack.push_async_callback(discord.stop)
        services.messengers[Platform.DISCORD] = discord.messenger
        probes.append(ReadinessProbe("discord", lambda: discord.connected))
    return probes


def _optional_str(value: object | None) -> str | None:
    return None if value is None else str(value)


def _optional_secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()
