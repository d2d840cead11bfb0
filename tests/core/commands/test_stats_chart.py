from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta, timezone

from core.charts import HEIGHT_PX, WIDTH_PX
from core.models import User
from core.services import Services
from core.storage.stats import DailyCount, StatsRepository
from tests.core.commands import FakeClock, make_user, run, with_clock

NOW = datetime(2026, 3, 30, 10, 15, tzinfo=UTC)  # "today" is 30 Mar, UTC
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_archive_ids = itertools.count(10**12)


async def _message(
    services: Services, user: User, at: datetime, *, role: str = "user", archived: bool = False
) -> None:
    """A message sent (or a reply written) at `at`, live or already archived."""
    columns = "user_id, role, content, platform, status, created_at"
    status = "answered" if role == "user" else None
    async with services.db.connection() as conn:
        if archived:  # archived rows keep the id they had; any unused one will do
            await conn.execute(
                f"INSERT INTO messages_archive (id, {columns}, search)"
                " VALUES ($1, $2, $3, 'x', 'telegram', $4, $5, to_tsvector('x'))",
                next(_archive_ids),
                user.id,
                role,
                status,
                at,
            )
        else:
            await conn.execute(
                f"INSERT INTO messages ({columns}) VALUES ($1, $2, 'x', 'telegram', $3, $4)",
                user.id,
                role,
                status,
                at,
            )


def _by_day(series: list[DailyCount]) -> dict[date, tuple[int, int]]:
    return {d.day: (d.messages, d.active_users) for d in series if d.messages or d.active_users}


async def test_daily_series_counts_per_utc_day_with_empty_days(services: Services) -> None:
    alice = await make_user(services, "1")
    bob = await make_user(services, "2")
    today = datetime(2026, 3, 30, tzinfo=UTC)
    first = today - timedelta(days=29)  # 1 Mar, the oldest day shown
    for at in (today, today + timedelta(hours=9)):  # 00:00 and 09:00 today
        await _message(services, alice, at)
    await _message(services, bob, today + timedelta(hours=10))
    await _message(services, alice, today - timedelta(seconds=1))  # 29 Mar, 23:59:59
    await _message(services, alice, today - timedelta(days=1), role="assistant")  # a reply
    await _message(services, bob, first, archived=True)  # archived still counts
    await _message(services, bob, first - timedelta(microseconds=1))  # 28 Feb: too old
    await _message(services, bob, today + timedelta(days=1))  # tomorrow: not yet

    series = await StatsRepository(services.db).daily(now=NOW, days=30)

    assert len(series) == 30
    assert [d.day for d in series] == [first.date() + timedelta(days=i) for i in range(30)]
    assert _by_day(series) == {
        date(2026, 3, 30): (3, 2),
        date(2026, 3, 29): (1, 1),
        date(2026, 3, 1): (1, 1),
    }


async def test_daily_series_follows_the_clock_in_utc(services: Services) -> None:
    alice = await make_user(services, "1")
    await _message(services, alice, datetime(2026, 3, 30, 22, 30, tzinfo=UTC))
    # 01:00 on 31 Mar in UTC+2 is 23:00 on 30 Mar in UTC: "today" is 30 Mar.
    now = datetime(2026, 3, 31, 1, 0, tzinfo=timezone(timedelta(hours=2)))
    series = await StatsRepository(services.db).daily(now=now, days=7)
    assert [d.day for d in series][::6] == [date(2026, 3, 24), date(2026, 3, 30)]
    assert _by_day(series) == {date(2026, 3, 30): (1, 1)}


async def test_stats_sends_a_chart_after_the_text(services: Services) -> None:
    services = with_clock(services, FakeClock(NOW))
    admin = await make_user(services, "1", admin=True)
    await _message(services, admin, NOW - timedelta(days=2))

    result = await run(services, admin, "/stats")

    assert result.text.startswith("Users: 1 (0 banned, 1 admins)")
    [(filename, png, caption)] = result.channel.files
    assert filename == "stats.png"
    assert png.startswith(PNG_MAGIC)
    assert png[16:24] == WIDTH_PX.to_bytes(4, "big") + HEIGHT_PX.to_bytes(4, "big")
    assert caption is not None and "30 days" in caption and "1 messages" in caption


async def test_stats_gives_a_person_their_own_numbers_without_a_chart(
    services: Services,
) -> None:
    user = await make_user(services, "2")
    result = await run(services, user, "/stats")
    assert not result.channel.files
    assert result.text.startswith("Your numbers:")
