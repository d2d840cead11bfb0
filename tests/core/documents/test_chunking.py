"""Chunks fit the embedder's window, overlap, and say where they are."""

from __future__ import annotations

import functools
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from core.documents.chunking import Chunker
from core.documents.parsing import Section


@functools.cache
def chunker() -> Chunker:
    return Chunker.load(max_tokens=50, overlap=10)


def test_long_text_is_cut_into_overlapping_chunks_at_sentence_ends() -> None:
    text = " ".join(f"Sentence {i} is about the garden and its {i} roses." for i in range(60))
    chunks = chunker().chunks([Section(text, page=4, offset=100)])
    assert len(chunks) > 5
    for chunk in chunks:
        assert chunker().count(chunk.text) <= 50
        assert chunk.page == 4
        assert text[chunk.offset - 100 :].startswith(chunk.text)
        assert chunk.text.endswith(".") or chunk is chunks[-1]
    # Consecutive chunks overlap: the next starts before the previous one ends.
    for before, after in itertools.pairwise(chunks):
        assert after.offset < before.offset + len(before.text)
        assert after.offset > before.offset


def test_paragraph_breaks_are_preferred() -> None:
    first = (
        "A paragraph about tea and how to brew it well: fresh water, good leaves, the "
        "right time and temperature. Then pour it. Enjoy."
    )
    assert 25 < chunker().count(first) < 50
    text = first + "\n\n" + " ".join(["Another one about coffee, which is long."] * 12)
    [chunk, *_] = chunker().chunks([Section(text)])
    assert chunk.text == first


def test_the_default_chunks_fit_the_local_models_window() -> None:
    default = Chunker.load()
    text = "Überraschung! " * 400 + "電車の時刻表を確認してください。" * 50
    for chunk in default.chunks([Section(text)]):
        assert default.count(chunk.text) <= default.max_tokens <= 254


def test_sections_are_never_crossed_and_keep_their_heading() -> None:
    sections = [Section("One two three.", heading="A"), Section("Four five.", heading="B")]
    chunks = chunker().chunks(sections)
    assert [(c.text, c.heading) for c in chunks] == [("One two three.", "A"), ("Four five.", "B")]


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=1500), st.integers(0, 10_000))
def test_any_text_gives_chunks_that_fit_and_are_where_they_say(text: str, offset: int) -> None:
    chunks = chunker().chunks([Section(text, offset=offset)])
    for chunk in chunks:
        assert chunk.text and chunk.text == chunk.text.strip()
        assert chunker().count(chunk.text) <= 50
        assert text[chunk.offset - offset :].startswith(chunk.text)
    if chunker().count(text):
        assert chunks  # nothing with words in it is lost
