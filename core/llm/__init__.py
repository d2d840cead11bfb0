"""The language-model port: one client for any OpenAI-compatible chat endpoint."""

from core.llm.client import ChatClient, Completion, Message, StreamEvent, TextDelta
from core.llm.errors import (
    LLMBadResponse,
    LLMError,
    LLMRateLimited,
    LLMTimeout,
    LLMUnavailable,
)

__all__ = [
    "ChatClient",
    "Completion",
    "LLMBadResponse",
    "LLMError",
    "LLMRateLimited",
    "LLMTimeout",
    "LLMUnavailable",
    "Message",
    "StreamEvent",
    "TextDelta",
]
