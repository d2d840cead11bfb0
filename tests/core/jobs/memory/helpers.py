"""Builders for the memory, archive and re-embedding tests: users with a conversation,
and a scripted stand-in for the model behind the fake OpenAI server."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from config.settings import MemorySettings
from core.jobs.memory import MemoryJob
from core.models import Platform
from core.services import Services
from tests.conftest import make_settings

Extraction = Callable[[str], dict[str, Any]]
Reconciliation = Callable[[list[dict[str, Any]]], dict[str, Any]]

_MESSAGE_ID = re.compile(r"\[#(\d+),")

NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)


def job(services: Services, **memory: int) -> MemoryJob:
    """The memory job at `NOW`, with these `MEMORY_*` settings (else the defaults)."""
    settings = make_settings(memory=MemorySettings(**memory)) if memory else services.settings
    return MemoryJob(replace(services, settings=settings, clock=lambda: NOW))


def fact(content: str, **fields: Any) -> dict[str, Any]:
    """One fact as the model would answer it (sources: all user messages if not given)."""
    base: dict[str, Any] = {
        "content": content,
        "category": "general",
        "importance": 5,
        "is_private": False,
        "confidence": 0.9,
        "source_message_ids": [],
    }
    base.update(fields)
    return base


def update(*facts: dict[str, Any], summary: str = "A summary.", **fields: Any) -> dict[str, Any]:
    """A whole `memory_update` answer."""
    answer: dict[str, Any] = {
        "facts": list(facts),
        "summary": summary,
        "insights": ["likes examples"],
        "communication_style": "short and direct",
        "themes": ["tea"],
    }
    answer.update(fields)
    return answer


def message_ids(prompt: str) -> list[int]:
    """The ids of the messages shown in an extraction prompt."""
    return [int(m) for m in _MESSAGE_ID.findall(prompt)]


@dataclass
class ScriptedModel:
    """Answers the memory job's structured calls from two functions; records the calls.

    `extraction` gets the prompt's user part (memory and new messages) and returns the
    `memory_update` object; `reconciliation` gets the candidates with their stored
    facts and returns the `fact_reconciliation` object. Anything else is echoed.
    """

    extraction: Extraction = field(default=lambda prompt: update())
    reconciliation: Reconciliation = field(
        default=lambda items: {
            "decisions": [
                {"candidate": i["candidate"], "action": "add", "fact_id": None} for i in items
            ]
        }
    )
    extraction_prompts: list[str] = field(default_factory=list)
    reconciliation_items: list[list[dict[str, Any]]] = field(default_factory=list)

    def __call__(self, body: dict[str, Any]) -> str:
        schema = body.get("response_format", {}).get("json_schema", {}).get("name")
        prompt = str(body["messages"][-1]["content"])
        if schema == "memory_update":
            self.extraction_prompts.append(prompt)
            return json.dumps(self.extraction(prompt))
        if schema == "fact_reconciliation":
            items = json.loads(prompt)
            self.reconciliation_items.append(items)
            return json.dumps(self.reconciliation(items))
        return "echo"


async def conversation(
    services: Services,
    name: str,
    texts: Sequence[str],
    *,
    replies: bool = True,
    in_group: bool = False,
) -> tuple[int, list[int]]:
    """A user `name` who said `texts` (each answered with "ok" unless `replies` is
    false); the user id and the ids of every stored message, oldest first."""
    user, _ = await services.users.get_or_create(Platform.TELEGRAM, name)
    return user.id, await say(services, user.id, texts, replies=replies, in_group=in_group)


async def say(
    services: Services,
    user_id: int,
    texts: Sequence[str],
    *,
    replies: bool = True,
    in_group: bool = False,
) -> list[int]:
    """Store `texts` (and replies) in the user's private chat, or `in_group` in a group."""
    ids: list[int] = []
    vectors = await services.embedder.embed(list(texts))
    chat = "group-1" if in_group else f"chat-{user_id}"
    for text, vector in zip(texts, vectors, strict=True):
        stored = await services.messages.add_user_message(
            user_id,
            text,
            platform=Platform.TELEGRAM,
            chat_id=chat,
            platform_message_id=f"{user_id}-{len(ids)}-{text[:20]}",
            embedding=vector,
            shared_chat=in_group,
        )
        ids.append(stored.message.id)
        if replies:
            reply = await services.messages.add_assistant_message(
                user_id,
                "ok",
                reply_to_id=stored.message.id,
                platform=Platform.TELEGRAM,
                chat_id=chat,
                context_snapshot={},
                tokens_in=1,
                tokens_out=1,
                model="fake-model",
                response_ms=1,
                embedding=(await services.embedder.embed(["ok"]))[0],
            )
            ids.append(reply.id)
    return ids


async def set_read_position(services: Services, user_id: int, message_id: int) -> None:
    """As if the memory job had read up to `message_id`."""
    async with services.db.connection() as conn:
        await conn.execute(
            "UPDATE conversation_context SET last_read_message_id = $2 WHERE user_id = $1",
            user_id,
            message_id,
        )


async def read_position(services: Services, user_id: int) -> int:
    async with services.db.connection() as conn:
        value = await conn.fetchval(
            "SELECT last_read_message_id FROM conversation_context WHERE user_id = $1", user_id
        )
    return int(value)


async def set_aside(services: Services, message_ids: Sequence[int]) -> None:
    """Mark messages not `remembered`, as a turn with memory off or `/forget` does."""
    async with services.db.connection() as conn:
        await conn.execute(
            "UPDATE messages SET remembered = false WHERE id = ANY($1::bigint[])",
            list(message_ids),
        )
