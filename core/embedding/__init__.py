"""Text embeddings for recall: the :class:`Embedder` interface and its two providers.

The providers live in their own modules so that importing this package loads
neither onnxruntime nor openai: ``core.embedding.local.LocalEmbedder`` (the
default, offline) and ``core.embedding.openai_embedder.OpenAIEmbedder``.
"""

from core.embedding.base import Embedder, EmbeddingError, EmbeddingUnavailableError, Vector

__all__ = ["Embedder", "EmbeddingError", "EmbeddingUnavailableError", "Vector"]
