"""The embedding interface that recall and storage depend on.

Contract for every implementation: ``embed`` returns one float32 vector per
input text, in input order, each L2-normalised (so cosine similarity is a plain
dot product, higher = more similar), all of length ``dimensions``. Vectors from
different ``model_name``s live in different spaces and must never be compared.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from core.errors import OnethreadError

logger = logging.getLogger(__name__)

Vector = npt.NDArray[np.float32]


class EmbeddingError(OnethreadError):
    """Texts could not be embedded: model missing or corrupt, provider refused, bad answer."""


class EmbeddingUnavailableError(EmbeddingError):
    """A transient failure (network, rate limit, server error): retrying later may work."""


class Embedder(Protocol):
    """Turns texts into unit vectors; see the module docstring for the contract."""

    model_name: str
    dimensions: int

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        """One L2-normalised float32 vector per text, same order; ``[]`` for no texts."""
        ...


def l2_normalise(matrix: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    """Row-wise L2 normalisation; an all-zero row stays zero instead of becoming NaN."""
    rows = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    normalised: npt.NDArray[np.float32] = (rows / np.maximum(norms, 1e-12)).astype(np.float32)
    return normalised


#: Texts per call when a job or a document embeds many: the local embedder has one worker
#: thread, and chat messages queue behind a call, so one must not take it for seconds.
BACKGROUND_BATCH = 16


async def embed_in_batches(embedder: Embedder, texts: Sequence[str]) -> list[Vector]:
    """Many texts' vectors, `BACKGROUND_BATCH` at a time, so that a chat turn's embedding
    waits for one small call at most."""
    vectors: list[Vector] = []
    for start in range(0, len(texts), BACKGROUND_BATCH):
        vectors += await embedder.embed(texts[start : start + BACKGROUND_BATCH])
    return vectors


async def embed_or_none(embedder: Embedder, text: str) -> Vector | None:
    """The text's embedding, or None: a failing embedder must not lose a message."""
    try:
        vectors = await embedder.embed([text])
    except EmbeddingError as exc:
        logger.warning("embedding failed, storing the text without one: %s", exc)
        return None
    return vectors[0]
