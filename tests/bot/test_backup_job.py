"""The scheduled backup job, called directly with an injected clock, on a real database."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from bot.backup import BackupError, read_archive
from bot.backup_job import BackupJob, backup_age_seconds, backup_name, backups
from bot.health import HealthServer
from core import metrics
from core.jobs.registry import JobRegistry, JobSpec
from core.storage.database import Database, create_pool
from core.storage.job_runs import JobRunRepository

START = datetime(2030, 1, 1, tzinfo=UTC)
UNREACHABLE = "postgresql://nobody@127.0.0.1:1/none"


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """The backup folder, holding a file of the operator's own."""
    path = tmp_path / "backups"
    path.mkdir()
    (path / "mine.dump").write_text("an operator's own file")
    return path


def _names(folder: Path) -> set[str]:
    return {path.name for path in folder.iterdir()}


async def test_each_run_adds_a_backup_and_the_oldest_beyond_keep_go(
    fresh_dsn: str, folder: Path
) -> None:
    clock = Clock()
    job = BackupJob(fresh_dsn, folder, keep=2, interval_seconds=3600, clock=clock)
    assert backup_age_seconds(folder, START) == float("inf")

    for hour in range(3):
        clock.now = START + timedelta(hours=hour)
        outcome = await job.run()
        assert outcome.counts["backups"] == 1
        assert outcome.counts["bytes"] > 0

    assert outcome.counts["deleted"] == 1
    assert [b.taken_at for b in backups(folder)] == [
        START + timedelta(hours=2),
        START + timedelta(hours=1),
    ]
    assert _names(folder) == {"mine.dump", ".backup.lock", *(b.path.name for b in backups(folder))}
    assert (await read_archive(backups(folder)[0].path)).migrations  # a whole backup
    assert backup_age_seconds(folder, START + timedelta(hours=2, seconds=90)) == 90


async def test_a_run_soon_after_a_backup_is_skipped(fresh_dsn: str, folder: Path) -> None:
    clock = Clock()
    job = BackupJob(fresh_dsn, folder, keep=5, interval_seconds=3600, clock=clock)
    await job.run()
    clock.now = START + timedelta(minutes=20)  # less than half the interval later

    outcome = await job.run()

    assert outcome.note == "the newest backup is only 1200 s old"
    assert len(backups(folder)) == 1


async def test_a_failed_backup_leaves_nothing_and_the_age_keeps_growing(folder: Path) -> None:
    job = BackupJob(UNREACHABLE, folder, keep=2, interval_seconds=3600, clock=Clock())
    with pytest.raises(BackupError, match="pg_dump failed"):
        await job.run()
    assert _names(folder) == {"mine.dump", ".backup.lock"}
    assert backup_age_seconds(folder, START) == float("inf")


@pytest.fixture
def held_lock(folder: Path) -> Iterator[None]:
    """The folder's backup lock, held as another process writing a backup would."""
    fd = os.open(folder / ".backup.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    yield
    os.close(fd)


async def test_one_backup_at_a_time_per_folder(
    fresh_dsn: str, folder: Path, held_lock: None
) -> None:
    job = BackupJob(fresh_dsn, folder, keep=2, interval_seconds=None, clock=Clock())
    outcome = await job.run()
    assert outcome.note == "another process is writing a backup"
    assert backups(folder) == []


async def test_backups_failing_leave_readiness_alone_and_show_in_the_age_metric(
    fresh_dsn: str, folder: Path
) -> None:
    pool = await create_pool(fresh_dsn, min_size=1, max_size=2)
    try:
        db = Database(pool)
        job = BackupJob(UNREACHABLE, folder, keep=2, interval_seconds=60, clock=Clock())
        registry = JobRegistry(db, [JobSpec(job, 60)])
        with pytest.raises(BackupError):
            await registry.run("backup")
        [run] = await JobRunRepository(db).recent()
        assert (run.job, run.status.value) == ("backup", "failed")
        assert run.error is not None
        assert "pg_dump failed" in run.error

        assert await HealthServer(db, [], host="127.0.0.1", port=0).problems() == []
    finally:
        await pool.close()
    metrics.watch_backup_age(lambda: backup_age_seconds(folder, START))
    assert REGISTRY.get_sample_value("onethread_backup_age_seconds") == float("inf")
    folder.joinpath(backup_name(START - timedelta(hours=3))).write_bytes(b"")
    assert REGISTRY.get_sample_value("onethread_backup_age_seconds") == 3 * 3600
