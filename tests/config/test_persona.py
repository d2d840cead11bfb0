"""The persona file: TOML validated at start-up with every problem named, a plain text
file as description only, the shipped default."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import SettingsError, load_settings
from config.persona import DEFAULT_GREETING, Example, PersonaError, ReplyLength, read_persona

FULL = """
name = "Mira"
description = "You are a calm guide."
traits = ["calm", "curious"]
tone = "gentle"
reply_length = "long"
greeting = "Hello {name}, I'm Mira."
language = "Portuguese"

[[examples]]
person = "I can't sleep."
bot = "Is something on your mind?"
"""


@pytest.fixture(autouse=True)
def _no_stray_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CONTEXT_PERSONA_FILE", raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_the_shipped_persona_is_valid_toml() -> None:
    persona = read_persona(None)
    assert persona.name == "onethread"
    assert persona.language == "match"
    assert persona.reply_length is ReplyLength.SHORT
    assert "{name}" in persona.greeting


def test_every_field_of_a_toml_persona(tmp_path: Path) -> None:
    path = tmp_path / "mira.toml"
    path.write_text(FULL)
    persona = read_persona(path)
    assert (persona.name, persona.tone, persona.language) == ("Mira", "gentle", "Portuguese")
    assert persona.traits == ["calm", "curious"]
    assert persona.reply_length is ReplyLength.LONG
    assert persona.examples == [Example(person="I can't sleep.", bot="Is something on your mind?")]


@pytest.mark.parametrize("suffix", [".md", ".txt"])
def test_a_text_file_is_the_description_and_nothing_else(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"persona{suffix}"
    path.write_text("You are Rex, a pirate.\nSpeak like one.\n")
    persona = read_persona(path)
    assert persona.description == "You are Rex, a pirate.\nSpeak like one."
    assert persona.name is None and persona.language is None and persona.reply_length is None
    assert persona.greeting == DEFAULT_GREETING


@pytest.mark.parametrize(
    ("content", "problems"),
    [
        ('name = "Mira"', ["description: Field required"]),
        (
            'description = "x"\ndescripton = "typo"\nreply_length = "huge"',
            ["descripton: Extra inputs are not permitted", "reply_length: Input should be"],
        ),
        (
            'description = "x"\ngreeting = "Hi {user}!"\nlanguage = "en_US 2"',
            ["greeting: the only placeholder is {name}, not {user}", 'language: "match" or'],
        ),
        ('description = "x"\n[[examples]]\nperson = "hi"', ["examples.0.bot: Field required"]),
        ('description = "unclosed', ["is not valid TOML"]),
    ],
)
def test_a_bad_persona_names_every_problem(
    tmp_path: Path, content: str, problems: list[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(PersonaError) as raised:
        read_persona(path)
    assert str(raised.value).startswith(str(path))
    for problem in problems:
        assert problem in str(raised.value)


def test_a_bad_persona_file_stops_start_up_with_the_settings_problems(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CONTEXT_PERSONA_FILE", str(tmp_path / "missing.toml"))
    monkeypatch.setenv("CONTEXT_REPLY_TEMPERATURE", "3")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    [persona, temperature] = sorted(raised.value.problems)
    assert persona.startswith("CONTEXT_PERSONA_FILE: cannot read the persona file")
    assert temperature.startswith("CONTEXT_REPLY_TEMPERATURE: ")

    good = tmp_path / "mira.toml"
    good.write_text(FULL)
    monkeypatch.setenv("CONTEXT_PERSONA_FILE", str(good))
    monkeypatch.setenv("CONTEXT_REPLY_TEMPERATURE", "0.4")
    context = load_settings().context
    assert (context.persona_file, context.reply_temperature) == (good, 0.4)
