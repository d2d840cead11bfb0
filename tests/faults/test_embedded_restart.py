"""The embedded server's postmaster is killed (kill -9) under Telegram traffic.

One scenario (a module fixture: the service is started once), the real service against
the fake Telegram and a slow fake model. Replies are in flight when the postmaster dies;
the test holds the data folder's start lock for a while, as a process starting the
server would, so that people write during the outage and are told their answer will
come. Then the service must start the server again by itself: every message answered
once, nothing committed lost, `/readyz` ready again without anyone's help, the restart
counted, and a backup taken meanwhile by `python -m bot backup` next to the service.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.notices import STORAGE_DOWN
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
from tests.bot.test_cli import _bot

CHATS = (501, 502, 503)


@dataclass(frozen=True)
class Observed:
    outcome: Outcome
    told_during: dict[int, list[str]]
    stored_before: dict[tuple[int, str], str]
    stored_after: dict[tuple[int, str], str]
    ready_during: tuple[int, str]
    ready_after: int
    killed_pid: int
    pid_after: int | None
    metrics: str
    log: str
    backup: subprocess.CompletedProcess[str]
    backup_file: Path
    exit_code: int
    server_stopped_at_exit: bool


@pytest.fixture(scope="module")
async def killed(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Observed]:
    tmp_path = tmp_path_factory.mktemp("embedded-restart")
    async with (
        FakeTelegram() as telegram,
        SlowLLM(embedding_dimensions=384, first_byte_delay=0.5) as llm,
    ):
        env = service_env(tmp_path, telegram, llm, http_port=free_port(), database_url=None)
        service = Service(env, tmp_path / "service.log")
        database = EmbeddedDatabase(tmp_path / "postgres")
        ledger = Ledger(telegram)
        try:
            await service.start()
            await eventually(service.answers("/readyz", 200), within=30, what="ready")
            for chat in CHATS:
                ledger.push(chat, f"chat {chat} before")
            await eventually(lambda: llm.in_flight > 0, what="a reply in flight")
            stored_before = await stored_user_messages(database.dsn())
            with database.start_lock():
                killed_pid = database.kill()
                await eventually(
                    service.answers("/readyz", 503), what="/readyz reporting the outage"
                )
                ready_during = await service.get("/readyz")
                for chat in CHATS:
                    ledger.push(chat, f"chat {chat} during")
                await eventually(
                    lambda: all(STORAGE_DOWN in telegram.texts(chat) for chat in CHATS),
                    what="everyone who wrote meanwhile told the answer will come",
                )
                told_during = {chat: telegram.texts(chat) for chat in CHATS}
            # The lock is free: the service starts the server again by itself.
            await eventually(service.answers("/readyz", 200), within=60, what="ready again")
            ready_after = await service.status("/readyz")
            for chat in CHATS:
                ledger.push(chat, f"chat {chat} after")
            backup_file = tmp_path / "while-running.dump"
            backup = await asyncio.to_thread(
                _bot, "backup", str(backup_file), env={**env, "LOG_LEVEL": "WARNING"}
            )
            await eventually(ledger.all_answered, within=60, what="every message answered")
            last = max(ledger.update_ids)
            await eventually(lambda: telegram.confirmed_below > last, what="all acknowledged")
            metrics = (await service.get("/metrics"))[1]
            # A reply delivered while the server was down is recorded by a retry with
            # backoff (core/replies.py), possibly after its answer was seen.
            await eventually(
                lambda: _all_answered(database), within=60, what="every reply recorded"
            )
            stored_after = await stored_user_messages(database.dsn())
            pid_after = database.pid()
        finally:
            code = await service.terminate()
            stopped = not database.running()
            if not stopped:
                await asyncio.to_thread(database.stop)
        yield Observed(
            outcome=ledger.outcome(),
            told_during=told_during,
            stored_before=stored_before,
            stored_after=stored_after,
            ready_during=ready_during,
            ready_after=ready_after,
            killed_pid=killed_pid,
            pid_after=pid_after,
            metrics=metrics,
            log=service.log_text(),
            backup=backup,
            backup_file=backup_file,
            exit_code=code,
            server_stopped_at_exit=stopped,
        )


async def _all_answered(database: EmbeddedDatabase) -> bool:
    return set((await stored_user_messages(database.dsn())).values()) == {"answered"}


def test_the_service_starts_the_server_again_by_itself(killed: Observed) -> None:
    status, body = killed.ready_during
    assert (status, "database unreachable" in body) == (503, True)
    assert killed.ready_after == 200
    assert killed.pid_after is not None
    assert killed.pid_after != killed.killed_pid
    assert 'onethread_embedded_restarts_total{outcome="restarted"} 1.0' in killed.metrics
    assert "runs again" in killed.log


def test_every_message_is_answered_once(killed: Observed) -> None:
    assert killed.outcome.lost == []
    assert killed.outcome.duplicated == []
    assert killed.outcome.answered == 3 * len(CHATS)


def test_people_who_wrote_during_the_outage_were_told_and_then_answered(
    killed: Observed,
) -> None:
    for chat, texts in killed.told_during.items():
        assert f"echo: chat {chat} during" not in texts
        assert STORAGE_DOWN in texts
    assert killed.outcome.answered == killed.outcome.messages


def test_nothing_committed_before_the_kill_is_lost(killed: Observed) -> None:
    assert killed.stored_before
    assert set(killed.stored_before) <= set(killed.stored_after)
    assert set(killed.stored_after.values()) == {"answered"}


def test_a_backup_works_next_to_the_running_service(killed: Observed) -> None:
    assert killed.backup.returncode == 0, killed.backup.stderr
    assert f"backup written to {killed.backup_file}" in killed.backup.stdout
    assert killed.backup_file.stat().st_size > 0


def test_the_service_exits_cleanly_and_stops_the_restarted_server(killed: Observed) -> None:
    assert killed.exit_code == 0
    assert killed.server_stopped_at_exit
