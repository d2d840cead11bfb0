"""A stored voice note, photo or document made into what the model reads, in the
message's turn.

Voice: downloaded through its platform's `FileSource`, transcribed (`core.llm.transcription`);
the transcript (after the caption, if any) becomes the message's text. Photo, for a
model with vision: downloaded and described once by the model (one short, non-streamed
call), "[Photo: description]" and the caption become the message's text; the image
itself goes into the prompt of this turn only. The description is a call of its own,
not the reply: a reply need not say what the picture shows, and the description is kept
even when the reply fails. Either way the text is embedded and kept with the message
(`MessageRepository.record_made_from`), so recall finds it later ("the picture of my
garden") like anything written; the attachments' metadata records what was made, so a
`/retry` does not transcribe or describe again. A photo's or document's bytes are never
stored; a recording's are kept with its message, in the same transaction as its
transcript, only when MEDIA_KEEP_AUDIO asks and it is small enough to export
(`core.media.kept_audio`).

Document: downloaded and taken into the person's documents (`Documents.add`, which
reads, chunks and embeds it; docs/documents.md); "[Document: name]" and the caption
become the message's text, and the attachment records the document's id. What
`Documents.add` answers is told to the person; with a caption the model answers the
caption next (its passages are recallable already), without one that answer is all.

A failure raises `MediaFailed` with what to tell the person; the message stays stored
(the engine marks it failed, and `/retry` tries again). Everything told is a `Notice`,
said in the person's language by the engine.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.context import AssembledContext
from core.documents import texts as doc_texts
from core.documents.service import DocumentRefused, Documents, file_size
from core.embedding.base import embed_or_none
from core.i18n import Notice
from core.llm.errors import LLMError
from core.media import texts
from core.media.files import FileTooLarge, FileUnavailable
from core.media.kept_audio import kept_audio_max_bytes
from core.media.plan import readable_size
from core.models import Message, MessageType
from core.services import Services
from core.snapshot import AttachmentUse
from core.storage.message_audio import MessageAudioRepository
from core.storage.turns import TurnState

logger = logging.getLogger(__name__)

PHOTO_TAG = "Photo"
"""How a photo's description starts in the message's text: "[Photo: ...]"."""
DOCUMENT_TAG = "Document"
"""How a document's name starts in the message's text: "[Document: name]"."""
DESCRIBE_PROMPT = (
    "Describe this image in one or two plain sentences, so that the person who sent it "
    "could find it again by searching for what it shows. Mention any visible text."
)
DESCRIPTION_MAX_TOKENS = 120
DESCRIPTION_MAX_CHARS = 500
# Whisper-compatible endpoints tell the format by the file name's extension.
_AUDIO_EXTENSIONS = {
    "audio/ogg": "ogg",
    "audio/opus": "ogg",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/mp4": "m4a",
    "audio/x-m4a": "m4a",
    "audio/m4a": "m4a",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/webm": "webm",
    "audio/flac": "flac",
    "video/mp4": "mp4",
}
_DEFAULT_MIME = {"voice": "audio/ogg", "video_note": "video/mp4", "audio": "audio/mpeg"}
_CORRUPT_STATUSES = frozenset({400, 415, 422})
# The first bytes of the image formats vision models take (JPEG, PNG, GIF, WebP).
_IMAGE_MAGIC = {
    b"\xff\xd8\xff": "image/jpeg",
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"GIF8": "image/gif",
}


@dataclass(frozen=True, slots=True)
class _Said:
    """What to tell the person when a kind of attachment could not be downloaded, or
    not made into text in time."""

    download_failed: str
    too_slow: str


_SAID = {
    MessageType.PHOTO: _Said(texts.DOWNLOAD_FAILED_PHOTO, texts.TOO_SLOW_PHOTO),
    MessageType.DOCUMENT: _Said(texts.DOWNLOAD_FAILED_DOCUMENT, texts.TOO_SLOW_DOCUMENT),
}
_SAID_OF_VOICE = _Said(texts.DOWNLOAD_FAILED_VOICE, texts.TOO_SLOW_VOICE)


class MediaFailed(Exception):  # noqa: N818 - a condition, with the answer to give
    """The attachment could not be made into text; `notice` says so to the person."""

    def __init__(self, notice: Notice) -> None:
        super().__init__(notice.message)
        self.notice = notice


def _failed(message: str, /, **values: object) -> MediaFailed:
    return MediaFailed(Notice.gettext(message, **values))


@dataclass(frozen=True, slots=True)
class Prepared:
    """The message as made (its text and attachments as now stored), and what this
    turn's prompt adds: the image, and which attachments it used."""

    message: Message
    embedding: np.ndarray[Any, Any] | None
    image_url: str | None
    """The photo as a data URL, for a model with vision."""
    uses: tuple[AttachmentUse, ...]
    told: Notice | None = None
    """Told to the person before the answer: a transcript the model was unsure of, what
    became of a document."""
    complete: bool = False
    """What was told is the whole answer: no reply from the model (a document without
    a caption)."""

    def reread(self, state: TurnState) -> TurnState:
        """The turn's state with the message as made (the window read it before), and
        the document it may have kept."""
        recent = [self.message if m.id == self.message.id else m for m in state.recent]
        kept = self.message.message_type is MessageType.DOCUMENT
        return dataclasses.replace(state, recent=recent, has_documents=state.has_documents or kept)

    def into(self, context: AssembledContext) -> AssembledContext:
        """The prompt with the image beside the message's text, and the snapshot
        naming the attachments used."""
        messages: list[dict[str, Any]] = list(context.messages)
        if self.image_url is not None and messages and messages[-1]["role"] == "user":
            messages[-1] = {
                "role": "user",
                "content": [
                    {"type": "text", "text": messages[-1]["content"]},
                    {"type": "image_url", "image_url": {"url": self.image_url}},
                ],
            }
        snapshot = dataclasses.replace(context.snapshot, attachments=self.uses)
        return dataclasses.replace(context, messages=messages, snapshot=snapshot)


