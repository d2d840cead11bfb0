"""Re-embedding every stored fact and message with the configured embedder.

Needed after a change of embedding model or dimension (docs/jobs.md has the whole
procedure, including the HNSW indexes of a new dimension). Visits `facts`, `messages`,
`document_chunks` and `messages_archive` in that order, each by id in batches; every
batch is written in one transaction together with the table's cursor
(`reembed_progress`), so an interrupted run resumes after the last batch written. The
cursor belongs to one model
and dimension: a run with another embedder starts that table over, a run with the same
embedder after a completed pass has nothing to do (rows written since then were
embedded by the service with the configured embedder); `restart=True` forces a new pass.

The service keeps answering meanwhile: batches are small, each transaction touches
only the batch's rows, and no lock is held between batches. Until a table is done,
recall sees only rows of the configured dimension (docs/database.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from core.embedding.base import Embedder
from core.jobs.registry import JobOutcome
from core.services import Services
from core.storage.archive_store import EmbeddedTable, ReembedRepository

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 128
PROGRESS_EVERY_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class ReembedProgress:
    """How far one table is: `done` of `total` rows in this run (`total` counted when the
    table's pass started or resumed)."""

    source: EmbeddedTable
    done: int
    total: int


Progress = Callable[[ReembedProgress], None]


class Reembedder:
    """See the module docstring. `progress` is called after every batch (and once at
    the start of each table) — a progress bar, typically."""

    name = "reembed"

    def __init__(
        self,
        services: Services,
        *,
        embedder: Embedder | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        restart: bool = False,
        progress: Progress | None = None,
    ) -> None:
        self._services = services
        self._embedder = embedder or services.embedder
        self._batch_size = batch_size
        self._restart = restart
        self._progress = progress
        self._repo = ReembedRepository(services.db)

    async def remaining(self) -> dict[EmbeddedTable, int]:
        """Rows each table still has to re-embed for the configured embedder."""
        result = {}
        for source in EmbeddedTable:
            cursor = await self._repo.cursor(source)
            if cursor is not None and self._same_model(cursor.model, cursor.dimensions):
                if cursor.completed_at is not None:
                    result[source] = 0
                    continue
                result[source] = await self._repo.remaining(source, cursor.last_id)
            else:
                result[source] = await self._repo.remaining(source, 0)
        return result

    async def run(self) -> JobOutcome:
        """Re-embed what is left (everything with `restart`); rows written, per table."""
        outcome = JobOutcome(counts={source.value: 0 for source in EmbeddedTable})
        for source in EmbeddedTable:
            outcome.add(source.value, await self._table(source, restart=self._restart))
        return outcome

    def _same_model(self, model: str, dimensions: int) -> bool:
        return model == self._embedder.model_name and dimensions == self._embedder.dimensions

    async def _table(self, source: EmbeddedTable, *, restart: bool) -> int:
        clock = self._services.clock
        embedder = self._embedder
        cursor = await self._repo.cursor(source)
        if restart or cursor is None or not self._same_model(cursor.model, cursor.dimensions):
            await self._repo.reset(source, embedder.model_name, embedder.dimensions, at=clock())
            last_id = 0
        elif cursor.completed_at is not None:
            logger.info("reembed: %s already done with %s", source.value, embedder.model_name)
            return 0
        else:
            last_id = cursor.last_id
            logger.info("reembed: resuming %s after id %s", source.value, last_id)
        total = await self._repo.remaining(source, last_id)
        done = 0
        self._report(ReembedProgress(source, done, total))
        started = logged = time.monotonic()
        while rows := await self._repo.rows_after(source, last_id, self._batch_size):
            vectors = await embedder.embed([r.content for r in rows])
            async with self._services.db.transaction() as tx:
                await self._repo.store(source, rows, vectors, at=clock(), conn=tx)
            last_id = rows[-1].id
            done += len(rows)
            self._report(ReembedProgress(source, done, max(total, done)))
            if time.monotonic() - logged >= PROGRESS_EVERY_SECONDS:
                logged = time.monotonic()
                logger.info("reembed: %s %s of %s rows", source.value, done, total)
        await self._repo.complete(source, at=clock())
        logger.info(
            "reembed: %s done, %s rows in %.1f s", source.value, done, time.monotonic() - started
        )
        return done

    def _report(self, progress: ReembedProgress) -> None:
        if self._progress is not None:
            self._progress(progress)
