"""Markdown -> Telegram HTML: escaping first, then the markup Telegram understands."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.telegram.render import markdown_to_html
from adapters.telegram.sender import split_for_telegram
from fakes.telegram_api import visible_text


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("1 < 2 & 3 > 2", "1 &lt; 2 &amp; 3 &gt; 2"),
        ("**bold** and __also__", "<b>bold</b> and <b>also</b>"),
        (
            "*it* and _it_ but snake_case_name and 2 * 3 * 4",
            "<i>it</i> and <i>it</i> but snake_case_name and 2 * 3 * 4",
        ),
        ("~~gone~~", "<s>gone</s>"),
        ("`a <b> c`", "<code>a &lt;b&gt; c</code>"),
        (
            '[docs](https://x.test/?a=1&b="2")',
            '<a href="https://x.test/?a=1&amp;b=&quot;2&quot;">docs</a>',
        ),
        ("[bad](javascript:alert(1))", "[bad](javascript:alert(1))"),
        ("## Title", "<b>Title</b>"),
        ("**a *b* c**", "<b>a <i>b</i> c</b>"),
        (
            "```python\nif a < b:\n    pass\n```",
            '<pre><code class="language-python">if a &lt; b:\n    pass</code></pre>',
        ),
        ("```\nraw **not bold**\n```", "<pre><code>raw **not bold**</code></pre>"),
        (
            "streaming\n```js\nlet x = 1",
            'streaming\n<pre><code class="language-js">let x = 1</code></pre>',
        ),
    ],
)
def test_rendering(markdown: str, expected: str) -> None:
    assert markdown_to_html(markdown) == expected


@given(st.text(alphabet="ab *_`[]()<>&#~\n", max_size=60))
def test_any_text_renders_to_html_telegram_accepts(markdown: str) -> None:
    rendered = markdown_to_html(markdown)
    shown = visible_text(rendered, "HTML")  # raises where Telegram would refuse it
    assert set(shown) <= set(markdown) | {" ", "\n"}


def test_split_counts_utf16_units() -> None:
    emoji = "🙂" * 3000  # 6000 UTF-16 units
    chunks = split_for_telegram(emoji)
    assert "".join(chunks) == emoji
    assert all(len(c.encode("utf-16-le")) // 2 <= 4096 for c in chunks)
