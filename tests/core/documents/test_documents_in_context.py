"""A kept document is recalled into the prompt of a later message, with its source
named, where it may be (docs/security.md, "Between chats"); the snapshot and `/why`
name what was used. Through the engine, on the real database, the local embedder and
the fake model server."""

from __future__ import annotations

import itertools

from core.documents.service import DocumentAdded, Documents
from core.engine import Engine
from core.inbound import ChatKind
from core.models import MessageRole, Platform, User
from core.services import Services
from core.snapshot import ContextSnapshot
from fakes.channel import RecordingChannel
from fakes.openai_server import FakeOpenAI
from tests.core.documents import keep
from tests.core.documents.pdfs import make_pdf
from tests.core.engine_helpers import engine_with, inbound, prompt_text

GARDEN = (
    "The garden plan. The tomatoes go along the south wall, where they get sun all day. "
    "Basil grows between them to keep pests away."
)
QUESTION = "Where should I plant the tomatoes this year?"
PASSAGE = "tomatoes go along the south wall"
_people = itertools.count(1)


class Person:
    def __init__(self, engine: Engine, services: Services) -> None:
        self.engine = engine
        self.services = services
        self.name = f"doc-person-{next(_people)}"

    async def says(self, text: str, *, group: str | None = None) -> RecordingChannel:
        channel = RecordingChannel()
        await self.engine.handle(
            inbound(
                text,
                user=self.name,
                chat=group or f"{self.name}-private",
                kind=ChatKind.GROUP if group else ChatKind.PRIVATE,
            ),
            channel,
        )
        return channel

    async def user(self) -> User:
        found = await self.services.users.find(f"telegram:{self.name}")
        assert found is not None
        return found


def _engine(services: Services) -> Engine:
    return engine_with(services, limits={"rate_per_minute": 1e6, "rate_burst": 1000})


async def _asks(person: Person, fake_llm: FakeOpenAI, *, group: str | None = None) -> str:
    asked = len(fake_llm.chat_requests)
    await person.says(QUESTION, group=group)
    assert len(fake_llm.chat_requests) == asked + 1
    return prompt_text(fake_llm.chat_requests[-1])


async def test_a_document_is_recalled_with_its_source_and_named_by_why(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    ann = Person(_engine(services), services)
    await ann.says("hello")
    user = await ann.user()
    document = await _keep_pdf(services, user.id)

    prompt = await _asks(ann, fake_llm)
    assert PASSAGE in prompt
    assert 'from "garden.pdf", page 2:' in prompt

    [reply] = await services.messages.history(user.id, limit=1)
    assert reply.role is MessageRole.ASSISTANT and reply.context_snapshot is not None
    snapshot = ContextSnapshot.from_json(reply.context_snapshot)
    assert [d.document_id for d in snapshot.documents] == [document]
    assert snapshot.documents[0].similarity >= 0.3
    assert snapshot.tokens["documents"] > 0

    why = (await ann.says("/why")).last
    assert "From your documents:\n- garden.pdf, page 2" in why
    assert "your documents" in why.splitlines()[-1]

    # Another person asking the same gets nothing of hers.
    bob = Person(ann.engine, services)
    assert PASSAGE not in await _asks(bob, fake_llm)


async def _keep_pdf(services: Services, user_id: int) -> int:
    added = await Documents(services).add(
        user_id,
        filename="garden.pdf",
        media_type="application/pdf",
        data=make_pdf(["Contents", GARDEN]),
        platform=Platform.TELEGRAM,
        chat_id="private",
        shared_chat=False,
    )
    assert isinstance(added, DocumentAdded)
    return added.document.id


async def test_a_private_document_never_reaches_a_group(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    ann = Person(_engine(services), services)
    await ann.says("hello")
    await keep(services, (await ann.user()).id, GARDEN, filename="garden.txt")
    assert PASSAGE in await _asks(ann, fake_llm)
    group_prompt = await _asks(ann, fake_llm, group="-100777")
    assert PASSAGE not in group_prompt and "garden.txt" not in group_prompt


async def test_a_document_sent_in_a_group_is_recalled_there_and_in_private_only(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    ann = Person(_engine(services), services)
    await ann.says("hello")
    await keep(services, (await ann.user()).id, GARDEN, filename="garden.txt", group="-100a")
    assert PASSAGE in await _asks(ann, fake_llm, group="-100a")
    assert PASSAGE in await _asks(ann, fake_llm)
    assert PASSAGE not in await _asks(ann, fake_llm, group="-100b")


async def test_with_memory_off_no_document_is_recalled(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    ann = Person(_engine(services), services)
    await ann.says("hello")
    await keep(services, (await ann.user()).id, GARDEN, filename="garden.txt")
    await ann.says("/memory off")
    assert PASSAGE not in await _asks(ann, fake_llm)
    await ann.says("/memory on")
    assert PASSAGE in await _asks(ann, fake_llm)


async def test_documents_stay_within_their_share_of_the_budget(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    ann = Person(
        engine_with(
            services,
            limits={"rate_per_minute": 1e6, "rate_burst": 1000},
            context={"token_budget": 1000},
        ),
        services,
    )
    await ann.says("hello")
    user = await ann.user()
    for n in range(4):
        await keep(services, user.id, f"{GARDEN} Copy {n}. " + "More about tomatoes. " * 20)
    await _asks(ann, fake_llm)
    [reply] = await services.messages.history(user.id, limit=1)
    assert reply.context_snapshot is not None
    snapshot = ContextSnapshot.from_json(reply.context_snapshot)
    assert 0 < len(snapshot.documents) < 4
    assert 0 < snapshot.tokens["documents"] <= 150  # 15% of 1000


async def test_the_prompt_count_with_documents_is_right(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    """The assembler adds up the tokens it counted per line; with document lines too,
    the sum stays within a few tokens of an exact count of what the model received."""
    ann = Person(_engine(services), services)
    await ann.says("hello")
    user = await ann.user()
    await keep(services, user.id, GARDEN, filename="garden (2027) \u2013 plan.md")
    await keep(services, user.id, "3 tomatoes: 12 plants by the south wall. " + GARDEN)
    await _asks(ann, fake_llm)
    [reply] = await services.messages.history(user.id, limit=1)
    assert reply.context_snapshot is not None
    assert len(reply.context_snapshot["documents"]) == 2
    exact = services.tokens.count_messages(fake_llm.chat_requests[-1]["messages"])
    assert -2 <= reply.context_snapshot["tokens"]["prompt"] - exact <= exact // 50
