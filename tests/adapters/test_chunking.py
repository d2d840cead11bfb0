from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.chunking import MAX_LANGUAGE_TAG, split_message


def test_short_text_is_one_chunk() -> None:
    assert split_message("hello", 100) == ["hello"]


def test_prefers_paragraph_then_sentence_boundaries() -> None:
    text = "A" * 60 + ".\n\n" + "B" * 60 + ". " + "C" * 30 + "."
    assert split_message(text, 100) == ["A" * 60 + ".", "B" * 60 + ". " + "C" * 30 + "."]
    sentences = "First sentence here. Second one is here. Third one."
    assert split_message(sentences, 45) == [
        "First sentence here. Second one is here.",
        "Third one.",
    ]


def test_code_blocks_are_closed_and_reopened() -> None:
    code = "\n".join(f"print({i})" for i in range(40))
    text = f"Intro.\n\n```python\n{code}\n```\nOutro."
    chunks = split_message(text, 120)
    assert all(len(c) <= 120 for c in chunks)
    assert all(c.count("```") % 2 == 0 for c in chunks)
    assert all(c.startswith("```python") for c in chunks[1:-1])
    # No line of code was cut in two.
    lines = [line for c in chunks for line in c.split("\n") if line.startswith("print(")]
    assert lines == [f"print({i})" for i in range(40)]


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        # A fence line longer than the limit (text glued to the backticks): reopening
        # the whole line in every chunk never made progress.
        ("```" + "ab" * 100 + "\n" + "b " * 300, 40),
        # At the smallest limit, the reopened fence's own line break was a cut point.
        ("```python\n" + "x = 1\n" * 40, 32),
    ],
)
def test_odd_fences_still_split_into_fitting_chunks(text: str, limit: int) -> None:
    chunks = split_message(text, limit)
    assert all(len(chunk) <= limit for chunk in chunks)
    assert _content("\n".join(chunks)) == _content(text)


def test_a_long_fence_line_is_reopened_by_its_language_tag_only() -> None:
    text = "```python print('this line goes on') " + "y = 2\n" * 30
    chunks = split_message(text, 60)
    assert all(chunk.startswith("```python\n") for chunk in chunks[1:])


def test_limit_must_be_sensible() -> None:
    with pytest.raises(ValueError):
        split_message("text", 10)


@settings(max_examples=200, deadline=None)
@given(
    text=st.lists(
        st.sampled_from(
            ["ab", "b", " ", ". ", "!", "?", "\n", "\n\n", "```", "```python\n", "ü日"]
        ),
        max_size=600,
    ).map("".join),
    limit=st.integers(min_value=40, max_value=400),
)
def test_chunks_fit_and_keep_every_word(text: str, limit: int) -> None:
    chunks = split_message(text, limit)
    assert all(len(chunk) <= limit for chunk in chunks)
    # Nothing is lost: the same characters, but for whitespace and added fences.
    assert _content("\n".join(chunks)) == _content(text)


def _content(text: str) -> str:
    # Fences and their language tags are markup, added again when a block is split.
    return re.sub(rf"```[^\s`]{{0,{MAX_LANGUAGE_TAG}}}|\s+", "", text)
