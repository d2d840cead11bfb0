"""The one pipeline every platform shares: accept, route, remember, assemble, answer, record.

`Engine.handle(inbound, channel)` never raises (except cancellation): errors are caught
here, once, logged with the user id, and the person gets a short plain answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import asyncpg
import numpy as np

from core import metrics
from core.commands.base import CommandContext, ParsedCommand, parse_command
from core.commands.registry import dispatch
from core.context import AssembledContext, ContextAssembler, ContextLimits
from core.embedding.base import EmbeddingError
from core.errors import StorageUnavailable
from core.inbound import Inbound
from core.llm.client import Completion, TextDelta
from core.llm.errors import LLMError, LLMRateLimited
from core.models import Message, MessageStatus, Role, User
from core.ports import ReplyChannel, ReplySink
from core.recall.candidates import RecallCandidates
from core.recall.hybrid import HybridRecall
from core.recall.keywords import TextSearchRepository
from core.services import Services
from core.storage.database import Connection
from core.storage.directory import Directory, NewMessage
from core.storage.handled_commands import HandledCommandRepository
from core.storage.rate_limits import RateLimitRepository, TokenBucket
from core.unrecorded_replies import MessageKey, UnrecordedReplies
from core.user_lock import UserLocks

logger = logging.getLogger(__name__)

UNSUPPORTED = (
    "I can only read text for now: photos, voice messages, stickers and files are not "
    "supported yet. Please write it out in a message."
)
BANNED = "You have been banned from using this bot."
TOO_LONG = (
    "That message is too long ({length} characters; the limit is {limit}). "
    "Please shorten it or send it in parts. It was not saved."
)
RATE_LIMITED = "You're writing faster than I can keep up. Please wait {seconds} s and try again."
LLM_FAILED = (
    "Sorry, I couldn't reach my language model just now. Your message is saved: "
    "send /retry to try again, or just keep writing."
)
LLM_BUSY = (
    "Sorry, my language model is overloaded right now. Your message is saved: "
    "send /retry in a minute, or just keep writing."
)
INTERNAL_ERROR = "Sorry, something went wrong on my side. Please try again in a moment."
STORAGE_DOWN = (
    "I can't reach my memory right now. I'll answer this message as soon as I'm back; "
    "no need to send it again."
)
# How many messages' outage notices are remembered (to tell each person only once).
OUTAGE_MEMORY = 10_000
BANNED_MAY_RUN = frozenset({"export", "delete_me"})
UNKNOWN_COMMAND = "I don't know the command /{name}. Send /help to see what I can do."


@dataclass(frozen=True, slots=True)
class _Accepted:
    user: User
    is_admin: bool
    command: ParsedCommand | None
    locked: bool
    """The accepting connection holds the user's advisory lock (`UserLocks.adopts`)."""


@dataclass(frozen=True, slots=True)
class _Turn:
    """What answering one message needs besides the message itself."""

    user: User
    shared_chat: bool
    channel: ReplyChannel
    conn: Connection


@dataclass(frozen=True, slots=True)
class _Reply:
    """A model reply as it is recorded (`MessageRepository.add_assistant_message`)."""

    text: str
    snapshot: dict[str, Any]
    tokens_in: int
    tokens_out: int
    model: str
    response_ms: int
    embedding: np.ndarray[Any, Any] | None
    retried_ids: tuple[int, ...]


