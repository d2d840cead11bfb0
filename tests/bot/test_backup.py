"""Backups and restores on real databases: a backup taken under traffic restores every
row and the same recall; what a restore refuses; the command line, embedded and
external."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bot.backup import Archive, BackupError, check_schema, dump, read_archive, restore
from bot.database import open_database
from bot.db_cli import restore_command
from core.engine import Engine
from core.inbound import ChatKind
from core.jobs.memory import MemoryJob
from core.models import Platform
from core.recall.candidates import RecallCandidates
from core.recall.hybrid import HybridRecall, RecalledItem
from core.recall.keywords import TextSearchRepository
from core.recall.vectors import RecallRepository
from core.services import Services
from core.storage.database import Connection, Database, connect
from core.storage.messages import MessageRepository
from core.storage.migrations import load_migrations
from core.storage.users import UserRepository
from fakes.archiving import move_to_archive
from fakes.channel import RecordingChannel
from fakes.openai_server import FakeOpenAI
from tests.bot.test_cli import _bot, _env
from tests.conftest import make_settings
from tests.core.engine_helpers import PERSONA, inbound
from tests.core.jobs.memory.helpers import ScriptedModel, fact, update

NOW = datetime(2030, 1, 1, tzinfo=UTC)
PEOPLE = {
    "ann": ["I adopted a beagle called Biscuit", "My parcel reference is 4471", "I love tea"],
    "bob": ["Zorblax-7 shipped today", "We moved to Lisbon last spring", "Cycling is my thing"],
    "cy": ["I play the cello on Sundays", "My sister lives in Oslo"],
}
QUERIES = ["how is my dog?", "what was 4471?", "where do I live now?", "music", "Zorblax-7"]


async def _say(engine: Engine, user: str, text: str, **kwargs: Any) -> RecordingChannel:
    channel = RecordingChannel()
    await engine.handle(inbound(text, user=user, **kwargs), channel)
    return channel


async def _fill(services: Services, fake_llm: FakeOpenAI) -> Engine:
    """People (one linked on two platforms), messages with embeddings, facts, archive."""
    fake_llm.responder = ScriptedModel(extraction=lambda prompt: update(fact("Likes examples")))
    # People write faster here than the default rate limit lets them.
    limits = {"rate_burst": 10_000, "rate_per_minute": 100_000}
    engine = Engine(replace(services, settings=make_settings(limits=limits)), persona=PERSONA)
    await engine.start()
    for user, texts in PEOPLE.items():
        for text in texts:
            await _say(engine, user, text)
    await _say(engine, "ann", "hello from the group", chat="group-1", kind=ChatKind.GROUP)
    code = re.search(r"/link ([A-Z0-9]+)", (await _say(engine, "ann", "/link")).last)
    assert code is not None
    linked = await _say(engine, "ann-d", f"/link {code[1]}", platform=Platform.DISCORD)
    assert linked.last.startswith("Linked!")
    await MemoryJob(services).run()
    async with services.db.connection() as conn:
        oldest = await conn.fetch("SELECT id FROM messages ORDER BY id LIMIT 4")
    await move_to_archive(services.db, [row["id"] for row in oldest])
    return engine


async def _rows(conn: Connection) -> dict[str, list[str]]:
    """Every table's rows as text, sorted."""
    tables = await conn.fetch(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 1"
    )
    found = {}
    for table in tables:
        name = table["relname"]
        texts = await conn.fetch(f'SELECT t::text AS row FROM public."{name}" t')
        found[name] = sorted(r["row"] for r in texts)
    return found


async def _recall(services: Services, conn: Connection) -> list[list[RecalledItem]]:
    db = Database(conn)
    recall = HybridRecall(
        RecallCandidates(db, RecallRepository(db, dimensions=384), TextSearchRepository(db))
    )
    users = [r["id"] for r in await conn.fetch("SELECT id FROM users ORDER BY id")]
    vectors = await services.embedder.embed(QUERIES)
    return [
        await recall.search(user, query, vector, 8, now=NOW)
        for user in users
        for query, vector in zip(QUERIES, vectors, strict=True)
    ]


