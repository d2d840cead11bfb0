"""A chat turn's SQL: store the message and read what answering it needs (`open`,
`resume`), then record the reply (`close`) or give up (`fail`, `release`).

Each method is one statement, written whole here, and none keeps a connection between
them: the model writes with no connection held (docs/architecture.md).

One person's turns run one at a time and in the order their messages were stored,
across replicas, through two small tables (migration 0009):
- `turns`, the queue: a row per stored user message until its turn ends, owned by a
  process (`holder`) that renews `expires_at` while it lives (`renew`);
- `turn_leases`, one row per person whose turn is running. A turn takes it only when no
  older live turn of the person is queued, and atomically (`ON CONFLICT DO UPDATE ...
  WHERE` re-checks the row under its lock), so two turns of one person never run at
  once; a lease whose holder died expires and is taken over.
Two messages of one person stored within the same instant on two replicas (neither
statement sees the other's row) are the one case that may be answered in the reverse
order; they still never run at once.

A turn that ends while another process has a turn of the person queued wakes it
(`TURN_ENDED_CHANNEL`); that turn also polls, for a lease that expired.

A message whose turn row expired while it was still pending (its process crashed) is
an orphan: `orphans` finds them for the start-up recovery, and `resume` takes one over.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import numpy as np

from core.models import (
    Conversation,
    Fact,
    MemoryContext,
    Message,
    MessageRole,
    MessageStatus,
    MessageType,
    Platform,
)
from core.snapshot import ContextSnapshot
from core.storage.database import Connection, Database
from core.storage.messages import message_from_row
from core.storage.users import conversation_from_row

# What a turn reads of each message: all but its context snapshot (only /why and
# exports read it back, and decoding ten of them was a measurable share of a turn).
_MESSAGE_FIELDS = (
    "id, user_id, role, content, platform, chat_id, platform_message_id, reply_to_id, status,"
    " created_at, tokens_in, tokens_out, model, response_ms, shared_chat, remembered,"
    " message_type, attachments"
)
# A turn's end is announced here, with the person's user id as payload, when another
# process has a turn of theirs queued (core/storage/turn_wakeups.py wakes it). Only
# then: NOTIFY takes a database-wide lock at commit, and most turns end with nobody
# waiting. A turn of this process waiting behind it is woken in the process
# (`core.turn_order`), so it needs none either.
TURN_ENDED_CHANNEL = "onethread_turn_ended"
# The window is read this many messages deeper than asked: user messages stored after
# the one being answered (queued behind it) are left out of its window.
WINDOW_SLACK = 8

# Which of the person's messages make a turn's window: in their private chat, the whole
# conversation; in a shared chat, that chat's own messages only (docs/security.md).
_WHOLE_CONVERSATION = "user_id = $1"
_THIS_SHARED_CHAT = "user_id = $1 AND shared_chat AND platform = $3 AND chat_id = $4"
_THE_MESSAGES_SHARED_CHAT = (
    "user_id = $1 AND shared_chat"
    " AND (platform, chat_id)"
    " = (SELECT platform, chat_id FROM messages WHERE id = $2 AND user_id = $1)"
)


def _open_sql(window: str) -> str:
    """$1 user, $2 content, $3 platform, $4 chat, $5 platform message id, $6 embedding,
    $7 holder, $8 lease seconds, $9 whether to try the lease, $10 window, $11 facts,
    $12 whether the chat is shared, $13 message type, $14 attachments (JSON), $15 the
    text search configuration of the person's language; `window` picks the messages of
    the window.

    - `locked` takes the person's conversation row first, so message ids follow the order
      in which the person's stores commit, and it reads that row as it is now (the rest
      of the statement reads as of the statement's start).
    - The lease is taken only when every message queued before has had its turn (the row's
      `turns_queued_through` <= `turns_done_through`), and when the row is as the
      statement's snapshot saw it (nobody stored or answered anything for the person while
      this statement waited for the row): the state read below is then current. Otherwise
      the turn waits and reads again (`resume`).
    - The read does not see the row it stores: the window is read without it.
    - A message said while the person has memory off is stored as not `remembered`.
    - Its `speaker` is the person's display name as it is now (their own `users` row).
    - In a shared chat, private facts are not read.
    """
    return f"""
