"""Keeping the rolling summary within `MEMORY_SUMMARY_MAX_CHARS`.

The model is asked for at most that many characters; when it writes more, the end is
kept, cut at a sentence (else a word) boundary. The end, because the prompt assembly
(`core.context`) treats the end of a summary as its most recent part and keeps that
when the summary has to shrink, so both cuts agree on what matters.
"""

from __future__ import annotations

import re

_SENTENCE_START = re.compile(r"(?<=[.!?…])\s+")


def bound_summary(text: str, max_chars: int) -> str:
    """`text` if it fits, else its last `max_chars` characters starting at a boundary."""
    text = text.strip()
    if len(text) <= max_chars:
        return text
    tail = text[len(text) - max_chars :]
    # Drop the partial sentence the cut landed in, unless that would drop nearly all.
    match = _SENTENCE_START.search(tail)
    if match is not None and match.end() < len(tail) // 2:
        return tail[match.end() :].strip()
    space = tail.find(" ")
    if 0 <= space < len(tail) // 2:
        return tail[space + 1 :].strip()
    return tail.strip()
