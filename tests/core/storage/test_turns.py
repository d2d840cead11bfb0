"""`TurnStore`: a turn's statements, and one person's turns one at a time, in order,
across processes (each store below is a process of its own: its own holder id)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from core.models import Message, MessageRole, MessageStatus, MessageType, Platform
from core.snapshot import ContextSnapshot
from core.storage.database import Database, create_pool
from core.storage.messages import MessageRepository
from core.storage.turns import NewMessage, ReadLimits, Reply, TurnStore, conversation_window
from core.storage.users import UserRepository

LIMITS = ReadLimits(window=10, facts=5, shared_chat=False)
SNAPSHOT = ContextSnapshot(
    summary_version=0, fact_ids=(), recalled=(), window_ids=(), shared_chat=False, tokens={}
)


def _store(db: Database, lease_seconds: float = 30.0) -> TurnStore:
    return TurnStore(db, holder=uuid.uuid4(), lease_seconds=lease_seconds)


def _new(text: str, message_id: str) -> NewMessage:
    return NewMessage(text, Platform.TELEGRAM, "chat", message_id, None)


def _reply(text: str) -> Reply:
    return Reply(
        text=text,
        snapshot=SNAPSHOT,
        tokens_in=3,
        tokens_out=2,
        model="m",
        response_ms=5,
        embedding=None,
    )


async def _user(db: Database, name: str = "ann") -> int:
    user, _ = await UserRepository(db).get_or_create(Platform.TELEGRAM, name)
    return user.id


async def test_open_stores_queues_and_reads_under_the_lease(db: Database) -> None:
    user_id = await _user(db)
    store = _store(db)
    first = await store.open(user_id, _new("hello", "1"), LIMITS, take_lease=True)
    assert first.new and first.queued and first.message is not None
    assert first.state is not None
    assert [m.content for m in first.state.recent] == ["hello"]
    # A redelivery stores nothing and starts nothing.
    again = await store.open(user_id, _new("hello", "1"), LIMITS, take_lease=True)
    assert (again.new, again.message, again.state) == (False, None, None)
    conversation = await UserRepository(db).conversation(user_id)
    assert conversation.message_count == 1


async def test_a_second_turn_waits_for_the_first_then_reads_its_reply(db: Database) -> None:
    user_id = await _user(db)
    one, two = _store(db), _store(db)
    first = await one.open(user_id, _new("first", "1"), LIMITS, take_lease=True)
    second = await two.open(user_id, _new("second", "2"), LIMITS, take_lease=True)
    assert first.state is not None and first.message is not None
    assert second.state is None and second.message is not None  # stored, waiting
    waiting = await two.resume(user_id, second.message.id, LIMITS)
    assert waiting.queued and waiting.state is None
    reply = await one.close(user_id, first.message, _reply("one"), delivered=True)
    assert reply.reply_to_id == first.message.id
    running = await two.resume(user_id, second.message.id, LIMITS)
    assert running.state is not None
    assert [(m.role, m.content) for m in running.state.recent] == [
        (MessageRole.USER, "first"),
        (MessageRole.ASSISTANT, "one"),
        (MessageRole.USER, "second"),
    ]


async def test_a_newer_message_never_overtakes_an_older_queued_one(db: Database) -> None:
    """The lease goes to the oldest live turn in the person's queue, on any process;
    the window of an older message leaves newer messages out but keeps earlier replies,
    each right after the message it answers."""
    user_id = await _user(db)
    one, two = _store(db), _store(db)
    zero = await one.open(user_id, _new("zero", "0"), LIMITS, take_lease=True)
    older = await one.open(user_id, _new("older", "1"), LIMITS, take_lease=False)
    newer = await two.open(user_id, _new("newer", "2"), LIMITS, take_lease=True)
    assert zero.message and older.message and newer.message
    await one.close(user_id, zero.message, _reply("to zero"), delivered=True)
    assert (await two.resume(user_id, newer.message.id, LIMITS)).state is None
    turn = await one.resume(user_id, older.message.id, LIMITS)
    assert turn.state is not None
    assert [m.content for m in turn.state.recent] == ["zero", "to zero", "older"]


async def test_a_dead_processs_lease_and_turns_expire_and_are_taken_over(fresh_dsn: str) -> None:
    pool = await create_pool(fresh_dsn, min_size=1, max_size=2)
    try:
        db = Database(pool)
        user_id = await _user(db)
        dead = _store(db, lease_seconds=0.2)
        alive = _store(db)
        crashed = await dead.open(user_id, _new("lost", "1"), LIMITS, take_lease=True)
        assert crashed.state is not None and crashed.message is not None
        later = await alive.open(user_id, _new("later", "2"), LIMITS, take_lease=True)
        assert later.state is None and later.message is not None
        async with db.connection() as conn:
            await conn.execute("SELECT pg_sleep(0.3)")
        # The dead process's turn expired: its message is an orphan, found for the
        # recovery; the later message still waits for it, in the person's order.
        orphans = await alive.orphans(Platform.TELEGRAM)
        assert [o.message.id for o in orphans] == [crashed.message.id]
        assert orphans[0].private is True  # stored as said in a private chat
        assert (await alive.resume(user_id, later.message.id, LIMITS)).state is None
        # Taking the orphan over: its turn is ours now, and runs.
        taken = await alive.resume(user_id, crashed.message.id, LIMITS)
        assert taken.queued and taken.state is not None
        assert await alive.orphans(Platform.TELEGRAM) == []
        # The dead process, were it alive after all, no longer has it.
        assert not (await dead.resume(user_id, crashed.message.id, LIMITS)).queued
        await alive.close(user_id, crashed.message, _reply("late"), delivered=True)
        assert (await alive.resume(user_id, later.message.id, LIMITS)).state is not None
    finally:
        await pool.close()


async def test_renewal_keeps_the_turns_in_progress_alive_and_only_those(
    fresh_dsn: str,
) -> None:
    """A turn that ended without a word (a bug left its rows behind) is not renewed: it
    expires, and its message becomes an orphan to answer."""
    pool = await create_pool(fresh_dsn, min_size=1, max_size=2)
    try:
        db = Database(pool)
        user_id = await _user(db)
        store = _store(db, lease_seconds=0.5)
        kept = await store.open(user_id, _new("kept", "1"), LIMITS, take_lease=True)
        left = await store.open(user_id, _new("left behind", "2"), LIMITS, take_lease=False)
        assert kept.message is not None and left.message is not None
        for _ in range(3):
            async with db.connection() as conn:
                await conn.execute("SELECT pg_sleep(0.3)")
            assert await store.renew([kept.message.id]) == 1
        orphans = await store.orphans(Platform.TELEGRAM)
        assert [o.message.id for o in orphans] == [left.message.id]
    finally:
        await pool.close()


async def test_fail_and_release_end_the_turn(db: Database) -> None:
    user_id = await _user(db)
    store = _store(db)
    failed = await store.open(user_id, _new("fails", "1"), LIMITS, take_lease=True)
    assert failed.message is not None
    await store.fail(user_id, failed.message.id)
    after = await store.open(user_id, _new("next", "2"), LIMITS, take_lease=True)
    assert after.state is not None and after.message is not None
    assert [(m.content, m.status) for m in after.state.recent] == [
        ("fails", MessageStatus.FAILED),
        ("next", MessageStatus.PENDING),
    ]
    # A reply answers the failed message of its window too.
    await store.close(
        user_id,
        after.message,
        Reply(
            text="both",
            snapshot=SNAPSHOT,
            tokens_in=1,
            tokens_out=1,
            model="m",
            response_ms=1,
            embedding=None,
            answers_also=(failed.message.id,),
        ),
        delivered=False,
    )
    reread = await store.resume(user_id, failed.message.id, LIMITS)
    assert reread.message is not None and reread.message.status is MessageStatus.ANSWERED
    await store.release(user_id, failed.message.id)
    assert await store.renew([failed.message.id, after.message.id]) == 0


async def test_messages_stored_at_once_on_two_processes_start_in_id_order(
    fresh_dsn: str,
) -> None:
    """The store takes the person's row first, so ids follow the stores' commits, and
    only the first store may start its turn at once: never the newer message."""
    pool = await create_pool(fresh_dsn, min_size=4, max_size=4)
    try:
        db = Database(pool)
        user_id = await _user(db)
        one, two = _store(db), _store(db)
        for n in range(20):
            first, second = await asyncio.gather(
                one.open(user_id, _new("a", f"a{n}"), LIMITS, take_lease=True),
                two.open(user_id, _new("b", f"b{n}"), LIMITS, take_lease=True),
            )
            turns = sorted(
                ((one, first), (two, second)),
                key=lambda pair: pair[1].message.id if pair[1].message else 0,
            )
            assert turns[0][1].state is not None, n
            assert turns[1][1].state is None, n
            for store, turn in turns:
                if turn.state is None:
                    assert turn.message is not None
                    turn = await store.resume(user_id, turn.message.id, LIMITS)
                    assert turn.state is not None, n
                assert turn.message is not None
                await store.close(user_id, turn.message, _reply("r"), delivered=True)
    finally:
        await pool.close()


def test_an_older_messages_window_ends_with_it_whatever_was_answered_after() -> None:
    """After a crash a newer message may be answered before an older one; the older
    one's window still ends with it: what came after it is left out."""
    when = datetime(2026, 1, 1, tzinfo=UTC)

    def message(id_: int, role: MessageRole, reply_to: int | None = None) -> Message:
        return Message(id_, 1, role, f"m{id_}", Platform.TELEGRAM, "c", None, reply_to, None, when)

    user, bot = MessageRole.USER, MessageRole.ASSISTANT
    older = message(10, user)
    stored = [
        message(5, user),
        older,
        message(11, user),
        message(12, user),
        message(13, bot, reply_to=5),  # answered after the others were stored
        *(message(20 + i, bot, reply_to=11) for i in range(5)),
    ]
    window = conversation_window(stored, older, 3)
    assert [m.id for m in window] == [5, 13, 10]


