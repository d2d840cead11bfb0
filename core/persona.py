"""The system prompt: the deployment's persona, plus a user's own overrides."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from core.errors import OnethreadError


class PersonaError(OnethreadError):
    """The persona file cannot be read."""


def load_persona(path: Path | None) -> str:
    """The persona text: `CONTEXT_PERSONA_FILE` when set, else the shipped default."""
    try:
        if path is not None:
            return path.read_text(encoding="utf-8").strip()
        return resources.files("config").joinpath("persona.md").read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise PersonaError(f"cannot read the persona file {path}: {exc}") from exc


def system_prompt(persona: str, overrides: dict[str, Any]) -> str:
    """Apply a user's overrides (`instructions`: extra guidance, e.g. "call me Sam")."""
    extra = overrides.get("instructions")
    if isinstance(extra, str) and extra.strip():
        return f"{persona}\n\nThis person asked you to: {extra.strip()}"
    return persona
