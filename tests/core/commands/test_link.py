from __future__ import annotations

import asyncio
import re

from core.models import NewFact, Platform, Role, UserStatus
from core.services import Services
from core.storage.database import Database, create_pool
from core.storage.message_audio import MessageAudioRepository
from fakes.archiving import move_to_archive
from tests.conftest import make_settings
from tests.core.commands import FakeClock, add_exchange, make_user, run, with_clock


def code_of(text: str) -> str:
    match = re.search(r"/link ([A-Z0-9]+)", text)
    assert match is not None, text
    return match[1]


async def test_link_merges_the_other_account_into_the_code_owner(services: Services) -> None:
    owner = await make_user(services, "100", username="ann")
    other = await make_user(services, "200", platform=Platform.DISCORD, username="ann_d")
    bystander = await make_user(services, "300")
    for n in range(2):
        await add_exchange(services, owner, f"owner {n}")
    moved, moved_reply = await add_exchange(services, other, "other 0")
    await add_exchange(services, other, "other 1")
    await add_exchange(services, bystander, "bystander")
    assert moved_reply is not None
    audio = MessageAudioRepository(services.db)
    await audio.keep(other.id, moved.id, mime_type="audio/ogg", data=b"OggS other 0")
    await move_to_archive(services.db, [moved.id])
    await services.facts.add(owner.id, NewFact("likes tea"))
    await services.facts.add(other.id, NewFact("likes chess"))
    old = await services.facts.add(other.id, NewFact("lived in Rome"))
    await services.facts.invalidate(other.id, old.id)
    async with services.db.connection() as conn:
        await conn.execute(
            "UPDATE conversations SET summary = 'Owner summary', summary_version = 3"
            " WHERE user_id = $1",
            owner.id,
        )
        await conn.execute(
            "UPDATE conversations SET summary = 'Other summary', summary_version = 5"
            " WHERE user_id = $1",
            other.id,
        )
        high_water = await conn.fetchval(
            "SELECT max(id) FROM messages WHERE user_id = $1", owner.id
        )
        await conn.execute(
            "UPDATE conversation_context SET last_read_message_id = $2 WHERE user_id = $1",
            owner.id,
            high_water,
        )
    before_owner = await services.users.conversation(owner.id)
    before_other = await services.users.conversation(other.id)

    code = code_of((await run(services, owner, "/link")).text)
    result = await run(services, other, f"/link {code.lower()}", platform=Platform.DISCORD)
    assert "Linked" in result.text

    assert await services.users.get(other.id) is None
    identities = {
        (i.platform, i.platform_user_id) for i in await services.users.identities(owner.id)
    }
    assert identities == {(Platform.TELEGRAM, "100"), (Platform.DISCORD, "200")}
    history = await services.messages.history(owner.id, limit=100)
    assert {m.content for m in history} == {
        "owner 0", "re: owner 0", "owner 1", "re: owner 1",
        "other 0", "re: other 0", "other 1", "re: other 1",
    }  # fmt: skip
    assert any(m.archived and m.content == "other 0" for m in history)
    # A kept recording moves with its message (deleting the merged user would cascade).
    assert [(a.message_id, a.data) for a in await audio.of_user(owner.id)] == [
        (moved.id, b"OggS other 0")
    ]
    assert {f.content for f in await services.facts.all(owner.id)} == {
        "likes tea",
        "likes chess",
        "lived in Rome",
    }
    after = await services.users.conversation(owner.id)
    assert after.message_count == before_owner.message_count + before_other.message_count == 8
    assert after.tokens_in == before_owner.tokens_in + before_other.tokens_in
    assert after.tokens_out == before_owner.tokens_out + before_other.tokens_out
    assert after.summary.startswith("Owner summary") and after.summary.endswith("Other summary")
    assert after.summary_version == 6
    async with services.db.connection() as conn:
        last_read = await conn.fetchval(
            "SELECT last_read_message_id FROM conversation_context WHERE user_id = $1", owner.id
        )
        leftovers = await conn.fetchval(
            "SELECT count(*) FROM one_time_codes WHERE user_id = ANY($1::bigint[])",
            [owner.id, other.id],
        )
    assert last_read == 0  # the moved messages were never read: read them again
    assert leftovers == 0
    assert len(await services.messages.history(bystander.id)) == 2


