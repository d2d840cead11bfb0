from __future__ import annotations

import asyncio

import asyncpg

from core.models import Platform, Role, UserStatus
from core.storage.database import Database, create_pool
from core.storage.users import UserRepository


async def test_first_sight_creates_user_and_conversation(db: Database) -> None:
    users = UserRepository(db)
    user, created = await users.get_or_create(
        Platform.TELEGRAM, "1001", username="ann", display_name="Ann"
    )
    assert created
    assert user.role is Role.USER and user.status is UserStatus.ACTIVE
    again, created_again = await users.get_or_create(Platform.TELEGRAM, "1001")
    assert (again.id, created_again) == (user.id, False)
    conversation = await users.conversation(user.id)
    assert conversation.message_count == 0 and conversation.summary == ""
    assert [i.platform_user_id for i in await users.identities(user.id)] == ["1001"]


async def test_the_private_chat_is_remembered_per_identity(db: Database) -> None:
    users = UserRepository(db)

    async def private_chats() -> dict[str, str | None]:
        async with db.connection() as conn:
            rows = await conn.fetch(
                "SELECT platform_user_id, private_chat_id FROM identities"
                " WHERE platform_user_id LIKE 'pc-%'"
            )
        return {r["platform_user_id"]: r["private_chat_id"] for r in rows}

    ann, _ = await users.get_or_create(Platform.TELEGRAM, "pc-1", private_chat_id="dm-1")
    await users.get_or_create(Platform.TELEGRAM, "pc-2")
    assert await private_chats() == {"pc-1": "dm-1", "pc-2": None}
    # A group message (no private chat) forgets nothing; a new private chat replaces it.
    again, _ = await users.get_or_create(Platform.TELEGRAM, "pc-1")
    assert again.id == ann.id and (await private_chats())["pc-1"] == "dm-1"
    await users.get_or_create(Platform.TELEGRAM, "pc-2", private_chat_id="dm-2")
    await users.get_or_create(Platform.TELEGRAM, "pc-1", private_chat_id="dm-1b")
    assert await private_chats() == {"pc-1": "dm-1b", "pc-2": "dm-2"}


async def test_same_id_on_another_platform_is_another_person(db: Database) -> None:
    users = UserRepository(db)
    telegram, _ = await users.get_or_create(Platform.TELEGRAM, "42")
    discord, _ = await users.get_or_create(Platform.DISCORD, "42")
    assert telegram.id != discord.id


async def test_find_by_id_username_and_identity(db: Database) -> None:
    users = UserRepository(db)
    user, _ = await users.get_or_create(Platform.DISCORD, "777", username="Bob")
    for query in (str(user.id), "@bob", "@BOB", "discord:777"):
        found = await users.find(query)
        assert found is not None and found.id == user.id, query
    assert await users.find("@nobody") is None
    assert await users.find("not a query") is None


async def test_ban_is_told_once(db: Database) -> None:
    users = UserRepository(db)
    user, _ = await users.get_or_create(Platform.TELEGRAM, "5")
    assert await users.set_status(user.id, UserStatus.BANNED)
    assert await users.mark_ban_notified(user.id)
    assert not await users.mark_ban_notified(user.id)
    banned = await users.get(user.id)
    assert banned is not None and banned.status is UserStatus.BANNED


async def test_delete_cascades_to_everything(db: Database) -> None:
    users = UserRepository(db)
    user, _ = await users.get_or_create(Platform.TELEGRAM, "9")
    assert await users.delete(user.id)
    async with db.connection() as conn:
        for table in ("identities", "conversations", "conversation_context"):
            count = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE user_id = $1", user.id)
            assert count == 0, table


async def test_concurrent_first_messages_create_one_user(fresh_dsn: str) -> None:
    pool = await create_pool(fresh_dsn, min_size=10, max_size=20)
    try:
        users = UserRepository(Database(pool))
        results = await asyncio.gather(
            *(users.get_or_create(Platform.TELEGRAM, "race", username="r") for _ in range(100))
        )
        assert len({user.id for user, _ in results}) == 1
        assert sum(created for _, created in results) == 1
        conn: asyncpg.Connection = await asyncpg.connect(fresh_dsn)
        try:
            assert await conn.fetchval("SELECT count(*) FROM users") == 1
            assert await conn.fetchval("SELECT count(*) FROM conversations") == 1
            assert await conn.fetchval("SELECT count(*) FROM identities") == 1
        finally:
            await conn.close()
    finally:
        await pool.close()
