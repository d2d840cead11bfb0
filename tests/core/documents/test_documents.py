"""`Documents.add` and `Documents.recall` on the real database and the local embedder."""

from __future__ import annotations

import dataclasses

import numpy as np

from core.documents import texts
from core.documents.service import DocumentAdded, DocumentRefused, Documents
from core.i18n import texts as catalog
from core.models import Platform, SharedChat
from core.services import Services
from core.storage.documents import DocumentRepository, MediaType
from core.storage.merge import MergeRepository
from tests.conftest import make_settings
from tests.core.commands import make_user
from tests.core.documents import GARDEN, TAXES, keep
from tests.core.documents.pdfs import make_pdf

ENGLISH = catalog("en")


async def _add(
    services: Services,
    user_id: int,
    data: bytes,
    filename: str = "notes.txt",
    media_type: str | None = None,
    *,
    group: str | None = None,
) -> DocumentAdded | DocumentRefused:
    return await Documents(services).add(
        user_id,
        filename=filename,
        media_type=media_type,
        data=data,
        platform=Platform.TELEGRAM,
        chat_id=group or "private",
        shared_chat=group is not None,
    )


def _limited(services: Services, **limits: int) -> Services:
    return dataclasses.replace(services, settings=make_settings(limits=limits))


async def test_a_pdf_is_kept_in_chunks_with_its_pages(services: Services) -> None:
    user = await make_user(services, "1")
    data = make_pdf([GARDEN, "", TAXES])
    added = await _add(services, user.id, data, "plans.pdf", "application/pdf")
    assert isinstance(added, DocumentAdded) and added.new
    document = added.document
    assert (document.filename, document.media_type, document.pages) == (
        "plans.pdf",
        MediaType.PDF,
        3,
    )
    assert document.size_bytes == len(data) and document.chunk_count == 2
    assert ENGLISH.say(added.answer) == texts.KEPT.format(
        filename="plans.pdf", parts="3 pages, 2 passages"
    )
    chunks = await DocumentRepository(services.db).chunks_of_user(user.id)
    assert [(c.position, c.page) for c in chunks] == [(0, 1), (1, 3)]
    assert "tomatoes" in chunks[0].content and "income tax" in chunks[1].content


async def test_markdown_chunks_keep_their_heading(services: Services) -> None:
    user = await make_user(services, "1")
    text = f"# Garden\n{GARDEN}\n\n# Taxes\n{TAXES}\n"
    await _add(services, user.id, text.encode(), "life.md")
    chunks = await DocumentRepository(services.db).chunks_of_user(user.id)
    assert [(c.heading, text[c.char_offset :].startswith(c.content)) for c in chunks] == [
        ("Garden", True),
        ("Taxes", True),
    ]


async def test_the_same_file_twice_is_kept_once(services: Services) -> None:
    user = await make_user(services, "1")
    first = await _add(services, user.id, GARDEN.encode(), "garden.txt")
    again = await _add(services, user.id, GARDEN.encode(), "copy.txt")
    assert isinstance(first, DocumentAdded) and isinstance(again, DocumentAdded)
    assert not again.new and again.document.id == first.document.id
    assert "already" in ENGLISH.say(again.answer) and "garden.txt" in ENGLISH.say(again.answer)
    assert len(await DocumentRepository(services.db).of_user(user.id)) == 1


async def test_a_file_kept_in_private_is_kept_again_for_a_group_without_naming_it(
    services: Services,
) -> None:
    user = await make_user(services, "1")
    private = await _add(services, user.id, GARDEN.encode(), "private-garden.txt")
    shared = await _add(services, user.id, GARDEN.encode(), "garden.txt", group="g1")
    again = await _add(services, user.id, GARDEN.encode(), "again.txt", group="g1")
    other = await _add(services, user.id, GARDEN.encode(), "garden.txt", group="g2")
    assert isinstance(private, DocumentAdded) and isinstance(shared, DocumentAdded)
    assert isinstance(again, DocumentAdded) and isinstance(other, DocumentAdded)
    assert shared.new and other.new and not again.new
    assert "private-garden" not in ENGLISH.say(shared.answer)
    assert again.document.id == shared.document.id
    kept = await DocumentRepository(services.db).of_user(user.id)
    assert sorted(d.filename for d in kept) == ["garden.txt", "garden.txt", "private-garden.txt"]
    # Recalled in the group it was sent to: the group's own copy.
    query = (await services.embedder.embed(["where do the tomatoes go?"]))[0]
    found = await Documents(services).recall(
        user.id, query, shared_chat=SharedChat(Platform.TELEGRAM, "g1")
    )
    assert {p.document_id for p in found} == {shared.document.id}
    # In private every copy may be drawn on, each passage once.
    found = await Documents(services).recall(user.id, query, shared_chat=None)
    assert len(found) == len({p.content for p in found}) == 1