async def test_a_link_code_works_once(services: Services) -> None:
    owner = await make_user(services, "1")
    second = await make_user(services, "2")
    third = await make_user(services, "3")
    code = code_of((await run(services, owner, "/link")).text)
    assert "Linked" in (await run(services, second, f"/link {code}")).text
    again = await run(services, third, f"/link {code}")
    assert "wrong, used or expired" in again.text
    assert await services.users.get(third.id) is not None


async def test_an_expired_link_code_changes_nothing(services: Services) -> None:
    clock = FakeClock()
    services = with_clock(services, clock)
    owner = await make_user(services, "1")
    other = await make_user(services, "2")
    code = code_of((await run(services, owner, "/link")).text)
    clock.advance(minutes=10, seconds=1)
    assert "expired" in (await run(services, other, f"/link {code}")).text
    assert await services.users.get(other.id) is not None
    clock.advance(minutes=-1)
    assert "Linked" in (await run(services, other, f"/link {code}")).text


async def test_linking_to_oneself_is_refused(services: Services) -> None:
    user = await make_user(services, "1")
    code = code_of((await run(services, user, "/link")).text)
    assert "nothing to link" in (await run(services, user, f"/link {code}")).text
    other = await make_user(services, "2")
    assert "Linked" in (await run(services, other, f"/link {code}")).text  # still unused


async def test_wrong_codes_and_injection_are_harmless(services: Services) -> None:
    owner = await make_user(services, "1")
    other = await make_user(services, "2")
    await run(services, owner, "/link")
    assert "wrong" in (await run(services, other, "/link ABCDEFGH")).text
    for attempt in ("'; DROP TABLE users; --", "ABC' OR '1'='1", "%", "ABCD EFGH"):
        assert (await run(services, other, f"/link {attempt}")).text == "Usage: /link [code]"
    assert await services.users.get(other.id) is not None


async def test_merge_keeps_the_higher_role_and_a_ban(services: Services) -> None:
    owner = await make_user(services, "1")
    admin_other = await make_user(services, "2", admin=True)
    code = code_of((await run(services, owner, "/link")).text)
    await run(services, admin_other, f"/link {code}")
    merged = await services.users.get(owner.id)
    assert merged is not None and merged.role is Role.ADMIN

    banned = await make_user(services, "3")
    await services.users.set_status(banned.id, UserStatus.BANNED)
    code = code_of((await run(services, owner, "/link")).text)
    await run(services, banned, f"/link {code}")
    merged = await services.users.get(owner.id)
    assert merged is not None and merged.status is UserStatus.BANNED


async def test_a_fresh_account_does_not_force_rereading(services: Services) -> None:
    owner = await make_user(services, "1")
    await add_exchange(services, owner, "hello")
    async with services.db.connection() as conn:
        await conn.execute(
            "UPDATE conversation_context SET last_read_message_id = 1000000000 WHERE user_id = $1",
            owner.id,
        )
    fresh = await make_user(services, "2")
    code = code_of((await run(services, owner, "/link")).text)
    await run(services, fresh, f"/link {code}")
    async with services.db.connection() as conn:
        last_read = await conn.fetchval(
            "SELECT last_read_message_id FROM conversation_context WHERE user_id = $1", owner.id
        )
    assert last_read == 1000000000


async def test_concurrent_redemptions_merge_once(fresh_dsn: str, services: Services) -> None:
    """Two accounts racing for one code on separate connections: exactly one wins."""
    pool = await create_pool(fresh_dsn, min_size=3, max_size=3)
    try:
        shared = Services(
            settings=make_settings(),
            db=Database(pool),
            embedder=services.embedder,
            llm=services.llm,
            tokens=services.tokens,
        )
        owner = await make_user(shared, "1")
        racers = [await make_user(shared, str(n)) for n in (2, 3)]
        code = code_of((await run(shared, owner, "/link")).text)
        results = await asyncio.gather(*(run(shared, r, f"/link {code}") for r in racers))
        assert sorted("Linked" in r.text for r in results) == [False, True]
        identities = await shared.users.identities(owner.id)
        assert len(identities) == 2
    finally:
        await pool.close()