async def test_a_shared_chats_turn_reads_that_chats_window_and_no_private_fact(
    db: Database,
) -> None:
    user_id = await _user(db)
    store = _store(db)
    private = await store.open(user_id, _new("in private", "p1"), LIMITS, take_lease=True)
    assert private.message is not None
    await store.close(user_id, private.message, _reply("private answer"), delivered=True)
    elsewhere = NewMessage("other group", Platform.TELEGRAM, "-2", "o1", None, shared_chat=True)
    other = await store.open(user_id, elsewhere, LIMITS, take_lease=True)
    assert other.message is not None
    await store.close(user_id, other.message, _reply("other answer"), delivered=True)
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO facts (user_id, content, is_private) VALUES ($1, 'secret', true),"
            " ($1, 'known to all', false)",
            user_id,
        )
    shared = ReadLimits(window=10, facts=5, shared_chat=True)
    first = NewMessage("hello group", Platform.TELEGRAM, "-1", "g1", None, shared_chat=True)
    opened = await store.open(user_id, first, shared, take_lease=True)
    assert opened.state is not None and opened.message is not None
    assert opened.message.shared_chat
    await store.close(user_id, opened.message, _reply("group answer"), delivered=True)
    # Queued behind nothing, but read again through `resume` (as after a wait or a crash).
    second = NewMessage("again", Platform.TELEGRAM, "-1", "g2", None, shared_chat=True)
    waiting = await store.open(user_id, second, shared, take_lease=False)
    assert waiting.state is None and waiting.message is not None
    resumed = await store.resume(user_id, waiting.message.id, shared)
    for state in (opened.state, resumed.state):
        assert state is not None
        assert [f.content for f in state.facts] == ["known to all"]
    assert resumed.state is not None
    assert [m.content for m in resumed.state.recent] == ["hello group", "group answer", "again"]
    assert all(m.shared_chat for m in resumed.state.recent)
    everything = await store.resume(user_id, waiting.message.id, LIMITS)
    assert everything.state is not None
    assert "in private" in [m.content for m in everything.state.recent]


