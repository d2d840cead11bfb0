"""The command line, run as a real process, on a real (embedded or external) database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from bot.database import stop_embedded


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.endswith(("_TOKEN", "_API_KEY")) and key != "DATABASE_URL"
    }
    env.update({"ONETHREAD_DATA_DIR": str(data_dir), "LOG_LEVEL": "WARNING"}, **extra)
    return env


def _bot(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _server_pid(data_dir: Path) -> int | None:
    pid_file = data_dir / "postgres" / "postmaster.pid"
    if not pid_file.exists():
        return None
    pid = int(pid_file.read_text().splitlines()[0])
    return pid if psutil.pid_exists(pid) else None


def test_run_without_tokens_migrates_then_names_missing_settings(data_dir: Path) -> None:
    result = _bot("run", env=_env(data_dir))
    assert result.returncode == 2, result.stderr
    assert "TELEGRAM_BOT_TOKEN" in result.stderr
    assert "DISCORD_BOT_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr
    status = _bot("migrate", "--status", env=_env(data_dir))
    assert status.returncode == 0, status.stderr
    assert "0001_init  applied" in status.stdout
    # The last process exited, so the embedded server stopped.
    assert _server_pid(data_dir) is None


def test_processes_share_one_server_and_a_killed_one_does_not_keep_it_alive(
    data_dir: Path,
) -> None:
    env = _env(data_dir)
    # A long-lived holder: a Python process that starts the server and waits.
    holder_code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from bot.database import EmbeddedServer\n"
        "server = EmbeddedServer(Path(sys.argv[1]))\n"
        "server.start()\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", holder_code, str(data_dir / "postgres")],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        server_pid = _server_pid(data_dir)
        assert server_pid is not None
        # Another process joins the same server and leaves it running for the holder.
        assert _bot("migrate", env=env).returncode == 0
        assert _server_pid(data_dir) == server_pid
        # The holder dies without cleaning up.
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        # The next process notices the dead handle and, being last, stops the server.
        assert _bot("migrate", env=env).returncode == 0
        deadline = time.monotonic() + 20
        while _server_pid(data_dir) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _server_pid(data_dir) is None
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
        stop_embedded(data_dir / "postgres")


def test_db_stop_stops_a_server_left_running(data_dir: Path) -> None:
    env = _env(data_dir)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from bot.database import EmbeddedServer;"
            "EmbeddedServer(Path(sys.argv[1])).start(); print('ready', flush=True);"
            "import os; os._exit(0)",
            str(data_dir / "postgres"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    with holder.stdout:
        assert holder.stdout.readline().strip() == "ready"
    holder.wait(timeout=30)
    assert _server_pid(data_dir) is not None  # os._exit skipped the clean-up
    result = _bot("db", "--stop", env=env)
    assert result.returncode == 0, result.stderr
    assert "stopped the embedded server" in result.stdout
    assert _server_pid(data_dir) is None
    again = _bot("db", "--stop", env=env)
    assert "no embedded server is running" in again.stdout


def test_external_database_url_is_used_and_migrated(fresh_dsn: str, data_dir: Path) -> None:
    result = _bot("migrate", "--status", env=_env(data_dir, DATABASE_URL=fresh_dsn))
    assert result.returncode == 0, result.stderr
    assert "applied" in result.stdout
    assert not (data_dir / "postgres").exists()


def test_migrate_status_lists_pending_migrations_and_applies_nothing(
    empty_dsn: str, data_dir: Path
) -> None:
    env = _env(data_dir, DATABASE_URL=empty_dsn)
    listed = _bot("migrate", "--status", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "0001_init  pending" in listed.stdout
    assert "applied" not in listed.stdout
    assert "applied" not in _bot("migrate", "--status", env=env).stdout

    assert _bot("migrate", env=env).returncode == 0
    after = _bot("migrate", "--status", env=env).stdout
    assert "pending" not in after
    assert "0001_init  applied" in after


def test_unreachable_external_database_is_a_clear_error(data_dir: Path) -> None:
    url = "postgresql://nobody:pw@127.0.0.1:1/none"
    result = _bot("migrate", env=_env(data_dir, DATABASE_URL=url))
    assert result.returncode == 1
    assert "cannot connect to the database" in result.stderr
    assert "Traceback" not in result.stderr
    assert "pw@" not in result.stderr


@pytest.mark.parametrize("args", [["nonsense"], ["migrate", "--bogus"]])
def test_bad_usage_exits_2(args: list[str], data_dir: Path) -> None:
    assert _bot(*args, env=_env(data_dir)).returncode == 2
