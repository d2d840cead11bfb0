from __future__ import annotations

import asyncio

import asyncpg
import pytest

from core.errors import MigrationError
from core.storage import migrations
from core.storage.migrations import Migration


async def _tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r["tablename"] for r in rows}


async def test_fresh_database_gets_every_table(empty_dsn: str) -> None:
    conn = await asyncpg.connect(empty_dsn)
    try:
        applied = await migrations.migrate(conn)
        assert [m.version for m in applied] == [m.version for m in migrations.load_migrations()]
        assert {
            "users",
            "identities",
            "conversations",
            "messages",
            "messages_archive",
            "facts",
            "conversation_context",
            "admin_audit",
            "job_runs",
            "schema_migrations",
        } <= await _tables(conn)
        version = await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname='vector'")
        assert tuple(int(p) for p in version.split(".")[:2]) >= (0, 8)
    finally:
        await conn.close()


async def test_rerun_applies_nothing(empty_dsn: str) -> None:
    conn = await asyncpg.connect(empty_dsn)
    try:
        await migrations.migrate(conn)
        assert await migrations.migrate(conn) == []
        assert await migrations.pending(conn) == []
        count = await conn.fetchval("SELECT count(*) FROM schema_migrations")
        assert count == len(migrations.load_migrations())
    finally:
        await conn.close()


async def test_changed_applied_migration_is_refused(empty_dsn: str) -> None:
    conn = await asyncpg.connect(empty_dsn)
    try:
        first = Migration(1, "first", "CREATE TABLE a (x int);")
        await migrations.migrate(conn, [first])
        edited = Migration(1, "first", "CREATE TABLE a (x bigint);")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await migrations.migrate(conn, [edited, Migration(2, "second", "CREATE TABLE b ();")])
        # Nothing after the changed migration ran.
        assert "b" not in await _tables(conn)
        statuses = await migrations.status(conn, [edited])
        assert statuses[0].checksum_ok is False
    finally:
        await conn.close()


async def test_failed_migration_rolls_back_and_is_not_recorded(empty_dsn: str) -> None:
    conn = await asyncpg.connect(empty_dsn)
    try:
        broken = Migration(1, "broken", "CREATE TABLE c (x int); SELECT no_such_function();")
        with pytest.raises(MigrationError, match=r"0001_broken\.sql failed"):
            await migrations.migrate(conn, [broken])
        assert "c" not in await _tables(conn)
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == 0
    finally:
        await conn.close()


async def test_concurrent_migrators_apply_each_migration_once(empty_dsn: str) -> None:
    # A migration that fails if it runs twice: without the lock, both would try.
    steps = [
        Migration(1, "slow", "CREATE TABLE once (x int); SELECT pg_sleep(0.3);"),
        Migration(2, "next", "CREATE TABLE twice_not (x int);"),
    ]
    conns = [await asyncpg.connect(empty_dsn) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrations.migrate(c, steps) for c in conns))
        applied = sorted(m.version for result in results for m in result)
        assert applied == [1, 2]
    finally:
        for c in conns:
            await c.close()


def test_shipped_migrations_are_numbered_in_order() -> None:
    shipped = migrations.load_migrations()
    assert [m.version for m in shipped] == list(range(1, len(shipped) + 1))


async def test_rate_limit_buckets_write_no_wal(empty_dsn: str) -> None:
    conn = await asyncpg.connect(empty_dsn)
    try:
        await migrations.migrate(conn)
        persistence = await conn.fetchval(
            "SELECT relpersistence FROM pg_class WHERE relname = 'rate_limits'"
        )
        assert persistence == b"u"  # unlogged (migration 0006); "char" comes as bytes
    finally:
        await conn.close()
