"""Everything the engine and the commands use, built once by `bot` and passed down."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from config import Settings
from core.embedding.base import Embedder
from core.llm.client import ChatClient
from core.llm.transcription import Transcriber
from core.media.files import FileSource
from core.models import Platform
from core.ports import Messenger
from core.recall.vectors import RecallRepository
from core.storage.database import Database
from core.storage.facts import FactRepository
from core.storage.messages import MessageRepository
from core.storage.users import UserRepository
from core.tokens import TokenCounter

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class JobControl(Protocol):
    """The scheduled jobs, as admin commands see them."""

    def names(self) -> list[str]:
        """Every job that `run` accepts."""

    async def run(self, name: str) -> str:
        """Run one job now; a one-line summary of what it did."""

    def start(self, name: str) -> asyncio.Task[Any]:
        """Start one job now in the background (unless it is running already)."""


@dataclass
class Services:
    settings: Settings
    db: Database
    embedder: Embedder
    llm: ChatClient
    tokens: TokenCounter
    clock: Clock = utc_now
    messengers: dict[Platform, Messenger] = field(default_factory=dict)
    files: dict[Platform, FileSource] = field(default_factory=dict)
    """How each platform's attachments are downloaded (registered by its adapter)."""
    transcriber: Transcriber | None = None
    """None: no transcription model configured (voice notes are refused)."""
    jobs: JobControl | None = None

    def __post_init__(self) -> None:
        self.users = UserRepository(self.db)
        self.messages = MessageRepository(self.db)
        self.facts = FactRepository(self.db)
        self.recall = RecallRepository(self.db, dimensions=self.settings.embedding_dimensions)
