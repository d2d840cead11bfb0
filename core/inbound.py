"""What an adapter hands the engine: one platform-neutral incoming message."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from core.models import Platform


class ChatKind(StrEnum):
    PRIVATE = "private"
    GROUP = "group"


@dataclass(frozen=True, slots=True)
class Attachment:
    """Metadata of non-text content (photo, voice, sticker, file); never its bytes."""

    kind: str
    name: str | None = None
    mime_type: str | None = None
    size: int | None = None
    ref: str | None = None
    """The platform's handle to download it (`core.media.files.FileSource`): Telegram's
    file_id, Discord's attachment URL; None for what has no file."""


@dataclass(frozen=True, slots=True)
class Inbound:
    """One incoming message, as every platform can describe it.

    `addressed` says whether the bot was spoken to (always true in private chats; in
    groups a mention, a reply to the bot, or a command). `chat_id` and `message_id`
    together identify the message on its platform, which is what deduplication uses.
    """

    platform: Platform
    platform_user_id: str
    chat_id: str
    chat_kind: ChatKind
    message_id: str
    text: str
    sent_at: datetime
    username: str | None = None
    display_name: str | None = None
    reply_to_message_id: str | None = None
    attachments: tuple[Attachment, ...] = field(default_factory=tuple)
    addressed: bool = True
    language: str | None = None
    """The person's language as the platform tells it (an IETF tag such as "de" or
    "pt-BR": Telegram's `language_code`, Discord's interaction locale); None when the
    platform does not say."""

    @property
    def is_private(self) -> bool:
        return self.chat_kind is ChatKind.PRIVATE
