"""The `long_messages` job: the vectors of long messages' passages, so that recall finds
a long message by the passage a question is about (docs/recall.md "Long messages").

A message's `embedding`, written with it during the turn, stands for all of it: for a
text longer than the local model's 256-token window, the windows' vectors averaged, so
one paragraph of a long reply counts only as much as its share of the whole. This job
cuts each message longer than `LONG_MESSAGE_TOKENS` into passages of at most
`PASSAGE_TOKENS` (as documents are cut, at paragraph and sentence ends, with the local
model's tokenizer) and stores their vectors (`message_passages`, migration 0020).
It runs off the turn: a message is recalled only once it has left the recent window,
long after the job's next run. Each run visits the messages and then the archive by id,
up to `max_rows` of each (after an upgrade, the history is worked through over several
runs); texts of at most 250 characters are never read. A run claims each table for
itself (`MessagePassageRepository.try_claim`) and works on it over the claiming
connection; a table another replica's run holds is skipped (counted as `skipped`).
"""

from __future__ import annotations

import asyncio

from core.documents.chunking import Chunker
from core.documents.parsing import Section
from core.embedding.base import Embedder, Vector, embed_in_batches
from core.jobs.registry import JobOutcome
from core.storage.database import Connection, Database
from core.storage.message_passages import MessagePassageRepository, MessageTable, UnreadMessage

#: Longer than the local model's window: the average of its windows no longer says what
#: each part is about.
LONG_MESSAGE_TOKENS = 256
#: A passage of a long message (measured: docs/recall.md "Long messages").
PASSAGE_TOKENS = 128
PASSAGE_OVERLAP = 24
BATCH_SIZE = 32
MAX_ROWS_PER_RUN = 2000


class LongMessageJob:
    name = "long_messages"

    def __init__(
        self,
        db: Database,
        embedder: Embedder,
        *,
        chunker: Chunker | None = None,
        batch_size: int = BATCH_SIZE,
        max_rows: int = MAX_ROWS_PER_RUN,
    ) -> None:
        self._db = db
        self._repo = MessagePassageRepository(db)
        self._embedder = embedder
        self._chunker = chunker or Chunker.load(max_tokens=PASSAGE_TOKENS, overlap=PASSAGE_OVERLAP)
        self._batch_size = batch_size
        self._max_rows = max_rows

    async def run(self) -> JobOutcome:
        outcome = JobOutcome(counts={"long": 0, "passages": 0, "not_long": 0, "skipped": 0})
        for table in MessageTable:
            async with self._db.connection() as conn:
                if not await self._repo.try_claim(table, conn=conn):
                    outcome.add("skipped")
                    continue
                try:
                    await self._cut_table(table, outcome, conn)
                finally:
                    await asyncio.shield(self._repo.release(table, conn=conn))
        return outcome

    async def _cut_table(self, table: MessageTable, outcome: JobOutcome, conn: Connection) -> None:
        last_id = 0
        seen = 0
        while seen < self._max_rows:
            limit = min(self._batch_size, self._max_rows - seen)
            batch = await self._repo.unread(table, last_id, limit, conn=conn)
            if not batch:
                break
            passages = await self._passages(batch)
            await self._repo.store(table, batch, passages, conn=conn)
            long = sum(bool(p) for p in passages)
            outcome.add("long", long)
            outcome.add("passages", sum(len(p) for p in passages))
            outcome.add("not_long", len(batch) - long)
            last_id = batch[-1].id
            seen += len(batch)

    async def _passages(self, batch: list[UnreadMessage]) -> list[list[Vector]]:
        """Each message's passages' vectors; none for a message that is not long."""
        cut = await asyncio.to_thread(self._cut, [m.content for m in batch])
        texts = [text for passages in cut for text in passages]
        vectors = iter(await embed_in_batches(self._embedder, texts))
        return [[next(vectors) for _ in passages] for passages in cut]

    def _cut(self, contents: list[str]) -> list[list[str]]:
        chunker = self._chunker
        return [
            [chunk.text for chunk in chunker.chunks([Section(text)])]
            if chunker.count(text) > LONG_MESSAGE_TOKENS
            else []
            for text in contents
        ]
