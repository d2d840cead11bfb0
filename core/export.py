"""Everything stored about one user (`/export`), as JSON files a platform accepts.

Every read is scoped by the user's id, so the document holds no one else's data: audit
entries about the person name neither the admin who acted nor anyone else they acted
on, and a broadcast's progress cursor (another user's id) is left out. Also left out:
embeddings and full-text vectors (derived from the texts, useless outside onethread),
one-time codes (credentials, valid minutes, just shown in the chat), and operational
state (the rate-limit bucket, turns in progress, this export's own claim). A recording
kept with its message (MEDIA_KEEP_AUDIO) is in the message, base64 (`audio`).

`package` bounds every file by `max_bytes`: the document as plain JSON when it fits,
else gzipped, else in parts (gzipped): part 1 holds everything but the messages and
says how many parts there are, the next parts the messages, oldest first, each saying
its number. Only an item that alone is larger than a file may be (`ExportTooLargeError`)
stops it; then nothing is sent.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import gzip
import json
from datetime import datetime
from enum import Enum
from typing import Any

from core.errors import OnethreadError
from core.services import Services
from core.storage.audit import AuditRepository
from core.storage.broadcasts import BroadcastRepository
from core.storage.documents import DocumentRepository
from core.storage.handled_commands import HandledCommandRepository
from core.storage.memory_store import MemoryStore
from core.storage.message_audio import MessageAudioRepository

EXPORT_VERSION = 2
EXPORT_FILENAME = "onethread-export.json"
_PAGE = 500
# Parts are cut to this share of `max_bytes` by the whole document's compression ratio,
# so that a part compressing a little worse than the whole still fits the first time.
_PART_FILL = 0.85
_BROADCAST_FIELDS = (
    "id",
    "text",
    "platforms",
    "status",
    "sent",
    "failed",
    "total",
    "created_at",
    "started_at",
    "finished_at",
)


class ExportTooLargeError(OnethreadError):
    """One item of the export is larger than a file may be, even compressed."""


@dataclasses.dataclass(frozen=True, slots=True)
class ExportFile:
    filename: str
    data: bytes


def _plain(value: Any) -> Any:
    """Dataclasses, enums and datetimes as JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


async def collect(services: Services, user_id: int, *, now: datetime) -> dict[str, Any]:
    """The export document of `user_id`; messages oldest first, archive included."""
    user = await services.users.get(user_id)
    if user is None:
        raise LookupError(f"user {user_id} does not exist")
    messages = []
    before: int | None = None
    while True:
        page = await services.messages.history(user_id, before_id=before, limit=_PAGE)
        messages.extend(page)
        if len(page) < _PAGE:
            break
        before = page[-1].id
    messages.reverse()
    broadcasts = await BroadcastRepository(services.db).sent_by(user_id)
    audit = await AuditRepository(services.db).about(user_id)
    documents = await _documents(services, user_id)
    return {
        "export_version": EXPORT_VERSION,
        "exported_at": now.isoformat(),
        "user_id": user_id,
        "profile": _plain(user),
        "identities": _plain(await services.users.identities(user_id)),
        "conversation": _plain(await services.users.conversation(user_id)),
        "conversation_context": _plain(await MemoryStore(services.db).context(user_id)),
        "facts": _plain(await services.facts.all(user_id)),
        "broadcasts": [
            {name: _plain(getattr(b, name)) for name in _BROADCAST_FIELDS} for b in broadcasts
        ],
        "commands": _plain(await HandledCommandRepository(services.db).of_user(user_id)),
        "audit": [
            {
                "at": e.at.isoformat(),
                "action": e.action,
                "by_you": e.actor_id == user_id,
                "about_you": e.target_user_id == user_id,
                "details": e.details,
            }
            for e in audit
        ],
        "documents": documents,
        "messages": await _with_audio(services, user_id, _plain(messages)),
    }


async def _with_audio(
    services: Services, user_id: int, messages: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """`messages` (as exported), each with its kept recording, if any, as `audio`:
    its MIME type and bytes in base64. A recording is kept only when its message then
    fits one export file (`core.media.kept_audio`)."""
    kept = {a.message_id: a for a in await MessageAudioRepository(services.db).of_user(user_id)}
    for message in messages:
        audio = kept.get(message["id"])
        if audio is not None:
            message["audio"] = {
                "mime_type": audio.mime_type,
                "data_base64": base64.b64encode(audio.data).decode("ascii"),
                "kept_at": audio.created_at.isoformat(),
            }
    return messages


async def _documents(services: Services, user_id: int) -> list[dict[str, Any]]:
    """The person's documents, each with its text as kept: its chunks in order (they
    overlap a little; the file itself is not kept)."""
    repository = DocumentRepository(services.db)
    chunks: dict[int, list[dict[str, Any]]] = {}
    for chunk in await repository.chunks_of_user(user_id):
        plain = _plain(chunk)
        del plain["document_id"]
        chunks.setdefault(chunk.document_id, []).append(plain)
    return [
        {**_plain(d), "chunks": chunks.get(d.id, [])} for d in await repository.of_user(user_id)
    ]


def _encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=2).encode("utf-8")


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def package(document: dict[str, Any], *, max_bytes: int) -> list[ExportFile]:
    """`document` (from `collect`) as files of at most `max_bytes` each; see the module
    docstring. CPU-bound: run it off the event loop."""
    whole = _encode(document)
    if len(whole) <= max_bytes:
        return [ExportFile(EXPORT_FILENAME, whole)]
    packed = _gzip(whole)
    if len(packed) <= max_bytes:
        return [ExportFile(f"{EXPORT_FILENAME}.gz", packed)]
    head = {k: v for k, v in document.items() if k != "messages"}
    body = {k: head[k] for k in ("export_version", "exported_at", "user_id")}
    budget = max_bytes * _PART_FILL * len(whole) / len(packed)
    chunks: list[list[Any]] = []
    size = 0
    for message in document["messages"]:
        length = len(_encode(message))
        if not chunks or size + length > budget:
            chunks.append([])
            size = 0
        chunks[-1].append(message)
        size += length
    messages: list[bytes] = []
    for chunk in chunks:
        messages += _fitted(body, chunk, len(messages) + 2, max_bytes)
    parts = len(messages) + 1
    first = _gzip(_encode({"part": 1, "parts": parts, **head}))
    if len(first) > max_bytes:
        raise ExportTooLargeError("the export without its messages is too large")
    return [
        ExportFile(f"onethread-export-{number}-of-{parts}.json.gz", data)
        for number, data in enumerate([first, *messages], start=1)
    ]


def _fitted(body: dict[str, Any], chunk: list[Any], number: int, max_bytes: int) -> list[bytes]:
    """`chunk` of messages as parts `number`, `number + 1`, ... of at most `max_bytes`
    compressed: one part, or the halves' parts when it is too large."""
    data = _gzip(_encode({"part": number, **body, "messages": chunk}))
    if len(data) <= max_bytes:
        return [data]
    if len(chunk) == 1:
        raise ExportTooLargeError(f"message {chunk[0]['id']} alone is too large")
    half = len(chunk) // 2
    first = _fitted(body, chunk[:half], number, max_bytes)
    return first + _fitted(body, chunk[half:], number + len(first), max_bytes)


async def export_files(
    services: Services, user_id: int, *, now: datetime, max_bytes: int
) -> list[ExportFile]:
    """`collect`, then `package` in a worker thread (a large export takes a while to
    encode and compress, and the event loop serves everyone else meanwhile)."""
    document = await collect(services, user_id, now=now)
    return await asyncio.to_thread(package, document, max_bytes=max_bytes)
