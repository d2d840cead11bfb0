"""Token counting for context budgets, exact and offline.

The chat model (``gpt-4o-mini`` by default, like every current OpenAI chat
model) uses the ``o200k_base`` encoding. ``tiktoken.get_encoding`` would
download that file on first use, which CI and offline hosts cannot do, so we
ship the file (byte-identical to OpenAI's, checked against the sha256 that
tiktoken itself pins) and build the :class:`tiktoken.Encoding` from it
directly; tiktoken's download path is never called.

If the file or tiktoken is unavailable, :meth:`TokenCounter.load` falls back
to :func:`estimate_tokens`, a heuristic that errs on the high side so budgets
stay safe. See docs/embeddings.md.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

ENCODING_NAME = "o200k_base"
BPE_PATH = Path(__file__).with_name("embedding") / "assets" / "o200k_base.tiktoken"
#: The hash tiktoken pins for ``o200k_base.tiktoken`` (tiktoken_ext/openai_public.py).
BPE_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
#: Copied from tiktoken_ext/openai_public.py; a test checks they still agree.
O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
O200K_SPECIAL_TOKENS = {"<|endoftext|>": 199999, "<|endofprompt|>": 200018}

#: Chat-format overhead (OpenAI cookbook, "How to count tokens with tiktoken"):
#: each message is wrapped in a few formatting tokens (3 for gpt-4o; we round up
#: to 4), a ``name`` costs one more, and the reply is primed with 3.
TOKENS_PER_MESSAGE = 4
TOKENS_PER_NAME = 1
TOKENS_REPLY_PRIMING = 3

_PIECES = re.compile(r"[^\W\d_]+|\d+|[^\w\s]|_+")


class TokenCounterError(Exception):
    """The exact encoding could not be loaded (internal; :meth:`TokenCounter.load` falls back)."""


def estimate_tokens(text: str) -> int:
    """A network-free, dependency-free guess that is rarely below the real o200k count.

    Per piece: ASCII words cost one token per 4 characters (the usual English
    rule of thumb), other scripts one per 2 characters, a number one per 3
    digits (the encoding splits numbers into groups of at most 3) plus one for
    the space or sign next to it (which does not merge into digits), every
    ASCII punctuation mark one and every other symbol one per UTF-8 byte.
    Whitespace is free, as it mostly merges into the next word.
    """
    total = 0
    for piece in _PIECES.findall(text):
        if piece[0].isdigit():
            total += math.ceil(len(piece) / 3) + 1
        elif piece.isascii() and piece[0].isalpha():
            total += math.ceil(len(piece) / 4)
        elif piece[0].isalpha():
            total += math.ceil(len(piece) / 2)
        else:
            total += len(piece.encode("utf-8")) if not piece.isascii() else 1
    return total


def load_o200k(path: Path = BPE_PATH) -> Callable[[str], int]:
    """Build tiktoken's o200k_base from the shipped file; returns an exact counting function."""
    try:
        import tiktoken
    except ImportError as exc:
        raise TokenCounterError("tiktoken is not installed") from exc
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TokenCounterError(f"cannot read {path}") from exc
    if hashlib.sha256(data).hexdigest() != BPE_SHA256:
        raise TokenCounterError(f"{path} does not match the sha256 of {ENCODING_NAME}")
    ranks = {
        base64.b64decode(token): int(rank)
        for token, rank in (line.split() for line in data.splitlines() if line)
    }
    encoding = tiktoken.Encoding(
        ENCODING_NAME,
        pat_str=O200K_PATTERN,
        mergeable_ranks=ranks,
        special_tokens=O200K_SPECIAL_TOKENS,
    )

    def count(text: str) -> int:
        # Special-token text in user input is counted as ordinary text, never rejected.
        return len(encoding.encode_ordinary(text))

    return count


COUNT_CACHE_SIZE = 16_384


class TokenCounter:
    """Counts tokens of texts and of chat messages for one encoding.

    Build it once at start-up with :meth:`load` (reading the encoding takes
    about 0.3 s and 95 MB) and share it; counting is synchronous and fast enough for
    message-sized texts on the event loop.
    """

    def __init__(self, count_text: Callable[[str], int], *, exact: bool) -> None:
        # Every turn recounts the same recent messages and facts: remember the counts.
        self._count_text = functools.lru_cache(maxsize=COUNT_CACHE_SIZE)(count_text)
        self.exact = exact
        """False when counts come from :func:`estimate_tokens`."""

    @classmethod
    def load(cls, path: Path = BPE_PATH) -> TokenCounter:
        """The exact o200k_base counter, or the estimator (with a warning) if it cannot load."""
        try:
            return cls(load_o200k(path), exact=True)
        except TokenCounterError as exc:
            logger.warning("exact token counting unavailable (%s); estimating instead", exc)
            return cls.estimating()

    @classmethod
    def estimating(cls) -> TokenCounter:
        """A counter that uses :func:`estimate_tokens`."""
        return cls(estimate_tokens, exact=False)

    def count(self, text: str) -> int:
        """Tokens in ``text`` as plain text."""
        return self._count_text(text)

    def count_messages(self, messages: Sequence[Mapping[str, str]]) -> int:
        """Prompt tokens of OpenAI chat messages (``role``, ``content``, optional ``name``).

        Includes the per-message overhead and the reply priming, so the result is
        what the API bills as prompt tokens, give or take a few.
        """
        total = TOKENS_REPLY_PRIMING
        for message in messages:
            total += TOKENS_PER_MESSAGE
            for key, value in message.items():
                total += self._count_text(value)
                if key == "name":
                    total += TOKENS_PER_NAME
        return total
