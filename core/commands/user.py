"""Commands every user has: about the bot and their memory (their data as a whole:
`core.commands.personal_data`).

Commands that show or erase personal data answer only in a private chat: in a group,
`/memory` would read one person's facts out to everyone.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from core.commands.base import Command, CommandContext, UsageError, no_arguments, private_only
from core.commands.documents import forget_document
from core.documents.texts import FORGOT_ALL_DOCUMENTS
from core.i18n import N_, Texts
from core.models import MemoryContext, MessageStatus
from core.persona import Overrides, greeting
from core.storage.chat_messages import ChatMessageRepository
from core.storage.documents import DocumentRepository
from core.storage.memory_store import MemoryStore

logger = logging.getLogger(__name__)

# A pending message younger than this is probably still being answered.
RETRY_PENDING_AFTER = timedelta(minutes=1)
# How long `/forget` waits for a memory job run on the person to end (it then forgets
# what the run wrote too).
FORGET_WAIT = timedelta(seconds=15)

START_HINT = N_("Send /help to see what else I can do, /memory to see what I know about you.")
NOTHING_KNOWN = N_("I don't know anything about you yet.")
PERSONA_HINT = N_(
    "How you asked me to talk to you (/persona changes it, /persona reset undoes it):"
)
FORGET_HINT = N_("Send /forget <number> to make me forget one fact, /forget all for everything.")
MEMORY_ON = N_("Memory is on: I learn from what you say. Send /memory off to stop that.")
MEMORY_OFF_SINCE = N_(
    "Memory is off (since {since}): I learn nothing from what you say, and I answer "
    "without what I know about you. Send /memory on to switch it back on."
)
MEMORY_SWITCHED_OFF = N_(
    "Memory is off. From now on I learn nothing from what you say, and I answer without "
    "what I know about you or recall from earlier (I still see our last few messages, so "
    "that the chat makes sense). What you say while it is off is never remembered, not "
    "even after you switch it back on. What I already know stays: /memory shows it, "
    "/forget removes it. Send /memory on to switch it back on."
)
MEMORY_SWITCHED_ON = N_(
    "Memory is on again: I learn from what you say from now on. What you said while it "
    "was off stays forgotten."
)
MEMORY_ALREADY_ON = N_(
    "Memory is already on. Send /memory off to stop me learning from what you say."
)
MEMORY_ALREADY_OFF = N_(
    "Memory is already off (since {since}). Send /memory on to switch it back on."
)
MEMORY_BUSY = N_("I'm updating my memory of you right now. Please send that again in a minute.")
SOURCES_SET_ASIDE = N_(
    "I also set aside the {messages} I learned it from: I won't recall them or learn "
    "from them again"
)
FORGET_ALL_WARNING = N_(
    "This makes me forget everything I learned about you ({facts}, the summary of our "
    "conversation, what I noted about how you like to talk and how you asked me to talk "
    "to you) and deletes our "
    "conversation up to now and the documents you sent me, so that nothing said before "
    "it is remembered or recalled. "
    "It cannot be undone: send /export first if you want a copy.\n"
    "To go ahead, send /forget all confirm"
)
FORGOT_ALL = N_(
    "Done. I forgot everything I had learned about you ({facts}, the summary, what I "
    "noted about how you talk and how you asked me to talk to you) and deleted our "
    "conversation up to now ({messages}). "
    "Nothing said before this is remembered or recalled."
)


async def start(ctx: CommandContext, args: str) -> None:
    """The persona's greeting (with the name the person asked for, if any)."""
    conversation = await ctx.services.users.conversation(ctx.user.id)
    overrides = Overrides.read(conversation.persona_overrides)
    name = ctx.user.display_name or ctx.inbound.display_name
    hint = ctx.texts.gettext(START_HINT)
    await ctx.channel.send(f"{greeting(ctx.persona, overrides, name)}\n{hint}")


async def memory(ctx: CommandContext, args: str) -> None:
    """`/memory` shows what is kept; `/memory on` and `/memory off` switch learning."""
    choice = args.lower()
    if choice not in ("", "on", "off"):
        raise UsageError("on, off, or nothing")
    if await private_only(ctx):
        return
    if choice:
        await _switch_memory(ctx, off=choice == "off")
        return
    await ctx.channel.send(await _memory_report(ctx))


