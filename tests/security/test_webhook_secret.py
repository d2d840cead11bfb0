"""Telegram webhook mode: only requests carrying the secret are processed."""

from __future__ import annotations

import aiohttp

from core.engine import Engine
from fakes.telegram_api import FakeTelegram, message, wait_until
from tests.adapters.telegram.helpers import make_adapter, running
from tests.core.engine_helpers import PERSONA
from tests.security.conftest import ErrorLog, PooledServices

SECRET = "Correct-Horse_battery-staple-42"
HEADER = "X-Telegram-Bot-Api-Secret-Token"


async def test_requests_without_the_right_secret_get_403_and_are_not_processed(
    pooled: PooledServices, tg: FakeTelegram, error_log: ErrorLog
) -> None:
    adapter = make_adapter(
        Engine(pooled(), persona=PERSONA),
        tg,
        mode="webhook",
        webhook_url="https://bot.example.test/telegram/hook",
        webhook_secret=SECRET,
        webhook_listen="127.0.0.1",
        webhook_port=0,
    )
    forged: list[dict[str, str]] = [
        {},
        {HEADER: ""},
        {HEADER: "wrong"},
        {HEADER: SECRET[:-1]},  # a prefix
        {HEADER: SECRET + "x"},  # longer
        {HEADER: SECRET.lower()},  # case matters
        {"X-Telegram-Bot-Api-Secret": SECRET},  # a look-alike header name
        {"Authorization": f"Bearer {SECRET}"},
    ]
    async with running(adapter), aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{adapter.webhook_port}/telegram/hook"
        for number, headers in enumerate(forged, start=1):
            update = {"update_id": number, "message": message("/start", user_id=3000 + number)}
            async with http.post(url, json=update, headers=headers) as response:
                assert response.status == 403, headers
            # The secret in the query string or the body is not the header either.
            async with http.post(f"{url}?secret_token={SECRET}", json=update) as response:
                assert response.status == 403
            body = {**update, "secret_token": SECRET}
            async with http.post(url, json=body, headers=headers) as response:
                assert response.status == 403
        # A malformed body with a wrong secret is refused before it is read.
        async with http.post(url, data=b"\xff{not json", headers={HEADER: "no"}) as response:
            assert response.status == 403

        # Nothing reached the engine: no user, no message, nothing sent.
        assert await pooled.pool.fetchval("SELECT count(*) FROM users") == 0
        assert await pooled.pool.fetchval("SELECT count(*) FROM messages") == 0
        assert tg.messages == []

        # The control: the same update with the secret is processed.
        update = {"update_id": 100, "message": message("hello", user_id=3100)}
        async with http.post(url, json=update, headers={HEADER: SECRET}) as response:
            assert response.status == 200  # once the message is stored
        await wait_until(lambda: tg.texts(3100) == ["echo: hello"])
    assert await pooled.pool.fetchval("SELECT count(*) FROM users") == 1
    # Refusals are logged as warnings, never with the secret or a traceback.
    assert error_log.errors() == []
    assert all(SECRET not in r.getMessage() for r in error_log.records)
