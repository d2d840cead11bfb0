"""The background jobs as one registry: what the scheduler, `/runjob` and the CLI call.

`JobRegistry` implements `core.services.JobControl`. Every run, whoever started it,
goes through `JobRegistry.run`, which records it in `job_runs` (start, end, counts,
error), so `/jobs` and `python -m bot jobs list` show scheduled and manual runs alike.

Runs of one job do not overlap within a process (a second request while one runs is
answered "already running"); across processes (replicas, the CLI next to the service)
each job claims its work in the database (a user, a broadcast, a table), so
overlapping runs are safe.

`start` runs a job in the background instead (a command that must answer at once,
`/broadcast`); `stop_background`, called when the scheduler stops, cancels such runs
before the service closes what they use.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.errors import OnethreadError
from core.services import Clock, utc_now
from core.storage.database import Database
from core.storage.job_runs import JobRunRepository, JobStatus

logger = logging.getLogger(__name__)

ERROR_MAX_CHARS = 500


@dataclass
class JobOutcome:
    """What one run did: counts by name, and short descriptions of partial failures.

    A job that fails for some users and succeeds for others returns normally with
    `errors` set; the run is then recorded as failed, with its counts. `note` replaces
    the counts in the summary when the job had nothing to do by design (e.g. "off").
    """

    counts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    note: str | None = None

    def add(self, name: str, value: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + value

    def merge(self, other: JobOutcome) -> None:
        for name, value in other.counts.items():
            self.add(name, value)
        self.errors.extend(other.errors)

    @property
    def failed(self) -> bool:
        return bool(self.errors)

    @property
    def idle(self) -> bool:
        """Nothing done, nothing to say."""
        return not (self.counts or self.errors or self.note)

    def summary(self) -> str:
        """One line: "users 3, facts added 5" (+ "; 1 error: ...")."""
        parts = [f"{name.replace('_', ' ')} {value}" for name, value in self.counts.items()]
        text = self.note or ", ".join(parts) or "nothing to do"
        if self.note and parts:
            text += " (" + ", ".join(parts) + ")"
        if self.errors:
            noun = "error" if len(self.errors) == 1 else "errors"
            text += f"; {len(self.errors)} {noun}: {self.errors[0]}"
        return text


class Job(Protocol):
    """One background job. `run` processes a bounded amount of work and returns."""

    @property
    def name(self) -> str: ...

    async def run(self) -> JobOutcome: ...


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A job and how often the scheduler runs it (None: only on request)."""

    job: Job
    every_seconds: int | None
    keep_idle_runs: bool = True
    """False for a job the scheduler runs every few seconds (broadcasts): a run that had
    nothing to do is not kept in `job_runs`, where it would bury the others."""


class JobRegistry:
    """`JobControl` over a fixed set of jobs; see the module docstring."""

    def __init__(self, db: Database, specs: Sequence[JobSpec], *, clock: Clock = utc_now) -> None:
        self._specs = {spec.job.name: spec for spec in specs}
        if len(self._specs) != len(specs):
            raise ValueError("two jobs share a name")
        self._runs = JobRunRepository(db)
        self._clock = clock
        self._running: dict[str, asyncio.Lock] = {name: asyncio.Lock() for name in self._specs}
        self._background: set[asyncio.Task[JobOutcome | None]] = set()

    def names(self) -> list[str]:
        return list(self._specs)

    def schedule(self) -> dict[str, int | None]:
        """Seconds between scheduled runs of each job; None for jobs run only on request."""
        return {name: spec.every_seconds for name, spec in self._specs.items()}

    async def run(self, name: str) -> str:
        """Run `name` now and record the run; a one-line summary.

        Raises `KeyError` for an unknown job and re-raises whatever the job raised (after
        recording the run as failed): the caller decides how to report it.
        """
        outcome = await self.run_outcome(name)
        if outcome is None:
            return "already running in this process"
        return outcome.summary()

    def start(self, name: str) -> asyncio.Task[JobOutcome | None]:
        """Run `name` in the background, recorded like any run; the task's result is the
        outcome, None when the job was running already or failed (recorded and logged
        by `run_outcome`). Raises `KeyError` for an unknown job."""
        if name not in self._specs:
            raise KeyError(name)
        task = asyncio.create_task(self._run_in_background(name), name=f"job {name}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _run_in_background(self, name: str) -> JobOutcome | None:
        try:
            return await self.run_outcome(name)
        except Exception:
            return None

    async def stop_background(self) -> None:
        """Cancel the runs `start` began, and wait for them to end."""
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def run_outcome(self, name: str) -> JobOutcome | None:
        """Like `run`, but the outcome itself; None when the job was already running."""
        spec = self._specs[name]
        lock = self._running[name]
        if lock.locked():
            return None
        async with lock:
            run_id = await self._runs.start(name, at=self._clock())
            log_start = logger.info if spec.keep_idle_runs else logger.debug
            log_start("job %s started (run %s)", name, run_id)
            try:
                outcome = await spec.job.run()
            except BaseException as exc:
                await _finish_even_if_cancelled(
                    self._runs.finish(
                        run_id, JobStatus.FAILED, error=describe_error(exc), at=self._clock()
                    )
                )
                if isinstance(exc, Exception):
                    logger.exception("job %s failed (run %s)", name, run_id)
                raise
            if not spec.keep_idle_runs and outcome.idle:
                await _finish_even_if_cancelled(self._runs.discard(run_id))
                logger.debug("job %s had nothing to do (run %s, not kept)", name, run_id)
                return outcome
            status = JobStatus.FAILED if outcome.failed else JobStatus.OK
            errors = "; ".join(outcome.errors)[:ERROR_MAX_CHARS] if outcome.errors else None
            await _finish_even_if_cancelled(
                self._runs.finish(run_id, status, outcome.counts, errors, at=self._clock())
            )
            log = logger.warning if outcome.failed else logger.info
            log("job %s finished (run %s): %s", name, run_id, outcome.summary())
            return outcome


async def _finish_even_if_cancelled(step: Coroutine[Any, Any, None]) -> None:
    """Run `step` to its end even when the caller is cancelled meanwhile (then re-raise),
    so that a run stopped at shutdown is still recorded as ended, not left "running"."""
    task = asyncio.ensure_future(step)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise


def describe_error(exc: BaseException) -> str:
    """A short description for `job_runs.error`: the type, and our own messages only.

    Messages of foreign exceptions may quote data (SQL parameters, payloads); ours are
    written to be shown.
    """
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    if isinstance(exc, OnethreadError) and str(exc):
        return f"{type(exc).__name__}: {exc}"[:ERROR_MAX_CHARS]
    return type(exc).__name__
