"""The Telegram renderer on any input: it ends, its HTML is well-formed, and it shows the
source's characters (in order, none added) but for the markup it consumed.

The input here is not cleaned, so these hold for the renderer alone; what the sender
sends (cleaned, split) is tested in tests/adapters/test_outgoing_text.py.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings

from adapters.telegram.render import markdown_to_html
from fakes.telegram_api import visible_text
from tests.adapters.text_cases import is_subsequence, markdown, words


@settings(max_examples=300, deadline=None)
@given(markdown)
@example("```\n\x000\x00\n```")  # looped for ever: the placeholder of its own block
@example("```\nx\n```\n```\n\x000\x00\n```")  # showed the first block twice
@example("```\n\x001\x00\n```")  # IndexError
@example("**[a](https://x.test/`b`)**")
def test_any_text_renders_to_well_formed_html_showing_only_the_source(text: str) -> None:
    rendered = markdown_to_html(text)
    shown = visible_text(rendered, "HTML")  # raises where Telegram would refuse it
    assert is_subsequence(shown, text)
    if text.strip():
        assert shown.strip()  # Telegram refuses an empty message
    if "```" not in text and "](" not in text:
        # Without code blocks (whose info line is dropped) and links (whose target is
        # not shown), only markup characters and whitespace may go.
        assert words(shown) == words(text)


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
