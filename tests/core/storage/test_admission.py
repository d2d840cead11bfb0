"""`Admissions.admit`: who writes, and whether the message is let in, in one statement."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from core.models import Platform, Role, UserStatus
from core.storage.admission import Admission, Admissions
from core.storage.database import Database, connect, create_pool
from core.storage.rate_limits import RateLimitRepository, TokenBucket
from core.storage.users import LAST_SEEN_RESOLUTION, UserRepository

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BUCKET = TokenBucket(burst=2, per_minute=6)  # a token every 10 s, two at once


async def _admit(db: Database, who: str, now: datetime = NOW, **options: Any) -> Admission:
    options.setdefault("admissible", True)
    return await Admissions(db).admit(
        Platform.TELEGRAM, who, bucket=BUCKET, clock=lambda: now, **options
    )


async def _state(db: Database, user_id: int) -> tuple[datetime | None, datetime | None]:
    """(the bucket's TAT, last seen) of a user."""
    async with db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT (SELECT tat FROM rate_limits WHERE user_id = u.id) AS tat, u.last_seen_at"
            " FROM users u WHERE u.id = $1",
            user_id,
        )
    assert row is not None
    return row["tat"], row["last_seen_at"]


async def _unseen(db: Database, user_id: int) -> None:
    async with db.connection() as conn:
        await conn.execute("UPDATE users SET last_seen_at = NULL WHERE id = $1", user_id)


async def test_first_message_creates_the_user_takes_a_token_and_stamps(db: Database) -> None:
    first = await _admit(db, "a1", display_name="Ann", private_chat_id="dm-a1")
    assert first.created and not first.banned and not first.rate_limited
    assert first.user.display_name == "Ann"
    tat, seen = await _state(db, first.user.id)
    assert tat == NOW + BUCKET.interval and seen is not None
    again = await _admit(db, "a1")
    assert (again.user.id, again.created) == (first.user.id, False)
    assert (await _state(db, first.user.id))[0] == NOW + 2 * BUCKET.interval


async def test_the_bucket_runs_out_and_refills(db: Database) -> None:
    user = (await _admit(db, "b1")).user
    assert not (await _admit(db, "b1")).rate_limited
    await _unseen(db, user.id)
    refused = await _admit(db, "b1")
    assert refused.rate_limited
    # A refusal takes nothing and is not "seen".
    assert await _state(db, user.id) == (NOW + 2 * BUCKET.interval, None)
    wait = await RateLimitRepository(db).retry_after(user.id, BUCKET, now=NOW)
    assert wait == BUCKET.interval.total_seconds()
    assert not (await _admit(db, "b1", now=NOW + BUCKET.interval)).rate_limited


async def test_refused_messages_take_no_token_and_leave_last_seen(db: Database) -> None:
    users = UserRepository(db)
    user = (await _admit(db, "c1")).user
    before = await _state(db, user.id)
    await _unseen(db, user.id)
    too_long = await _admit(db, "c1", admissible=False)
    assert not too_long.banned and not too_long.rate_limited
    assert await _state(db, user.id) == (before[0], None)

    await users.set_status(user.id, UserStatus.BANNED)
    banned = await _admit(db, "c1")
    assert banned.banned and not banned.rate_limited
    assert await _state(db, user.id) == (before[0], None)

    # /export and /delete_me stay open to a banned person, at the usual rate.
    exempt = await _admit(db, "c1", ban_exempt=True)
    assert not exempt.banned
    tat, seen = await _state(db, user.id)
    assert tat == NOW + 2 * BUCKET.interval and seen is not None


async def test_admins_pass_bans_and_take_no_tokens(db: Database) -> None:
    users = UserRepository(db)
    by_role = (await _admit(db, "d1")).user
    await users.set_role(by_role.id, Role.ADMIN)
    await users.set_status(by_role.id, UserStatus.BANNED)
    by_config = (await _admit(db, "d2")).user
    await users.set_status(by_config.id, UserStatus.BANNED)
    for who, config_admin, user_id in (("d1", False, by_role.id), ("d2", True, by_config.id)):
        tat_before, _ = await _state(db, user_id)
        await _unseen(db, user_id)
        for _ in range(5):
            admitted = await _admit(db, who, config_admin=config_admin)
            assert not admitted.banned and not admitted.rate_limited
        tat, seen = await _state(db, user_id)
        assert tat == tat_before and seen is not None


async def test_last_seen_is_stamped_when_stale_or_renamed(db: Database) -> None:
    user = (await _admit(db, "e1", display_name="Eve")).user
    _, first = await _state(db, user.id)
    assert first is not None

    at = NOW

    async def stamped_after(delta: timedelta, **options: Any) -> bool:
        """Whether a message at `at` stamps a last seen `delta` before it."""
        nonlocal at
        at += timedelta(hours=1)  # a full bucket each time
        async with db.connection() as conn:
            await conn.execute(
                "UPDATE users SET last_seen_at = $2 WHERE id = $1", user.id, at - delta
            )
        await _admit(db, "e1", now=at, **options)
        seen = (await _state(db, user.id))[1]
        assert seen in (at - delta, first)  # first: now(), one instant in the test's txn
        return seen == first

    second = timedelta(seconds=1)
    assert not await stamped_after(LAST_SEEN_RESOLUTION - second)
    assert await stamped_after(LAST_SEEN_RESOLUTION)
    assert not await stamped_after(second - LAST_SEEN_RESOLUTION)  # a clock set back
    assert await stamped_after(-LAST_SEEN_RESOLUTION)
    assert not await stamped_after(second, display_name="Eve")
    assert await stamped_after(second, display_name="Eva")
    renamed = await UserRepository(db).get(user.id)
    assert renamed is not None and renamed.display_name == "Eva"


async def test_erasing_a_user_takes_locks_in_the_admissions_order(fresh_dsn: str) -> None:
    """An admission holds the user's bucket, then stamps their row; an erasure meanwhile
    must not hold that row while it waits for the bucket (a deadlock: one of the two
    would be aborted)."""
    pool = await create_pool(fresh_dsn, min_size=2, max_size=3)
    admission = await connect(fresh_dsn)
    try:
        users = UserRepository(Database(pool))
        admitted = await Admissions(Database(pool)).admit(
            Platform.TELEGRAM, "gone", bucket=BUCKET, clock=lambda: NOW, admissible=True
        )
        user = admitted.user
        async with admission.transaction():
            # The admission's two steps, with the erasure starting in between.
            await admission.execute(
                "UPDATE rate_limits SET tat = tat + interval '1 second' WHERE user_id = $1",
                user.id,
            )
            erasure = asyncio.create_task(users.delete(user.id))
            await asyncio.sleep(0.3)  # the erasure is waiting for the bucket now
            assert not erasure.done()
            await asyncio.wait_for(
                admission.execute("UPDATE users SET last_seen_at = now() WHERE id = $1", user.id),
                timeout=5,
            )
        assert await erasure
        assert await users.get(user.id) is None
    finally:
        await admission.close()
        await pool.close()
