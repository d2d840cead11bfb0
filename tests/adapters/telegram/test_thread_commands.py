"""The commands that let a person steer their own thread, through real
python-telegram-bot against the fake Bot API: buttons are inline keyboards, a press
comes back as a callback query."""

from __future__ import annotations

from core.commands.base import PRIVATE_ONLY
from core.commands.history import OLDER
from core.models import Platform, User
from core.recall.keywords import TextSearchRepository
from core.services import Services
from fakes.telegram_api import BOT_USERNAME, FakeTelegram, mention, wait_until
from tests.adapters.telegram.helpers import make_adapter, running
from tests.core.commands import add_exchange
from tests.core.engine_helpers import engine_with

ANN = 101
GROUP = -100700


async def telegram_user(services: Services, user_id: int = ANN) -> User:
    user, _ = await services.users.get_or_create(Platform.TELEGRAM, str(user_id))
    return user


async def recorded(services: Services, reply: str) -> bool:
    user = await services.users.find(f"telegram:{ANN}")
    return user is not None and reply in [
        m.content for m in await services.messages.history(user.id)
    ]


async def test_history_pages_back_with_a_button(services: Services, tg: FakeTelegram) -> None:
    user = await telegram_user(services)
    for n in range(6):  # 12 messages: a page of 10, then 2
        await add_exchange(services, user, f"story part {n}")
    async with running(make_adapter(engine_with(services), tg)):
        tg.push_message("/history", user_id=ANN)
        await wait_until(lambda: len(tg.chat(ANN)) == 1)
        first = tg.chat(ANN)[0]
        assert [label for label, _ in first.buttons] == [OLDER]
        update = tg.press(first, OLDER, user_id=ANN)
        await wait_until(lambda: len(tg.chat(ANN)) == 2)
        await wait_until(lambda: tg.confirmed_below > update)

    [answered] = tg.calls_to("answerCallbackQuery")
    assert answered.params["callback_query_id"].startswith("query-")
    older = tg.chat(ANN)[1]
    assert older.buttons == []  # the beginning: no older page
    assert [line.split(" ", 2)[2] for line in older.text.splitlines()[1:]] == [
        "Me: re: story part 0",
        "You: story part 0",
    ]
    assert "story part 5" in first.text and "story part 0" not in first.text


async def test_search_answers_in_private_and_history_is_refused_in_a_group(
    services: Services, tg: FakeTelegram
) -> None:
    user = await telegram_user(services)
    await add_exchange(services, user, "my sister lives in Lisbon")
    async with running(make_adapter(engine_with(services), tg)):
        tg.push_message("/search Lisbon", user_id=ANN)
        await wait_until(lambda: len(tg.chat(ANN)) == 1)
        tg.push_message("/history", user_id=ANN, chat_id=GROUP)
        await wait_until(lambda: len(tg.chat(GROUP)) == 1)

    found = tg.texts(ANN)[0].splitlines()
    assert found[0].startswith('What I found for "Lisbon"')
    assert sorted(line.split(" ", 2)[2] for line in found[1:]) == [
        "Me: re: my sister lives in Lisbon",
        "You: my sister lives in Lisbon",
    ]
    assert tg.texts(GROUP) == [PRIVATE_ONLY]
    assert "Lisbon" not in tg.texts(GROUP)[0]


