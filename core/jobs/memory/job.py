"""The memory job: turn each user's new messages into facts, a summary and insights.

Per run, at most `MEMORY_USERS_PER_RUN` users with messages past their read position
(`conversation_context.last_read_message_id`) are processed, each with at most
`MEMORY_MESSAGES_PER_USER` messages (fewer if their text would make the prompt too
long). For one user:

1. claim: a session advisory lock on (memory job, user), tried, not waited for; a
   user claimed by another runner (replica, CLI) is skipped, so no two runners ever
   process the same user's batch;
2. read and think, outside any transaction: extraction (LLM), embeddings of the
   candidate facts, reconciliation against stored facts (recall, maybe LLM);
3. apply, in one short transaction: lock the read position row, check that it has
   not moved since step 2 (else nothing is written), write the fact changes, the
   bounded summary (version bumped), the insights and the new read position.

Nothing is learned from a message that is not `remembered` (said while memory was off,
a forgotten fact's source, or a reply to one of those), nor from anything while the
person has memory off (`/memory off`): such messages are passed over (the read
position moves past them, nothing else changes, no model call), so they are never
learned from later either.

A crash or error anywhere leaves the user exactly as before (the transaction is rolled
back, the read position did not move); the next run reads the same messages again.
The engine's per-user lock is never taken: the LLM calls run while the user keeps
chatting, and the only rows the apply step shares with a conversation turn are the
user's `conversations` row (counters), locked for milliseconds. `/forget` waits for
the claim (`MemoryStore.hold`), and `/forget all` moves the read position, so a run
never brings back what was forgotten.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from core.jobs.memory.extraction import extract, format_message
from core.jobs.memory.reconciliation import (
    Add,
    FactChange,
    Invalidate,
    Reconciler,
    Restated,
    Update,
)
from core.jobs.memory.summary import bound_summary
from core.jobs.registry import JobOutcome, describe_error
from core.services import Services
from core.storage.database import Connection
from core.storage.memory_store import MemoryState, MemoryStore, MemoryWrite, UnreadMessage

logger = logging.getLogger(__name__)

ApplyHook = Callable[[int, Connection], Awaitable[None]]
"""Called with (user id, connection) inside the apply transaction, after every write and
before the commit. For tests that need a crash at the worst moment; raising rolls the
user's whole update back."""

PROGRESS_EVERY_SECONDS = 30.0


@dataclass
class _Budget:
    left: int


