"""A document's text, from the bytes of a text, Markdown or PDF file.

PDF text comes from pypdf (pure Python, well kept); plain text is UTF-8 or, failing
that, whatever encoding charset-normalizer recognises. What cannot be read is refused
with a reason (`UnreadableError`), never half-read: a damaged PDF, one locked by a password,
a file without text (a scanned PDF is pictures of pages), or bytes that are not text.
Parsing is CPU-bound: callers run it off the event loop.
"""

from __future__ import annotations

import codecs
import io
import logging
import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath

import charset_normalizer
from pypdf import PdfReader

from core.errors import OnethreadError
from core.storage.documents import MediaType

logger = logging.getLogger(__name__)

# Media types platforms give these files, parameters (`; charset=utf-8`) removed.
_MEDIA_TYPES = {
    "text/plain": MediaType.TEXT,
    "text/markdown": MediaType.MARKDOWN,
    "text/x-markdown": MediaType.MARKDOWN,
    "application/pdf": MediaType.PDF,
    "application/x-pdf": MediaType.PDF,
}
_EXTENSIONS = {
    ".txt": MediaType.TEXT,
    ".text": MediaType.TEXT,
    ".md": MediaType.MARKDOWN,
    ".markdown": MediaType.MARKDOWN,
    ".pdf": MediaType.PDF,
}
# Types that say nothing about the content: the file name's extension decides.
_UNSPECIFIC = {"", "application/octet-stream", "binary/octet-stream"}
# A PDF's header may follow up to this much junk (PDF 32000-1, annex H.3).
_PDF_HEADER_WITHIN = 1024
# Text with more control characters than this share is binary data, not text.
_MAX_CONTROL_SHARE = 0.01
_ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t#]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


class Problem(StrEnum):
    UNSUPPORTED = "unsupported"
    CORRUPT = "corrupt"
    ENCRYPTED = "encrypted"
    NOT_TEXT = "not_text"
    EMPTY = "empty"
    TOO_MANY_PAGES = "too_many_pages"


class UnreadableError(OnethreadError):
    """The file cannot be kept; `problem` says why (`pages`: for TOO_MANY_PAGES)."""

    def __init__(self, problem: Problem, detail: str = "", *, pages: int = 0) -> None:
        super().__init__(f"{problem.value}: {detail}" if detail else problem.value)
        self.problem = problem
        self.pages = pages


@dataclass(frozen=True, slots=True)
class Section:
    """A stretch of a document's text and where it is: `page` (PDF, from 1), the
    Markdown `heading` it is under, `offset`: where it starts in the page's (PDF) or the
    file's text."""

    text: str
    page: int | None = None
    heading: str | None = None
    offset: int = 0


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    media_type: MediaType
    sections: tuple[Section, ...]
    pages: int | None


def media_type_of(filename: str, media_type: str | None) -> MediaType | None:
    """Which kind of document a file is, by the type the platform gave and else by its
    name's extension; None for a kind we do not keep."""
    given = (media_type or "").split(";")[0].strip().lower()
    if given not in _UNSPECIFIC:
        known = _MEDIA_TYPES.get(given)
        # Some clients send Markdown as text/plain: the extension is more precise then.
        if known is MediaType.TEXT:
            return _EXTENSIONS.get(PurePosixPath(filename.lower()).suffix, MediaType.TEXT)
        return known
    return _EXTENSIONS.get(PurePosixPath(filename.lower()).suffix)


def parse(data: bytes, media_type: MediaType, *, max_pages: int) -> ParsedDocument:
    """The document's text in sections; raises `UnreadableError`."""
    if media_type is MediaType.PDF:
        return _pdf(data, max_pages=max_pages)
    text = _decode(data)
    markdown = media_type is MediaType.MARKDOWN
    sections = _markdown_sections(text) if markdown else (Section(text),)
    if not any(s.text.strip() for s in sections):
        raise UnreadableError(Problem.EMPTY)
    return ParsedDocument(media_type, sections, None)


def _decode(data: bytes) -> str:
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        match = charset_normalizer.from_bytes(data).best()
        if match is None:
            raise UnreadableError(Problem.NOT_TEXT, "no text encoding fits") from None
        text = str(match)
    controls = sum(1 for ch in text if unicodedata.category(ch) == "Cc" and ch not in "\t\n\r\f\v")
    if text and controls > len(text) * _MAX_CONTROL_SHARE:
        raise UnreadableError(Problem.NOT_TEXT, f"{controls} control characters")
    return _clean(text)


def _clean(text: str) -> str:
    """What PostgreSQL's text can hold: no NUL characters."""
    return text.replace("\x00", "")


def _markdown_sections(text: str) -> tuple[Section, ...]:
    """Split at ATX headings (`# Title`) outside fenced code; each section starts with
    its heading line and is named by it."""
    sections: list[Section] = []
    heading: str | None = None
    start = 0
    position = 0
    fenced = False
    for line in text.splitlines(keepends=True):
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and (match := _ATX_HEADING.match(line.rstrip("\r\n"))):
            if text[start:position].strip():
                sections.append(Section(text[start:position], heading=heading, offset=start))
            heading = _one_line(match[2])
            start = position
        position += len(line)
    if text[start:].strip():
        sections.append(Section(text[start:], heading=heading, offset=start))
    return tuple(sections)


def _one_line(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _pdf(data: bytes, *, max_pages: int) -> ParsedDocument:
    if b"%PDF-" not in data[:_PDF_HEADER_WITHIN]:
        raise UnreadableError(Problem.CORRUPT, "no PDF header")
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            # A PDF locked only against editing opens with the empty password.
            try:
                opened = bool(reader.decrypt(""))
            except Exception as exc:  # e.g. AES without the optional crypto package
                raise UnreadableError(Problem.ENCRYPTED, type(exc).__name__) from exc
            if not opened:
                raise UnreadableError(Problem.ENCRYPTED, "needs a password")
        pages = len(reader.pages)
        if pages > max_pages:
            raise UnreadableError(Problem.TOO_MANY_PAGES, f"{pages} pages", pages=pages)
        texts = [_clean(page.extract_text() or "") for page in reader.pages]
    except UnreadableError:
        raise
    except Exception as exc:
        # pypdf raises many kinds of error on damaged files (PdfReadError, but also
        # ValueError, KeyError, ...): every one means the same to the person.
        logger.info("unreadable PDF: %s", type(exc).__name__)
        raise UnreadableError(Problem.CORRUPT, type(exc).__name__) from exc
    if pages == 0:
        raise UnreadableError(Problem.EMPTY, "no pages")
    sections = tuple(
        Section(text, page=number) for number, text in enumerate(texts, start=1) if text.strip()
    )
    if not sections:
        raise UnreadableError(Problem.EMPTY, "no text on any page")
    return ParsedDocument(MediaType.PDF, sections, pages)
