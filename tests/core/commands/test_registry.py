from __future__ import annotations

import dataclasses

import pytest

from core.commands import COMMANDS
from core.models import Platform, UserStatus
from core.services import Services
from tests.core.commands import FakeJobs, FakeMessenger, make_user, run

ADMIN_CALLS = {
    "user": "/user {target}",
    "ban": "/ban {target}",
    "unban": "/unban {target}",
    "broadcast": "/broadcast hello everyone",
    "jobs": "/jobs",
    "runjob": "/runjob memory",
    "audit": "/audit",
}


async def audit_count(services: Services) -> int:
    async with services.db.connection() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM admin_audit"))


def test_every_admin_command_is_covered() -> None:
    assert {c.name for c in COMMANDS.values() if c.admin} == set(ADMIN_CALLS)


async def test_unknown_command_is_left_to_the_engine(services: Services) -> None:
    user = await make_user(services, "1")
    result = await run(services, user, "/nonsense")
    assert not result.handled and result.channel.sent == []


async def test_help_lists_admin_commands_only_for_admins(services: Services) -> None:
    user = await make_user(services, "1")
    admin = await make_user(services, "2", admin=True)
    plain = (await run(services, user, "/help")).text
    full = (await run(services, admin, "/help")).text
    for command in COMMANDS.values():
        assert (command.usage in plain) is not command.admin
        assert command.usage in full
    # ADMIN_IDS admins are admins by the engine's say, whatever their role.
    assert "/ban" in (await run(services, user, "/help", admin=True)).text


async def test_start_greets_and_points_to_help(services: Services) -> None:
    user = await make_user(services, "1", username="Ann")
    text = (await run(services, user, "/start")).text
    assert "Ann" in text and "/help" in text


@pytest.mark.parametrize("name", sorted(ADMIN_CALLS))
async def test_non_admins_are_refused_and_nothing_happens(services: Services, name: str) -> None:
    messenger = FakeMessenger(Platform.TELEGRAM)
    jobs = FakeJobs()
    services = dataclasses.replace(services, messengers={Platform.TELEGRAM: messenger}, jobs=jobs)
    user = await make_user(services, "1")
    target = await make_user(services, "2", username="target")
    async with services.db.connection() as conn:
        await conn.execute(
            "UPDATE identities SET private_chat_id = platform_user_id WHERE user_id = $1",
            target.id,
        )
    if name == "unban":
        await services.users.set_status(target.id, UserStatus.BANNED)
    before = await services.users.get(target.id)
    result = await run(services, user, ADMIN_CALLS[name].format(target=target.id))
    assert result.handled
    assert result.channel.sent == ["This command is for admins."]
    # The attempt is audited: who, and which command, not its arguments.
    async with services.db.connection() as conn:
        rows = await conn.fetch("SELECT actor_id, action, target_user_id, details FROM admin_audit")
    assert [tuple(r) for r in rows] == [(user.id, "refused", None, {"command": name})]
    assert await services.users.get(target.id) == before
    assert messenger.sent == [] and jobs.ran == []


@pytest.mark.parametrize("name", sorted(ADMIN_CALLS))
async def test_every_admin_command_writes_one_audit_row(services: Services, name: str) -> None:
    services = dataclasses.replace(
        services, messengers={Platform.TELEGRAM: FakeMessenger(Platform.TELEGRAM)}, jobs=FakeJobs()
    )
    admin = await make_user(services, "1", admin=True)
    target = await make_user(services, "2")
    await run(services, admin, ADMIN_CALLS[name].format(target=target.id))
    async with services.db.connection() as conn:
        rows = await conn.fetch("SELECT actor_id, action, details FROM admin_audit")
    assert [(r["actor_id"], r["action"]) for r in rows] == [(admin.id, name)]
    assert "hello everyone" not in str(rows[0]["details"])


@pytest.mark.parametrize("name", sorted(ADMIN_CALLS))
async def test_admin_commands_answer_only_in_private(services: Services, name: str) -> None:
    admin = await make_user(services, "1", admin=True)
    result = await run(services, admin, ADMIN_CALLS[name].format(target=admin.id), private=False)
    assert result.channel.sent == ["Please send this command in a private chat with me."]
    assert await audit_count(services) == 0


@pytest.mark.parametrize(
    ("text", "usage"),
    [
        ("/forget", "Usage: /forget <number|all>"),
        ("/forget two", "Usage: /forget <number|all>"),
        ("/forget -1", "Usage: /forget <number|all>"),
        ("/memory please", "Usage: /memory [on|off]"),
        ("/memory off now", "Usage: /memory [on|off]"),
        ("/forget all now", "Usage: /forget <number|all>"),
        ("/forget 2 confirm", "Usage: /forget <number|all>"),
        ("/forget ²", "Usage: /forget <number|all>"),
        ("/export now", "Usage: /export"),
        ("/delete_me not a code", "Usage: /delete_me [code]"),
        ("/link 12", "Usage: /link [code]"),
        ("/retry 3", "Usage: /retry"),
        ("/help me", "Usage: /help"),
        ("/user", "Usage: /user <id|@name|platform:id>"),
        ("/user bob", "Usage: /user <id|@name|platform:id>"),
        ("/user 1 2", "Usage: /user <id|@name|platform:id>"),
        ("/ban", "Usage: /ban <id|@name|platform:id>"),
        ("/unban slack:1", "Usage: /unban <id|@name|platform:id>"),
        ("/broadcast", "Usage: /broadcast <text> | status [n] | cancel <n>"),
        ("/stats all", "Usage: /stats"),
        ("/jobs x", "Usage: /jobs"),
        ("/audit ten", "Usage: /audit [n]"),
        ("/audit 0", "Usage: /audit [n]"),
        ("/why abc", "Usage: /why [reply id]"),
        ("/why 99999999999999999999999", "Usage: /why [reply id]"),
    ],
)
async def test_wrong_arguments_get_the_usage_line(
    services: Services, text: str, usage: str
) -> None:
    admin = await make_user(services, "1", admin=True)
    result = await run(services, admin, text)
    assert result.channel.sent == [usage]
    assert await audit_count(services) == 0


async def test_command_addressed_to_the_bot_by_name(services: Services) -> None:
    user = await make_user(services, "1")
    result = await run(services, user, "/HELP@onethread_bot")
    assert result.handled and "/memory" in result.text
