from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from config import SettingsError, TelegramMode, load_settings
from config.settings import AdminId

_OUR_VARIABLES = (
    "DATABASE_URL",
    "TELEGRAM_BOT_TOKEN",
    "DISCORD_BOT_TOKEN",
    "ADMIN_IDS",
    "HTTP_PORT",
    "TELEGRAM_MODE",
    "OPENAI_API_KEY",
    "DISCORD_SHARD_IDS",
    "DISCORD_SHARD_COUNT",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in _OUR_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults_need_nothing() -> None:
    settings = load_settings()
    assert settings.database_url is None
    assert settings.embedding_provider.value == "local"
    assert settings.embedding_dimensions == 384
    assert settings.telegram_mode is TelegramMode.POLLING
    assert settings.limits.max_message_chars > 0


def test_admin_ids_and_groups_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_IDS", "telegram:123, discord:456")
    monkeypatch.setenv("LIMITS_RATE_PER_MINUTE", "5")
    monkeypatch.setenv("ARCHIVE_RETENTION_DAYS", "90")
    settings = load_settings()
    assert settings.admin_ids == [
        AdminId(platform="telegram", platform_user_id="123"),
        AdminId(platform="discord", platform_user_id="456"),
    ]
    assert settings.is_admin("discord", "456")
    assert not settings.is_admin("telegram", "456")
    assert settings.limits.rate_per_minute == 5
    assert settings.archive.retention_days == 90


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("LLM_MODEL=from-dotenv\nMEMORY_USERS_PER_RUN=7\n")
    settings = load_settings()
    assert settings.llm_model == "from-dotenv"
    assert settings.memory.users_per_run == 7


def test_every_problem_is_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PORT", "not-a-port")
    monkeypatch.setenv("ADMIN_IDS", "telegram:1,nonsense")
    monkeypatch.setenv("DB_POOL_MIN_SIZE", "50")
    monkeypatch.setenv("LIMITS_RATE_BURST", "0")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    problems = "\n".join(caught.value.problems)
    assert len(caught.value.problems) == 4
    for expected in ("HTTP_PORT", "ADMIN_IDS", "DB_POOL_MIN_SIZE", "LIMITS_RATE_BURST"):
        assert expected in problems


def test_webhook_mode_needs_url_and_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:abc")
    monkeypatch.setenv("TELEGRAM_MODE", "webhook")
    with pytest.raises(SettingsError, match="TELEGRAM_WEBHOOK_URL and TELEGRAM_WEBHOOK_SECRET"):
        load_settings()


def test_secrets_are_hidden_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:very-secret-token")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret")
    settings = load_settings()
    assert "very-secret" not in repr(settings)
    assert "very-secret" not in str(settings)


def test_cli_exits_2_with_every_problem_and_no_traceback(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "HTTP_PORT": "99999",
        "EMBEDDING_PROVIDER": "magic",
        "ONETHREAD_DATA_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "HTTP_PORT" in result.stderr
    assert "EMBEDDING_PROVIDER" in result.stderr
    assert "Traceback" not in result.stderr


def test_discord_shards(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_SHARD_IDS", "0,2")
    monkeypatch.setenv("DISCORD_SHARD_COUNT", "4")
    settings = load_settings()
    assert settings.discord_shard_ids == [0, 2]
    assert settings.discord_shard_count == 4
    monkeypatch.setenv("DISCORD_SHARD_IDS", "0,4")
    with pytest.raises(SettingsError, match="between 0 and DISCORD_SHARD_COUNT"):
        load_settings()
    monkeypatch.setenv("DISCORD_SHARD_IDS", "zero")
    with pytest.raises(SettingsError, match="DISCORD_SHARD_IDS"):
        load_settings()


def test_backups_are_daily_with_the_embedded_database_and_off_with_database_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ONETHREAD_DATA_DIR", str(tmp_path))
    embedded = load_settings()
    assert embedded.backup_interval_seconds == 86400
    assert embedded.backup_dir == tmp_path / "backups"
    assert embedded.backup.keep == 7
    assert embedded.db.embedded_restart_attempts == 10
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h/db")
    assert load_settings().backup_interval_seconds is None
    monkeypatch.setenv("BACKUP_INTERVAL_SECONDS", "3600")
    monkeypatch.setenv("BACKUP_DIR", str(tmp_path / "elsewhere"))
    external = load_settings()
    assert (external.backup_interval_seconds, external.backup_dir) == (3600, tmp_path / "elsewhere")
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.setenv("BACKUP_INTERVAL_SECONDS", "0")
    assert load_settings().backup_interval_seconds is None
    monkeypatch.setenv("BACKUP_KEEP", "0")
    with pytest.raises(SettingsError, match="BACKUP_KEEP"):
        load_settings()
