"""`/language`: which language the bot's own texts are in for this person.

    /language           the language in use, where it comes from, and the choices
    /language de        German from now on, whatever the platform says
    /language auto      the platform's language again (Telegram's app language,
                        Discord's client language)

The choice is kept as `users.language` (exported with the profile, erased with the
person). It changes the bot's own texts and menus only: the model answers in the
language the person writes in.
"""

from __future__ import annotations

import logging

from core.commands.base import Command, CommandContext, UsageError
from core.i18n import N_, language_name, languages, supported, texts, texts_for

logger = logging.getLogger(__name__)

AUTO = "auto"


async def language(ctx: CommandContext, args: str) -> None:
    choice = args.strip().lower()
    if not choice:
        await ctx.channel.send(_current(ctx))
        return
    code = None if choice == AUTO else supported(choice)
    if choice != AUTO and code is None:
        raise UsageError("a language code from /language, or auto")
    await ctx.services.users.set_language(ctx.user.id, code)
    logger.info("user %s chose language %s", ctx.user.id, code or AUTO)
    platform_tag = ctx.inbound.language or ctx.user.locale
    if code is None:
        t = texts_for(platform_tag)
        await ctx.channel.send(
            t.gettext(
                "I follow your app's language again: {language}.",
                language=language_name(t.language),
            )
        )
        return
    await ctx.channel.send(
        texts(code).gettext(
            "From now on I write to you in {language}. Send /language auto to follow your "
            "app's language again.",
            language=language_name(code),
        )
    )


def _current(ctx: CommandContext) -> str:
    t = ctx.texts
    name = language_name(t.language)
    if ctx.user.language is not None and supported(ctx.user.language) is not None:
        now = t.gettext("I write to you in {language}, as you chose.", language=name)
    else:
        now = t.gettext("I write to you in {language}, your app's language.", language=name)
    choices = ", ".join(f"{code} ({language_name(code)})" for code in languages())
    return "\n".join(
        [
            now,
            t.gettext("Languages I speak: {choices}.", choices=choices),
            t.gettext(
                "Send /language followed by a code to choose one, or /language auto to "
                "follow your app's language."
            ),
        ]
    )


LANGUAGE_COMMANDS = [
    Command(
        "language",
        "/language [code|auto]",
        N_("The language of my messages and menus"),
        language,
    ),
]
