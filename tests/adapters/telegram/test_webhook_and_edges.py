"""Webhook mode, supergroup migration, membership changes and the messenger."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from adapters.telegram import TelegramAdapter
from core.errors import DeliveryError
from core.services import Services
from fakes.openai_server import FakeOpenAI
from fakes.telegram_api import (
    FakeTelegram,
    bot_user,
    forbidden,
    message,
    migrated,
    wait_until,
)
from tests.adapters.telegram.helpers import (
    a_statement_waits,
    make_adapter,
    running,
    storing_blocked,
)
from tests.core.engine_helpers import engine_with

SECRET = "s3cret-webhook-token"
GROUP = -200
SUPERGROUP = -100200


def _webhook_adapter(services: Services, tg: FakeTelegram, **overrides: Any) -> TelegramAdapter:
    return make_adapter(
        engine_with(services),
        tg,
        mode="webhook",
        webhook_url="https://bot.example.test/telegram/hook",
        webhook_secret=SECRET,
        webhook_listen="127.0.0.1",
        webhook_port=0,
        **overrides,
    )


async def _history(services: Services, user_id: int) -> list[str]:
    found = await services.users.find(f"telegram:{user_id}")
    if found is None:
        return []
    return [m.content for m in reversed(await services.messages.history(found.id))]


async def test_webhook_checks_the_secret_and_acknowledges_once_stored(
    services: Services, tg: FakeTelegram
) -> None:
    async with running(_webhook_adapter(services, tg)) as adapter, aiohttp.ClientSession() as http:
        assert adapter.connected
        assert tg.webhook is not None
        assert tg.webhook["secret_token"] == SECRET
        assert tg.webhook["url"] == "https://bot.example.test/telegram/hook"
        url = f"http://127.0.0.1:{adapter.webhook_port}/telegram/hook"
        update = {"update_id": 1, "message": message("via webhook", user_id=1201)}

        for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}):
            async with http.post(url, json=update, headers=headers) as response:
                assert response.status == 403
        assert tg.texts(1201) == []

        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        async with http.post(url, json=update, headers=headers) as response:
            assert response.status == 200
        # Held until stored: the message is in the database when Telegram gets its 200.
        assert (await _history(services, 1201))[:1] == ["via webhook"]
        await wait_until(lambda: tg.texts(1201) == ["echo: via webhook"])

        # Telegram retrying the same update (e.g. after a timeout): answered once.
        async with http.post(url, json=update, headers=headers) as response:
            assert response.status == 200
        async with http.post(url, data=b"not json", headers=headers) as response:
            assert response.status == 400
        # JSON that python-telegram-bot cannot read (a message without its date) is
        # acknowledged and skipped: refused, Telegram would send it again for ever.
        broken = message("unreadable", user_id=1202)
        del broken["date"]
        unreadable = {"update_id": 2, "message": broken}
        async with http.post(url, json=unreadable, headers=headers) as response:
            assert response.status == 200
        assert tg.texts(1202) == []
    assert tg.texts(1201) == ["echo: via webhook"]
    assert tg.calls_to("getUpdates") == []
    assert tg.webhook is not None  # other replicas still serve it
    assert await _history(services, 1201) == ["via webhook", "echo: via webhook"]


async def test_webhook_answers_an_error_until_the_message_is_stored(
    services: Services, tg: FakeTelegram, fake_llm: FakeOpenAI, fresh_dsn: str
) -> None:
    """Telegram (the fake) posts the update and retries it on every error status; the
    retries find the first delivery still waiting to store the message."""
    adapter = _webhook_adapter(services, tg, webhook_ack_timeout=0.2)
    async with running(adapter):
        tg.webhook_address = f"http://127.0.0.1:{adapter.webhook_port}/telegram/hook"
        async with storing_blocked(fresh_dsn) as blocker:
            update = tg.push_message("wait for me", user_id=1203)
            await wait_until(lambda: len(tg.webhook_statuses(update)) >= 3)
            assert await a_statement_waits(blocker)
        await wait_until(lambda: tg.webhook_statuses(update)[-1:] == [200])
        await wait_until(lambda: tg.texts(1203) == ["echo: wait for me"])
    *refused, accepted = tg.webhook_statuses(update)
    assert set(refused) == {503}
    assert accepted == 200
    assert len(fake_llm.chat_requests) == 1
    assert await _history(services, 1203) == ["wait for me", "echo: wait for me"]


async def test_a_group_that_became_a_supergroup(services: Services, tg: FakeTelegram) -> None:
    async with running(make_adapter(engine_with(services), tg)):
        tg.fail("sendMessage", migrated(SUPERGROUP))
        tg.push_message("/start", user_id=1301, chat_id=GROUP, chat_type="group")
        await wait_until(lambda: len(tg.texts(SUPERGROUP)) == 1)
        # The service message in the old group, then messages from the new chat id.
        tg.push_message(
            user_id=1301, chat_id=GROUP, chat_type="group", migrate_to_chat_id=SUPERGROUP
        )
        last = tg.push_message("/start", user_id=1301, chat_id=SUPERGROUP, message_id=5)
        await wait_until(lambda: tg.confirmed_below > last)
    assert tg.texts(GROUP) == []
    assert len(tg.texts(SUPERGROUP)) == 2
    assert tg.chat(SUPERGROUP)[1].reply_to == 5


async def test_membership_changes_and_bots_are_not_answered(
    services: Services, tg: FakeTelegram
) -> None:
    removed = {
        "chat": {"id": GROUP, "type": "group", "title": "A group"},
        "from": {"id": 1401, "is_bot": False, "first_name": "Ann"},
        "date": 0,
        "old_chat_member": {"status": "member", "user": bot_user()},
        "new_chat_member": {"status": "left", "user": bot_user()},
    }
    async with running(make_adapter(engine_with(services), tg)):
        tg.push_update({"my_chat_member": removed})
        tg.push_message("beep", user_id=1402, is_bot=True)
        tg.push_update({"edited_message": message("edited", user_id=1403)})
        tg.push_update({"channel_post": message("post", chat_id=-1009, chat_type="channel")})
        last = tg.push_message("still here", user_id=1404)
        await wait_until(lambda: tg.confirmed_below > last)
    assert [m.chat_id for m in tg.messages] == [1404]


async def test_messenger_maps_refusals_to_delivery_errors(
    services: Services, tg: FakeTelegram
) -> None:
    async with running(make_adapter(engine_with(services), tg)) as adapter:
        await adapter.messenger.send_private("1501", "Hello *everyone*")
        tg.fail("sendMessage", forbidden())
        with pytest.raises(DeliveryError):
            await adapter.messenger.send_private("1502", "blocked")
        with pytest.raises(DeliveryError):
            await adapter.messenger.send_private("not-a-chat", "nowhere")
    assert tg.texts(1501) == ["Hello *everyone*"]  # broadcasts go out as written