class Engine:
    def __init__(self, services: Services, *, persona: str) -> None:
        self._services = services
        self._locks = UserLocks(services.db)
        self._rate_limits = RateLimitRepository(services.db)
        self._bucket = TokenBucket(
            services.settings.limits.rate_burst, services.settings.limits.rate_per_minute
        )
        self._handled_commands = HandledCommandRepository(services.db)
        self._outage_told: set[MessageKey] = set()
        self._unrecorded: UnrecordedReplies[_Reply] = UnrecordedReplies()
        settings = services.settings
        self._assembler = ContextAssembler(
            directory=Directory(services.db),
            recall=HybridRecall(
                RecallCandidates(services.db, services.recall, TextSearchRepository(services.db))
            ),
            tokens=services.tokens,
            persona=persona,
            limits=ContextLimits(
                token_budget=settings.context.token_budget,
                recent_messages=settings.context.recent_messages,
                facts_max=settings.context.facts_max,
                recall_top_k=settings.context.recall_top_k,
            ),
        )

    async def handle(
        self,
        inbound: Inbound,
        channel: ReplyChannel,
        *,
        on_stored: Callable[[], None] | None = None,
    ) -> None:
        """Process one inbound message end to end.

        `on_stored` is called once, as soon as the platform no longer needs to deliver
        the message again: it is stored (before it is answered), or it was handled
        without needing to be (ignored, refused, a command that ran). It is not called
        when this raises.

        Raises only `StorageUnavailable` (the database is down: deliver the message again
        later, do not acknowledge it) and cancellation; every other error is logged here
        and answered with a short apology.
        """
        stored = _Once(on_stored)
        try:
            await self._handle(inbound, channel, stored)
            stored()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if is_storage_outage(exc):
                await self._tell_outage_once(inbound, channel)
                raise StorageUnavailable("the database is unreachable") from exc
            metrics.count_reply_failed("internal")
            logger.exception(
                "failed to handle a message from %s:%s", inbound.platform, inbound.platform_user_id
            )
            with suppress(Exception):
                await channel.send(INTERNAL_ERROR)
            stored()

    async def _tell_outage_once(self, inbound: Inbound, channel: ReplyChannel) -> None:
        key = (inbound.platform, inbound.chat_id, inbound.message_id)
        if key in self._outage_told:
            return
        if len(self._outage_told) >= OUTAGE_MEMORY:
            self._outage_told.clear()
        self._outage_told.add(key)
        if key in self._unrecorded:
            logger.warning("database unreachable; the reply to %s will be recorded later", key)
            return  # the person has their answer
        metrics.count_reply_failed("storage_unavailable")
        logger.warning("database unreachable; message %s will be handled again", key)
        with suppress(Exception):
            await channel.send(STORAGE_DOWN)

    async def _handle(self, inbound: Inbound, channel: ReplyChannel, stored: _Once) -> None:
        if not inbound.addressed:
            return
        inbound = _storable(inbound)
        metrics.count_message_in(inbound.platform)
        text = inbound.text.strip()
        if not text:
            if inbound.attachments:
                await channel.send(UNSUPPORTED)
            return
        async with self._services.db.connection() as conn:
            accepted = await self._accept(inbound, text, conn)
            if (
                isinstance(accepted, _Accepted)
                and accepted.command is None
                and self._locks.is_free(accepted.user.id)
            ):
                # The common case: answer on the connection already in hand (one pool
                # checkout per message), whose accepting statement took the user's
                # advisory lock if it could. A busy user waits for their lock below,
                # without holding a connection meanwhile (the pool's reset frees it).
                await self._converse(
                    accepted.user, inbound, text, channel, conn, stored, locked=accepted.locked
                )
                return
        if isinstance(accepted, str):
            if accepted:
                await channel.send(accepted)
            return
        if accepted.command is None:
            await self._converse(accepted.user, inbound, text, channel, None, stored)
        else:
            await self._run_command(accepted, inbound, channel)

    async def _accept(self, inbound: Inbound, text: str, conn: Connection) -> _Accepted | str:
        """Who is writing and whether they may: the accepted message, or a notice to send
        instead ("" for none). One statement decides (`UserRepository.admit`); runs on
        one connection, released before anything slow."""
        services = self._services
        command = parse_command(text)
        limit = services.settings.limits.max_message_chars
        config_admin = services.settings.is_admin(inbound.platform.value, inbound.platform_user_id)
        admission = await services.users.admit(
            inbound.platform,
            inbound.platform_user_id,
            bucket=self._bucket,
            clock=services.clock,
            admissible=len(text) <= limit,
            config_admin=config_admin,
            # A banned person may still take their data with them or erase it.
            ban_exempt=command is not None and command.name in BANNED_MAY_RUN,
            lock=command is None and self._locks.adopts,
            username=inbound.username,
            display_name=inbound.display_name,
            private_chat_id=inbound.chat_id if inbound.is_private else None,
            conn=conn,
        )
        user = admission.user
        if admission.banned:
            metrics.count_banned()
            return BANNED if await services.users.mark_ban_notified(user.id, conn=conn) else ""
        if len(text) > limit:
            return TOO_LONG.format(length=len(text), limit=limit)
        if admission.rate_limited:
            metrics.count_rate_limited()
            wait = await self._rate_limits.retry_after(
                user.id, self._bucket, now=services.clock(), conn=conn
            )
            return RATE_LIMITED.format(seconds=max(1, round(wait)))
        if command is not None:
            claimed = await self._handled_commands.claim(
                user.id,
                inbound.platform,
                inbound.chat_id,
                inbound.message_id,
                now=services.clock(),
                conn=conn,
            )
            if not claimed:
                return ""  # a redelivered command: it ran already
        return _Accepted(user, user.role is Role.ADMIN or config_admin, command, admission.locked)

    async def _run_command(
        self, accepted: _Accepted, inbound: Inbound, channel: ReplyChannel
    ) -> None:
        assert accepted.command is not None
        user = accepted.user
        context = CommandContext(
            services=self._services,
            inbound=inbound,
            user=user,
            is_admin=accepted.is_admin,
            channel=channel,
            answer_again=lambda message: self._answer_again(user, message, inbound, channel),
        )
        if not await dispatch(context, accepted.command):
            await channel.send(UNKNOWN_COMMAND.format(name=accepted.command.name))

    async def _converse(
        self,
        user: User,
        inbound: Inbound,
        text: str,
        channel: ReplyChannel,
        conn: Connection | None,
        stored: _Once,
        *,
        locked: bool = False,
    ) -> None:
        """Answer a message under the user's lock, on `conn` or a pool connection
        (`locked`: `conn` holds the advisory lock already)."""
        services = self._services
        async with self._locks.hold(user.id, conn, locked=locked) as conn:
            started = time.perf_counter()
            embedding = await self._embed(text)
            embedded = time.perf_counter()
            turn = _Turn(user, not inbound.is_private, channel, conn)
            # The message is stored by the statement that reads what answering it needs.
            opened = await self._assembler.store_and_assemble(
                user.id,
                NewMessage(text, inbound.platform, inbound.chat_id, inbound.message_id, embedding),
                shared_chat=turn.shared_chat,
                now=services.clock(),
                conn=conn,
            )
            stored()
            if opened is None:
                before = await services.messages.stored_before(
                    user.id,
                    platform=inbound.platform,
                    chat_id=inbound.chat_id,
                    platform_message_id=inbound.message_id,
                    conn=conn,
                )
                await self._redelivered(turn, before.message)
                return
            message, context = opened
            stored_and_read = embedded + context.read_seconds
            timings = {
                "embed_ms": _ms(started, embedded),
                "store_ms": _ms(embedded, stored_and_read),
                "assemble_ms": _ms(stored_and_read, time.perf_counter()),
            }
            await _quietly(channel.typing())
            await self._respond(turn, message, context, timings)

    async def _redelivered(self, turn: _Turn, message: Message) -> None:
        """A platform delivered a message again: answer it only if it never was."""
        if message.status is MessageStatus.PENDING:
            reply = self._unrecorded.get(_key(message), message.id)
            if reply is not None:
                await self._write_reply(turn, message, reply, delivered=True)
                self._unrecorded.forget(_key(message))
                metrics.count_message_out(message.platform)
                return
            logger.info(
                "answering redelivered pending message %s of user %s", message.id, turn.user.id
            )
            await self._answer(turn, message, await self._embed(message.content), {})
            return
        undelivered = await self._services.messages.undelivered_reply(
            turn.user.id, message.id, conn=turn.conn
        )
        if undelivered is not None:
            await turn.channel.start_reply().finish(undelivered.content)
            await self._services.messages.mark_delivered(
                turn.user.id, undelivered.id, conn=turn.conn
            )

    async def _answer_again(
        self, user: User, message: Message, inbound: Inbound, channel: ReplyChannel
    ) -> None:
        async with self._locks.hold(user.id) as conn:
            turn = _Turn(user, not inbound.is_private, channel, conn)
            await self._answer(turn, message, await self._embed(message.content), {})

    async def _embed(self, text: str) -> np.ndarray[Any, Any] | None:
        """The message's embedding, or None: a failing embedder must not lose the message."""
        try:
            vectors = await self._services.embedder.embed([text])
        except EmbeddingError as exc:
            logger.warning("embedding failed, storing the message without one: %s", exc)
            return None
        return vectors[0]

    async def _answer(
        self,
        turn: _Turn,
        message: Message,
        embedding: np.ndarray[Any, Any] | None,
        timings: dict[str, int],
    ) -> None:
        await _quietly(turn.channel.typing())
        started = time.perf_counter()
        context = await self._assembler.assemble(
            message,
            embedding,
            shared_chat=turn.shared_chat,
            now=self._services.clock(),
            conn=turn.conn,
        )
        timings["assemble_ms"] = _ms(started, time.perf_counter())
        await self._respond(turn, message, context, timings)

    async def _respond(
        self,
        turn: _Turn,
        message: Message,
        context: AssembledContext,
        timings: dict[str, int],
    ) -> None:
        """Have the model answer `message` with `context`, stream it, and record it."""
        services = self._services
        sink = turn.channel.start_reply()
        try:
            completion = await self._complete(context, sink, timings)
        except LLMError as exc:
            metrics.count_reply_failed(
                "llm_rate_limited" if isinstance(exc, LLMRateLimited) else "llm_error"
            )
            logger.warning("LLM failed for user %s: %s", turn.user.id, exc)
            await services.messages.set_status(
                turn.user.id, message.id, MessageStatus.FAILED, conn=turn.conn
            )
            await _quietly(sink.finish(LLM_BUSY if isinstance(exc, LLMRateLimited) else LLM_FAILED))
            return
        await self._record(turn, message, context, completion, timings, sink)

    async def _complete(
        self, context: AssembledContext, sink: ReplySink, timings: dict[str, int]
    ) -> Completion:
        services = self._services
        started = time.perf_counter()
        text = ""
        completion: Completion | None = None
        stream: AsyncIterator[TextDelta | Completion] = services.llm.stream(
            context.messages, max_tokens=services.settings.context.reply_max_tokens
        )
        async for event in stream:
            if isinstance(event, TextDelta):
                if not text:
                    timings["llm_first_token_ms"] = _ms(started, time.perf_counter())
                text += event.text
                await _quietly(sink.update(text))
            else:
                completion = event
        timings["llm_ms"] = _ms(started, time.perf_counter())
        assert completion is not None
        return completion

    async def _record(
        self,
        turn: _Turn,
        message: Message,
        context: AssembledContext,
        completion: Completion,
        timings: dict[str, int],
        sink: ReplySink,
    ) -> None:
        """Deliver the reply, then record it with its snapshot and whether it arrived,
        and the message as answered, in one statement.

        Delivering first spares a statement marking the reply delivered afterwards. A
        crash between the two leaves the message pending: when the platform delivers it
        again after the restart (Telegram does) it is answered again (at least once,
        docs/faults.md). After a database outage there the reply is kept
        (`UnrecordedReplies`) and recorded when the message comes again.
        """
        services = self._services
        started = time.perf_counter()
        text = completion.text.strip() or "…"
        tokens_in = completion.tokens_in or context.prompt_tokens
        tokens_out = completion.tokens_out or services.tokens.count(text)
        metrics.observe_llm(
            completion.latency_ms / 1000, tokens_in=tokens_in, tokens_out=tokens_out
        )
        reply = _Reply(
            text=text,
            snapshot={
                **context.snapshot,
                "model": completion.model,
                "tokens_in": tokens_in,
                "tokens_out": tokens_out,
                "timings_ms": timings,
            },
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            model=completion.model,
            response_ms=round(completion.latency_ms),
            embedding=await self._embed(text),
            retried_ids=context.failed_ids,
        )
        embedded = time.perf_counter()
        delivered = await self._deliver(turn, message, sink, text)
        delivery_seconds = time.perf_counter() - embedded
        try:
            await self._write_reply(turn, message, reply, delivered=delivered)
        except Exception as exc:
            if not delivered:
                raise
            if is_storage_outage(exc):
                self._unrecorded.keep(_key(message), message.id, reply)
                raise
            # The person has the answer: no apology for not recording it.
            metrics.count_reply_failed("internal")
            logger.exception(
                "could not record the reply delivered to message %s of user %s",
                message.id,
                turn.user.id,
            )
            return
        timings["record_ms"] = _ms(started + delivery_seconds, time.perf_counter())
        metrics.observe_timings(timings)
        if delivered:
            metrics.count_message_out(message.platform)

    async def _write_reply(
        self, turn: _Turn, message: Message, reply: _Reply, *, delivered: bool
    ) -> None:
        await self._services.messages.add_assistant_message(
            turn.user.id,
            reply.text,
            reply_to_id=message.id,
            platform=message.platform,
            chat_id=message.chat_id,
            context_snapshot=reply.snapshot,
            tokens_in=reply.tokens_in,
            tokens_out=reply.tokens_out,
            model=reply.model,
            response_ms=reply.response_ms,
            embedding=reply.embedding,
            retried_ids=reply.retried_ids,
            delivered=delivered,
            conn=turn.conn,
        )

    async def _deliver(self, turn: _Turn, message: Message, sink: ReplySink, text: str) -> bool:
        """Finish the reply on the platform: whether it arrived. One that did not is
        recorded as undelivered, and a redelivery of its message sends it again."""
        try:
            await sink.finish(text)
        except Exception:
            metrics.count_reply_failed("delivery")
            logger.exception(
                "could not deliver the reply to message %s of user %s", message.id, turn.user.id
            )
            return False
        return True


