"""Build the core services from settings, and close them in reverse order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from openai import AsyncOpenAI

from bot.database import DatabaseLocation
from config import EmbeddingProvider, Settings
from core.embedding.base import Embedder
from core.embedding.local import LocalEmbedder
from core.embedding.multilingual import MultilingualEmbedder
from core.embedding.openai_embedder import OpenAIEmbedder
from core.llm.client import ChatClient
from core.llm.transcription import Transcriber
from core.services import Services
from core.storage.database import Database, create_pool
from core.tokens import TokenCounter


def _api_key(settings: Settings) -> str | None:
    return None if settings.openai_api_key is None else settings.openai_api_key.get_secret_value()


def _base_url(settings: Settings) -> str | None:
    return None if settings.openai_base_url is None else str(settings.openai_base_url)


async def _embedder(settings: Settings, stack: AsyncExitStack) -> Embedder:
    if settings.embedding_provider is EmbeddingProvider.OPENAI:
        client = AsyncOpenAI(
            base_url=_base_url(settings),
            api_key=_api_key(settings) or "not-needed",
            timeout=settings.llm_timeout_seconds,
            max_retries=settings.llm_max_retries,
        )
        stack.push_async_callback(client.close)
        return OpenAIEmbedder(
            client,
            model_name=settings.embedding_model,
            dimensions=settings.embedding_dimensions,
            send_dimensions=True,
        )
    local: LocalEmbedder | MultilingualEmbedder = (
        MultilingualEmbedder()
        if settings.embedding_provider is EmbeddingProvider.LOCAL_MULTILINGUAL
        else LocalEmbedder()
    )
    await local.load()
    stack.push_async_callback(local.aclose)
    return local


@asynccontextmanager
async def build_services(settings: Settings, location: DatabaseLocation) -> AsyncIterator[Services]:
    async with AsyncExitStack() as stack:
        pool = await create_pool(
            location.dsn,
            min_size=settings.db.pool_min_size,
            max_size=settings.db.pool_max_size,
            command_timeout=settings.db.command_timeout_seconds,
        )
        stack.push_async_callback(pool.close)
        embedder = await _embedder(settings, stack)
        llm = ChatClient(
            base_url=_base_url(settings),
            api_key=_api_key(settings),
            model=settings.llm_model,
            timeout=settings.llm_timeout_seconds,
            max_retries=settings.llm_max_retries,
        )
        stack.push_async_callback(llm.aclose)
        transcriber = _transcriber(settings)
        if transcriber is not None:
            stack.push_async_callback(transcriber.aclose)
        tokens = await asyncio.to_thread(TokenCounter.load)
        db = Database(pool, acquire_timeout=settings.db.pool_acquire_timeout_seconds)
        yield Services(
            settings=settings,
            db=db,
            embedder=embedder,
            llm=llm,
            tokens=tokens,
            transcriber=transcriber,
        )


def _transcriber(settings: Settings) -> Transcriber | None:
    """The transcription model (TRANSCRIPTION_*), at the chat endpoint unless its own
    base URL is set; None without TRANSCRIPTION_MODEL. The chat endpoint's key goes
    only to the chat endpoint: another host gets TRANSCRIPTION_API_KEY or no key."""
    if settings.transcription_model is None:
        return None
    own_host = settings.transcription_base_url is not None
    base_url = settings.transcription_base_url if own_host else settings.openai_base_url
    key = settings.transcription_api_key
    if not own_host:
        key = key or settings.openai_api_key
    return Transcriber(
        base_url=None if base_url is None else str(base_url),
        api_key=None if key is None else key.get_secret_value(),
        model=settings.transcription_model,
        timeout=settings.llm_timeout_seconds,
        max_retries=settings.llm_max_retries,
    )
