"""The `user_indexes` job: give the largest users recall indexes of their own.

Users with more than `CONTEXT_EXACT_RECALL_MAX_ROWS` rows (messages and valid facts)
qualify; the largest `MAX_INDEXED_USERS` of them get partial HNSW and GIN indexes of
their own (core/recall/user_indexes.py) and are searched through them; a user missing
some of them (indexed before the full-text ones existed) gets the missing ones. Their
rows and common terms are counted again at every run (`user_search_stats`, for keyword
recall). Everyone else, including qualifying users past that cap (counted as `unindexed`
and logged), is searched exactly. Users who no longer qualify (erased, merged) lose
theirs, and so do indexes of another embedding dimension (after a model change).
"""

from __future__ import annotations

import logging

from core.jobs.registry import JobOutcome, describe_error
from core.recall.user_indexes import UserIndexRepository
from core.storage.database import Database

logger = logging.getLogger(__name__)

# Every insert into the vector tables checks each partial index's predicate: keep the
# number of such indexes bounded.
MAX_INDEXED_USERS = 100


class UserIndexJob:
    name = "user_indexes"

    def __init__(
        self,
        db: Database,
        *,
        dimensions: int,
        min_messages: int,
        max_users: int = MAX_INDEXED_USERS,
    ) -> None:
        self._repo = UserIndexRepository(db, dimensions=dimensions)
        self._min_messages = min_messages
        self._max_users = max_users

    async def run(self) -> JobOutcome:
        outcome = JobOutcome(counts={"created": 0, "dropped": 0, "kept": 0, "unindexed": 0})
        largest = await self._repo.largest_users(self._min_messages, self._max_users + 1)
        if len(largest) > self._max_users:
            unindexed = await self._repo.count_users_above(self._min_messages) - self._max_users
            outcome.add("unindexed", unindexed)
            logger.warning(
                "user_indexes: %s users above %s rows get no index of their own (at most"
                " %s do); their recall is exact, and slower the larger they are",
                unindexed,
                self._min_messages,
                self._max_users,
            )
        wanted = set(largest[: self._max_users])
        existing = await self._repo.indexed_users()
        for user_id in sorted(await self._repo.indexed_users(complete=False) - wanted):
            await self._repo.drop(user_id)
            outcome.add("dropped")
        for name in await self._repo.other_dimension_indexes():
            await self._repo.drop_index(name)
            outcome.add("dropped")
        for user_id in sorted(wanted - existing):
            try:
                await self._repo.count_terms(user_id)
                await self._repo.create(user_id)
            except Exception as exc:
                logger.warning("user_indexes: user %s failed", user_id, exc_info=True)
                outcome.errors.append(f"user {user_id}: {describe_error(exc)}")
                continue
            logger.info("user_indexes: built the indexes of user %s", user_id)
            outcome.add("created")
        for user_id in sorted(existing & wanted):
            # Their words change as they talk: counted again at every run.
            try:
                await self._repo.count_terms(user_id)
            except Exception as exc:
                logger.warning("user_indexes: counting user %s failed", user_id, exc_info=True)
                outcome.errors.append(f"user {user_id}: {describe_error(exc)}")
        outcome.add("kept", len(existing & wanted))
        return outcome
