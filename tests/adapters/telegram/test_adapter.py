"""The adapter end to end: real python-telegram-bot against the fake Bot API, the real
engine on the test database, the real openai SDK against the fake LLM."""

from __future__ import annotations

import asyncio
import json

from core.media.texts import NO_TRANSCRIPTION, NO_VISION
from core.notices import INTERRUPTED
from core.services import Services
from fakes.openai_server import Delay, FakeOpenAI
from fakes.telegram_api import (
    BOT_USERNAME,
    FakeTelegram,
    cant_parse,
    flood,
    mention,
    wait_until,
)
from tests.adapters.telegram.helpers import (
    a_statement_waits,
    make_adapter,
    running,
    stepping_clock,
    storing_blocked,
)
from tests.core.engine_helpers import engine_with

GROUP = -100500


async def _stored(services: Services, user_id: int) -> list[str]:
    user = await services.users.find(f"telegram:{user_id}")
    if user is None:
        return []
    return [m.content for m in reversed(await services.messages.history(user.id))]


async def _until_stored(services: Services, user_id: int, *, count: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while len(await _stored(services, user_id)) < count:
        assert loop.time() < deadline, "messages not stored in time"
        await asyncio.sleep(0.02)


async def test_private_conversation_and_the_offset_waits_for_the_message_to_be_stored(
    services: Services, tg: FakeTelegram, fresh_dsn: str
) -> None:
    async with running(make_adapter(engine_with(services), tg)) as adapter:
        await wait_until(lambda: adapter.connected)
        async with storing_blocked(fresh_dsn) as blocker:
            first = tg.push_message("Hello there", user_id=101)
            await wait_until(lambda: a_statement_waits(blocker), within=30)
            # Crash safety: polls go on, and none acknowledges the update before its
            # message is stored.
            polls = len(tg.calls_to("getUpdates"))
            await wait_until(lambda: len(tg.calls_to("getUpdates")) > polls + 1)
            assert tg.confirmed_below <= first
        await wait_until(lambda: tg.texts(101) == ["echo: Hello there"])
        await wait_until(lambda: tg.confirmed_below > first)
        second = tg.push_message("How are you?", user_id=101)
        await wait_until(lambda: tg.texts(101)[-1:] == ["echo: How are you?"])
        await wait_until(lambda: tg.confirmed_below > second)

    assert [m.reply_to for m in tg.chat(101)] == [None, None]  # no quoting in private
    assert await _stored(services, 101) == [
        "Hello there",
        "echo: Hello there",
        "How are you?",
        "echo: How are you?",
    ]
    assert tg.calls_to("sendChatAction")[0].params["action"] == "typing"
    assert tg.calls_to("deleteWebhook")  # polling needs no webhook set


async def test_command_menus_for_users_and_admins(services: Services, tg: FakeTelegram) -> None:
    async with running(make_adapter(engine_with(services), tg)):
        pass
    user_names = [name for name, _ in tg.menu()]
    admin_names = [name for name, _ in tg.menu(scope={"type": "chat", "chat_id": 900})]
    assert "start" in user_names
    assert "ban" not in user_names
    assert "ban" in admin_names
    assert set(user_names) < set(admin_names)


async def test_group_answers_only_when_addressed(services: Services, tg: FakeTelegram) -> None:
    async with running(make_adapter(engine_with(services), tg)):
        tg.push_message("just chatting among us", user_id=201, chat_id=GROUP, message_id=1)
        tg.push_message("/help@otherbot", user_id=201, chat_id=GROUP, message_id=2)
        text = f"@{BOT_USERNAME} what's up?"
        tg.push_message(text, user_id=201, chat_id=GROUP, message_id=3, entities=[mention(text)])
        await wait_until(lambda: tg.texts(GROUP) == ["echo: what's up?"])
        assert tg.chat(GROUP)[0].reply_to == 3  # quotes the question

        bot_message = tg.chat(GROUP)[0].message_id
        tg.push_message("and you?", user_id=202, chat_id=GROUP, reply_to_bot=bot_message)
        await wait_until(lambda: tg.texts(GROUP)[1:] == ["echo: and you?"])
        last = tg.push_message(f"/start@{BOT_USERNAME}", user_id=203, chat_id=GROUP, message_id=9)
        await wait_until(lambda: tg.confirmed_below > last)

    # The database is read once the adapter has stopped: the test shares its connection.
    assert await _stored(services, 201) == ["what's up?", "echo: what's up?"]
    assert tg.texts(GROUP)[2].startswith("Hi Ann!")
    assert tg.chat(GROUP)[2].reply_to == 9


async def test_long_reply_is_split_and_each_part_rendered(
    services: Services, tg: FakeTelegram, fake_llm: FakeOpenAI
) -> None:
    paragraph = "This is **important** text & more. " * 20
    reply = "\n\n".join(f"{n}: {paragraph.strip()}" for n in range(15))
    assert len(reply) > 10_000
    fake_llm.push_reply(reply)
    async with running(make_adapter(engine_with(services), tg)):
        tg.push_message("Tell me a lot", user_id=301)
        await wait_until(lambda: len(tg.chat(301)) == 3 and "14: This" in tg.texts(301)[-1])

    parts = tg.chat(301)
    assert all(len(p.text) <= 4096 and p.parse_mode == "HTML" for p in parts)
    assert "**" not in "".join(p.text for p in parts)
    assert "".join(p.text for p in parts).count("important") == 15 * 20


async def test_streamed_reply_edits_one_message(
    services: Services, tg: FakeTelegram, fake_llm: FakeOpenAI
) -> None:
    reply = "one two three four five six seven eight"
    fake_llm.push_reply(reply)
    adapter = make_adapter(engine_with(services), tg, clock=stepping_clock(10.0))
    async with running(adapter):
        tg.push_message("count", user_id=401)
        await wait_until(lambda: tg.texts(401) == [reply])

    sends = [c for c in tg.calls_to("sendMessage") if c.params["chat_id"] == 401]
    edits = [c.params["text"] for c in tg.calls_to("editMessageText")]
    assert len(sends) == 1
    assert len(edits) >= 3
    assert len(set(edits)) == len(edits)  # never "message is not modified"


async def test_flood_control_is_waited_out(services: Services, tg: FakeTelegram) -> None:
    tg.fail("sendMessage", flood(1))
    async with running(make_adapter(engine_with(services), tg)):
        tg.push_message("are you there?", user_id=501)
        await wait_until(lambda: tg.texts(501) == ["echo: are you there?"])
    refused, retried = tg.calls_to("sendMessage")
    assert refused.params == retried.params  # the same request again, not a new one


async def test_unparsable_markdown_falls_back_to_plain_text(
    services: Services, tg: FakeTelegram, fake_llm: FakeOpenAI
) -> None:
    reply = "Use **bold** and `a < b` & [a link](https://example.com/?a=1&b=2)."
    fake_llm.push_reply(reply, reply)
    async with running(make_adapter(engine_with(services), tg)):
        tg.push_message("format please", user_id=601)
        # The fake checks the HTML like Telegram: escaped, nested, known tags only.
        await wait_until(lambda: tg.texts(601) == ["Use bold and a < b & a link."])

        tg.fail("sendMessage", cant_parse())
        tg.fail("editMessageText", cant_parse())
        tg.push_message("again please", user_id=601)
        await wait_until(lambda: len(tg.texts(601)) == 2 and tg.texts(601)[1] == reply)
    assert tg.chat(601)[1].parse_mode is None


async def test_commands_answer_in_plain_text(services: Services, tg: FakeTelegram) -> None:
    async with running(make_adapter(engine_with(services), tg)):
        tg.push_message("/start", user_id=701)
        await wait_until(lambda: len(tg.texts(701)) == 1)
        tg.push_message("/memory", user_id=701)
        await wait_until(lambda: len(tg.texts(701)) == 2)
    assert tg.texts(701)[0].startswith("Hi Ann!")
    assert tg.texts(701)[1] == "I don't know anything about you yet."
    assert all(m.parse_mode is None for m in tg.chat(701))


async def test_export_is_sent_as_a_document(services: Services, tg: FakeTelegram) -> None:
    async with running(make_adapter(engine_with(services), tg)):
        tg.push_message("remember me", user_id=801)
        await wait_until(lambda: len(tg.texts(801)) == 1)
        tg.push_message("/export", user_id=801)
        await wait_until(lambda: len(tg.calls_to("sendDocument")) == 1)
    call = tg.calls_to("sendDocument")[0]
    name, data = call.files["document"]
    assert name.endswith(".json")
    assert "remember me" in json.dumps(json.loads(data))
    assert call.params["chat_id"] == 801


async def test_the_same_message_delivered_twice_is_answered_once(
    services: Services, tg: FakeTelegram, fake_llm: FakeOpenAI
) -> None:
    async with running(make_adapter(engine_with(services), tg)):
        tg.push_message("only once", user_id=901, message_id=77)
        second = tg.push_message("only once", user_id=901, message_id=77)
        # Acknowledged means handled.
        await wait_until(lambda: tg.confirmed_below > second)
    assert tg.texts(901) == ["echo: only once"]
    assert len(fake_llm.chat_requests) == 1
    assert await _stored(services, 901) == ["only once", "echo: only once"]


async def test_photos_and_voice_are_refused_plainly_without_vision_or_transcription(
    services: Services, tg: FakeTelegram
) -> None:
    photo = [
        {"file_id": "p1", "file_unique_id": "u1", "width": 90, "height": 90, "file_size": 10},
        {"file_id": "p2", "file_unique_id": "u2", "width": 800, "height": 600, "file_size": 99},
    ]
    voice = {"file_id": "v", "file_unique_id": "uv", "duration": 3, "mime_type": "audio/ogg"}
    async with running(make_adapter(engine_with(services), tg)):
        tg.push_message(user_id=1001, photo=photo)
        tg.push_message(user_id=1001, voice=voice)
        await wait_until(lambda: len(tg.texts(1001)) == 2)
    assert tg.texts(1001) == [NO_VISION, NO_TRANSCRIPTION]
    assert await _stored(services, 1001) == []


async def test_an_update_interrupted_by_shutdown_before_it_was_stored_comes_again(
    services: Services, tg: FakeTelegram, fresh_dsn: str
) -> None:
    """Not stored when the shutdown came: not acknowledged, so Telegram delivers it to
    the next process, which answers it."""
    engine = engine_with(services)
    async with storing_blocked(fresh_dsn) as blocker:
        async with running(make_adapter(engine, tg, shutdown_timeout=0.05)):
            update = tg.push_message("not stored yet", user_id=1101)
            await wait_until(lambda: a_statement_waits(blocker), within=30)
        assert tg.confirmed_below <= update

    async with running(make_adapter(engine, tg)):
        await wait_until(lambda: tg.texts(1101) == ["echo: not stored yet"])
        await wait_until(lambda: tg.confirmed_below > update)
    assert await _stored(services, 1101) == ["not stored yet", "echo: not stored yet"]


async def test_an_update_whose_reply_is_interrupted_by_shutdown_stays_acknowledged(
    services: Services, tg: FakeTelegram, fake_llm: FakeOpenAI
) -> None:
    """Its message is stored: Telegram need not deliver it again. The turn cut short by
    the shutdown leaves it failed and tells the person, and /retry answers it."""
    engine = engine_with(services)
    fake_llm.push_fault(Delay(30))
    async with running(make_adapter(engine, tg, shutdown_timeout=0.05)):
        update = tg.push_message("slow one", user_id=1102)
        await wait_until(lambda: len(fake_llm.chat_requests) == 1)
        await wait_until(lambda: tg.confirmed_below > update)
    assert tg.texts(1102) == [INTERRUPTED]
    assert await _stored(services, 1102) == ["slow one"]

    async with running(make_adapter(engine, tg)):
        tg.push_message("/retry", user_id=1102)
        await wait_until(lambda: tg.texts(1102) == [INTERRUPTED, "echo: slow one"])
    assert await _stored(services, 1102) == ["slow one", "echo: slow one"]


async def test_a_slow_reply_holds_up_neither_other_chats_nor_acknowledgements(
    services: Services, tg: FakeTelegram, fake_llm: FakeOpenAI
) -> None:
    fake_llm.push_fault(Delay(30))
    async with running(make_adapter(engine_with(services), tg, shutdown_timeout=0.05)):
        slow = tg.push_message("slow", user_id=1201)
        await wait_until(lambda: len(fake_llm.chat_requests) == 1)
        quick = tg.push_message("quick", user_id=1202)
        await wait_until(lambda: tg.texts(1202) == ["echo: quick"])
        await wait_until(lambda: tg.confirmed_below > quick)
        assert tg.texts(1201) == []  # still being answered, yet acknowledged: stored
        assert slow < quick


async def test_memory_off_and_forget_all_through_telegram(
    services: Services, tg: FakeTelegram, fake_llm: FakeOpenAI
) -> None:
    async with running(make_adapter(engine_with(services), tg)):
        tg.push_message("my dog is called Biscuit", user_id=901)
        await wait_until(lambda: len(tg.texts(901)) == 1)
        tg.push_message("/memory off", user_id=901)
        await wait_until(lambda: len(tg.texts(901)) == 2)
        tg.push_message("said while memory is off", user_id=901)
        await wait_until(lambda: len(tg.texts(901)) == 3)
        # The reply is recorded just after it is delivered: wait for it, or /forget all
        # would find the message still being answered and keep it (set aside).
        await _until_stored(services, 901, count=4)
        tg.push_message("/forget all confirm", user_id=901)
        await wait_until(lambda: len(tg.texts(901)) == 4)
        tg.push_message("/memory on", user_id=901)
        await wait_until(lambda: len(tg.texts(901)) == 5)
        tg.push_message("what is my dog called?", user_id=901)
        await wait_until(lambda: len(tg.texts(901)) == 6)
    texts = tg.texts(901)
    assert texts[1].startswith("Memory is off.")
    assert texts[3].startswith("Done. I forgot everything")
    assert texts[4].startswith("Memory is on again")
    prompt = "\n".join(m["content"] for m in fake_llm.chat_requests[-1]["messages"])
    assert "Biscuit" not in prompt and "memory is off" not in prompt
    assert await _stored(services, 901) == [
        "what is my dog called?",
        "echo: what is my dog called?",
    ]
