"""`/persona`: a person shapes how the bot talks to them.

    /persona                    who the bot is, and what they asked for so far
    /persona shorter | longer   replies one step shorter or longer than the persona's
    /persona formal | casual    how formally the bot talks to them
    /persona nickname <name>    what the bot calls them (`off`: their own name again)
    /persona note <text>        anything else, in their words (`off`: none)
    /persona reset              all of it undone

Kept in `conversations.persona_overrides` (`core.persona.Overrides`), shown by
`/memory`, cleared by `/forget all confirm`. The command answers only in a private
chat (its answer shows the note); what applies in groups is `core.persona`'s to say.
"""

from __future__ import annotations

import re

from core.commands.base import Command, CommandContext, UsageError, one_line, private_only
from core.i18n import N_, Texts
from core.persona import NICKNAME_MAX, NOTE_MAX, Formality, Length, Overrides

NOTHING_ASKED = N_("You haven't asked me for anything yet: I talk to you as I talk to everyone.")
ASKED = N_("How you asked me to talk to you:")
HOW_TO = N_(
    "Change it with /persona shorter, longer, formal, casual, nickname <name>, note <text>, "
    "or reset. How long and how formal my replies are and what I call you count in groups "
    "too; your note only in our private chat."
)
OFF = "off"
DESCRIPTION_CHARS = 300

_NICKNAME = re.compile(rf"^[^\W_][\w' .-]{{0,{NICKNAME_MAX - 1}}}$")
# Storage keys of `Overrides`, by what `/persona` calls them.
_KEYS = {"nickname": "nickname", "note": "instructions"}


async def persona(ctx: CommandContext, args: str) -> None:
    change = _change(args) if args else None
    if args and change is None:
        raise UsageError("shorter, longer, formal, casual, nickname <name>, note <text> or reset")
    if await private_only(ctx):
        return
    users = ctx.services.users
    if change is not None:
        changes, remove = change
        stored = await users.change_persona_overrides(ctx.user.id, changes, remove=remove)
    else:
        stored = (await users.conversation(ctx.user.id)).persona_overrides
    t = ctx.texts
    wishes = Overrides.read(stored).described(t)
    lines = [t.gettext("Done.") if change is not None else _who(t, ctx)]
    if wishes:
        lines += [t.gettext(ASKED), *(f"- {wish}" for wish in wishes)]
    else:
        lines.append(t.gettext(NOTHING_ASKED))
    await ctx.channel.send("\n".join([*lines, t.gettext(HOW_TO)]))


def _change(args: str) -> tuple[dict[str, str], list[str] | None] | None:
    """What `args` sets and which keys it drops (None: all); None when it is no form of
    the command."""
    word, _, rest = args.partition(" ")
    word, rest = word.lower(), " ".join(rest.split())
    if word in set(Length) and not rest:
        return {"length": word}, []
    if word in set(Formality) and not rest:
        return {"formality": word}, []
    if word in _KEYS and rest.lower() == OFF:
        return {}, [_KEYS[word]]
    if word == "nickname" and _NICKNAME.match(rest):
        return {"nickname": rest}, []
    if word == "note" and 0 < len(rest) <= NOTE_MAX:
        return {"instructions": rest}, []
    if word == "reset" and not rest:
        return {}, None
    return None


def _who(t: Texts, ctx: CommandContext) -> str:
    """Who the bot is: the persona file's own words (in the operator's language)."""
    persona = ctx.persona
    description = one_line(persona.description, DESCRIPTION_CHARS)
    if not persona.name:
        return description
    return t.gettext("I'm {name}.", name=persona.name) + " " + description


PERSONA_COMMANDS = [
    Command(
        "persona",
        "/persona [shorter|longer|formal|casual|nickname <name>|note <text>|reset]",
        N_("How I talk to you: shorter, longer, formal, casual, a nickname, a note"),
        persona,
    ),
]
