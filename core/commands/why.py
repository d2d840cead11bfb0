"""`/why`: what one of the bot's replies was based on, in plain words.

A person asks about the bot's last reply to them in this chat, or about the reply their
`/why` answers (a Telegram reply, a Discord message reference). Only the person's own
replies in this chat are ever explained, so in a group `/why` tells nothing said
anywhere else: the snapshot of a group reply only names what that group may see
(docs/security.md, "Between chats"), and what it names is read back under the same
rule (facts that are not private, that chat's own messages). The summary and the
profile are only ever said to have been used, never shown (`/memory` shows them).

Admins keep `/why ID` about any reply (`core.commands.admin.why`: audited, in a
private chat only).
"""

from __future__ import annotations

import re

from core.commands import admin
from core.commands.base import Command, CommandContext, UsageError, one_line, private_only
from core.commands.documents import why_lines
from core.documents.texts import WHY_SECTION_TOKENS
from core.i18n import N_, Texts
from core.models import Fact, Message, MessageRole
from core.snapshot import ContextSnapshot
from core.storage.chat_messages import ChatMessageRepository

NO_REPLY_YET = N_("I haven't replied to you in this chat yet.")
NOT_YOURS = N_(
    "That message is not one of my replies to you in this chat, so I can't tell you "
    "what it was based on."
)
NO_RECORD = N_("I kept no record of what that reply was based on.")
ID_FOR_ADMINS = N_(
    "Asking about a reply by its number is for admins. Send /why to ask about my last "
    "reply here, or send /why in answer to one of my replies."
)
NOTHING_KEPT = N_(
    "Nothing I know about you or recalled went into it: only who I am and our recent messages."
)
# Prompt sections as `ContextSnapshot.tokens` names them, in plain words, in prompt order.
SECTIONS = {
    "persona": N_("who I am"),
    "profile": N_("how you like to talk"),
    "facts": N_("what I know about you"),
    "summary": N_("the summary"),
    "recall": N_("what I recalled"),
    "documents": WHY_SECTION_TOKENS,
    "recent": N_("our recent messages"),
}
QUOTE_CHARS = 60
LINE_CHARS = 120

_REPLY_ID = re.compile(r"^[0-9]{1,18}$")


async def why(ctx: CommandContext, args: str) -> None:
    if args and not _REPLY_ID.match(args):
        raise UsageError("no arguments (admins: a reply id)")
    if args:
        if not ctx.is_admin:
            await ctx.channel.send(ctx.texts.gettext(ID_FOR_ADMINS))
        elif not await private_only(ctx):
            await admin.why(ctx, args)
        return
    inbound = ctx.inbound
    chat = ChatMessageRepository(ctx.services.db)
    if inbound.reply_to_message_id is not None:
        reply = await chat.reply(
            ctx.user.id,
            platform=inbound.platform,
            chat_id=inbound.chat_id,
            platform_message_id=inbound.reply_to_message_id,
        )
        missing = NOT_YOURS
    else:
        reply = await chat.latest_reply(
            ctx.user.id,
            platform=inbound.platform,
            chat_id=inbound.chat_id,
            shared_chat=not inbound.is_private,
        )
        missing = NO_REPLY_YET
    if reply is None:
        await ctx.channel.send(ctx.texts.gettext(missing))
    elif not reply.context_snapshot:
        await ctx.channel.send(ctx.texts.gettext(NO_RECORD))
    else:
        await ctx.channel.send(await _explain(ctx, reply))


async def _explain(ctx: CommandContext, reply: Message) -> str:
    snapshot = ContextSnapshot.from_json(reply.context_snapshot or {})
    private, t = ctx.inbound.is_private, ctx.texts
    quote = one_line(reply.content, QUOTE_CHARS)
    when = f"{reply.created_at:%Y-%m-%d %H:%M}"
    lines = [t.gettext('About my reply of {when} UTC ("{quote}"):', when=when, quote=quote)]
    summary = t.gettext("The summary of our earlier conversation.")
    profile = t.gettext("What I noted about how you like to talk.")
    used = [
        *await _facts(ctx, snapshot),
        *([summary] if snapshot.tokens.get("summary") else []),
        *([profile] if snapshot.tokens.get("profile") else []),
        *await _recalled(ctx, snapshot),
        *await _documents(ctx, snapshot),
    ]
    lines += used or [t.gettext(NOTHING_KEPT)]
    if window := len(snapshot.window_ids):
        lines.append(
            t.ngettext(
                "Our last {n} message, yours included.",
                "Our last {n} messages, yours included.",
                window,
            )
            if private
            else t.ngettext(
                "Our last {n} message in this chat, yours included.",
                "Our last {n} messages in this chat, yours included.",
                window,
            )
        )
    lines.append(_tokens(t, snapshot))
    return "\n".join(lines)