WITH locked AS (
    SELECT xmin AS version, turns_queued_through, turns_done_through, memory_off_since
    FROM conversations WHERE user_id = $1 FOR UPDATE
), stored AS (
    INSERT INTO messages (user_id, role, content, platform, chat_id, platform_message_id,
                          status, embedding, shared_chat, remembered, message_type,
                          attachments, speaker, search_config)
    SELECT $1, 'user', $2, $3, $4, $5, 'pending', $6, $12, memory_off_since IS NULL, $13, $14,
           (SELECT display_name FROM users WHERE id = $1), $15::regconfig
    FROM locked
    ON CONFLICT ON CONSTRAINT messages_platform_message_unique DO NOTHING
    RETURNING {_MESSAGE_FIELDS}
), counted AS (
    UPDATE conversations SET message_count = message_count + 1, last_activity_at = now(),
        turns_queued_through = (SELECT id FROM stored)
    WHERE user_id = $1 AND EXISTS (SELECT FROM stored)
), queued AS (
    INSERT INTO turns (message_id, user_id, holder, expires_at)
    SELECT id, $1, $7, now() + make_interval(secs => $8) FROM stored
), leased AS (
    INSERT INTO turn_leases AS l (user_id, message_id, holder, expires_at)
    SELECT $1, s.id, $7, now() + make_interval(secs => $8) FROM stored s, locked k
    WHERE $9::boolean
      AND (k.turns_queued_through IS NULL OR k.turns_queued_through <= k.turns_done_through)
      AND k.version = (SELECT xmin FROM conversations WHERE user_id = $1)
      AND NOT EXISTS (SELECT FROM turns t WHERE t.user_id = $1 AND t.expires_at > now())
    ON CONFLICT (user_id) DO UPDATE
        SET message_id = excluded.message_id, holder = excluded.holder,
            expires_at = excluded.expires_at
        WHERE l.expires_at < now()
    RETURNING l.message_id
)
SELECT (SELECT ROW(s.*) FROM stored s) AS stored,
       true AS queued,
       EXISTS (SELECT FROM leased) AS running,
       c.user_id, c.summary, c.summary_version, c.summary_through_message_id,
       c.message_count,
       c.tokens_in, c.tokens_out, c.persona_overrides, c.last_activity_at,
       c.memory_off_since,
       x.user_id IS NOT NULL AS has_memory, x.insights, x.communication_style, x.themes,
       x.last_read_message_id, x.updated_at AS memory_updated_at,
       EXISTS (SELECT FROM documents WHERE user_id = $1) AS has_documents,
       ARRAY(SELECT ROW({_MESSAGE_FIELDS}) FROM messages
             WHERE {window} ORDER BY id DESC LIMIT $10) AS recent,
       ARRAY(SELECT ROW(id, content, category, importance, confidence, is_private,
                        valid_from, created_at, updated_at)
             FROM facts WHERE user_id = $1 AND invalid_at IS NULL
               AND NOT ($12::boolean AND is_private)
             ORDER BY importance DESC, updated_at DESC, id LIMIT $11) AS facts
