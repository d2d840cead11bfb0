"""Fixtures for the security and robustness tests: several connections, fakes, logs.

These tests drive the real adapters and engine concurrently, so they run on a pool over
a database of their own (`fresh_dsn`), not on the single rolled-back test connection.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from enum import Enum
from typing import Any

import discord
import pytest

from core.media import texts
from core.notices import TOO_LONG
from core.services import Services
from core.storage.database import Database, Pool, create_pool
from fakes.discord_gateway import FakeDiscord
from fakes.telegram_api import FakeTelegram
from tests.conftest import make_settings


@pytest.fixture(autouse=True)
def _ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    # PTB 22 warns (an error under filterwarnings=error) whenever a `RetryAfter` is built,
    # unless it is told to use the coming timedelta API.
    monkeypatch.setenv("PTB_TIMEDELTA", "1")


@pytest.fixture
async def pool(fresh_dsn: str) -> AsyncIterator[Pool]:
    created = await create_pool(fresh_dsn, min_size=2, max_size=20)
    try:
        yield created
    finally:
        await created.close()


class PooledServices:
    """Builds `Services` on the pool, with settings changed per test."""

    def __init__(self, base: Services, pool: Pool) -> None:
        self._base = base
        self.pool = pool

    def __call__(self, **settings: Any) -> Services:
        return replace(self._base, db=Database(self.pool), settings=make_settings(**settings))


@pytest.fixture
def pooled(services: Services, pool: Pool) -> PooledServices:
    return PooledServices(services, pool)


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    # Short long-polls: the adapter acknowledges a stored update on its next poll.
    async with FakeTelegram(max_poll=0.05) as fake:
        yield fake


@pytest.fixture
async def fake_discord(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)
        yield fake


class ErrorLog(logging.Handler):
    """Collects every record at WARNING and above, from every logger."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def errors(self) -> list[str]:
        """ERROR records and anything with a traceback, as readable lines."""
        return [
            f"{r.name}: {r.getMessage()}"
            for r in self.records
            if r.levelno >= logging.ERROR or r.exc_info is not None
        ]

    def clear(self) -> None:
        self.records.clear()


@pytest.fixture
def error_log() -> Iterator[ErrorLog]:
    handler = ErrorLog()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


# What a file, photo, voice note or sticker that cannot be read is answered with (no
# transcription, no vision, no downloads are configured in these tests).
REFUSALS = frozenset({texts.NO_TRANSCRIPTION, texts.NO_VISION, texts.UNSUPPORTED_KIND})


class Outcome(Enum):
    """What generated bad input must lead to, whatever the platform."""

    ANSWERED = "answered"  # stored, answered by the model, the reply delivered
    TOO_LONG = "too long"  # refused with TOO_LONG, nothing stored
    UNSUPPORTED = "unsupported"  # refused with one of REFUSALS, nothing stored
    COMMAND = "command"  # some answer, no conversation row
    IGNORED = "ignored"  # nothing stored, nothing sent


def assert_not_stored(
    outcome: Outcome, rows: list[Any], sent: list[str], where: str, *, command_answered: bool
) -> None:
    """For every outcome but ANSWERED: nothing stored, and only the answer it calls for."""
    assert rows == [], where
    if outcome is Outcome.TOO_LONG:
        assert len(sent) == 1, where
        assert sent[0].startswith(TOO_LONG.split("{")[0]), where
    elif outcome is Outcome.UNSUPPORTED:
        assert len(sent) == 1 and sent[0] in REFUSALS, where
    elif outcome is Outcome.COMMAND:
        assert command_answered, where
    else:
        assert sent == [], where