async def test_each_limit_is_refused_with_its_answer_and_nothing_kept(
    services: Services,
) -> None:
    user = await make_user(services, "1")
    limited = _limited(
        services,
        document_max_bytes=4000,
        documents_per_person=2,
        document_max_pages=2,
        document_max_chunks=3,
    )
    big = await _add(limited, user.id, b"word " * 1000)
    assert isinstance(big, DocumentRefused) and big.reason == "too_large"
    assert ENGLISH.say(big.answer) == texts.TOO_LARGE.format(size="5 KB", limit="4 KB")
    pages = await _add(limited, user.id, make_pdf(["a", "b", "c"]), "three.pdf")
    assert isinstance(pages, DocumentRefused) and pages.reason == "too_many_pages"
    assert ENGLISH.say(pages.answer) == texts.TOO_MANY_PAGES.format(
        filename="three.pdf", pages=3, limit=2
    )
    long = " ".join(f"Sentence {i} says something new." for i in range(150))
    too_long = await _add(_limited(services, document_max_chunks=3), user.id, long.encode())
    assert isinstance(too_long, DocumentRefused) and too_long.reason == "too_long"
    assert "at most 3 per document" in ENGLISH.say(too_long.answer)
    for n in range(2):
        assert isinstance(await _add(limited, user.id, f"note {n}".encode()), DocumentAdded)
    full = await _add(limited, user.id, b"one more")
    assert isinstance(full, DocumentRefused) and full.reason == "too_many"
    assert "You have 2 documents with me" in ENGLISH.say(full.answer)
    kept = await DocumentRepository(services.db).of_user(user.id)
    assert [d.size_bytes for d in kept] == [6, 6]


async def test_unreadable_files_are_refused_with_their_reason(services: Services) -> None:
    user = await make_user(services, "1")
    cases = {
        ("photo.jpg", "image/jpeg", b"\xff\xd8\xff"): ("unsupported", texts.UNSUPPORTED),
        ("locked.pdf", None, make_pdf(["x"], password="pw")): ("encrypted", texts.ENCRYPTED),
        ("broken.pdf", None, make_pdf([GARDEN])[:200]): ("corrupt", texts.CORRUPT),
        ("scan.pdf", None, make_pdf([""])): ("empty", texts.EMPTY),
        ("data.txt", None, bytes(range(256)) * 3): ("not_text", texts.NOT_TEXT),
    }
    for (filename, media_type, data), (reason, template) in cases.items():
        refused = await _add(services, user.id, data, filename, media_type)
        assert isinstance(refused, DocumentRefused), filename
        assert (refused.reason, ENGLISH.say(refused.answer)) == (
            reason,
            template.format(filename=filename),
        )
    assert await DocumentRepository(services.db).of_user(user.id) == []


async def test_memory_off_keeps_nothing(services: Services) -> None:
    user = await make_user(services, "1")
    await services.users.switch_memory(user.id, off=True, at=services.clock())
    refused = await _add(services, user.id, GARDEN.encode(), "garden.txt")
    assert isinstance(refused, DocumentRefused) and refused.reason == "memory_off"
    assert ENGLISH.say(refused.answer) == texts.MEMORY_OFF.format(filename="garden.txt")