FROM conversations c LEFT JOIN conversation_context x USING (user_id)
WHERE c.user_id = $1
"""


_OPEN_PRIVATE = _open_sql(_WHOLE_CONVERSATION)
_OPEN_SHARED = _open_sql(_THIS_SHARED_CHAT)


def _resume_sql(window: str) -> str:
    """$1 user, $2 message id, $3 holder, $4 lease seconds, $5 window, $6 facts, $7
    whether the chat is shared; `window` picks the messages of the window. Queues the
    message's turn (or takes over its row when the process that had it died), takes the
    lease when no older live turn is queued, and reads the message as it is now with the
    turn's state."""
    return f"""
WITH queued AS (
    INSERT INTO turns AS t (message_id, user_id, holder, expires_at)
    SELECT id, $1, $3, now() + make_interval(secs => $4) FROM messages
    WHERE id = $2 AND user_id = $1 AND role = 'user'
    ON CONFLICT (message_id) DO UPDATE
        SET holder = excluded.holder, expires_at = excluded.expires_at
        WHERE t.holder = excluded.holder OR t.expires_at < now()
    RETURNING t.message_id
), leased AS (
    INSERT INTO turn_leases AS l (user_id, message_id, holder, expires_at)
    SELECT $1, message_id, $3, now() + make_interval(secs => $4) FROM queued
    WHERE NOT EXISTS (SELECT FROM turns o WHERE o.user_id = $1 AND o.message_id < $2
                      AND o.expires_at > now() - make_interval(secs => $4 * 2))
    ON CONFLICT (user_id) DO UPDATE
        SET message_id = excluded.message_id, holder = excluded.holder,
            expires_at = excluded.expires_at
        WHERE l.expires_at < now() OR (l.holder = excluded.holder AND l.message_id = $2)
    RETURNING l.message_id
)
SELECT (SELECT ROW({_MESSAGE_FIELDS}) FROM messages WHERE id = $2 AND user_id = $1)
           AS stored,
       EXISTS (SELECT FROM queued) AS queued,
       EXISTS (SELECT FROM leased) AS running,
       c.user_id, c.summary, c.summary_version, c.summary_through_message_id,
       c.message_count,
       c.tokens_in, c.tokens_out, c.persona_overrides, c.last_activity_at,
       c.memory_off_since,
       x.user_id IS NOT NULL AS has_memory, x.insights, x.communication_style, x.themes,
       x.last_read_message_id, x.updated_at AS memory_updated_at,
       EXISTS (SELECT FROM documents WHERE user_id = $1) AS has_documents,
       ARRAY(SELECT ROW({_MESSAGE_FIELDS}) FROM messages
             WHERE {window} ORDER BY id DESC LIMIT $5 + {WINDOW_SLACK}) AS recent,
       ARRAY(SELECT ROW(id, content, category, importance, confidence, is_private,
                        valid_from, created_at, updated_at)
             FROM facts WHERE user_id = $1 AND invalid_at IS NULL
               AND NOT ($7::boolean AND is_private)
             ORDER BY importance DESC, updated_at DESC, id LIMIT $6) AS facts
FROM conversations c LEFT JOIN conversation_context x USING (user_id)
WHERE c.user_id = $1
"""


_RESUME_PRIVATE = _resume_sql(_WHOLE_CONVERSATION)
_RESUME_SHARED = _resume_sql(_THE_MESSAGES_SHARED_CHAT)


