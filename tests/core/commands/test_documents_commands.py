"""`/documents`, `/forget document N`, `/forget all confirm` and `/export` over a
person's documents."""

from __future__ import annotations

import json

from core.commands.documents import DOCUMENT_COMMANDS
from core.documents import texts
from core.services import Services
from core.storage.documents import DocumentRepository
from tests.core.commands import make_user, run
from tests.core.documents import keep

GARDEN = "The tomatoes go along the south wall. Basil grows between them."
TAXES = "The tax return is due on the 31st of July."


def _repository(services: Services) -> DocumentRepository:
    return DocumentRepository(services.db)


async def test_documents_lists_them_numbered_oldest_first(services: Services) -> None:
    user = await make_user(services, "1")
    other = await make_user(services, "2")
    assert (await run(services, user, "/documents")).text == texts.NO_DOCUMENTS
    first = await keep(services, user.id, GARDEN, filename="garden.txt")
    await keep(services, user.id, TAXES, filename="taxes.md", group="-100g")
    await keep(services, other.id, "Bob's secret plan.", filename="bob.txt")

    listed = (await run(services, user, "/documents")).text.splitlines()

    day = f"{first.created_at:%Y-%m-%d}"
    assert listed == [
        "Your documents (2 of at most 50):",
        f"1. garden.txt: {len(GARDEN)} B, 1 passage, sent {day}",
        f"2. taxes.md: {len(TAXES)} B, 1 passage, sent {day} in a group",
        texts.LIST_FOOTER,
    ]
    # Not in a group: it would read the names of every document out there.
    assert "private chat" in (await run(services, user, "/documents", private=False)).text
    assert (await run(services, user, "/documents now")).text == "Usage: /documents"


async def test_forget_document_drops_that_one_with_its_chunks(services: Services) -> None:
    user = await make_user(services, "1")
    other = await make_user(services, "2")
    await keep(services, user.id, GARDEN, filename="garden.txt")
    await keep(services, user.id, TAXES, filename="taxes.txt")
    await keep(services, other.id, GARDEN, filename="garden.txt")

    assert (await run(services, user, "/forget document 3")).text == (
        texts.NO_SUCH_DOCUMENT.format(number=3, listed="2 documents")
    )
    done = (await run(services, user, "/forget document 1")).text

    assert done == texts.FORGOT_DOCUMENT.format(filename="garden.txt")
    repository = _repository(services)
    assert [d.filename for d in await repository.of_user(user.id)] == ["taxes.txt"]
    assert [c.content for c in await repository.chunks_of_user(user.id)] == [TAXES]
    assert len(await repository.chunks_of_user(other.id)) == 1  # hers are untouched
    assert (await run(services, other, "/forget document 1")).text.startswith("Forgotten")
    assert (await run(services, other, "/forget document 1")).text == (texts.NO_DOCUMENT_TO_FORGET)
    for wrong in ("/forget document", "/forget document x", "/forget document 1 2"):
        assert (await run(services, user, wrong)).text == "Usage: /forget <number|all>"
    assert "private chat" in (await run(services, user, "/forget document 1", private=False)).text


async def test_forget_all_confirm_deletes_the_documents_too(services: Services) -> None:
    user = await make_user(services, "1")
    await keep(services, user.id, GARDEN, filename="garden.txt")
    await keep(services, user.id, TAXES, filename="taxes.txt")
    warning = (await run(services, user, "/forget all")).text
    assert "the documents you sent me" in warning
    assert len(await _repository(services).of_user(user.id)) == 2

    done = (await run(services, user, "/forget all confirm")).text

    assert done.endswith(" " + texts.FORGOT_ALL_DOCUMENTS.format(count="2 documents"))
    assert await _repository(services).of_user(user.id) == []
    assert await _repository(services).chunks_of_user(user.id) == []


async def test_export_holds_the_documents_and_their_text(services: Services) -> None:
    user = await make_user(services, "1")
    other = await make_user(services, "2")
    text = "# Garden\n" + GARDEN + "\n\n# Taxes\n" + TAXES
    await keep(services, user.id, text, filename="life.md", group="-100g")
    await keep(services, other.id, "Bob's secret plan.", filename="bob.txt")

    [(_, data, _)] = (await run(services, user, "/export")).channel.files

    document = json.loads(data)
    [kept] = document["documents"]
    assert (kept["filename"], kept["media_type"], kept["chunk_count"]) == (
        "life.md",
        "text/markdown",
        2,
    )
    assert (kept["shared_chat"], kept["chat_id"], kept["size_bytes"]) == (
        True,
        "-100g",
        len(text),
    )
    assert [(c["position"], c["heading"], c["content"]) for c in kept["chunks"]] == [
        (0, "Garden", "# Garden\n" + GARDEN),
        (1, "Taxes", "# Taxes\n" + TAXES),
    ]
    assert "Bob" not in data.decode()


def test_documents_is_a_user_command() -> None:
    [command] = DOCUMENT_COMMANDS
    assert (command.name, command.admin) == ("documents", False)


async def test_documents_and_forget_document_answer_in_the_persons_language(
    services: Services,
) -> None:
    user = await make_user(services, "1")
    await services.users.set_language(user.id, "ru")
    russian = await services.users.get(user.id)
    assert russian is not None
    first = await keep(services, user.id, GARDEN, filename="garden.txt", group="-100g")
    await keep(services, user.id, TAXES, filename="taxes.md")

    listed = (await run(services, russian, "/documents")).text.splitlines()
    missing = (await run(services, russian, "/forget document 5")).text

    day = f"{first.created_at:%Y-%m-%d}"
    assert listed[1] == f"1. garden.txt: {len(GARDEN)} B, 1 фрагмент, прислан {day} в группе"
    assert listed[0] == "Твои документы (2 из 50 возможных):"
    assert missing == "Документа 5 нет; в списке /documents — 2 документа."
