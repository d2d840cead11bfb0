"""Builders for tests of turns across replicas: a person, a turn of theirs opened, and
closed with a reply."""

from __future__ import annotations

from core.models import Platform
from core.snapshot import ContextSnapshot
from core.storage.database import Database
from core.storage.turns import NewMessage, Opened, ReadLimits, Reply, TurnStore
from core.storage.users import UserRepository

LIMITS = ReadLimits(window=10, facts=5, shared_chat=False)


async def person(db: Database, name: str) -> int:
    user, _ = await UserRepository(db).get_or_create(Platform.TELEGRAM, name)
    return user.id


async def open_turn(store: TurnStore, user_id: int, message_id: str) -> Opened:
    """A new message "hi" of the person stored by `store`, its turn tried at once."""
    opened = await store.open(
        user_id,
        NewMessage("hi", Platform.TELEGRAM, "chat", message_id, None),
        LIMITS,
        take_lease=True,
    )
    assert opened.message is not None
    return opened


async def close_turn(store: TurnStore, user_id: int, opened: Opened) -> None:
    """Record a reply to the turn `opened` (it must be running) and end it."""
    assert opened.message is not None and opened.state is not None
    reply = Reply(
        text="hello",
        snapshot=ContextSnapshot(
            summary_version=0, fact_ids=(), recalled=(), window_ids=(), shared_chat=False, tokens={}
        ),
        tokens_in=1,
        tokens_out=1,
        model="m",
        response_ms=1,
        embedding=None,
    )
    await store.close(user_id, opened.message, reply, delivered=True)
