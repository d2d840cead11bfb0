"""The system prompt from a persona and one person's wishes, and the greeting."""

from __future__ import annotations

import pytest

from config.persona import Example, Persona, ReplyLength
from core.i18n import DEFAULT_LANGUAGE, texts
from core.inbound import ChatKind
from core.persona import (
    FORMALITY_SENTENCES,
    LENGTH_SENTENCES,
    Formality,
    Length,
    Overrides,
    greeting,
    system_prompt,
)
from core.services import Services
from fakes.channel import RecordingChannel
from fakes.openai_server import FakeOpenAI
from tests.core.engine_helpers import engine_with, inbound, prompt_text

MIRA = Persona(
    name="Mira",
    description="You are a calm guide.",
    traits=["calm", "curious"],
    tone="gentle",
    reply_length=ReplyLength.SHORT,
    language="match",
    greeting="Hello {name}, I'm Mira.",
    examples=[Example(person="I can't sleep.", bot="Is something on your mind?")],
)
WISHES = Overrides(
    length=Length.LONGER, formality=Formality.FORMAL, nickname="Sam", note="use metric units"
)
FORMALITY_FORMAL = FORMALITY_SENTENCES[Formality.FORMAL]


def test_the_prompt_says_everything_the_persona_and_the_person_set() -> None:
    assert system_prompt(MIRA, WISHES, shared_chat=False).splitlines() == [
        "You are Mira.",
        "You are a calm guide.",
        "Your traits: calm, curious.",
        "Your tone: gentle.",
        LENGTH_SENTENCES[ReplyLength.MEDIUM],  # one step longer than the persona's
        "Answer in the language the person writes in.",
        FORMALITY_FORMAL,
        "Call this person Sam.",
        "This person asked you to: use metric units",
        "How you talk, for example:",
        "Them: I can't sleep.",
        "You: Is something on your mind?",
    ]


def test_in_a_group_the_note_is_left_out_and_the_rest_applies() -> None:
    prompt = system_prompt(MIRA, WISHES, shared_chat=True)
    assert "metric" not in prompt
    assert "Call this person Sam." in prompt and FORMALITY_FORMAL in prompt


def test_a_description_only_persona_is_its_text_exactly() -> None:
    plain = Persona(description="You are Rex, a pirate.\nSpeak like one.")
    assert system_prompt(plain, Overrides(), shared_chat=False) == plain.description
    shorter = system_prompt(plain, Overrides(length=Length.SHORTER), shared_chat=False)
    assert shorter.endswith(LENGTH_SENTENCES[ReplyLength.SHORT])  # from the middle length
    assert system_prompt(
        Persona(description="x", language="Portuguese"), Overrides(), shared_chat=False
    ).endswith("Always answer in Portuguese.")


@pytest.mark.parametrize(
    ("persona_length", "wish", "result"),
    [
        (ReplyLength.BRIEF, Length.SHORTER, ReplyLength.BRIEF),
        (ReplyLength.LONG, Length.LONGER, ReplyLength.LONG),
        (ReplyLength.SHORT, Length.SHORTER, ReplyLength.BRIEF),
    ],
)
def test_length_wishes_move_one_step_within_the_scale(
    persona_length: ReplyLength, wish: Length, result: ReplyLength
) -> None:
    persona = Persona(description="x", reply_length=persona_length)
    prompt = system_prompt(persona, Overrides(length=wish), shared_chat=False)
    assert prompt.splitlines()[-1] == LENGTH_SENTENCES[result]


def test_stored_wishes_are_read_leniently_and_said_in_plain_words() -> None:
    stored = {
        "length": "shorter",
        "formality": "rude",
        "nickname": "  Sam  ",
        "instructions": 42,
        "unknown": "x",
    }
    assert Overrides.read(stored) == Overrides(length=Length.SHORTER, nickname="Sam")
    assert WISHES.described(texts(DEFAULT_LANGUAGE)) == [
        "replies longer than usual",
        "a formal way of talking",
        "I call you Sam",
        'your note (in private only): "use metric units"',
    ]


def test_the_greeting_uses_the_nickname_then_the_name_then_there() -> None:
    assert greeting(MIRA, Overrides(nickname="Sam"), "Samantha") == "Hello Sam, I'm Mira."
    assert greeting(MIRA, Overrides(), "Samantha") == "Hello Samantha, I'm Mira."
    assert greeting(MIRA, Overrides(), None) == "Hello there, I'm Mira."


async def test_a_turn_uses_the_persons_wishes_where_safe_and_the_reply_settings(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    engine = engine_with(services, context={"reply_temperature": 0.3, "reply_max_tokens": 99})
    channel = RecordingChannel()
    for text in ("/persona nickname Sam", "/persona note mention the moon", "hello"):
        await engine.handle(inbound(text, user="p1"), channel)
    await engine.handle(inbound("hi all", user="p1", chat="group", kind=ChatKind.GROUP), channel)

    private, group = fake_llm.chat_requests
    assert "Call this person Sam." in prompt_text(private)
    assert "This person asked you to: mention the moon" in prompt_text(private)
    assert "Call this person Sam." in prompt_text(group)
    assert "moon" not in prompt_text(group)
    assert (private["temperature"], private["max_tokens"]) == (0.3, 99)
