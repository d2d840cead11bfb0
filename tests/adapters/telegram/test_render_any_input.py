"""The Telegram renderer on any input: it ends, its HTML is well-formed, and it shows the
source's characters (in order, none added) but for the markup it consumed.

The input here is not cleaned, so these hold for the renderer alone; what the sender
sends (cleaned, split) is tested in tests/adapters/test_outgoing_text.py.
"""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from adapters.telegram.render import markdown_to_html
from fakes.telegram_api import visible_text

# Pieces that start, end or imitate markup, and what the old renderer used as slots.
MARKUP = [
    "**", "__", "*", "_", "~~", "`", "```", "```py\n", "\n```\n", "[", "]", "(", ")",
    "](https://x.test/a_b)", "# ", "\n", " ", "\t",
]  # fmt: skip
FORGERIES = ["\x00", "\x000\x00", "\x001\x00", "\x0099\x00", "\ufffc"]
TEXT = ["a", "b c", "<", ">", "&", "&amp;", "é", "🙂", "\u200d", "\r\n", "\x1b", "\ud800"]

markdown = st.lists(
    st.sampled_from(MARKUP + FORGERIES + TEXT) | st.characters(codec=None),
    max_size=80,
).map("".join)

MARKUP_CHARACTERS = set("*_~`#")


def _is_subsequence(shown: str, source: str) -> bool:
    rest = iter(source)
    return all(character in rest for character in shown)


def _words(text: str) -> Counter[str]:
    return Counter(c for c in text if c not in MARKUP_CHARACTERS and not c.isspace())


@settings(max_examples=300, deadline=None)
@given(markdown)
@example("```\n\x000\x00\n```")  # looped for ever: the placeholder of its own block
@example("```\nx\n```\n```\n\x000\x00\n```")  # showed the first block twice
@example("```\n\x001\x00\n```")  # IndexError
@example("**[a](https://x.test/`b`)**")
def test_any_text_renders_to_well_formed_html_showing_only_the_source(text: str) -> None:
    rendered = markdown_to_html(text)
    shown = visible_text(rendered, "HTML")  # raises where Telegram would refuse it
    assert _is_subsequence(shown, text)
    if text.strip():
        assert shown.strip()  # Telegram refuses an empty message
    if "```" not in text and "](" not in text:
        # Without code blocks (whose info line is dropped) and links (whose target is
        # not shown), only markup characters and whitespace may go.
        assert _words(shown) == _words(text)


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("```\n\x000\x00\n```", "<pre><code>\x000\x00</code></pre>"),
        ("`\x000\x00` **\x000\x00**", "<code>\x000\x00</code> <b>\x000\x00</b>"),
        # What a code span or link is to the markup patterns is only ever a stand-in.
        ("`a` \ufffc **\ufffc**", "<code>a</code> \ufffc <b>\ufffc</b>"),
        (
            "**see [the `docs`](https://x.test/a_b)**",
            '<b>see <a href="https://x.test/a_b">the <code>docs</code></a></b>',
        ),
        ("***a* b** __*c*__", "<b><i>a</i> b</b> <b><i>c</i></b>"),
        # Nothing would be left to show: the text as written instead.
        ("```\n```", "```\n```"),
        ("[ ](https://x.test)", "[ ](https://x.test)"),
    ],
)
def test_input_is_never_taken_for_rendered_markup(markdown: str, expected: str) -> None:
    assert markdown_to_html(markdown) == expected
