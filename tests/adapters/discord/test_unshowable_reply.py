"""A model reply with NULs and other control characters, through real discord.py, the
fake Discord API and the real engine: it arrives cleaned."""

from __future__ import annotations

from adapters.discord import DiscordAdapter
from fakes.discord_gateway import FakeDiscord, user_payload
from fakes.openai_server import FakeOpenAI
from tests.adapters.discord.conftest import deliver
from tests.adapters.text_cases import unshowable

ALICE = user_payload(4343, "alice")
MESSAGES = r"/channels/\d+/messages"
EDITS = MESSAGES + r"/\d+"
REPLY = "Here:\r\n```python\nprint('\x000\x00')\n```\nDone\x07."


async def test_a_reply_with_control_characters_is_delivered_cleaned(
    adapter: DiscordAdapter, fake_discord: FakeDiscord, fake_llm: FakeOpenAI
) -> None:
    fake_llm.push_reply(REPLY)
    await deliver(fake_discord, adapter, "MESSAGE_CREATE", fake_discord.dm_message(ALICE, "code?"))

    dm = fake_discord.dm_channel_id(4343)
    assert fake_discord.texts_in(dm) == ["Here:\n```python\nprint('0')\n```\nDone."]
    calls = fake_discord.calls_to("POST", MESSAGES) + fake_discord.calls_to("PATCH", EDITS)
    sent: list[str] = [call.json["content"] for call in calls]
    assert len(sent) == 2  # streamed: a first message, then the final edit
    assert not [c for text in sent for c in text if unshowable(c)]
