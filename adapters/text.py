"""Text fit to show on a platform: `clean` is applied to everything the adapters send.

Model output can hold characters that no chat shows and that platforms refuse or
mishandle: NUL and the other C0/C1 control characters (a model echoing binary data, a
server's stray escape sequences), lone UTF-16 surrogates (a local server that splits
an emoji between two streamed deltas as JSON escapes), and non-characters such as
U+FFFE. Newlines and tabs stay; so does everything visible, emoji sequences included
(zero-width joiners, variation selectors and tag characters are format characters,
not control characters).
"""

from __future__ import annotations

import re

_LINE_BREAK = re.compile("\r\n?")
_SURROGATE = re.compile("[\ud800-\udfff]")
_NONCHARACTERS = "".join(
    chr(plane + last) for plane in range(0, 0x110000, 0x10000) for last in (0xFFFE, 0xFFFF)
)
_UNSHOWABLE = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f\ufdd0-\ufdef{_NONCHARACTERS}]")


def clean(text: str) -> str:
    """`text` without control characters but newline and tab, with line breaks as
    "\\n", without lone surrogates and without non-characters."""
    if _SURROGATE.search(text):
        # A pair that arrived as two code points becomes the character it encodes;
        # what is left alone (unpaired) cannot be encoded for sending, and is dropped.
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "ignore")
    return _UNSHOWABLE.sub("", _LINE_BREAK.sub("\n", text))
