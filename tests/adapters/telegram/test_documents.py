"""Documents end to end through real python-telegram-bot: getFile and the file download
of the fake Bot API, `Documents.add` on the real database and the local embedder, and
the prompt the fake model receives when a later message is about a document."""

from __future__ import annotations

import json
from typing import Any

from core.documents import texts as doc_texts
from core.i18n import texts as catalog
from core.llm.transcription import Transcriber
from core.media import texts
from core.models import MessageStatus, MessageType, UserStatus
from core.notices import BANNED
from core.services import Services
from core.storage.documents import DocumentRepository
from fakes.openai_server import FakeOpenAI, HttpError
from fakes.telegram_api import FakeTelegram, mention, wait_until
from tests.adapters.telegram.media_helpers import conversation, media_bot
from tests.core.documents import GARDEN, TAXES
from tests.core.documents.pdfs import make_pdf

MB = 1024 * 1024
BEES = "# Bees\nThe beehive stands behind the shed. Check the honey frames every May.\n"
ENGLISH = catalog("en")


def _document(
    tg: FakeTelegram, data: bytes, name: str, mime: str | None, **fields: Any
) -> dict[str, Any]:
    file_id = tg.add_file(data, folder="documents")
    document = {**tg.file_json(file_id), "file_name": name, **fields}
    if mime is not None:
        document["mime_type"] = mime
    return document


def _kept(name: str, parts: str, *, group: bool = False) -> str:
    template = doc_texts.KEPT_IN_SHARED_CHAT if group else doc_texts.KEPT
    return template.format(filename=name, parts=parts)


def _prompt(fake_llm: FakeOpenAI) -> str:
    """Everything in the last prompt the model received."""
    return json.dumps(fake_llm.chat_requests[-1]["messages"], ensure_ascii=False)


async def test_a_pdf_is_kept_and_a_later_question_recalls_it_into_the_prompt(
    services: Services, tg: FakeTelegram, fake_llm: FakeOpenAI, transcriber: Transcriber
) -> None:
    pdf = make_pdf([GARDEN, TAXES])
    async with media_bot(services, tg, transcriber):
        tg.push_message(user_id=3001, document=_document(tg, pdf, "plans.pdf", "application/pdf"))
        await wait_until(lambda: len(tg.texts(3001)) == 1, within=30)
        asked = len(fake_llm.chat_requests)
        tg.push_message("When is the income tax return due?", user_id=3001)
        await wait_until(lambda: len(tg.texts(3001)) == 2, within=30)

    assert tg.texts(3001)[0] == _kept("plans.pdf", "2 pages, 2 passages")
    assert [c.params["file_id"] for c in tg.calls_to("getFile")] == ["file-1"]
    assert tg.downloads == ["documents/file_1"]
    assert asked == len(fake_llm.chat_requests) - 1  # the document alone asked the model nothing
    prompt = _prompt(fake_llm)
    assert 'from \\"plans.pdf\\", page 2' in prompt and "31st of July" in prompt
    message, question, reply = await conversation(services, 3001)
    assert (message.message_type, message.status) == (MessageType.DOCUMENT, MessageStatus.ANSWERED)
    assert message.content == "[Document: plans.pdf]"
    [kept] = await DocumentRepository(services.db).of_user(message.user_id)
    assert message.attachments == (
        {
            "kind": "document",
            "name": "plans.pdf",
            "mime_type": "application/pdf",
            "size": len(pdf),
            "ref": "file-1",
            "document_id": kept.id,
        },
    )
    assert reply.context_snapshot is not None and reply.context_snapshot["documents"]
    assert question.content == "When is the income tax return due?"


async def test_a_markdown_file_with_a_caption_is_kept_then_the_caption_answered(
    services: Services, tg: FakeTelegram, fake_llm: FakeOpenAI, transcriber: Transcriber
) -> None:
    document = _document(tg, BEES.encode(), "bees.md", "text/markdown")
    async with media_bot(services, tg, transcriber):
        tg.push_message(user_id=3002, document=document, caption="Where is the beehive?")
        await wait_until(lambda: len(tg.texts(3002)) == 2, within=30)
    assert tg.texts(3002) == [
        _kept("bees.md", "1 passage"),
        "echo: [Document: bees.md]\nWhere is the beehive?",
    ]
    assert 'from \\"bees.md\\", section \\"Bees\\"' in _prompt(fake_llm)
    [message, _reply] = await conversation(services, 3002)
    assert message.message_type is MessageType.DOCUMENT
    assert message.attachments[0]["caption"] == "Where is the beehive?"


async def test_a_redelivered_document_changes_nothing(
    services: Services, tg: FakeTelegram, fake_llm: FakeOpenAI, transcriber: Transcriber
) -> None:
    document = _document(tg, GARDEN.encode(), "garden.txt", "text/plain")
    async with media_bot(services, tg, transcriber):
        tg.push_message(user_id=3003, message_id=77, document=document)
        await wait_until(lambda: len(tg.texts(3003)) == 1, within=30)
        last = tg.push_message(user_id=3003, message_id=77, document=document)
        await wait_until(lambda: tg.confirmed_below > last)
        tg.push_message("hello", user_id=3003)
        await wait_until(lambda: len(tg.texts(3003)) == 2, within=30)
    assert tg.texts(3003) == [_kept("garden.txt", "1 passage"), "echo: hello"]
    assert len(tg.calls_to("getFile")) == 1
    messages = await conversation(services, 3003)
    assert [m.message_type for m in messages] == [MessageType.DOCUMENT, *[MessageType.TEXT] * 2]
    assert len(await DocumentRepository(services.db).of_user(messages[0].user_id)) == 1


