"""After `/delete_me`, nothing in the database names the person.

A person with two linked identities, messages in private and in a group (some archived,
one with its voice recording kept), facts, documents (sent in private and in a group), a
failed memory-job run about them, admin actions about them (a lookup before they
arrived, `/user`, `/why`, `/ban`, `/unban`), an admin command they were refused, a
rate-limited stretch, an export, a long message's passages and recall indexes of their
own, erases themselves. Then every text, jsonb, bytea and integer column of every table
is searched for their user id, platform ids, usernames (old and new) and display names,
and the catalog for indexes named or defined by their id. The scan reads the schema, so
a table or column added later is searched too.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime

from core.engine import Engine
from core.inbound import ChatKind, Inbound
from core.jobs.long_messages import LongMessageJob
from core.jobs.memory.job import MemoryJob
from core.jobs.registry import JobRegistry, JobSpec
from core.models import MessageRole, NewFact, Platform
from core.recall.user_indexes import UserIndexRepository
from core.services import Services
from core.storage.job_runs import JobRunRepository
from core.storage.message_audio import MessageAudioRepository
from fakes.archiving import move_to_archive
from fakes.channel import RecordingChannel
from fakes.openai_server import FakeOpenAI
from tests.conftest import make_settings
from tests.core.commands import FakeClock
from tests.core.documents import keep
from tests.core.engine_helpers import PERSONA

# Distinct from every other number and word in the database, so that a match is hers.
HER_ID = 9_000_000_001
TELEGRAM_ID = "7771234567"
DISCORD_ID = "880011223344556677"
NAMES = ("zq_ann_old", "zq_ann_new", "zq_ann_discord", "Annabel Quux", "Annabel Q. Newname")
ADMIN_ID = "1000"
# The cursor of a broadcast (the last recipient handled) may be her id; it is a
# position in the id order, referencing nobody (docs/security.md, "Erasure").
NOT_A_REFERENCE = {("broadcasts", "last_user_id")}

_TEXT_TYPES = ("text", "character varying", "jsonb", "json", "ARRAY", "bytea")
_INTEGER_TYPES = ("bigint", "integer", "smallint", "numeric")


async def _columns(services: Services, types: tuple[str, ...]) -> list[tuple[str, str, str]]:
    async with services.db.connection() as conn:
        rows = await conn.fetch(
            "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c"
            " JOIN information_schema.tables t USING (table_schema, table_name)"
            " WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'"
            " AND c.data_type = ANY($1::text[]) ORDER BY 1, 2",
            list(types),
        )
    return [(r[0], r[1], r[2]) for r in rows]


async def traces(services: Services, user_id: int) -> set[str]:
    """Where the database still names the person: `table.column` (or `index name`)."""
    words = [str(user_id), TELEGRAM_ID, DISCORD_ID]
    pattern = "|".join(
        [rf"\m{w}\M" for w in words] + [re.escape(n).replace(r"\ ", " ") for n in NAMES]
    )
    found: set[str] = set()
    async with services.db.connection() as conn:
        for table, column, data_type in await _columns(services, _TEXT_TYPES):
            if data_type == "ARRAY" or data_type.startswith("json"):
                value = f'"{column}"::text'
            elif data_type == "bytea":  # its ASCII as is, other bytes escaped
                value = f"encode(\"{column}\", 'escape')"
            else:
                value = f'"{column}"'
            if await conn.fetchval(
                f'SELECT EXISTS (SELECT FROM "{table}" WHERE {value} ~* $1)', pattern
            ):
                found.add(f"{table}.{column}")
        for table, column, _ in await _columns(services, _INTEGER_TYPES):
            if (table, column) in NOT_A_REFERENCE:
                continue
            if await conn.fetchval(
                f'SELECT EXISTS (SELECT FROM "{table}" WHERE "{column}"::numeric = $1::numeric)',
                user_id,
            ):
                found.add(f"{table}.{column}")
        indexes = await conn.fetch(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
            " AND (indexname ~ $1 OR indexdef ~ $1)",
            rf"\D{user_id}\M",
        )
        found.update(f"index {r[0]}" for r in indexes)
    return found


class Person:
    """Sends messages through the engine as one identity of hers (or the admin)."""

    def __init__(self, engine: Engine, platform: Platform, platform_user_id: str) -> None:
        self.engine = engine
        self.platform = platform
        self.platform_user_id = platform_user_id
        self.username: str | None = None
        self.display_name: str | None = None
        self.count = 0

    async def says(self, text: str, *, group: str | None = None) -> RecordingChannel:
        self.count += 1
        channel = RecordingChannel()
        await self.engine.handle(
            Inbound(
                platform=self.platform,
                platform_user_id=self.platform_user_id,
                chat_id=group or self.platform_user_id,
                chat_kind=ChatKind.GROUP if group else ChatKind.PRIVATE,
                message_id=f"{self.platform_user_id}-{self.count}",
                text=text,
                sent_at=datetime.now(UTC),
                username=self.username,
                display_name=self.display_name,
            ),
            channel,
        )
        return channel


def _code(text: str) -> str:
    match = re.search(r"\b([A-Z2-9]{6,8})\b", text)
    assert match is not None, text
    return match[1]


async def test_delete_me_leaves_no_trace_of_the_person_anywhere(
    pooled: Services, fake_llm: FakeOpenAI
) -> None:
    clock = FakeClock()
    settings = make_settings(
        admin_ids=f"telegram:{ADMIN_ID}", limits={"rate_burst": 30, "rate_per_minute": 1}
    )
    services = replace(pooled, settings=settings, clock=clock)
    engine = Engine(services, persona=PERSONA)
    admin = Person(engine, Platform.TELEGRAM, ADMIN_ID)
    bystander = Person(engine, Platform.TELEGRAM, "1001")
    await admin.says("hello")
    await bystander.says("hello")
    # A lookup of her name before she arrived.
    assert "No user" in (await admin.says("/user @zq_ann_old")).last
    async with services.db.connection() as conn:
        await conn.execute("SELECT setval(pg_get_serial_sequence('users', 'id'), $1)", HER_ID - 1)

    ann = Person(engine, Platform.TELEGRAM, TELEGRAM_ID)
    ann.username, ann.display_name = "zq_ann_old", "Annabel Quux"
    await ann.says("Hi, I am Annabel Quux, call me zq_ann_old")
    await ann.says("hello everyone", group="-100200")
    # Long enough to be kept in passages too (the `long_messages` job, below).
    await ann.says("Annabel Quux here, about my week. " + "It rained and rained. " * 80)
    ann.username, ann.display_name = "zq_ann_new", "Annabel Q. Newname"
    await ann.says("I renamed myself")
    discord = Person(engine, Platform.DISCORD, DISCORD_ID)
    discord.username, discord.display_name = "zq_ann_discord", "Annabel Quux"
    await discord.says("hi from discord")
    link = await ann.says("/link")
    assert "Linked!" in (await discord.says(f"/link {_code(link.last)}")).last
    await ann.says("/language fr")  # kept as users.language, erased with her
    for identity in (f"telegram:{TELEGRAM_ID}", f"discord:{DISCORD_ID}"):
        found = await services.users.find(identity)
        assert found is not None and found.id == HER_ID
    await services.facts.add(HER_ID, NewFact("Annabel Quux likes tea"))
    old = await services.facts.add(HER_ID, NewFact("zq_ann_old lived in Rome"))
    await services.facts.invalidate(HER_ID, old.id)
    await keep(
        services,
        HER_ID,
        "The diary of Annabel Quux. zq_ann_old went to Rome in spring.",
        filename="zq_ann_old diary.txt",
    )
    await keep(services, HER_ID, "Notes by Annabel Quux for the group.", group="-100200")
    history = await services.messages.history(HER_ID)
    # A voice note of hers kept with its transcript (MEDIA_KEEP_AUDIO), then archived;
    # the recording holds her name as a recording may (say, in its metadata).
    first = history[-1]
    assert first.role is MessageRole.USER
    recording = b"OggS\x00\x02\xff\x00 TITLE=Annabel Quux \x01\x80" + bytes(range(256))
    assert await MessageAudioRepository(services.db).keep(
        HER_ID, first.id, mime_type="audio/ogg", data=recording
    )
    await move_to_archive(services.db, [m.id for m in history[-2:]])

    # Admins act on her; she tries an admin command.
    assert f"User {HER_ID}" in (await admin.says("/user @zq_ann_new")).last
    reply = next(m for m in history if m.role is MessageRole.ASSISTANT)
    await admin.says(f"/why {reply.id}")
    await admin.says("/ban @zq_ann_new")
    await admin.says(f"/unban telegram:{TELEGRAM_ID}")
    await ann.says("/audit")

    # A memory-job run that fails for her (and the others).
    fake_llm.responder = lambda body: "no JSON here"
    registry = JobRegistry(services.db, [JobSpec(MemoryJob(services), None)], clock=clock)
    assert "failed 3; 3 errors: user " in await registry.run("memory")

    await ann.says("/export")
    assert (await LongMessageJob(services.db, services.embedder).run()).counts["long"] >= 1
    await UserIndexRepository(services.db, dimensions=384).create(HER_ID)
    for n in range(30):  # a rate-limited stretch
        await ann.says(f"fast {n}")
    clock.advance(hours=1)
    await ann.says("/delete_me")  # a code she never uses

    before = await traces(services, HER_ID)
    # Her data is all over the database, so the empty scan below proves something.
    expected: set[str] = {
        "users.display_name",
        "users.id",
        "identities.username",
        "identities.platform_user_id",
        "identities.private_chat_id",
        "identities.user_id",
        "messages_archive.content",
        "messages.chat_id",
        "messages.user_id",
        "messages_archive.user_id",
        "facts.content",
        "documents.filename",
        "message_audio.data",
        "message_audio.user_id",
        "documents.chat_id",
        "documents.user_id",
        "document_chunks.content",
        "document_chunks.user_id",
        "admin_audit.actor_id",
        "admin_audit.target_user_id",
        "rate_limits.user_id",
        "one_time_codes.user_id",
        "handled_commands.chat_id",
        f"index messages_embedding_384_u{HER_ID}",
        "message_passages.user_id",
        f"index message_passages_embedding_384_u{HER_ID}",
    }
    assert expected <= before, expected - before

    confirm = (await ann.says("/delete_me")).last
    assert (
        "Tout ce qui te concerne est effacé"
        in (await ann.says(f"/delete_me {_code(confirm)}")).last
    )
    assert await traces(services, HER_ID) == set()
    assert await services.users.find(f"discord:{DISCORD_ID}") is None
    # The others are still there, and so is what the admin did (without her).
    async with services.db.connection() as conn:
        actions = await conn.fetch("SELECT action, details FROM admin_audit ORDER BY id")
        assert await conn.fetchval("SELECT count(*) FROM users") == 2
    assert [r["action"] for r in actions] == ["user", "user", "why", "ban", "unban", "refused"]
    assert actions[0]["details"] == {"query": "username", "found": False}
    [run] = await JobRunRepository(services.db).recent()
    assert run.error is not None and run.error.count("a user: LLMBadResponse") == 3
