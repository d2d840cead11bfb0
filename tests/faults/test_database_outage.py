"""Database outage: the embedded server crashes under load and comes back.

One scenario (a module fixture, the service is started once) and what it must show:
the process stays up and live, `/readyz` says the database is unreachable and turns
ready again by itself once the server is back, nobody is left without an answer, and
nothing that was stored is lost. The last test states the stronger promise, "every
acknowledged message is stored and answered", which the service does not keep yet
(see docs/faults.md, "Known gaps").
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from core.notices import INTERNAL_ERROR
from fakes.service import (
    EmbeddedDatabase,
    Ledger,
    Outcome,
    Service,
    SlowLLM,
    eventually,
    free_port,
    service_env,
    stored_user_messages,
)
from fakes.telegram_api import FakeTelegram

BEFORE = (401, "before the outage")
IN_FLIGHT = (402, "being answered when the database died")
DURING = [(403, "during the outage, new person"), (401, "during the outage, known person")]
AFTER = [(404, "after the outage"), (401, "after the outage, known person")]


@dataclass(frozen=True)
class Observed:
    outcome: Outcome
    stored_before: dict[tuple[int, str], str]
    stored_after: dict[tuple[int, str], str]
    acknowledged: set[tuple[int, str]]
    bot_texts: dict[int, list[str]]
    health_during: int
    ready_during: tuple[int, str]
    ready_after: int
    alive_throughout: bool
    exit_code: int
    server_stopped_at_exit: bool


@pytest.fixture(scope="module")
async def outage(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Observed]:
    tmp_path = tmp_path_factory.mktemp("database-outage")
    async with (
        FakeTelegram() as telegram,
        SlowLLM(embedding_dimensions=384, first_byte_delay=1.0) as llm,
    ):
        env = service_env(
            tmp_path,
            telegram,
            llm,
            http_port=free_port(),
            database_url=None,
            # The outage lasts until the test ends it: the service must not end it first
            # by starting the server again (that is test_embedded_restart.py).
            extra={"DB_EMBEDDED_RESTART_ATTEMPTS": "0"},
        )
        service = Service(env, tmp_path / "service.log")
        database = EmbeddedDatabase(tmp_path / "postgres")
        ledger = Ledger(telegram)
        try:
            await service.start()
            await eventually(service.answers("/readyz", 200), within=30, what="ready")
            ledger.push(*BEFORE)
            await eventually(ledger.all_answered, what="answer before the outage")
            ledger.push(*IN_FLIGHT)
            await eventually(lambda: llm.in_flight > 0, what="a reply in flight")
            stored_before = await stored_user_messages(database.dsn())
            await asyncio.to_thread(database.crash)

            await eventually(service.answers("/readyz", 503), what="/readyz reporting the outage")
            ready_during = await service.get("/readyz")
            for chat, text in DURING:
                ledger.push(chat, text)
            # Everyone who wrote meanwhile hears something (an answer or a notice).
            await eventually(
                lambda: all(telegram.chat(chat) for chat, _ in DURING),
                what="a word to everyone who wrote during the outage",
            )
            health_during = await service.status("/healthz")
            alive = service.running

            await asyncio.to_thread(database.start)
            await eventually(service.answers("/readyz", 200), within=30, what="ready again")
            ready_after = await service.status("/readyz")
            for chat, text in AFTER:
                ledger.push(chat, text)
            await eventually(
                lambda: all(ledger.replies()[m] == 1 for m in AFTER),
                within=30,
                what="answers after the outage",
            )
            last = max(ledger.update_ids)
            await eventually(lambda: telegram.confirmed_below > last, what="all acknowledged")
            alive = alive and service.running
            stored_after = await stored_user_messages(database.dsn())
        finally:
            code = await service.terminate()
            stopped = not database.running()
            if not stopped:
                await asyncio.to_thread(database.stop)
        acknowledged = {m for u, m in ledger.update_ids.items() if u < telegram.confirmed_below}
        yield Observed(
            outcome=ledger.outcome(),
            stored_before=stored_before,
            stored_after=stored_after,
            acknowledged=acknowledged,
            bot_texts={chat: telegram.texts(chat) for chat in ledger.sent},
            health_during=health_during,
            ready_during=ready_during,
            ready_after=ready_after,
            alive_throughout=alive,
            exit_code=code,
            server_stopped_at_exit=stopped,
        )


def test_the_service_stays_up_and_reports_not_ready(outage: Observed) -> None:
    assert outage.alive_throughout
    assert outage.health_during == 200
    status, body = outage.ready_during
    assert status == 503
    assert "database unreachable" in body


def test_it_recovers_by_itself_and_answers_again(outage: Observed) -> None:
    assert outage.ready_after == 200
    replies = outage.outcome
    answered_once = [m for m in [BEFORE, *AFTER] if m not in replies.lost]
    assert answered_once == [BEFORE, *AFTER]
    assert replies.duplicated == []
    assert outage.exit_code == 0


def test_nobody_is_left_without_an_answer_or_a_notice(outage: Observed) -> None:
    lost = set(outage.outcome.lost)
    for chat, text in lost:
        assert INTERNAL_ERROR in outage.bot_texts[chat], (chat, text)


def test_nothing_stored_is_lost(outage: Observed) -> None:
    for key in outage.stored_before:
        assert key in outage.stored_after
    for key in [BEFORE, *AFTER]:
        assert outage.stored_after[key] == "answered"


def test_every_acknowledged_message_is_stored_and_answered(outage: Observed) -> None:
    assert outage.acknowledged == {BEFORE, IN_FLIGHT, *DURING, *AFTER}
    for key in outage.acknowledged:
        assert outage.stored_after.get(key) == "answered", key
    assert outage.outcome.lost == []


def test_the_last_process_stops_the_restarted_server(outage: Observed) -> None:
    assert outage.server_stopped_at_exit