def _close_sql(answering: str) -> str:
    """$1 user, $2 content, $3 platform, $4 chat, $5 answered message, $6 snapshot, $7/$8
    tokens in/out, $9 model, $10 response ms, $11 embedding, $12 whether the platform
    has it already, $13 holder, $14/$15 the answered message's `shared_chat` and
    `remembered` as the turn read them (the reply's too; `remembered` as it is now, in
    case `/forget all` set the message aside while it was answered), $16 the platform's
    id of the reply's message (NULL: none, or not delivered), $17 the assistant's name
    (the reply's `speaker`; its `search_config` is the answered message's); `answering`
    picks
    the user messages it answers. The status update finds them by primary key; `status`
    is in no index, so the update stays HOT and never touches the vector or text
    indexes. Wakes the person's turns waiting in other processes (`TURN_ENDED_CHANNEL`)."""
    return f"""
WITH reply AS (
    INSERT INTO messages (user_id, role, content, platform, chat_id, reply_to_id,
                          context_snapshot, tokens_in, tokens_out, model, response_ms,
                          embedding, delivered_at, shared_chat, remembered,
                          platform_message_id, speaker, search_config)
    VALUES ($1, 'assistant', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,
            CASE WHEN $12::boolean THEN now() END, $14,
            coalesce((SELECT remembered FROM messages WHERE id = $5 AND user_id = $1), $15),
            $16, $17,
            coalesce((SELECT search_config FROM messages WHERE id = $5 AND user_id = $1),
                     'english'))
    RETURNING {_MESSAGE_FIELDS}
), answered AS (
    UPDATE messages SET status = 'answered'
    WHERE id {answering} AND user_id = $1 AND role = 'user'
), counted AS (
    UPDATE conversations SET message_count = message_count + 1,
        tokens_in = tokens_in + $7, tokens_out = tokens_out + $8, last_activity_at = now(),
        turns_done_through = greatest(turns_done_through, $5)
    WHERE user_id = $1
), dequeued AS (
    DELETE FROM turns WHERE message_id = $5 AND holder = $13 RETURNING 1
), released AS (
    DELETE FROM turn_leases WHERE user_id = $1 AND message_id = $5 AND holder = $13
    RETURNING 1
), woken AS (
    -- A SELECT in a CTE runs only if something reads it: `woke` below does (nothing
    -- reads that column; without it no notification would be sent).
    SELECT pg_notify('{TURN_ENDED_CHANNEL}', $1::bigint::text)
    WHERE (EXISTS (SELECT FROM dequeued) OR EXISTS (SELECT FROM released))
      AND EXISTS (SELECT FROM turns t
                  WHERE t.user_id = $1 AND t.message_id <> $5 AND t.holder <> $13)
)
SELECT ROW(r.*) AS reply, (SELECT count(*) FROM woken) AS woke FROM reply r
"""


# Answering one message, the common case, compares with `$5` alone. With an array of
# ids PostgreSQL's plan cache priced its generic plan for ten of them, so it planned the
# statement anew at every execution (docs/pipeline.md). Earlier failed messages that the
# reply answers too come as $18.
_CLOSE = _close_sql("= $5")
_CLOSE_ANSWERING_MORE = _close_sql("= ANY($18::bigint[])")

# $1 user, $2 message id, $3 holder, $4 the status to leave the message in (NULL: as it
# is). Ends a turn without a reply, waking a waiting turn as `_CLOSE` does.
_END = f"""
WITH marked AS (
    UPDATE messages SET status = $4
    WHERE $4::text IS NOT NULL AND id = $2 AND user_id = $1 AND role = 'user'
      AND status = 'pending'
), dequeued AS (
    DELETE FROM turns WHERE message_id = $2 AND holder = $3 RETURNING 1
), done AS (
    UPDATE conversations SET turns_done_through = greatest(turns_done_through, $2)
    WHERE user_id = $1
), released AS (
    DELETE FROM turn_leases WHERE user_id = $1 AND message_id = $2 AND holder = $3
    RETURNING 1
)
SELECT pg_notify('{TURN_ENDED_CHANNEL}', $1::bigint::text)
WHERE (EXISTS (SELECT FROM dequeued) OR EXISTS (SELECT FROM released))
  AND EXISTS (SELECT FROM turns t
              WHERE t.user_id = $1 AND t.message_id <> $2 AND t.holder <> $3)
"""

# $1 holder, $2 lease seconds, $3 the messages whose turns this process is working on.
_RENEW = """
WITH queue AS (
    UPDATE turns SET expires_at = now() + make_interval(secs => $2)
    WHERE holder = $1 AND message_id = ANY($3::bigint[])
    RETURNING 1
), leases AS (
    UPDATE turn_leases SET expires_at = now() + make_interval(secs => $2)
    WHERE holder = $1 AND message_id = ANY($3::bigint[])
)
SELECT count(*) FROM queue
"""

