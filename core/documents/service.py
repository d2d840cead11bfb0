"""A person's documents: taking one in (`Documents.add`), and recalling it (`recall`).

`add` is the one entry point for a document a person sends: it checks the limits
(LIMITS_DOCUMENT_MAX_BYTES, _DOCUMENTS_PER_PERSON, _DOCUMENT_MAX_PAGES,
_DOCUMENT_MAX_CHUNKS), reads the text (`core.documents.parsing`), splits it into chunks
for the embedder (`core.documents.chunking`), embeds them and keeps them
(`core.storage.documents`), and answers what the person should be told: kept, or
refused and why. Nothing is kept unless all of it is. The file itself is not kept.

Where a document is recalled (docs/security.md, "Between chats"): one sent in the
person's private chat only in their private chat; one sent in a group or server
channel in that chat and in the private chat, never in another shared chat. With
memory off nothing is kept and nothing recalled.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.documents import texts
from core.documents.chunking import Chunker, TextChunk
from core.documents.parsing import (
    ParsedDocument,
    Problem,
    UnreadableError,
    media_type_of,
    parse,
)
from core.embedding.base import EmbeddingError, embed_in_batches
from core.i18n import Notice
from core.models import Platform, SharedChat
from core.services import Services
from core.storage.documents import (
    AlreadyKept,
    ChunkHit,
    Document,
    DocumentRepository,
    MediaType,
    MemoryOff,
    NewChunk,
    NewDocument,
    Stored,
    TooMany,
)

logger = logging.getLogger(__name__)

# Chunks recalled per reply, and how similar (cosine) a chunk must be to the message to
# be recalled at all: a document should come up when the message is about it, not in
# every prompt. 0.3 is where all-MiniLM-L6-v2 separates a passage on the message's
# subject from unrelated ones (tests/core/documents/test_recall.py).
RECALL_K = 4
MIN_SIMILARITY = 0.3
FILENAME_CHARS = 100

_REFUSALS = {
    Problem.UNSUPPORTED: texts.UNSUPPORTED,
    Problem.CORRUPT: texts.CORRUPT,
    Problem.ENCRYPTED: texts.ENCRYPTED,
    Problem.NOT_TEXT: texts.NOT_TEXT,
    Problem.EMPTY: texts.EMPTY,
}


@dataclass(frozen=True, slots=True)
class DocumentAdded:
    document: Document
    answer: Notice
    new: bool
    """False when the same file was kept already (and nothing new was)."""


@dataclass(frozen=True, slots=True)
class DocumentRefused:
    reason: str
    """Why, for logs and metrics: a `Problem`, or too_large, too_many, too_long,
    memory_off, unavailable."""
    answer: Notice


class Documents:
    """See the module docstring. `chunker`: by default the embedder's tokenizer, loaded
    on the first document (once per process)."""

    def __init__(self, services: Services, *, chunker: Chunker | None = None) -> None:
        self._services = services
        self._repo = DocumentRepository(services.db)
        self._chunker = chunker

    def refuse_before_download(
        self, filename: str, media_type: str | None, size: int | None
    ) -> DocumentRefused | None:
        """What the platform says of a file (its name, type and size) is enough to refuse
        it: the adapter then need not download it. None: download it and `add` it."""
        name = clean_filename(filename)
        if media_type_of(name, media_type) is None:
            return _refused(Problem.UNSUPPORTED.value, texts.UNSUPPORTED, name)
        limit = self._services.settings.limits.document_max_bytes
        if size is not None and size > limit:
            answer = Notice.gettext(texts.TOO_LARGE, size=file_size(size), limit=file_size(limit))
            return DocumentRefused("too_large", answer)
        return None

    async def add(
        self,
        user_id: int,
        *,
        filename: str,
        media_type: str | None,
        data: bytes,
        platform: Platform,
        chat_id: str,
        shared_chat: bool,
    ) -> DocumentAdded | DocumentRefused:
        """Keep the document a person sent (`data`, the file's bytes; `media_type` as the
        platform gave it) in the chat `chat_id` (`shared_chat`: a group or server
        channel), or refuse it. Raises only what the database raises
        (`StorageUnavailable`: nothing was kept, deliver it again)."""
        name = clean_filename(filename)
        refused = self.refuse_before_download(name, media_type, len(data))
        if refused is not None:
            return refused
        kind = media_type_of(name, media_type)
        assert kind is not None
        limits = self._services.settings.limits
        try:
            parsed, chunks = await asyncio.to_thread(
                self._read, data, kind, limits.document_max_pages
            )
        except UnreadableError as exc:
            logger.info("user %s: document refused: %s", user_id, exc)
            if exc.problem is Problem.TOO_MANY_PAGES:
                answer = Notice.gettext(
                    texts.TOO_MANY_PAGES,
                    filename=name,
                    pages=exc.pages,
                    limit=limits.document_max_pages,
                )
                return DocumentRefused(exc.problem.value, answer)
            return _refused(exc.problem.value, _REFUSALS[exc.problem], name)
        if len(chunks) > limits.document_max_chunks:
            answer = Notice.gettext(
                texts.TOO_LONG, filename=name, count=len(chunks), limit=limits.document_max_chunks
            )
            return DocumentRefused("too_long", answer)
        try:
            vectors = await embed_in_batches(self._services.embedder, [c.text for c in chunks])
        except EmbeddingError as exc:
            logger.warning("user %s: document not embedded: %s", user_id, exc)
            return _refused("unavailable", texts.UNAVAILABLE, name)
        new = NewDocument(
            filename=name,
            media_type=kind,
            size_bytes=len(data),
            pages=parsed.pages,
            sha256=hashlib.sha256(data).digest(),
            platform=platform,
            shared_chat=SharedChat(platform, chat_id) if shared_chat else None,
            private_chat_id=None if shared_chat else chat_id,
            chunks=[
                NewChunk(n, c.page, c.heading, c.offset, c.text, v)
                for n, (c, v) in enumerate(zip(chunks, vectors, strict=True))
            ],
        )
        result = await self._repo.add(user_id, new, max_documents=limits.documents_per_person)
        if isinstance(result, MemoryOff):
            return _refused("memory_off", texts.MEMORY_OFF, name)
        if isinstance(result, TooMany):
            return DocumentRefused("too_many", texts.too_many(result.count))
        if isinstance(result, AlreadyKept):
            kept = result.document
            answer = Notice.gettext(texts.ALREADY_KEPT, filename=kept.filename, date=day(kept))
            return DocumentAdded(kept, answer, new=False)
        assert isinstance(result, Stored)
        document = result.document
        logger.info(
            "user %s: kept document %s (%s, %s bytes, %s chunks)",
            user_id,
            document.id,
            document.media_type.value,
            document.size_bytes,
            document.chunk_count,
        )
        template = texts.KEPT_IN_SHARED_CHAT if shared_chat else texts.KEPT
        answer = Notice.gettext(template, filename=name, parts=describe_parts(document))
        return DocumentAdded(document, answer, new=True)

    async def recall(
        self, user_id: int, embedding: np.ndarray[Any, Any], *, shared_chat: SharedChat | None
    ) -> list[ChunkHit]:
        """The chunks of the person's documents about what `embedding` is about (at most
        `RECALL_K`, at least `MIN_SIMILARITY`), most similar first, of the documents a
        reply in `shared_chat` may draw on (None: the private chat). A file kept for
        several places (migration 0018) gives each passage once."""
        hits = await self._repo.nearest(user_id, embedding, RECALL_K, shared_chat=shared_chat)
        seen: set[str] = set()
        found = []
        for hit in hits:
            if hit.similarity >= MIN_SIMILARITY and hit.content not in seen:
                seen.add(hit.content)
                found.append(hit)
        return found

    def _read(
        self, data: bytes, kind: MediaType, max_pages: int
    ) -> tuple[ParsedDocument, list[TextChunk]]:
        parsed = parse(data, kind, max_pages=max_pages)
        chunks = (self._chunker or default_chunker()).chunks(parsed.sections)
        if not chunks:
            raise UnreadableError(Problem.EMPTY, "no words")
        return parsed, chunks


@functools.cache
def default_chunker() -> Chunker:
    return Chunker.load()


def _refused(reason: str, template: str, filename: str) -> DocumentRefused:
    return DocumentRefused(reason, Notice.gettext(template, filename=filename))


def clean_filename(filename: str) -> str:
    """A file name fit to show and to put into a prompt: its last path part, on one
    line, without control characters, at most `FILENAME_CHARS` long."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    printable = "".join(ch if ch.isprintable() else " " for ch in base)
    flat = " ".join(printable.split()) or "document"
    if len(flat) <= FILENAME_CHARS:
        return flat
    stem, dot, extension = flat.rpartition(".")
    if dot and len(extension) <= 10:
        return stem[: FILENAME_CHARS - len(extension) - 2] + "…." + extension
    return flat[: FILENAME_CHARS - 1] + "…"


def file_size(size: int) -> str:
    """`512 B`, `12 KB`, `3.4 MB`: sizes as people read them, in unit symbols that need
    no translation."""
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size / 2**20:.1f} MB".replace(".0 MB", " MB")


def describe_parts(document: Document) -> Notice:
    """`3 pages, 7 passages` / `7 passages`."""
    return texts.parts(document.pages, document.chunk_count)


def day(document: Document) -> str:
    return f"{document.created_at:%Y-%m-%d}"
