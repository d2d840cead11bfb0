"""The per-user lock across processes: a session advisory lock on the user id."""

from __future__ import annotations

from core.storage.database import Database, connect, create_pool
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
