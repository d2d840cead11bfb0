"""What the text tests generate and check: Markdown that tries to break a renderer, and
which characters no outgoing text may hold."""

from __future__ import annotations

import unicodedata
from collections import Counter

from hypothesis import strategies as st

# Pieces that start, end or imitate markup, and what the old renderer used as slots.
MARKUP = [
    "**", "__", "*", "_", "~~", "`", "```", "```py\n", "\n```\n", "[", "]", "(", ")",
    "](https://x.test/a_b)", "# ", "\n", " ", "\t",
]  # fmt: skip
FORGERIES = ["\x00", "\x000\x00", "\x001\x00", "\x0099\x00", "\ufffc"]
TEXT = ["a", "b c", "<", ">", "&", "&amp;", "é", "🙂", "\u200d", "\r\n", "\r", "\x1b", "\ud800"]

markdown = st.lists(
    st.sampled_from(MARKUP + FORGERIES + TEXT) | st.characters(codec=None),
    max_size=80,
).map("".join)
"""Short Markdown of any kind: markup, forged placeholders, control characters,
surrogates, and any other character."""


def unshowable(character: str) -> bool:
    """Whether `clean` must remove `character` (a second definition, for checking)."""
    category, code = unicodedata.category(character), ord(character)
    control = category == "Cc" and character not in "\n\t"
    noncharacter = 0xFDD0 <= code <= 0xFDEF or code & 0xFFFE == 0xFFFE
    return control or category == "Cs" or noncharacter


MARKUP_CHARACTERS = frozenset("*_~`#")


def words(text: str) -> Counter[str]:
    """The characters of `text` but whitespace and markup: rendering keeps all of them
    when the text has no code block (its info line is dropped) and no link (its target
    is not shown)."""
    return Counter(c for c in text if c not in MARKUP_CHARACTERS and not c.isspace())


def is_subsequence(shown: str, source: str) -> bool:
    """Whether `shown` is `source` with some characters left out."""
    rest = iter(source)
    return all(character in rest for character in shown)
