"""Logging: one line per event, JSON or text, and no configured secret ever printed."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from bot.logs import NOISY_LOGGERS, REDACTED, RedactingFilter, configure_logging, secret_values
from core.services import Services
from fakes.channel import RecordingChannel
from tests.conftest import make_settings
from tests.core.engine_helpers import engine_with, inbound

TOKEN = "123456789:AAH-telegram-token-value_xyz"
DISCORD = "discord.token.value-abc"
API_KEY = "sk-test-openai-key-0123"
WEBHOOK = "webhook-secret-456"
DB_PASSWORD = "pa:ss/word"  # percent-encoded in the URL below


WHISPER_KEY = "sk-whisper-never-logged-5150"


def _secret_settings(**overrides: Any) -> Any:
    return make_settings(
        telegram_bot_token=TOKEN,
        discord_bot_token=DISCORD,
        openai_api_key=API_KEY,
        telegram_webhook_secret=WEBHOOK,
        transcription_api_key=WHISPER_KEY,
        database_url="postgresql://onethread:pa%3Ass%2Fword@db:5432/onethread",
        **overrides,
    )


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state: put it back after each test."""
    root = logging.getLogger()
    handlers = list(root.handlers)
    filters = {handler: list(handler.filters) for handler in handlers}
    level = root.level
    noisy = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    for handler in handlers:
        handler.filters[:] = filters[handler]
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)
    for name, old in noisy.items():
        logging.getLogger(name).setLevel(old)


def _configure(**overrides: Any) -> io.StringIO:
    stream = io.StringIO()
    configure_logging(_secret_settings(**overrides), stream=stream)
    return stream


def _lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


@pytest.mark.usefixtures("restore_logging")
def test_json_lines_carry_the_fields_and_extras() -> None:
    stream = _configure(log_format="json")
    logging.getLogger("core.engine").info("answered message %s", 42, extra={"user_id": 7})
    logging.getLogger("bot.run").warning("two\nlines")
    first, second = (json.loads(line) for line in _lines(stream))
    assert first["level"] == "INFO"
    assert first["logger"] == "core.engine"
    assert first["message"] == "answered message 42"
    assert first["user_id"] == 7
    assert first["ts"].endswith("+00:00")
    assert second["message"] == "two\nlines"


@pytest.mark.usefixtures("restore_logging")
def test_json_exception_stays_on_one_line() -> None:
    stream = _configure(log_format="json")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("core.engine").exception("failed")
    (line,) = _lines(stream)
    event = json.loads(line)
    assert "ValueError: boom" in event["exc"]


@pytest.mark.usefixtures("restore_logging")
def test_text_format_is_readable_and_one_line_per_message() -> None:
    stream = _configure(log_format="text")
    logging.getLogger("core.engine").info("hello %s", "there", extra={"user_id": 3})
    logging.getLogger("core.engine").info("forged\n2025-01-01 00:00:00,000 ERROR fake: line")
    try:
        raise RuntimeError("bad")
    except RuntimeError:
        logging.getLogger("core.jobs.registry").exception("job failed")
    lines = _lines(stream)
    assert lines[0].endswith("INFO core.engine: hello there [user_id=3]")
    assert lines[1].endswith("forged\\n2025-01-01 00:00:00,000 ERROR fake: line")
    assert lines[2].endswith("ERROR core.jobs.registry: job failed")
    assert all(line.startswith("  | ") for line in lines[3:])
    assert lines[-1] == "  | RuntimeError: bad"


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("log_format", ["json", "text"])
def test_secrets_are_redacted_in_message_args_extras_and_tracebacks(log_format: str) -> None:
    stream = _configure(log_format=log_format)
    log = logging.getLogger("telegram.ext")
    log.warning(f"GET https://api.telegram.org/bot{TOKEN}/getMe")
    log.warning("key %s and %r", API_KEY, {"discord": DISCORD})
    log.warning("context", extra={"url": f"https://x/{WEBHOOK}"})
    try:
        raise ConnectionError(f"postgresql://onethread:{DB_PASSWORD}@db/onethread refused")
    except ConnectionError:
        log.exception("connect failed")
    log.warning("encoded %s", "pa%3Ass%2Fword and 123456789%3AAAH-telegram-token-value_xyz")
    output = stream.getvalue()
    for secret in (TOKEN, DISCORD, API_KEY, WEBHOOK, DB_PASSWORD, "pa%3Ass%2Fword", "AAH-tele"):
        assert secret not in output
    assert output.count(REDACTED) >= 7


@pytest.mark.usefixtures("restore_logging")
def test_library_records_are_redacted_at_debug_too() -> None:
    stream = _configure(log_level="DEBUG")
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.DEBUG
    logging.getLogger("httpx").debug("HTTP Request: POST https://api.telegram.org/bot%s/x", TOKEN)
    assert TOKEN not in stream.getvalue()
    assert f"bot{REDACTED}/x" in stream.getvalue()


@pytest.mark.usefixtures("restore_logging")
def test_chatty_libraries_are_held_at_warning() -> None:
    stream = _configure(log_level="INFO")
    for name in NOISY_LOGGERS:
        logging.getLogger(name).info("request")
        assert logging.getLogger(name).getEffectiveLevel() == logging.WARNING
    logging.getLogger("discord.gateway").info("heartbeat")
    logging.getLogger("core.engine").info("ours")
    assert len(_lines(stream)) == 1


@pytest.mark.usefixtures("restore_logging")
def test_configuring_again_replaces_the_handler() -> None:
    _configure(log_format="json")
    stream = _configure(log_format="text")
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_onethread", False)]
    assert len(ours) == 1
    logging.getLogger("x").warning("once")
    assert len(_lines(stream)) == 1


def test_secret_values_cover_the_dsn_password_in_both_spellings() -> None:
    found = secret_values(_secret_settings())
    assert {TOKEN, DISCORD, API_KEY, WEBHOOK, WHISPER_KEY, DB_PASSWORD, "pa%3Ass%2Fword"} <= set(
        found
    )
    keyword = make_settings(database_url="host=db user=u password=hunter22 dbname=x")
    assert "hunter22" in secret_values(keyword)


def test_short_and_missing_secrets_redact_nothing() -> None:
    assert secret_values(make_settings(openai_api_key="abc")) == []
    record = logging.LogRecord("x", logging.INFO, "", 0, "keep %s", ("abc",), None)
    assert RedactingFilter([]).filter(record)
    assert record.getMessage() == "keep abc"


def test_bad_logging_arguments_are_still_redacted() -> None:
    record = logging.LogRecord("x", logging.INFO, "", 0, "%s %s", (TOKEN,), None)
    RedactingFilter([TOKEN]).filter(record)
    assert TOKEN not in record.getMessage()
    assert "logging arguments" in record.getMessage()


async def test_the_engine_does_not_log_message_content_at_info(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    """What people write stays in the database; logs carry ids only."""
    secret_text = "my locker combination is quokka-9931"
    with caplog.at_level(logging.INFO):
        await engine_with(services).handle(inbound(secret_text), RecordingChannel())
    assert not [r for r in caplog.records if "quokka" in r.getMessage()]
