"""Generated bad input through real discord.py, the adapter and the engine.

Gateway events are pushed by `FakeDiscord`: MESSAGE_CREATE with odd, blank and huge
content, missing optional fields, unknown and system message types; INTERACTION_CREATE
with odd or mistyped options. After every example: no ERROR was logged, every shard is
still connected, and each event had the outcome its kind calls for.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.discord import DiscordAdapter
from core.commands.base import parse_command
from core.commands.registry import COMMANDS
from core.engine import Engine
from core.notices import UNKNOWN_COMMAND
from core.storage.database import Pool
from fakes.discord_gateway import BOT_ID, BOT_NAME, FakeDiscord, user_payload
from tests.adapters.discord.conftest import eventually
from tests.core.engine_helpers import PERSONA
from tests.security.conftest import ErrorLog, Outcome, PooledServices, assert_not_stored

LIMIT = 3000
"""LIMITS_MAX_MESSAGE_CHARS here: above Discord's 2,000, so replies are split."""

_ids = itertools.count(8_100_000)
BOT = user_payload(BOT_ID, BOT_NAME, bot=True)


@dataclass(frozen=True)
class Event:
    name: str
    data: dict[str, Any]
    channel_id: int
    outcome: Outcome
    label: str


_ALPHABET = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
_ODD = st.sampled_from(
    [
        "\u200b",
        "\u202e",
        "@everyone",
        "<@&1>",
        "<@!999>",
        "<#123>",
        "<:emoji:1>",
        "||spoiler||",
        "```\nunclosed",
        "\U0001f9d1\u200d\U0001f52c",
        "'; DROP TABLE users; --",
    ]
)
_TEXT = st.lists(st.one_of(st.text(_ALPHABET, max_size=30), _ODD), max_size=6).map("".join)


def _person() -> dict[str, Any]:
    user_id = next(_ids)
    return user_payload(user_id, f"user{user_id}")


def _outcome(text: str) -> Outcome:
    if not text.strip():
        return Outcome.IGNORED
    if len(text.strip()) > LIMIT:
        return Outcome.TOO_LONG
    if parse_command(text) is not None:
        return Outcome.COMMAND
    return Outcome.ANSWERED


def _visible(content: str) -> str:
    """The text the engine sees: the adapter collapses runs of spaces and tabs."""
    return re.sub(r"[ \t]{2,}", " ", content).strip()


@st.composite
def dm_messages(draw: st.DrawFn, fake: FakeDiscord) -> Event:
    author = _person()
    content = draw(_TEXT)
    if draw(st.integers(0, 5)) == 0:
        content = ("x" + content) * draw(st.sampled_from([1000, LIMIT + 1]))
        content = content[: draw(st.sampled_from([2001, LIMIT, LIMIT + 1]))]
    if draw(st.booleans()):
        content = f"/{draw(st.sampled_from([*COMMANDS, 'nope']))} {content}"
    data = fake.dm_message(author, content)
    outcome = _outcome(_visible(content))
    for key in draw(st.sets(st.sampled_from(["embeds", "mention_roles", "pinned", "tts"]))):
        data.pop(key, None)
    if draw(st.booleans()):
        data["attachments"] = [fake.attachment("a\u202etxt.exe", "application/octet-stream")]
        if outcome is Outcome.IGNORED:
            outcome = Outcome.UNSUPPORTED
    kind = draw(st.sampled_from([0, 0, 0, 7, 6, 18, 99]))  # default, join, pin, thread, ?
    if kind != 0:
        data["type"] = kind
        outcome = Outcome.IGNORED
    return Event("MESSAGE_CREATE", data, int(data["channel_id"]), outcome, f"dm type {kind}")


@st.composite
def guild_messages(draw: st.DrawFn, fake: FakeDiscord) -> Event:
    author = _person()
    body = draw(_TEXT)
    mentioned = draw(st.booleans())
    content = f"<@{BOT_ID}> {body}" if mentioned else body
    data = fake.guild_message(author, content, mentions=[BOT] if mentioned else [])
    outcome = _outcome(_visible(body)) if mentioned else Outcome.IGNORED
    # Guild messages share one channel: give each its own id so outcomes can be told apart.
    channel = next(_ids)
    data["channel_id"] = str(channel)
    return Event("MESSAGE_CREATE", data, channel, outcome, f"guild mentioned={mentioned}")


