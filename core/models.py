"""Domain types shared by the storage layer, the engine and the commands."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Platform(StrEnum):
    TELEGRAM = "telegram"
    DISCORD = "discord"
    CONSOLE = "console"


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


class UserStatus(StrEnum):
    ACTIVE = "active"
    BANNED = "banned"


class MessageRole(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"


class MessageStatus(StrEnum):
    """The life of a user message: stored as pending, then answered or failed."""

    PENDING = "pending"
    ANSWERED = "answered"
    FAILED = "failed"


class MessageType(StrEnum):
    """What a person sent: text, or what a message was made from (migration 0014)."""

    TEXT = "text"
    VOICE = "voice"
    AUDIO = "audio"
    VIDEO_NOTE = "video_note"
    PHOTO = "photo"
    DOCUMENT = "document"


@dataclass(frozen=True, slots=True)
class User:
    id: int
    role: Role
    status: UserStatus
    display_name: str | None
    locale: str | None
    settings: dict[str, Any]
    ban_notified: bool
    created_at: datetime
    last_seen_at: datetime | None
    language: str | None = None
    """The language the person chose for the bot's own texts (`/language`); None: the
    platform's (`locale`)."""


@dataclass(frozen=True, slots=True)
class Identity:
    platform: Platform
    platform_user_id: str
    user_id: int
    username: str | None
    private_chat_id: str | None = None
    """Where the bot writes to this person privately, once known."""
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Conversation:
    user_id: int
    summary: str
    summary_version: int
    summary_through_message_id: int | None
    message_count: int
    tokens_in: int
    tokens_out: int
    persona_overrides: dict[str, Any]
    last_activity_at: datetime | None
    memory_off_since: datetime | None = None
    """Since when the person has switched memory off (`/memory off`); None: on."""


@dataclass(frozen=True, slots=True)
class SharedChat:
    """A group or server channel. A reply there draws only on that chat's own messages
    and on facts that are not private (docs/security.md, "Between chats")."""

    platform: Platform
    chat_id: str

    def as_argument(self) -> list[str]:
        """The chat as recall's statements take it: ``[platform, chat id]``."""
        return [self.platform.value, self.chat_id]


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    user_id: int
    role: MessageRole
    content: str
    platform: Platform
    chat_id: str | None
    platform_message_id: str | None
    reply_to_id: int | None
    status: MessageStatus | None
    created_at: datetime
    context_snapshot: dict[str, Any] | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    model: str | None = None
    response_ms: int | None = None
    archived: bool = False
    shared_chat: bool = False
    """Said in a group or server channel (else in the person's private chat)."""
    delivered_at: datetime | None = None
    """For replies: when the platform accepted it (not read by a chat turn)."""
    remembered: bool = True
    """False: never recalled nor learned from (memory was off, or a fact from it was
    forgotten)."""
    message_type: MessageType = MessageType.TEXT
    attachments: tuple[dict[str, Any], ...] = ()
    """What the message was made from (`core.media.stored`): kind, name, MIME type,
    size, the platform's handle (`ref`) and what was made of it; never the bytes."""
    speaker: str | None = None
    """Who said it, as named when it was stored (migration 0016; not read by a turn)."""


@dataclass(frozen=True, slots=True)
class Fact:
    id: int
    user_id: int
    content: str
    category: str
    importance: int
    confidence: float
    is_private: bool
    source_message_ids: tuple[int, ...]
    valid_from: datetime
    invalid_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class NewFact:
    """A fact to store, before it has an id."""

    content: str
    category: str = "general"
    importance: int = 5
    confidence: float = 1.0
    is_private: bool = False
    source_message_ids: tuple[int, ...] = field(default_factory=tuple)
    valid_from: datetime | None = None


@dataclass(frozen=True, slots=True)
class MemoryContext:
    """What the memory job learned about how to talk with a person."""

    insights: list[Any]
    communication_style: str
    themes: list[Any]
    last_read_message_id: int
    updated_at: datetime
