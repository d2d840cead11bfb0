"""The archive and retention jobs.

Archive: a live message moves to `messages_archive` (same id, every column) when it is
- older than `ARCHIVE_AFTER_DAYS`, and
- not among its user's newest `ARCHIVE_KEEP_RECENT_MESSAGES` (the prompt's recent window
  reads only live messages, so it must never be archived away), and
- read by the memory job (id <= `last_read_message_id`), and
- not awaiting an answer (`/retry` looks for it among live messages).
History, search, recall and export read both tables, so nothing disappears for the user.

Moves happen per user in batches of `ARCHIVE_BATCH_SIZE`, one statement each (a batch
moves completely or not at all), so a conversation turn never waits long for a row.
Users are visited by id with keyset pagination; a user another archiver is working on
is skipped (see `core.storage.archive_store`).

Retention: archived messages created more than `ARCHIVE_RETENTION_DAYS` ago are
deleted, in batches, oldest first; 0 (the default) keeps them for ever. Erasing a user
needs no job: deleting the `users` row cascades to every table, the archive included.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from config.settings import ArchiveSettings
from core.jobs.registry import JobOutcome, describe_error
from core.services import Clock, utc_now
from core.storage.archive_store import ArchivePolicy, ArchiveRepository
from core.storage.database import Connection, Database, asynchronous_commit

logger = logging.getLogger(__name__)

USERS_PAGE = 500
PROGRESS_EVERY_SECONDS = 30.0


class ArchiveJob:
    name = "archive"

    def __init__(self, db: Database, settings: ArchiveSettings, *, clock: Clock = utc_now) -> None:
        self._db = db
        self._settings = settings
        self._clock = clock
        self._repo = ArchiveRepository(db)

    async def run(self) -> JobOutcome:
        settings = self._settings
        now = self._clock()
        policy = ArchivePolicy(
            cutoff=now - timedelta(days=settings.after_days),
            keep_recent=settings.keep_recent_messages,
            batch_size=settings.batch_size,
        )
        outcome = JobOutcome(counts={"messages": 0, "users": 0, "batches": 0, "skipped": 0})
        started = logged = time.monotonic()
        after = 0
        # One connection for the run, with asynchronous commit (see `move_batch`).
        async with self._db.connection() as conn, asynchronous_commit(conn):
            while users := await self._repo.users_after(after, USERS_PAGE, conn=conn):
                for user_id in users:
                    try:
                        await self._archive_user(user_id, policy, outcome, conn)
                    except Exception as exc:
                        logger.warning("archive job: user %s failed", user_id, exc_info=True)
                        outcome.errors.append(f"user {user_id}: {describe_error(exc)}")
                after = users[-1]
                if time.monotonic() - logged >= PROGRESS_EVERY_SECONDS:
                    logged = time.monotonic()
                    logger.info(
                        "archive job: %s messages moved, at user id %s, after %.0f s",
                        outcome.counts["messages"],
                        after,
                        logged - started,
                    )
        logger.info(
            "archive job: %s messages of %s users moved in %.1f s",
            outcome.counts["messages"],
            outcome.counts["users"],
            time.monotonic() - started,
        )
        return outcome

    async def _archive_user(
        self, user_id: int, policy: ArchivePolicy, outcome: JobOutcome, conn: Connection
    ) -> None:
        moved_any = False
        while True:
            moved = await self._repo.move_batch(
                user_id, policy, archived_at=self._clock(), conn=conn
            )
            if moved is None:
                outcome.add("skipped")
                return
            if moved:
                moved_any = True
                outcome.add("messages", moved)
                outcome.add("batches")
            if moved < policy.batch_size:
                break
        if moved_any:
            outcome.add("users")


class RetentionJob:
    name = "retention"

    def __init__(self, db: Database, settings: ArchiveSettings, *, clock: Clock = utc_now) -> None:
        self._settings = settings
        self._clock = clock
        self._repo = ArchiveRepository(db)

    async def run(self) -> JobOutcome:
        days = self._settings.retention_days
        if days == 0:
            return JobOutcome(note="off (ARCHIVE_RETENTION_DAYS=0)")
        cutoff = self._clock() - timedelta(days=days)
        batch = self._settings.batch_size
        outcome = JobOutcome(counts={"deleted": 0})
        while True:
            deleted = await self._repo.delete_expired(cutoff, batch)
            outcome.add("deleted", deleted)
            if deleted < batch:
                break
        if outcome.counts["deleted"]:
            logger.info(
                "retention job: %s archived messages older than %s days deleted",
                outcome.counts["deleted"],
                days,
            )
        return outcome
