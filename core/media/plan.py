"""What becomes of a message's attachments, decided from their metadata alone, before
anything is stored or downloaded: taken as a voice note, a photo or a document
(`MediaPlan`), answered as plain text (None: the text is what counts), or refused with
a clear answer (a `Notice`; nothing is stored). Whether a document is of a kind and
size to keep is `Documents.refuse_before_download`'s to say."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.i18n import Notice
from core.inbound import Attachment
from core.media import texts
from core.models import MessageType

VOICE_KINDS = {
    "voice": MessageType.VOICE,
    "audio": MessageType.AUDIO,
    "video_note": MessageType.VIDEO_NOTE,
}
IMAGE_KINDS = frozenset({"photo", "image"})
"""Telegram's photos, Discord's image attachments."""
DOCUMENT_KINDS = frozenset({"document", "file"})
"""Telegram's documents, Discord's other attachments."""
PLACEHOLDERS = {
    MessageType.VOICE: "[Voice message]",
    MessageType.AUDIO: "[Audio]",
    MessageType.VIDEO_NOTE: "[Video message]",
    MessageType.PHOTO: "[Photo]",
    MessageType.DOCUMENT: "[Document]",
}
"""A media message's text until it is made into words (and for good, when that
fails): what the prompt's window shows for it."""


@dataclass(frozen=True, slots=True)
class Abilities:
    """What this deployment can do with media, for one platform."""

    transcription: bool
    """A transcription model is configured."""
    vision: bool
    """The chat model reads images (LLM_VISION)."""
    downloads: bool
    """The platform hands files over (its adapter registered a `FileSource`)."""
    max_bytes: int


@dataclass(frozen=True, slots=True)
class MediaPlan:
    """A message to store as `message_type`, made from `attachment`."""

    message_type: MessageType
    attachment: Attachment
    note: Notice | None = None
    """Told to the person once the message is stored (a photo read by its caption only)."""
    caption_only: bool = False
    """Nothing to download: the caption is the whole message (the model has no vision)."""

    def stored(self, caption: str) -> tuple[dict[str, Any], ...]:
        """The attachment's metadata as the message keeps it (`Message.attachments`),
        with the caption it came with."""
        a = self.attachment
        fields = {"kind": a.kind, "name": a.name, "mime_type": a.mime_type, "size": a.size}
        fields.update(ref=a.ref, caption=caption or None)
        return ({k: v for k, v in fields.items() if v is not None},)

    def content(self, caption: str) -> str:
        """The message's text as stored: the caption, else a placeholder."""
        return caption or PLACEHOLDERS[self.message_type]


def plan(
    attachments: Sequence[Attachment], text: str, abilities: Abilities
) -> MediaPlan | Notice | None:
    """The plan for a message with `attachments` and `text` (a caption, possibly empty):
    a `MediaPlan`, None to answer the text alone, or the notice refusing it. One
    attachment per message is used: the first voice note, else image, else document."""
    voice = next((a for a in attachments if a.kind in VOICE_KINDS and a.ref), None)
    image = next((a for a in attachments if a.kind in IMAGE_KINDS and a.ref), None)
    document = next((a for a in attachments if a.kind in DOCUMENT_KINDS and a.ref), None)
    if voice is not None:
        if not (abilities.transcription and abilities.downloads):
            return None if text else Notice.gettext(texts.NO_TRANSCRIPTION)
        return _too_large(voice, abilities) or MediaPlan(VOICE_KINDS[voice.kind], voice)
    if image is not None:
        if abilities.vision and abilities.downloads:
            return _too_large(image, abilities) or MediaPlan(MessageType.PHOTO, image)
        if text:
            note = Notice.gettext(texts.CAPTION_ONLY)
            return MediaPlan(MessageType.PHOTO, image, note, caption_only=True)
        return Notice.gettext(texts.NO_VISION)
    if document is not None and abilities.downloads:
        return MediaPlan(MessageType.DOCUMENT, document)
    if text or not attachments:
        return None
    return Notice.gettext(texts.UNSUPPORTED_KIND)


def _too_large(attachment: Attachment, abilities: Abilities) -> Notice | None:
    size = attachment.size
    if size is None or size <= abilities.max_bytes:
        return None
    return Notice.gettext(
        texts.TOO_LARGE, size=readable_size(size), limit=readable_size(abilities.max_bytes)
    )


def readable_size(size: int) -> str:
    """`size` bytes for people: "820 KB", "25.3 MB"."""
    if size < 1024 * 1024:
        return f"{max(1, round(size / 1024))} KB"
    return f"{size / 1024 / 1024:.1f} MB"