class MemoryJob:
    """See the module docstring. `concurrency` users are processed at a time (1 when the
    database is a single connection), each holding one pooled connection meanwhile."""

    name = "memory"

    def __init__(
        self,
        services: Services,
        *,
        concurrency: int = 4,
        max_prompt_chars: int = 48_000,
        reconciler: Reconciler | None = None,
        before_commit: ApplyHook | None = None,
    ) -> None:
        self._services = services
        self._settings = services.settings.memory
        self._store = MemoryStore(services.db)
        self._concurrency = concurrency if services.db.pool is not None else 1
        self._max_prompt_chars = max_prompt_chars
        self._reconciler = reconciler or Reconciler(services.llm, services.recall)
        self._before_commit = before_commit

    async def run(self) -> JobOutcome:
        outcome = JobOutcome(
            counts={
                "users": 0,
                "messages": 0,
                "facts_added": 0,
                "facts_updated": 0,
                "facts_invalidated": 0,
                "facts_restated": 0,
                "passed_over": 0,
                "skipped": 0,
                "failed": 0,
            }
        )
        limit = self._settings.users_per_run
        # More candidates than the limit: some may be claimed by another runner.
        queue = deque(await self._store.users_with_unread(limit * 2))
        budget = _Budget(limit)
        started = time.monotonic()
        progress = _Progress(len(queue), started)
        workers = [
            self._worker(queue, budget, outcome, progress)
            for _ in range(min(self._concurrency, len(queue)))
        ]
        await asyncio.gather(*workers)
        logger.info(
            "memory job: %s users, %s messages in %.1f s",
            outcome.counts["users"],
            outcome.counts["messages"],
            time.monotonic() - started,
        )
        return outcome

    async def _worker(
        self, queue: deque[int], budget: _Budget, outcome: JobOutcome, progress: _Progress
    ) -> None:
        while queue and budget.left > 0:
            user_id = queue.popleft()
            budget.left -= 1
            async with self._services.db.connection() as conn:
                if not await self._store.try_claim(user_id, conn=conn):
                    budget.left += 1
                    outcome.add("skipped")
                    continue
                try:
                    done = await self.process_user(user_id, conn=conn)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    logger.warning("memory job: user %s failed", user_id, exc_info=True)
                    outcome.add("failed")
                    outcome.errors.append(f"user {user_id}: {describe_error(exc)}")
                else:
                    outcome.merge(done)
                finally:
                    await asyncio.shield(self._store.release(user_id, conn=conn))
            progress.step()

    async def process_user(self, user_id: int, *, conn: Connection) -> JobOutcome:
        """One user's batch, on a connection that holds the user's claim; the counts of
        what was committed. Raises whatever went wrong, with nothing committed."""
        services = self._services
        result = JobOutcome()
        state = await self._store.state(user_id, conn=conn)
        if state is None:
            return result
        unread = await self._store.unread(
            user_id, state.last_read_message_id, self._settings.messages_per_user, conn=conn
        )
        if not unread:
            return result
        # Nothing is learned while memory is off, nor from a message not remembered.
        heard = [] if state.memory_off else [m for m in unread if m.remembered]
        messages = self._fit(heard)
        if not messages:
            return await self._pass_over(state, unread[-1].id, len(unread), conn)
        update = await extract(
            services.llm, state, messages, summary_max_chars=self._settings.summary_max_chars
        )
        contents = [c.content for c in update.facts]
        embeddings = await services.embedder.embed(contents) if contents else []
        changes = await self._reconciler.plan(user_id, update.facts, embeddings, conn=conn)
        write = MemoryWrite(
            summary=bound_summary(update.summary, self._settings.summary_max_chars),
            # Past the messages not learned from too, unless the rest did not fit.
            through_message_id=unread[-1].id if messages == heard else messages[-1].id,
            insights=update.insights,
            communication_style=update.communication_style,
            themes=update.themes,
            at=services.clock(),
        )
        async with services.db.transaction(conn) as tx:
            if not await self._still_at(state, result, tx):
                return result
            await self._apply(user_id, changes, result, tx)
            await self._store.write(user_id, write, conn=tx)
            if self._before_commit is not None:
                await self._before_commit(user_id, tx)
        result.add("users")
        result.add("messages", len(messages))
        passed = sum(1 for m in unread if m.id <= write.through_message_id) - len(messages)
        if passed:
            result.add("passed_over", passed)
        return result

    async def _pass_over(
        self, state: MemoryState, through_message_id: int, count: int, conn: Connection
    ) -> JobOutcome:
        """Move past messages that teach nothing, without asking the model."""
        result = JobOutcome()
        async with self._services.db.transaction(conn) as tx:
            if not await self._still_at(state, result, tx):
                return result
            await self._store.pass_over(
                state.user_id, through_message_id, self._services.clock(), conn=tx
            )
        result.add("passed_over", count)
        return result

    async def _still_at(self, state: MemoryState, result: JobOutcome, tx: Connection) -> bool:
        """Lock the read position; whether it is still where the batch was read from. It
        moved when another runner got here first (its claim ended before ours began), or
        when the person forgot everything (`/forget all`) meanwhile: then nothing is
        written."""
        position = await self._store.lock_position(state.user_id, conn=tx)
        if position == state.last_read_message_id:
            return True
        logger.info("memory job: user %s moved on meanwhile, skipped", state.user_id)
        result.add("skipped")
        return False

    def _fit(self, messages: Sequence[UnreadMessage]) -> list[UnreadMessage]:
        """The oldest messages whose prompt lines fit the budget (at least one)."""
        fitted: list[UnreadMessage] = []
        used = 0
        for message in messages:
            used += len(format_message(message)) + 1
            if fitted and used > self._max_prompt_chars:
                break
            fitted.append(message)
        return fitted

    async def _apply(
        self, user_id: int, changes: list[FactChange], result: JobOutcome, tx: Connection
    ) -> None:
        facts = self._services.facts
        for change in changes:
            if isinstance(change, Add):
                await facts.add(user_id, change.fact, embedding=change.embedding, conn=tx)
                result.add("facts_added")
            elif isinstance(change, Update):
                updated = await facts.update(
                    user_id, change.fact_id, change.fact, embedding=change.embedding, conn=tx
                )
                if updated is None:  # retired or forgotten meanwhile: keep the information
                    await facts.add(user_id, change.fact, embedding=change.embedding, conn=tx)
                    result.add("facts_added")
                else:
                    result.add("facts_updated")
            elif isinstance(change, Invalidate):
                if await facts.invalidate(user_id, change.fact_id, at=change.at, conn=tx):
                    result.add("facts_invalidated")
            elif isinstance(change, Restated) and await self._store.add_sources(
                user_id,
                change.fact_id,
                change.source_message_ids,
                private=change.is_private,
                conn=tx,
            ):
                result.add("facts_restated")


class _Progress:
    """Logs how far a long run got, at most every `PROGRESS_EVERY_SECONDS`."""

    def __init__(self, total: int, started: float) -> None:
        self._total = total
        self._done = 0
        self._started = started
        self._logged = started

    def step(self) -> None:
        self._done += 1
        now = time.monotonic()
        if now - self._logged >= PROGRESS_EVERY_SECONDS:
            self._logged = now
            logger.info(
                "memory job: %s of %s candidate users after %.0f s",
                self._done,
                self._total,
                now - self._started,
            )
