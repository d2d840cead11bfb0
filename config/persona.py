"""The bot's persona: who it is and how it talks, read from a TOML file.

    name = "Mira"
    description = "A warm, attentive and honest companion..."
    traits = ["warm", "curious"]
    tone = "friendly and plain-spoken"
    reply_length = "short"            # brief | short | medium | long
    greeting = "Hi {name}! ..."       # /start; {name}: the person's name, or "there"
    language = "match"                # "match" (the person's language) or e.g. "English"

    [[examples]]
    person = "I can't sleep."
    bot = "That's rough. Is something on your mind, or just restless?"

Only `description` is required. What is left out adds nothing to the prompt, so a plain
text file (`.md`, `.txt`) is a persona too: its whole text is the description, the
prompt exactly that text, the greeting the default one. `read_persona(None)` reads the
shipped default (`config/persona.toml`). docs/persona.md describes every field.
"""

from __future__ import annotations

import re
import tomllib
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

DEFAULT_FILE = "persona.toml"
TEXT_SUFFIXES = (".md", ".txt")
DEFAULT_GREETING = (
    "Hi {name}! I keep one conversation with you, wherever you write to me, and I remember "
    "what matters to you between chats. Just talk to me."
)
NAME_PLACEHOLDER = "{name}"
MATCH_LANGUAGE = "match"

Line = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]


class PersonaError(ValueError):
    """The persona file cannot be read, or is not a valid persona (every problem is
    listed)."""


class ReplyLength(StrEnum):
    """How long replies are, shortest first (`/persona shorter` and `longer` move one
    step)."""

    BRIEF = "brief"
    SHORT = "short"
    MEDIUM = "medium"
    LONG = "long"


class Example(BaseModel):
    """One exchange showing how the bot talks."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    person: Text
    bot: Text


class Persona(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    description: Text
    name: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)] | None
    ) = None
    traits: Annotated[list[Line], Field(max_length=20)] = []
    tone: Line | None = None
    reply_length: ReplyLength | None = None
    greeting: Text = DEFAULT_GREETING
    language: Line | None = None
    """`match`: the person's language; otherwise the language every reply is in."""
    examples: Annotated[list[Example], Field(max_length=10)] = []

    @field_validator("greeting")
    @classmethod
    def _only_the_name_placeholder(cls, value: str) -> str:
        other = [p for p in re.findall(r"\{[^{}]*\}", value) if p != NAME_PLACEHOLDER]
        if other:
            raise ValueError(f"the only placeholder is {NAME_PLACEHOLDER}, not {other[0]}")
        return value

    @field_validator("language")
    @classmethod
    def _a_language(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[^\W\d_]+(?:[ -][^\W\d_]+)*", value):
            raise ValueError(f'"{MATCH_LANGUAGE}" or the name of a language, e.g. "English"')
        return value


def read_persona(path: Path | None) -> Persona:
    """The persona in `path` (TOML; `.md` and `.txt`: the whole text is the
    description), or the shipped default when None."""
    where = str(path) if path is not None else f"config/{DEFAULT_FILE}"
    try:
        if path is None:
            text = resources.files("config").joinpath(DEFAULT_FILE).read_text(encoding="utf-8")
        else:
            text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PersonaError(f"cannot read the persona file {where}: {exc}") from exc
    if path is not None and path.suffix.lower() in TEXT_SUFFIXES:
        return _validated(where, {"description": text})
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PersonaError(f"{where} is not valid TOML: {exc}") from exc
    return _validated(where, data)


def _validated(where: str, data: dict[str, object]) -> Persona:
    try:
        return Persona.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(part) for part in error['loc']) or 'persona'}: "
            + str(error["msg"]).removeprefix("Value error, ")
            for error in exc.errors(include_url=False, include_input=False)
        ]
        raise PersonaError(f"{where} is not a valid persona: " + "; ".join(problems)) from None
