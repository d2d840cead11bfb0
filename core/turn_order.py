"""One person's turns, one at a time and in the order their messages were stored,
without holding a database connection while anyone waits.

In this process: per person, stores are serialised (so message ids follow arrival
order) and turns wait for the person's older turns of this process (`queue`). Across
processes: `TurnStore`'s queue and lease; a turn whose lease another process holds
waits, holding nothing, until that turn's end is announced (`TurnWakeups`) or its next
poll (`until_running`). The process keeps its queued turns and leases alive
(`keep_alive`); when it dies they expire and the next turn, on any replica, goes on.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass, field

from core.errors import StorageUnavailable
from core.storage.turn_wakeups import TurnWakeups, Wakeup
from core.storage.turns import Opened, ReadLimits, TurnStore

logger = logging.getLogger(__name__)


@dataclass
class _Person:
    storing: asyncio.Lock = field(default_factory=asyncio.Lock)
    queued: list[int] = field(default_factory=list)
    """Message ids of this process's turns of the person, oldest first."""
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    users: int = 0
    """Tasks using this entry; it is dropped when none is left."""


class TurnOrder:
    def __init__(
        self,
        store: TurnStore,
        *,
        wakeups: TurnWakeups | None = None,
        poll_first: float = 0.05,
        poll_max: float = 1.0,
        poll_max_listening: float = 5.0,
    ) -> None:
        """`wakeups`: the process's listener for turn ends (None: poll only). A turn
        waiting for another process's turn polls from `poll_first`, doubling to
        `poll_max`, or to `poll_max_listening` while the listener is up.

        With the listener the polls are a safety net: for a lease that expired (a
        crashed process announces nothing), a notification lost while the listener
        reconnected, and a turn that queued itself as the other's end was being
        written (that statement did not see it queued, so sent nothing). The first polls
        stay quick for that race; later ones, 5 s apart, add little to the 15 s or more
        that a crashed process's turns take to expire, and save most of the statements a
        turn waiting behind a long reply would send."""
        self._store = store
        self._wakeups = wakeups
        self._poll_first = poll_first
        self._poll_max = poll_max
        self._poll_max_listening = poll_max_listening
        self._people: dict[int, _Person] = {}

    @asynccontextmanager
    async def person(self, user_id: int) -> AsyncIterator[Slot]:
        """This process's place for one turn of the person, for the duration of it."""
        person = self._people.setdefault(user_id, _Person())
        person.users += 1
        slot = Slot(person)
        try:
            yield slot
        finally:
            if slot.message_id is not None:
                await slot.leave()
            person.users -= 1
            if person.users == 0:
                del self._people[user_id]

    def has(self, user_id: int, message_id: int) -> bool:
        """Whether a turn of this process has that message (queued or running)."""
        person = self._people.get(user_id)
        return person is not None and message_id in person.queued

    async def until_running(
        self, user_id: int, message_id: int, limits: ReadLimits
    ) -> tuple[Opened, float]:
        """Resume the message's turn until it may run (`state` set), or it turns out not
        to be ours (`queued` False: another live process has it) or gone; and the seconds
        spent waiting between tries. Only another process's turn of the person can hold
        it back here: tries again when that turn's end is announced, or at the next poll
        (backoff, see `__init__`)."""
        with self._watch(user_id) as wakeup:
            loop = asyncio.get_running_loop()
            delay = self._poll_first
            waited = 0.0
            while True:
                opened = await self._store.resume(user_id, message_id, limits)
                if opened.state is not None or not opened.queued or opened.message is None:
                    return opened, waited
                listening = self._wakeups is not None and self._wakeups.listening
                most = self._poll_max_listening if listening else self._poll_max
                delay = min(delay, most)
                started = loop.time()
                if wakeup is None:
                    await asyncio.sleep(delay)
                else:
                    await wakeup.wait(delay)
                waited += loop.time() - started
                delay = min(delay * 2, most)

    def _watch(self, user_id: int) -> AbstractContextManager[Wakeup | None]:
        return nullcontext() if self._wakeups is None else self._wakeups.watch(user_id)

    async def keep_alive(self) -> None:
        """Renew this process's queued turns and leases for ever, a third of a lease
        apart; an outage is logged and the renewal tried again."""
        interval = self._store.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await self._store.renew(
                    [i for person in self._people.values() for i in person.queued]
                )
            except StorageUnavailable:
                logger.warning("could not renew this process's turn leases: database unreachable")


class Slot:
    """One turn's place in its person's queue in this process."""

    def __init__(self, person: _Person) -> None:
        self._person = person
        self.message_id: int | None = None

    @asynccontextmanager
    async def storing(self) -> AsyncIterator[bool]:
        """Hold the person's store lock (one store at a time per person here, so ids
        follow arrival order); yields whether no older turn of theirs is queued here,
        so the store may try to start the turn at once."""
        async with self._person.storing:
            yield not self._person.queued

    def join(self, message_id: int) -> None:
        """Queue the turn of `message_id` (call while `storing`, or for a message stored
        before)."""
        self.message_id = message_id
        bisect.insort(self._person.queued, message_id)

    async def wait(self) -> None:
        """Until no older turn of the person is queued in this process."""
        assert self.message_id is not None
        changed = self._person.changed
        async with changed:
            await changed.wait_for(lambda: self._person.queued[0] == self.message_id)

    async def leave(self) -> None:
        assert self.message_id is not None
        self._person.queued.remove(self.message_id)
        self.message_id = None
        async with self._person.changed:
            self._person.changed.notify_all()
