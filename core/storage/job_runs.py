"""A record of every run of a scheduled job: when, how it ended, what it did.

Kept for good, so it holds nothing about a person: counts are numbers by name, and an
error text that names a user the way jobs do ("user 42: LLMError") is stored as
"a user: LLMError" (`finish`). The job's log line keeps the id for whoever debugs it;
the summary `/runjob` answers with is not stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import asyncpg

from core.storage.database import Connection, Database

_COLUMNS = "id, job, started_at, finished_at, status, counts, error"
_USER_MENTION = re.compile(r"\buser \d+")


def _without_users(error: str) -> str:
    """`error` with every "user N" written as "a user"."""
    return _USER_MENTION.sub("a user", error)


class JobStatus(StrEnum):
    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class JobRun:
    id: int
    job: str
    started_at: datetime
    finished_at: datetime | None
    status: JobStatus
    counts: dict[str, Any]
    error: str | None


def _run(row: asyncpg.Record) -> JobRun:
    return JobRun(
        id=row["id"],
        job=row["job"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        status=JobStatus(row["status"]),
        counts=row["counts"],
        error=row["error"],
    )


class JobRunRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def start(
        self, job: str, *, at: datetime | None = None, conn: Connection | None = None
    ) -> int:
        """Record that `job` started; the id to pass to `finish`."""
        async with self._db.connection(conn) as c:
            value = await c.fetchval(
                "INSERT INTO job_runs (job, started_at) VALUES ($1, coalesce($2, now()))"
                " RETURNING id",
                job,
                at,
            )
        return int(value)

    async def discard(self, run_id: int, *, conn: Connection | None = None) -> None:
        """Forget a run (one that had nothing to do, of a job run every few seconds)."""
        async with self._db.connection(conn) as c:
            await c.execute("DELETE FROM job_runs WHERE id = $1", run_id)

    async def finish(
        self,
        run_id: int,
        status: JobStatus,
        counts: dict[str, Any] | None = None,
        error: str | None = None,
        *,
        at: datetime | None = None,
        conn: Connection | None = None,
    ) -> None:
        """Record how a run ended. `error` is a short description, never a payload;
        the users it names are left out (`_without_users`)."""
        if status is JobStatus.RUNNING:
            raise ValueError("a finished run is ok or failed")
        async with self._db.connection(conn) as c:
            await c.execute(
                "UPDATE job_runs SET status = $2, counts = $3, error = $4,"
                " finished_at = coalesce($5, now()) WHERE id = $1",
                run_id,
                status.value,
                counts or {},
                None if error is None else _without_users(error),
                at,
            )

    async def recent(self, limit: int = 20, *, conn: Connection | None = None) -> list[JobRun]:
        """The newest runs of every job, newest first."""
        async with self._db.connection(conn) as c:
            rows = await c.fetch(
                f"SELECT {_COLUMNS} FROM job_runs ORDER BY started_at DESC, id DESC LIMIT $1",
                limit,
            )
        return [_run(r) for r in rows]

    async def last_per_job(self, *, conn: Connection | None = None) -> list[JobRun]:
        """The latest run of each job, by job name."""
        async with self._db.connection(conn) as c:
            rows = await c.fetch(
                f"SELECT DISTINCT ON (job) {_COLUMNS} FROM job_runs"
                " ORDER BY job, started_at DESC, id DESC"
            )
        return [_run(r) for r in rows]
