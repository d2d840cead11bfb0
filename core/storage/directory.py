"""Queries that span the aggregate repositories: what the commands need, and a chat
turn's one statement (`turn_state`), which reads the turn's state and recall candidates
and, for a new message, stores it first.

User-data queries take the user id and are scoped by it. The exception is marked
"admins only": looking up a reply by id across users (`/why`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import numpy as np

from core.models import Conversation, Fact, Message, Platform
from core.recall.candidates import FIELDS as _RECALL_FIELDS
from core.recall.candidates import RecallCandidates, split
from core.recall.keywords import TextHit, storable_text
from core.recall.vectors import Placeholders, RecallHit, recall_plan
from core.storage.database import Connection, Database
from core.storage.facts import facts_from_array, valid_facts_sql
from core.storage.messages import MESSAGE_COLUMNS as _MESSAGE_COLUMNS
from core.storage.messages import (
    message_from_record,
    message_from_row,
    recent_window_sql,
    stored_message_sql,
    user_message_sql,
    window_from_array,
)
from core.storage.users import conversation_from_row


@dataclass(frozen=True, slots=True)
class MemoryContext:
    insights: list[Any]
    communication_style: str
    themes: list[Any]
    last_read_message_id: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class TurnState:
    conversation: Conversation
    memory: MemoryContext | None
    recent: list[Message]
    """Oldest first, without context snapshots."""
    facts: list[Fact]
    """Most important first, without source message ids."""
    # The recall candidates asked for with `TurnRecall`, each list best first.
    vector_hits: list[RecallHit] = field(default_factory=list)
    text_hits: list[TextHit] = field(default_factory=list)
    stored: Message | None = None
    """The message stored with the read (`NewMessage`); None for a redelivery."""


@dataclass(frozen=True, slots=True)
class TurnRecall:
    """Recall candidates to read with a turn's state (`RecallCandidates`): `limit` per
    list for the message `message_id` (its `text` and `embedding`). Neither the message
    nor the recent window it reads with them is recalled: they are in the prompt."""

    candidates: RecallCandidates
    text: str
    embedding: np.ndarray[Any, Any] | None
    limit: int
    message_id: int | None
    """None when the message is stored with the read (`NewMessage`): it cannot see it."""


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A user message to store with a turn's read, in the same statement: the read does
    not see it (one snapshot), so it is neither in the window nor recalled."""

    content: str
    platform: Platform
    chat_id: str | None
    platform_message_id: str | None
    embedding: np.ndarray[Any, Any] | None


_MEMORY_COLUMNS = (
    "x.insights, x.communication_style, x.themes, x.last_read_message_id,"
    " x.updated_at AS memory_updated_at"
)


def _memory_context(row: asyncpg.Record) -> MemoryContext:
    return MemoryContext(
        insights=row["insights"],
        communication_style=row["communication_style"],
        themes=row["themes"],
        last_read_message_id=row["last_read_message_id"],
        updated_at=row["memory_updated_at"],
    )


# `turn_state`'s parameters: $1 user, $2 recent, $3 facts, $4 include private facts;
# with recall $5 candidates per list, $6 the message id, $7 its text, $8 its embedding.
_WINDOW_IDS = "ARRAY(SELECT id FROM messages WHERE user_id = $1 ORDER BY id DESC LIMIT $2)"
_TURN_RECALL = Placeholders(
    user="$1",
    embedding="$8",
    k="$5",
    include_private="$4",
    excluded=f"({_WINDOW_IDS} || $6::bigint)",
)
# Storing a message (`NewMessage`), after $1-$4: $5 its text, $6 platform, $7 chat, $8
# platform message id, $9 embedding; with recall $10 candidates per list, $11 the
# embedding as recall compares it. The message is not visible to the read: only the
# window is left out of recall.
_STORING = ("$1", "$5", "$6", "$7", "$8", "$9")
_STORING_RECALL = Placeholders(
    user="$1", embedding="$11", k="$10", include_private="$4", excluded=_WINDOW_IDS
)