async def _facts(ctx: CommandContext, snapshot: ContextSnapshot) -> list[str]:
    if not snapshot.fact_ids:
        return []
    facts = await ctx.services.facts.by_ids(
        ctx.user.id, snapshot.fact_ids, include_private=ctx.inbound.is_private
    )
    t = ctx.texts
    lines = [t.gettext("What I know about you that I used:"), *(f"- {_fact(t, f)}" for f in facts)]
    return lines + _gone(ctx, len(snapshot.fact_ids) - len(facts))


async def _recalled(ctx: CommandContext, snapshot: ContextSnapshot) -> list[str]:
    """The recalled items the snapshot names, as far as they are still kept (and, in a
    shared chat, said in this chat)."""
    if not snapshot.recalled:
        return []
    services, user_id, inbound = ctx.services, ctx.user.id, ctx.inbound
    fact_ids = [r.id for r in snapshot.recalled if r.source == "facts"]
    message_ids = [r.id for r in snapshot.recalled if r.source != "facts"]
    facts = await services.facts.by_ids(user_id, fact_ids, include_private=inbound.is_private)
    messages = [
        m
        for m in await services.messages.by_ids(user_id, message_ids)
        if inbound.is_private
        or (m.shared_chat and m.platform is inbound.platform and m.chat_id == inbound.chat_id)
    ]
    t = ctx.texts
    lines = [t.gettext("What I recalled from earlier:")]
    lines += [
        "- " + t.gettext("noted {date}:", date=f"{f.created_at:%Y-%m-%d}") + " " + _fact(t, f)
        for f in facts
    ]
    for m in messages:
        who = t.gettext("You") if m.role is MessageRole.USER else t.gettext("Me")
        lines.append(f"- {m.created_at:%Y-%m-%d} {who}: {one_line(m.content, LINE_CHARS)}")
    return lines + _gone(ctx, len(snapshot.recalled) - len(facts) - len(messages))


async def _documents(ctx: CommandContext, snapshot: ContextSnapshot) -> list[str]:
    lines, gone = await why_lines(ctx, snapshot)
    return lines + _gone(ctx, gone)


def _gone(ctx: CommandContext, count: int) -> list[str]:
    """Items the snapshot names that are no longer there (forgotten, deleted): said in
    the private chat only, where nothing else can be the reason."""
    if count <= 0 or not ctx.inbound.is_private:
        return []
    return [
        ctx.texts.ngettext(
            "(and {n} more that I no longer keep)", "(and {n} more that I no longer keep)", count
        )
    ]


def _tokens(t: Texts, snapshot: ContextSnapshot) -> str:
    tokens = snapshot.tokens
    parts = ", ".join(
        f"{t.gettext(label)} {tokens[key]}" for key, label in SECTIONS.items() if key in tokens
    )
    line = t.gettext("What I read, in tokens: {parts}", parts=parts)
    if "prompt" in tokens:
        line += "; " + t.gettext("{total} in all", total=tokens["prompt"])
        if "budget" in tokens:
            line += ", " + t.gettext("of the {budget} I may read", budget=tokens["budget"])
    line += "."
    if snapshot.tokens_out is not None:
        line += " " + t.ngettext(
            "My answer: {n} token.", "My answer: {n} tokens.", snapshot.tokens_out
        )
    return line


def _fact(t: Texts, fact: Fact) -> str:
    text = one_line(fact.content, LINE_CHARS)
    if fact.invalid_at is None:
        return text
    return text + " " + t.gettext("(no longer true, I learned since)")


WHY_COMMANDS = [
    Command(
        "why",
        "/why [reply id]",
        N_("What my last reply to you here was based on (or send it in answer to a reply)"),
        why,
    ),
]
