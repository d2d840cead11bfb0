"""Backing up and restoring the service's database with pg_dump and pg_restore.

A backup is one `pg_dump --format=custom` file:
- consistent: pg_dump reads every table in one repeatable-read snapshot, so a backup
  taken while people write is the database as it was at one instant, and it takes no
  lock that stops the service (only ones that keep tables from being dropped);
- portable: a logical dump, restorable into the embedded server or any PostgreSQL 15+
  with pgvector, of another version or machine (a copy of the data folder only into the
  same major version on the same platform);
- compressed, and selective: `pg_restore` can list it and restore part of it.
A physical backup (pg_basebackup) would be needed for point-in-time recovery, which
this service leaves to the operator of an external server (docs/operations.md).

The file is written as `FILE.partial` and renamed once complete and flushed to disk,
so a file with the final name is always a whole backup.

A restore goes into an empty database only, unless told to replace what is there
(`force`). Before touching anything it reads the backup's `schema_migrations`: every
migration in it must be one this code knows, with the same checksum; a backup of a
newer version is refused. After the restore, migrations newer than the backup are
applied, as `run` would.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from bot.database import prepare
from bot.pgtools import libpq_target, tool
from core.errors import OnethreadError
from core.storage import migrations
from core.storage.database import Database
from core.storage.stats import StatsRepository

Progress = Callable[[str], None]
"""Told each step of a dump or restore (a table dumped, an object restored)."""

# Sessions of clients on the restore's target; background workers (autovacuum) do not
# count. The catalog query lists every relation outside PostgreSQL's own schemas.
_OTHER_SESSIONS = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND backend_type = 'client backend'
"""
_RELATIONS = """
SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
  AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
"""
_WIPE = "DROP SCHEMA public CASCADE; CREATE SCHEMA public"


class BackupError(OnethreadError):
    """A backup or restore failed, or was refused; the message says why."""


@dataclass(frozen=True, slots=True)
class Archive:
    """What a backup file holds, read without restoring it."""

    path: Path
    entries: int
    """Objects in its table of contents (tables, their data, indexes, ...)."""
    migrations: dict[int, str]
    """The `schema_migrations` rows it holds: version -> checksum."""

    @property
    def version(self) -> int:
        return max(self.migrations)


@dataclass(frozen=True, slots=True)
class Restored:
    """What a restore put in the database."""

    backup_version: int
    version: int
    people: int
    messages: int
    archived_messages: int
    facts: int

    def summary(self) -> str:
        migrated = (
            f", migrated to {self.version:04d}" if self.version != self.backup_version else ""
        )
        return (
            f"{self.people} people, {self.messages + self.archived_messages} messages "
            f"({self.archived_messages} archived), {self.facts} facts; schema "
            f"{self.backup_version:04d}{migrated}"
        )


async def dump(
    dsn: str, path: Path, *, snapshot: str | None = None, progress: Progress | None = None
) -> None:
    """Write a backup of the database at `dsn` to `path` (custom format).

    `snapshot`: an exported snapshot (`pg_export_snapshot()`) to dump instead of a new
    one, for a caller that needs the backup to match a transaction of its own.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    target = libpq_target(dsn, application_name="onethread backup")
    args = ["--format=custom", "--verbose", f"--file={partial}", f"--dbname={target.conninfo}"]
    if snapshot is not None:
        args.append(f"--snapshot={snapshot}")
    try:
        await _run("pg_dump", args, target.env, _steps(progress, "dumping contents of "))
        await asyncio.to_thread(_publish, partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _publish(partial: Path, path: Path) -> None:
    """Flush `partial` to disk and rename it to `path`, then flush the folder."""
    with partial.open("rb") as file:
        os.fsync(file.fileno())
    partial.replace(path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


async def read_archive(path: Path) -> Archive:
    """The backup's table of contents and schema version; refuses what is not an
    onethread backup."""
    if not await asyncio.to_thread(path.is_file):
        raise BackupError(f"{path} is not a file")
    env = dict(os.environ)
    listing = await _output("pg_restore", ["--list", str(path)], env, path)
    entries = sum(1 for line in listing.splitlines() if line and not line.startswith(";"))
    rows = await _output(
        "pg_restore", ["--data-only", "--table=schema_migrations", "--file=-", str(path)], env, path
    )
    found = _copied_rows(rows, "public.schema_migrations")
    if not found:
        raise BackupError(f"{path} is not a backup of onethread (no schema_migrations rows)")
    return Archive(path, entries, {int(row[0]): row[2] for row in found})


def _copied_rows(script: str, table: str) -> list[list[str]]:
    """The rows of `table`'s COPY block in a pg_restore script (tab-separated)."""
    rows: list[list[str]] = []
    inside = False
    for line in script.splitlines():
        if inside:
            if line == "\\.":
                break
            rows.append(line.split("\t"))
        elif line.startswith(f"COPY {table} "):
            inside = True
    return rows


