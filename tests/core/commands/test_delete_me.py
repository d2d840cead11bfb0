from __future__ import annotations

import re
import uuid

from core.commands.personal_data import EXPORT_CLAIM_TTL
from core.jobs.long_messages import LongMessageJob
from core.models import NewFact, Platform
from core.recall.user_indexes import UserIndexRepository
from core.services import Services
from core.storage.exports import ExportClaims
from core.storage.handled_commands import HandledCommandRepository
from core.storage.message_audio import MessageAudioRepository
from core.storage.turns import NewMessage, ReadLimits, TurnStore
from fakes.archiving import move_to_archive
from tests.core.commands import FakeClock, add_exchange, make_user, run, with_clock
from tests.core.documents import keep

USER_COLUMNS = ("user_id", "target_user_id", "actor_id")


async def references(services: Services, user_id: int) -> dict[str, int]:
    """Rows referencing `user_id` in every column that can hold a user id."""
    async with services.db.connection() as conn:
        columns = await conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND column_name = ANY($1::text[])",
            list(USER_COLUMNS),
        )
        counts = {}
        for row in columns:
            table, column = row["table_name"], row["column_name"]
            counts[f"{table}.{column}"] = int(
                await conn.fetchval(
                    f'SELECT count(*) FROM "{table}" WHERE "{column}" = $1', user_id
                )
            )
    return counts


def code_of(text: str) -> str:
    match = re.search(r"/delete_me ([A-Z0-9]+)", text)
    assert match is not None, text
    return match[1]


async def test_delete_me_erases_every_trace_after_confirmation(services: Services) -> None:
    clock = FakeClock()
    services = with_clock(services, clock)
    user = await make_user(services, "1", admin=True)
    keeper = await make_user(services, "2", admin=True)
    message, reply = await add_exchange(services, user, "hello")
    assert reply is not None
    # A voice recording kept with the message (MEDIA_KEEP_AUDIO), then archived.
    await MessageAudioRepository(services.db).keep(
        user.id, message.id, mime_type="audio/ogg", data=b"OggS hello"
    )
    await move_to_archive(services.db, [message.id])
    # A long message, kept in passages too.
    await add_exchange(services, user, "It rained and rained all week. " * 60)
    assert (await LongMessageJob(services.db, services.embedder).run()).counts["long"] >= 1
    await services.facts.add(user.id, NewFact("likes tea"))
    await keep(services, user.id, "My recipe for tea: boil water, wait, pour.")
    async with services.db.connection() as conn:  # a rate-limit bucket
        await conn.execute("INSERT INTO rate_limits (user_id, tat) VALUES ($1, now())", user.id)
    # An export running (on another replica).
    await ExportClaims(services.db).claim(user.id, now=clock(), ttl=EXPORT_CLAIM_TTL)
    await HandledCommandRepository(services.db).claim(
        user.id, Platform.TELEGRAM, "1", "cmd-1", now=clock()
    )
    # A turn in progress: its queue row and lease.
    await TurnStore(services.db, holder=uuid.uuid4(), lease_seconds=30).open(
        user.id,
        NewMessage("pending", Platform.TELEGRAM, "1", "m-pending", None),
        ReadLimits(window=5, facts=5, shared_chat=False),
        take_lease=True,
    )
    # Keyword-recall statistics, as the user_indexes job keeps for the largest users.
    await UserIndexRepository(services.db, dimensions=384).count_terms(user.id)
    await run(services, user, "/link")  # a link code
    await run(services, user, "/stats")  # user as an audit actor
    await run(services, keeper, f"/user {user.id}")  # user as an audit target

    warning = (await run(services, user, "/delete_me")).text
    assert "cannot be undone" in warning
    before = await references(services, user.id)
    # Every column that can point at a user does, so the erasure below proves something.
    assert len(before) >= 10 and all(before.values()), before
    assert await services.users.get(user.id) is not None

    done = await run(services, user, f"/delete_me {code_of(warning).lower()}")
    assert "erased" in done.text
    assert await services.users.get(user.id) is None
    assert not any((await references(services, user.id)).values())
    async with services.db.connection() as conn:
        audit = await conn.fetch("SELECT actor_id, target_user_id FROM admin_audit ORDER BY id")
    assert [(r["actor_id"], r["target_user_id"]) for r in audit] == [
        (None, None),
        (keeper.id, None),
    ]
    assert await services.users.get(keeper.id) is not None
    assert await services.users.find("telegram:1") is None


async def test_wrong_expired_or_foreign_code_changes_nothing(services: Services) -> None:
    clock = FakeClock()
    services = with_clock(services, clock)
    user = await make_user(services, "1")
    other = await make_user(services, "2")
    code = code_of((await run(services, user, "/delete_me")).text)
    others_code = code_of((await run(services, other, "/delete_me")).text)
    assert "wrong" in (await run(services, user, "/delete_me ZZZZZZ")).text
    assert "wrong" in (await run(services, user, f"/delete_me {others_code}")).text
    clock.advance(minutes=5, seconds=1)
    assert "wrong" in (await run(services, user, f"/delete_me {code}")).text
    assert await services.users.get(user.id) is not None
    assert await services.users.get(other.id) is not None


async def test_a_new_code_replaces_the_old_one(services: Services) -> None:
    user = await make_user(services, "1")
    first = code_of((await run(services, user, "/delete_me")).text)
    second = code_of((await run(services, user, "/delete_me")).text)
    assert "wrong" in (await run(services, user, f"/delete_me {first}")).text or first == second
    assert "erased" in (await run(services, user, f"/delete_me {second}")).text


async def test_injection_in_the_code_is_harmless(services: Services) -> None:
    user = await make_user(services, "1", platform=Platform.DISCORD)
    await run(services, user, "/delete_me")
    result = await run(services, user, "/delete_me ' OR 1=1; DROP TABLE users; --")
    assert result.text == "Usage: /delete_me [code]"
    assert await services.users.get(user.id) is not None