@dataclass
class _Traffic:
    sent: int = 0
    underway: asyncio.Event = field(default_factory=asyncio.Event)


@contextlib.asynccontextmanager
async def _traffic(engine: Engine) -> AsyncIterator[_Traffic]:
    """People keep writing (a new person among them) for the duration of the block."""
    traffic = _Traffic()

    async def write() -> None:
        while True:
            user = "dee" if traffic.sent % 2 else "bob"
            await _say(engine, user, f"still writing {traffic.sent}")
            traffic.sent += 1
            if traffic.sent == 3:
                traffic.underway.set()

    task = asyncio.create_task(write())
    try:
        yield traffic
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_backup_under_traffic_restores_every_row_and_the_same_recall(
    pooled: Services, fake_llm: FakeOpenAI, fresh_dsn: str, empty_dsn: str, tmp_path: Path
) -> None:
    engine = await _fill(pooled, fake_llm)
    path = tmp_path / "under-traffic.dump"
    # The backup's snapshot is one the test reads too: what it must hold exactly.
    source = await connect(fresh_dsn)
    snapshot = source.transaction(isolation="repeatable_read", readonly=True)
    await snapshot.start()
    try:
        exported = await source.fetchval("SELECT pg_export_snapshot()")
        expected = await _rows(source)
        expected_recall = await _recall(pooled, source)
        steps: list[str] = []
        async with _traffic(engine) as traffic:
            await asyncio.wait_for(traffic.underway.wait(), 30)
            await dump(fresh_dsn, path, snapshot=exported, progress=steps.append)
            written_meanwhile = traffic.sent
    finally:
        await snapshot.rollback()
        await source.close()
        await engine.stop()
    assert written_meanwhile >= 3
    source = await connect(fresh_dsn)
    try:
        assert (
            await source.fetchval(
                "SELECT count(*) FROM messages WHERE content LIKE 'still writing%'"
            )
            >= written_meanwhile
        )
    finally:
        await source.close()
    assert any("messages" in step for step in steps)

    restored = await restore(empty_dsn, await read_archive(path))

    target = await connect(empty_dsn)
    try:
        assert await _rows(target) == expected
        # What people wrote after the backup's snapshot is in the source, not in it.
        writing = "SELECT count(*) FROM messages WHERE content LIKE 'still writing%'"
        assert await target.fetchval(writing) == 0
        assert await _recall(pooled, target) == expected_recall
        # Sequences go on past every restored id: new rows do not collide.
        next_id = await target.fetchval("SELECT nextval('messages_id_seq')")
        assert next_id > max(int(row.split(",")[0][1:]) for row in expected["messages"])
    finally:
        await target.close()
    assert len(expected["identities"]) == len(PEOPLE) + 1  # ann is on two platforms
    assert expected["facts"]
    assert expected["messages_archive"]
    assert (restored.people, restored.messages, restored.archived_messages) == (
        len(expected["users"]),
        len(expected["messages"]),
        len(expected["messages_archive"]),
    )
    assert restored.facts == len(expected["facts"])
    assert restored.version == restored.backup_version == load_migrations()[-1].version


@pytest.fixture
async def backup_file(fresh_dsn: str, tmp_path: Path) -> Path:
    path = tmp_path / "migrated.dump"
    await dump(fresh_dsn, path)
    return path