class MediaPreparer:
    def __init__(self, services: Services, documents: Documents) -> None:
        self._services = services
        self._documents = documents

    async def prepare(self, message: Message) -> Prepared:
        """`message` (a voice note, photo or document: `message_type` not text) made
        into text; raises `MediaFailed`. Bounded by REPLY_DEADLINE_SECONDS."""
        said = _SAID.get(message.message_type, _SAID_OF_VOICE)
        try:
            async with asyncio.timeout(self._services.settings.reply_deadline_seconds):
                if message.message_type is MessageType.PHOTO:
                    return await self._photo(message)
                if message.message_type is MessageType.DOCUMENT:
                    return await self._document(message)
                return await self._voice(message)
        except TimeoutError:
            logger.warning(
                "preparing the %s of message %s timed out", message.message_type, message.id
            )
            raise _failed(said.too_slow) from None

    async def _voice(self, message: Message) -> Prepared:
        attachment = dict(message.attachments[0])
        use = (AttachmentUse(message.id, message.message_type.value, "transcript"),)
        if "transcript" in attachment:  # made before: a /retry
            return Prepared(message, None, None, use)
        transcriber = self._services.transcriber
        if transcriber is None:
            raise _failed(texts.NO_TRANSCRIPTION)
        audio = await self._fetch(message, attachment, self._services.settings.media_max_bytes)
        filename, mime = audio_file(attachment)
        try:
            transcript = await transcriber.transcribe(audio, filename=filename, mime_type=mime)
        except LLMError as exc:
            logger.warning("transcribing message %s failed: %s", message.id, exc)
            corrupt = type(exc) is LLMError and exc.status_code in _CORRUPT_STATUSES
            raise _failed(texts.CORRUPT_AUDIO if corrupt else texts.TRANSCRIPTION_FAILED) from exc
        if not transcript.text:
            raise _failed(texts.NOTHING_HEARD)
        caption = str(attachment.get("caption", ""))
        content = f"{caption}\n\n{transcript.text}" if caption else transcript.text
        limit = self._services.settings.limits.max_message_chars
        if len(content) > limit:
            raise _failed(texts.TRANSCRIPT_TOO_LONG, length=len(content), limit=limit)
        attachment["transcript"] = transcript.text
        made = await self._keep(message, content, attachment, self._recording(message, audio, mime))
        heard = Notice.gettext(texts.HEARD, text=transcript.text) if transcript.unclear else None
        return Prepared(made.message, made.embedding, None, use, heard)

    async def _photo(self, message: Message) -> Prepared:
        attachment = dict(message.attachments[0])
        if not self._services.settings.llm_vision:
            use = (AttachmentUse(message.id, MessageType.PHOTO.value, "caption"),)
            return Prepared(message, None, None, use)
        described = "description" in attachment  # made before: a /retry
        try:
            image = await self._fetch(message, attachment, self._services.settings.media_max_bytes)
        except MediaFailed:
            if not described:
                raise
            # The platform's link may be gone by now (Discord signs its links for about
            # a day): the description made before stands in for the image.
            use = (AttachmentUse(message.id, MessageType.PHOTO.value, "description"),)
            return Prepared(message, None, None, use)
        mime = image_type(image)
        if mime is None:
            raise _failed(texts.CORRUPT_IMAGE)
        image_url = f"data:{mime};base64,{base64.b64encode(image).decode()}"
        use = (AttachmentUse(message.id, MessageType.PHOTO.value, "image"),)
        if described:
            return Prepared(message, None, image_url, use)
        caption = str(attachment.get("caption", ""))
        description = await self._describe(message, image_url, caption)
        content = f"[{PHOTO_TAG}: {description}]" + (f"\n{caption}" if caption else "")
        attachment["description"] = description
        made = await self._keep(message, content, attachment)
        return Prepared(made.message, made.embedding, image_url, use)

    async def _describe(self, message: Message, image_url: str, caption: str) -> str:
        prompt: list[dict[str, Any]] = [
            {"role": "system", "content": DESCRIBE_PROMPT},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": caption or "(no caption)"},
                    {"type": "image_url", "image_url": {"url": image_url}},
                ],
            },
        ]
        try:
            described = await self._services.llm.complete(prompt, max_tokens=DESCRIPTION_MAX_TOKENS)
        except LLMError as exc:
            # The file was checked to be an image: a refusal is the model's, not the file's.
            logger.warning("describing the photo of message %s failed: %s", message.id, exc)
            raise _failed(texts.VISION_FAILED) from exc
        description = " ".join(described.text.split())[:DESCRIPTION_MAX_CHARS]
        if not description:
            raise _failed(texts.VISION_FAILED)
        return description

    async def _document(self, message: Message) -> Prepared:
        attachment = dict(message.attachments[0])
        use = (AttachmentUse(message.id, MessageType.DOCUMENT.value, "document"),)
        caption = str(attachment.get("caption", ""))
        if "document_id" in attachment:  # kept before: a /retry of the caption's answer
            return Prepared(message, None, None, use, complete=not caption)
        data = await self._fetch(
            message, attachment, self._services.settings.limits.document_max_bytes
        )
        name = str(attachment.get("name") or "")
        mime = attachment.get("mime_type")
        added = await self._documents.add(
            message.user_id,
            filename=name,
            media_type=mime if isinstance(mime, str) else None,
            data=data,
            platform=message.platform,
            chat_id=message.chat_id or "",
            shared_chat=message.shared_chat,
        )
        if isinstance(added, DocumentRefused):
            logger.info("document of message %s refused: %s", message.id, added.reason)
            raise MediaFailed(added.answer)
        attachment["document_id"] = added.document.id
        content = f"[{DOCUMENT_TAG}: {added.document.filename}]" + (
            f"\n{caption}" if caption else ""
        )
        made = await self._keep(message, content, attachment)
        return Prepared(made.message, made.embedding, None, use, added.answer, complete=not caption)

    async def _fetch(self, message: Message, attachment: dict[str, Any], limit: int) -> bytes:
        """The attachment's bytes, at most `limit` of them; raises `MediaFailed`."""
        said = _SAID.get(message.message_type, _SAID_OF_VOICE)
        source = self._services.files.get(message.platform)
        ref = attachment.get("ref")
        if source is None or not isinstance(ref, str):
            raise _failed(said.download_failed)
        try:
            return await source.fetch(ref, max_bytes=limit)
        except FileTooLarge as exc:
            raise MediaFailed(_too_large(message.message_type, exc.size, limit)) from exc
        except FileUnavailable as exc:
            logger.warning(
                "downloading the %s of message %s failed: %s",
                message.message_type,
                message.id,
                exc,
            )
            raise _failed(said.download_failed) from exc

    def _recording(self, message: Message, audio: bytes, mime: str) -> _Recording | None:
        """The recording to keep with its transcript, when MEDIA_KEEP_AUDIO asks and it
        is small enough to export."""
        settings = self._services.settings
        if not settings.media_keep_audio:
            return None
        limit = kept_audio_max_bytes(settings)
        if len(audio) > limit:
            logger.info(
                "the recording of message %s (%s bytes) is not kept: over %s bytes",
                message.id,
                len(audio),
                limit,
            )
            return None
        return _Recording(mime, audio)

    async def _keep(
        self,
        message: Message,
        content: str,
        attachment: dict[str, Any],
        recording: _Recording | None = None,
    ) -> _Made:
        embedding = await embed_or_none(self._services.embedder, content)
        async with self._services.db.transaction() as conn:
            await self._services.messages.record_made_from(
                message.user_id,
                message.id,
                content=content,
                attachments=[attachment],
                embedding=embedding,
                conn=conn,
            )
            if recording is not None:
                await MessageAudioRepository(self._services.db).keep(
                    message.user_id,
                    message.id,
                    mime_type=recording.mime_type,
                    data=recording.data,
                    conn=conn,
                )
        made = dataclasses.replace(message, content=content, attachments=(attachment,))
        return _Made(made, embedding)