@st.composite
def interactions(draw: st.DrawFn, fake: FakeDiscord) -> Event:
    user = _person()
    name = draw(st.sampled_from(sorted(COMMANDS)))
    args = draw(st.one_of(st.none(), _TEXT))
    in_guild = draw(st.booleans())
    data = fake.command_interaction(user, name, args, in_guild=in_guild)
    options = data["data"]["options"]
    odd = draw(st.sampled_from(["none", "int_value", "unknown_option", "empty"]))
    if odd == "int_value" and options:
        options[0]["value"] = 7  # a string option given a number
    elif odd == "unknown_option":
        data["data"]["options"] = [*options, {"name": "zzz", "type": 3, "value": "?"}]
    elif odd == "empty":
        data["data"]["options"] = []
    channel = fake.dm_channel_id(int(user["id"])) if not in_guild else 0
    return Event("INTERACTION_CREATE", data, channel, Outcome.COMMAND, f"/{name} {odd}")


async def _rows(pool: Pool, channel_id: int) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT role, status, delivered_at FROM messages"
        " WHERE platform = 'discord' AND chat_id = $1 ORDER BY id",
        str(channel_id),
    )
    return [dict(r) for r in rows]


async def check(event: Event, pool: Pool, fake: FakeDiscord) -> None:
    where = f"{event.label}: {event.data.get('content', event.data.get('data'))!r:.200}"
    if event.name == "INTERACTION_CREATE":
        token = str(event.data["token"])
        assert fake.interaction_messages.get(token), where  # deferred, then answered
        return
    rows = await _rows(pool, event.channel_id)
    sent = fake.texts_in(event.channel_id)
    files = fake.calls_to("POST", rf"/channels/{event.channel_id}/messages")
    if event.outcome is Outcome.ANSWERED:
        assert [r["role"] for r in rows] == ["user", "assistant"], where
        assert rows[0]["status"] == "answered", where
        assert rows[1]["delivered_at"] is not None, where
        assert sent, where
        return
    assert_not_stored(event.outcome, rows, sent, where, command_answered=bool(files))


@pytest.fixture
async def adapter(
    pooled: PooledServices, fake_discord: FakeDiscord
) -> AsyncIterator[DiscordAdapter]:
    engine = Engine(pooled(limits={"max_message_chars": LIMIT}), persona=PERSONA)
    adapter = DiscordAdapter(
        engine,
        token="test-token",
        commands=list(COMMANDS.values()),
        guild_ready_timeout=0.01,
        ready_timeout=10.0,
        clock=lambda: 0.0,
    )
    await adapter.start()
    try:
        yield adapter
    finally:
        await adapter.stop()


async def deliver_all(fake: FakeDiscord, adapter: DiscordAdapter, events: list[Event]) -> None:
    """Dispatch every event, then wait until the adapter has finished each one.

    Events the adapter never sees (system messages dropped by discord.py itself) do not
    count; the last event is always a plain DM, so waiting for it is enough.
    """
    sentinel_author = _person()
    sentinel = fake.dm_message(sentinel_author, "sentinel")
    for event in events:
        await fake.dispatch(event.name, event.data)
    await fake.dispatch("MESSAGE_CREATE", sentinel)
    channel = int(sentinel["channel_id"])
    await eventually(lambda: bool(fake.texts_in(channel)) and adapter.in_flight == 0, within=30)
    assert adapter.connected


def _events(fake: FakeDiscord) -> st.SearchStrategy[list[Event]]:
    one = st.one_of(dm_messages(fake), guild_messages(fake), interactions(fake))
    return st.lists(one, min_size=1, max_size=4)


@settings(
    max_examples=30,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_generated_gateway_events_never_crash(
    data: st.DataObject,
    adapter: DiscordAdapter,
    fake_discord: FakeDiscord,
    pooled: PooledServices,
    error_log: ErrorLog,
) -> None:
    events = data.draw(_events(fake_discord))
    error_log.clear()
    await deliver_all(fake_discord, adapter, events)
    for event in events:
        await check(event, pooled.pool, fake_discord)
    assert error_log.errors() == []


async def test_a_slash_command_this_version_does_not_know_is_answered_without_an_error(
    adapter: DiscordAdapter, fake_discord: FakeDiscord, error_log: ErrorLog
) -> None:
    """E.g. during a rolling deploy, a command an older version registered: discord.py's
    command tree does not find it; the person gets the unknown-command answer and
    nothing is logged as an error."""
    stale = fake_discord.command_interaction(_person(), "removed_in_this_version", "x")
    await fake_discord.dispatch("INTERACTION_CREATE", stale)
    await deliver_all(fake_discord, adapter, [])
    await eventually(lambda: str(stale["token"]) in fake_discord.interaction_messages)
    [original, *_] = fake_discord.interaction_messages[str(stale["token"])]
    assert original["content"] == UNKNOWN_COMMAND.format(name="removed_in_this_version")
    assert error_log.errors() == []
