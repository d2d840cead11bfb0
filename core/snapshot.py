"""What went into a reply: its context snapshot, written by the assembler and the engine,
stored with the reply (`messages.context_snapshot`, JSON), and read back by `/why`.

Ids, scores, counts and timings only, never the texts themselves: a snapshot can be
shown to an admin without quoting anyone's conversation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class RecalledRef:
    """One recalled item that made it into the prompt."""

    source: str
    """"facts", "messages" or "archive"."""
    id: int
    score: float
    similarity: float | None
    """Cosine similarity when the vector list found it; None for a keyword-only hit."""


@dataclass(frozen=True, slots=True)
class AttachmentUse:
    """An attachment of the answered message, and how the prompt used it."""

    message_id: int
    kind: str
    """"voice", "photo", ... (`core.models.MessageType`)."""
    used_as: str
    """"transcript" (a voice note's text), "image" (sent to a vision model),
    "description" (the photo's description made before, its file no longer to be had),
    "caption" (only the photo's caption: the model has no vision) or "document" (a
    document kept, its name and caption the message's text; its passages are recalled
    as `documents`)."""


@dataclass(frozen=True, slots=True)
class DocumentRef:
    """One passage (chunk) of the person's documents that made it into the prompt."""

    chunk_id: int
    document_id: int
    similarity: float


@dataclass(frozen=True, slots=True)
class ContextSnapshot:
    summary_version: int
    fact_ids: tuple[int, ...]
    recalled: tuple[RecalledRef, ...]
    window_ids: tuple[int, ...]
    shared_chat: bool
    tokens: Mapping[str, int]
    """Tokens per prompt section, with the prompt's total (`prompt`) and `budget`."""
    model: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    timings_ms: Mapping[str, int] = field(default_factory=dict)
    """How long each stage of the turn took (embed, store, assemble, llm, record...)."""
    attachments: tuple[AttachmentUse, ...] = ()
    """The attachments of the answered message that the prompt holds, and how."""
    documents: tuple[DocumentRef, ...] = ()

    def answered(
        self, *, model: str, tokens_in: int, tokens_out: int, timings_ms: Mapping[str, int]
    ) -> ContextSnapshot:
        """This snapshot with what the model's answer added. `timings_ms` is kept as
        given, not copied: the turn adds its record stage after the snapshot is stored."""
        return dataclasses.replace(
            self,
            model=model,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            timings_ms=timings_ms,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "summary_version": self.summary_version,
            "fact_ids": list(self.fact_ids),
            "recalled": [
                {
                    "source": r.source,
                    "id": r.id,
                    "score": round(r.score, 6),
                    "similarity": None if r.similarity is None else round(r.similarity, 4),
                }
                for r in self.recalled
            ],
            "window_ids": list(self.window_ids),
            "shared_chat": self.shared_chat,
            "tokens": dict(self.tokens),
            "model": self.model,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "timings_ms": dict(self.timings_ms),
            "attachments": [
                {"message_id": a.message_id, "kind": a.kind, "used_as": a.used_as}
                for a in self.attachments
            ],
            "documents": [
                {
                    "chunk_id": d.chunk_id,
                    "document_id": d.document_id,
                    "similarity": round(d.similarity, 4),
                }
                for d in self.documents
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ContextSnapshot:
        """A stored snapshot; keys missing from older rows read as empty."""
        return cls(
            summary_version=int(data.get("summary_version", 0)),
            fact_ids=tuple(int(i) for i in data.get("fact_ids", ())),
            recalled=tuple(
                RecalledRef(
                    source=str(r.get("source", "")),
                    id=int(r.get("id", 0)),
                    score=float(r.get("score", 0.0)),
                    similarity=None if r.get("similarity") is None else float(r["similarity"]),
                )
                for r in data.get("recalled", ())
                if isinstance(r, Mapping)
            ),
            window_ids=tuple(int(i) for i in data.get("window_ids", ())),
            shared_chat=bool(data.get("shared_chat", False)),
            tokens={str(k): int(v) for k, v in dict(data.get("tokens", {})).items()},
            model=data.get("model"),
            tokens_in=data.get("tokens_in"),
            tokens_out=data.get("tokens_out"),
            timings_ms={str(k): int(v) for k, v in dict(data.get("timings_ms", {})).items()},
            attachments=tuple(
                AttachmentUse(
                    message_id=int(a.get("message_id", 0)),
                    kind=str(a.get("kind", "")),
                    used_as=str(a.get("used_as", "")),
                )
                for a in data.get("attachments", ())
                if isinstance(a, Mapping)
            ),
            documents=tuple(
                DocumentRef(
                    chunk_id=int(d.get("chunk_id", 0)),
                    document_id=int(d.get("document_id", 0)),
                    similarity=float(d.get("similarity", 0.0)),
                )
                for d in data.get("documents", ())
                if isinstance(d, Mapping)
            ),
        )
