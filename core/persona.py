"""The system prompt: the deployment's persona (`config.persona`), shaped by what one
person asked for (`/persona`, kept in `conversations.persona_overrides`).

What a person asks for applies where it is safe (docs/security.md, "Between chats"):
the length of replies, formality and what to call them apply in every chat, as they
carry nothing the person said; their free-text note applies only in their private
chat, as it may say anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from config.persona import (
    MATCH_LANGUAGE,
    NAME_PLACEHOLDER,
    Persona,
    ReplyLength,
    read_persona,
)
from config.persona import PersonaError as PersonaFileError
from core.errors import OnethreadError
from core.i18n import N_, Texts

NICKNAME_MAX = 32
NOTE_MAX = 300
UNKNOWN_NAME = "there"
"""What `{name}` in the greeting becomes when the person's name is not known."""

LENGTHS = list(ReplyLength)
LENGTH_SENTENCES = {
    ReplyLength.BRIEF: "Keep replies very short: a sentence or two.",
    ReplyLength.SHORT: "Keep replies short, and go deeper only when asked.",
    ReplyLength.MEDIUM: "Reply in a paragraph or two, unless asked for more or less.",
    ReplyLength.LONG: "Give full, detailed replies.",
}


class PersonaError(OnethreadError):
    """The persona file cannot be read or is not a valid persona."""


class Length(StrEnum):
    """A person's wish about the length of replies, one step from the persona's."""

    SHORTER = "shorter"
    LONGER = "longer"


class Formality(StrEnum):
    FORMAL = "formal"
    CASUAL = "casual"


FORMALITY_SENTENCES = {
    Formality.FORMAL: "Speak formally with this person: polite, and without slang.",
    Formality.CASUAL: "Speak casually with this person, as with a friend.",
}
# How `/persona` and `/memory` tell a person their wishes.
_LENGTH_WISHES = {
    Length.SHORTER: N_("replies shorter than usual"),
    Length.LONGER: N_("replies longer than usual"),
}
_FORMALITY_WISHES = {
    Formality.FORMAL: N_("a formal way of talking"),
    Formality.CASUAL: N_("a casual way of talking"),
}


@dataclass(frozen=True, slots=True)
class Overrides:
    """One person's wishes about how the bot talks to them (`/persona`)."""

    length: Length | None = None
    formality: Formality | None = None
    nickname: str | None = None
    """What to call them."""
    note: str | None = None
    """Free text ("instructions" in storage): used in their private chat only."""

    @classmethod
    def read(cls, stored: Mapping[str, Any]) -> Overrides:
        """From `conversations.persona_overrides`; values not understood are ignored."""

        def text(key: str, limit: int) -> str | None:
            value = stored.get(key)
            return (value.strip()[:limit] or None) if isinstance(value, str) else None

        length, formality = stored.get("length"), stored.get("formality")
        return cls(
            length=Length(length) if length in set(Length) else None,
            formality=Formality(formality) if formality in set(Formality) else None,
            nickname=text("nickname", NICKNAME_MAX),
            note=text("instructions", NOTE_MAX),
        )

    def described(self, t: Texts) -> list[str]:
        """What the person asked for, in plain words in their language (for `/persona`
        and `/memory`)."""
        lines = []
        if self.length is not None:
            lines.append(t.gettext(_LENGTH_WISHES[self.length]))
        if self.formality is not None:
            lines.append(t.gettext(_FORMALITY_WISHES[self.formality]))
        if self.nickname is not None:
            lines.append(t.gettext("I call you {nickname}", nickname=self.nickname))
        if self.note is not None:
            lines.append(t.gettext('your note (in private only): "{note}"', note=self.note))
        return lines


def load_persona(path: Path | None) -> Persona:
    """The persona of `CONTEXT_PERSONA_FILE` when set, else the shipped default."""
    try:
        return read_persona(path)
    except PersonaFileError as exc:
        raise PersonaError(str(exc)) from exc


def system_prompt(persona: Persona, overrides: Overrides, *, shared_chat: bool) -> str:
    """The persona's text, then what this person asked for that applies in this chat."""
    lines = [f"You are {persona.name}." if persona.name else "", persona.description]
    if persona.traits:
        lines.append("Your traits: " + ", ".join(persona.traits) + ".")
    if persona.tone:
        lines.append(f"Your tone: {persona.tone}.")
    length = _length(persona.reply_length, overrides.length)
    if length is not None:
        lines.append(LENGTH_SENTENCES[length])
    if persona.language == MATCH_LANGUAGE:
        lines.append("Answer in the language the person writes in.")
    elif persona.language:
        lines.append(f"Always answer in {persona.language}.")
    if overrides.formality is not None:
        lines.append(FORMALITY_SENTENCES[overrides.formality])
    if overrides.nickname is not None:
        lines.append(f"Call this person {overrides.nickname}.")
    if overrides.note is not None and not shared_chat:
        lines.append(f"This person asked you to: {overrides.note}")
    if persona.examples:
        lines.append("How you talk, for example:")
        lines += [f"Them: {e.person}\nYou: {e.bot}" for e in persona.examples]
    return "\n".join(line for line in lines if line)


def greeting(persona: Persona, overrides: Overrides, name: str | None) -> str:
    """The persona's greeting, `{name}` the name the person asked for, else theirs."""
    return persona.greeting.replace(NAME_PLACEHOLDER, overrides.nickname or name or UNKNOWN_NAME)


def _length(base: ReplyLength | None, wish: Length | None) -> ReplyLength | None:
    if wish is None:
        return base
    position = LENGTHS.index(base or ReplyLength.MEDIUM)
    step = -1 if wish is Length.SHORTER else 1
    return LENGTHS[max(0, min(len(LENGTHS) - 1, position + step))]
