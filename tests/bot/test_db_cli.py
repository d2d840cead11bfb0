"""`python -m bot db` and `db shell`: how to reach the database, and psql on it, embedded
(as real processes) and external; the libpq plumbing that keeps passwords hidden."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bot.db_cli import shell, show
from bot.pgtools import libpq_target, packaged_bin, psql, redacted
from tests.bot.test_cli import _bot, _env
from tests.conftest import make_settings


def test_db_keeps_the_embedded_server_up_until_ctrl_c_and_db_shell_uses_it(
    data_dir: Path, tmp_path: Path
) -> None:
    # No psql on PATH: `db shell` must use the packaged one.
    env = _env(data_dir, PATH=str(tmp_path))
    holder = subprocess.Popen(
        [sys.executable, "-m", "bot", "db"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        said: list[str] = []
        while not said or not said[-1].startswith("the server stays up"):
            line = holder.stdout.readline()
            assert line, holder.stderr.read() if holder.stderr else ""
            said.append(line)
        dsn = next(line for line in said if line.startswith("connection string: "))
        dsn = dsn.removeprefix("connection string: ").strip()
        assert str(data_dir / "postgres") in dsn
        # The printed string works while `db` runs...
        direct = subprocess.run(
            [str(packaged_bin() / "psql"), dsn, "-Atc", "SELECT current_database()"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert direct.stdout.strip() == "onethread", direct.stderr
        # ... and so does the shell, with the packaged psql.
        result = _bot("db", "shell", "--", "-Atc", "SELECT current_database()", env=env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "onethread"

        holder.send_signal(signal.SIGINT)
        assert holder.wait(timeout=60) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        for stream in (holder.stdout, holder.stderr):
            if stream is not None:
                stream.close()
    # The last process is gone: so is the server, and its string is dead.
    assert not (data_dir / "postgres" / "postmaster.pid").exists()


async def test_external_database_is_shown_and_opened_without_its_password(
    fresh_dsn: str, data_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    url = fresh_dsn.replace("postgres:@", "postgres:s3cret-pw@")
    settings = make_settings(database_url=url, onethread_data_dir=data_dir)

    assert await show(settings, stop=asyncio.Event()) == 0  # returns at once
    assert await shell(settings, ["-Atc", "SELECT 40 + 2"]) == 0

    out, err = capfd.readouterr()
    assert "external PostgreSQL (DATABASE_URL)" in out
    assert "connection string: postgresql://postgres:***@" in out
    assert "\n42\n" in out
    assert "s3cret-pw" not in out + err


def test_a_password_goes_to_the_environment_never_on_the_command_line() -> None:
    target = libpq_target("postgresql://ann:p%40ss@db.example:5433/onethread?sslmode=require")
    assert target.conninfo == "postgresql://ann@db.example:5433/onethread?sslmode=require"
    assert target.env["PGPASSWORD"] == "p@ss"
    in_query = libpq_target("postgresql://ann@h/db?password=pw2&sslmode=require")
    assert (in_query.conninfo, in_query.env["PGPASSWORD"]) == (
        "postgresql://ann@h/db?sslmode=require",
        "pw2",
    )
    embedded = libpq_target("postgresql://postgres:@/onethread?host=/data/postgres")
    assert embedded.conninfo == "postgresql://postgres@/onethread?host=/data/postgres"
    assert "PGPASSWORD" not in embedded.env


def test_redacted_hides_passwords_for_printing() -> None:
    assert redacted("postgresql://ann:p%40ss@h:5/db") == "postgresql://ann:***@h:5/db"
    assert (
        redacted("postgresql://ann@h/db?password=x&a=b") == "postgresql://ann@h/db?password=***&a=b"
    )
    assert redacted("postgresql://h/db") == "postgresql://h/db"


def test_psql_is_the_one_on_path_else_the_packaged_one(tmp_path: Path) -> None:
    assert psql(str(tmp_path)) == packaged_bin() / "psql"
    own = tmp_path / "psql"
    own.write_text("#!/bin/sh\n")
    own.chmod(0o755)
    assert psql(str(tmp_path)) == own
