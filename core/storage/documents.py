"""A person's documents and their chunks (`documents`, `document_chunks`, migration 0015).

Every statement is scoped by the person's user id. Where a document may be recalled
follows the rule of messages (docs/security.md, "Between chats"): a reply in the
person's private chat may draw on all their documents, a reply in a group or server
channel only on the documents sent in that same chat.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import asyncpg
import numpy as np

from core.models import Platform, SharedChat
from core.storage.database import Connection, Database

_COLUMNS = (
    "id, user_id, filename, media_type, size_bytes, pages, chunk_count, shared_chat,"
    " platform, chat_id, created_at"
)

# $1 user, $2 query embedding, $3 k, $4 the shared chat ([platform, chat id]) or NULL,
# $5 the query's dimensions. Exact: a person's chunks are found through `document_chunks_user_id`.
_NEAREST = """
SELECT c.id, c.document_id, d.filename, c.page, c.heading, c.content,
       c.embedding <=> $2 AS distance
FROM document_chunks c JOIN documents d ON d.id = c.document_id
WHERE c.user_id = $1 AND d.user_id = $1 AND vector_dims(c.embedding) = $5
  AND ($4::text[] IS NULL OR (d.shared_chat AND ARRAY[d.platform, d.chat_id] = $4::text[]))
