"""The jobs on the command line, called in-process on a database of their own, with the
fake OpenAI server as the model; and the scheduler."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from bot.database import DatabaseLocation
from bot.jobs import (
    COMMANDS,
    add_job_commands,
    build_registry,
    jobs_command,
    reembed_command,
    serve_jobs,
)
from bot.scheduler import JobScheduler
from config import Settings
from core.jobs.registry import JobOutcome, JobRegistry, JobSpec
from core.models import Platform
from core.services import Services
from core.storage.database import Database, connect
from core.storage.job_runs import JobRunRepository
from core.storage.messages import MessageRepository
from core.storage.users import UserRepository
from fakes.openai_server import FakeOpenAI
from tests.conftest import make_settings
from tests.core.jobs.memory.helpers import ScriptedModel, fact, update


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_job_commands(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


@pytest.fixture
def settings(fresh_dsn: str, fake_llm: FakeOpenAI) -> Settings:
    return make_settings(database_url=fresh_dsn, openai_base_url=fake_llm.base_url)


@pytest.fixture
async def conn(fresh_dsn: str) -> AsyncIterator[asyncpg.Connection[asyncpg.Record]]:
    connection = await connect(fresh_dsn)
    yield connection
    await connection.close()


def test_the_commands_parse() -> None:
    assert _parse("jobs").jobs_action is None
    assert _parse("jobs", "list").jobs_action == "list"
    run = _parse("jobs", "run", "archive")
    assert (run.jobs_action, run.name) == ("run", "archive")
    reembed = _parse("reembed", "--restart", "--batch-size", "64")
    assert (reembed.restart, reembed.batch_size) == (True, 64)
    assert (_parse("reembed").restart, _parse("reembed").batch_size) == (False, 128)
    with pytest.raises(SystemExit):
        _parse("jobs", "run", "nope")
    assert set(COMMANDS) == {"jobs", "reembed"}


async def test_run_then_list(
    settings: Settings,
    fake_llm: FakeOpenAI,
    conn: asyncpg.Connection[asyncpg.Record],
    capsys: pytest.CaptureFixture[str],
) -> None:
    user, _ = await UserRepository(Database(conn)).get_or_create(Platform.CONSOLE, "cli")
    await MessageRepository(Database(conn)).add_user_message(
        user.id, "I like tea", platform=Platform.CONSOLE, chat_id="c", platform_message_id="1"
    )
    fake_llm.responder = ScriptedModel(extraction=lambda prompt: update(fact("Likes tea")))

    assert await jobs_command(settings, _parse("jobs", "run", "memory")) == 0
    assert "memory: users 1, messages 1, facts added 1" in capsys.readouterr().out
    assert await conn.fetchval("SELECT count(*) FROM facts WHERE user_id = $1", user.id) == 1

    assert await jobs_command(settings, _parse("jobs", "run", "retention")) == 0
    assert "off" in capsys.readouterr().out

    assert await jobs_command(settings, _parse("jobs", "list")) == 0
    out = capsys.readouterr().out
    table, _, latest = out.partition("latest")
    lines = {line.split()[0]: line for line in table.splitlines() if line.strip()}
    assert "every 300 s" in lines["memory"]
    assert "ok" in lines["memory"]
    assert "users 1" in lines["memory"]
    assert "every 3600 s" in lines["archive"] and "never" in lines["archive"]
    assert "on request" in lines["reembed"]
    assert latest.startswith(" 2 runs")


async def test_a_failed_run_exits_1(
    settings: Settings, fake_llm: FakeOpenAI, conn: asyncpg.Connection[asyncpg.Record]
) -> None:
    user, _ = await UserRepository(Database(conn)).get_or_create(Platform.CONSOLE, "cli2")
    await MessageRepository(Database(conn)).add_user_message(
        user.id, "hello", platform=Platform.CONSOLE, chat_id="c", platform_message_id="2"
    )
    fake_llm.responder = lambda body: "no json here"
    assert await jobs_command(settings, _parse("jobs", "run", "memory")) == 1
    row = await conn.fetchrow("SELECT status, error FROM job_runs WHERE job = 'memory'")
    assert row is not None
    assert row["status"] == "failed"
    assert "LLMBadResponse" in row["error"]


async def test_reembed_shows_progress_and_records_the_run(
    settings: Settings,
    conn: asyncpg.Connection[asyncpg.Record],
    capsys: pytest.CaptureFixture[str],
) -> None:
    user, _ = await UserRepository(Database(conn)).get_or_create(Platform.CONSOLE, "cli3")
    for i in range(3):
        await MessageRepository(Database(conn)).add_user_message(
            user.id, f"m{i}", platform=Platform.CONSOLE, chat_id="c", platform_message_id=str(i)
        )
    assert await reembed_command(settings, _parse("reembed", "--batch-size", "2")) == 0
    captured = capsys.readouterr()
    assert "facts 0, messages 3, document chunks 0, archive 0" in captured.out
    assert "messages" in captured.err and "3/3" in captured.err  # the bar
    dims = await conn.fetch("SELECT vector_dims(embedding) AS d FROM messages")
    assert [r["d"] for r in dims] == [384, 384, 384]
    assert await conn.fetchval("SELECT status FROM job_runs WHERE job = 'reembed'") == "ok"


class Counting:
    name = "tick"

    def __init__(self) -> None:
        self.ran = asyncio.Event()
        self.started = asyncio.Event()
        self.block = False

    async def run(self) -> JobOutcome:
        self.started.set()
        if self.block:
            await asyncio.Event().wait()
        self.ran.set()
        return JobOutcome()


async def test_the_scheduler_runs_jobs_and_cancels_them_on_stop(db: Database) -> None:
    job = Counting()
    manual = Counting()
    manual.name = "manual"
    registry = JobRegistry(db, [JobSpec(job, 3600), JobSpec(manual, None)])
    scheduler = JobScheduler(registry, first_delay_seconds=0)
    assert scheduler.scheduled() == {"tick": 3600}
    async with scheduler:
        await asyncio.wait_for(job.ran.wait(), 10)
    assert not manual.started.is_set()

    job.started.clear()
    job.block = True
    scheduler = JobScheduler(registry, first_delay_seconds=0)
    await scheduler.start()
    await asyncio.wait_for(job.started.wait(), 10)
    await scheduler.stop()  # returns although the run would never end by itself
    runs = await JobRunRepository(db).recent()
    assert [(r.status.value, r.error) for r in runs] == [("failed", "cancelled"), ("ok", None)]

    # A run the registry started on request (`/broadcast`) is stopped with the scheduler.
    manual.block = True
    scheduler = JobScheduler(registry, first_delay_seconds=3600)
    await scheduler.start()
    background = registry.start("manual")
    await asyncio.wait_for(manual.started.wait(), 10)
    await scheduler.stop()
    assert background.cancelled()


async def test_serve_runs_until_stopped(settings: Settings) -> None:
    stop = asyncio.Event()
    stop.set()
    assert await asyncio.wait_for(serve_jobs(settings, _parse("jobs"), stop=stop), 60) == 0


def test_the_registry_has_every_job_on_its_schedule(services: Services) -> None:
    location = DatabaseLocation("postgresql://nowhere/onethread", True, None)
    registry = build_registry(services, location)
    assert registry.schedule() == {
        "memory": 300,
        "long_messages": 300,
        "archive": 3600,
        "retention": 3600,
        "reembed": None,
        "user_indexes": 3600,
        "broadcast": 30,
        "backup": 86400,  # daily with the embedded database (the test settings have no URL)
    }
