"""What a chat turn reads, for tests of the repositories whose rows it reads."""

from __future__ import annotations

import uuid

from core.models import Platform
from core.storage.database import Database
from core.storage.messages import MessageRepository
from core.storage.turns import ReadLimits, TurnState, TurnStore


async def turn_state(
    db: Database, user_id: int, *, window: int = 10, facts: int = 10, include_private: bool = True
) -> TurnState:
    """The state the turn of the user's newest message reads (a message is stored first
    when they have none)."""
    messages = MessageRepository(db)
    latest = await messages.latest_from_user(user_id)
    if latest is None:
        stored = await messages.add_user_message(
            user_id, "now", platform=Platform.TELEGRAM, chat_id="t", platform_message_id="now"
        )
        latest = stored.message
    store = TurnStore(db, holder=uuid.uuid4(), lease_seconds=30)
    opened = await store.resume(
        user_id, latest.id, ReadLimits(window, facts, shared_chat=not include_private)
    )
    assert opened.state is not None
    await store.release(user_id, latest.id)
    return opened.state
