from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from bot.database import open_database
from config import SettingsError, load_settings
from tests.conftest import make_settings


async def test_embedded_server_gets_its_cache_size(data_dir: Path) -> None:
    settings = make_settings(onethread_data_dir=data_dir, db={"embedded_shared_buffers": "160MB"})
    async with open_database(settings) as location:
        assert location.embedded
        conn = await asyncpg.connect(location.dsn)
        try:
            assert await conn.fetchval("SHOW shared_buffers") == "160MB"
            assert await conn.fetchval("SELECT count(*) FROM schema_migrations") >= 1
        finally:
            await conn.close()


def test_cache_size_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_EMBEDDED_SHARED_BUFFERS", "lots")
    with pytest.raises(SettingsError, match="DB_EMBEDDED_SHARED_BUFFERS"):
        load_settings()
