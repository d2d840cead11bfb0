"""`python -m bot` / `onethread`: the command line of the service.

Exit statuses: 0 done, 1 failed at run time, 2 bad configuration or usage.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import asyncpg

from bot.database import open_database, stop_embedded
from bot.logs import configure_logging
from config import Settings, SettingsError, load_settings
from core.errors import OnethreadError
from core.storage import migrations

EXIT_FAILED = 1
EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="onethread", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("run", help="migrate the database and run the bot on every platform")
    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("--status", action="store_true", help="list migrations, apply nothing")
    db = commands.add_parser("db", help="show where the database is (connection string for psql)")
    db.add_argument("--stop", action="store_true", help="stop an embedded server left running")
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
        if args.command == "db" and args.stop:
            return _stop_db(settings)
        return asyncio.run(_COMMANDS[args.command](settings, args))
    except OnethreadError as exc:
        print(f"onethread: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    async with open_database(settings):
        missing = _missing_platform_settings(settings)
        if missing:
            print(f"onethread: {missing}", file=sys.stderr)
            return EXIT_CONFIG
        print("onethread: no platform adapter is available yet", file=sys.stderr)
        return EXIT_FAILED


def _missing_platform_settings(settings: Settings) -> str | None:
    if settings.telegram_bot_token is None and settings.discord_bot_token is None:
        return (
            "no platform is configured: set TELEGRAM_BOT_TOKEN and/or DISCORD_BOT_TOKEN "
            "(see README.md, 'Setting up the bots'). The database is ready."
        )
    return None


async def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    async with open_database(settings) as location:
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


async def _db(settings: Settings, args: argparse.Namespace) -> int:
    async with open_database(settings) as location:
        if location.embedded:
            print(f"embedded PostgreSQL, data in {location.data_dir}")
            print("it stops when the last onethread process using it exits")
        else:
            print("external PostgreSQL (DATABASE_URL)")
        print(f"connection string: {location.dsn}")
        print(f"psql: psql '{location.dsn}'")
    return 0


def _stop_db(settings: Settings) -> int:
    if settings.database_url is not None:
        print(
            "onethread: DATABASE_URL is set; there is no embedded server to stop", file=sys.stderr
        )
        return EXIT_CONFIG
    if stop_embedded(settings.embedded_database_dir):
        print(f"stopped the embedded server in {settings.embedded_database_dir}")
    else:
        print(f"no embedded server is running in {settings.embedded_database_dir}")
    return 0


_COMMANDS = {"run": _run, "migrate": _migrate, "db": _db}
