"""Counts over the whole deployment, for admins (`/stats`). Aggregates only: no user's
data leaves this module."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

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


@dataclass(frozen=True, slots=True)
class DailyCount:
    """One UTC day: the messages people sent, and how many different people sent them."""

    day: date
    messages: int
    active_users: int


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

    async def daily(
        self, *, now: datetime, days: int = 30, conn: Connection | None = None
    ) -> list[DailyCount]:
        """Messages sent by people (not replies) and active users per UTC day, oldest first.

        `days` entries ending with the UTC day of `now` (today, so far); days without a
        message are there with 0. Archived messages count on the day they were sent.
        """
        if days < 1:
            raise ValueError("days must be at least 1")
        first = now.astimezone(UTC).date() - timedelta(days=days - 1)
        start = datetime.combine(first, time(), tzinfo=UTC)
        end = start + timedelta(days=days)
        async with self._db.connection(conn) as c:
            rows = await c.fetch(
                "WITH sent AS ("
                "  SELECT user_id, created_at FROM messages"
                "   WHERE role = 'user' AND created_at >= $1 AND created_at < $2"
                "  UNION ALL"
                "  SELECT user_id, created_at FROM messages_archive"
                "   WHERE role = 'user' AND created_at >= $1 AND created_at < $2"
                ")"
                " SELECT $3::date + d.i AS day, count(s.user_id) AS messages,"
                "  count(DISTINCT s.user_id) AS active_users"
                " FROM generate_series(0, $4::int - 1) AS d(i)"
                " LEFT JOIN sent s ON (s.created_at AT TIME ZONE 'UTC')::date = $3::date + d.i"
                " GROUP BY d.i ORDER BY d.i",
                start,
                end,
                first,
                days,
            )
        return [DailyCount(r["day"], int(r["messages"]), int(r["active_users"])) for r in rows]