def _too_large(kind: MessageType, size: int | None, limit: int) -> Notice:
    """A file over `limit` (of `size` bytes, when the platform said): a document's own
    answer, or the one of voice notes and photos."""
    if kind is MessageType.DOCUMENT:
        if size is None:
            return Notice.gettext(doc_texts.TOO_LARGE_UNSIZED, limit=file_size(limit))
        return Notice.gettext(doc_texts.TOO_LARGE, size=file_size(size), limit=file_size(limit))
    if size is None:
        return Notice.gettext(texts.TOO_LARGE_UNSIZED, limit=readable_size(limit))
    return Notice.gettext(texts.TOO_LARGE, size=readable_size(size), limit=readable_size(limit))


@dataclass(frozen=True, slots=True)
class _Recording:
    mime_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class _Made:
    message: Message
    embedding: np.ndarray[Any, Any] | None


def audio_file(attachment: dict[str, Any]) -> tuple[str, str]:
    """The file name (with the extension the endpoint reads the format from) and MIME
    type to send a recording as."""
    kind = str(attachment.get("kind", "voice"))
    raw = attachment.get("mime_type")
    mime = (raw if isinstance(raw, str) else "").split(";")[0].strip().lower()
    mime = mime or _DEFAULT_MIME.get(kind, "audio/ogg")
    extension = _AUDIO_EXTENSIONS.get(mime)
    if extension is None:
        name = attachment.get("name")
        extension = str(name).rpartition(".")[2].lower() if name and "." in str(name) else "ogg"
    return f"{kind}.{extension}", mime


def image_type(data: bytes) -> str | None:
    """The MIME type of an image in a format vision models read, from its first bytes;
    None for anything else (a damaged or unknown file)."""
    for magic, mime in _IMAGE_MAGIC.items():
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None
