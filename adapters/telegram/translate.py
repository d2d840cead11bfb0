"""Telegram update JSON -> `Update`, and `Message` -> `Inbound`: who wrote what, where,
and whether it was to us.

Pure functions of the message and the bot's own identity, so they are easy to test and
the same for polling and webhooks. Policy (dedupe, bans, commands) is the engine's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from telegram import Bot, CallbackQuery, Message, MessageEntity, Update
from telegram.constants import ChatType

from core.commands.base import parse_command
from core.inbound import Attachment, ChatKind, Inbound
from core.models import Platform

logger = logging.getLogger(__name__)


def parse_update(data: Any, bot: Bot) -> Update | None:
    """The update in `data`, or None (with a warning naming only its id) when
    python-telegram-bot cannot read it (a field missing, a type it does not know).

    Such an update is to be skipped, that is acknowledged: asking for it again would
    bring the same failure for ever and hold up every update behind it.
    """
    try:
        update = Update.de_json(data, bot)
    except (KeyError, TypeError, ValueError, AttributeError):
        update = None
    if update is None:
        update_id = data.get("update_id") if isinstance(data, dict) else None
        logger.warning("skipping a telegram update that cannot be read: %s", update_id)
    return update


@dataclass(frozen=True, slots=True)
class BotIdentity:
    """Who "we" are, from getMe: needed to tell mentions and replies to us apart."""

    id: int
    username: str

    def is_me(self, name: str | None) -> bool:
        return name is not None and name.lstrip("@").lower() == self.username.lower()


_CHAT_KINDS: dict[str, ChatKind] = {
    ChatType.PRIVATE: ChatKind.PRIVATE,
    ChatType.GROUP: ChatKind.GROUP,
    ChatType.SUPERGROUP: ChatKind.GROUP,
}


def to_inbound(message: Message, me: BotIdentity) -> Inbound | None:
    """The `Inbound` for a user's message; None for what the engine must never see.

    Ignored: channel posts, messages without a human sender (bots, anonymous admins,
    which Telegram sends as a bot), and service messages (joins, migrations, pins).
    """
    sender = message.from_user
    kind = _CHAT_KINDS.get(message.chat.type)
    if sender is None or sender.is_bot or kind is None:
        return None
    attachments = _attachments(message)
    raw = message.text if message.text is not None else message.caption
    if raw is None and not attachments:
        return None
    entities = message.entities if message.text is not None else message.caption_entities
    text, mentioned = _strip_mentions(raw or "", entities, me)
    reply_to = message.reply_to_message
    return Inbound(
        platform=Platform.TELEGRAM,
        platform_user_id=str(sender.id),
        chat_id=str(message.chat.id),
        chat_kind=kind,
        message_id=str(message.message_id),
        text=text,
        sent_at=message.date,
        username=sender.username,
        display_name=sender.full_name or None,
        language=sender.language_code,
        reply_to_message_id=str(reply_to.message_id) if reply_to is not None else None,
        attachments=attachments,
        addressed=kind is ChatKind.PRIVATE
        or mentioned
        or _replies_to_me(message, me)
        or _is_command_to_me(text, me),
    )


def callback_inbound(query: CallbackQuery) -> Inbound | None:
    """A press of one of our buttons (`adapters.telegram.sender.keyboard`) as the command
    it carries, from whoever pressed it, in the chat of the message it is under; None
    when it carries no command (the data is the client's to forge: it is only ever
    what the presser could have typed)."""
    data = query.data
    message = query.message
    sender = query.from_user
    if data is None or message is None or sender.is_bot or parse_command(data) is None:
        return None
    kind = _CHAT_KINDS.get(message.chat.type)
    if kind is None:
        return None
    return Inbound(
        platform=Platform.TELEGRAM,
        platform_user_id=str(sender.id),
        chat_id=str(message.chat.id),
        chat_kind=kind,
        # Unique per press: the engine runs a command once per message id.
        message_id=f"callback:{query.id}",
        text=data,
        sent_at=datetime.now(UTC),
        username=sender.username,
        display_name=sender.full_name or None,
        language=sender.language_code,
        addressed=True,
    )


def _replies_to_me(message: Message, me: BotIdentity) -> bool:
    replied = message.reply_to_message
    return replied is not None and replied.from_user is not None and replied.from_user.id == me.id


def _is_command_to_me(text: str, me: BotIdentity) -> bool:
    """`/cmd` or `/cmd@us`; `/cmd@otherbot` belongs to another bot in the group."""
    command = parse_command(text)
    return command is not None and (command.addressee is None or me.is_me(command.addressee))


def _strip_mentions(
    text: str, entities: tuple[MessageEntity, ...], me: BotIdentity
) -> tuple[str, bool]:
    """The text without mentions of the bot, and whether there was one.

    Entity offsets count UTF-16 code units, so the cutting happens in UTF-16.
    """
    encoded = text.encode("utf-16-le")
    cuts: list[tuple[int, int]] = []
    for entity in entities:
        start, end = entity.offset * 2, (entity.offset + entity.length) * 2
        if entity.type == MessageEntity.MENTION:
            ours = me.is_me(encoded[start:end].decode("utf-16-le", errors="replace"))
        elif entity.type == MessageEntity.TEXT_MENTION:
            ours = entity.user is not None and entity.user.id == me.id
        else:
            ours = False
        if ours:
            cuts.append((start, end))
    for start, end in sorted(cuts, reverse=True):
        encoded = encoded[:start] + encoded[end:]
    stripped = encoded.decode("utf-16-le", errors="replace")
    if cuts:
        stripped = " ".join(part for part in stripped.split(" ") if part).strip()
        # A mention followed by a comma or colon ("@bot, hi") leaves the punctuation first.
        stripped = stripped.lstrip(",:").strip()
    return stripped, bool(cuts)


def _attachments(message: Message) -> tuple[Attachment, ...]:
    """Metadata of every non-text part, with its file_id to download it by (never the
    file itself)."""
    found: list[Attachment] = []
    if message.photo:
        largest = max(message.photo, key=lambda p: p.width * p.height)
        found.append(
            Attachment("photo", size=largest.file_size, mime_type="image/jpeg", ref=largest.file_id)
        )
    if message.animation is not None:
        a = message.animation
        found.append(Attachment("animation", a.file_name, a.mime_type, a.file_size, a.file_id))
    elif message.document is not None:
        d = message.document
        found.append(Attachment("document", d.file_name, d.mime_type, d.file_size, d.file_id))
    if message.sticker is not None:
        found.append(Attachment("sticker", size=message.sticker.file_size))
    for kind, media in (
        ("voice", message.voice),
        ("audio", message.audio),
        ("video", message.video),
        ("video_note", message.video_note),
    ):
        if media is not None:
            name = getattr(media, "file_name", None)
            mime = getattr(media, "mime_type", None)
            found.append(Attachment(kind, name, mime, media.file_size, media.file_id))
    for kind, present in (
        ("location", message.location is not None),
        ("contact", message.contact is not None),
        ("poll", message.poll is not None),
        ("dice", message.dice is not None),
    ):
        if present:
            found.append(Attachment(kind))
    return tuple(found)