async def _memory_report(ctx: CommandContext) -> str:
    """The facts (numbered as `/forget` counts them), the summary, the profile, how the
    person asked the bot to talk (`/persona`) and whether memory is on."""
    services, user_id, t = ctx.services, ctx.user.id, ctx.texts
    facts = await services.facts.valid(user_id)
    conversation = await services.users.conversation(user_id)
    profile = await MemoryStore(services.db).context(user_id)
    sections = []
    if facts:
        lines = [f"{n}. {fact.content}" for n, fact in enumerate(facts, start=1)]
        sections.append(t.gettext("What I know about you:") + "\n" + "\n".join(lines))
    if conversation.summary:
        sections.append(
            t.gettext("Our conversation so far, in short:") + "\n" + conversation.summary
        )
    if profile is not None and (lines := _profile_lines(t, profile)):
        sections.append("\n".join(lines))
    if wishes := Overrides.read(conversation.persona_overrides).described(t):
        sections.append("\n".join([t.gettext(PERSONA_HINT), *(f"- {wish}" for wish in wishes)]))
    off_since = conversation.memory_off_since
    if not sections and off_since is None:
        return t.gettext(NOTHING_KNOWN)
    if not sections:
        sections.append(t.gettext("I don't know anything about you."))
    else:
        sections.append(t.gettext(FORGET_HINT))
    sections.append(
        t.gettext(MEMORY_ON)
        if off_since is None
        else t.gettext(MEMORY_OFF_SINCE, since=_when(off_since))
    )
    return "\n\n".join(sections)


def _profile_lines(t: Texts, profile: MemoryContext) -> list[str]:
    lines = []
    if profile.communication_style:
        lines.append(t.gettext("How you like to talk:") + " " + profile.communication_style)
    if profile.themes:
        themes = ", ".join(map(str, profile.themes))
        lines.append(t.gettext("What we often talk about:") + " " + themes)
    if profile.insights:
        notes = "\n".join(f"- {insight}" for insight in profile.insights)
        lines.append(t.gettext("What helps me talk with you:") + "\n" + notes)
    return lines


async def _switch_memory(ctx: CommandContext, *, off: bool) -> None:
    services, t = ctx.services, ctx.texts
    switched = await services.users.switch_memory(ctx.user.id, off=off, at=services.clock())
    if switched:
        logger.info("user %s switched memory %s", ctx.user.id, "off" if off else "on")
        await ctx.channel.send(t.gettext(MEMORY_SWITCHED_OFF if off else MEMORY_SWITCHED_ON))
        return
    if not off:
        await ctx.channel.send(t.gettext(MEMORY_ALREADY_ON))
        return
    since = (await services.users.conversation(ctx.user.id)).memory_off_since
    await ctx.channel.send(t.gettext(MEMORY_ALREADY_OFF, since=_when(since)))


def _when(moment: datetime | None) -> str:
    return "?" if moment is None else f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


async def forget(ctx: CommandContext, args: str) -> None:
    """Numbers are positions in `/memory`'s list, which both read from `facts.valid`.

    `/forget all` only warns: forgetting everything deletes the conversation too, so it
    takes `/forget all confirm`. `/forget document N` forgets a document (numbered as
    `/documents` lists them)."""
    words = args.lower().split()
    document = len(words) == 2 and words[0] == "document" and _number(words[1])
    if words not in (["all"], ["all", "confirm"]) and not (document or _number(args)):
        raise UsageError("give a number from /memory, or all")
    if await private_only(ctx):
        return
    if document:
        await forget_document(ctx, int(words[1]))
    elif words == ["all"]:
        valid, invalid = await ctx.services.facts.counts(ctx.user.id)
        facts = _facts(ctx.texts, valid + invalid)
        await ctx.channel.send(ctx.texts.gettext(FORGET_ALL_WARNING, facts=facts))
    elif words == ["all", "confirm"]:
        await _forget_all(ctx)
    else:
        await _forget_one(ctx, int(args))


