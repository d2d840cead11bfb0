"""Reading one's own conversation: `/history` pages back through it, `/search` finds
things in it.

Both show what the person said in private, so both answer only in a private chat. Both
read live and archived messages together (`MessageRepository.history`, `.search`):
archiving never hides anything from the person, and neither does memory: messages
kept out of memory (`/memory off`, `/forget`) are still theirs to read.
"""

from __future__ import annotations

import re

from core.commands.base import Command, CommandContext, UsageError, one_line, private_only
from core.i18n import N_, Texts
from core.models import Message, MessageRole
from core.ports import Button

HISTORY_PAGE = 10
SEARCH_RESULTS = 10
# Each message is shown on one line of at most this many characters, so that a page
# fits one Discord message (2000 characters).
LINE_CHARS = 160
SEARCH_MAX_CHARS = 200
OLDER = N_("Older messages")

NO_HISTORY = N_("We haven't talked yet.")
NOTHING_OLDER = N_("There is nothing older: that was the beginning of our conversation.")
HISTORY_HEADER = N_("Our conversation, newest first (times in UTC):")
OLDER_HEADER = N_("Earlier in our conversation, newest first (times in UTC):")
SEARCH_HEADER = N_('What I found for "{words}", best match first (times in UTC):')
NOTHING_FOUND = N_('I found nothing for "{words}" in our conversation.')

_CURSOR = re.compile(r"^[0-9]{1,18}$")
_WORD = re.compile(r"\w+")


async def history(ctx: CommandContext, args: str) -> None:
    """A page of the conversation, newest first, with a button for the page before it.

    The button sends `/history ID` (the oldest message shown): keyset paging, so a
    page never repeats or skips messages said while the person reads."""
    if args and not _CURSOR.match(args):
        raise UsageError("no arguments, or the id an Older button gives")
    if await private_only(ctx):
        return
    before = int(args) if args else None
    page = await ctx.services.messages.history(
        ctx.user.id, before_id=before, limit=HISTORY_PAGE + 1
    )
    t = ctx.texts
    if not page:
        await ctx.channel.send(t.gettext(NOTHING_OLDER if before is not None else NO_HISTORY))
        return
    shown = page[:HISTORY_PAGE]
    header = t.gettext(HISTORY_HEADER if before is None else OLDER_HEADER)
    older = [Button(t.gettext(OLDER), f"/history {shown[-1].id}")]
    buttons = older if len(page) > HISTORY_PAGE else []
    lines = [header, *(_line(t, message, message.content) for message in shown)]
    await ctx.channel.send("\n".join(lines), buttons=buttons)


async def search(ctx: CommandContext, args: str) -> None:
    """The person's messages and the bot's replies that match the words (full text,
    as `MessageRepository.search` reads them), best first, with their dates."""
    words = " ".join(args.split())
    if not words or len(words) > SEARCH_MAX_CHARS:
        raise UsageError(f"some words, at most {SEARCH_MAX_CHARS} characters")
    if await private_only(ctx):
        return
    language = ctx.inbound.language or ctx.user.locale
    hits = await ctx.services.messages.search(
        ctx.user.id, words, limit=SEARCH_RESULTS, language=language
    )
    t = ctx.texts
    if not hits:
        await ctx.channel.send(t.gettext(NOTHING_FOUND, words=words))
        return
    lines = [t.gettext(SEARCH_HEADER, words=words)]
    lines += [_line(t, hit.message, _around(hit.message.content, words)) for hit in hits]
    await ctx.channel.send("\n".join(lines))


def _line(t: Texts, message: Message, text: str) -> str:
    """`2024-05-01 14:03 You: text`, on one line, cut to `LINE_CHARS`."""
    who = t.gettext("You") if message.role is MessageRole.USER else t.gettext("Me")
    where = " " + t.gettext("(in a group)") if message.shared_chat else ""
    head = f"{message.created_at:%Y-%m-%d %H:%M} {who}{where}: "
    return head + one_line(text, LINE_CHARS - len(head))


def _around(text: str, words: str) -> str:
    """`text` from a little before the first of `words` in it, when that is further in
    than a line shows (the search matches stems too, so it may find none)."""
    flat = " ".join(text.split())
    wanted = {w.lower() for w in _WORD.findall(words) if w.lower() != "or"}
    found = next((m.start() for m in _WORD.finditer(flat) if m[0].lower() in wanted), 0)
    if found < LINE_CHARS // 2:
        return flat
    return "…" + flat[found - LINE_CHARS // 4 :]


HISTORY_COMMANDS = [
    Command(
        "history",
        "/history [older than id]",
        N_("Page back through our conversation"),
        history,
    ),
    Command("search", "/search <words>", N_("Find things we said, with their dates"), search),
]
