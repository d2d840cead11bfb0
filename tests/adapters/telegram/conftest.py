from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from core.services import Services
from fakes.telegram_api import FakeTelegram


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        yield fake


@pytest.fixture
def services(pooled: Services) -> Services:
    """A pool over a database of the test's own, not the shared test connection: a
    chat's next message starts once the previous one is stored, while its reply is
    still being written, and one connection runs one statement at a time."""
    return pooled


@pytest.fixture(autouse=True)
def _ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    # PTB 22 warns (an error under filterwarnings=error) whenever a `RetryAfter` is built,
    # unless it is told to use the coming timedelta API.
    monkeypatch.setenv("PTB_TIMEDELTA", "1")
