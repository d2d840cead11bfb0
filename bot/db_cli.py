"""The database on the command line: where it is, a shell on it, backups and restores.

    python -m bot db                 where the database is and how to reach it; with the
                                     embedded server, keeps it up until Ctrl-C or SIGTERM
    python -m bot db shell [ARGS]    psql on the service's database (ARGS go to psql)
    python -m bot db --stop          stop an embedded server left running
    python -m bot backup [FILE]      a pg_dump custom-format backup (default: into BACKUP_DIR)
    python -m bot restore FILE       restore a backup into an empty database (--force:
                                     replace what is there)

`add_db_commands` adds these to the CLI's sub-parsers; `COMMANDS` maps the command
names to their async functions, each `(settings, args) -> exit status`.

An embedded server runs only while some onethread process uses it, so `db` prints how
to reach it and then keeps it up itself until it is stopped: the connection string it
prints works for as long as it runs (and longer only if another process, such as the
service, still uses the server).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm  # type: ignore[import-untyped]

from bot.backup import check_schema, dump, read_archive, restore
from bot.backup_job import backup_name
from bot.database import open_database, stop_embedded
from bot.jobs import stop_on_signals
from bot.pgtools import libpq_target, packaged_bin, psql, redacted
from config import Settings
from core.errors import OnethreadError

EXIT_OK = 0
EXIT_CONFIG = 2


def add_db_commands(subparsers: Any) -> None:
    """Add `db` (with `shell` and `--stop`), `backup` and `restore` to the sub-parsers."""
    db = subparsers.add_parser(
        "db", help="where the database is (an embedded server stays up until Ctrl-C)"
    )
    db.add_argument("--stop", action="store_true", help="stop an embedded server left running")
    actions = db.add_subparsers(dest="db_action", metavar="ACTION")
    shell = actions.add_parser("shell", help="psql on the service's database")
    shell.add_argument(
        "psql_args", nargs=argparse.REMAINDER, help="passed on to psql, e.g. -c 'SELECT 1'"
    )
    backup = subparsers.add_parser("backup", help="back the database up (pg_dump custom format)")
    backup.add_argument(
        "file",
        nargs="?",
        type=Path,
        help="the file to write (default: BACKUP_DIR/onethread-<UTC time>.dump)",
    )
    restore_parser = subparsers.add_parser(
        "restore", help="restore a backup into an empty database"
    )
    restore_parser.add_argument("file", type=Path, help="a file written by `backup`")
    restore_parser.add_argument(
        "--force", action="store_true", help="replace everything the database holds"
    )


async def db_command(settings: Settings, args: argparse.Namespace) -> int:
    if args.stop:
        return await asyncio.to_thread(_stop_db, settings)
    if args.db_action == "shell":
        return await shell(settings, args.psql_args)
    return await show(settings)


async def show(settings: Settings, *, stop: asyncio.Event | None = None) -> int:
    """Print how to reach the database; keep an embedded server up until `stop` (by
    default, Ctrl-C or SIGTERM)."""
    async with open_database(settings, migrate=False) as location:
        if not location.embedded:
            print("external PostgreSQL (DATABASE_URL)")
            print(f"connection string: {redacted(location.dsn)}")
            print("psql: python -m bot db shell")
            return EXIT_OK
        print(f"embedded PostgreSQL, data in {location.data_dir}")
        print(f"connection string: {location.dsn}")
        print(f"psql: python -m bot db shell   (or: {psql()} '{location.dsn}')")
        print(f"PostgreSQL's programs (psql, pg_dump, pg_restore, ...): {packaged_bin()}")
        print(
            "the server stays up while this command runs: Ctrl-C to stop (the server then "
            "stops unless another onethread process uses it)",
            flush=True,
        )
        await (stop or stop_on_signals()).wait()
    return EXIT_OK


async def shell(settings: Settings, psql_args: list[str]) -> int:
    """Run psql on the database, attached to this terminal; its exit status.

    Ctrl-C belongs to psql while it runs (it cancels the query); SIGTERM ends it.
    """
    extra = psql_args[1:] if psql_args[:1] == ["--"] else psql_args
    async with open_database(settings, migrate=False) as location:
        target = libpq_target(location.dsn, application_name="onethread shell")
        loop = asyncio.get_running_loop()
        # Caught here, default again in psql (exec resets caught signals).
        loop.add_signal_handler(signal.SIGINT, lambda: None)
        try:
            process = await asyncio.create_subprocess_exec(
                psql(), target.conninfo, *extra, env=target.env
            )
            loop.add_signal_handler(signal.SIGTERM, process.terminate)
            return await process.wait()
        finally:
            loop.remove_signal_handler(signal.SIGINT)
            loop.remove_signal_handler(signal.SIGTERM)


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
    return EXIT_OK


async def backup_command(settings: Settings, args: argparse.Namespace) -> int:
    """Write a backup, while the service runs or not; never over an existing file."""
    target: Path = args.file or settings.backup_dir / backup_name(datetime.now(UTC))
    if await asyncio.to_thread(target.exists):
        raise OnethreadError(f"{target} exists already: choose another file")
    bar = tqdm(desc="backup", unit=" tables", file=sys.stderr, disable=None)
    try:
        async with open_database(settings, migrate=False) as location:
            await dump(location.dsn, target, progress=lambda _: bar.update(1))
    finally:
        bar.close()
    size = (await asyncio.to_thread(target.stat)).st_size
    print(f"backup written to {target} ({_size(size)})")
    return EXIT_OK


async def restore_command(settings: Settings, args: argparse.Namespace) -> int:
    """Restore a backup (checked first) and say what is in the database now."""
    archive = await read_archive(args.file)
    check_schema(archive)
    bar = tqdm(
        total=archive.entries, desc="restore", unit=" objects", file=sys.stderr, disable=None
    )
    try:
        async with open_database(settings, migrate=False) as location:
            restored = await restore(
                location.dsn, archive, force=args.force, progress=lambda _: bar.update(1)
            )
    finally:
        bar.close()
    print(f"restored {args.file}: {restored.summary()}")
    return EXIT_OK


def _size(size: int) -> str:
    amount, unit = float(size), "bytes"
    for larger in ("kB", "MB", "GB"):
        if amount < 1024:
            break
        amount, unit = amount / 1024, larger
    return f"{size} bytes" if unit == "bytes" else f"{amount:.1f} {unit}"


Command = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]
COMMANDS: dict[str, Command] = {
    "db": db_command,
    "backup": backup_command,
    "restore": restore_command,
}
