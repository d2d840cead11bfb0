"""The per-user lock across processes: a session advisory lock on the user id."""

from __future__ import annotations

from datetime import UTC, datetime

from core.models import Platform
from core.storage.database import Connection, Database, connect, create_pool
from core.storage.rate_limits import TokenBucket
from core.storage.users import Admission, UserRepository
from core.user_lock import UserLocks


async def _free(dsn: str, user_id: int) -> bool:
    """Whether another session (another replica) could take the user's lock now."""
    other = await connect(dsn)
    try:
        taken = bool(await other.fetchval("SELECT pg_try_advisory_lock($1)", user_id))
        if taken:
            await other.execute("SELECT pg_advisory_unlock($1)", user_id)
        return taken
    finally:
        await other.close()


async def test_the_lock_is_held_for_the_turn_and_free_after_it(fresh_dsn: str) -> None:
    pool = await create_pool(fresh_dsn, min_size=1, max_size=2)
    lone = await connect(fresh_dsn)
    try:
        for db in (Database(pool), Database(lone)):
            locks = UserLocks(db)
            async with locks.hold(42):
                assert not await _free(fresh_dsn, 42)
                assert await _free(fresh_dsn, 43)  # other users are never blocked
            assert await _free(fresh_dsn, 42)
    finally:
        await lone.close()
        await pool.close()


async def test_the_accepting_statement_takes_the_same_lock_and_the_turn_adopts_it(
    fresh_dsn: str,
) -> None:
    pool = await create_pool(fresh_dsn, min_size=1, max_size=2)
    lone = await connect(fresh_dsn)
    try:
        db = Database(pool)
        users = UserRepository(db)
        locks = UserLocks(db)
        assert locks.adopts and not UserLocks(Database(lone)).adopts

        async def admit(conn: Connection | None = None, admissible: bool = True) -> Admission:
            return await users.admit(
                Platform.TELEGRAM,
                "locked",
                bucket=TokenBucket(burst=100, per_minute=60),
                clock=lambda: datetime.now(UTC),
                admissible=admissible,
                lock=True,
                conn=conn,
            )

        async with db.connection() as conn:
            admitted = await admit(conn)
            user_id = admitted.user.id
            assert admitted.locked
            assert not await _free(fresh_dsn, user_id)  # the key `hold` uses
            assert not (await admit()).locked  # another session's try fails
            async with locks.hold(user_id, conn, locked=True) as held:
                assert held is conn
                assert not await _free(fresh_dsn, user_id)
        assert await _free(fresh_dsn, user_id)  # the pool's reset released it

        async with db.connection() as conn:
            refused = await admit(conn, admissible=False)  # e.g. too long
            assert not refused.locked
            assert await _free(fresh_dsn, user_id)
    finally:
        await lone.close()
        await pool.close()