async def test_oversized_unsupported_and_corrupt_files_get_their_answer(
    services: Services, tg: FakeTelegram, transcriber: Transcriber
) -> None:
    huge = _document(tg, b"x", "big.txt", "text/plain", file_size=11 * MB)
    word = _document(tg, b"PK\x03\x04", "letter.docx", None)
    broken = _document(tg, make_pdf([GARDEN])[:200], "broken.pdf", "application/pdf")
    async with media_bot(services, tg, transcriber):
        tg.push_message(user_id=3004, document=huge)
        await wait_until(lambda: len(tg.texts(3004)) == 1, within=30)
        tg.push_message(user_id=3004, document=word)
        await wait_until(lambda: len(tg.texts(3004)) == 2, within=30)
        tg.push_message(user_id=3004, document=broken)
        await wait_until(lambda: len(tg.texts(3004)) == 3, within=30)
    assert tg.texts(3004) == [
        doc_texts.TOO_LARGE.format(size="11 MB", limit="10 MB"),
        doc_texts.UNSUPPORTED.format(filename="letter.docx"),
        doc_texts.CORRUPT.format(filename="broken.pdf"),
    ]
    assert tg.downloads == ["documents/file_3"]  # the first two refused from metadata
    [stored] = await conversation(services, 3004)
    assert (stored.status, stored.content) == (MessageStatus.FAILED, "[Document]")
    assert await DocumentRepository(services.db).of_user(stored.user_id) == []


async def test_a_document_sent_in_a_group_is_recalled_there_and_privately_not_elsewhere(
    services: Services, tg: FakeTelegram, fake_llm: FakeOpenAI, transcriber: Transcriber
) -> None:
    group_a, group_b = -300501, -300502
    caption = "@onethread_bot keep this"
    question = "@onethread_bot where do the tomatoes go?"
    asked = {"entities": [mention(question)]}
    async with media_bot(services, tg, transcriber):
        tg.push_message(
            user_id=3005,
            chat_id=group_a,
            document=_document(tg, GARDEN.encode(), "garden.txt", "text/plain"),
            caption=caption,
            caption_entities=[mention(caption)],
        )
        await wait_until(lambda: len(tg.texts(group_a)) == 2, within=30)
        tg.push_message(question, user_id=3005, chat_id=group_b, **asked)
        await wait_until(lambda: len(tg.texts(group_b)) == 1, within=30)
        in_b = _prompt(fake_llm)
        tg.push_message(question, user_id=3005, chat_id=group_a, **asked)
        await wait_until(lambda: len(tg.texts(group_a)) == 3, within=30)
        in_a = _prompt(fake_llm)
        tg.push_message("where do the tomatoes go?", user_id=3005)
        await wait_until(lambda: len(tg.texts(3005)) == 1, within=30)
        in_private = _prompt(fake_llm)
    assert tg.texts(group_a)[0] == _kept("garden.txt", "1 passage", group=True)
    assert "south wall" not in in_b and "garden.txt" not in in_b
    assert 'from \\"garden.txt\\"' in in_a and "south wall" in in_a
    assert 'from \\"garden.txt\\"' in in_private


async def test_a_documents_answer_and_a_voice_failure_come_in_the_chosen_language(
    services: Services, tg: FakeTelegram, fake_llm: FakeOpenAI, transcriber: Transcriber
) -> None:
    german = catalog("de")
    voice = {**tg.file_json(tg.add_file(b"OggS" + bytes(50))), "duration": 2}
    fake_llm.push_transcription_fault(HttpError(500))
    async with media_bot(services, tg, transcriber):
        tg.push_message("/language de", user_id=3006, language_code="fr")
        await wait_until(lambda: len(tg.texts(3006)) == 1, within=30)
        tg.push_message(
            user_id=3006,
            language_code="fr",
            document=_document(tg, GARDEN.encode(), "garden.txt", "text/plain"),
        )
        await wait_until(lambda: len(tg.texts(3006)) == 2, within=30)
        tg.push_message(user_id=3006, language_code="fr", voice=voice)
        await wait_until(lambda: len(tg.texts(3006)) == 3, within=30)
    kept = german.gettext(doc_texts.KEPT, filename="garden.txt", parts="1 Abschnitt")
    assert tg.texts(3006)[1:] == [kept, german.gettext(texts.TRANSCRIPTION_FAILED)]
    assert kept != ENGLISH.gettext(doc_texts.KEPT, filename="garden.txt", parts="1 passage")
    assert texts.TRANSCRIPTION_FAILED not in tg.texts(3006)


async def test_a_banned_person_gets_no_document_kept_or_downloaded(
    services: Services, tg: FakeTelegram, transcriber: Transcriber
) -> None:
    async with media_bot(services, tg, transcriber):
        tg.push_message("hello", user_id=3007)
        await wait_until(lambda: len(tg.texts(3007)) == 1, within=30)
        user = await services.users.find("telegram:3007")
        assert user is not None
        await services.users.set_status(user.id, UserStatus.BANNED)
        document = _document(tg, GARDEN.encode(), "garden.txt", "text/plain")
        tg.push_message(user_id=3007, document=document)
        await wait_until(lambda: len(tg.texts(3007)) == 2, within=30)
    assert tg.texts(3007)[1] == BANNED
    assert tg.calls_to("getFile") == []
    assert await DocumentRepository(services.db).of_user(user.id) == []
    assert [m.message_type for m in await conversation(services, 3007)] == [MessageType.TEXT] * 2
