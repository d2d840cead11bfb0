"""Long polling that acknowledges an update as soon as a crash could no longer lose it.

Telegram forgets updates below the `offset` of the next getUpdates call. PTB's
`Updater` advances that offset as soon as updates are fetched (they are acknowledged
by the following call, while they may still sit unprocessed in its queue), so a crash
loses them. Here the offset is the lowest update id that is not acknowledgeable yet
(`dispatch.Submission`: its message not stored, its handler not finished), or one past
the highest seen when every update is. Replies still being written do not hold it
back: getUpdates returns at most 100 updates from the offset, so one slow reply would
otherwise keep Telegram from sending anything behind them. A crash or kill makes
Telegram deliver again the updates that were not stored (and those stored since the
last getUpdates, which carries the offset); the engine deduplicates what it stored
already, and answers at start-up what it stored but never answered.

Handlers run concurrently, so the loop keeps polling. Updates not yet acknowledgeable
come back in those polls and are skipped; when a poll brings nothing new, the loop
waits for one of them to become acknowledgeable (or `idle_wait`) rather than asking
again at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from contextlib import suppress

from telegram import Bot, Update
from telegram.error import InvalidToken, TelegramError

from adapters.telegram.dispatch import Dispatcher
from adapters.telegram.translate import parse_update

logger = logging.getLogger(__name__)

# getUpdates long-polls for `timeout` seconds; the HTTP read may take a little longer.
READ_TIMEOUT_MARGIN = 5.0


class Poller:
    def __init__(
        self,
        bot: Bot,
        dispatcher: Dispatcher,
        *,
        timeout: int,
        allowed_updates: Sequence[str],
        idle_wait: float = 1.0,
        error_backoff: float = 1.0,
    ) -> None:
        self._bot = bot
        self._dispatcher = dispatcher
        self._timeout = timeout
        self._allowed_updates = list(allowed_updates)
        self._idle_wait = idle_wait
        self._error_backoff = error_backoff
        # Update id -> `acknowledgeable`, until it is done (or for good, once cancelled).
        self._unacknowledged: dict[int, asyncio.Future[None]] = {}
        self._highest: int | None = None
        self._task: asyncio.Task[None] | None = None
        self.connected = False

    @property
    def offset(self) -> int | None:
        """The next getUpdates offset: everything below it is acknowledgeable."""
        if self._unacknowledged:
            return min(self._unacknowledged)
        return None if self._highest is None else self._highest + 1

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="telegram-polling")

    async def stop(self, grace: float) -> None:
        """Stop fetching, let handlers finish within `grace` seconds, acknowledge what
        is acknowledgeable by then."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        await self._dispatcher.drain(grace)
        self.connected = False
        offset = self.offset
        if offset is not None:
            try:
                # Confirms everything below `offset`; the one update it may return stays
                # unconfirmed and comes again after a restart.
                await self._bot.get_updates(offset=offset, limit=1, timeout=0)
            except TelegramError as exc:
                logger.warning("could not acknowledge handled telegram updates: %s", exc)

    async def _loop(self) -> None:
        while True:
            try:
                updates = await self._fetch()
            except InvalidToken:
                self.connected = False
                logger.error("telegram rejected the bot token; polling stopped")
                return
            except TelegramError as exc:
                self.connected = False
                logger.warning("telegram getUpdates failed: %s", exc)
                await asyncio.sleep(self._error_backoff)
                continue
            except Exception:
                # Never let one bad answer end polling for good.
                self.connected = False
                logger.exception("telegram getUpdates failed unexpectedly")
                await asyncio.sleep(self._error_backoff)
                continue
            self.connected = True
            fresh = [u for u in updates if self._highest is None or u.update_id > self._highest]
            for update in fresh:
                self._track(update.update_id, self._dispatcher.submit(update).acknowledgeable)
                self._highest = update.update_id
            if updates and not fresh and self._unacknowledged:
                await asyncio.wait(
                    set(self._unacknowledged.values()),
                    timeout=self._idle_wait,
                    return_when=asyncio.FIRST_COMPLETED,
                )

    async def _fetch(self) -> list[Update]:
        """One getUpdates call, each update parsed on its own.

        python-telegram-bot parses a whole batch at once, so one update it cannot parse
        (a field missing, a type it does not know) would fail every poll from then on.
        Such an update is skipped (acknowledged) with a warning naming only its id.
        """
        kwargs: dict[str, object] = {
            "timeout": self._timeout,
            "allowed_updates": self._allowed_updates,
        }
        if self.offset is not None:
            kwargs["offset"] = self.offset
        # Lower case: Bot API method names are case-insensitive, and PTB warns when the
        # exact name of one of its own methods is requested this way.
        raw = await self._bot.do_api_request(
            "getupdates",
            api_kwargs=kwargs,
            read_timeout=self._timeout + READ_TIMEOUT_MARGIN,
        )
        updates = []
        for item in raw if isinstance(raw, list) else []:
            update = parse_update(item, self._bot)
            if update is None:
                update_id = item.get("update_id") if isinstance(item, dict) else None
                if isinstance(update_id, int) and (
                    self._highest is None or update_id > self._highest
                ):
                    self._highest = update_id
                continue
            updates.append(update)
        return updates

    def _track(self, update_id: int, acknowledgeable: asyncio.Future[None]) -> None:
        self._unacknowledged[update_id] = acknowledgeable

        def done(future: asyncio.Future[None]) -> None:
            # Cancelled by shutdown before it was stored: it stays unconfirmed.
            if not future.cancelled():
                self._unacknowledged.pop(update_id, None)

        acknowledgeable.add_done_callback(done)
