"""The supervisor of the embedded server, on a real server in a folder of its own:
processes agree on who starts it again, committed data survives, retries are bounded."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from prometheus_client import REGISTRY

from bot.database import DatabaseLocation, EmbeddedServer, ensure_database, prepare
from bot.run import run_service
from bot.supervisor import EmbeddedSupervisor, postmaster_alive
from core.errors import DatabaseSetupError
from fakes.service import EmbeddedDatabase
from tests.conftest import make_settings


def _restarts(outcome: str) -> float:
    value = REGISTRY.get_sample_value("onethread_embedded_restarts_total", {"outcome": outcome})
    return value or 0.0


@pytest.fixture
def server(data_dir: Path) -> Iterator[EmbeddedServer]:
    server = EmbeddedServer(data_dir / "postgres")
    server.start()
    yield server
    server.stop()


async def test_two_processes_agree_and_the_server_comes_back_with_its_data(
    server: EmbeddedServer,
) -> None:
    await ensure_database(server.admin_dsn)
    dsn = server.admin_dsn.replace("/postgres?", "/onethread?")
    conn = await asyncpg.connect(dsn)
    await conn.execute("CREATE TABLE kept (note text); INSERT INTO kept VALUES ('committed')")
    await conn.close()
    # Two watchers, each with its own descriptor on the start lock: two processes.
    first, second = server.supervisor(attempts=8), server.supervisor(attempts=8)
    restarted, failed = _restarts("restarted"), _restarts("failed")
    outside = EmbeddedDatabase(server.pgdata)
    outside.kill()
    with outside.start_lock():  # a third process, starting the server meanwhile
        both = asyncio.gather(first.recover(), second.recover())
        await asyncio.sleep(0.5)
        assert not postmaster_alive(server.pgdata)  # nobody starts it behind its back

    assert list(await both) == [True, True]

    assert postmaster_alive(server.pgdata)
    assert _restarts("restarted") == restarted + 1  # one of them started it, once
    assert _restarts("failed") >= failed  # the old postmaster may be reaped late
    conn = await asyncpg.connect(dsn)  # the DSN handed out before still works
    try:
        assert await conn.fetchval("SELECT note FROM kept") == "committed"
    finally:
        await conn.close()


async def test_it_gives_up_after_its_attempts_and_says_so(
    server: EmbeddedServer, caplog: pytest.LogCaptureFixture
) -> None:
    # A socket folder that does not exist: every start fails at once.
    doomed = EmbeddedSupervisor(
        server.pgdata, server.pgdata / "missing", attempts=3, first_delay=0.01, every=0.01
    )
    failed = _restarts("failed")
    EmbeddedDatabase(server.pgdata).kill()

    await asyncio.wait_for(doomed.watch(), 60)

    assert doomed.gave_up.is_set()
    assert _restarts("failed") == failed + 3
    assert "gave up starting the embedded PostgreSQL server" in caplog.text
    assert not postmaster_alive(server.pgdata)
    # The right socket folder brings it back (and lets the fixture stop it).
    assert await server.supervisor(attempts=8).recover()


async def test_attempts_0_watches_nothing(data_dir: Path) -> None:
    idle = EmbeddedSupervisor(data_dir / "postgres", data_dir, attempts=0, every=0.01)
    await asyncio.wait_for(idle.watch(), 5)  # returns at once, whatever the server does
    assert not idle.gave_up.is_set()


async def test_the_service_stops_with_an_error_when_the_server_is_given_up(
    fresh_dsn: str, data_dir: Path
) -> None:
    await prepare(fresh_dsn)
    given_up = EmbeddedSupervisor(data_dir / "postgres", data_dir, attempts=1)
    given_up.gave_up.set()
    location = DatabaseLocation(fresh_dsn, True, data_dir, given_up)
    settings = make_settings(http_host="127.0.0.1", http_port=0, onethread_data_dir=data_dir)
    with pytest.raises(DatabaseSetupError, match="could not be started again"):
        await asyncio.wait_for(run_service(settings, location), 60)
