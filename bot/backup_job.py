"""Scheduled backups: a job writing a pg_dump file into BACKUP_DIR and keeping the last
BACKUP_KEEP of them.

Every process that runs the schedule (the service, `python -m bot jobs`) may run it;
those sharing a backup folder take turns on a lock file in it and skip a run when the
newest backup there is younger than half the interval, so one folder gets one backup
per interval whoever takes it. Files are named `onethread-<UTC time>.dump` after the
moment the backup began (its snapshot); only such files are ever deleted, never other
files an operator keeps there.

`onethread_backup_age_seconds` (read at every scrape, from the folder) is how long ago
the newest of them began; a failed run leaves no file behind, so the age keeps growing
until a backup succeeds: alert on it, not on readiness, which backups never affect.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bot.backup import dump
from core.jobs.registry import JobOutcome
from core.services import Clock, utc_now

_NAME = re.compile(r"^onethread-(\d{8}T\d{6}Z)\.dump$")
_TIME_FORMAT = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True, slots=True)
class BackupFile:
    path: Path
    taken_at: datetime


def backup_name(at: datetime) -> str:
    return f"onethread-{at.astimezone(UTC).strftime(_TIME_FORMAT)}.dump"


def backups(folder: Path) -> list[BackupFile]:
    """The backups in `folder` named by this module, newest first."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _NAME.match(path.name)
        if match and path.is_file():
            taken_at = datetime.strptime(match[1], _TIME_FORMAT).replace(tzinfo=UTC)
            found.append(BackupFile(path, taken_at))
    return sorted(found, key=lambda b: b.taken_at, reverse=True)


def backup_age_seconds(folder: Path, now: datetime) -> float:
    """Seconds since the newest backup in `folder` began; infinite when there is none."""
    found = backups(folder)
    return (now - found[0].taken_at).total_seconds() if found else float("inf")


@contextlib.contextmanager
def _turn(folder: Path) -> Iterator[bool]:
    """Whether this process got the folder's backup lock (never waited for)."""
    fd = os.open(folder / ".backup.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


class BackupJob:
    """One backup into `folder`, then the oldest beyond `keep` deleted."""

    name = "backup"

    def __init__(
        self,
        dsn: str,
        folder: Path,
        *,
        keep: int,
        interval_seconds: int | None,
        clock: Clock = utc_now,
    ) -> None:
        self._dsn = dsn
        self._folder = folder
        self._keep = keep
        self._interval = interval_seconds
        self._clock = clock

    async def run(self) -> JobOutcome:
        self._folder.mkdir(parents=True, exist_ok=True)
        with _turn(self._folder) as mine:
            if not mine:
                return JobOutcome(note="another process is writing a backup")
            now = self._clock()
            age = backup_age_seconds(self._folder, now)
            if self._interval is not None and age < self._interval / 2:
                return JobOutcome(note=f"the newest backup is only {age:.0f} s old")
            path = self._folder / backup_name(now)
            await dump(self._dsn, path)
            outcome = JobOutcome()
            outcome.add("backups")
            outcome.add("bytes", path.stat().st_size)
            for old in backups(self._folder)[self._keep :]:
                old.path.unlink(missing_ok=True)
                outcome.add("deleted")
            return outcome
