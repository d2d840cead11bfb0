"""The pipeline end to end: real database, real embedder, the real openai SDK against a
fake OpenAI-compatible server. The prompt the fake received is what we check."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import replace
from datetime import datetime, timedelta

import asyncpg
import pytest
from prometheus_client import REGISTRY

from core.errors import StorageUnavailable
from core.inbound import Attachment, ChatKind
from core.media.texts import UNSUPPORTED_KIND
from core.models import Message, MessageRole, MessageStatus, NewFact, Platform, UserStatus
from core.notices import BANNED, LLM_BUSY, LLM_FAILED, STORAGE_DOWN, TOO_LONG
from core.services import Services
from core.storage.database import Database, create_pool, is_outage
from fakes.channel import RecordingChannel, RecordingSink
from fakes.openai_server import Delay, FakeOpenAI, HttpError
from fakes.telegram_api import wait_until
from tests.core.engine_helpers import PERSONA, engine_with, inbound, prompt_text


async def _user_id(services: Services, platform_user_id: str) -> int:
    found = await services.users.find(f"telegram:{platform_user_id}")
    assert found is not None
    return found.id


async def test_a_conversation_over_several_turns(services: Services, fake_llm: FakeOpenAI) -> None:
    engine = engine_with(services)
    channel = RecordingChannel()
    for text in ("Hi, I'm Ann", "I like climbing", "What do I like?"):
        await engine.handle(inbound(text), channel)
    assert [r.final for r in channel.replies] == [
        "echo: Hi, I'm Ann",
        "echo: I like climbing",
        "echo: What do I like?",
    ]
    last = fake_llm.chat_requests[-1]["messages"]
    assert last[0]["role"] == "system"
    assert last[0]["content"].startswith(PERSONA.description)
    assert [m["content"] for m in last[1:]] == [
        "Hi, I'm Ann",
        "echo: Hi, I'm Ann",
        "I like climbing",
        "echo: I like climbing",
        "What do I like?",
    ]
    user_id = await _user_id(services, "u1")
    history = await services.messages.history(user_id)
    assert len(history) == 6
    assert all(m.status is MessageStatus.ANSWERED for m in history if m.role is MessageRole.USER)
    assert (await services.users.conversation(user_id)).message_count == 6
    # Streaming: the sink saw the reply grow before it was finished.
    assert channel.replies[0].updates[-1] == "echo: Hi, I'm Ann"


async def test_the_window_is_the_newest_messages_up_to_the_limit(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    engine = engine_with(services, context={"recent_messages": 3})
    channel = RecordingChannel()
    for text in ("one", "two", "three"):
        await engine.handle(inbound(text), channel)
    window = fake_llm.chat_requests[-1]["messages"][1:]
    assert [m["content"] for m in window] == ["two", "echo: two", "three"]


async def test_old_messages_are_recalled_by_meaning_and_by_rare_word(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    engine = engine_with(services, context={"recent_messages": 4}, limits={"rate_burst": 50})
    channel = RecordingChannel()
    await engine.handle(inbound("My sister Priya works as a marine biologist in Lisbon."), channel)
    await engine.handle(inbound("The storage unit code is Zorblax-4471."), channel)
    for i in range(6):
        await engine.handle(inbound(f"Random chatter number {i} about the weather today."), channel)

    await engine.handle(inbound("What job does my sibling have?"), channel)
    prompt = prompt_text(fake_llm.chat_requests[-1])
    assert "marine biologist" in prompt

    await engine.handle(inbound("remind me about Zorblax-4471"), channel)
    system = fake_llm.chat_requests[-1]["messages"][0]["content"]
    assert "The storage unit code is Zorblax-4471." in system


async def test_prompt_fits_the_token_budget_and_its_count_is_right(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    """The assembler adds up what it counted per part instead of encoding the whole
    prompt again; the sum must match an exact count of what the model received."""
    budget = 700
    engine = engine_with(
        services, context={"token_budget": budget, "recent_messages": 20}, limits={"rate_burst": 50}
    )
    channel = RecordingChannel()
    await engine.handle(inbound("Hello! I'm Ann; I live in Zürich since 2019."), channel)
    user_id = await _user_id(services, "u1")
    facts = (
        "Lives in Zürich",
        "Has a dog called Rex (a beagle)",
        "Works at CERN, 3rd floor",
        "3 kids: Mia, Leo and Ava",  # digit-led: BPE splits the space before it
        "2019: moved from Lyon",
    )
    for fact in facts:
        await services.facts.add(user_id, NewFact(fact, importance=7))
    async with services.db.connection() as conn:
        await conn.execute(
            "UPDATE conversations SET summary = $2 WHERE user_id = $1",
            user_id,
            "Ann talked about her move to Zürich, her beagle Rex and her job at CERN. " * 3,
        )
    texts = [
        "Rex chewed my shoes again!!! 😅",
        "What's 12*34? Also: pi ≈ 3.14159…",
        "Meeting at 09:30 — don't forget the slides (v2.1).",
        "Naïve café question: où est la gare?",
    ]
    for i in range(12):
        await engine.handle(inbound(f"{texts[i % len(texts)]} #{i} " + "blah " * (i * 3)), channel)

    for request in fake_llm.chat_requests[-6:]:
        exact = services.tokens.count_messages(request["messages"])
        assert exact <= budget
    reply = (await services.messages.history(user_id, limit=1))[0]
    assert reply.context_snapshot is not None
    last_exact = services.tokens.count_messages(fake_llm.chat_requests[-1]["messages"])
    # A few tokens off (word boundaries), and rather over than under: within 2%.
    assert -2 <= reply.context_snapshot["tokens"]["prompt"] - last_exact <= last_exact // 50
    # The budget, not the window size, is what cut the history short.
    assert len(reply.context_snapshot["window_ids"]) < 20


async def test_reply_keeps_a_snapshot_of_its_context(services: Services) -> None:
    engine = engine_with(services, context={"recent_messages": 2})
    channel = RecordingChannel()
    await engine.handle(inbound("I have a dog called Rex"), channel)
    user_id = await _user_id(services, "u1")
    fact = await services.facts.add(user_id, NewFact("Has a dog called Rex", importance=8))
    await engine.handle(inbound("Filler one"), channel)
    await engine.handle(inbound("Tell me about my dog Rex"), channel)
    reply = (await services.messages.history(user_id, limit=1))[0]
    assert reply.role is MessageRole.ASSISTANT
    snapshot = reply.context_snapshot
    assert snapshot is not None
    assert snapshot["fact_ids"] == [fact.id]
    assert snapshot["model"] == "fake-model"
    assert snapshot["summary_version"] == 0
    assert set(snapshot["tokens"]) >= {"persona", "summary", "facts", "recall", "recent", "prompt"}
    assert snapshot["tokens"]["facts"] > 0
    assert set(snapshot["timings_ms"]) >= {"embed_ms", "store_ms", "assemble_ms", "llm_ms"}
    recalled = {(r["source"], r["id"]) for r in snapshot["recalled"]}
    first = (await services.messages.history(user_id))[-1]
    assert ("messages", first.id) in recalled
    assert all(isinstance(r["score"], float) for r in snapshot["recalled"])
    # Recall never repeats what is already in the window.
    assert not recalled & {("messages", i) for i in snapshot["window_ids"]}
    assert reply.tokens_in == snapshot["tokens_in"]
    assert reply.model == "fake-model"


async def test_redelivered_message_is_answered_once(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    engine = engine_with(services)
    channel = RecordingChannel()
    message = inbound("hello once", message_id="m-1")
    await engine.handle(message, channel)
    await engine.handle(message, channel)
    assert len(fake_llm.chat_requests) == 1
    assert [r.final for r in channel.replies] == ["echo: hello once"]


async def test_stored_but_unanswered_message_is_answered_on_redelivery(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    # The process died after storing the message: it is pending.
    user, _ = await services.users.get_or_create(Platform.TELEGRAM, "u1")
    await services.messages.add_user_message(
        user.id,
        "are you there?",
        platform=Platform.TELEGRAM,
        chat_id="chat-u1",
        platform_message_id="m-9",
    )
    channel = RecordingChannel()
    await engine_with(services).handle(inbound("are you there?", message_id="m-9"), channel)
    assert channel.last == "echo: are you there?"
    assert len(fake_llm.chat_requests) == 1


class _FailingOnceSink:
    def __init__(self, channel: _FlakyChannel) -> None:
        self._channel = channel

    async def update(self, text: str) -> None:
        return None

    async def finish(self, text: str) -> None:
        if not self._channel.failed:
            self._channel.failed = True
            raise ConnectionError("platform unreachable")
        self._channel.delivered.append(text)


class _FlakyChannel(RecordingChannel):
    failed = False

    def __init__(self) -> None:
        super().__init__()
        self.delivered: list[str] = []

    def start_reply(self) -> _FailingOnceSink:  # type: ignore[override]
        return _FailingOnceSink(self)


async def test_recorded_reply_that_was_not_delivered_is_sent_on_redelivery(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    engine = engine_with(services)
    channel = _FlakyChannel()
    message = inbound("important", message_id="m-2")
    await engine.handle(message, channel)
    assert channel.delivered == []
    await engine.handle(message, channel)
    assert channel.delivered == ["echo: important"]
    assert len(fake_llm.chat_requests) == 1  # not answered twice
    await engine.handle(message, channel)
    assert channel.delivered == ["echo: important"]  # and not sent twice


async def test_llm_failure_keeps_the_message_and_the_next_one_covers_it(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    engine = engine_with(services)
    channel = RecordingChannel()
    fake_llm.push_fault(HttpError(500))
    await engine.handle(inbound("first try"), channel)
    assert channel.last == LLM_FAILED
    user_id = await _user_id(services, "u1")
    failed = (await services.messages.history(user_id))[0]
    assert (failed.content, failed.status) == ("first try", MessageStatus.FAILED)

    fake_llm.push_fault(HttpError(429, retry_after=0.01))
    await engine.handle(inbound("second"), channel)
    assert channel.last == LLM_BUSY

    await engine.handle(inbound("third"), channel)
    assert channel.last == "echo: third"
    # The model saw the unanswered messages, and they now count as answered.
    assert "first try" in prompt_text(fake_llm.chat_requests[-1])
    statuses = {m.content: m.status for m in await services.messages.history(user_id)}
    assert statuses["first try"] is MessageStatus.ANSWERED
    assert statuses["second"] is MessageStatus.ANSWERED


async def test_users_never_see_each_others_data(services: Services, fake_llm: FakeOpenAI) -> None:
    engine = engine_with(services)
    alice, bob = RecordingChannel(), RecordingChannel()
    await engine.handle(inbound("My password hint is aubergine-77", user="alice"), alice)
    alice_id = await _user_id(services, "alice")
    await services.facts.add(alice_id, NewFact("Alice's hint is aubergine-77", importance=10))
    fake_llm.chat_requests.clear()
    await engine.handle(inbound("what is my password hint aubergine?", user="bob"), bob)
    await engine.handle(inbound("tell me everything you know", user="bob"), bob)
    for request in fake_llm.chat_requests:
        assert "aubergine-77" not in prompt_text(request)


async def test_private_facts_stay_out_of_shared_chats(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    engine = engine_with(services)
    channel = RecordingChannel()
    await engine.handle(inbound("hello"), channel)
    user_id = await _user_id(services, "u1")
    await services.facts.add(user_id, NewFact("Is being treated for anxiety", is_private=True))
    await services.facts.add(user_id, NewFact("Plays the cello"))
    await engine.handle(
        inbound("how am I doing with anxiety?", kind=ChatKind.GROUP, chat="g"), channel
    )
    group_prompt = prompt_text(fake_llm.chat_requests[-1])
    assert "Plays the cello" in group_prompt
    assert "treated for anxiety" not in group_prompt
    await engine.handle(inbound("how am I doing with anxiety?"), channel)
    assert "treated for anxiety" in prompt_text(fake_llm.chat_requests[-1])


async def test_rate_limit_refuses_without_storing(services: Services) -> None:
    engine = engine_with(services, limits={"rate_burst": 2, "rate_per_minute": 1})
    channel = RecordingChannel()
    for text in ("one", "two", "three"):
        await engine.handle(inbound(text), channel)
    assert channel.sent[-1].startswith("You're writing faster than I can keep up")
    user_id = await _user_id(services, "u1")
    assert [
        m.content for m in await services.messages.history(user_id) if m.role is MessageRole.USER
    ] == ["two", "one"]


async def test_rate_limit_refills_with_time(services: Services) -> None:
    now = [services.clock()]
    clocked = replace(services, clock=lambda: now[0])
    engine = engine_with(clocked, limits={"rate_burst": 1, "rate_per_minute": 60})
    channel = RecordingChannel()
    await engine.handle(inbound("one"), channel)
    await engine.handle(inbound("two"), channel)
    assert channel.sent[-1].startswith("You're writing faster")
    from datetime import timedelta

    now[0] += timedelta(seconds=1.5)
    await engine.handle(inbound("three"), channel)
    assert channel.last == "echo: three"


async def test_too_long_message_is_refused_and_not_stored(services: Services) -> None:
    engine = engine_with(services, limits={"max_message_chars": 10})
    channel = RecordingChannel()
    await engine.handle(inbound("x" * 11), channel)
    assert channel.sent == [TOO_LONG.format(length=11, limit=10)]
    user = await services.users.find("telegram:u1")
    assert user is not None
    assert await services.messages.count(user.id) == 0


async def test_banned_user_is_told_once_and_ignored(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    engine = engine_with(services)
    channel = RecordingChannel()
    await engine.handle(inbound("hi"), channel)
    user_id = await _user_id(services, "u1")
    await services.users.set_status(user_id, UserStatus.BANNED)
    fake_llm.chat_requests.clear()
    await engine.handle(inbound("hello?"), channel)
    await engine.handle(inbound("hello??"), channel)
    assert channel.sent == [BANNED]
    assert fake_llm.chat_requests == []


async def test_unaddressed_and_non_text_messages(services: Services) -> None:
    engine = engine_with(services)
    channel = RecordingChannel()
    await engine.handle(
        inbound("chatting among ourselves", kind=ChatKind.GROUP, addressed=False), channel
    )
    assert channel.texts == []
    assert await services.users.find("telegram:u1") is None
    await engine.handle(inbound("", attachments=(Attachment("sticker"),)), channel)
    assert channel.sent == [UNSUPPORTED_KIND]


async def test_a_nul_in_an_attachments_name_loses_nothing(services: Services) -> None:
    """PostgreSQL's jsonb cannot hold U+0000; a client-chosen file name may."""
    engine, channel = engine_with(services), RecordingChannel()
    photo = Attachment("photo", name="pic\x00.jpg", mime_type="image/\x00jpeg", ref="f1")
    await engine.handle(inbound("look at this", attachments=(photo,)), channel)
    user = await services.users.find("telegram:u1")
    assert user is not None
    [reply, stored] = await services.messages.history(user.id)  # newest first
    assert stored.status is MessageStatus.ANSWERED and reply.role is MessageRole.ASSISTANT
    assert stored.attachments[0]["name"] == "pic\ufffd.jpg"
    assert channel.texts[-1] == "echo: look at this"