# $1 platform, $2 at most this many. Turn rows that expired: their message still pending
# (an orphan), or no longer (answered through another path: the row is only dropped).
_ORPHANS = f"""
WITH stale AS (
    DELETE FROM turns t USING messages m
    WHERE t.expires_at < now() AND m.id = t.message_id AND m.status <> 'pending'
)
SELECT m.{_MESSAGE_FIELDS.replace(", ", ", m.")}, NULL::jsonb AS context_snapshot,
       false AS archived,
       NOT m.shared_chat AS private
FROM messages m WHERE m.id IN (SELECT message_id FROM turns WHERE expires_at < now())
  AND m.status = 'pending' AND m.platform = $1
ORDER BY m.user_id, m.id LIMIT $2
"""


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A user message to store with its turn's read (`TurnStore.open`)."""

    content: str
    platform: Platform
    chat_id: str | None
    platform_message_id: str | None
    embedding: np.ndarray[Any, Any] | None
    shared_chat: bool = False
    """Said in a group or server channel, not in the person's private chat."""
    message_type: MessageType = MessageType.TEXT
    attachments: tuple[dict[str, Any], ...] = ()
    """What the message is made from (`Message.attachments`)."""
    search_config: str = "english"
    """The text search configuration of the person's language
    (`core.storage.messages.text_search_config`): how `search` reads the text."""


@dataclass(frozen=True, slots=True)
class TurnState:
    """What answering a message needs besides recall, read under its lease."""

    conversation: Conversation
    memory: MemoryContext | None
    recent: list[Message]
    """In conversation order (each reply right after the message it answers), ending
    with the message being answered; without context snapshots."""
    facts: list[Fact]
    """Most important first, without source message ids."""
    has_documents: bool
    """The person keeps documents (core/documents): only then are they searched."""


@dataclass(frozen=True, slots=True)
class Opened:
    """A turn's message, and whether the turn may run now."""

    message: Message | None
    """None only from `resume` when the message is gone (erased)."""
    new: bool
    """`open` stored the message now (False: stored before, a redelivery)."""
    queued: bool
    """This process has the message's turn (False: another live process has it)."""
    state: TurnState | None
    """Read under the lease: the turn may run. None: it waits (or is not ours)."""


@dataclass(frozen=True, slots=True)
class Reply:
    """A model reply as it is recorded (`TurnStore.close`)."""

    text: str
    snapshot: ContextSnapshot
    tokens_in: int
    tokens_out: int
    model: str
    response_ms: int
    embedding: np.ndarray[Any, Any] | None
    answers_also: tuple[int, ...] = ()
    """Earlier failed messages of the prompt's window that this reply answers too."""
    platform_message_id: str | None = None
    """The platform's id of the reply's (first) message, once delivered: `/why` sent in
    answer to it finds the reply."""


@dataclass(frozen=True, slots=True)
class Orphan:
    """A pending message whose turn's process died (`TurnStore.orphans`)."""

    message: Message
    private: bool
    """Written in the person's private chat with the bot (else a shared chat)."""


@dataclass(frozen=True, slots=True)
class ReadLimits:
    """How much of the turn's state to read."""

    window: int
    facts: int
    shared_chat: bool
    """Read as a shared chat's turn: that chat's window, no private facts."""


