"""Steps 5 and 6 of a turn: the model's answer, streamed into the chat within the
reply's deadline and a model slot, then delivered and recorded."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import numpy as np

from core import metrics
from core.context import AssembledContext
from core.embedding.base import embed_or_none
from core.errors import StorageUnavailable
from core.i18n import texts_for
from core.llm.client import Completion, TextDelta
from core.llm.errors import LLMError, LLMRateLimited
from core.model_slots import ModelSlots
from core.models import Message, User
from core.notices import LLM_BUSY, LLM_FAILED, TOO_SLOW
from core.ports import ReplyChannel, ReplySink
from core.services import Services
from core.storage.turns import Reply, TurnStore

logger = logging.getLogger(__name__)

# Recording a delivered reply is retried this long while the database is down (the
# platform has acknowledged the message: nobody would deliver it again).
RECORD_RETRY_SECONDS = 600.0
# At most this long between two tries. The turn ends only once its reply is recorded, so
# the person's next message waits for it: after an outage, at most this long more.
RECORD_RETRY_MAX_DELAY = 5.0


@dataclass(frozen=True, slots=True)
class Turn:
    """One message being answered, and where to."""

    user: User
    message: Message
    channel: ReplyChannel
    shared_chat: bool
    embedding: np.ndarray[Any, Any] | None
    timings: dict[str, int]
    """Milliseconds per stage, filled in as the turn goes (`ContextSnapshot.timings_ms`)."""


class ReplyWriter:
    def __init__(self, services: Services, turns: TurnStore, model: ModelSlots) -> None:
        self._services = services
        self._turns = turns
        self._model = model

    async def write(self, turn: Turn, context: AssembledContext) -> None:
        """Have the model answer `context`, streamed into the chat, then deliver and
        record the reply; a model failure or a missed deadline leaves the message
        `failed` and tells the person."""
        sink = turn.channel.start_reply()
        try:
            async with asyncio.timeout(self._services.settings.reply_deadline_seconds):
                completion = await self._complete(turn, context, sink)
        except (LLMError, TimeoutError) as exc:
            await self._turns.fail(turn.user.id, turn.message.id)
            t = texts_for(turn.user.language, turn.user.locale)
            await quietly(sink.finish(t.gettext(self._failure_notice(turn, exc))))
            return
        await self._record(turn, context, completion, sink)

    async def _complete(self, turn: Turn, context: AssembledContext, sink: ReplySink) -> Completion:
        """Stream the model's answer into `sink`, in a model slot (typing shown until
        the first words)."""
        services = self._services
        first_words = asyncio.Event()
        text = ""
        completion: Completion | None = None
        asked = time.perf_counter()
        async with self._model.slot(turn.channel.typing, first_words):
            started = time.perf_counter()
            turn.timings["model_slot_ms"] = ms(asked, started)
            async for event in services.llm.stream(
                context.messages,
                max_tokens=services.settings.context.reply_max_tokens,
                temperature=services.settings.context.reply_temperature,
            ):
                if isinstance(event, TextDelta):
                    if not text:
                        turn.timings["llm_first_token_ms"] = ms(started, time.perf_counter())
                        first_words.set()
                    text += event.text
                    await quietly(sink.update(text))
                else:
                    completion = event
            turn.timings["llm_ms"] = ms(started, time.perf_counter())
        assert completion is not None
        return completion

    def _failure_notice(self, turn: Turn, exc: BaseException) -> str:
        """The notice for the person (in English: translated by the caller)."""
        if isinstance(exc, TimeoutError):
            metrics.count_reply_failed("deadline")
            logger.warning(
                "reply to message %s of user %s missed its deadline", turn.message.id, turn.user.id
            )
            return TOO_SLOW
        rate_limited = isinstance(exc, LLMRateLimited)
        metrics.count_reply_failed("llm_rate_limited" if rate_limited else "llm_error")
        logger.warning("LLM failed for user %s: %s", turn.user.id, exc)
        return LLM_BUSY if rate_limited else LLM_FAILED

    async def _record(
        self, turn: Turn, context: AssembledContext, completion: Completion, sink: ReplySink
    ) -> None:
        """Deliver the reply, then record it with its snapshot and whether it arrived,
        and the message as answered, ending the turn, in one statement.

        Delivering first spares a statement marking the reply delivered afterwards. A
        crash between the two leaves the message pending, and it is answered again at
        the next start (at least once, docs/faults.md). While the database is down the
        record is retried here: the platform has acknowledged the message.
        """
        services = self._services
        started = time.perf_counter()
        # PostgreSQL text cannot hold NUL, and no platform shows one: dropped.
        text = completion.text.replace("\x00", "").strip() or "…"
        tokens_in = completion.tokens_in or context.prompt_tokens
        tokens_out = completion.tokens_out or services.tokens.count(text)
        metrics.observe_llm(
            completion.latency_ms / 1000, tokens_in=tokens_in, tokens_out=tokens_out
        )
        embedding = await embed_or_none(services.embedder, text)
        embedded = time.perf_counter()
        delivered, platform_message_id = await self._deliver(turn, sink, text)
        delivery_seconds = time.perf_counter() - embedded
        reply = Reply(
            text=text,
            snapshot=context.snapshot.answered(
                model=completion.model,
                tokens_in=tokens_in,
                tokens_out=tokens_out,
                timings_ms=turn.timings,
            ),
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            model=completion.model,
            response_ms=round(completion.latency_ms),
            embedding=embedding,
            answers_also=context.failed_ids,
            platform_message_id=platform_message_id,
        )
        try:
            await self._close(turn, reply, delivered=delivered)
        except Exception:
            if not delivered:
                raise
            # The person has the answer: no apology for not recording it.
            metrics.count_reply_failed("internal")
            logger.exception(
                "could not record the reply delivered to message %s of user %s",
                turn.message.id,
                turn.user.id,
            )
            return
        turn.timings["record_ms"] = ms(started + delivery_seconds, time.perf_counter())
        metrics.observe_timings(turn.timings)
        if delivered:
            metrics.count_message_out(turn.message.platform)

    async def _close(self, turn: Turn, reply: Reply, *, delivered: bool) -> None:
        """Record the reply; a delivered one is retried through an outage (for
        `RECORD_RETRY_SECONDS`), as nobody would deliver its message again."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + RECORD_RETRY_SECONDS
        delay = 1.0
        tries = 0
        while True:
            try:
                await self._turns.close(turn.user.id, turn.message, reply, delivered=delivered)
            except StorageUnavailable:
                if not delivered or loop.time() + delay > give_up:
                    raise
                tries += 1
                # Every reply in flight in an outage waits here: one warning each.
                log = logger.warning if tries == 1 else logger.debug
                log(
                    "database unreachable; recording the reply to message %s again in %.0f s",
                    turn.message.id,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECORD_RETRY_MAX_DELAY)
            else:
                if tries:
                    logger.info(
                        "recorded the reply to message %s at try %s", turn.message.id, tries + 1
                    )
                return

    async def _deliver(self, turn: Turn, sink: ReplySink, text: str) -> tuple[bool, str | None]:
        """Finish the reply on the platform: whether it arrived, and the platform's id
        of its message. One that did not arrive is recorded as undelivered, and a
        redelivery of its message sends it again."""
        try:
            return True, await sink.finish(text)
        except Exception:
            metrics.count_reply_failed("delivery")
            logger.exception(
                "could not deliver the reply to message %s of user %s",
                turn.message.id,
                turn.user.id,
            )
            return False, None


async def quietly(step: Awaitable[Any]) -> None:
    """Run a best-effort delivery step (progressive edits, notices): log, never fail."""
    try:
        await step
    except asyncio.CancelledError:
        raise
    except Exception:
        logger.warning("a progressive delivery step failed", exc_info=True)


def ms(start: float, end: float) -> int:
    return round((end - start) * 1000)
