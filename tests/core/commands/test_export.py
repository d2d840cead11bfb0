"""`/export`: every row about the person and nothing of anyone else's, in files no
larger than EXPORT_MAX_BYTES, one export at a time per person across replicas."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import random
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from core.commands.personal_data import EXPORT_CLAIM_TTL, EXPORT_RUNNING
from core.errors import DeliveryError
from core.export import EXPORT_FILENAME, ExportTooLargeError, package
from core.models import NewFact, Platform, User
from core.services import Services
from core.storage.audit import AuditRepository
from core.storage.broadcasts import BroadcastRepository
from core.storage.database import Database, create_pool
from core.storage.exports import ExportClaims
from core.storage.handled_commands import HandledCommandRepository
from fakes.archiving import move_to_archive
from fakes.channel import RecordingChannel
from tests.conftest import make_settings
from tests.core.commands import FakeClock, add_exchange, make_user, run, with_clock


def _limited(services: Services, max_bytes: int) -> Services:
    return replace(services, settings=make_settings(export_max_bytes=max_bytes))


async def _say(services: Services, user: User, texts: list[str]) -> None:
    for n, text in enumerate(texts):
        await services.messages.add_user_message(
            user.id, text, platform=Platform.TELEGRAM, chat_id="c", platform_message_id=f"m{n}"
        )


def _noise(rng: random.Random, size: int) -> str:
    """Text that compresses badly (random base64)."""
    return base64.b64encode(rng.randbytes(size * 3 // 4)).decode()


async def test_export_holds_every_row_about_me_and_nothing_of_anyone_else(
    services: Services,
) -> None:
    clock = FakeClock()
    services = with_clock(services, clock)
    admin = await make_user(services, "1", username="root", admin=True)
    me = await make_user(services, "2", username="ann")
    other = await make_user(services, "3", username="bob")
    first, first_reply = await add_exchange(services, me, "my first words")
    await add_exchange(services, me, "in the group", chat="group")
    await add_exchange(services, other, "bob's words")
    assert first_reply is not None
    await move_to_archive(services.db, [first.id, first_reply.id])
    await services.facts.add(me.id, NewFact("likes tea", is_private=True))
    old = await services.facts.add(me.id, NewFact("was in Rome"))
    await services.facts.invalidate(me.id, old.id)
    await services.facts.add(other.id, NewFact("bob's fact"))
    await services.users.set_language(me.id, "de")
    async with services.db.connection() as conn:
        await conn.execute(
            "UPDATE conversations SET memory_off_since = $2 WHERE user_id = $1", me.id, clock()
        )
        await conn.execute("UPDATE messages SET remembered = false WHERE user_id = $1", me.id)
        await conn.execute(
            "UPDATE messages SET delivered_at = $2 WHERE user_id = $1 AND role = 'assistant'",
            me.id,
            clock(),
        )
    # What admins did about me, and what I did as an admin myself (about someone else).
    audit = AuditRepository(services.db)
    await audit.record(admin.id, "ban", target_user_id=me.id, details={"previous": "active"})
    await audit.record(admin.id, "user", target_user_id=other.id)
    await audit.record(me.id, "user", target_user_id=other.id)
    broadcasts = BroadcastRepository(services.db)
    mine = await broadcasts.queue(
        "hello all", admin_id=me.id, platforms=[Platform.TELEGRAM], at=clock(), source="s1"
    )
    async with services.db.connection() as conn:  # the sender got as far as bob
        await conn.execute(
            "UPDATE broadcasts SET last_user_id = $2 WHERE id = $1", mine.id, other.id
        )
    await broadcasts.queue(
        "not mine", admin_id=admin.id, platforms=[Platform.TELEGRAM], at=clock(), source="s2"
    )
    await HandledCommandRepository(services.db).claim(
        me.id, Platform.TELEGRAM, "c2", "cmd-7", now=clock()
    )

    result = await run(services, me, "/export")
    [(filename, data, caption)] = result.channel.files
    assert filename == EXPORT_FILENAME and caption == "Everything I have stored about you, as JSON."
    document = json.loads(data)
    assert document["export_version"] == 2 and document["user_id"] == me.id
    assert document["profile"]["id"] == me.id
    assert document["profile"]["language"] == "de"  # chosen with /language
    [identity] = document["identities"]
    assert identity["username"] == "ann" and identity["created_at"] is not None
    assert document["conversation"]["memory_off_since"] == clock().isoformat()
    assert document["conversation_context"]["last_read_message_id"] == 0
    messages = document["messages"]
    assert [m["content"] for m in messages] == [
        "my first words",
        "re: my first words",
        "in the group",
        "re: in the group",
    ]
    assert [(m["archived"], m["remembered"]) for m in messages] == [
        (True, True),
        (True, True),
        (False, False),
        (False, False),
    ]
    assert messages[1]["context_snapshot"]["fact_ids"] == [1, 2]
    # Who said each, as named when it was stored (these replies were stored outside a
    # turn, which names the persona).
    assert [m["speaker"] for m in messages] == ["ann", None, "ann", None]
    assert [m["delivered_at"] for m in messages] == [None, None, None, clock().isoformat()]
    facts = {f["content"]: (f["is_private"], f["invalid_at"]) for f in document["facts"]}
    assert facts.keys() == {"likes tea", "was in Rome"}
    assert facts["likes tea"] == (True, None) and facts["was in Rome"][1] is not None
    [broadcast] = document["broadcasts"]
    assert (broadcast["id"], broadcast["text"]) == (mine.id, "hello all")
    assert "last_user_id" not in broadcast and "admin_id" not in broadcast
    [command] = document["commands"]
    assert (command["chat_id"], command["message_id"]) == ("c2", "cmd-7")
    assert [
        (e["action"], e["by_you"], e["about_you"], e["details"]) for e in document["audit"]
    ] == [
        ("ban", False, True, {"previous": "active"}),
        ("user", True, False, {}),
    ]
    # Nobody else's data, ids or names (bob's id is a small integer: look for it as a
    # value of the keys that hold user ids).
    text = data.decode()
    assert "bob" not in text and "root" not in text and "not mine" not in text
    ids = {v for e in document["audit"] for k, v in e.items() if k.endswith("id")}
    assert ids.isdisjoint({admin.id, other.id})


async def test_a_large_export_is_gzipped(services: Services) -> None:
    me = await make_user(services, "1")
    # Repetitive: compresses well.
    await _say(services, me, [f"the same old story, part {n} " * 40 for n in range(80)])
    result = await run(_limited(services, 64 * 1024), me, "/export")
    [(filename, data, caption)] = result.channel.files
    assert filename == f"{EXPORT_FILENAME}.gz" and "gzip" in (caption or "")
    assert len(data) <= 64 * 1024
    document = json.loads(gzip.decompress(data))
    assert len(document["messages"]) == 80
    assert result.channel.sent == []


async def test_an_export_too_large_even_compressed_comes_in_parts(services: Services) -> None:
    rng = random.Random(7)
    me = await make_user(services, "1")
    texts = [_noise(rng, 3000) for _ in range(60)]  # ~180 KB that compresses badly
    await _say(services, me, texts)
    await services.facts.add(me.id, NewFact("likes tea"))
    limit = 32 * 1024
    result = await run(_limited(services, limit), me, "/export")

    files = result.channel.files
    assert len(files) >= 6
    parts = len(files)
    assert [f[0] for f in files] == [
        f"onethread-export-{n}-of-{parts}.json.gz" for n in range(1, parts + 1)
    ]
    assert all(len(data) <= limit for _, data, _ in files)
    assert [caption for _, _, caption in files] == [
        f"Your data, part {n} of {parts}." for n in range(1, parts + 1)
    ]
    [announcement] = result.channel.sent
    assert f"comes in {parts} parts" in announcement
    documents = [json.loads(gzip.decompress(data)) for _, data, _ in files]
    head, *rest = documents
    assert (head["part"], head["parts"]) == (1, parts) and "messages" not in head
    assert [f["content"] for f in head["facts"]] == ["likes tea"]
    assert [(d["part"], d["user_id"]) for d in rest] == [(n, me.id) for n in range(2, parts + 1)]
    # Every message exactly once, oldest first.
    assert [m["content"] for d in rest for m in d["messages"]] == texts


async def test_an_item_larger_than_a_file_may_be_is_said_and_nothing_is_sent(
    services: Services,
) -> None:
    me = await make_user(services, "1")
    await _say(services, me, [_noise(random.Random(1), 3000), _noise(random.Random(2), 6000)])
    result = await run(_limited(services, 4096), me, "/export")
    assert result.channel.files == []
    assert result.channel.sent == [
        "I couldn't export your data: one item in it is larger than the 0.00391 MB a file may "
        "be here, so I sent nothing. Please ask the bot's operator for your export."
    ]
    # Nothing is left claimed: the next export runs (and says the same).
    assert (await run(_limited(services, 4096), me, "/export")).channel.sent == (
        result.channel.sent
    )


def test_package_splits_only_what_does_not_fit() -> None:
    rng = random.Random(3)
    document: dict[str, Any] = {
        "export_version": 2,
        "exported_at": "now",
        "user_id": 5,
        "profile": {"id": 5},
        "messages": [{"id": n, "content": _noise(rng, 2000)} for n in range(30)],
    }
    whole = package(document, max_bytes=10**6)
    assert [f.filename for f in whole] == [EXPORT_FILENAME]
    assert json.loads(whole[0].data) == document
    parts = package(document, max_bytes=8192)
    assert all(len(f.data) <= 8192 for f in parts)
    contents = [json.loads(gzip.decompress(f.data)) for f in parts]
    assert [m for c in contents[1:] for m in c["messages"]] == document["messages"]
    with pytest.raises(ExportTooLargeError):
        package({**document, "profile": {"bio": _noise(rng, 20_000)}}, max_bytes=8192)


def test_package_halves_a_part_that_compresses_worse_than_the_whole() -> None:
    """Parts are cut by the whole document's compression ratio: many repetitive messages
    and a few random ones make that ratio far too hopeful for the random ones."""
    rng = random.Random(4)
    messages = [{"id": n, "content": "la " * 2000} for n in range(200)]
    messages += [{"id": 200 + n, "content": _noise(rng, 3000)} for n in range(12)]
    document = {"export_version": 2, "exported_at": "now", "user_id": 5, "messages": messages}
    parts = package(document, max_bytes=8192)
    assert all(len(f.data) <= 8192 for f in parts)
    contents = [json.loads(gzip.decompress(f.data)) for f in parts]
    assert [m for c in contents[1:] for m in c["messages"]] == messages
    assert [c["part"] for c in contents] == list(range(1, len(parts) + 1))
    assert contents[0]["parts"] == len(parts)


async def test_a_second_export_while_one_runs_is_answered_at_once(
    services: Services, fresh_dsn: str
) -> None:
    """Two replicas (two pools on one database): the second /export of a person while
    the first is still sending gets a clear answer and nothing else; afterwards, and for
    someone else meanwhile, exports run."""
    pools = [await create_pool(fresh_dsn, min_size=1, max_size=3) for _ in range(2)]
    try:
        replicas = [replace(services, db=Database(p)) for p in pools]
        me = await make_user(replicas[0], "1")
        other = await make_user(replicas[0], "2")
        await add_exchange(replicas[0], me, "hello")
        release = asyncio.Event()
        sending = asyncio.Event()

        class SlowChannel(RecordingChannel):
            async def send_file(
                self, filename: str, data: bytes, caption: str | None = None
            ) -> None:
                sending.set()
                await release.wait()
                await super().send_file(filename, data, caption)

        slow = SlowChannel()
        first = asyncio.create_task(run(replicas[0], me, "/export", channel=slow))
        await asyncio.wait_for(sending.wait(), 10)

        second = await run(replicas[1], me, "/export")
        assert second.channel.sent == [EXPORT_RUNNING] and second.channel.files == []
        elsewhere = await run(replicas[1], other, "/export")
        assert len(elsewhere.channel.files) == 1

        release.set()
        await asyncio.wait_for(first, 10)
        assert len(slow.files) == 1
        assert len((await run(replicas[1], me, "/export")).channel.files) == 1
    finally:
        for pool in pools:
            await pool.close()


async def test_a_failed_export_frees_the_person_and_a_dead_ones_claim_expires(
    services: Services,
) -> None:
    clock = FakeClock()
    services = with_clock(services, clock)
    me = await make_user(services, "1")

    class Refusing(RecordingChannel):
        async def send_file(self, filename: str, data: bytes, caption: str | None = None) -> None:
            raise DeliveryError("file refused")

    with pytest.raises(DeliveryError):
        await run(services, me, "/export", channel=Refusing())
    assert len((await run(services, me, "/export")).channel.files) == 1

    # A replica that died mid-export left its claim: it holds until it expires.
    await ExportClaims(services.db).claim(me.id, now=clock(), ttl=EXPORT_CLAIM_TTL)
    clock.advance(seconds=EXPORT_CLAIM_TTL.total_seconds() - 1)
    assert (await run(services, me, "/export")).channel.sent == [EXPORT_RUNNING]
    clock.advance(seconds=1)
    assert len((await run(services, me, "/export")).channel.files) == 1


async def test_claims_are_per_person_and_released_only_by_their_holder(
    services: Services,
) -> None:
    clock = FakeClock()
    claims = ExportClaims(services.db)
    me = await make_user(services, "1")
    other = await make_user(services, "2")
    ttl = timedelta(minutes=1)
    stale = await claims.claim(me.id, now=clock(), ttl=ttl)
    assert stale is not None
    assert await claims.claim(me.id, now=clock(), ttl=ttl) is None
    assert await claims.claim(other.id, now=clock(), ttl=ttl) is not None
    clock.advance(minutes=1)
    taken_over = await claims.claim(me.id, now=clock(), ttl=ttl)
    assert taken_over is not None
    await claims.release(me.id, stale)  # the old holder ends late: not its claim any more
    assert await claims.claim(me.id, now=clock(), ttl=ttl) is None
    await claims.release(me.id, taken_over)
    assert await claims.claim(me.id, now=clock(), ttl=ttl) is not None