def check_schema(archive: Archive, known: Sequence[migrations.Migration] | None = None) -> None:
    """Refuse a backup whose migrations this code does not know (a newer version's), or
    knows differently."""
    known_by_version = {m.version: m for m in known or migrations.load_migrations()}
    newest = max(known_by_version)
    for version, checksum in sorted(archive.migrations.items()):
        migration = known_by_version.get(version)
        if migration is None:
            raise BackupError(
                f"{archive.path} comes from a newer onethread: its schema is at migration "
                f"{archive.version:04d}, this version knows up to {newest:04d}. Restore it "
                "with the version that made it (or a newer one)."
            )
        if migration.checksum != checksum:
            raise BackupError(
                f"migration {version:04d} in {archive.path} is not this version's "
                f"{version:04d}_{migration.name}.sql: it was made by a different build"
            )


async def restore(
    dsn: str, archive: Archive, *, force: bool = False, progress: Progress | None = None
) -> Restored:
    """Restore `archive` into the database at `dsn`, which must be empty (or `force`),
    and have no other client connected; then migrate it. Returns what is there now."""
    check_schema(archive)
    conn = await _connect(dsn)
    try:
        others = int(await conn.fetchval(_OTHER_SESSIONS))
        if others:
            raise BackupError(
                f"{others} other connection(s) use the target database: stop the service "
                "(and every other onethread process on it) before restoring"
            )
        if int(await conn.fetchval(_RELATIONS)):
            if not force:
                raise BackupError(
                    "the target database is not empty: restore into an empty data folder or "
                    "database, or add --force to replace everything in it"
                )
            await conn.execute(_WIPE)
    finally:
        await conn.close()
    target = libpq_target(dsn, application_name="onethread restore")
    args = [
        "--verbose",
        "--exit-on-error",
        "--single-transaction",
        "--no-owner",
        "--no-privileges",
        f"--dbname={target.conninfo}",
        str(archive.path),
    ]
    await _run("pg_restore", args, target.env, _steps(progress, "creating ", "processing "))
    await prepare(dsn, migrate=True)
    conn = await _connect(dsn)
    try:
        overview = await StatsRepository(Database(conn)).overview(now=datetime.now(UTC))
        applied = [s.migration.version for s in await migrations.status(conn) if s.applied_at]
    finally:
        await conn.close()
    return Restored(
        backup_version=archive.version,
        version=max(applied),
        people=overview.users,
        messages=overview.messages,
        archived_messages=overview.archived_messages,
        facts=overview.facts,
    )


async def _connect(dsn: str) -> asyncpg.Connection[asyncpg.Record]:
    try:
        return await asyncpg.connect(dsn)
    except (OSError, asyncpg.PostgresError) as exc:
        raise BackupError(f"cannot connect to the database: {exc}") from exc


def _steps(progress: Progress | None, *prefixes: str) -> Progress | None:
    """A line handler telling `progress` about the verbose lines that are steps."""
    if progress is None:
        return None

    def on_line(line: str) -> None:
        said = line.partition(": ")[2]
        if said.startswith(prefixes):
            progress(said)

    return on_line


async def _run(
    program: str, args: list[str], env: dict[str, str], on_line: Progress | None
) -> None:
    """Run a packaged PostgreSQL program; raise `BackupError` with its error lines."""
    process = await _start(program, args, env, stdout=asyncio.subprocess.DEVNULL)
    assert process.stderr is not None
    errors: list[str] = []
    try:
        async for raw in process.stderr:
            line = raw.decode(errors="replace").rstrip()
            # Error lines only: a DETAIL line may quote a row's values.
            if " error: " in line:
                errors.append(line)
            elif on_line is not None:
                on_line(line)
        code = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if code != 0:
        raise BackupError(f"{program} failed: " + (" | ".join(errors[-3:]) or f"status {code}"))


async def _output(program: str, args: list[str], env: dict[str, str], path: Path) -> str:
    """What a packaged program reading the backup at `path` printed."""
    process = await _start(program, args, env, stdout=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    if process.returncode != 0:
        said = err.decode(errors="replace").strip().splitlines()
        raise BackupError(
            f"{path} is not a pg_dump custom-format backup ({said[-1] if said else program})"
        )
    return out.decode(errors="replace")


async def _start(
    program: str, args: list[str], env: dict[str, str], *, stdout: int
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        tool(program),
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=stdout,
        stderr=asyncio.subprocess.PIPE,
    )
