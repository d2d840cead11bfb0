"""`clean`: what no chat shows goes, every visible character and emoji stays."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.text import clean
from tests.adapters.text_cases import unshowable

NONCHARACTERS = ["\ufdd0", "\ufdef", "\ufffe", "\uffff", "\U0001fffe", "\U0010ffff"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a\x00b\x00", "ab"),
        ("one\r\ntwo\rthree\n\tfour", "one\ntwo\nthree\n\tfour"),
        ("\x1b[31mred\x1b[0m \x7f\x85\x9b", "[31mred[0m "),
        ("x" + "".join(NONCHARACTERS) + "y", "xy"),
        # A pair that came as two code points is the emoji; halves alone go.
        ("\ud83d\ude00 \ud83d \ude00!", "😀  !"),
    ],
)
def test_cleaning(text: str, expected: str) -> None:
    assert clean(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "👩‍👩‍👧 👍🏽 1️⃣ 🏴󠁧󠁢󠁳󠁣󠁴󠁿 🇺🇦",  # joiners, modifiers, keycaps, tag and flag sequences
        "שלום עולם \u200f, zero\u200bwidth, soft\u00adhyphen, \ufeffbom",
        "<b>&amp;</b> ```py\n\tcode\n```\u2028",
    ],
)
def test_visible_text_and_emoji_are_kept(text: str) -> None:
    assert clean(text) == text


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(codec=None) | st.sampled_from("\r\n\x00\ud83d\ude00")))
def test_cleaned_text_holds_only_showable_characters(text: str) -> None:
    cleaned = clean(text)
    assert not [c for c in cleaned if unshowable(c) or c == "\r"]
    cleaned.encode("utf-8")  # sendable: no surrogate is left
    assert clean(cleaned) == cleaned
    if not any(unicodedata.category(c) == "Cs" or c == "\r" for c in text):
        # Nothing else is touched: the characters that stay stay in order.
        assert cleaned == "".join(c for c in text if not unshowable(c))
