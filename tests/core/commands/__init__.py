"""Helpers shared by the command tests: users, contexts, a clock, fake messengers and jobs."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from config.persona import Persona, read_persona
from core.commands import CommandContext, dispatch, parse_command
from core.errors import DeliveryError
from core.inbound import ChatKind, Inbound
from core.models import Message, Platform, Role, User
from core.services import Services
from core.snapshot import ContextSnapshot, RecalledRef
from fakes.channel import RecordingChannel

SHIPPED_PERSONA = read_persona(None)


@dataclass
class FakeClock:
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


def with_clock(services: Services, clock: FakeClock) -> Services:
    return dataclasses.replace(services, clock=clock)


async def make_user(
    services: Services,
    platform_user_id: str,
    *,
    platform: Platform = Platform.TELEGRAM,
    username: str | None = None,
    admin: bool = False,
) -> User:
    user, _ = await services.users.get_or_create(
        platform, platform_user_id, username=username, display_name=username
    )
    if admin:
        await services.users.set_role(user.id, Role.ADMIN)
        found = await services.users.get(user.id)
        assert found is not None
        user = found
    return user


@dataclass
class Run:
    """What one command did: what the user saw, and what `/retry` asked to answer."""

    handled: bool
    channel: RecordingChannel
    retried: list[Message]

    @property
    def text(self) -> str:
        return "\n".join(self.channel.sent)


_MESSAGE_IDS = itertools.count(1)


async def run(
    services: Services,
    user: User,
    text: str,
    *,
    admin: bool | None = None,
    private: bool = True,
    platform: Platform = Platform.TELEGRAM,
    channel: RecordingChannel | None = None,
    reply_to: str | None = None,
    persona: Persona = SHIPPED_PERSONA,
) -> Run:
    """Send `text` as `user` through `dispatch`, the way the engine will (answering
    into `channel` when given, in answer to the platform's message `reply_to`, when
    given)."""
    parsed = parse_command(text)
    assert parsed is not None, text
    channel = channel or RecordingChannel()
    retried: list[Message] = []

    async def answer_again(message: Message) -> None:
        retried.append(message)

    inbound = Inbound(
        platform=platform,
        platform_user_id=f"u{user.id}",
        chat_id=f"c{user.id}" if private else "group-1",
        chat_kind=ChatKind.PRIVATE if private else ChatKind.GROUP,
        message_id=f"m{next(_MESSAGE_IDS)}",
        text=text,
        sent_at=services.clock(),
        reply_to_message_id=reply_to,
    )
    ctx = CommandContext(
        services=services,
        persona=persona,
        inbound=inbound,
        user=user,
        is_admin=user.role is Role.ADMIN if admin is None else admin,
        channel=channel,
        answer_again=answer_again,
    )
    handled = await dispatch(ctx, parsed)
    return Run(handled, channel, retried)


@dataclass
class FakeMessenger:
    platform: Platform
    failing: set[str] = field(default_factory=set)
    sent: list[tuple[str, str]] = field(default_factory=list)

    async def send_private(self, chat_id: str, text: str) -> None:
        if chat_id in self.failing:
            raise DeliveryError(f"chat {chat_id} blocked the bot")
        self.sent.append((chat_id, text))


@dataclass
class HeldMessenger(FakeMessenger):
    """A messenger whose sends wait for `gate`; `entered` is set once one has begun."""

    entered: asyncio.Event = field(default_factory=asyncio.Event)
    gate: asyncio.Event = field(default_factory=asyncio.Event)

    async def send_private(self, chat_id: str, text: str) -> None:
        self.entered.set()
        await self.gate.wait()
        await super().send_private(chat_id, text)


@dataclass
class FakeJobs:
    ran: list[str] = field(default_factory=list)
    fail: bool = False

    def names(self) -> list[str]:
        return ["archive", "memory"]

    async def run(self, name: str) -> str:
        self.ran.append(name)
        if self.fail:
            raise RuntimeError("boom")
        return f"{name} did 3 things"

    def start(self, name: str) -> asyncio.Task[str]:
        return asyncio.ensure_future(self.run(name))


async def add_said_in(
    services: Services, user: User, text: str, chat: str, *, shared: bool = True
) -> Message:
    """A message of `user` in `chat` (a group or server channel unless not `shared`),
    not answered."""
    stored = await services.messages.add_user_message(
        user.id,
        text,
        platform=Platform.TELEGRAM,
        chat_id=chat,
        platform_message_id=f"{chat}-{text}",
        shared_chat=shared,
    )
    return stored.message


async def add_exchange(
    services: Services, user: User, text: str, *, chat: str = "c", answer: bool = True
) -> tuple[Message, Message | None]:
    """A user message and (optionally) its reply, with a context snapshot."""
    stored = await services.messages.add_user_message(
        user.id,
        text,
        platform=Platform.TELEGRAM,
        chat_id=f"{chat}{user.id}",
        platform_message_id=f"{text}-{user.id}",
    )
    if not answer:
        return stored.message, None
    reply = await services.messages.add_assistant_message(
        user.id,
        f"re: {text}",
        reply_to_id=stored.message.id,
        platform=Platform.TELEGRAM,
        chat_id=f"{chat}{user.id}",
        context_snapshot={
            **ContextSnapshot(
                summary_version=0,
                fact_ids=(1, 2),
                recalled=(RecalledRef("message", 9, 0.8123, 0.7),),
                window_ids=(3, 4, 5),
                shared_chat=False,
                tokens={"persona": 100, "facts": 20, "recent": 50, "budget": 6000},
                model="fake-model",
                tokens_in=170,
                tokens_out=12,
                timings_ms={"recall_ms": 4, "llm_ms": 120},
            ).to_json(),
            "query": "secret text",  # a key /why does not know is never shown
        },
        tokens_in=170,
        tokens_out=12,
        model="fake-model",
        response_ms=130,
    )
    return stored.message, reply