async def test_a_restore_refuses_a_database_that_is_not_empty_unless_forced(
    backup_file: Path, fresh_dsn: str
) -> None:
    archive = await read_archive(backup_file)
    conn = await connect(fresh_dsn)
    try:
        await conn.execute("INSERT INTO users DEFAULT VALUES")
    finally:
        await conn.close()
    with pytest.raises(BackupError, match="not empty"):
        await restore(fresh_dsn, archive)
    conn = await connect(fresh_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM users") == 1  # left alone
    finally:
        await conn.close()

    restored = await restore(fresh_dsn, archive, force=True)

    assert restored.people == 0  # the backup's content, not what was there


async def test_a_restore_refuses_while_others_are_connected(
    backup_file: Path, empty_dsn: str
) -> None:
    other = await asyncpg.connect(empty_dsn)
    try:
        with pytest.raises(BackupError, match="other connection"):
            await restore(empty_dsn, await read_archive(backup_file))
    finally:
        await other.close()


async def test_a_backup_of_a_newer_version_is_refused_before_anything_is_touched(
    backup_file: Path,
) -> None:
    archive = await read_archive(backup_file)
    assert archive.version == load_migrations()[-1].version
    assert archive.entries > 20
    newer = Archive(archive.path, archive.entries, {**archive.migrations, 9999: "x"})
    with pytest.raises(BackupError, match=r"newer onethread.*9999"):
        check_schema(newer)
    changed = Archive(archive.path, archive.entries, {**archive.migrations, 1: "other"})
    with pytest.raises(BackupError, match="different build"):
        check_schema(changed)
    older = Archive(archive.path, archive.entries, {1: load_migrations()[0].checksum})
    check_schema(older)  # an older backup is fine: the restore migrates it


async def test_a_file_that_is_no_backup_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.dump"
    junk.write_text("not a dump\n")
    with pytest.raises(BackupError, match="not a pg_dump custom-format backup"):
        await read_archive(junk)
    with pytest.raises(BackupError, match="not a file"):
        await read_archive(tmp_path / "missing.dump")


async def test_restore_on_database_url_says_what_it_restored_and_hides_the_password(
    backup_file: Path,
    empty_dsn: str,
    data_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The test server trusts local connections: the password is accepted, and unused.
    url = empty_dsn.replace("postgres:@", "postgres:s3cret-pw@")
    settings = make_settings(database_url=url, onethread_data_dir=data_dir)
    args = argparse.Namespace(file=backup_file, force=False)

    assert await restore_command(settings, args) == 0

    out, err = capsys.readouterr()
    assert f"restored {backup_file}: 0 people, 0 messages (0 archived), 0 facts" in out
    assert "s3cret-pw" not in out + err


async def test_backup_and_restore_of_the_embedded_database_with_the_service_stopped(
    data_dir: Path,
) -> None:
    source, target = data_dir / "source", data_dir / "target"
    await _embedded_with_a_person(source)
    backup = await asyncio.to_thread(_bot, "backup", env=_env(source))
    assert backup.returncode == 0, backup.stderr
    [written] = (source / "backups").glob("onethread-*.dump")
    assert f"backup written to {written}" in backup.stdout

    restored = await asyncio.to_thread(_bot, "restore", str(written), env=_env(target))
    assert restored.returncode == 0, restored.stderr
    assert "1 people, 2 messages (0 archived), 0 facts" in restored.stdout
    again = await asyncio.to_thread(_bot, "restore", str(written), env=_env(target))
    assert again.returncode == 1
    assert "not empty" in again.stderr
    assert "Traceback" not in again.stderr
    for folder in (source, target):  # both servers stopped with their last process
        assert not (folder / "postgres" / "postmaster.pid").exists()


async def _embedded_with_a_person(folder: Path) -> None:
    """An embedded database in `folder` with one person who said two things; stopped."""
    async with open_database(make_settings(onethread_data_dir=folder)) as location:
        conn = await connect(location.dsn)
        try:
            db = Database(conn)
            user, _ = await UserRepository(db).get_or_create(Platform.CONSOLE, "eve")
            for number, text in enumerate(["hi", "again"]):
                await MessageRepository(db).add_user_message(
                    user.id,
                    text,
                    platform=Platform.CONSOLE,
                    chat_id="c",
                    platform_message_id=str(number),
                )
        finally:
            await conn.close()
