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


async def _identity_row(db: Database, who: str) -> tuple[str, str | None, str | None]:
    """(the physical row's location, username, private chat) of an identity: an
    UPDATE moves the row, so an unchanged location means nothing was written."""
    async with db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT ctid::text, username, private_chat_id FROM identities"
            " WHERE platform = 'telegram' AND platform_user_id = $1",
            who,
        )
    assert row is not None
    return row[0], row[1], row[2]


async def test_a_new_username_is_stored_and_an_unchanged_one_writes_nothing(
    db: Database,
) -> None:
    users = UserRepository(db)
    at = NOW

    async def admit(**options: Any) -> None:
        nonlocal at
        at += timedelta(minutes=10)  # a full bucket each time
        await _admit(db, "f1", now=at, **options)

    await admit(username="old_name", private_chat_id="dm-f1")
    where, username, _ = await _identity_row(db, "f1")
    assert username == "old_name"
    await admit(username="old_name", private_chat_id="dm-f1")
    assert await _identity_row(db, "f1") == (where, "old_name", "dm-f1")

    await admit(username="New_Name")  # renamed, written from a group (no private chat)
    moved, username, chat = await _identity_row(db, "f1")
    assert (username, chat) == ("New_Name", "dm-f1") and moved != where
    found = await users.find("@new_name")
    assert found is not None and await users.find("@old_name") is None

    await admit(username=None)  # the platform shows no username any more
    assert (await _identity_row(db, "f1"))[1] is None
    assert await users.find("@new_name") is None

    # Refused messages say who is writing just as well.
    await users.set_status(found.id, UserStatus.BANNED)
    await admit(username="third_name")
    assert (await _identity_row(db, "f1"))[1] == "third_name"


async def test_a_refused_stretch_is_told_once(db: Database) -> None:
    """Ten messages at once over a burst of two: two let in, eight refused, and only
    the first refusal is the one to tell; after the bucket refills and a message is let
    in, the next stretch is told once more."""

    async def burst(at: datetime, count: int) -> list[tuple[bool, bool]]:
        return [
            ((a := await _admit(db, "g1", now=at)).rate_limited, a.first_refusal)
            for _ in range(count)
        ]

    first = await burst(NOW, 10)
    assert first == [(False, False)] * 2 + [(True, True)] + [(True, False)] * 7
    # Still refused a little later: the same stretch, nothing more to tell.
    assert await burst(NOW + BUCKET.interval / 2, 3) == [(True, False)] * 3

    later = NOW + BUCKET.window
    second = await burst(later, 10)
    assert second == [(False, False)] * 2 + [(True, True)] + [(True, False)] * 7

    # A message refused for being too long, or one of an admin, neither ends the
    # stretch nor is told as part of it.
    too_long = await _admit(db, "g1", now=later, admissible=False)
    as_admin = await _admit(db, "g1", now=later, config_admin=True)
    assert not (too_long.rate_limited or too_long.first_refusal)
    assert not (as_admin.rate_limited or as_admin.first_refusal)
    assert await burst(later, 1) == [(True, False)]


async def test_concurrent_refusals_are_told_once(fresh_dsn: str) -> None:
    pool = await create_pool(fresh_dsn, min_size=8, max_size=8)
    try:
        db = Database(pool)
        for _ in range(BUCKET.burst):
            assert not (await _admit(db, "h1")).rate_limited
        refused = await asyncio.gather(*(_admit(db, "h1") for _ in range(24)))
        assert all(a.rate_limited for a in refused)
        assert sum(a.first_refusal for a in refused) == 1
    finally:
        await pool.close()
