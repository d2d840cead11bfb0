from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import asyncpg
import psutil
import pytest

from bot.database import EmbeddedServer, open_database
from config import SettingsError, load_settings
from core.errors import DatabaseSetupError
from tests.conftest import make_settings


async def test_embedded_server_gets_its_cache_and_wal_sizes(data_dir: Path) -> None:
    settings = make_settings(
        onethread_data_dir=data_dir,
        db={"embedded_shared_buffers": "160MB", "embedded_max_wal_size": "3GB"},
    )
    async with open_database(settings) as location:
        assert location.embedded
        conn = await asyncpg.connect(location.dsn)
        try:
            assert await conn.fetchval("SHOW shared_buffers") == "160MB"
            assert await conn.fetchval("SHOW max_wal_size") == "3GB"
            assert await conn.fetchval("SELECT count(*) FROM schema_migrations") >= 1
        finally:
            await conn.close()


@pytest.mark.parametrize("name", ["DB_EMBEDDED_SHARED_BUFFERS", "DB_EMBEDDED_MAX_WAL_SIZE"])
def test_server_sizes_are_validated(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, "lots'; DROP TABLE users; --")
    with pytest.raises(SettingsError, match=name):
        load_settings()


def _hold_shared_lock(path: Path) -> subprocess.Popen[str]:
    """A process that holds the "in use" lock but is in no handle list: what a process
    of another PID namespace (another container on the same volume) looks like."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_SH)\n"
            "print('held', flush=True)\n"
            "time.sleep(120)\n",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    return holder


def test_a_server_in_use_by_an_unseen_process_is_not_started_again(data_dir: Path) -> None:
    pgdata = data_dir / "postgres"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    holder = _hold_shared_lock(data_dir / "postgres.in-use.lock")
    try:
        with pytest.raises(DatabaseSetupError, match="in use by a process this one cannot see"):
            EmbeddedServer(pgdata).start()
        assert not (pgdata / "postmaster.pid").exists()
    finally:
        holder.kill()
        holder.communicate()
    server = EmbeddedServer(pgdata)
    server.start()
    try:
        # Processes that can see each other still share it: a second handle joins.
        second = EmbeddedServer(pgdata)
        second.start()
        second.stop()
    finally:
        server.stop()


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare"
)
def test_a_process_of_another_pid_namespace_does_not_start_a_second_server(
    data_dir: Path,
) -> None:
    server = EmbeddedServer(data_dir / "postgres")
    server.start()
    try:
        other = subprocess.run(
            ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-m", "bot", "db"],
            env={**os.environ, "ONETHREAD_DATA_DIR": str(data_dir), "LOG_LEVEL": "WARNING"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert other.returncode != 0, other.stdout
        assert "in use by a process this one cannot see" in other.stderr
        # The running server was left alone.
        pid = int((data_dir / "postgres" / "postmaster.pid").read_text().splitlines()[0])
        assert psutil.pid_exists(pid)
    finally:
        server.stop()
