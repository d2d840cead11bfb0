"""Runs the background jobs on their intervals, inside the service's event loop.

APScheduler (3.x, `AsyncIOScheduler`) only decides *when*; every run goes through
`JobRegistry.run`, which records it in `job_runs`. A job never overlaps itself
(`max_instances=1`, and the registry refuses a second concurrent run), missed runs
collapse into one (`coalesce`), and several replicas may run the same schedule: the
jobs claim their work per user in the database. `stop` cancels runs in progress, the
registry's background runs (`JobRegistry.start`) included; each job's unit of work is
one transaction, so a cancelled run leaves nothing half-done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self

from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]

from core.jobs.registry import JobRegistry

logger = logging.getLogger(__name__)

DEFAULT_FIRST_DELAY_SECONDS = 10.0


class JobScheduler:
    """Start with `async with JobScheduler(registry):` (or `start` / `stop`).

    Jobs without an interval (`None` in `registry.schedule()`) are never scheduled.
    The first run of each job comes `first_delay_seconds` after the start (not at once,
    so that start-up is not slowed down), then every interval.
    """

    def __init__(
        self,
        registry: JobRegistry,
        *,
        first_delay_seconds: float = DEFAULT_FIRST_DELAY_SECONDS,
    ) -> None:
        self._registry = registry
        self._first_delay = first_delay_seconds
        self._scheduler: AsyncIOScheduler | None = None
        self._running: set[asyncio.Task[Any]] = set()
        self._stopping = False

    def scheduled(self) -> dict[str, int]:
        """The jobs this scheduler runs, with their intervals in seconds."""
        return {
            name: every for name, every in self._registry.schedule().items() if every is not None
        }

    async def start(self) -> None:
        if self._scheduler is not None:
            raise RuntimeError("the scheduler is already running")
        scheduler = AsyncIOScheduler(timezone=UTC)
        first = datetime.now(UTC) + timedelta(seconds=self._first_delay)
        for name, every in self.scheduled().items():
            scheduler.add_job(
                self._fire,
                trigger=IntervalTrigger(seconds=every, timezone=UTC),
                args=[name],
                id=name,
                name=name,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=every,
                next_run_time=first,
            )
        scheduler.start()
        self._scheduler = scheduler
        self._stopping = False
        logger.info(
            "scheduler started: %s",
            ", ".join(f"{n} every {s} s" for n, s in self.scheduled().items()) or "no jobs",
        )

    async def stop(self) -> None:
        """Stop scheduling and cancel the runs in progress (scheduled ones, and those the
        registry started in the background); waits for them to end."""
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is None:
            return
        scheduler.shutdown(wait=False)
        self._stopping = True
        tasks = list(self._running)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, self._registry.stop_background(), return_exceptions=True)
        # AsyncIOScheduler.shutdown is scheduled on the loop: let it happen.
        await asyncio.sleep(0)
        logger.info("scheduler stopped")

    async def _fire(self, name: str) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._running.add(task)
        try:
            # The registry records and logs a failure; nothing more to do with it here.
            with contextlib.suppress(Exception):
                await self._registry.run(name)
        except asyncio.CancelledError:
            if not self._stopping:
                raise
            # Cancelled by `stop`: expected, and already recorded by the registry.
        finally:
            self._running.discard(task)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
