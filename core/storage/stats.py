"""Counts over the whole deployment, for admins (`/stats`). Aggregates only: no user's
data leaves this module."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from core.storage.database import Connection, Database


@dataclass(frozen=True, slots=True)
class Overview:
    users: int
    banned: int
    admins: int
    active_1d: int
    active_7d: int
    messages: int
    archived_messages: int
    tokens_in: int
    tokens_out: int
    failed_messages: int
    failed_jobs_7d: int
    facts: int
    invalidated_facts: int


class StatsRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def overview(self, *, now: datetime, conn: Connection | None = None) -> Overview:
        """Active means a message (sent or answered) in the period, per `last_activity_at`."""
        async with self._db.connection(conn) as c:
            row = await c.fetchrow(
                "SELECT"
                " (SELECT count(*) FROM users) AS users,"
                " (SELECT count(*) FROM users WHERE status = 'banned') AS banned,"
                " (SELECT count(*) FROM users WHERE role = 'admin') AS admins,"
                " (SELECT count(*) FROM conversations WHERE last_activity_at >= $1) AS active_1d,"
                " (SELECT count(*) FROM conversations WHERE last_activity_at >= $2) AS active_7d,"
                " (SELECT count(*) FROM messages) AS messages,"
                " (SELECT count(*) FROM messages_archive) AS archived_messages,"
                " (SELECT coalesce(sum(tokens_in), 0) FROM conversations) AS tokens_in,"
                " (SELECT coalesce(sum(tokens_out), 0) FROM conversations) AS tokens_out,"
                " (SELECT count(*) FROM messages WHERE status = 'failed') AS failed_messages,"
                " (SELECT count(*) FROM job_runs WHERE status = 'failed' AND started_at >= $2)"
                "   AS failed_jobs_7d,"
                " (SELECT count(*) FROM facts WHERE invalid_at IS NULL) AS facts,"
                " (SELECT count(*) FROM facts WHERE invalid_at IS NOT NULL) AS invalidated_facts",
                now - timedelta(days=1),
                now - timedelta(days=7),
            )
        assert row is not None
        return Overview(**{key: int(value) for key, value in row.items()})