class Directory:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._turn_queries: dict[tuple[RecallCandidates | None, bool, bool, bool], str] = {}

    async def find_reply(
        self, message_id: int, *, conn: Connection | None = None
    ) -> Message | None:
        """Admins only: one message by id, live or archived, whoever it belongs to."""
        async with self._db.connection(conn) as c:
            row = await c.fetchrow(
                f"SELECT {_MESSAGE_COLUMNS}, false AS archived FROM messages WHERE id = $1"
                f" UNION ALL SELECT {_MESSAGE_COLUMNS}, true FROM messages_archive WHERE id = $1",
                message_id,
            )
        return None if row is None else message_from_row(row)

    async def latest_user_message(
        self, user_id: int, *, conn: Connection | None = None
    ) -> Message | None:
        """The user's newest message (live table: a message awaiting an answer is never
        archived)."""
        async with self._db.connection(conn) as c:
            row = await c.fetchrow(
                f"SELECT {_MESSAGE_COLUMNS}, false AS archived FROM messages"
                " WHERE user_id = $1 AND role = 'user' ORDER BY id DESC LIMIT 1",
                user_id,
            )
        return None if row is None else message_from_row(row)

    async def memory_context(
        self, user_id: int, *, conn: Connection | None = None
    ) -> MemoryContext | None:
        async with self._db.connection(conn) as c:
            row = await c.fetchrow(
                f"SELECT {_MEMORY_COLUMNS} FROM conversation_context x WHERE x.user_id = $1",
                user_id,
            )
        return None if row is None else _memory_context(row)

    async def turn_state(
        self,
        user_id: int,
        *,
        recent: int,
        facts: int,
        include_private: bool,
        recall: TurnRecall | None = None,
        storing: NewMessage | None = None,
        conn: Connection | None = None,
    ) -> TurnState:
        """What every chat turn reads, in one round trip: the conversation, what the
        memory job learned, the newest `recent` messages, the `facts` most important
        facts still true (private ones only with `include_private`), and with `recall`
        its candidates (private facts likewise). With `storing`, the same statement
        stores that message first (`MessageRepository.add_user_message`'s rules), and
        reads as if it were not there; recall then searches with its text and takes no
        message id."""
        if recall is not None and storing is None and recall.message_id is None:
            raise ValueError("recall for a stored message needs its id, to leave it out")
        args: list[Any] = [user_id, recent, facts, include_private]
        if storing is not None:
            args += [
                storing.content,
                storing.platform.value,
                storing.chat_id,
                storing.platform_message_id,
                storing.embedding,
            ]
        if recall is not None:
            args.append(recall.limit)
            if storing is None:
                args += [recall.message_id, storable_text(recall.text)]
            if recall.embedding is not None:
                args.append(recall.candidates.vector_argument(recall.embedding))
        async with self._db.connection(conn) as c:
            approximate = (
                recall is not None
                and recall.embedding is not None
                and await recall.candidates.approximate(user_id, conn=c)
            )
            async with recall_plan(c, approximate=approximate):
                row = await c.fetchrow(
                    self._turn_query(recall, approximate, storing is not None), *args
                )
        if row is None:
            raise LookupError(f"user {user_id} has no conversation")
        vector_hits, text_hits = split(row["recall"]) if recall is not None else ([], [])
        return TurnState(
            conversation=conversation_from_row(row),
            memory=_memory_context(row) if row["has_memory"] else None,
            recent=window_from_array(row["recent"]),
            facts=facts_from_array(row["facts"]),
            vector_hits=vector_hits,
            text_hits=text_hits,
            stored=(
                message_from_record(row["stored"])
                if storing is not None and row["stored"] is not None
                else None
            ),
        )

    def _turn_query(self, recall: TurnRecall | None, approximate: bool, storing: bool) -> str:
        candidates = None if recall is None else recall.candidates
        vectors = recall is not None and recall.embedding is not None
        key = (candidates, approximate, vectors, storing)
        if key not in self._turn_queries:
            recalled = ""
            if candidates is not None:
                rows = candidates.query(
                    approximate=approximate,
                    p=_STORING_RECALL if storing else _TURN_RECALL,
                    text="$5" if storing else "$7",
                    vectors=vectors,
                )
                fields = ", ".join(f"r.{f}" for f in _RECALL_FIELDS)
                recalled = f", ARRAY(SELECT ROW({fields}) FROM ({rows}) AS r) AS recall"
            store, stored = "", ""
            if storing:
                store = f"WITH {user_message_sql(*_STORING)} "
                stored = f", {stored_message_sql()} AS stored"
            self._turn_queries[key] = (
                f"{store}SELECT c.*, x.user_id IS NOT NULL AS has_memory, {_MEMORY_COLUMNS},"
                f" {recent_window_sql('$1', '$2')} AS recent,"
                f" {valid_facts_sql('$1', '$4', '$3')} AS facts{recalled}{stored}"
                " FROM conversations c LEFT JOIN conversation_context x USING (user_id)"
                " WHERE c.user_id = $1"
            )
        return self._turn_queries[key]

    async def delete_all_facts(self, user_id: int, *, conn: Connection | None = None) -> int:
        """Forget every fact of a user for good, invalidated ones included."""
        async with self._db.connection(conn) as c:
            result = await c.execute("DELETE FROM facts WHERE user_id = $1", user_id)
        return int(result.split()[-1])

    async def fact_counts(self, user_id: int, *, conn: Connection | None = None) -> tuple[int, int]:
        """(valid, invalidated) facts of a user."""
        async with self._db.connection(conn) as c:
            row = await c.fetchrow(
                "SELECT count(*) FILTER (WHERE invalid_at IS NULL) AS valid,"
                " count(*) FILTER (WHERE invalid_at IS NOT NULL) AS invalid"
                " FROM facts WHERE user_id = $1",
                user_id,
            )
        assert row is not None
        return int(row["valid"]), int(row["invalid"])
