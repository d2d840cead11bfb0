"""The health server on a real port and a real database: liveness, readiness, metrics."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Sequence

import aiohttp
import pytest

from bot.health import HealthServer, ReadinessProbe
from core import metrics
from core.storage.database import Database, Pool, create_pool


@pytest.fixture
async def pool(fresh_dsn: str) -> AsyncIterator[Pool]:
    pool = await create_pool(fresh_dsn, min_size=1, max_size=2)
    yield pool
    await pool.close()


async def _get(
    db: Database, path: str, probes: Sequence[ReadinessProbe] = ()
) -> tuple[int, str, str]:
    """Start a server on a free port, GET `path`, stop it: (status, content type, body)."""
    server = HealthServer(db, probes, host="127.0.0.1", port=0)
    await server.start()
    try:
        url = f"http://127.0.0.1:{server.port}{path}"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            return response.status, response.content_type, await response.text()
    finally:
        await server.stop()


def _closed_port() -> int:
    """A local port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_healthz_answers_while_the_process_runs(pool: Pool) -> None:
    assert await _get(Database(pool), "/healthz") == (200, "text/plain", "ok\n")


async def test_ready_when_the_database_answers_and_every_probe_is_connected(pool: Pool) -> None:
    probes = [ReadinessProbe("telegram", lambda: True), ReadinessProbe("discord", lambda: True)]
    status, _, body = await _get(Database(pool), "/readyz", probes)
    assert (status, body) == (200, "ready\n")


async def test_not_ready_names_the_adapter_that_is_not_connected(pool: Pool) -> None:
    probes = [ReadinessProbe("telegram", lambda: True), ReadinessProbe("discord", lambda: False)]
    status, _, body = await _get(Database(pool), "/readyz", probes)
    assert status == 503
    assert "discord is not connected" in body
    assert "telegram" not in body


async def test_not_ready_when_the_pool_is_closed(fresh_dsn: str) -> None:
    closed = await create_pool(fresh_dsn, min_size=1, max_size=1)
    await closed.close()
    status, _, body = await _get(Database(closed), "/readyz")
    assert status == 503
    assert "database unreachable" in body


async def test_not_ready_when_the_database_cannot_be_reached(fresh_dsn: str) -> None:
    # min_size=0: the pool opens no connection until asked, so it can be created.
    nowhere = await create_pool(
        f"postgresql://onethread@127.0.0.1:{_closed_port()}/onethread", min_size=0, max_size=1
    )
    try:
        status, _, body = await _get(Database(nowhere), "/readyz")
    finally:
        await nowhere.close()
    assert status == 503
    assert "database unreachable" in body


async def test_not_ready_while_migrations_are_pending(pool: Pool) -> None:
    async with pool.acquire() as conn:
        newest = await conn.fetchval("SELECT max(version) FROM schema_migrations")
        await conn.execute("DELETE FROM schema_migrations WHERE version = $1", newest)
    status, _, body = await _get(Database(pool), "/readyz")
    assert status == 503
    assert "migrations are pending" in body


async def test_metrics_are_exported_in_prometheus_format(pool: Pool) -> None:
    metrics.count_message_in("telegram")
    metrics.register_pool(pool)
    try:
        status, content_type, body = await _get(Database(pool), "/metrics")
    finally:
        metrics.register_pool(None)
    assert status == 200
    assert content_type == "text/plain"
    assert 'onethread_messages_in_total{platform="telegram"}' in body
    assert 'onethread_db_pool_connections{state="idle"}' in body
    assert "# TYPE onethread_stage_seconds histogram" in body
