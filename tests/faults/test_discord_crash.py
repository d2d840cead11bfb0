"""Crash safety on Discord: kill -9 the service while replies stream, restart.

Discord delivers a message once, over the gateway, and never again. So after a kill the
next process must answer by itself what the dead one had stored (its turns expire, and
the recovery replies to the original messages), and read from history the DMs written
while no process was connected. Every message must end up answered exactly once: its
final reply text (`echo: <message>`) present once in its channel. A preview a kill left
behind stays (it ends with the streaming cursor, so it is never the final text).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from adapters.chunking import STREAMING_CURSOR
from fakes.discord_gateway import FakeDiscord, user_payload
from fakes.service import (
    Service,
    SlowLLM,
    eventually,
    free_port,
    service_env,
    stored_user_messages,
)

PEOPLE = {6101: "first question", 6102: "second question"}
WHILE_DOWN = (6101, "are you back?")


def _finals(discord: FakeDiscord) -> Counter[tuple[int, str]]:
    """How many bot messages show exactly `echo: <text>`, per (person, text)."""
    counts: Counter[tuple[int, str]] = Counter()
    for person in PEOPLE:
        for text in discord.texts_in(discord.dm_channel_id(person)):
            if text.startswith("echo: "):
                counts[(person, text.removeprefix("echo: "))] += 1
    return counts


def _previewing(discord: FakeDiscord, person: int) -> bool:
    texts = discord.texts_in(discord.dm_channel_id(person))
    return any(text.endswith(STREAMING_CURSOR) for text in texts)


async def test_kill_9_mid_reply_answers_every_message_once_after_restart(
    tmp_path: Path, fresh_dsn: str
) -> None:
    async with (
        FakeDiscord() as discord,
        SlowLLM(embedding_dimensions=384, first_byte_delay=0.2, word_delay=1.0) as llm,
    ):
        env = service_env(
            tmp_path, None, llm, http_port=free_port(), database_url=fresh_dsn, discord=discord
        )
        service = Service(env, tmp_path / "service.log")
        expected = [*PEOPLE.items(), WHILE_DOWN]
        try:
            await service.start()
            for person, text in PEOPLE.items():
                message = discord.dm_message(user_payload(person, f"p{person}"), text)
                await discord.dispatch("MESSAGE_CREATE", message)
            await eventually(
                lambda: llm.in_flight > 0 and all(_previewing(discord, p) for p in PEOPLE),
                every=0.01,
                what="both replies streaming",
            )
            await service.kill()
            person, text = WHILE_DOWN
            discord.sent_while_down(discord.dm_message(user_payload(person, f"p{person}"), text))

            await service.start()
            await eventually(
                lambda: all(_finals(discord)[m] >= 1 for m in expected),
                within=60,
                what="every message answered",
            )
        finally:
            code = await service.terminate()

    assert code == 0, service.tail()
    assert [_finals(discord)[m] for m in expected] == [1, 1, 1]
    stored = await stored_user_messages(fresh_dsn)
    assert sorted(stored.values()) == ["answered"] * 3
    log = service.log_text()
    assert "left pending" in log  # the stored ones, answered by the next process
    assert "caught up on 1 discord DMs" in log  # the one written while it was down
