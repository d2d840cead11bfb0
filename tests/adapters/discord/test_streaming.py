"""`StreamingSink` and `DiscordReplyChannel` over a recording outlet: no Discord needed."""

from __future__ import annotations

from dataclasses import dataclass, field

import discord
import pytest

from adapters.discord.buttons import CUSTOM_ID_PREFIX
from adapters.discord.channel import DiscordReplyChannel, Posted, StreamingSink
from core.errors import DeliveryError
from core.ports import Button


@dataclass
class RecordingOutlet:
    messages: list[str] = field(default_factory=list)
    quoted: list[bool] = field(default_factory=list)
    views: list[discord.ui.View | None] = field(default_factory=list)
    edits: int = 0
    refuse: bool = False

    async def post(self, text: str, *, first: bool, view: discord.ui.View | None = None) -> Posted:
        if self.refuse:
            raise DeliveryError("refused")
        index = len(self.messages)
        self.messages.append(text)
        self.quoted.append(first)
        self.views.append(view)

        async def edit(new: str) -> None:
            self.edits += 1
            self.messages[index] = new

        return Posted(f"m{index}", edit)

    async def post_file(self, filename: str, data: bytes, caption: str | None) -> None:
        self.messages.append(f"file {filename}")

    async def typing(self) -> None:
        return None


class SteppingClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_updates_send_once_then_edit_at_most_every_interval() -> None:
    outlet = RecordingOutlet()
    clock = SteppingClock()
    sink = StreamingSink(outlet, clock=clock, interval=1.2)

    await sink.update("Hel")
    await sink.update("Hello")  # too soon: not shown
    # A preview carries a cursor, so it never looks like the finished reply.
    assert outlet.messages == ["Hel …"]
    clock.now += 1.2
    await sink.update("Hello wor")
    assert outlet.messages == ["Hello wor …"]
    assert outlet.edits == 1
    await sink.finish("Hello world")
    assert outlet.messages == ["Hello world"]
    assert outlet.edits == 2
    await sink.update("late")  # ignored after finish
    assert outlet.messages == ["Hello world"]


async def test_finish_without_updates_sends_every_chunk_and_quotes_the_first() -> None:
    outlet = RecordingOutlet()
    sink = StreamingSink(outlet, clock=SteppingClock(), interval=1.2)
    await sink.finish("word " * 1000)
    assert len(outlet.messages) == 3
    assert all(len(m) <= 2000 for m in outlet.messages)
    assert outlet.quoted == [True, False, False]


async def test_a_streamed_reply_growing_past_the_limit_keeps_its_messages() -> None:
    outlet = RecordingOutlet()
    clock = SteppingClock()
    sink = StreamingSink(outlet, clock=clock, interval=1.0)
    text = "sentence number one. " * 150
    await sink.update(text[:1500])
    clock.now += 1
    await sink.update(text[:2500])
    assert await sink.finish(text) == "m0"  # the reply's first message
    assert "".join(outlet.messages).replace(" ", "") == text.replace(" ", "")
    assert len(outlet.messages) == 2
    assert not any(m.endswith("…") for m in outlet.messages)


async def test_progress_failures_are_swallowed_but_the_final_one_is_raised() -> None:
    outlet = RecordingOutlet(refuse=True)
    sink = StreamingSink(outlet, clock=SteppingClock(), interval=1.2)
    await sink.update("partial")
    with pytest.raises(DeliveryError):
        await sink.finish("final")


async def test_the_channel_splits_plain_sends() -> None:
    outlet = RecordingOutlet()
    channel = DiscordReplyChannel(outlet, clock=SteppingClock())
    await channel.send("x" * 4500)
    await channel.send_file("a.json", b"{}", "caption")
    await channel.typing()
    assert len(outlet.messages) == 4
    assert all(len(m) <= 2000 for m in outlet.messages)
    assert "".join(outlet.messages[:-1]) == "x" * 4500
    assert outlet.quoted == [True, False, False]
    assert outlet.messages[-1] == "file a.json"


async def test_buttons_go_under_the_last_part_and_carry_their_command() -> None:
    outlet = RecordingOutlet()
    channel = DiscordReplyChannel(outlet, clock=SteppingClock())
    await channel.send("y" * 2500, buttons=[Button("Older", "/history 42")])
    first, last = outlet.views
    assert first is None and last is not None
    [button] = last.children
    assert isinstance(button, discord.ui.DynamicItem)
    assert button.custom_id == f"{CUSTOM_ID_PREFIX}/history 42"
    assert last.timeout is None  # a press works for as long as the message is there