ORDER BY distance, c.id
LIMIT $3
"""


class MediaType(StrEnum):
    """The kinds of document kept (the table's CHECK lists the same)."""

    TEXT = "text/plain"
    MARKDOWN = "text/markdown"
    PDF = "application/pdf"


@dataclass(frozen=True, slots=True)
class Document:
    id: int
    user_id: int
    filename: str
    media_type: MediaType
    size_bytes: int
    pages: int | None
    chunk_count: int
    shared_chat: bool
    """Sent in a group or server channel (else in the person's private chat)."""
    platform: Platform
    chat_id: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewChunk:
    position: int
    page: int | None
    heading: str | None
    char_offset: int
    content: str
    embedding: np.ndarray[Any, Any]


@dataclass(frozen=True, slots=True)
class NewDocument:
    filename: str
    media_type: MediaType
    size_bytes: int
    pages: int | None
    sha256: bytes
    platform: Platform
    shared_chat: SharedChat | None
    """The group or server channel it was sent in; None: the person's private chat."""
    private_chat_id: str | None
    """The private chat it was sent in (when `shared_chat` is None), if known."""
    chunks: Sequence[NewChunk]


@dataclass(frozen=True, slots=True)
class ChunkHit:
    """A chunk recalled for a message; `similarity` = 1 - cosine distance."""

    id: int
    document_id: int
    filename: str
    page: int | None
    heading: str | None
    content: str
    similarity: float


@dataclass(frozen=True, slots=True)
class ChunkSource:
    """Where a chunk is from (for `/why`), without its text."""

    id: int
    document_id: int
    filename: str
    page: int | None
    heading: str | None


@dataclass(frozen=True, slots=True)
class StoredChunk:
    """A chunk as `/export` gives it back."""

    document_id: int
    position: int
    page: int | None
    heading: str | None
    char_offset: int
    content: str


@dataclass(frozen=True, slots=True)
class Stored:
    document: Document


@dataclass(frozen=True, slots=True)
class AlreadyKept:
    """The same file (by its bytes) is kept already."""

    document: Document


@dataclass(frozen=True, slots=True)
class TooMany:
    """The person keeps `count` documents, the most allowed."""

    count: int


@dataclass(frozen=True, slots=True)
class MemoryOff:
    """The person has switched memory off: nothing is kept."""


AddResult = Stored | AlreadyKept | TooMany | MemoryOff


def _document(row: asyncpg.Record | Mapping[str, Any]) -> Document:
    return Document(
        id=row["id"],
        user_id=row["user_id"],
        filename=row["filename"],
        media_type=MediaType(row["media_type"]),
        size_bytes=row["size_bytes"],
        pages=row["pages"],
        chunk_count=row["chunk_count"],
        shared_chat=row["shared_chat"],
        platform=Platform(row["platform"]),
        chat_id=row["chat_id"],
        created_at=row["created_at"],
    )


class DocumentRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self, user_id: int, new: NewDocument, *, max_documents: int, conn: Connection | None = None
    ) -> AddResult:
        """Keep `new` with its chunks, unless memory is off, the same file is kept
        already or the person keeps `max_documents`. The person's conversation row is
        locked first (as a chat turn and `/forget all` lock it), so two documents sent
        at once are counted one after the other."""
        if not new.chunks:
            raise ValueError("a document needs at least one chunk")
        chat = new.shared_chat
        async with self._db.transaction(conn) as c:
            off_since = await c.fetchrow(
                "SELECT memory_off_since FROM conversations WHERE user_id = $1 FOR UPDATE",
                user_id,
            )
            if off_since is None:
                raise LookupError(f"user {user_id} does not exist")
            if off_since["memory_off_since"] is not None:
                return MemoryOff()
            # The same file is kept once per place (migration 0018): once for the
            # person's private chats, once per shared chat.
            row = await c.fetchrow(
                f"SELECT {_COLUMNS}, (SELECT count(*) FROM documents WHERE user_id = $1) AS kept"
                " FROM (SELECT 1) AS one LEFT JOIN documents"
                " ON user_id = $1 AND sha256 = $2 AND shared_chat = $3"
                " AND (NOT $3 OR (platform = $4 AND chat_id = $5))",
                user_id,
                new.sha256,
                chat is not None,
                None if chat is None else chat.platform.value,
                None if chat is None else chat.chat_id,
            )
            assert row is not None
            if row["id"] is not None:
                return AlreadyKept(_document(row))
            if row["kept"] >= max_documents:
                return TooMany(int(row["kept"]))
            stored = await c.fetchrow(
                "INSERT INTO documents (user_id, filename, media_type, size_bytes, pages,"
                " chunk_count, sha256, shared_chat, platform, chat_id)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                f" RETURNING {_COLUMNS}",
                user_id,
                new.filename,
                new.media_type.value,
                new.size_bytes,
                new.pages,
                len(new.chunks),
                new.sha256,
                chat is not None,
                new.platform.value,
                new.private_chat_id if chat is None else chat.chat_id,
            )
            assert stored is not None
            await c.executemany(
                "INSERT INTO document_chunks (document_id, user_id, position, page, heading,"
                " char_offset, content, embedding) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                [
                    (
                        stored["id"],
                        user_id,
                        chunk.position,
                        chunk.page,
                        chunk.heading,
                        chunk.char_offset,
                        chunk.content,
                        np.asarray(chunk.embedding, dtype=np.float16),
                    )
                    for chunk in new.chunks
                ],
            )
        return Stored(_document(stored))

    async def of_user(self, user_id: int, *, conn: Connection | None = None) -> list[Document]:
        """The person's documents, oldest first (the order `/documents` numbers them)."""
        async with self._db.connection(conn) as c:
            rows = await c.fetch(
                f"SELECT {_COLUMNS} FROM documents WHERE user_id = $1 ORDER BY id", user_id
            )
        return [_document(r) for r in rows]

    async def delete(
        self, user_id: int, document_id: int, *, conn: Connection | None = None
    ) -> Document | None:
        """Delete one document and its chunks; None when it is not (or no longer) there."""
        async with self._db.connection(conn) as c:
            row = await c.fetchrow(
                f"DELETE FROM documents WHERE id = $1 AND user_id = $2 RETURNING {_COLUMNS}",
                document_id,
                user_id,
            )
        return None if row is None else _document(row)

    async def delete_all(self, user_id: int, *, conn: Connection | None = None) -> int:
        """Delete every document of the person; how many there were."""
        async with self._db.connection(conn) as c:
            status = await c.execute("DELETE FROM documents WHERE user_id = $1", user_id)
        return int(status.split()[-1])

    async def nearest(
        self,
        user_id: int,
        embedding: np.ndarray[Any, Any],
        k: int,
        *,
        shared_chat: SharedChat | None,
        conn: Connection | None = None,
    ) -> list[ChunkHit]:
        """The `k` chunks of the person's documents nearest to `embedding`, most similar
        first: of every document for a reply in the private chat (`shared_chat` None),
        of the documents sent in `shared_chat` for a reply there. Only chunks of the
        query's dimension (a re-embedding in progress leaves out the rest)."""
        chat = None if shared_chat is None else shared_chat.as_argument()
        async with self._db.connection(conn) as c:
            rows = await c.fetch(
                _NEAREST,
                user_id,
                np.asarray(embedding, dtype=np.float16),
                k,
                chat,
                len(embedding),
            )
        return [
            ChunkHit(
                id=r["id"],
                document_id=r["document_id"],
                filename=r["filename"],
                page=r["page"],
                heading=r["heading"],
                content=r["content"],
                similarity=1.0 - float(r["distance"]),
            )
            for r in rows
        ]

    async def sources(
        self,
        user_id: int,
        chunk_ids: Collection[int],
        *,
        shared_chat: SharedChat | None,
        conn: Connection | None = None,
    ) -> list[ChunkSource]:
        """Where the given chunks of the person's are from, as far as they are still kept
        and may be named in `shared_chat` (None: the private chat, all of them)."""
        chat = None if shared_chat is None else shared_chat.as_argument()
        async with self._db.connection(conn) as c:
            rows = await c.fetch(
                "SELECT c.id, c.document_id, d.filename, c.page, c.heading"
                " FROM document_chunks c JOIN documents d ON d.id = c.document_id"
                " WHERE c.user_id = $1 AND c.id = ANY($2::bigint[])"
                " AND ($3::text[] IS NULL"
                "   OR (d.shared_chat AND ARRAY[d.platform, d.chat_id] = $3::text[]))"
                " ORDER BY array_position($2::bigint[], c.id)",
                user_id,
                list(chunk_ids),
                chat,
            )
        return [
            ChunkSource(r["id"], r["document_id"], r["filename"], r["page"], r["heading"])
            for r in rows
        ]

    async def chunks_of_user(
        self, user_id: int, *, conn: Connection | None = None
    ) -> list[StoredChunk]:
        """Every chunk of the person's documents, by document and position (`/export`)."""
        async with self._db.connection(conn) as c:
            rows = await c.fetch(
                "SELECT document_id, position, page, heading, char_offset, content"
                " FROM document_chunks WHERE user_id = $1 ORDER BY document_id, position",
                user_id,
            )
        return [
            StoredChunk(
                r["document_id"],
                r["position"],
                r["page"],
                r["heading"],
                r["char_offset"],
                r["content"],
            )
            for r in rows
        ]

    async def move(self, keep_id: int, merge_id: int, *, conn: Connection) -> int:
        """Linking (`core.storage.merge`): the merged user's documents become the kept
        user's; one the kept user has already (same file, same place) is dropped. How
        many moved. Call inside the merge's transaction, with both users locked."""
        await conn.execute(
            "DELETE FROM documents m WHERE m.user_id = $2 AND EXISTS"
            " (SELECT FROM documents k WHERE k.user_id = $1 AND k.sha256 = m.sha256"
            " AND k.shared_chat = m.shared_chat"
            " AND (NOT k.shared_chat OR (k.platform = m.platform AND k.chat_id = m.chat_id)))",
            keep_id,
            merge_id,
        )
        await conn.execute(
            "UPDATE document_chunks SET user_id = $1 WHERE user_id = $2", keep_id, merge_id
        )
        status = await conn.execute(
            "UPDATE documents SET user_id = $1 WHERE user_id = $2", keep_id, merge_id
        )
        return int(status.split()[-1])
