"""Everything stored about one user, as one JSON document (`/export`).

Every read is scoped by the user's id, so the document can hold no one else's data.
Embeddings and full-text vectors are left out: they are derived from the texts and
useless outside onethread.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from enum import Enum
from typing import Any

from core.services import Services
from core.storage.memory_store import MemoryStore

EXPORT_VERSION = 1
_PAGE = 500


def _plain(value: Any) -> Any:
    """Dataclasses, enums and datetimes as JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


async def collect(services: Services, user_id: int, *, now: datetime) -> dict[str, Any]:
    """The export document of `user_id`; messages oldest first, archive included."""
    user = await services.users.get(user_id)
    if user is None:
        raise LookupError(f"user {user_id} does not exist")
    messages = []
    before: int | None = None
    while True:
        page = await services.messages.history(user_id, before_id=before, limit=_PAGE)
        messages.extend(page)
        if len(page) < _PAGE:
            break
        before = page[-1].id
    messages.reverse()
    return {
        "export_version": EXPORT_VERSION,
        "exported_at": now.isoformat(),
        "profile": _plain(user),
        "identities": _plain(await services.users.identities(user_id)),
        "conversation": _plain(await services.users.conversation(user_id)),
        "conversation_context": _plain(await MemoryStore(services.db).context(user_id)),
        "messages": _plain(messages),
        "facts": _plain(await services.facts.all(user_id)),
    }


async def export_json(services: Services, user_id: int, *, now: datetime) -> bytes:
    document = await collect(services, user_id, now=now)
    return json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8")