async def _forget_one(ctx: CommandContext, number: int) -> None:
    services, t = ctx.services, ctx.texts
    facts = await services.facts.valid(ctx.user.id)
    if not 1 <= number <= len(facts):
        await ctx.channel.send(
            t.gettext(
                "There is no fact {number}; /memory lists {count}.", number=number, count=len(facts)
            )
            if facts
            else t.gettext("I don't know anything about you, so there is nothing to forget.")
        )
        return
    fact = facts[number - 1]
    async with services.db.transaction() as tx:
        held = await MemoryStore(services.db).hold(ctx.user.id, wait=FORGET_WAIT, conn=tx)
        set_aside = await services.facts.forget(ctx.user.id, fact.id, conn=tx) if held else None
    if not held:
        await ctx.channel.send(t.gettext(MEMORY_BUSY))
        return
    if set_aside is None:
        await ctx.channel.send(
            t.gettext("That fact is gone already; send /memory to see what I know now.")
        )
        return
    logger.info("user %s forgot fact %s (%s messages set aside)", ctx.user.id, fact.id, set_aside)
    forgotten = t.gettext('Forgotten: "{fact}"', fact=fact.content)
    if set_aside:
        forgotten += ". " + t.gettext(SOURCES_SET_ASIDE, messages=_messages(t, set_aside))
    await ctx.channel.send(forgotten)


async def _forget_all(ctx: CommandContext) -> None:
    services = ctx.services
    store = MemoryStore(services.db)
    async with services.db.transaction() as tx:
        held = await store.hold(ctx.user.id, wait=FORGET_WAIT, conn=tx)
        forgotten = (
            await store.forget_all(ctx.user.id, at=services.clock(), conn=tx) if held else None
        )
        documents = (
            await DocumentRepository(services.db).delete_all(ctx.user.id, conn=tx) if held else 0
        )
    t = ctx.texts
    if forgotten is None:
        await ctx.channel.send(t.gettext(MEMORY_BUSY))
        return
    logger.info(
        "user %s forgot everything: %s facts, %s messages",
        ctx.user.id,
        forgotten.facts,
        forgotten.messages,
    )
    facts, messages = _facts(t, forgotten.facts), _messages(t, forgotten.messages)
    answer = t.gettext(FORGOT_ALL, facts=facts, messages=messages)
    if documents:
        count = t.ngettext("{n} document", "{n} documents", documents)
        answer += " " + t.gettext(FORGOT_ALL_DOCUMENTS, count=count)
    await ctx.channel.send(answer)


def _number(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 6


def _facts(t: Texts, count: int) -> str:
    return t.ngettext("{n} fact", "{n} facts", count)


def _messages(t: Texts, count: int) -> str:
    return t.ngettext("{n} message", "{n} messages", count)


async def retry(ctx: CommandContext, args: str) -> None:
    """Answer the person's latest message in this chat again when it failed (or seems
    stuck); a message said in another chat is that chat's to retry."""
    no_arguments(args)
    inbound = ctx.inbound
    message = await ChatMessageRepository(ctx.services.db).latest_from_user(
        ctx.user.id,
        platform=inbound.platform,
        chat_id=inbound.chat_id,
        shared_chat=not inbound.is_private,
    )
    if message is None or message.status is MessageStatus.ANSWERED:
        await ctx.channel.send(ctx.texts.gettext("There is nothing to retry."))
        return
    stuck = ctx.services.clock() - message.created_at >= RETRY_PENDING_AFTER
    if message.status is MessageStatus.PENDING and not stuck:
        await ctx.channel.send(ctx.texts.gettext("I'm still working on your last message."))
        return
    logger.info("user %s retries message %s", ctx.user.id, message.id)
    await ctx.answer_again(message)


USER_COMMANDS = [
    Command("start", "/start", N_("Say hello and see what I do"), start),
    Command(
        "memory",
        "/memory [on|off]",
        N_("See what I remember about you, or switch memory on/off"),
        memory,
    ),
    Command("forget", "/forget <number|all>", N_("Forget one thing (see /memory) or all"), forget),
    Command("retry", "/retry", N_("Answer your last message again if it failed"), retry),
]
