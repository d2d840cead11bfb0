"""Shared fixtures: one real PostgreSQL + pgvector server for the whole session.

With `DATABASE_URL` set the tests use that server (they create and drop their own
databases on it); otherwise an embedded server is started in a temporary folder and
deleted at the end. Each test gets either
- `db`: a `Database` on one connection inside a transaction that is rolled back, or
- `fresh_dsn`: a database of its own, copied from a migrated template, for tests that
  need several connections (races, concurrent migrators).
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import hypothesis
import pytest

from bot.database import EmbeddedServer, prepare
from config import Settings
from core.embedding.local import LocalEmbedder
from core.llm.client import ChatClient
from core.llm.transcription import Transcriber
from core.services import Services
from core.storage.database import Database, connect, create_pool
from core.tokens import TokenCounter
from fakes.openai_server import FakeOpenAI, echo_responder

# CI replays the same generated examples on every run, so a red CI means a change broke
# something, not that a new example happened to be drawn; local runs keep exploring.
if os.environ.get("CI"):
    hypothesis.settings.register_profile("ci", derandomize=True)
    hypothesis.settings.load_profile("ci")

TEMPLATE = "onethread_test_template"
_counter = itertools.count()


def _with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(scope="session")
def server_dsn() -> Iterator[str]:
    """A DSN of a maintenance database on the test server."""
    external = os.environ.get("DATABASE_URL")
    if external:
        yield external
        return
    with tempfile.TemporaryDirectory(prefix="onethread-test-") as tmp:
        server = EmbeddedServer(Path(tmp) / "pg", delete_on_stop=True)
        server.start()
        try:
            yield server.admin_dsn
        finally:
            server.stop()


async def _create_database(server_dsn: str, name: str, template: str | None = None) -> str:
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        suffix = f' TEMPLATE "{template}"' if template else ""
        await conn.execute(f'CREATE DATABASE "{name}"{suffix}')
    finally:
        await conn.close()
    return _with_database(server_dsn, name)


async def _drop_database(server_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def template_dsn(server_dsn: str) -> AsyncIterator[str]:
    """A migrated database; never used directly, only copied."""
    dsn = await _create_database(server_dsn, TEMPLATE)
    await prepare(dsn)
    yield dsn
    await _drop_database(server_dsn, TEMPLATE)


@pytest.fixture(scope="session")
async def shared_dsn(server_dsn: str, template_dsn: str) -> AsyncIterator[str]:
    """The database that `db` tests share (isolated by rolled-back transactions)."""
    name = f"onethread_test_shared_{os.getpid()}"
    dsn = await _create_database(server_dsn, name, TEMPLATE)
    yield dsn
    await _drop_database(server_dsn, name)


@pytest.fixture
async def db(shared_dsn: str) -> AsyncIterator[Database]:
    conn = await connect(shared_dsn)
    transaction = conn.transaction()
    await transaction.start()
    try:
        yield Database(conn)
    finally:
        await transaction.rollback()
        await conn.close()


@pytest.fixture
async def pooled_db(fresh_dsn: str) -> AsyncIterator[Database]:
    """A `Database` on a pool over a database of its own: each statement commits, and
    several connections work at once (turn order across replicas, notifications)."""
    pool = await create_pool(fresh_dsn, min_size=2, max_size=6)
    try:
        yield Database(pool)
    finally:
        await pool.close()


@pytest.fixture
async def fresh_dsn(server_dsn: str, template_dsn: str) -> AsyncIterator[str]:
    name = f"onethread_test_{os.getpid()}_{next(_counter)}"
    dsn = await _create_database(server_dsn, name, TEMPLATE)
    yield dsn
    await _drop_database(server_dsn, name)


@pytest.fixture
async def empty_dsn(server_dsn: str) -> AsyncIterator[str]:
    """A database with no schema at all (migration tests)."""
    name = f"onethread_test_empty_{os.getpid()}_{next(_counter)}"
    dsn = await _create_database(server_dsn, name)
    yield dsn
    await _drop_database(server_dsn, name)


@pytest.fixture(scope="session")
async def fake_llm() -> AsyncIterator[FakeOpenAI]:
    """One fake OpenAI-compatible server for the session; tests reset what they change."""
    async with FakeOpenAI(embedding_dimensions=384) as fake:
        yield fake


@pytest.fixture(autouse=True)
def _reset_fake_llm(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "fake_llm" in request.fixturenames:
        fake: FakeOpenAI = request.getfixturevalue("fake_llm")
        fake.chat_requests.clear()
        fake.embedding_requests.clear()
        fake.responder = echo_responder
        fake.supports_json_schema = True
        fake.report_usage = True
        fake.vision = True
        fake.supports_verbose_json = True
        fake.transcription_requests.clear()
        fake.clear()


@pytest.fixture(scope="session")
async def local_embedder() -> AsyncIterator[LocalEmbedder]:
    """The real offline embedder, loaded once."""
    async with LocalEmbedder() as embedder:
        yield embedder


@pytest.fixture(scope="session")
def token_counter() -> TokenCounter:
    return TokenCounter.load()


def make_settings(**overrides: Any) -> Settings:
    """Settings for tests: defaults plus overrides, independent of the environment."""
    base: dict[str, Any] = {"llm_model": "fake-model", "llm_max_retries": 0}
    base.update(overrides)
    return Settings.model_validate(base)


@pytest.fixture
async def llm_client(fake_llm: FakeOpenAI) -> AsyncIterator[ChatClient]:
    async with ChatClient(
        base_url=fake_llm.base_url,
        api_key="sk-test-secret",
        model="fake-model",
        timeout=5,
        max_retries=0,
        stream_retry_delay=0.01,
    ) as client:
        yield client


@pytest.fixture
async def transcriber(fake_llm: FakeOpenAI) -> AsyncIterator[Transcriber]:
    """A transcription client against the fake server, without retries."""
    client = Transcriber(
        base_url=fake_llm.base_url, api_key="sk-test-secret", model="whisper-1", max_retries=0
    )
    yield client
    await client.aclose()


@pytest.fixture
def services(
    db: Database,
    llm_client: ChatClient,
    local_embedder: LocalEmbedder,
    token_counter: TokenCounter,
) -> Services:
    """Everything core needs, on the rolled-back test connection."""
    return Services(
        settings=make_settings(),
        db=db,
        embedder=local_embedder,
        llm=llm_client,
        tokens=token_counter,
    )


@pytest.fixture
async def pooled(
    fresh_dsn: str,
    llm_client: ChatClient,
    local_embedder: LocalEmbedder,
    token_counter: TokenCounter,
) -> AsyncIterator[Services]:
    """Like `services`, but on a pool over a database of its own: for tests where
    several connections work at once (parallel job runners, concurrent turns)."""
    pool = await create_pool(fresh_dsn, min_size=1, max_size=12)
    try:
        yield Services(
            settings=make_settings(),
            db=Database(pool),
            embedder=local_embedder,
            llm=llm_client,
            tokens=token_counter,
        )
    finally:
        await pool.close()


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """An ONETHREAD_DATA_DIR for embedded servers started by a test.

    Not under pytest's tmp_path: pytest resets its base folder to mode 0700 whenever a
    session starts, which would lock out the embedded server's system user (as root).
    """
    with tempfile.TemporaryDirectory(prefix="onethread-data-") as folder:
        yield Path(folder)
