from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from fakes.telegram_api import FakeTelegram


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    # PTB 22 warns (an error under filterwarnings=error) whenever a `RetryAfter` is built,
    # unless it is told to use the coming timedelta API.
    monkeypatch.setenv("PTB_TIMEDELTA", "1")
