"""Model Markdown -> Telegram HTML (parse_mode="HTML").

HTML rather than MarkdownV2 because it needs only three characters escaped (`&`, `<`,
`>`), so arbitrary model output can be made safe. Supported: **bold** / __bold__,
*italic* / _italic_, ~~strike~~, `code`, fenced code blocks (with a language tag as
`<pre><code class="language-x">`), [links](http...) and `#` headings (shown bold).
Anything else stays literal text. An unclosed fence (a reply still being streamed)
renders as code to the end, so partial text is valid HTML too.

The output is meant to be valid, but Telegram is the judge: the sender falls back to
plain text when Telegram answers "can't parse entities", so a reply is never lost.
"""

from __future__ import annotations

import html
import re

_FENCE = re.compile(
    r"^[ \t]*```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:^[ \t]*```[ \t]*$|\Z)", re.S | re.M
)
_INLINE_CODE = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"\[([^\]\n]+)\]\(((?:https?|tg|mailto):[^)\s]+)\)")
_BOLD = re.compile(r"(\*\*|__)(?=\S)([^<>\n]+?)(?<=\S)\1")
_ITALIC_STAR = re.compile(r"(?<![\w*])\*(?=[^\s*])([^<>*\n]+?)(?<=[^\s*])\*(?![\w*])")
_ITALIC_UNDERSCORE = re.compile(r"(?<![\w_])_(?=[^\s_])([^<>_\n]+?)(?<=[^\s_])_(?![\w_])")
_STRIKE = re.compile(r"~~(?=\S)([^<>\n]+?)(?<=\S)~~")
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.M)
_SLOT = re.compile("\x00(\\d+)\x00")


def escape(text: str) -> str:
    """Escape the three characters Telegram's HTML parser treats specially."""
    return html.escape(text, quote=False)


class _Slots:
    """Finished HTML fragments kept out of the way of later substitutions."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def put(self, fragment: str) -> str:
        self.parts.append(fragment)
        return f"\x00{len(self.parts) - 1}\x00"

    def restore(self, text: str) -> str:
        # Fragments may contain slots themselves (a link inside bold): restore until none.
        while _SLOT.search(text):
            text = _SLOT.sub(lambda m: self.parts[int(m[1])], text)
        return text


def _inline(text: str, slots: _Slots) -> str:
    """Render one stretch of non-code text (already free of fenced blocks)."""
    text = text.replace("\x00", "")
    text = _INLINE_CODE.sub(lambda m: slots.put(f"<code>{escape(m[1])}</code>"), text)
    text = escape(text)

    def link(match: re.Match[str]) -> str:
        href = html.escape(html.unescape(match[2]), quote=True)
        return slots.put(f'<a href="{href}">{match[1]}</a>')

    text = _LINK.sub(link, text)
    text = _HEADING.sub(lambda m: f"<b>{m[1]}</b>", text)
    text = _BOLD.sub(lambda m: f"<b>{m[2]}</b>", text)
    text = _STRIKE.sub(lambda m: f"<s>{m[1]}</s>", text)
    text = _ITALIC_STAR.sub(_italic, text)
    return _ITALIC_UNDERSCORE.sub(_italic, text)


def _italic(match: re.Match[str]) -> str:
    return f"<i>{match[1]}</i>"


def markdown_to_html(text: str) -> str:
    """Telegram HTML for `text`; every character of the source is either markup or shown."""
    slots = _Slots()
    out: list[str] = []
    position = 0
    for match in _FENCE.finditer(text):
        out.append(_inline(text[position : match.start()], slots))
        language, code = match[1], match[2].rstrip("\n")
        attribute = f' class="language-{html.escape(language, quote=True)}"' if language else ""
        out.append(slots.put(f"<pre><code{attribute}>{escape(code)}</code></pre>"))
        position = match.end()
    out.append(_inline(text[position:], slots))
    return slots.restore("".join(out)).strip()