class TurnStore:
    """The turns of one process (`holder`), whose leases last `lease_seconds` unless
    renewed; its replies are said by `assistant_name`."""

    def __init__(
        self,
        db: Database,
        *,
        holder: uuid.UUID,
        lease_seconds: float,
        assistant_name: str | None = None,
    ) -> None:
        self._db = db
        self.holder = holder
        self.lease_seconds = lease_seconds
        #: Stored as the `speaker` of every reply (searchable by recall).
        self.assistant_name = assistant_name

    async def open(
        self,
        user_id: int,
        message: NewMessage,
        limits: ReadLimits,
        *,
        take_lease: bool,
        conn: Connection | None = None,
    ) -> Opened:
        """Store `message` as pending, once per (platform, chat, message id), queue its
        turn, and with `take_lease` try to start it: then `state` is read under the
        lease. A redelivered message changes nothing (`new` False, no message)."""
        async with self._db.connection(conn) as c:
            row = await c.fetchrow(
                _OPEN_SHARED if message.shared_chat else _OPEN_PRIVATE,
                user_id,
                message.content,
                message.platform.value,
                message.chat_id,
                message.platform_message_id,
                message.embedding,
                self.holder,
                self.lease_seconds,
                take_lease,
                max(limits.window - 1, 0),
                limits.facts,
                message.shared_chat,
                message.message_type.value,
                list(message.attachments) or None,
                message.search_config,
            )
        return _opened(user_id, row, limits, new=True)

    async def resume(
        self,
        user_id: int,
        message_id: int,
        limits: ReadLimits,
        *,
        conn: Connection | None = None,
    ) -> Opened:
        """Queue the turn of a stored message (or keep it queued) and start it if its
        turn has come: no older live turn of the person, and the lease free or expired.
        `queued` is False when another live process has this message's turn."""
        async with self._db.connection(conn) as c:
            row = await c.fetchrow(
                _RESUME_SHARED if limits.shared_chat else _RESUME_PRIVATE,
                user_id,
                message_id,
                self.holder,
                self.lease_seconds,
                limits.window,
                limits.facts,
                limits.shared_chat,
            )
        return _opened(user_id, row, limits, new=False)

    async def close(
        self,
        user_id: int,
        message: Message,
        reply: Reply,
        *,
        delivered: bool,
        conn: Connection | None = None,
    ) -> Message:
        """Record the reply to `message` with its snapshot and whether the platform has
        it, mark `message` (and `reply.answers_also`) answered, and end the turn."""
        more: list[list[int]] = [[message.id, *reply.answers_also]] if reply.answers_also else []
        async with self._db.connection(conn) as c:
            row = await c.fetchrow(
                _CLOSE_ANSWERING_MORE if more else _CLOSE,
                user_id,
                reply.text,
                message.platform.value,
                message.chat_id,
                message.id,
                reply.snapshot.to_json(),
                reply.tokens_in,
                reply.tokens_out,
                reply.model,
                reply.response_ms,
                reply.embedding,
                delivered,
                self.holder,
                message.shared_chat,
                message.remembered,
                reply.platform_message_id,
                self.assistant_name,
                *more,
            )
        assert row is not None
        return _message(row["reply"])

    async def fail(self, user_id: int, message_id: int, *, conn: Connection | None = None) -> None:
        """End the turn without a reply, leaving a pending message `failed` (the person
        can `/retry` it; the next reply's prompt holds it)."""
        await self._end(user_id, message_id, MessageStatus.FAILED, conn)

    async def settle(
        self, user_id: int, message_id: int, *, conn: Connection | None = None
    ) -> None:
        """End the turn without a model reply, leaving a pending message `answered`: what
        the bot told of it was the whole answer (a document sent without a caption)."""
        await self._end(user_id, message_id, MessageStatus.ANSWERED, conn)

    async def release(
        self, user_id: int, message_id: int, *, conn: Connection | None = None
    ) -> None:
        """End the turn and leave the message as it is (a redelivery that found nothing
        to do)."""
        await self._end(user_id, message_id, None, conn)

    async def _end(
        self,
        user_id: int,
        message_id: int,
        status: MessageStatus | None,
        conn: Connection | None,
    ) -> None:
        async with self._db.connection(conn) as c:
            await c.execute(
                _END, user_id, message_id, self.holder, None if status is None else status.value
            )

    async def renew(self, message_ids: Collection[int], *, conn: Connection | None = None) -> int:
        """Extend the queued turns and leases of these messages, this process's turns in
        progress; how many it has. A turn that ended without a word (a bug) is not
        renewed: it expires, and its message is answered as an orphan."""
        async with self._db.connection(conn) as c:
            return int(await c.fetchval(_RENEW, self.holder, self.lease_seconds, list(message_ids)))

    async def orphans(
        self, platform: Platform, *, limit: int = 1000, conn: Connection | None = None
    ) -> list[Orphan]:
        """Pending messages of `platform` whose turn's process died, oldest first per
        person."""
        async with self._db.connection(conn) as c:
            rows = await c.fetch(_ORPHANS, platform.value, limit)
        return [Orphan(message_from_row(r), r["private"]) for r in rows]