async def test_messages_of_one_user_are_answered_in_order(
    fresh_dsn: str, services: Services, fake_llm: FakeOpenAI
) -> None:
    pool = await create_pool(fresh_dsn, min_size=2, max_size=10)
    try:
        engine = engine_with(replace(services, db=Database(pool)))
        channel = RecordingChannel()
        texts = [f"message {i}" for i in range(6)]
        await asyncio.gather(*(engine.handle(inbound(t, user="orderly"), channel) for t in texts))
        user = await replace(services, db=Database(pool)).users.find("telegram:orderly")
        assert user is not None
        history = list(
            reversed(await replace(services, db=Database(pool)).messages.history(user.id))
        )
        assert_turns_in_order(history, 6)
        questions = [m for m in history if m.role is MessageRole.USER]
        assert sorted(m.content for m in questions) == texts
        answers = [m for m in history if m.role is MessageRole.ASSISTANT]
        for question, answer in zip(questions, answers, strict=True):
            assert answer.content == f"echo: {question.content}"
    finally:
        await pool.close()


def assert_turns_in_order(history: list[Message], count: int) -> None:
    """One person's `count` messages were answered one turn at a time, in the order they
    were stored: the k-th reply answers the k-th message, and each reply's prompt held
    the reply before it (its turn began after the previous one ended)."""
    questions = [m for m in history if m.role is MessageRole.USER]
    answers = [m for m in history if m.role is MessageRole.ASSISTANT]
    assert len(questions) == len(answers) == count
    assert [a.reply_to_id for a in answers] == [q.id for q in questions]
    for previous, answer in itertools.pairwise(answers):
        assert answer.context_snapshot is not None
        assert previous.id in answer.context_snapshot["window_ids"]


