"""The rate-limit notice is sent once per refused stretch, not once per message.

Needs the engine to read `Admission.first_refusal` (docs/security.md, "Rate-limit
notices"): until then the engine tells every refused message, and this test fails.
"""

from __future__ import annotations

from dataclasses import replace

from core.models import MessageRole
from core.services import Services
from fakes.channel import RecordingChannel
from tests.core.commands import FakeClock
from tests.core.engine_helpers import engine_with, inbound

RATE_LIMITED_START = "You're writing faster than I can keep up"


async def test_ten_messages_over_the_limit_get_one_notice_per_stretch(
    services: Services,
) -> None:
    clock = FakeClock()
    engine = engine_with(
        replace(services, clock=clock), limits={"rate_burst": 2, "rate_per_minute": 6}
    )
    channel = RecordingChannel()

    def notices() -> int:
        return sum(text.startswith(RATE_LIMITED_START) for text in channel.sent)

    for n in range(12):
        await engine.handle(inbound(f"first burst {n}"), channel)
    assert notices() == 1
    assert [r.final for r in channel.replies] == ["echo: first burst 0", "echo: first burst 1"]

    # Later, the bucket full again: a new stretch, told once more.
    clock.advance(minutes=1)
    for n in range(12):
        await engine.handle(inbound(f"second burst {n}"), channel)
    assert notices() == 2
    user = await services.users.find("telegram:u1")
    assert user is not None
    stored = [
        m.content for m in await services.messages.history(user.id) if m.role is MessageRole.USER
    ]
    assert sorted(stored) == sorted(
        ["first burst 0", "first burst 1", "second burst 0", "second burst 1"]
    )
