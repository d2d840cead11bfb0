"""Reading text, Markdown and PDF files, and refusing what cannot be read."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.documents.parsing import Problem, Section, UnreadableError, media_type_of, parse
from core.storage.documents import MediaType
from tests.core.documents.pdfs import make_pdf


@pytest.mark.parametrize(
    ("filename", "given", "expected"),
    [
        ("notes.txt", "text/plain", MediaType.TEXT),
        ("notes.txt", "text/plain; charset=utf-8", MediaType.TEXT),
        ("README.md", "text/plain", MediaType.MARKDOWN),  # clients send .md as text/plain
        ("README.MD", None, MediaType.MARKDOWN),
        ("guide.markdown", "application/octet-stream", MediaType.MARKDOWN),
        ("report.pdf", "application/pdf", MediaType.PDF),
        ("report", "application/pdf", MediaType.PDF),
        ("scan.PDF", "", MediaType.PDF),
        ("photo.jpg", "image/jpeg", None),
        ("letter.docx", None, None),
        ("archive.pdf", "application/zip", None),  # the type the platform saw wins
    ],
)
def test_the_kind_comes_from_the_type_then_the_extension(
    filename: str, given: str | None, expected: MediaType | None
) -> None:
    assert media_type_of(filename, given) == expected


def test_utf8_text_with_a_bom_is_one_section() -> None:
    parsed = parse("Zürich, café — 東京\n".encode("utf-8-sig"), MediaType.TEXT, max_pages=1)
    assert parsed.sections == (Section("Zürich, café — 東京\n"),)
    assert parsed.pages is None


def test_text_in_another_encoding_is_recognised() -> None:
    text = (
        "Das Gespräch über die Größe der Straße war schön. Müller und Schäfer "
        "kamen später, und die Übersetzung war fertig.\n"
    ) * 5
    parsed = parse(text.encode("cp1252"), MediaType.TEXT, max_pages=1)
    assert "Größe der Straße" in parsed.sections[0].text


def test_markdown_is_split_at_headings_outside_code() -> None:
    text = (
        "Intro line.\n\n# Setup\nInstall it.\n```sh\n# not a heading\n```\n## Use it ##\nRun it.\n"
    )
    parsed = parse(text.encode(), MediaType.MARKDOWN, max_pages=1)
    assert [(s.heading, s.offset) for s in parsed.sections] == [
        (None, 0),
        ("Setup", text.index("# Setup")),
        ("Use it", text.index("## Use")),
    ]
    assert "# not a heading" in parsed.sections[1].text
    assert "".join(s.text for s in parsed.sections) == text


def test_a_pdf_gives_its_text_page_by_page() -> None:
    data = make_pdf(["Quarterly report\nRevenue grew", "", "Budget for 2027"])
    parsed = parse(data, MediaType.PDF, max_pages=10)
    assert parsed.pages == 3
    assert [s.page for s in parsed.sections] == [1, 3]  # the blank page has no text
    assert "Revenue grew" in parsed.sections[0].text
    assert "Budget for 2027" in parsed.sections[1].text


@pytest.mark.parametrize(
    ("data", "kind", "problem"),
    [
        (make_pdf(["secret plans"], password="hunter2"), MediaType.PDF, Problem.ENCRYPTED),
        (make_pdf(["cut short"])[:300], MediaType.PDF, Problem.CORRUPT),
        (b"%PDF-1.7\n" + bytes(range(256)) * 4, MediaType.PDF, Problem.CORRUPT),
        (b"just text, named .pdf", MediaType.PDF, Problem.CORRUPT),
        (make_pdf(["", ""]), MediaType.PDF, Problem.EMPTY),
        (bytes(range(256)) * 8, MediaType.TEXT, Problem.NOT_TEXT),
        (b"\x89PNG\r\n\x1a\n" + b"\x00\x01\x02\x03" * 200, MediaType.MARKDOWN, Problem.NOT_TEXT),
        (b" \n\t\n", MediaType.TEXT, Problem.EMPTY),
        (b"", MediaType.MARKDOWN, Problem.EMPTY),
    ],
    ids=[
        "encrypted",
        "truncated",
        "garbage-after-header",
        "no-header",
        "blank-pages",
        "binary-as-text",
        "png-as-markdown",
        "whitespace",
        "empty",
    ],
)
def test_what_cannot_be_read_is_refused_with_its_reason(
    data: bytes, kind: MediaType, problem: Problem
) -> None:
    with pytest.raises(UnreadableError) as caught:
        parse(data, kind, max_pages=10)
    assert caught.value.problem is problem


def test_a_pdf_with_too_many_pages_is_refused_before_its_text_is_read() -> None:
    with pytest.raises(UnreadableError) as caught:
        parse(make_pdf(["a", "b", "c"]), MediaType.PDF, max_pages=2)
    assert caught.value.problem is Problem.TOO_MANY_PAGES
    assert caught.value.pages == 3


def test_a_stray_nul_character_is_dropped() -> None:
    tail = b" three four five six seven" * 10
    parsed = parse(b"one\x00two" + tail, MediaType.TEXT, max_pages=1)
    assert parsed.sections[0].text == "onetwo" + tail.decode()


_PDF = make_pdf(["Quarterly report\nRevenue grew", "Budget for 2027"])


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=600), st.sampled_from(list(MediaType)))
def test_any_bytes_are_read_or_refused_with_a_reason(data: bytes, kind: MediaType) -> None:
    try:
        parsed = parse(data, kind, max_pages=5)
    except UnreadableError:
        return
    assert parsed.sections and all(s.text.strip() for s in parsed.sections)
    assert all("\x00" not in s.text for s in parsed.sections)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(_PDF) - 1), st.integers(0, 255)), max_size=8))
def test_a_damaged_pdf_is_read_or_refused_never_an_error(changes: list[tuple[int, int]]) -> None:
    damaged = bytearray(_PDF)
    for position, value in changes:
        damaged[position] = value
    try:
        parsed = parse(bytes(damaged), MediaType.PDF, max_pages=5)
    except UnreadableError:
        return
    assert parsed.pages is not None and 1 <= parsed.pages <= 5