async def test_two_replicas_never_interleave_one_users_turns(
    fresh_dsn: str, services: Services, fake_llm: FakeOpenAI
) -> None:
    """Two engines (as two replicas: separate in-process queues) share only the database:
    one person's turns still run one at a time, in the order their messages were
    stored."""
    pool = await create_pool(fresh_dsn, min_size=2, max_size=10)
    try:
        pooled = replace(services, db=Database(pool))
        # Ordering, not rate limits: eight at once is the default burst's very edge.
        replicas = [engine_with(pooled, limits={"rate_burst": 50}) for _ in range(2)]
        channel = RecordingChannel()
        await asyncio.gather(
            *(
                replicas[i % 2].handle(inbound(f"message {i}", user="shared"), channel)
                for i in range(8)
            )
        )
        user = await pooled.users.find("telegram:shared")
        assert user is not None
        history = list(reversed(await pooled.messages.history(user.id)))
        assert_turns_in_order(history, 8)
    finally:
        await pool.close()


async def test_a_users_queued_messages_hold_no_connection_while_they_wait(
    fresh_dsn: str, services: Services, fake_llm: FakeOpenAI
) -> None:
    """With a pool of two, one person's slow answer and their three queued messages must
    not keep someone else waiting: queued messages wait for the lock, not on a
    connection."""
    pool = await create_pool(fresh_dsn, min_size=1, max_size=2)
    try:
        engine = engine_with(replace(services, db=Database(pool)), limits={"rate_burst": 50})
        channel = RecordingChannel()
        fake_llm.push_fault(Delay(3.0))
        first = asyncio.create_task(engine.handle(inbound("slow one", user="busy"), channel))
        for _ in range(500):  # until the slow answer is under way
            if fake_llm.chat_requests:
                break
            await asyncio.sleep(0.01)
        queued = [
            asyncio.create_task(engine.handle(inbound(f"queued {i}", user="busy"), channel))
            for i in range(3)
        ]
        await asyncio.sleep(0.1)  # the queued ones reach the lock
        await asyncio.wait_for(engine.handle(inbound("hello", user="other"), channel), 2.0)
        assert not first.done()
        await asyncio.gather(first, *queued)
        busy = await replace(services, db=Database(pool)).users.find("telegram:busy")
        assert busy is not None
        history = list(
            reversed(await replace(services, db=Database(pool)).messages.history(busy.id))
        )
        questions = [m.content for m in history if m.role is MessageRole.USER]
        # Sent at once, the queued ones are stored in any order, but after the slow one.
        assert questions[0] == "slow one"
        assert sorted(questions[1:]) == ["queued 0", "queued 1", "queued 2"]
        assert_turns_in_order(history, 4)
        # Each reply's snapshot tells how long its message waited for the earlier ones.
        queued_ms = [_timings(m)["queued_ms"] for m in history if m.role is MessageRole.ASSISTANT]
        assert queued_ms[0] < 1000
        assert all(waited >= 2500 for waited in queued_ms[1:])
    finally:
        await pool.close()


