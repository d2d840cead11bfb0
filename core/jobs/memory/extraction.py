"""Reading new messages with the LLM: candidate facts, the rolling summary, insights.

One structured-output call per user and run (`memory_update`): the model sees the old
summary, insights, style and themes, and the new messages each with its id and time,
and answers with candidate facts plus the updated summary and profile. Relative dates
("tomorrow", "last Friday") are resolved by the model against the time of the message
that says them, which is why every message carries its timestamp and weekday.

The answer is not trusted: every field is checked and clamped (`parse_update`), source
ids are restricted to the messages shown, and anything malformed is dropped rather
than stored.

A fact is private (used in private chats only) when the model says it is sensitive, or
when any message it comes from was said in the person's private chat: only what they
said in front of a group may be repeated in one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.llm.client import ChatClient
from core.models import MessageRole
from core.storage.memory_store import MemoryState, UnreadMessage

SCHEMA_NAME = "memory_update"
CATEGORIES = (
    "identity",
    "preference",
    "relationship",
    "work",
    "health",
    "place",
    "event",
    "goal",
    "general",
)
FACT_MAX_CHARS = 500
CATEGORY_MAX_CHARS = 40
LIST_MAX_ITEMS = 20
ITEM_MAX_CHARS = 200
STYLE_MAX_CHARS = 500
# Replies are context for the user's words, not a source of facts: shown shortened.
ASSISTANT_MAX_CHARS = 600

_FACT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "content",
        "category",
        "importance",
        "is_private",
        "confidence",
        "source_message_ids",
    ],
    "properties": {
        "content": {
            "type": "string",
            "description": "One self-contained statement about the user, absolute dates.",
        },
        "category": {"type": "string", "description": "One of: " + ", ".join(CATEGORIES)},
        "importance": {"type": "integer", "description": "1 (trivia) to 10 (essential)"},
        "is_private": {
            "type": "boolean",
            "description": "True if it must not be repeated in front of other people.",
        },
        "confidence": {"type": "number", "description": "0 to 1"},
        "source_message_ids": {"type": "array", "items": {"type": "integer"}},
    },
}
_STRINGS: dict[str, Any] = {"type": "array", "items": {"type": "string"}}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["facts", "summary", "insights", "communication_style", "themes"],
    "properties": {
        "facts": {"type": "array", "items": _FACT_SCHEMA},
        "summary": {"type": "string"},
        "insights": _STRINGS,
        "communication_style": {"type": "string"},
        "themes": _STRINGS,
    },
}

SYSTEM = """You maintain the long-term memory of a chat assistant about one user.
You get the current memory and the new messages of the conversation, each as
[#id, UTC time, weekday] role: text. Answer with:
- facts: durable facts about the user learned from the new messages only (who they are,
  preferences, people and pets in their life, work, health, places, plans, goals).
  Each is one short self-contained sentence in the third person ("Has a dog named Rex").
  Resolve every relative date or time against the time of the message that states it
  and write the absolute date ("on 2025-03-14", never "tomorrow"). Give the ids of the
  messages it comes from. importance: 1 trivia to 10 essential. confidence: 0 to 1.
  is_private: true for health, money, sexuality, religion, relationships in trouble,
  anything said in confidence or embarrassing in front of others. Do not list facts
  about the assistant, greetings or small talk. No fact is better than a guess.
- summary: the old summary updated with the new messages, at most {max_chars}
  characters, in the third person, most important and most recent things kept.
- insights: what helps to talk with this user well (at most 20 short items, updated).
- communication_style: how the user writes and wants answers (one or two sentences).
- themes: recurring topics (at most 20 short items, updated)."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """A fact the model read in the new messages, before reconciliation."""

    content: str
    category: str
    importance: int
    is_private: bool
    confidence: float
    source_message_ids: tuple[int, ...]
    said_at: datetime
    """Time of the newest source message: when the fact became known (valid_from)."""


@dataclass(frozen=True, slots=True)
class MemoryUpdate:
    facts: list[Candidate]
    summary: str
    insights: list[str]
    communication_style: str
    themes: list[str]


def format_message(message: UnreadMessage) -> str:
    text = message.content
    if message.role is MessageRole.ASSISTANT and len(text) > ASSISTANT_MAX_CHARS:
        text = text[:ASSISTANT_MAX_CHARS] + "…"
    when = message.created_at
    return f"[#{message.id}, {when:%Y-%m-%d %H:%M} UTC, {when:%A}] {message.role.value}: {text}"


def build_messages(
    state: MemoryState, messages: Sequence[UnreadMessage], *, summary_max_chars: int
) -> list[dict[str, str]]:
    memory = {
        "summary": state.summary,
        "insights": state.insights,
        "communication_style": state.communication_style,
        "themes": state.themes,
    }
    body = (
        "Current memory:\n"
        + json.dumps(memory, ensure_ascii=False, indent=1)
        + "\n\nNew messages:\n"
        + "\n".join(format_message(m) for m in messages)
    )
    return [
        {"role": "system", "content": SYSTEM.format(max_chars=summary_max_chars)},
        {"role": "user", "content": body},
    ]


async def extract(
    llm: ChatClient,
    state: MemoryState,
    messages: Sequence[UnreadMessage],
    *,
    summary_max_chars: int,
) -> MemoryUpdate:
    """Ask the model what the new messages teach; raises `LLMError` if it cannot answer."""
    answer = await llm.complete_json(
        build_messages(state, messages, summary_max_chars=summary_max_chars),
        schema=SCHEMA,
        schema_name=SCHEMA_NAME,
        temperature=0.0,
    )
    return parse_update(answer, state, messages)


def parse_update(
    answer: dict[str, Any], state: MemoryState, messages: Sequence[UnreadMessage]
) -> MemoryUpdate:
    """The model's answer, checked: bad facts dropped, values clamped, lists bounded.

    A missing or empty summary keeps the old one (an empty rewrite is far more likely a
    model failure than a conversation that says nothing).
    """
    shown = {m.id: m for m in messages}
    user_ids = tuple(m.id for m in messages if m.role is MessageRole.USER) or tuple(shown)
    raw_facts = answer.get("facts")
    facts = []
    for raw in raw_facts if isinstance(raw_facts, list) else []:
        candidate = _candidate(raw, shown, user_ids)
        if candidate is not None:
            facts.append(candidate)
    summary = answer.get("summary")
    style = answer.get("communication_style")
    return MemoryUpdate(
        facts=facts,
        summary=summary.strip() if isinstance(summary, str) and summary.strip() else state.summary,
        insights=_string_list(answer.get("insights"), state.insights),
        communication_style=(
            style.strip()[:STYLE_MAX_CHARS]
            if isinstance(style, str) and style.strip()
            else state.communication_style
        ),
        themes=_string_list(answer.get("themes"), state.themes),
    )


def _candidate(
    raw: Any, shown: dict[int, UnreadMessage], user_ids: tuple[int, ...]
) -> Candidate | None:
    if not isinstance(raw, dict):
        return None
    content = raw.get("content")
    if not isinstance(content, str) or not content.strip():
        return None
    category = raw.get("category")
    category = (
        category.strip().lower()[:CATEGORY_MAX_CHARS]
        if isinstance(category, str) and category.strip()
        else "general"
    )
    raw_sources = raw.get("source_message_ids")
    sources = tuple(
        sorted(
            {
                s
                for s in (raw_sources if isinstance(raw_sources, list) else [])
                if isinstance(s, int) and not isinstance(s, bool) and s in shown
            }
        )
    )
    # A fact without a (known) source came from this batch: credit the user's messages.
    sources = sources or user_ids
    return Candidate(
        content=" ".join(content.split())[:FACT_MAX_CHARS],
        category=category,
        importance=_clamp_int(raw.get("importance"), 1, 10, default=5),
        is_private=raw.get("is_private") is True or any(not shown[s].shared_chat for s in sources),
        confidence=_clamp_float(raw.get("confidence"), 0.0, 1.0, default=0.8),
        source_message_ids=sources,
        said_at=max(shown[s].created_at for s in sources),
    )


def _clamp_int(value: Any, lo: int, hi: int, *, default: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return max(lo, min(hi, round(value)))


def _clamp_float(value: Any, lo: float, hi: float, *, default: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return default
    return max(lo, min(hi, float(value)))


def _string_list(value: Any, fallback: list[str]) -> list[str]:
    if not isinstance(value, list):
        return fallback
    seen: dict[str, str] = {}
    for item in value:
        if isinstance(item, str) and item.strip():
            text = " ".join(item.split())[:ITEM_MAX_CHARS]
            seen.setdefault(text.lower(), text)
    return list(seen.values())[:LIST_MAX_ITEMS]
