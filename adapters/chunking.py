"""Split a long reply into messages that fit a platform's limit.

Splits at the last paragraph break, else line break, else sentence end, else space
before the limit. A fenced code block (```) is never broken in the middle of a line:
when a block must be split, the chunk closes the fence and the next chunk reopens it
with the same language tag, so each message renders on its own.
"""

from __future__ import annotations

import re

# Appended to a streamed preview, so a preview never looks like the finished reply. The
# reply is recorded only when complete: if the process dies in between, the restarted
# service answers again, and the person can tell the earlier text was unfinished.
STREAMING_CURSOR = " …"

_SENTENCE_END = re.compile(r"[.!?…](?=\s)")
_FENCE_TAG = re.compile(r"```([^\s`]*)")
_BACKTICK_NEXT = re.compile(r"\s*`")
MAX_LANGUAGE_TAG = 20


def _cut_point(text: str, limit: int) -> int:
    window = text[:limit]
    for separator in ("\n\n", "\n"):
        index = window.rfind(separator)
        if index > limit // 4:
            return index + len(separator)
    ends = [m.end() for m in _SENTENCE_END.finditer(window)]
    end = next((e for e in reversed(ends) if _keeps_backticks_text(text, e)), 0)
    if end > limit // 4:
        return end
    index = window.rfind(" ")
    while index > limit // 4 and not _keeps_backticks_text(text, index + 1):
        index = window.rfind(" ", 0, index)
    if index > limit // 4:
        return index + 1
    cut = limit
    while cut > limit // 4 and not _keeps_backticks_text(text, cut):
        cut -= 1
    return cut if cut > limit // 4 else limit


def _keeps_backticks_text(text: str, cut: int) -> bool:
    """Whether cutting `text` at `cut` (inside a line) leaves backticks there as text:
    a chunk that began with them would open a code block where the reply had none."""
    return _BACKTICK_NEXT.match(text, cut) is None


def _open_fence(text: str) -> str | None:
    """The opening fence (e.g. "```python") left open at the end of text, if any: the
    backticks and the language tag only, never the rest of its line, so reopening it
    in the next chunk costs a few characters whatever the model wrote after it."""
    fence = None
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped.startswith("```"):
            fence = None if fence is not None else _fence_tag(stripped)
    return fence


def _fence_tag(line: str) -> str:
    """ "```python" for "```python ..."; a plain "```" when the word glued to the
    backticks is too long to be a language (it is then text, kept where it was)."""
    match = _FENCE_TAG.match(line)
    return match.group(0) if match and len(match.group(1)) <= MAX_LANGUAGE_TAG else "```"


def split_message(text: str, limit: int) -> list[str]:
    """Chunks of at most `limit` characters whose concatenation keeps all the content."""
    if limit < 32:
        raise ValueError("limit too small to split sensibly")
    chunks: list[str] = []
    rest = text
    prefix = ""
    while rest:
        rest = prefix + rest
        if len(rest) <= limit:
            chunks.append(rest)
            break
        # Leave room to close a code block opened in this chunk.
        cut = _cut_point(rest, limit - 4)
        if cut <= len(prefix):
            cut = limit - 4  # a break inside the reopened fence: no progress otherwise
        chunk = rest[:cut]
        fence = _open_fence(chunk)
        if fence is not None:
            if not chunk.endswith("\n"):
                newline = chunk.rfind("\n")
                if newline > len(fence):
                    cut = newline + 1
                    chunk = rest[:cut]
            chunk = chunk.rstrip("\n") + "\n```"
            prefix = fence + "\n"
        else:
            prefix = ""
        chunks.append(chunk.rstrip())
        rest = rest[cut:].lstrip() if fence is None else rest[cut:]
    return [c for c in chunks if c.strip()]