async def _quietly(step: Any) -> None:
    """Run a best-effort delivery step (typing, progressive edits): log, never fail."""
    try:
        await step
    except asyncio.CancelledError:
        raise
    except Exception:
        logger.warning("a progressive delivery step failed", exc_info=True)


def _storable(inbound: Inbound) -> Inbound:
    """PostgreSQL text cannot hold NUL characters: show them as U+FFFD instead."""

    def clean(value: str | None) -> str | None:
        return None if value is None else value.replace("\x00", "\ufffd")

    if "\x00" not in f"{inbound.text}{inbound.username}{inbound.display_name}":
        return inbound
    return dataclasses.replace(
        inbound,
        text=inbound.text.replace("\x00", "\ufffd"),
        username=clean(inbound.username),
        display_name=clean(inbound.display_name),
    )


def is_storage_outage(exc: BaseException) -> bool:
    """Whether an error means the database cannot be reached (as opposed to a bug)."""
    outage_types = (
        OSError,
        TimeoutError,
        asyncpg.InterfaceError,
        asyncpg.exceptions.PostgresConnectionError,
        asyncpg.exceptions.CannotConnectNowError,
        asyncpg.exceptions.OperatorInterventionError,
    )
    cause: BaseException | None = exc
    for _ in range(5):  # the error itself and a few links of its `raise ... from` chain
        if cause is None:
            return False
        if isinstance(cause, outage_types):
            return True
        cause = cause.__cause__
    return False


class _Once:
    """A callback run at most once."""

    def __init__(self, callback: Callable[[], None] | None) -> None:
        self._callback = callback

    def __call__(self) -> None:
        callback, self._callback = self._callback, None
        if callback is not None:
            callback()


def _key(message: Message) -> MessageKey:
    return (message.platform, message.chat_id, message.platform_message_id)


def _ms(start: float, end: float) -> int:
    return round((end - start) * 1000)
