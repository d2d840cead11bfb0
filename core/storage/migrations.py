"""Apply the numbered plain-SQL files in `migrations/`, each once, in order.

Applied versions live in the database (`schema_migrations`) with the checksum of the
file; a file changed after it was applied stops start-up. Concurrent starters (several
replicas, the CLI) are serialised with an advisory lock.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from importlib import resources

import asyncpg

from core.errors import MigrationError
from core.storage.database import Connection

logger = logging.getLogger(__name__)

# Arbitrary constant: the advisory lock key that serialises migrators.
_LOCK_KEY = 0x6F6E_6574_6872_6561
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    migration: Migration
    applied_at: datetime | None
    checksum_ok: bool


def load_migrations() -> list[Migration]:
    """Every migration shipped in the `migrations` package, in version order."""
    found = []
    for entry in resources.files("migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a version number: {versions}")
    return found


async def status(
    conn: Connection, migrations: list[Migration] | None = None
) -> list[MigrationStatus]:
    migrations = load_migrations() if migrations is None else migrations
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    applied: dict[int, asyncpg.Record] = {}
    if exists:
        rows = await conn.fetch("SELECT version, checksum, applied_at FROM schema_migrations")
        applied = {row["version"]: row for row in rows}
    result = []
    for migration in migrations:
        row = applied.get(migration.version)
        result.append(
            MigrationStatus(
                migration,
                row["applied_at"] if row else None,
                row is None or row["checksum"] == migration.checksum,
            )
        )
    return result


async def migrate(conn: Connection, migrations: list[Migration] | None = None) -> list[Migration]:
    """Apply what is missing; return the migrations applied now.

    Takes a plain connection (not in a transaction): each migration runs in its own.
    """
    migrations = load_migrations() if migrations is None else migrations
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(_CREATE_TABLE)
        done: list[Migration] = []
        for item in await status(conn, migrations):
            migration = item.migration
            if not item.checksum_ok:
                raise MigrationError(
                    f"migration {migration.version:04d}_{migration.name}.sql was changed after it "
                    "was applied to this database. Applied migrations must never be edited: "
                    "restore the file and put the change in a new numbered migration."
                )
            if item.applied_at is not None:
                continue
            logger.info("applying migration %04d_%s", migration.version, migration.name)
            try:
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum)"
                        " VALUES ($1, $2, $3)",
                        migration.version,
                        migration.name,
                        migration.checksum,
                    )
            except asyncpg.PostgresError as exc:
                raise MigrationError(
                    f"migration {migration.version:04d}_{migration.name}.sql failed: {exc}"
                ) from exc
            done.append(migration)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)


async def pending(conn: Connection) -> list[Migration]:
    """Migrations not yet applied (used by readiness checks)."""
    return [s.migration for s in await status(conn) if s.applied_at is None]