def _timings(reply: Message) -> dict[str, int]:
    assert reply.context_snapshot is not None
    return dict(reply.context_snapshot["timings_ms"])


async def test_a_turn_waiting_for_another_replicas_turn_counts_the_wait_as_queued(
    fresh_dsn: str, services: Services, fake_llm: FakeOpenAI
) -> None:
    pool = await create_pool(fresh_dsn, min_size=2, max_size=10)
    try:
        pooled = replace(services, db=Database(pool))
        first_replica, second_replica = engine_with(pooled), engine_with(pooled)
        channel = RecordingChannel()
        fake_llm.push_fault(Delay(1.5))
        first = asyncio.create_task(first_replica.handle(inbound("slow one", user="both"), channel))
        await wait_until(lambda: len(fake_llm.chat_requests) == 1)
        await second_replica.handle(inbound("meanwhile", user="both"), channel)
        await first
        user = await pooled.users.find("telegram:both")
        assert user is not None
        history = list(reversed(await pooled.messages.history(user.id)))
        assert_turns_in_order(history, 2)
        slow, meanwhile = (_timings(m) for m in history if m.role is MessageRole.ASSISTANT)
        assert slow["queued_ms"] < 1000
        assert meanwhile["queued_ms"] >= 1000
    finally:
        await pool.close()