def _opened(user_id: int, row: asyncpg.Record | None, limits: ReadLimits, *, new: bool) -> Opened:
    """What `_OPEN` or `_RESUME` returned."""
    if row is None:
        raise LookupError(f"user {user_id} has no conversation")
    if row["stored"] is None:
        return Opened(None, new=False, queued=False, state=None)
    stored = _message(row["stored"])
    state = _state(row, stored, limits.window) if row["running"] else None
    return Opened(stored, new=new, queued=row["queued"], state=state)


def _state(row: asyncpg.Record, current: Message, window: int) -> TurnState:
    recent = [_message(r) for r in row["recent"]]
    if all(m.id != current.id for m in recent):
        recent.append(current)  # `open` reads without the row it stores
    return TurnState(
        conversation=conversation_from_row(row),
        memory=(
            MemoryContext(
                insights=row["insights"],
                communication_style=row["communication_style"],
                themes=row["themes"],
                last_read_message_id=row["last_read_message_id"],
                updated_at=row["memory_updated_at"],
            )
            if row["has_memory"]
            else None
        ),
        recent=conversation_window(recent, current, window),
        facts=[_fact(current.user_id, r) for r in row["facts"]],
        has_documents=row["has_documents"],
    )


def conversation_window(messages: Sequence[Message], current: Message, size: int) -> list[Message]:
    """The newest `size` of `messages` up to `current`, in conversation order: each
    reply right after the message it answers (a reply is stored after messages queued
    behind the one it answers), ending with `current`. Messages stored after `current`,
    and replies to them (answered first after a crash), come after it in the
    conversation: left out."""

    def place(m: Message) -> tuple[int, int]:
        """Where `m` stands in the conversation: a reply at the message it answers."""
        answered = m.reply_to_id if m.role is MessageRole.ASSISTANT else None
        return (answered or m.id, m.id)

    kept = sorted((m for m in messages if place(m)[0] <= current.id), key=place)
    return kept[-size:] if size > 0 else []


def _message(r: tuple[Any, ...]) -> Message:
    """A message from a record of `_MESSAGE_FIELDS`, by position: every turn decodes
    twenty of them."""
    return Message(
        r[0],
        r[1],
        _ROLES[r[2]],
        r[3],
        _PLATFORMS[r[4]],
        r[5],
        r[6],
        r[7],
        None if r[8] is None else _STATUSES[r[8]],
        r[9],
        None,
        r[10],
        r[11],
        r[12],
        r[13],
        shared_chat=r[14],
        remembered=r[15],
        message_type=_TYPES[r[16]],
        attachments=tuple(r[17] or ()),
    )


def _fact(user_id: int, r: tuple[Any, ...]) -> Fact:
    return Fact(
        id=r[0],
        user_id=user_id,
        content=r[1],
        category=r[2],
        importance=r[3],
        confidence=r[4],
        is_private=r[5],
        source_message_ids=(),
        valid_from=r[6],
        invalid_at=None,
        created_at=r[7],
        updated_at=r[8],
    )


# Enum members by value: a dict lookup costs a fraction of calling the enum.
_ROLES = {role.value: role for role in MessageRole}
_PLATFORMS = {platform.value: platform for platform in Platform}
_STATUSES = {status.value: status for status in MessageStatus}
_TYPES = {kind.value: kind for kind in MessageType}
