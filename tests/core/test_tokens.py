"""Offline token counting."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import tiktoken.load
import tiktoken_ext.openai_public  # type: ignore[import-untyped]

from core.tokens import (
    BPE_PATH,
    O200K_PATTERN,
    O200K_SPECIAL_TOKENS,
    TOKENS_PER_MESSAGE,
    TOKENS_REPLY_PRIMING,
    TokenCounter,
    estimate_tokens,
)

SAMPLES = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "Привет, как дела? Всё хорошо.",
    "你好\uff0c世界\u3002今天天气很好\u3002",
    "def f(x):\n    return x**2 + 12345678",
    "https://example.com/a/b?c=1",
    "Ünïcödé naïve café résumé",
    "🙂🙂 emoji test 🚀",
    "Remind me on 2025-03-14 at 09:30 to call Anna (+49 30 1234567).",
    "Total: 1,234.56 EUR, 17 items, 3 x 250 g, ids 42 7 1999",
    "I'm sure you'll love it -- don't you think? ;)",
]


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return TokenCounter.load()


def test_loads_exactly_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_download(blobpath: str, expected_hash: str | None = None) -> bytes:
        raise AssertionError(f"tiktoken tried to fetch {blobpath}")

    monkeypatch.setattr(tiktoken.load, "read_file_cached", no_download)
    monkeypatch.setattr(tiktoken.load, "read_file", no_download)

    assert TokenCounter.load().exact


def test_shipped_encoding_matches_tiktokens_definition(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our copy of the pattern and special tokens must equal tiktoken's own o200k_base."""
    ranks = {b"stub": 0}
    monkeypatch.setattr(tiktoken_ext.openai_public, "load_tiktoken_bpe", lambda *a, **k: ranks)

    definition = tiktoken_ext.openai_public.o200k_base()

    assert definition["pat_str"] == O200K_PATTERN
    assert definition["special_tokens"] == O200K_SPECIAL_TOKENS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        ("Hello, world!", 4),
        ("The quick brown fox jumps over the lazy dog.", 10),
        ("Привет, как дела? Всё хорошо.", 9),
        ("<|endoftext|>", 7),  # special tokens in user text are plain text
    ],
)
def test_counts_o200k_tokens(counter: TokenCounter, text: str, expected: int) -> None:
    assert counter.exact
    assert counter.count(text) == expected


def test_count_messages_adds_chat_overhead(counter: TokenCounter) -> None:
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hello, world!", "name": "anna"},
    ]
    content = sum(counter.count(value) for message in messages for value in message.values())

    total = counter.count_messages(messages)

    assert total == content + 2 * TOKENS_PER_MESSAGE + 1 + TOKENS_REPLY_PRIMING
    assert counter.count_messages([]) == TOKENS_REPLY_PRIMING


def test_damaged_encoding_falls_back_to_the_estimator(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    damaged = tmp_path / "o200k_base.tiktoken"
    damaged.write_bytes(BPE_PATH.read_bytes()[:-10])

    with caplog.at_level(logging.WARNING, logger="core.tokens"):
        counter = TokenCounter.load(damaged)

    assert not counter.exact
    assert counter.count("Hello, world!") == estimate_tokens("Hello, world!")
    assert "estimating" in caplog.text


def test_missing_encoding_falls_back_to_the_estimator(tmp_path: Path) -> None:
    assert not TokenCounter.load(tmp_path / "missing.tiktoken").exact


@pytest.mark.parametrize("text", SAMPLES)
def test_estimate_is_not_below_the_exact_count(counter: TokenCounter, text: str) -> None:
    exact = counter.count(text)
    assert exact <= estimate_tokens(text) <= 3 * exact


def test_estimate_of_nothing_is_zero() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("   \n\t") == 0
