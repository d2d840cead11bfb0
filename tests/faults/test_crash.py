"""Crash safety: kill -9 the service while replies are in flight, restart, repeat.

Every message the fake Telegram delivered must end up answered exactly once: its final
reply text (`echo: <message>`, the fake model's echo) present once in its chat. Each
kill lands at a chosen stage of the pipeline: while the model has not answered yet,
while a streamed preview is visible, and right after some replies were delivered while
others are still being written. A message stored before the kill is not delivered
again (Telegram was told once it was stored): the next process answers it once the dead
one's turn has expired. A preview that a kill left behind stays in the chat (the
restarted service answers in a new message); it is never the final text.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from adapters.chunking import STREAMING_CURSOR
from fakes.service import (
    EmbeddedDatabase,
    Ledger,
    Service,
    SlowLLM,
    delivered_replies,
    eventually,
    free_port,
    previews,
    service_env,
)
from fakes.telegram_api import FakeTelegram

CHATS = (201, 202, 203)


def _stages(
    ledger: Ledger, llm: SlowLLM, dsn: str | None = None
) -> dict[str, Callable[[], bool | Awaitable[bool]]]:
    """Kill conditions, relative to what the chats show now (earlier rounds' previews stay)."""
    answered, shown = ledger.answered(), len(previews(ledger))

    async def some_delivered() -> bool:
        if not (llm.in_flight > 0 and ledger.answered() > answered):
            return False
        # Once the replies the chats show are recorded too: a kill in the few
        # milliseconds between a reply's delivery and its record makes the redelivered
        # message answered again (at least once, docs/faults.md), which is not this stage.
        assert dsn is not None, "the stage reads the database"
        return await delivered_replies(dsn) >= ledger.answered()

    return {
        "model thinking": lambda: llm.in_flight > 0 and len(previews(ledger)) == shown,
        "preview visible": lambda: llm.in_flight > 0 and len(previews(ledger)) > shown,
        "some delivered": some_delivered,
    }


async def _kill_loop(
    service: Service,
    ledger: Ledger,
    llm: SlowLLM,
    stages: list[str],
    dsn: str | None = None,
) -> None:
    """Start, send a round of messages, kill at the stage; then let the last start finish."""
    for number, stage in enumerate(stages, start=1):
        await service.start()
        for chat in CHATS:
            ledger.push(chat, f"chat {chat} round {number} first")
            ledger.push(chat, f"chat {chat} round {number} second")
        condition = _stages(ledger, llm, dsn)[stage]
        # A round's messages are answered after the earlier rounds' (the person's order),
        # which the next process answers once the killed one's turns expire (15 s).
        await eventually(condition, what=f"kill stage {stage!r}", every=0.01, within=90)
        await service.kill()
    await service.start()
    await eventually(ledger.all_answered, within=90, what="every message answered")


async def test_kill_9_at_every_stage_loses_and_repeats_nothing(
    tmp_path: Path, fresh_dsn: str
) -> None:
    async with (
        FakeTelegram() as telegram,
        SlowLLM(embedding_dimensions=384, first_byte_delay=0.4, word_delay=0.15) as llm,
    ):
        env = service_env(tmp_path, telegram, llm, http_port=free_port(), database_url=fresh_dsn)
        service = Service(env, tmp_path / "service.log")
        ledger = Ledger(telegram)
        try:
            await _kill_loop(
                service,
                ledger,
                llm,
                ["model thinking", "preview visible", "some delivered"],
                fresh_dsn,
            )
        finally:
            code = await service.terminate()
    outcome = ledger.outcome()
    assert code == 0, service.tail()
    assert outcome.messages == len(CHATS) * 2 * 3
    assert outcome.lost == []
    assert outcome.duplicated == []
    assert "left pending" in service.log_text()  # answered by the next process


async def test_kill_9_leaves_the_embedded_server_usable_for_the_next_start(
    tmp_path: Path,
) -> None:
    """No DATABASE_URL: the service starts the embedded server, dies without stopping it,
    and the next start joins it (dropping the dead pid from its handle list)."""
    async with (
        FakeTelegram() as telegram,
        SlowLLM(embedding_dimensions=384, first_byte_delay=0.4, word_delay=0.15) as llm,
    ):
        env = service_env(tmp_path, telegram, llm, http_port=free_port(), database_url=None)
        service = Service(env, tmp_path / "service.log")
        database = EmbeddedDatabase(tmp_path / "postgres")
        ledger = Ledger(telegram)
        try:
            await _kill_loop(service, ledger, llm, ["model thinking", "preview visible"])
            assert database.running()
            assert service.process is not None
            assert database.handles() == [service.process.pid]
        finally:
            code = await service.terminate()
    outcome = ledger.outcome()
    assert code == 0, service.tail()
    assert outcome.lost == []
    assert outcome.duplicated == []
    # The last live process stopped the server on its way out.
    assert not database.running()


async def test_kill_9_after_the_whole_reply_was_streamed_but_not_recorded(
    tmp_path: Path, fresh_dsn: str
) -> None:
    """The model streams slowly enough that the 1 s edit throttle lets the complete text
    through as a preview; the stream then stays open a little (as real ones do before
    their final chunk), and the kill lands in that window. The preview carries the
    streaming cursor, so the answer after the restart is the only complete one."""
    async with (
        FakeTelegram() as telegram,
        SlowLLM(embedding_dimensions=384, word_delay=0.4) as llm,
    ):
        env = service_env(tmp_path, telegram, llm, http_port=free_port(), database_url=fresh_dsn)
        service = Service(env, tmp_path / "service.log")
        ledger = Ledger(telegram)
        message = (301, "say it once")
        try:
            await service.start()
            ledger.push(*message)
            whole_preview = "echo: say it once" + STREAMING_CURSOR
            await eventually(
                lambda: llm.in_flight > 0 and whole_preview in telegram.texts(message[0]),
                every=0.01,
                what="the whole reply visible (as a preview) while the model still streams",
            )
            await service.kill()
            await service.start()
            # The message was stored, so Telegram does not bring it again: the next
            # process answers it once the dead one's turn has expired.
            await eventually(
                lambda: ledger.replies().get(message) == 1,
                within=45,
                what="the message answered by the next process",
            )
            last = max(ledger.update_ids)
            await eventually(lambda: telegram.confirmed_below > last, what="acknowledged")
        finally:
            await service.terminate()
    assert ledger.replies()[message] == 1
