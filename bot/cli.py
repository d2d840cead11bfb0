"""`python -m bot` / `onethread`: the command line of the service.

Exit statuses: 0 done, 1 failed at run time, 2 bad configuration or usage.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence

import asyncpg
import uvloop

from adapters.console import run_console
from bot.database import open_database
from bot.db_cli import COMMANDS as DB_COMMANDS
from bot.db_cli import add_db_commands
from bot.jobs import COMMANDS as JOB_COMMANDS
from bot.jobs import add_job_commands, build_registry
from bot.logs import configure_logging
from bot.run import missing_platform_settings, run_service
from bot.services import build_services
from config import Settings, SettingsError, load_settings
from core.engine import Engine
from core.errors import OnethreadError
from core.persona import load_persona
from core.storage import migrations

EXIT_FAILED = 1
EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="onethread", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("run", help="migrate the database and run the bot on every platform")
    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("--status", action="store_true", help="list migrations, apply nothing")
    chat = commands.add_parser("chat", help="chat in the terminal through the full pipeline")
    chat.add_argument("--user", default=None, help="who you are (default: your login name)")
    add_db_commands(commands)
    add_job_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"onethread: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings)
    try:
        return uvloop.run(_COMMANDS[args.command](settings, args))
    except OnethreadError as exc:
        print(f"onethread: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    async with open_database(settings) as location:
        missing = missing_platform_settings(settings)
        if missing:
            print(f"onethread: {missing} The database is ready.", file=sys.stderr)
            return EXIT_CONFIG
        await run_service(settings, location)
    return 0


async def _chat(settings: Settings, args: argparse.Namespace) -> int:
    user = args.user or getpass.getuser()
    settings = unlimited(settings)
    async with open_database(settings) as location, build_services(settings, location) as services:
        services.jobs = build_registry(services, location)
        engine = Engine(services, persona=load_persona(settings.context.persona_file))
        await engine.start()
        try:
            await run_console(engine, user)
        finally:
            await engine.stop()
    return 0


# The console's bucket: a token every microsecond, a billion at once.
_CONSOLE_RATE_PER_MINUTE = 60_000_000.0
_CONSOLE_BURST = 1_000_000_000


def unlimited(settings: Settings) -> Settings:
    """`settings` without the per-user rate limit, for the console.

    The console is the operator's own terminal, not a public chat: there is nobody to
    protect the model bill from, and a piped file is read one line at a time, each
    answered before the next, so it is never a flood. Rate-limited, a file of 72 lines
    got 7 answers and 65 refusals; waiting for tokens instead would make it take
    minutes. The same person's messages on other platforms keep their limit.
    """
    limits = settings.limits.model_copy(
        update={"rate_per_minute": _CONSOLE_RATE_PER_MINUTE, "rate_burst": _CONSOLE_BURST}
    )
    return settings.model_copy(update={"limits": limits})


async def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    async with open_database(settings, migrate=not args.status) as location:
        conn = await asyncpg.connect(location.dsn)
        try:
            rows = await migrations.status(conn)
        finally:
            await conn.close()
    for item in rows:
        state = (
            "applied " + item.applied_at.isoformat(" ", "seconds") if item.applied_at else "pending"
        )
        if not item.checksum_ok:
            state += " (CHANGED since applied)"
        print(f"{item.migration.version:04d}_{item.migration.name}  {state}")
    return 0


_COMMANDS = {"run": _run, "migrate": _migrate, "chat": _chat, **DB_COMMANDS, **JOB_COMMANDS}
