"""A model that runs on one worker thread of its own: the local embedders' shared life
cycle. The model loads once, on first use, under a lock; each batch runs on the worker
thread, so the event loop never blocks on inference; closing releases the thread (a
batch still running finishes in the background)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, Self, TypeVar

from core.embedding.base import EmbeddingError

M = TypeVar("M")
R = TypeVar("R")


class ModelWorker(Generic[M]):
    """Loads a model with `load` (on the worker thread; raises `EmbeddingError`) and
    runs calls on it. `name` names the thread and the errors ("the local embedder")."""

    def __init__(self, name: str, load: Callable[[], M]) -> None:
        self._name = name
        self._load = load
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._lock = asyncio.Lock()
        self._model: M | None = None
        self._closed = False

    async def load(self) -> M:
        """The model, loaded unless it was; raises `EmbeddingError` once closed."""
        async with self._lock:
            if self._closed:
                raise EmbeddingError(f"the {self._name} is closed")
            if self._model is None:
                loop = asyncio.get_running_loop()
                self._model = await loop.run_in_executor(self._executor, self._load)
            return self._model

    async def run(self, call: Callable[[M, list[str]], R], texts: list[str]) -> R:
        """`call(model, texts)` on the worker thread."""
        model = await self.load()
        if self._closed:  # closed while the load was awaited
            raise EmbeddingError(f"the {self._name} is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, call, model, texts)

    def close(self) -> None:
        self._closed = True
        self._model = None
        self._executor.shutdown(wait=False, cancel_futures=True)


class WorkerEmbedder:
    """An embedder whose model runs on a `ModelWorker`: loading, closing and
    ``async with`` (which loads, and closes on the way out)."""

    _worker: ModelWorker[Any]

    async def __aenter__(self) -> Self:
        try:
            await self.load()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def load(self) -> None:
        """Load the model unless loaded; raises `EmbeddingError`."""
        await self._worker.load()

    async def aclose(self) -> None:
        """Release the worker thread; a batch still running finishes in the background."""
        self._worker.close()