async def test_a_file_name_is_made_safe_to_show_and_to_prompt(services: Services) -> None:
    user = await make_user(services, "1")
    added = await _add(services, user.id, GARDEN.encode(), "../../etc/evil\nname\u202e.txt")
    assert isinstance(added, DocumentAdded)
    assert added.document.filename == "evil name .txt"
    long = await _add(services, user.id, TAXES.encode(), "x" * 300 + ".md")
    assert isinstance(long, DocumentAdded)
    assert len(long.document.filename) == 100 and long.document.filename.endswith("….md")


async def test_before_download_the_kind_and_size_are_enough_to_refuse(
    services: Services,
) -> None:
    documents = Documents(_limited(services, document_max_bytes=2 * 1024 * 1024))
    assert documents.refuse_before_download("a.pdf", "application/pdf", 1000) is None
    assert documents.refuse_before_download("a.md", None, None) is None
    refused = documents.refuse_before_download("big.pdf", "application/pdf", 3 * 1024 * 1024)
    assert refused is not None and ENGLISH.say(refused.answer) == texts.TOO_LARGE.format(
        size="3 MB", limit="2 MB"
    )
    wrong = documents.refuse_before_download("song.mp3", "audio/mpeg", 10)
    assert wrong is not None and wrong.reason == "unsupported"


async def _query(services: Services, text: str) -> np.ndarray:
    [vector] = await services.embedder.embed([text])
    return vector


async def test_recall_finds_the_passage_about_the_message_and_only_the_persons(
    services: Services,
) -> None:
    ann = await make_user(services, "ann")
    bob = await make_user(services, "bob")
    await keep(services, ann.id, GARDEN, filename="garden.txt")
    await keep(services, ann.id, TAXES, filename="taxes.txt")
    await keep(services, bob.id, GARDEN + " Bob's copy.", filename="bobs.txt")
    documents = Documents(services)
    query = await _query(services, "where should I plant the tomatoes?")
    hits = await documents.recall(ann.id, query, shared_chat=None)
    assert [h.filename for h in hits] == ["garden.txt"]  # taxes are not similar enough
    assert hits[0].similarity >= 0.3
    assert {h.filename for h in await documents.recall(bob.id, query, shared_chat=None)} == {
        "bobs.txt"
    }
    unrelated = await _query(services, "hello, how are you today?")
    assert await documents.recall(ann.id, unrelated, shared_chat=None) == []


async def test_a_document_is_recalled_where_it_may_be(services: Services) -> None:
    """Sent in private: private only. Sent in a group: that group and private."""
    user = await make_user(services, "1")
    await keep(services, user.id, GARDEN, filename="private.txt")
    await keep(services, user.id, GARDEN + " (group copy)", filename="group.txt", group="g1")
    documents = Documents(services)
    query = await _query(services, "where do the tomatoes go in my garden?")

    async def names(chat: SharedChat | None) -> set[str]:
        return {h.filename for h in await documents.recall(user.id, query, shared_chat=chat)}

    assert await names(None) == {"private.txt", "group.txt"}
    assert await names(SharedChat(Platform.TELEGRAM, "g1")) == {"group.txt"}
    assert await names(SharedChat(Platform.TELEGRAM, "g2")) == set()
    assert await names(SharedChat(Platform.DISCORD, "g1")) == set()


async def test_linking_moves_the_documents_and_keeps_a_shared_one_once(
    services: Services,
) -> None:
    kept_user = await make_user(services, "1")
    merged_user = await make_user(services, "2", platform=Platform.DISCORD)
    await keep(services, kept_user.id, GARDEN, filename="garden.txt")
    await keep(services, merged_user.id, GARDEN, filename="garden copy.txt")
    await keep(services, merged_user.id, TAXES, filename="taxes.txt")

    await MergeRepository(services.db).merge(kept_user.id, merged_user.id)

    repository = DocumentRepository(services.db)
    assert [d.filename for d in await repository.of_user(kept_user.id)] == [
        "garden.txt",
        "taxes.txt",
    ]
    chunks = await repository.chunks_of_user(kept_user.id)
    assert [c.content for c in chunks] == [GARDEN, TAXES]
    query = await _query(services, "when is the income tax return due?")
    [hit] = await Documents(services).recall(kept_user.id, query, shared_chat=None)
    assert hit.filename == "taxes.txt"
