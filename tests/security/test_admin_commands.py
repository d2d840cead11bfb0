"""Non-admins cannot run admin commands, however the command reaches the bot.

Every admin command is sent by a person who is not in ADMIN_IDS, in every chat type
(Telegram private and group, Discord DM and server channel, typed and as a slash
command), with forged addressing: `/ban@onethread_bot`, `@onethread_bot /jobs`, a
`text_mention` of the real admin, a display name and username equal to the admin's, a
Discord server administrator. Each gets the refusal, and nothing changes: no ban, no
broadcast, no job run, and no audit row but the attempt's own (`refused`, by that
person, naming only the command).
"""

from __future__ import annotations

from typing import Any

from adapters.discord import DiscordAdapter
from core.commands.registry import ADMINS_ONLY, COMMANDS
from core.engine import Engine
from core.storage.database import Pool
from fakes.discord_gateway import BOT_ID, BOT_NAME, FakeDiscord, user_payload
from fakes.telegram_api import BOT_USERNAME, FakeTelegram, message, wait_until
from tests.adapters.discord.conftest import eventually
from tests.adapters.telegram.helpers import make_adapter, running
from tests.core.engine_helpers import PERSONA
from tests.security.conftest import ErrorLog, PooledServices

ADMIN = 900
MALLORY = 666
VICTIM = 555
GROUP = -100777
UNLIMITED = {"rate_burst": 10_000}
"""The rate limit would answer first; these tests are about the admin check."""
ADMIN_COMMANDS = [c for c in COMMANDS.values() if c.admin]
ARGS = {
    "user": f"telegram:{VICTIM}",
    "ban": f"telegram:{VICTIM}",
    "unban": f"telegram:{VICTIM}",
    "broadcast": "free crypto at evil.example",
    "runjob": "memory",
    "audit": "5",
}


ADMIN_NAMES = {c.name for c in ADMIN_COMMANDS}


async def _refusals(pool: Pool, identity: str) -> tuple[int, set[str]]:
    """How many refusals were audited, and of which commands; every one by `identity`
    and naming nothing but the command."""
    platform, _, platform_user_id = identity.partition(":")
    rows = await pool.fetch(
        "SELECT a.details, i.platform_user_id IS NOT NULL AS by_them FROM admin_audit a"
        " LEFT JOIN identities i ON i.user_id = a.actor_id AND i.platform = $1"
        " AND i.platform_user_id = $2 WHERE a.action = 'refused'",
        platform,
        platform_user_id,
    )
    assert all(r["by_them"] and r["details"].keys() == {"command"} for r in rows)
    return len(rows), {r["details"]["command"] for r in rows}


def _command_text(name: str, *, addressee: str = "") -> str:
    return f"/{name}{addressee} {ARGS.get(name, '')}".strip()


async def _state(pool: Pool) -> dict[str, Any]:
    """What an admin command could change: audit rows (but the refusals'), statuses, job
    runs, broadcasts."""
    return {
        "audit": await pool.fetchval("SELECT count(*) FROM admin_audit WHERE action <> 'refused'"),
        "broadcasts": await pool.fetchval("SELECT count(*) FROM broadcasts"),
        "statuses": [
            tuple(r) for r in await pool.fetch("SELECT id, status, role FROM users ORDER BY id")
        ],
        "job_runs": await pool.fetchval("SELECT count(*) FROM job_runs"),
    }


def _telegram_attempts() -> list[tuple[str, dict[str, Any], list[str]]]:
    """(label, message kwargs, expected answers) for every admin command and forged
    form, from Mallory. A message that only mentions the admin is not for the bot at
    all: it is ignored (and changes nothing either)."""
    mallory = {"user_id": MALLORY, "first_name": "Admin", "username": "admin"}
    mention = {"type": "mention", "offset": 0, "length": len(BOT_USERNAME) + 1}
    admin_user = {"id": ADMIN, "is_bot": False, "first_name": "Admin"}
    attempts: list[tuple[str, dict[str, Any], list[str]]] = []
    refused = [ADMINS_ONLY]
    for command in ADMIN_COMMANDS:
        name = command.name
        plain = _command_text(name)
        attempts += [
            (f"private {plain}", {"text": plain, **mallory}, refused),
            (
                "private addressed",
                {"text": _command_text(name, addressee=f"@{BOT_USERNAME}"), **mallory},
                refused,
            ),
            ("group", {"text": plain, "chat_id": GROUP, **mallory}, refused),
            (
                "group addressed",
                {
                    "text": _command_text(name, addressee=f"@{BOT_USERNAME}"),
                    "chat_id": GROUP,
                    **mallory,
                },
                refused,
            ),
            (
                "group mention first",
                {
                    "text": f"@{BOT_USERNAME} {plain}",
                    "entities": [mention],
                    "chat_id": GROUP,
                    **mallory,
                },
                refused,
            ),
            (
                "text_mention of the admin",
                {
                    "text": f"Admin {plain}",
                    "entities": [
                        {"type": "text_mention", "offset": 0, "length": 5, "user": admin_user}
                    ],
                    "chat_id": GROUP,
                    **mallory,
                },
                [],
            ),
            (
                "command claiming to mention the admin",
                {
                    "text": plain,
                    "entities": [
                        {"type": "text_mention", "offset": 0, "length": 3, "user": admin_user}
                    ],
                    "chat_id": GROUP,
                    **mallory,
                },
                refused,
            ),
        ]
    return attempts


