"""What the adapters send, for any reply text: clean, within each platform's limit, and
on Telegram well-formed HTML that shows the cleaned text but for its markup."""

from __future__ import annotations

import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from adapters.chunking import MAX_LANGUAGE_TAG
from adapters.discord.channel import MESSAGE_LIMIT as DISCORD_LIMIT
from adapters.discord.channel import split_for_discord
from adapters.telegram.render import markdown_to_html
from adapters.telegram.sender import MESSAGE_LIMIT as TELEGRAM_LIMIT
from adapters.telegram.sender import split_for_telegram
from adapters.text import clean
from fakes.telegram_api import visible_text
from tests.adapters.text_cases import is_subsequence, markdown, unshowable, words

# Long replies: short Markdown repeated, and runs that must be cut (emoji count twice
# in Telegram's UTF-16 limit).
replies = markdown | st.builds(
    lambda text, run, times: (text + run) * times,
    markdown,
    st.sampled_from(["", "x" * 2500, "🙂" * 1500, "\x00" * 3000, "```py\n" + "a = 1\n" * 400]),
    st.integers(min_value=1, max_value=40),
)


def _utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _content(text: str) -> str:
    # Fences and their language tags are markup, added again when a block is split. A
    # fence opens a line (CommonMark): backticks in the middle of a line are text.
    return re.sub(rf"(?m)^[ \t]*```[^\s`]{{0,{MAX_LANGUAGE_TAG}}}|\s+", "", text)


@settings(max_examples=150, deadline=None)
@given(replies)
def test_telegram_messages_are_clean_well_formed_and_fit(text: str) -> None:
    shown: list[str] = []
    for chunk in split_for_telegram(text):
        assert _utf16_units(chunk) <= TELEGRAM_LIMIT  # the plain-text fallback fits too
        rendered = markdown_to_html(chunk)
        assert not [c for c in rendered if unshowable(c)]
        message = visible_text(rendered, "HTML")  # raises where Telegram would refuse it
        assert message.strip()
        assert _utf16_units(message) <= TELEGRAM_LIMIT
        assert is_subsequence(message, chunk)
        shown.append(message)
    if "```" not in text and "](" not in text:
        assert words("".join(shown)) == words(clean(text))


@settings(max_examples=150, deadline=None)
@given(replies)
@example(("``````" + "x" * 2500) * 32)  # one 80k-character line, backtick runs inside
@example(("# ```" + "x" * 2500) * 2)  # a cut before mid-line backticks made them a fence
def test_discord_messages_are_clean_and_fit(text: str) -> None:
    chunks = split_for_discord(text)
    assert all(len(chunk) <= DISCORD_LIMIT and chunk.strip() for chunk in chunks)
    assert not [c for chunk in chunks for c in chunk if unshowable(c)]
    assert _content("\n".join(chunks)) == _content(clean(text))
