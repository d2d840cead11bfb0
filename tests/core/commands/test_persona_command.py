"""`/persona`: a person shapes how the bot talks to them; `/memory` shows it, `/forget
all confirm` clears it, `/start` greets with it."""

from __future__ import annotations

import pytest

from core.commands.base import PRIVATE_ONLY
from core.commands.persona import ASKED, HOW_TO, NOTHING_ASKED
from core.models import User
from core.services import Services
from tests.core.commands import SHIPPED_PERSONA, make_user, run


async def stored(services: Services, user: User) -> dict[str, object]:
    return (await services.users.conversation(user.id)).persona_overrides


async def test_persona_shows_who_i_am_and_what_you_asked(services: Services) -> None:
    user = await make_user(services, "1")
    text = (await run(services, user, "/persona")).text
    assert text.splitlines() == [
        f"I'm onethread. {SHIPPED_PERSONA.description}",
        NOTHING_ASKED,
        HOW_TO,
    ]


async def test_each_form_changes_one_thing_and_reset_undoes_all(services: Services) -> None:
    user = await make_user(services, "1")
    other = await make_user(services, "2")
    for text in (
        "/persona SHORTER",
        "/persona longer",
        "/persona formal",
        "/persona nickname  Sam  O'Neil",
        "/persona note always use   metric units",
    ):
        answer = (await run(services, user, text)).text
        assert answer.startswith(f"Done.\n{ASKED}\n- "), answer
    assert await stored(services, user) == {
        "length": "longer",
        "formality": "formal",
        "nickname": "Sam O'Neil",
        "instructions": "always use metric units",
    }
    await run(services, user, "/persona note off")
    last = (await run(services, user, "/persona casual")).text
    assert last.splitlines()[2:5] == [
        "- replies longer than usual",
        "- a casual way of talking",
        "- I call you Sam O'Neil",
    ]
    assert (await run(services, user, "/persona reset")).text == f"Done.\n{NOTHING_ASKED}\n{HOW_TO}"
    assert await stored(services, user) == {}
    assert await stored(services, other) == {}


@pytest.mark.parametrize(
    "text",
    [
        "/persona taller",
        "/persona shorter please",
        "/persona nickname",
        "/persona nickname <b>Sam</b>",
        "/persona nickname " + "a" * 33,
        "/persona note",
        "/persona note " + "x" * 301,
        "/persona reset now",
    ],
)
async def test_anything_else_gets_the_usage_line(services: Services, text: str) -> None:
    user = await make_user(services, "1")
    [answer] = (await run(services, user, text)).channel.sent
    assert answer.startswith("Usage: /persona [shorter|longer|formal|casual|nickname <name>")
    assert await stored(services, user) == {}


async def test_persona_answers_only_in_private(services: Services) -> None:
    user = await make_user(services, "1")
    for text in ("/persona", "/persona nickname Sam"):
        assert (await run(services, user, text, private=False)).text == PRIVATE_ONLY
    assert await stored(services, user) == {}


async def test_memory_shows_it_forget_all_clears_it_start_greets_with_it(
    services: Services,
) -> None:
    user = await make_user(services, "1", username="Samantha")
    assert (await run(services, user, "/start")).text.startswith("Hi Samantha! I keep one")
    await run(services, user, "/persona nickname Sam")
    await run(services, user, "/persona note call me by my nickname")
    assert (await run(services, user, "/start", private=False)).text.startswith("Hi Sam! ")
    memory = (await run(services, user, "/memory")).text
    assert (
        "How you asked me to talk to you (/persona changes it, /persona reset undoes it):\n"
        '- I call you Sam\n- your note (in private only): "call me by my nickname"'
    ) in memory
    await run(services, user, "/forget all confirm")
    assert await stored(services, user) == {}
    assert "/persona" not in (await run(services, user, "/memory")).text
