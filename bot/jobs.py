"""The jobs on the command line, and the registry of every job (composition root).

    python -m bot jobs              run the scheduler without platform adapters, until
                                    Ctrl-C or SIGTERM
    python -m bot jobs list         every job, its schedule, and its latest runs
    python -m bot jobs run NAME     run one job now (recorded like a scheduled run)
    python -m bot reembed           re-embed every fact and message, with a progress bar

`add_job_commands` adds these to the CLI's sub-parsers; `COMMANDS` maps the command
names to their async functions, each `(settings, args) -> exit status`.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable, Coroutine
from contextlib import suppress
from typing import Any

from tqdm import tqdm  # type: ignore[import-untyped]

from bot.backup_job import BackupJob
from bot.database import DatabaseLocation, open_database
from bot.scheduler import JobScheduler
from bot.services import build_services
from config import Settings
from core.jobs.archive import ArchiveJob, RetentionJob
from core.jobs.broadcast import BROADCAST_INTERVAL_SECONDS, BroadcastJob
from core.jobs.long_messages import LongMessageJob
from core.jobs.memory import MemoryJob
from core.jobs.reembed import DEFAULT_BATCH_SIZE, Reembedder, ReembedProgress
from core.jobs.registry import Job, JobRegistry, JobSpec
from core.jobs.user_indexes import UserIndexJob
from core.services import Services
from core.storage.database import Database, connect
from core.storage.job_runs import JobRun, JobRunRepository

EXIT_OK = 0
EXIT_FAILED = 1
RECENT_RUNS = 10

JOB_NAMES = (
    "memory",
    "long_messages",
    "archive",
    "retention",
    "reembed",
    "user_indexes",
    "broadcast",
    "backup",
)


def schedule_from_settings(settings: Settings) -> dict[str, int | None]:
    """Seconds between scheduled runs of each job; None: only on request."""
    return {
        "memory": settings.memory.interval_seconds,
        "long_messages": settings.memory.interval_seconds,
        "archive": settings.archive.interval_seconds,
        "retention": settings.archive.interval_seconds,
        "reembed": None,
        "user_indexes": settings.archive.interval_seconds,
        "broadcast": BROADCAST_INTERVAL_SECONDS,
        "backup": settings.backup_interval_seconds,
    }


def build_registry(
    services: Services, location: DatabaseLocation, *, reembedder: Reembedder | None = None
) -> JobRegistry:
    """Every job, with its schedule from the settings. Set `services.jobs` to the result
    to make the jobs available to `/jobs` and `/runjob`."""
    settings = services.settings
    schedule = schedule_from_settings(settings)
    jobs: list[Job] = [
        MemoryJob(services),
        LongMessageJob(services.db, services.embedder),
        ArchiveJob(services.db, settings.archive, clock=services.clock),
        RetentionJob(services.db, settings.archive, clock=services.clock),
        reembedder or Reembedder(services),
        UserIndexJob(
            services.db,
            dimensions=settings.embedding_dimensions,
            min_messages=settings.context.exact_recall_max_rows,
        ),
        BroadcastJob(services),
        BackupJob(
            location.dsn,
            settings.backup_dir,
            keep=settings.backup.keep,
            interval_seconds=settings.backup_interval_seconds,
            clock=services.clock,
        ),
    ]
    specs = [
        JobSpec(job, schedule[job.name], keep_idle_runs=job.name != "broadcast") for job in jobs
    ]
    return JobRegistry(services.db, specs, clock=services.clock)


def add_job_commands(subparsers: Any) -> None:
    """Add `jobs` (with `list` and `run NAME`) and `reembed` to the CLI's sub-parsers."""
    jobs = subparsers.add_parser(
        "jobs", help="run the scheduled jobs without platform adapters (or: list, run NAME)"
    )
    actions = jobs.add_subparsers(dest="jobs_action", metavar="ACTION")
    actions.add_parser("list", help="every job, its schedule and its latest runs")
    run = actions.add_parser("run", help="run one job now")
    run.add_argument("name", choices=JOB_NAMES, help="the job to run")
    reembed = subparsers.add_parser(
        "reembed", help="re-embed every fact and message with the configured embedder"
    )
    reembed.add_argument(
        "--restart", action="store_true", help="start over instead of resuming the last pass"
    )
    reembed.add_argument(
        "--batch-size", type=_positive, default=DEFAULT_BATCH_SIZE, help="texts per batch"
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


async def jobs_command(settings: Settings, args: argparse.Namespace) -> int:
    action = getattr(args, "jobs_action", None)
    if action == "list":
        return await list_jobs(settings, args)
    if action == "run":
        return await run_job(settings, args)
    return await serve_jobs(settings, args)


async def list_jobs(settings: Settings, args: argparse.Namespace) -> int:
    """Print each job's schedule and latest run, then the latest runs of all jobs."""
    async with open_database(settings) as location:
        conn = await connect(location.dsn)
        try:
            runs = JobRunRepository(Database(conn))
            last = {run.job: run for run in await runs.last_per_job()}
            recent = await runs.recent(RECENT_RUNS)
        finally:
            await conn.close()
    print("job        schedule          last run")
    for name, every in schedule_from_settings(settings).items():
        schedule = f"every {every} s" if every is not None else "on request"
        run = last.get(name)
        print(f"{name:<10} {schedule:<17} {_describe_run(run) if run else 'never'}")
    if recent:
        print(f"\nlatest {len(recent)} runs:")
        for run in recent:
            print(f"  {run.job:<10} {_describe_run(run)}")
    return EXIT_OK


def _describe_run(run: JobRun) -> str:
    text = f"{run.status} {run.started_at:%Y-%m-%d %H:%M:%S} UTC"
    if run.finished_at is not None:
        text += f" ({(run.finished_at - run.started_at).total_seconds():.1f} s)"
    counts = [f"{k.replace('_', ' ')} {v}" for k, v in sorted(run.counts.items()) if v]
    if counts:
        text += ": " + ", ".join(counts)
    if run.error:
        text += f"; error: {run.error[:200]}"
    return text


async def run_job(settings: Settings, args: argparse.Namespace) -> int:
    """Run one job now; exit 1 if it failed (entirely or for some users)."""
    async with open_database(settings) as location, build_services(settings, location) as services:
        registry = build_registry(services, location)
        services.jobs = registry
        try:
            outcome = await registry.run_outcome(args.name)
        except Exception as exc:
            print(f"onethread: job {args.name} failed: {type(exc).__name__}", file=sys.stderr)
            return EXIT_FAILED
    assert outcome is not None  # a fresh registry runs nothing yet
    print(f"{args.name}: {outcome.summary()}")
    return EXIT_FAILED if outcome.failed else EXIT_OK


async def serve_jobs(
    settings: Settings, args: argparse.Namespace, *, stop: asyncio.Event | None = None
) -> int:
    """Run the scheduler (no platform adapters) until Ctrl-C / SIGTERM, or `stop` is set."""
    stop = stop or stop_on_signals()
    async with (
        open_database(settings) as location,
        build_services(settings, location) as services,
    ):
        registry = build_registry(services, location)
        services.jobs = registry
        async with JobScheduler(registry) as scheduler:
            jobs = ", ".join(f"{n} every {s} s" for n, s in scheduler.scheduled().items())
            print(f"onethread: running jobs ({jobs}); Ctrl-C to stop", file=sys.stderr)
            await stop.wait()
    return EXIT_OK


def stop_on_signals() -> asyncio.Event:
    """An event set by the first SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError, RuntimeError):  # not on Windows, or not main thread
            loop.add_signal_handler(sig, stop.set)
    return stop


async def reembed_command(settings: Settings, args: argparse.Namespace) -> int:
    """Re-embed every fact and message (resuming an interrupted pass), with a progress bar."""
    bar = _ProgressBar()
    async with open_database(settings) as location, build_services(settings, location) as services:
        reembedder = Reembedder(
            services,
            batch_size=args.batch_size,
            restart=args.restart,
            progress=bar.update,
        )
        registry = JobRegistry(services.db, [JobSpec(reembedder, None)], clock=services.clock)
        try:
            outcome = await registry.run_outcome(reembedder.name)
        finally:
            bar.close()
    assert outcome is not None
    print(f"reembed with {services.embedder.model_name}: {outcome.summary()}")
    return EXIT_FAILED if outcome.failed else EXIT_OK


class _ProgressBar:
    """One tqdm bar per table (rate and ETA included), on stderr."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._source: str | None = None

    def update(self, progress: ReembedProgress) -> None:
        if self._bar is None or progress.source.value != self._source:
            self.close()
            self._source = progress.source.value
            self._bar = tqdm(total=progress.total, desc=self._source, unit="row", file=sys.stderr)
        self._bar.total = progress.total
        self._bar.update(progress.done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


Command = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]
COMMANDS: dict[str, Command] = {"jobs": jobs_command, "reembed": reembed_command}
