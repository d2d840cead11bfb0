"""LLM outage: the endpoint answers 500, then 429, then too slowly, then recovers.

People get a clear message (never a traceback), the process stays live, replies resume
afterwards, and every failed message is answered by `/retry`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from core.notices import LLM_BUSY, LLM_FAILED
from fakes.openai_server import Delay, Fault, HttpError
from fakes.service import (
    Ledger,
    Service,
    SlowLLM,
    eventually,
    free_port,
    service_env,
    stored_user_messages,
)
from fakes.telegram_api import FakeTelegram

OUTAGES: list[tuple[int, Fault, str]] = [
    (501, HttpError(500), LLM_FAILED),
    (502, HttpError(429, retry_after=1), LLM_BUSY),
    (503, Delay(30), LLM_FAILED),  # longer than LLM_TIMEOUT_SECONDS
]


def _last_text_is(telegram: FakeTelegram, chat: int, text: str) -> Callable[[], bool]:
    return lambda: telegram.texts(chat)[-1:] == [text]


async def test_llm_outage_tells_people_and_retry_answers_later(
    tmp_path: Path, fresh_dsn: str
) -> None:
    async with FakeTelegram() as telegram, SlowLLM(embedding_dimensions=384) as llm:
        env = service_env(
            tmp_path,
            telegram,
            llm,
            http_port=free_port(),
            database_url=fresh_dsn,
            extra={"LLM_TIMEOUT_SECONDS": "2"},
        )
        service = Service(env, tmp_path / "service.log")
        ledger = Ledger(telegram)
        try:
            await service.start()
            ledger.push(500, "before the outage")
            await eventually(ledger.all_answered, what="answer before the outage")

            for chat, fault, notice in OUTAGES:
                llm.outage = fault
                ledger.push(chat, f"during outage {chat}")
                await eventually(
                    _last_text_is(telegram, chat, notice), what=f"the notice in chat {chat}"
                )
                assert await service.status("/healthz") == 200
                assert service.running
            llm.outage = None

            stored = await stored_user_messages(fresh_dsn)
            for chat, _, _ in OUTAGES:
                assert stored[(chat, f"during outage {chat}")] == "failed"

            for chat, _, _ in OUTAGES:
                telegram.push_message("/retry", user_id=chat)
            await eventually(ledger.all_answered, what="every failed message answered by /retry")

            ledger.push(500, "after the outage")
            await eventually(ledger.all_answered, what="answers resume")
            stored = await stored_user_messages(fresh_dsn)
        finally:
            code = await service.terminate()
    assert code == 0, service.tail()
    outcome = ledger.outcome()
    assert outcome.lost == []
    assert outcome.duplicated == []
    assert outcome.notices == {LLM_FAILED: 2, LLM_BUSY: 1}
    assert all(stored[key] == "answered" for key in stored)
    assert "Traceback" not in service.log_text()