async def test_telegram_non_admins_are_refused_in_every_form(
    pooled: PooledServices, tg: FakeTelegram, error_log: ErrorLog
) -> None:
    services = pooled(admin_ids=f"telegram:{ADMIN}", limits=UNLIMITED)
    engine = Engine(services, persona=PERSONA)
    async with running(make_adapter(engine, tg, admin_chat_ids=[str(ADMIN)])):
        # The admin, the victim and Mallory exist and have private chats.
        for user_id, name in ((ADMIN, "Admin"), (VICTIM, "Victim"), (MALLORY, "Admin")):
            tg.push_message("hello", user_id=user_id, first_name=name, username=name.lower())
        last = tg.push_message("/start", user_id=MALLORY, first_name="Admin", username="admin")
        await wait_until(lambda: tg.confirmed_below > last)
        # Acknowledged once stored: the replies may still be on their way.
        await wait_until(
            lambda: all("echo: hello" in tg.texts(u) for u in (ADMIN, VICTIM, MALLORY))
        )
        before = await _state(pooled.pool)
        sent_before = len(tg.messages)

        attempts = _telegram_attempts()
        for number, (label, kwargs, expected) in enumerate(attempts):
            text = kwargs.pop("text")
            if "chat_id" in kwargs:
                # One group per attempt: PTB's rate limiter allows 20 messages a minute
                # per group, which would only slow the test down.
                kwargs["chat_id"] = GROUP - number
            update = tg.push_update({"message": message(text, **kwargs)})
            await wait_until(lambda u=update: tg.confirmed_below > u)  # type: ignore[misc]
            answers = [m.text for m in tg.messages[sent_before:]]
            assert answers == expected, f"{label}: {text!r} -> {answers!r}"
            sent_before = len(tg.messages)

    assert await _state(pooled.pool) == before
    refused = sum(expected == [ADMINS_ONLY] for _, _, expected in attempts)
    assert await _refusals(pooled.pool, f"telegram:{MALLORY}") == (refused, ADMIN_NAMES)
    assert tg.texts(VICTIM) == ["echo: hello"]  # no broadcast reached anyone
    assert tg.texts(ADMIN) == ["echo: hello"]
    assert error_log.errors() == []


async def test_the_real_admin_still_can(
    pooled: PooledServices, tg: FakeTelegram, error_log: ErrorLog
) -> None:
    """The control: the same forms from the admin do run (and are audited)."""
    services = pooled(admin_ids=f"telegram:{ADMIN}", limits=UNLIMITED)
    async with running(make_adapter(Engine(services, persona=PERSONA), tg)):
        tg.push_message("hello", user_id=VICTIM)
        last = tg.push_message(f"/ban@{BOT_USERNAME} telegram:{VICTIM}", user_id=ADMIN)
        await wait_until(lambda: tg.confirmed_below > last)
    victim = await services.users.find(f"telegram:{VICTIM}")
    assert victim is not None
    assert victim.status.value == "banned"
    assert await pooled.pool.fetchval("SELECT count(*) FROM admin_audit") == 1
    assert error_log.errors() == []


async def test_discord_non_admins_are_refused_in_every_form(
    pooled: PooledServices, fake_discord: FakeDiscord, error_log: ErrorLog
) -> None:
    admin = user_payload(ADMIN, "admin")
    mallory = {**user_payload(MALLORY, "admin"), "global_name": "Admin"}
    services = pooled(admin_ids=f"discord:{ADMIN}", limits=UNLIMITED)
    adapter = DiscordAdapter(
        Engine(services, persona=PERSONA),
        token="test-token",
        commands=list(COMMANDS.values()),
        guild_ready_timeout=0.01,
        clock=lambda: 0.0,
    )
    await adapter.start()
    try:
        for person in (admin, mallory, user_payload(VICTIM, "victim")):
            await _deliver(fake_discord, adapter, fake_discord.dm_message(person, "hello"))
        before = await _state(pooled.pool)
        bot = user_payload(BOT_ID, BOT_NAME, bot=True)
        for command in ADMIN_COMMANDS:
            text = _command_text(command.name)
            typed = [
                fake_discord.dm_message(mallory, text),
                fake_discord.guild_message(mallory, f"<@{BOT_ID}> {text}", mentions=[bot, admin]),
            ]
            for data in typed:
                channel = int(data["channel_id"])
                seen = len(fake_discord.texts_in(channel))
                await _deliver(fake_discord, adapter, data)
                assert fake_discord.texts_in(channel)[seen:] == [ADMINS_ONLY], text
            args = ARGS.get(command.name)
            for in_guild in (False, True):
                # A server administrator (permission 8) is not a bot admin.
                interaction = fake_discord.command_interaction(
                    mallory, command.name, args, in_guild=in_guild, permissions=8
                )
                await fake_discord.dispatch("INTERACTION_CREATE", interaction)
                token = str(interaction["token"])
                await eventually(lambda t=token: bool(fake_discord.interaction_messages.get(t)))  # type: ignore[misc]
                [answer, *_] = fake_discord.interaction_messages[token]
                assert answer["content"] == ADMINS_ONLY, (command.name, in_guild)
        await eventually(lambda: adapter.in_flight == 0)
        assert await _state(pooled.pool) == before
        # Each command typed twice and run twice as a slash command.
        assert await _refusals(pooled.pool, f"discord:{MALLORY}") == (
            4 * len(ADMIN_COMMANDS),
            ADMIN_NAMES,
        )
        assert fake_discord.texts_in(fake_discord.dm_channel_id(VICTIM)) == ["echo: hello"]
    finally:
        await adapter.stop()
    assert error_log.errors() == []


async def _deliver(fake: FakeDiscord, adapter: DiscordAdapter, data: dict[str, Any]) -> None:
    before = adapter.processed
    await fake.dispatch("MESSAGE_CREATE", data)
    await eventually(lambda: adapter.processed > before and adapter.in_flight == 0)
