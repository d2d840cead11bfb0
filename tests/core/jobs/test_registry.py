"""The job registry: every run recorded in `job_runs`, failures included."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from core.jobs.registry import JobOutcome, JobRegistry, JobSpec
from core.llm.errors import LLMUnavailable
from core.storage.database import Database
from core.storage.job_runs import JobRunRepository, JobStatus

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


class Scripted:
    """A job that returns (or raises) what it is given, and can be held mid-run."""

    def __init__(self, name: str, result: JobOutcome | BaseException) -> None:
        self.name = name
        self.result = result
        self.runs = 0
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def run(self) -> JobOutcome:
        self.runs += 1
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result


class Ticking:
    """A clock that advances one second per reading."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def _registry(db: Database, *jobs: Scripted) -> JobRegistry:
    return JobRegistry(
        db, [JobSpec(j, 60 if j.name != "manual" else None) for j in jobs], clock=Ticking()
    )


async def test_a_run_is_recorded_with_its_counts(db: Database) -> None:
    job = Scripted("memory", JobOutcome(counts={"users": 3, "facts_added": 5}))
    registry = _registry(db, job, Scripted("manual", JobOutcome()))
    assert registry.names() == ["memory", "manual"]
    assert registry.schedule() == {"memory": 60, "manual": None}

    assert await registry.run("memory") == "users 3, facts added 5"

    (run,) = await JobRunRepository(db).recent()
    assert (run.job, run.status, run.counts, run.error) == (
        "memory",
        JobStatus.OK,
        {"users": 3, "facts_added": 5},
        None,
    )
    assert run.started_at == T0 + timedelta(seconds=1)
    assert run.finished_at == T0 + timedelta(seconds=2)


async def test_partial_failures_mark_the_run_failed_with_counts(db: Database) -> None:
    outcome = JobOutcome(
        counts={"users": 2, "failed": 2},
        errors=["user 7: LLMUnavailable", "user 12: TimeoutError"],
    )
    registry = _registry(db, Scripted("memory", outcome))
    summary = await registry.run("memory")
    assert summary == "users 2, failed 2; 2 errors: user 7: LLMUnavailable"
    (run,) = await JobRunRepository(db).recent()
    assert run.status is JobStatus.FAILED
    assert run.counts == {"users": 2, "failed": 2}
    # Kept for good, so without the users' ids (the summary above and the log have them).
    assert run.error == "a user: LLMUnavailable; a user: TimeoutError"


async def test_an_exception_is_recorded_and_reraised(db: Database) -> None:
    registry = _registry(
        db,
        Scripted("memory", LLMUnavailable("chat completion: endpoint failed (HTTP 503)")),
        Scripted("archive", ValueError("SELECT ... secret parameter")),
    )
    with pytest.raises(LLMUnavailable):
        await registry.run("memory")
    with pytest.raises(ValueError, match="secret"):
        await registry.run("archive")
    runs = {r.job: r for r in await JobRunRepository(db).recent()}
    assert runs["memory"].status is JobStatus.FAILED
    assert runs["memory"].error == ("LLMUnavailable: chat completion: endpoint failed (HTTP 503)")
    # Foreign messages may quote data: only the type is kept.
    assert runs["archive"].error == "ValueError"


async def test_a_job_does_not_overlap_itself(db: Database) -> None:
    job = Scripted("memory", JobOutcome(note="fine"))
    job.gate = asyncio.Event()
    registry = _registry(db, job)
    first = asyncio.create_task(registry.run("memory"))
    await job.entered.wait()
    assert await registry.run("memory") == "already running in this process"
    job.gate.set()
    assert await first == "fine"
    assert job.runs == 1
    assert len(await JobRunRepository(db).recent()) == 1


async def test_a_cancelled_run_is_recorded(db: Database) -> None:
    job = Scripted("memory", JobOutcome())
    job.gate = asyncio.Event()
    registry = _registry(db, job)
    task = asyncio.create_task(registry.run("memory"))
    await job.entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (run,) = await JobRunRepository(db).recent()
    assert (run.status, run.error) == (JobStatus.FAILED, "cancelled")


async def test_unknown_jobs_and_duplicate_names_are_refused(db: Database) -> None:
    registry = _registry(db, Scripted("memory", JobOutcome()))
    with pytest.raises(KeyError):
        await registry.run("nope")
    with pytest.raises(ValueError, match="share a name"):
        _registry(db, Scripted("memory", JobOutcome()), Scripted("memory", JobOutcome()))


def test_summaries_read_well() -> None:
    assert JobOutcome().summary() == "nothing to do"
    assert JobOutcome(note="off").summary() == "off"
    assert JobOutcome(counts={"deleted": 0}, note="off").summary() == "off (deleted 0)"
    two = JobOutcome(errors=["a", "b"])
    assert two.summary() == "nothing to do; 2 errors: a"


async def test_a_job_started_in_the_background_is_recorded(db: Database) -> None:
    job = Scripted("memory", JobOutcome(counts={"users": 1}))
    job.gate = asyncio.Event()
    failing = Scripted("archive", LLMUnavailable("down"))
    registry = _registry(db, job, failing)

    task = registry.start("memory")
    await job.entered.wait()
    assert await registry.run("memory") == "already running in this process"
    job.gate.set()
    outcome = await task
    assert outcome is not None and outcome.counts == {"users": 1}
    assert await registry.start("archive") is None  # recorded and logged, not raised
    runs = {r.job: r for r in await JobRunRepository(db).recent()}
    assert runs["memory"].status is JobStatus.OK
    assert (runs["archive"].status, runs["archive"].error) == (
        JobStatus.FAILED,
        "LLMUnavailable: down",
    )
    with pytest.raises(KeyError):
        registry.start("nope")


async def test_stopping_cancels_background_runs_and_records_them(db: Database) -> None:
    job = Scripted("memory", JobOutcome())
    job.gate = asyncio.Event()  # never set: the run would not end by itself
    registry = _registry(db, job)
    task = registry.start("memory")
    await job.entered.wait()
    await registry.stop_background()
    assert task.cancelled()
    (run,) = await JobRunRepository(db).recent()
    assert (run.status, run.error) == (JobStatus.FAILED, "cancelled")


async def test_a_frequent_jobs_idle_runs_are_not_kept(db: Database) -> None:
    """A job run every few seconds (broadcasts) keeps only the runs that did something."""
    idle = Scripted("broadcast", JobOutcome())
    registry = JobRegistry(db, [JobSpec(idle, 30, keep_idle_runs=False)], clock=Ticking())
    assert await registry.run("broadcast") == "nothing to do"
    assert await JobRunRepository(db).recent() == []
    idle.result = JobOutcome(counts={"sent": 2})
    assert await registry.run("broadcast") == "sent 2"
    (run,) = await JobRunRepository(db).recent()
    assert (run.job, run.counts) == ("broadcast", {"sent": 2})
    idle.result = JobOutcome(errors=["a messenger failed"])
    await registry.run("broadcast")
    assert len(await JobRunRepository(db).recent()) == 2
