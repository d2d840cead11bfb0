"""Model Markdown -> Telegram HTML (parse_mode="HTML").

HTML rather than MarkdownV2 because it needs only three characters escaped (`&`, `<`,
`>`), so arbitrary model output can be made safe. Supported: **bold** / __bold__,
*italic* / _italic_, ~~strike~~, `code`, fenced code blocks (with a language tag as
`<pre><code class="language-x">`), [links](http...) and `#` headings (shown bold).
Anything else stays literal text. An unclosed fence (a reply still being streamed)
renders as code to the end, so partial text is valid HTML too.

Every tag is written by the renderer around content it rendered itself, so the output
is well-formed for any input, and nothing in the input can pass for markup the renderer
made: patterns only decide where tags go (see `_Units`). The input is expected to be
cleaned already (`adapters.text.clean`, which the sender applies before splitting).
Telegram is still the judge: the sender falls back to plain text when Telegram answers
"can't parse entities", so a reply is never lost.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable

_FENCE = re.compile(
    r"^[ \t]*```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:^[ \t]*```[ \t]*$|\Z)", re.S | re.M
)
_ATOM = "\ufffc"
"""What a finished code span or link is to the patterns that run after it."""
_INLINE_CODE = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"\[([^\]\n]+)\]\(((?:https?|tg|mailto):[^)\s\ufffc]+)\)")
_HEADING = re.compile(r"^#{1,6}[ \t]+(?P<inner>.+?)[ \t#]*$", re.M)
_BOLD = re.compile(r"(\*\*|__)(?=\S)(?P<inner>[^\n]+?)(?<=\S)\1")
_STRIKE = re.compile(r"~~(?=\S)(?P<inner>[^\n]+?)(?<=\S)~~")
_ITALIC_STAR = re.compile(r"(?<![\w*])\*(?=[^\s*])(?P<inner>[^*\n]+?)(?<=[^\s*])\*(?![\w*])")
_ITALIC_UNDERSCORE = re.compile(r"(?<![\w_])_(?=[^\s_])(?P<inner>[^_\n]+?)(?<=[^\s_])_(?![\w_])")
_WRAPPERS: tuple[tuple[re.Pattern[str], str], ...] = (
    (_HEADING, "b"),
    (_BOLD, "b"),
    (_STRIKE, "s"),
    (_ITALIC_STAR, "i"),
    (_ITALIC_UNDERSCORE, "i"),
)
"""Markup around rendered content, in order: each may hold the ones after it."""
_TAG = re.compile(r"<[^>]*>")
"""A tag of ours: in what the renderer writes, every other `<` is escaped."""


def escape(text: str) -> str:
    """Escape the three characters Telegram's HTML parser treats specially."""
    return html.escape(text, quote=False)


class _Units:
    """A stretch of prose as a row of units, each an HTML fragment with one character
    of `shadow` standing for it: an escaped source character (shadowed by itself) or
    a finished code span or link (shadowed by `_ATOM`).

    The patterns match `shadow`; the output is taken from `html` by position. So
    nothing in the source is ever read back as a fragment. (Fragments used to be kept
    as NUL-numbered placeholders in the text and substituted until none were left: a
    code block holding such a number expanded into itself for ever.)
    """

    def __init__(self, text: str) -> None:
        self.shadow = text
        self.html = [escape(character) for character in text]

    def collapse(self, pattern: re.Pattern[str], render: Callable[[re.Match[str]], str]) -> None:
        """Make each match of `pattern` one unit: `render(match)`, shadowed by `_ATOM`."""
        shadow: list[str] = []
        fragments: list[str] = []
        position = 0
        for match in pattern.finditer(self.shadow):
            shadow += (self.shadow[position : match.start()], _ATOM)
            fragments += self.html[position : match.start()]
            fragments.append(render(match))
            position = match.end()
        shadow.append(self.shadow[position:])
        fragments += self.html[position:]
        self.shadow, self.html = "".join(shadow), fragments

    def wrap(self, start: int, end: int, level: int = 0) -> str:
        """HTML of units `start` to `end` with `_WRAPPERS[level:]` applied, outermost
        first; each one's content is rendered with the ones after it.

        The patterns see only the stretch they render: its ends are boundaries, as
        they would be in Markdown (`***a* b**` is bold around italic).
        """
        if level == len(_WRAPPERS):
            return "".join(self.html[start:end])
        pattern, tag = _WRAPPERS[level]
        out: list[str] = []
        position = start
        for match in pattern.finditer(self.shadow[start:end]):
            before = self.wrap(position, start + match.start(), level + 1)
            inner = self.wrap(start + match.start("inner"), start + match.end("inner"), level + 1)
            out += (before, f"<{tag}>{inner}</{tag}>")
            position = start + match.end()
        out.append(self.wrap(position, end, level + 1))
        return "".join(out)


def _prose(text: str) -> str:
    """Render one stretch of text outside fenced blocks."""
    units = _Units(text)
    units.collapse(_INLINE_CODE, lambda m: f"<code>{escape(m[1])}</code>")

    def link(match: re.Match[str]) -> str:
        # `units` are still those before this collapse: its positions are the match's.
        label = "".join(units.html[match.start(1) : match.end(1)])
        return f'<a href="{html.escape(match[2], quote=True)}">{label}</a>'

    units.collapse(_LINK, link)
    return units.wrap(0, len(units.shadow))


def _code_block(match: re.Match[str]) -> str:
    language, code = match[1], match[2].rstrip("\n")
    attribute = f' class="language-{html.escape(language, quote=True)}"' if language else ""
    return f"<pre><code{attribute}>{escape(code)}</code></pre>"


def markdown_to_html(text: str) -> str:
    """Telegram HTML for `text`; every character of the source is either markup or shown.

    When the markup would leave nothing to show (an empty code block, a link whose
    text is blank), the text is shown as written instead: Telegram refuses an empty
    message.
    """
    out: list[str] = []
    position = 0
    for match in _FENCE.finditer(text):
        out += (_prose(text[position : match.start()]), _code_block(match))
        position = match.end()
    out.append(_prose(text[position:]))
    rendered = "".join(out).strip()
    if html.unescape(_TAG.sub("", rendered)).strip():
        return rendered
    return escape(text.strip())
