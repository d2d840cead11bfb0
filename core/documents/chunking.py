"""Splitting a document's sections into chunks that fit the embedder's window.

The default embedder reads at most 256 WordPiece tokens and silently drops the rest
(core/embedding/local.py), so chunks are measured in those tokens, with the model's own
tokenizer (shipped in core/embedding/assets), not guessed from characters: at most
`max_tokens` each (200 by default, room for the two special tokens and to spare),
consecutive chunks of a section overlapping by about `overlap` tokens, so that a
sentence cut at one chunk's end is whole in the next one. A chunk ends, by preference,
at a paragraph break, else at a sentence end, else between words, in its second half.
Another embedder (an OpenAI model reads 8191 tokens) gets the same, smaller than it
could take, which suits recall: a chunk should be about one thing.

Chunks never cross a section (a PDF page, a Markdown heading's section), so each names
where it is: page, heading, and where it starts in the page's or the file's text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer

from core.documents.parsing import Section
from core.embedding.local import TOKENIZER_PATH

DEFAULT_MAX_TOKENS = 200
DEFAULT_OVERLAP = 40
# Also the ideographic full stop and the fullwidth exclamation and question marks.
_SENTENCE_ENDS = frozenset(".!?;:…\u3002\uff01\uff1f")


@dataclass(frozen=True, slots=True)
class TextChunk:
    text: str
    page: int | None
    heading: str | None
    offset: int
    """Where `text` starts in its page's (PDF) or the file's text."""


class Chunker:
    """See the module docstring. Thread-safe: `chunks` may run in worker threads."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        *,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        overlap: int = DEFAULT_OVERLAP,
    ) -> None:
        if not 0 <= overlap < max_tokens // 2:
            raise ValueError("overlap must be below half of max_tokens")
        self._tokenizer = tokenizer
        self._max = max_tokens
        self._overlap = overlap

    @classmethod
    def load(cls, path: Path = TOKENIZER_PATH, **options: int) -> Chunker:
        tokenizer = Tokenizer.from_file(str(path))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return cls(tokenizer, **options)

    @property
    def max_tokens(self) -> int:
        return self._max

    def count(self, text: str) -> int:
        """The tokens of `text` as the embedder counts them (without special tokens)."""
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def chunks(self, sections: Iterable[Section]) -> list[TextChunk]:
        return [chunk for section in sections for chunk in self._section(section)]

    def _section(self, section: Section) -> list[TextChunk]:
        text = section.text
        offsets: Sequence[tuple[int, int]] = self._tokenizer.encode(
            text, add_special_tokens=False
        ).offsets
        count = len(offsets)
        chunks: list[TextChunk] = []
        start = 0
        while start < count:
            end = min(start + self._max, count)
            if end < count:
                end = self._break_before(text, offsets, start, end)
            first, last = offsets[start][0], offsets[end - 1][1]
            piece = text[first:last]
            stripped = piece.strip()
            if stripped:
                at = section.offset + first + len(piece) - len(piece.lstrip())
                chunks.append(TextChunk(stripped, section.page, section.heading, at))
            if end == count:
                break
            start = self._word_start(text, offsets, max(end - self._overlap, start + 1), end)
        return chunks

    def _break_before(
        self, text: str, offsets: Sequence[tuple[int, int]], start: int, end: int
    ) -> int:
        """The best token index in the second half of `start..end` to end a chunk
        before: after a paragraph break, else a sentence end, else between words; `end`
        when there is none (a very long word, or a script without spaces)."""
        lowest = max(start + 1, end - self._max // 2)
        best: dict[int, int] = {}
        for index in range(end, lowest - 1, -1):
            gap = text[offsets[index - 1][1] : offsets[index][0]]
            if "\n\n" in gap or "\n\r\n" in gap:
                return index
            if 1 not in best and gap and text[offsets[index - 1][1] - 1] in _SENTENCE_ENDS:
                best[1] = index
            if 2 not in best and gap:
                best[2] = index
        return best.get(1, best.get(2, end))

    @staticmethod
    def _word_start(text: str, offsets: Sequence[tuple[int, int]], index: int, limit: int) -> int:
        """The first token at or after `index` (and before `limit`) that starts a word,
        so a chunk never begins mid-word; `index` when none does."""
        for candidate in range(index, limit):
            if candidate == 0 or text[offsets[candidate - 1][1] : offsets[candidate][0]]:
                return candidate
        return index
