"""Shared fixtures: one real PostgreSQL + pgvector server for the whole session.

With `DATABASE_URL` set the tests use that server (they create and drop their own
databases on it); otherwise an embedded server is started in a temporary folder and
deleted at the end. Each test gets either
- `db`: a `Database` on one connection inside a transaction that is rolled back, or
- `fresh_dsn`: a database of its own, copied from a migrated template, for tests that
  need several connections (races, concurrent migrators).
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from bot.database import EmbeddedServer, prepare
from core.storage.database import Database, connect

TEMPLATE = "onethread_test_template"
_counter = itertools.count()


def _with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(scope="session")
def server_dsn() -> Iterator[str]:
    """A DSN of a maintenance database on the test server."""
    external = os.environ.get("DATABASE_URL")
    if external:
        yield external
        return
    with tempfile.TemporaryDirectory(prefix="onethread-test-") as tmp:
        server = EmbeddedServer(Path(tmp) / "pg", delete_on_stop=True)
        server.start()
        try:
            yield server.admin_dsn
        finally:
            server.stop()


async def _create_database(server_dsn: str, name: str, template: str | None = None) -> str:
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        suffix = f' TEMPLATE "{template}"' if template else ""
        await conn.execute(f'CREATE DATABASE "{name}"{suffix}')
    finally:
        await conn.close()
    return _with_database(server_dsn, name)


async def _drop_database(server_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def template_dsn(server_dsn: str) -> AsyncIterator[str]:
    """A migrated database; never used directly, only copied."""
    dsn = await _create_database(server_dsn, TEMPLATE)
    await prepare(dsn)
    yield dsn
    await _drop_database(server_dsn, TEMPLATE)


@pytest.fixture(scope="session")
async def shared_dsn(server_dsn: str, template_dsn: str) -> AsyncIterator[str]:
    """The database that `db` tests share (isolated by rolled-back transactions)."""
    name = f"onethread_test_shared_{os.getpid()}"
    dsn = await _create_database(server_dsn, name, TEMPLATE)
    yield dsn
    await _drop_database(server_dsn, name)


@pytest.fixture
async def db(shared_dsn: str) -> AsyncIterator[Database]:
    conn = await connect(shared_dsn)
    transaction = conn.transaction()
    await transaction.start()
    try:
        yield Database(conn)
    finally:
        await transaction.rollback()
        await conn.close()


@pytest.fixture
async def fresh_dsn(server_dsn: str, template_dsn: str) -> AsyncIterator[str]:
    name = f"onethread_test_{os.getpid()}_{next(_counter)}"
    dsn = await _create_database(server_dsn, name, TEMPLATE)
    yield dsn
    await _drop_database(server_dsn, name)


@pytest.fixture
async def empty_dsn(server_dsn: str) -> AsyncIterator[str]:
    """A database with no schema at all (migration tests)."""
    name = f"onethread_test_empty_{os.getpid()}_{next(_counter)}"
    dsn = await _create_database(server_dsn, name)
    yield dsn
    await _drop_database(server_dsn, name)