async def test_redelivered_command_runs_once(services: Services) -> None:
    engine = engine_with(services)
    channel = RecordingChannel()
    command = inbound("/help", message_id="cmd-1")
    await engine.handle(command, channel)
    await engine.handle(command, channel)
    assert len(channel.sent) == 1
    await engine.handle(inbound("/help", message_id="cmd-2"), channel)
    assert len(channel.sent) == 2


async def test_style_and_themes_from_the_memory_job_shape_the_prompt(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    engine = engine_with(services)
    channel = RecordingChannel()
    await engine.handle(inbound("hi"), channel)
    user_id = await _user_id(services, "u1")
    async with services.db.connection() as conn:
        await conn.execute(
            "UPDATE conversation_context SET communication_style = 'short and playful',"
            " themes = $2, insights = $3 WHERE user_id = $1",
            user_id,
            ["gardening", "chess"],
            ["Opens up late at night"],
        )
    await engine.handle(inbound("hello again"), channel)
    system = fake_llm.chat_requests[-1]["messages"][0]["content"]
    assert "How this person likes to talk: short and playful" in system
    assert "gardening, chess" in system
    assert "Opens up late at night" in system
    await engine.handle(inbound("hello group", kind=ChatKind.GROUP, chat="g"), channel)
    shared = fake_llm.chat_requests[-1]["messages"][0]["content"]
    # The profile is written from every chat, private ones included: none of it in a group.
    assert "short and playful" not in shared
    assert "gardening" not in shared
    assert "Opens up late at night" not in shared


def test_what_counts_as_a_database_outage() -> None:
    assert is_outage(ConnectionRefusedError())
    assert is_outage(asyncpg.InterfaceError("pool is closed"))
    assert is_outage(asyncpg.exceptions.InternalClientError("cannot switch to state 11"))
    wrapped = RuntimeError("wrapper")
    wrapped.__cause__ = OSError("socket gone")
    assert is_outage(wrapped)
    assert not is_outage(RuntimeError("a bug"))
    assert not is_outage(ValueError())


async def test_an_unreachable_database_is_raised_to_the_adapter_and_told_once(
    fresh_dsn: str, services: Services
) -> None:
    pool = await create_pool(fresh_dsn, min_size=1, max_size=2)
    engine = engine_with(replace(services, db=Database(pool)))
    await pool.close()  # the database is gone for this engine
    channel = RecordingChannel()
    message = inbound("are you there?", message_id="outage-1")
    for _ in range(2):
        with pytest.raises(StorageUnavailable):
            await engine.handle(message, channel)
    assert channel.sent == [STORAGE_DOWN]


async def test_a_reply_delivered_as_the_database_went_down_is_recorded_once_it_is_back(
    fresh_dsn: str, services: Services, fake_llm: FakeOpenAI
) -> None:
    """The reply reaches the person, then the database goes away before it is recorded:
    the platform has acknowledged the message and will not bring it again, so the engine
    records the reply itself once it can, without asking the model again; a redelivery
    meanwhile changes nothing."""
    pool = await create_pool(fresh_dsn, min_size=1, max_size=2)
    admin = await asyncpg.connect(fresh_dsn)
    try:
        engine = engine_with(replace(services, db=Database(pool)))
        channel = RecordingChannel()

        async def database_dies(sink: RecordingSink, text: str) -> None:
            sink.final = text
            await admin.execute(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            # As when a server goes away: the engine's connection sees it closed before
            # its next statement (not the termination notice arriving mid-statement).
            await asyncio.sleep(0.2)

        channel.on_finish = database_dies
        message = inbound("what a day", message_id="delivered-then-outage")
        await engine.handle(message, channel)
        assert channel.texts == ["echo: what a day"]
        channel.on_finish = None
        await engine.handle(message, channel)  # redelivered: already answered
        assert channel.texts == ["echo: what a day"]
        assert len(fake_llm.chat_requests) == 1
        rows = await admin.fetch(
            "SELECT role, content, status, delivered_at IS NOT NULL AS delivered FROM messages"
            " ORDER BY id"
        )
        assert [tuple(r) for r in rows] == [
            ("user", "what a day", "answered", False),
            ("assistant", "echo: what a day", None, True),
        ]
    finally:
        await admin.close()
        await pool.close()


async def test_a_delivered_reply_that_cannot_be_recorded_is_not_apologised_for(
    fresh_dsn: str, services: Services, fake_llm: FakeOpenAI
) -> None:
    """The person has the answer; the record fails for a reason other than an outage
    (here: the user was erased meanwhile). Logged and counted, no apology sent."""
    pool = await create_pool(fresh_dsn, min_size=1, max_size=2)
    try:
        pooled = replace(services, db=Database(pool))
        engine = engine_with(pooled)
        channel = RecordingChannel()
        await engine.handle(inbound("hello"), channel)
        user_id = await _user_id(pooled, "u1")

        async def user_erased(sink: RecordingSink, text: str) -> None:
            sink.final = text
            await pooled.users.delete(user_id)

        channel.on_finish = user_erased
        await engine.handle(inbound("and goodbye"), channel)
        assert channel.texts == ["echo: hello", "echo: and goodbye"]
        assert len(fake_llm.chat_requests) == 2
    finally:
        await pool.close()


async def test_the_record_stage_leaves_the_delivery_out(services: Services) -> None:
    """`record` times the reply's embedding and write, not the platform's call."""
    engine = engine_with(services)
    channel = RecordingChannel()

    async def slow_platform(sink: RecordingSink, text: str) -> None:
        await asyncio.sleep(0.3)
        sink.final = text

    channel.on_finish = slow_platform
    labels = {"stage": "record"}
    count = REGISTRY.get_sample_value("onethread_stage_seconds_count", labels) or 0.0
    total = REGISTRY.get_sample_value("onethread_stage_seconds_sum", labels) or 0.0
    await engine.handle(inbound("take your time"), channel)
    assert channel.texts == ["echo: take your time"]
    assert REGISTRY.get_sample_value("onethread_stage_seconds_count", labels) == count + 1
    spent = (REGISTRY.get_sample_value("onethread_stage_seconds_sum", labels) or 0.0) - total
    assert 0 <= spent < 0.3


async def test_a_turn_leaves_its_connection_committing_synchronously(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    # The accept phase and the delivery mark commit asynchronously; the connection
    # (here the test's only one, not a pool's) must be back to the server's setting.
    channel = RecordingChannel()
    await engine_with(services).handle(inbound("hello"), channel)

    assert channel.last == "echo: hello"
    async with services.db.connection() as conn:
        assert await conn.fetchval("SHOW synchronous_commit") == "on"


async def test_last_seen_is_stamped_at_most_once_a_minute_and_on_a_new_name(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    engine = engine_with(services)
    channel = RecordingChannel()
    await engine.handle(inbound("one", user="seen"), channel)
    user_id = await _user_id(services, "seen")
    first = await services.users.get(user_id)
    assert first is not None and first.last_seen_at is not None
    assert first.display_name == "Seen"

    async def seen_ago(seconds: int) -> datetime | None:
        async with services.db.connection() as conn:
            await conn.execute(
                "UPDATE users SET last_seen_at = now() - make_interval(secs => $2) WHERE id = $1",
                user_id,
                seconds,
            )
        await engine.handle(inbound("again", user="seen"), channel)
        user = await services.users.get(user_id)
        assert user is not None
        return user.last_seen_at

    # (The test's transaction makes now() one instant: a stamp sets it back to `first`.)
    assert await seen_ago(30) == first.last_seen_at - timedelta(seconds=30)
    assert await seen_ago(120) == first.last_seen_at
    await engine.handle(replace(inbound("renamed", user="seen"), display_name="Seen Anew"), channel)
    renamed = await services.users.get(user_id)
    assert renamed is not None and renamed.display_name == "Seen Anew"


async def test_every_statement_of_a_turn_is_planned_once_not_at_every_message(
    services: Services,
) -> None:
    """PostgreSQL plans a prepared statement anew for its first five executions, then
    keeps one generic plan unless that one looks dearer than a custom plan. The reply's
    statement once looked so (an id array the planner guessed at ten elements) and was
    planned again at every message: server CPU on every turn (docs/pipeline.md)."""
    engine = engine_with(services, limits={"rate_burst": 50})
    channel = RecordingChannel()
    async with services.db.connection() as conn:
        # The planner prices plans from table statistics: make them a live service's,
        # a thousand people with fifty messages each.
        await conn.execute(
            "WITH people AS (INSERT INTO users (display_name)"
            " SELECT 'p' || i FROM generate_series(1, 1000) i RETURNING id),"
            " talked AS (INSERT INTO conversations (user_id) SELECT id FROM people)"
            " INSERT INTO messages (user_id, role, content, platform, status)"
            " SELECT id, 'user', 'filler ' || i, 'telegram', 'answered'"
            " FROM people, generate_series(1, 50) i"
        )
        await conn.execute("ANALYZE messages, conversations")
    turns = 12
    for i in range(turns):
        await engine.handle(inbound(f"Message number {i} about the garden."), channel)
    assert len(channel.replies) == turns
    async with services.db.connection() as conn:
        rows = await conn.fetch(
            "SELECT statement, custom_plans FROM pg_prepared_statements"
            " WHERE generic_plans + custom_plans >= $1",
            turns,
        )
    statements = " ".join(r["statement"] for r in rows)
    for part in ("INSERT INTO messages", "'assistant'", "has_memory", "delivered_at"):
        assert part in statements, f"no statement of a turn holds {part!r}"
    replanned = [" ".join(r["statement"].split())[:100] for r in rows if r["custom_plans"] > 5]
    assert replanned == []
