"""Embeddings from the OpenAI API (or any server that speaks its ``/embeddings``).

Opt-in (``EMBEDDING_PROVIDER=openai``): texts leave the machine. The client is
injected, so its base URL, timeout, retries and key are configured in one
place (``bot/``), and tests point it at a local fake server.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import openai

from core.embedding.base import EmbeddingError, EmbeddingUnavailableError, Vector, l2_normalise

logger = logging.getLogger(__name__)

DEFAULT_MAX_BATCH = 256
"""Inputs per request; the API accepts up to 2048, but smaller requests fail and retry cheaper."""


class OpenAIEmbedder:
    """Satisfies :class:`core.embedding.base.Embedder` through ``client.embeddings.create``.

    ``send_dimensions`` asks the API to shorten the vectors (text-embedding-3
    models only); either way every returned vector must have ``dimensions``
    entries, or :class:`EmbeddingError` is raised. Vectors are re-normalised
    here because shortened ones are not unit length and compatible servers
    may not normalise at all.
    """

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        *,
        model_name: str,
        dimensions: int,
        send_dimensions: bool = False,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        if dimensions < 1:
            raise ValueError("dimensions must be at least 1")
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._client = client
        self.model_name = model_name
        self.dimensions = dimensions
        self._send_dimensions = send_dimensions
        self._max_batch = max_batch

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        vectors: list[Vector] = []
        for start in range(0, len(texts), self._max_batch):
            vectors.extend(await self._embed_batch(list(texts[start : start + self._max_batch])))
        return vectors

    async def _embed_batch(self, texts: list[str]) -> list[Vector]:
        try:
            if self._send_dimensions:
                response = await self._client.embeddings.create(
                    model=self.model_name,
                    input=texts,
                    dimensions=self.dimensions,
                    encoding_format="float",
                )
            else:
                response = await self._client.embeddings.create(
                    model=self.model_name, input=texts, encoding_format="float"
                )
        except (
            openai.APIConnectionError,
            openai.RateLimitError,
            openai.InternalServerError,
        ) as exc:
            # Messages of openai's exceptions never contain the API key; we still
            # only pass on the class and status, not the response body.
            raise EmbeddingUnavailableError(_describe(exc)) from exc
        except openai.OpenAIError as exc:
            raise EmbeddingError(_describe(exc)) from exc

        items = sorted(response.data, key=lambda item: item.index)
        if [item.index for item in items] != list(range(len(texts))):
            raise EmbeddingError(
                f"{self.model_name} returned {len(items)} embeddings for {len(texts)} texts"
            )
        matrix = np.asarray([item.embedding for item in items], dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[1] != self.dimensions:
            got = matrix.shape[1] if matrix.ndim == 2 else "ragged"
            raise EmbeddingError(
                f"{self.model_name} returned vectors of {got} dimensions, "
                f"expected {self.dimensions} (EMBEDDING_DIMENSIONS)"
            )
        if not np.isfinite(matrix).all():
            raise EmbeddingError(f"{self.model_name} returned non-finite values")
        logger.debug("embedded %s texts with %s", len(texts), self.model_name)
        return list(l2_normalise(matrix))


def _describe(exc: openai.OpenAIError) -> str:
    status = getattr(exc, "status_code", None)
    suffix = f" (HTTP {status})" if status is not None else ""
    return f"the embeddings API failed: {type(exc).__name__}{suffix}"
