"""The one pipeline every platform shares, one short method per step:
accept -> route -> remember -> (wait for the person's turn) -> assemble -> answer -> record.

A turn takes a pooled connection only for its statements (admit; store and read; recall;
record), never while it waits for the model, the platform or another turn of the same
person (`core.turn_order`). `Engine.handle(inbound, channel)` never raises but for
`StorageUnavailable` (not stored: deliver it again) and cancellation; every other error
is caught here, once, logged with the user id, and the person gets a short plain answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from config.persona import Persona
from core import metrics
from core.commands.base import CommandContext, ParsedCommand, parse_command
from core.commands.registry import dispatch
from core.context import AssembledContext, ContextAssembler, ContextLimits
from core.documents.service import Documents
from core.embedding.base import embed_or_none
from core.errors import StorageBusy, StorageUnavailable
from core.i18n import Notice, Texts, texts_for
from core.inbound import Inbound
from core.media.plan import Abilities, MediaPlan, plan
from core.media.prepare import MediaFailed, MediaPreparer, Prepared
from core.model_slots import ModelSlots
from core.models import Message, MessageStatus, MessageType, Platform, Role, SharedChat, User
from core.notices import (
    ALREADY_ANSWERED,
    BANNED,
    INTERNAL_ERROR,
    INTERRUPTED,
    LOST_WHILE_DOWN,
    RATE_LIMITED,
    STILL_WORKING,
    STORAGE_BUSY,
    STORAGE_DOWN,
    TOO_LONG,
    UNKNOWN_COMMAND,
)
from core.ports import ReplyChannel
from core.recall.candidates import RecallCandidates
from core.recall.hybrid import HybridRecall
from core.recall.keywords import TextSearchRepository
from core.replies import ReplyWriter, Turn, ms, quietly
from core.services import Services
from core.storage.admission import Admissions
from core.storage.handled_commands import HandledCommandRepository
from core.storage.messages import text_search_config
from core.storage.rate_limits import RateLimitRepository, TokenBucket
from core.storage.turn_wakeups import TurnWakeups
from core.storage.turns import NewMessage, Opened, ReadLimits, TurnStore
from core.turn_order import Slot, TurnOrder

logger = logging.getLogger(__name__)

# How many messages' outage notices are remembered (to tell each person only once).
OUTAGE_MEMORY = 10_000
BANNED_MAY_RUN = frozenset({"export", "delete_me"})
# A process renews its turns' leases a third of this apart; when it dies, another
# replica goes on with the person's next turn at most this long after.
LEASE_SECONDS = 15.0
# Orphans (pending messages whose process died) younger than this are answered at
# start-up; older ones are marked failed and the person told.
ANSWER_ORPHANS_WITHIN = timedelta(hours=1)

ChannelFor = Callable[[Message, bool], AbstractAsyncContextManager[ReplyChannel | None]]
"""A reply channel to an orphan's chat (`Engine.recover`), for as long as it is
answered: the message, and whether its chat is private; None when the chat cannot be
reached."""


@dataclass(frozen=True, slots=True)
class _Accepted:
    user: User
    is_admin: bool
    command: ParsedCommand | None


class Engine:
    def __init__(
        self,
        services: Services,
        *,
        persona: Persona,
        turns: TurnStore | None = None,
        wakeups: TurnWakeups | None = None,
    ) -> None:
        """`turns`: this process's turn store (its own holder id); by default a new one.
        Benchmarks pass one that observes the replies it records. `wakeups`: the
        process's listener for turn ends (`core.turn_order`); without one, a turn
        waiting for another replica's turn only polls."""
        self._services = services
        self._persona = persona
        settings = services.settings
        db = services.db
        self._admissions = Admissions(db)
        self._rate_limits = RateLimitRepository(db)
        self._bucket = TokenBucket(settings.limits.rate_burst, settings.limits.rate_per_minute)
        self._handled_commands = HandledCommandRepository(db)
        self._running_commands: set[tuple[str, str, str]] = set()
        self._turns = turns or TurnStore(
            db, holder=uuid.uuid4(), lease_seconds=LEASE_SECONDS, assistant_name=persona.name
        )
        self._order = TurnOrder(self._turns, wakeups=wakeups)
        # Model calls at once (LLM_MAX_CONCURRENCY): replies, and making media into text
        # (downloads, transcriptions, descriptions), which hold files in memory.
        self._model_slots = ModelSlots(settings.llm_max_concurrency)
        self._replies = ReplyWriter(services, self._turns, self._model_slots)
        self._recall = HybridRecall(RecallCandidates(db, services.recall, TextSearchRepository(db)))
        self._documents = Documents(services)
        self._assembler = ContextAssembler(
            tokens=services.tokens,
            persona=persona,
            limits=ContextLimits(
                token_budget=settings.context.token_budget,
                recent_messages=settings.context.recent_messages,
                facts_max=settings.context.facts_max,
                recall_top_k=settings.context.recall_top_k,
            ),
        )
        self._outage_told: set[tuple[str, str, str]] = set()
        self._keep_alive: asyncio.Task[None] | None = None
        self._media = MediaPreparer(services, self._documents)

    async def start(self) -> None:
        """Keep this process's turns alive in the database (`TurnOrder.keep_alive`)."""
        if self._keep_alive is None:
            self._keep_alive = asyncio.create_task(self._order.keep_alive(), name="turn-leases")

    async def stop(self) -> None:
        task, self._keep_alive = self._keep_alive, None
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

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

        Raises only `StorageUnavailable` (the database is down, or has no connection
        free: deliver the message again later, do not acknowledge it) and
        cancellation; every other error is logged here and answered with a short
        apology.
        """
        stored = _Once(on_stored)
        try:
            await self._handle(inbound, channel, stored)
        except asyncio.CancelledError:
            raise
        except StorageUnavailable as exc:
            await self._tell_outage_once(inbound, channel, exc)
            raise
        except Exception:
            metrics.count_reply_failed("internal")
            logger.exception(
                "failed to handle a message from %s:%s", inbound.platform, inbound.platform_user_id
            )
            with suppress(Exception):
                await channel.send(texts_for(inbound.language).gettext(INTERNAL_ERROR))
        stored()

    async def recover(self, platform: Platform, channel_for: ChannelFor) -> int:
        """Answer the messages of `platform` left pending by a process that died (its
        turns expired), oldest first per person; older than `ANSWER_ORPHANS_WITHIN`,
        mark them failed and tell the person. How many were found."""
        orphans = await self._turns.orphans(platform)
        now = self._services.clock()
        people: dict[int, list[tuple[Message, bool]]] = {}
        for orphan in orphans:
            people.setdefault(orphan.message.user_id, []).append((orphan.message, orphan.private))

        async def recover_person(messages: list[tuple[Message, bool]]) -> None:
            for message, private in messages:
                try:
                    await self._recover(message, private, channel_for, now)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception("could not recover message %s", message.id)

        await asyncio.gather(*(recover_person(m) for m in people.values()))
        if orphans:
            logger.info("recovered %s %s messages left pending", len(orphans), platform)
        return len(orphans)

    # 1 accept -------------------------------------------------------------------------

    async def _handle(self, inbound: Inbound, channel: ReplyChannel, stored: _Once) -> None:
        if not inbound.addressed:
            return
        inbound = _storable(inbound)
        metrics.count_message_in(inbound.platform)
        text = inbound.text.strip()
        media = await self._plan(inbound, text, channel)
        if not text and media is None:
            return
        accepted = await self._accept(inbound, text)
        if isinstance(accepted, str):
            if accepted:
                await channel.send(accepted)
        elif accepted.command is not None and media is None:
            await self._run_command(accepted, inbound, channel)
        else:
            await self._converse(accepted.user, inbound, text, channel, stored, media)

    async def _plan(self, inbound: Inbound, text: str, channel: ReplyChannel) -> MediaPlan | None:
        """What becomes of the message's attachments (`core.media.plan`), from their
        metadata; a refusal is told here (before admission: in the message's language).
        A document of a kind or size not kept is refused before it is downloaded; its
        caption is still answered as text."""
        media = plan(inbound.attachments, text, self._abilities(inbound.platform))
        if isinstance(media, Notice):
            await channel.send(texts_for(inbound.language).say(media))
            return None
        if media is not None and media.message_type is MessageType.DOCUMENT:
            document = media.attachment
            refused = self._documents.refuse_before_download(
                document.name or "", document.mime_type, document.size
            )
            if refused is not None:
                await channel.send(texts_for(inbound.language).say(refused.answer))
                return None
        return media

    async def _accept(self, inbound: Inbound, text: str) -> _Accepted | str:
        """Who is writing and whether they may: the accepted message, or a notice to send
        instead ("" for none). One statement decides (`Admissions.admit`)."""
        services = self._services
        command = parse_command(text)
        limit = services.settings.limits.max_message_chars
        config_admin = services.settings.is_admin(inbound.platform.value, inbound.platform_user_id)
        admission = await self._admissions.admit(
            inbound.platform,
            inbound.platform_user_id,
            bucket=self._bucket,
            clock=services.clock,
            admissible=len(text) <= limit,
            config_admin=config_admin,
            # A banned person may still take their data with them or erase it.
            ban_exempt=command is not None and command.name in BANNED_MAY_RUN,
            username=inbound.username,
            display_name=inbound.display_name,
            language=inbound.language,
            private_chat_id=inbound.chat_id if inbound.is_private else None,
        )
        # The statement kept the platform's language tag as the person's locale.
        user = dataclasses.replace(admission.user, locale=inbound.language or admission.user.locale)
        t = _texts(user)
        if admission.banned:
            metrics.count_banned()
            return t.gettext(BANNED) if await services.users.mark_ban_notified(user.id) else ""
        if len(text) > limit:
            return t.gettext(TOO_LONG, length=len(text), limit=limit)
        if admission.rate_limited:
            metrics.count_rate_limited()
            if not admission.first_refusal:
                return ""  # told once per refused stretch
            wait = await self._rate_limits.retry_after(user.id, self._bucket, now=services.clock())
            return t.gettext(RATE_LIMITED, seconds=max(1, round(wait)))
        return _Accepted(user, user.role is Role.ADMIN or config_admin, command)

    # 2 route --------------------------------------------------------------------------

    async def _run_command(
        self, accepted: _Accepted, inbound: Inbound, channel: ReplyChannel
    ) -> None:
        """Run a command once: a redelivery of one that ran is ignored, of one a
        database outage interrupted runs it again."""
        assert accepted.command is not None
        key = (inbound.platform.value, inbound.chat_id, inbound.message_id)
        if key in self._running_commands:
            return
        claimed = await self._handled_commands.claim(
            accepted.user.id,
            inbound.platform,
            inbound.chat_id,
            inbound.message_id,
            now=self._services.clock(),
        )
        if not claimed:
            return
        self._running_commands.add(key)
        try:
            await self._dispatch(accepted, inbound, channel)
        finally:
            self._running_commands.discard(key)
        await self._handled_commands.finish(inbound.platform, inbound.chat_id, inbound.message_id)

    async def _dispatch(self, accepted: _Accepted, inbound: Inbound, channel: ReplyChannel) -> None:
        assert accepted.command is not None
        user = accepted.user
        context = CommandContext(
            services=self._services,
            persona=self._persona,
            inbound=inbound,
            user=user,
            is_admin=accepted.is_admin,
            channel=channel,
            answer_again=lambda message: self._answer_again(
                user, message, channel, shared_chat=not inbound.is_private
            ),
        )
        if not await dispatch(context, accepted.command):
            notice = context.texts.gettext(UNKNOWN_COMMAND, name=accepted.command.name)
            await channel.send(notice)

    # 3 remember -----------------------------------------------------------------------

    async def _converse(
        self,
        user: User,
        inbound: Inbound,
        text: str,
        channel: ReplyChannel,
        stored: _Once,
        media: MediaPlan | None = None,
    ) -> None:
        """Store the message (and acknowledge it), then answer it when its turn comes."""
        started = time.perf_counter()
        # A voice note or photo is embedded once it is made into text, in its turn.
        final = media is None or media.caption_only
        embedding = await self._embed(text) if final else None
        embedded = time.perf_counter()
        shared_chat = not inbound.is_private
        new = NewMessage(
            text if media is None else media.content(text),
            inbound.platform,
            inbound.chat_id,
            inbound.message_id,
            embedding,
            shared_chat=shared_chat,
            message_type=MessageType.TEXT if media is None else media.message_type,
            attachments=() if media is None else media.stored(text),
            search_config=text_search_config(inbound.language or user.locale),
        )
        async with self._order.person(user.id) as slot:
            async with slot.storing() as first:
                opened = await self._turns.open(
                    user.id, new, self._read_limits(shared_chat), take_lease=first
                )
                if opened.message is not None:
                    slot.join(opened.message.id)
            stored()
            if opened.message is None:
                await self._redelivered(user, inbound, channel, slot)
                return
            if media is not None and media.note is not None:
                await quietly(channel.send(_texts(user).say(media.note)))
            timings = {
                "embed_ms": ms(started, embedded),
                "store_ms": ms(embedded, time.perf_counter()),
            }
            turn = Turn(user, opened.message, channel, shared_chat, embedding, timings)
            await _queue(slot, timings)
            await self._take_turn(turn, opened)

    async def _redelivered(
        self, user: User, inbound: Inbound, channel: ReplyChannel, slot: Slot
    ) -> None:
        """A platform delivered a stored message again: answer it only if nobody is
        answering it and it never was; resend a recorded reply that never arrived."""
        before = await self._services.messages.stored_before(
            user.id,
            platform=inbound.platform,
            chat_id=inbound.chat_id,
            platform_message_id=inbound.message_id,
        )
        message = before.message
        if message.status is MessageStatus.ANSWERED:
            undelivered = await self._services.messages.undelivered_reply(user.id, message.id)
            if undelivered is not None:
                sent_as = await channel.start_reply().finish(undelivered.content)
                await self._services.messages.mark_delivered(
                    user.id, undelivered.id, platform_message_id=sent_as
                )
            return
        if message.status is not MessageStatus.PENDING or self._order.has(user.id, message.id):
            return
        logger.info("answering redelivered pending message %s of user %s", message.id, user.id)
        slot.join(message.id)
        turn = Turn(user, message, channel, not inbound.is_private, None, {})
        await _queue(slot, turn.timings)
        await self._take_turn(turn, None)

    async def _answer_again(
        self, user: User, message: Message, channel: ReplyChannel, *, shared_chat: bool
    ) -> None:
        """`/retry`: answer a stored message again, in its turn; unless it is being
        answered, or was answered meanwhile (checked again once its turn has come)."""
        if self._order.has(user.id, message.id):
            await channel.send(_texts(user).gettext(STILL_WORKING))
            return
        async with self._order.person(user.id) as slot:
            slot.join(message.id)
            turn = Turn(user, message, channel, shared_chat, None, {})
            await _queue(slot, turn.timings)
            notice = await self._take_turn(turn, None, retry=True)
            if notice is not None:
                await channel.send(_texts(user).gettext(notice))

    async def _recover(
        self, message: Message, private: bool, channel_for: ChannelFor, now: datetime
    ) -> None:
        async with channel_for(message, private) as channel:
            user = await self._services.users.get(message.user_id)
            if channel is None or user is None:
                await self._turns.fail(message.user_id, message.id)
                return
            if now - message.created_at > ANSWER_ORPHANS_WITHIN:
                await self._turns.fail(message.user_id, message.id)
                notice = _texts(user).gettext(
                    LOST_WHILE_DOWN, when=f"{message.created_at:%Y-%m-%d %H:%M} UTC"
                )
                await quietly(channel.send(notice))
                return
            async with self._order.person(user.id) as slot:
                slot.join(message.id)
                turn = Turn(user, message, channel, not private, None, {})
                await _queue(slot, turn.timings)
                await self._take_turn(turn, None)

    # the turn: wait for it, assemble, answer, record ------------------------------------

    async def _take_turn(
        self, turn: Turn, opened: Opened | None, *, retry: bool = False
    ) -> str | None:
        """Answer `turn.message` once its turn has come (`opened` without a state: wait
        for it). Else why not (a text to translate), as told to someone retrying it:
        another process is answering it, or it was answered meanwhile (or is gone)."""
        message = turn.message
        if opened is None or opened.state is None:
            opened, polled = await self._order.until_running(
                turn.user.id, message.id, self._read_limits(turn.shared_chat)
            )
            _add_ms(turn.timings, "queued_ms", polled)
            if opened.message is None:
                return ALREADY_ANSWERED
            if not opened.queued:
                return STILL_WORKING
            message = opened.message
            answerable = (MessageStatus.PENDING, MessageStatus.FAILED)
            if message.status not in (answerable if retry else answerable[:1]):
                await self._turns.release(turn.user.id, message.id)
                return ALREADY_ANSWERED
        assert opened.state is not None
        metrics.REPLIES_IN_FLIGHT.inc()
        try:
            await self._answer(dataclasses.replace(turn, message=message), opened)
        except asyncio.CancelledError:
            metrics.count_reply_failed("shutdown")
            await asyncio.shield(self._interrupted(turn))
            raise
        except StorageUnavailable:
            raise  # the turn is taken up again when the message comes back, or expires
        except Exception:
            # A bug: end the turn (the person is told by `handle`), or the person's next
            # turns would wait for it.
            with suppress(Exception):
                await asyncio.shield(self._turns.fail(turn.user.id, message.id))
            raise
        finally:
            metrics.REPLIES_IN_FLIGHT.dec()
        return None

    async def _interrupted(self, turn: Turn) -> None:
        """A turn cancelled mid-way (shutdown): the message is left failed and the
        person told, rather than left pending with nobody to answer it."""
        with suppress(Exception):
            async with asyncio.timeout(5):
                await self._turns.fail(turn.user.id, turn.message.id)
                await turn.channel.send(_texts(turn.user).gettext(INTERRUPTED))

    async def _answer(self, turn: Turn, opened: Opened) -> None:
        assert opened.state is not None
        made: Prepared | None = None
        if turn.message.message_type is not MessageType.TEXT and turn.message.attachments:
            made = await self._made_from_media(turn)
            if made is None:
                return
            if made.complete:
                await self._turns.settle(turn.user.id, turn.message.id)
                return
            embedding = turn.embedding if made.embedding is None else made.embedding
            turn = dataclasses.replace(turn, message=made.message, embedding=embedding)
            opened = dataclasses.replace(opened, state=made.reread(opened.state))
        embedding = turn.embedding
        if embedding is None:
            embedding = await self._embed(turn.message.content)
        started = time.perf_counter()
        context = await self._assemble(turn, opened, embedding)
        if made is not None:
            context = made.into(context)
        turn.timings["assemble_ms"] = ms(started, time.perf_counter())
        await self._replies.write(turn, context)

    async def _made_from_media(self, turn: Turn) -> Prepared | None:
        """The voice note, photo or document of `turn` made into text
        (`core.media.prepare`), in a model slot (typing shown); None when that failed:
        the message is left failed (for `/retry`), the person told."""
        started = time.perf_counter()
        try:
            async with self._model_slots.slot(turn.channel.typing, asyncio.Event()):
                made = await self._media.prepare(turn.message)
        except MediaFailed as failed:
            await self._turns.fail(turn.user.id, turn.message.id)
            await quietly(turn.channel.send(_texts(turn.user).say(failed.notice)))
            return None
        turn.timings["media_ms"] = ms(started, time.perf_counter())
        if made.told is not None:
            await quietly(turn.channel.send(_texts(turn.user).say(made.told)))
        return made

    async def _assemble(
        self, turn: Turn, opened: Opened, embedding: np.ndarray[Any, Any] | None
    ) -> AssembledContext:
        """Recall for the message (leaving out the window, already in the prompt), and
        the prompt from the turn's state and what recall found."""
        assert opened.state is not None
        limits = self._assembler.limits
        started = time.perf_counter()
        remembering = opened.state.conversation.memory_off_since is None
        recalled = await self._recall.search(
            turn.user.id,
            turn.message.content,
            embedding,
            limits.recall_top_k if remembering else 0,
            now=self._services.clock(),
            exclude_message_ids=[m.id for m in opened.state.recent],
            shared_chat=_shared_chat(turn.message),
        )
        documents = []
        if remembering and embedding is not None and opened.state.has_documents:
            documents = await self._documents.recall(
                turn.user.id, embedding, shared_chat=_shared_chat(turn.message)
            )
        metrics.observe_recall(time.perf_counter() - started)
        return self._assembler.build(
            turn.message, opened.state, recalled, shared_chat=turn.shared_chat, documents=documents
        )

    # helpers ----------------------------------------------------------------------------

    def _abilities(self, platform: Platform) -> Abilities:
        services = self._services
        return Abilities(
            transcription=services.transcriber is not None,
            vision=services.settings.llm_vision,
            downloads=platform in services.files,
            max_bytes=services.settings.media_max_bytes,
        )

    def _read_limits(self, shared_chat: bool) -> ReadLimits:
        limits = self._assembler.limits
        return ReadLimits(
            window=limits.recent_messages,
            facts=limits.facts_max,
            shared_chat=shared_chat,
        )

    async def _embed(self, text: str) -> np.ndarray[Any, Any] | None:
        return await embed_or_none(self._services.embedder, text)

    async def _tell_outage_once(
        self, inbound: Inbound, channel: ReplyChannel, exc: StorageUnavailable
    ) -> None:
        key = (inbound.platform.value, inbound.chat_id, inbound.message_id)
        busy = isinstance(exc, StorageBusy)
        metrics.count_reply_failed("storage_busy" if busy else "storage_unavailable")
        if key in self._outage_told:
            return
        if len(self._outage_told) >= OUTAGE_MEMORY:
            self._outage_told.clear()
        self._outage_told.add(key)
        logger.warning(
            "database %s (%s); message %s will be handled again",
            "busy" if busy else "unreachable",
            type(exc.__cause__ or exc).__name__,
            key,
        )
        with suppress(Exception):
            t = texts_for(inbound.language)
            await channel.send(t.gettext(STORAGE_BUSY if busy else STORAGE_DOWN))


def _texts(user: User) -> Texts:
    """The bot's texts in `user`'s language: the one they chose, else their platform's.
    (Where the person is not known yet, or the database is out of reach, the message's
    own language tag is used: `texts_for(inbound.language)`.)"""
    return texts_for(user.language, user.locale)


def _storable(inbound: Inbound) -> Inbound:
    """PostgreSQL text cannot hold NUL characters: show them as U+FFFD instead."""

    def clean(value: str | None) -> str | None:
        return None if value is None else value.replace("\x00", "\ufffd")

    attachments = "".join(f"{a.name}{a.mime_type}" for a in inbound.attachments)
    if "\x00" not in f"{inbound.text}{inbound.username}{inbound.display_name}{attachments}":
        return inbound
    return dataclasses.replace(
        inbound,
        text=inbound.text.replace("\x00", "\ufffd"),
        username=clean(inbound.username),
        display_name=clean(inbound.display_name),
        attachments=tuple(
            dataclasses.replace(a, name=clean(a.name), mime_type=clean(a.mime_type))
            for a in inbound.attachments
        ),
    )


class _Once:
    """A callback run at most once."""

    def __init__(self, callback: Callable[[], None] | None) -> None:
        self._callback = callback

    def __call__(self) -> None:
        callback, self._callback = self._callback, None
        if callback is not None:
            callback()


def _shared_chat(message: Message) -> SharedChat | None:
    """The shared chat `message` was said in, for recall; None for a private chat."""
    if not message.shared_chat:
        return None
    # A shared chat without an id matches no message: never the whole conversation.
    return SharedChat(message.platform, message.chat_id or "")


async def _queue(slot: Slot, timings: dict[str, int]) -> None:
    """Wait until the person's older turns in this process are done; the wait is the
    turn's `queued_ms` (with its waits for another process's turns: `_take_turn`)."""
    started = time.perf_counter()
    await slot.wait()
    _add_ms(timings, "queued_ms", time.perf_counter() - started)


def _add_ms(timings: dict[str, int], stage: str, seconds: float) -> None:
    timings[stage] = timings.get(stage, 0) + round(seconds * 1000)
