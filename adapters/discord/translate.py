"""Discord message or interaction -> `Inbound`: the only place that reads Discord objects.

Addressing decides whether the engine sees a message at all. In a DM the bot is always
spoken to. In a guild channel or thread it is spoken to only by a mention (`<@id>`,
`<@!id>`, or the bot's own managed role), or by a reply to one of its messages; anything
else is other people's conversation, which the bot neither answers nor stores. Plain
text commands in a guild count only with a mention (`@bot /help`): a bare `/help` there
may be meant for another bot, and slash commands are the native way to reach this one.
"""

from __future__ import annotations

import re

import discord

from core.inbound import Attachment, ChatKind, Inbound
from core.models import Platform

# Message types a person writes; joins, pins, boosts and the like are system messages.
_CONVERSATIONAL = frozenset({discord.MessageType.default, discord.MessageType.reply})
_USER_MENTION = re.compile(r"<@!?(\d+)>")


def is_private(channel: object) -> bool:
    """A DM with the bot. Group DMs cannot contain bots, so anything else is shared."""
    return isinstance(channel, discord.DMChannel)


def is_addressed(message: discord.Message, me: discord.ClientUser) -> bool:
    """Whether `message` speaks to the bot (see the module doc)."""
    if is_private(message.channel):
        return True
    if re.search(rf"<@!?{me.id}>", message.content):
        return True
    guild = message.guild
    own_role = guild.self_role if guild is not None else None
    if own_role is not None and own_role in message.role_mentions:
        return True
    return _replies_to(message, me.id)


def _replies_to(message: discord.Message, user_id: int) -> bool:
    reference = message.reference
    if reference is None:
        return False
    replied = reference.resolved or reference.cached_message
    return isinstance(replied, discord.Message) and replied.author.id == user_id


def message_text(message: discord.Message, me: discord.ClientUser) -> str:
    """The content without the bot's mention; other people's mentions become `@name`."""
    names = {user.id: user.display_name for user in message.mentions}
    text = message.content
    guild = message.guild
    if guild is not None and guild.self_role is not None:
        text = text.replace(guild.self_role.mention, " ")

    def readable(match: re.Match[str]) -> str:
        user_id = int(match[1])
        if user_id == me.id:
            return " "
        name = names.get(user_id)
        return f"@{name}" if name else match[0]

    text = _USER_MENTION.sub(readable, text)
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def attachments_of(message: discord.Message) -> tuple[Attachment, ...]:
    """Metadata of files (with the URL to download each by) and stickers; the engine
    never sees their bytes."""
    found = [_attachment(item) for item in message.attachments]
    found += [Attachment("sticker", name=sticker.name) for sticker in message.stickers]
    return tuple(found)


def _attachment(item: discord.Attachment) -> Attachment:
    mime = item.content_type
    if item.is_voice_message():
        kind = "voice"
    elif mime is not None and mime.split("/", 1)[0] in {"image", "video", "audio"}:
        kind = mime.split("/", 1)[0]
    else:
        kind = "file"
    return Attachment(kind, name=item.filename, mime_type=mime, size=item.size, ref=item.url)


def to_inbound(message: discord.Message, me: discord.ClientUser) -> Inbound | None:
    """The `Inbound` for a message the bot should handle; None for bots, system
    messages and guild messages that do not address the bot."""
    if message.author.bot or message.author.id == me.id:
        return None
    if message.type not in _CONVERSATIONAL:
        return None
    if not is_addressed(message, me):
        return None
    reference = message.reference
    return Inbound(
        platform=Platform.DISCORD,
        platform_user_id=str(message.author.id),
        chat_id=str(message.channel.id),
        chat_kind=ChatKind.PRIVATE if is_private(message.channel) else ChatKind.GROUP,
        message_id=str(message.id),
        text=message_text(message, me),
        sent_at=message.created_at,
        username=message.author.name,
        display_name=message.author.display_name,
        reply_to_message_id=(
            str(reference.message_id)
            if reference is not None and reference.message_id is not None
            else None
        ),
        attachments=attachments_of(message),
        addressed=True,
    )


def command_inbound(interaction: discord.Interaction, name: str, args: str) -> Inbound:
    """A slash command as the engine sees a typed one: `/name args`, always addressed."""
    channel = interaction.channel
    private = is_private(channel) or (channel is None and interaction.guild_id is None)
    user = interaction.user
    return Inbound(
        platform=Platform.DISCORD,
        platform_user_id=str(user.id),
        chat_id=str(interaction.channel_id),
        chat_kind=ChatKind.PRIVATE if private else ChatKind.GROUP,
        message_id=str(interaction.id),
        text=f"/{name} {args}".strip(),
        sent_at=interaction.created_at,
        username=user.name,
        display_name=user.display_name,
        addressed=True,
        language=str(interaction.locale),
    )