async def test_why_in_answer_to_a_reply_and_in_a_group(
    services: Services, tg: FakeTelegram
) -> None:
    text = f"@{BOT_USERNAME} the group plays chess"
    async with running(make_adapter(engine_with(services), tg)):
        tg.push_message("I like green tea", user_id=ANN)
        await wait_until(lambda: len(tg.chat(ANN)) == 1)
        tg.push_message("and long walks", user_id=ANN)
        await wait_until(lambda: len(tg.chat(ANN)) == 2)
        tea_reply = tg.chat(ANN)[0]
        tg.push_message("/why", user_id=ANN, reply_to_bot=tea_reply.message_id)
        await wait_until(lambda: len(tg.chat(ANN)) == 3)
        tg.push_message(text, user_id=ANN, chat_id=GROUP, entities=[mention(text)])
        # A reply is recorded right after it is delivered; a person is slower than that.
        await wait_until(lambda: recorded(services, "echo: the group plays chess"))
        tg.push_message("/why", user_id=ANN, chat_id=GROUP)
        await wait_until(lambda: len(tg.chat(GROUP)) == 2)

    private_why = tg.texts(ANN)[2]
    assert '("echo: I like green tea")' in private_why  # the reply it answers, not the last
    assert "What I read, in tokens: who I am" in private_why
    group_why = tg.texts(GROUP)[1]
    assert '("echo: the group plays chess")' in group_why
    assert "in this chat" in group_why
    assert "tea" not in group_why and "walks" not in group_why
    user = await services.users.find(f"telegram:{ANN}")
    assert user is not None
    newest, *_ = [m for m in await services.messages.history(user.id) if m.chat_id == str(ANN)]
    assert newest.content == "echo: and long walks"  # recorded with its Telegram message id
    assert newest.platform_message_id == str(tg.chat(ANN)[1].message_id)


async def test_stats_are_the_persons_own_and_admins_get_everyones(
    services: Services, tg: FakeTelegram
) -> None:
    user = await telegram_user(services)
    await add_exchange(services, user, "hello")
    async with running(make_adapter(engine_with(services, admin_ids="telegram:900"), tg)):
        tg.push_message("/stats", user_id=ANN)
        tg.push_message("/stats", user_id=ANN, chat_id=GROUP)
        tg.push_message("/stats", user_id=900)
        await wait_until(lambda: len(tg.chat(ANN)) == len(tg.chat(GROUP)) == 1)
        await wait_until(lambda: len(tg.calls_to("sendDocument")) == 1)

    assert tg.texts(ANN)[0].startswith("Your numbers:\nWe first talked on ")
    assert "Messages: 2 so far" in tg.texts(ANN)[0]
    assert tg.texts(GROUP) == [PRIVATE_ONLY]
    assert tg.texts(900)[0].startswith("Users: 2 (0 banned, 0 admins)")  # ADMIN_IDS: no role


async def test_persona_shapes_how_the_bot_talks_and_greets(
    services: Services, tg: FakeTelegram
) -> None:
    async with running(make_adapter(engine_with(services), tg)):
        tg.push_message("/persona nickname Sam", user_id=ANN)
        await wait_until(lambda: len(tg.chat(ANN)) == 1)
        tg.push_message("/start", user_id=ANN)
        await wait_until(lambda: len(tg.chat(ANN)) == 2)
        tg.push_message("/persona note be brief", user_id=ANN, chat_id=GROUP)
        await wait_until(lambda: len(tg.chat(GROUP)) == 1)

    done, hello = tg.texts(ANN)
    assert done.startswith("Done.\nHow you asked me to talk to you:\n- I call you Sam")
    assert hello.startswith("Hi Sam! ")
    assert tg.texts(GROUP) == [PRIVATE_ONLY]


async def test_search_follows_the_language_telegram_gives(
    services: Services, tg: FakeTelegram
) -> None:
    async with running(make_adapter(engine_with(services), tg)):
        tg.push_message("Ich habe zwei Katzen", user_id=ANN, language_code="de")
        await wait_until(lambda: len(tg.texts(ANN)) == 1)
        tg.push_message("/search Katze", user_id=ANN, language_code="de")
        await wait_until(lambda: len(tg.texts(ANN)) == 2)
    user = await services.users.find(f"telegram:{ANN}")
    assert user is not None and user.locale == "de"
    assert "Ich habe zwei Katzen" in tg.texts(ANN)[1]
    # Recall reads it in German too: the turn stored it so (docs/recall.md).
    hits = await TextSearchRepository(services.db).search(user.id, "Wo ist die Katze?", 5)
    assert {h.content for h in hits} == {"Ich habe zwei Katzen", "echo: Ich habe zwei Katzen"}