async def test_a_voice_note_keeps_its_type_and_attachments_through_the_turn(
    db: Database,
) -> None:
    user_id = await _user(db)
    store = _store(db)
    voice = {"kind": "voice", "mime_type": "audio/ogg", "size": 2048, "ref": "file-1"}
    new = NewMessage(
        "", Platform.TELEGRAM, "chat", "1", None,
        message_type=MessageType.VOICE, attachments=(voice,),
    )  # fmt: skip
    opened = await store.open(user_id, new, LIMITS, take_lease=True)
    assert opened.message is not None and opened.state is not None
    assert opened.message.message_type is MessageType.VOICE
    assert opened.message.attachments == (voice,)
    heard = {**voice, "transcript": "water the tomatoes"}
    messages = MessageRepository(db)
    assert await messages.record_made_from(
        user_id, opened.message.id, content="water the tomatoes", attachments=[heard],
        embedding=None,
    )  # fmt: skip
    resumed = await _store(db).resume(user_id, opened.message.id, LIMITS)
    assert resumed.message is not None
    assert (resumed.message.content, resumed.message.attachments) == (
        "water the tomatoes",
        (heard,),
    )
    [hit] = await messages.search(user_id, "tomatoes")
    assert hit.message.message_type is MessageType.VOICE
    assert not await messages.record_made_from(
        user_id + 1, opened.message.id, content="x", attachments=[], embedding=None
    )
