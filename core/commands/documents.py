"""`/documents` lists the documents a person sent to be remembered; `/forget document N`
(dispatched here by `core.commands.user.forget`) drops one. Both answer only in a
private chat: a group would see the names of every document, from every chat.
"""

from __future__ import annotations

import logging

from core.commands.base import Command, CommandContext, no_arguments, private_only
from core.documents import texts
from core.documents.service import day, describe_parts, file_size
from core.i18n import N_
from core.models import SharedChat
from core.snapshot import ContextSnapshot
from core.storage.documents import DocumentRepository

logger = logging.getLogger(__name__)


def _repository(ctx: CommandContext) -> DocumentRepository:
    return DocumentRepository(ctx.services.db)


async def documents(ctx: CommandContext, args: str) -> None:
    """Numbered oldest first: the numbers `/forget document N` takes."""
    no_arguments(args)
    if await private_only(ctx):
        return
    kept = await _repository(ctx).of_user(ctx.user.id)
    t = ctx.texts
    if not kept:
        await ctx.channel.send(t.gettext(texts.NO_DOCUMENTS))
        return
    limit = ctx.services.settings.limits.documents_per_person
    lines = [t.gettext(texts.LIST_HEADER, count=len(kept), limit=limit)]
    lines += [
        t.gettext(
            texts.LIST_LINE,
            number=number,
            filename=document.filename,
            size=file_size(document.size_bytes),
            parts=t.say(describe_parts(document)),
            date=day(document),
            where=t.gettext(texts.LIST_IN_GROUP) if document.shared_chat else "",
        )
        for number, document in enumerate(kept, start=1)
    ]
    lines.append(t.gettext(texts.LIST_FOOTER))
    await ctx.channel.send("\n".join(lines))


async def forget_document(ctx: CommandContext, number: int) -> None:
    """Forget the document `/documents` lists as `number`, with all its chunks. The
    caller has checked the chat is private."""
    repository = _repository(ctx)
    kept = await repository.of_user(ctx.user.id)
    t = ctx.texts
    if not kept:
        await ctx.channel.send(t.gettext(texts.NO_DOCUMENT_TO_FORGET))
        return
    if not 1 <= number <= len(kept):
        listed = t.say(texts.documents(len(kept)))
        await ctx.channel.send(t.gettext(texts.NO_SUCH_DOCUMENT, number=number, listed=listed))
        return
    deleted = await repository.delete(ctx.user.id, kept[number - 1].id)
    if deleted is None:
        await ctx.channel.send(t.gettext(texts.DOCUMENT_GONE))
        return
    logger.info("user %s forgot document %s", ctx.user.id, deleted.id)
    await ctx.channel.send(t.gettext(texts.FORGOT_DOCUMENT, filename=deleted.filename))


async def why_lines(ctx: CommandContext, snapshot: ContextSnapshot) -> tuple[list[str], int]:
    """For `/why`: the passages of the person's documents a reply used, by document and
    page (or section), as far as they are still kept and may be named in this chat; and
    how many are no longer kept (or not to be named here)."""
    if not snapshot.documents:
        return [], 0
    inbound = ctx.inbound
    chat = None if inbound.is_private else SharedChat(inbound.platform, inbound.chat_id)
    sources = await _repository(ctx).sources(
        ctx.user.id, [d.chunk_id for d in snapshot.documents], shared_chat=chat
    )
    t = ctx.texts
    lines = []
    for source in sources:
        if source.page is not None:
            where = t.gettext(texts.WHY_PAGE, page=source.page)
        elif source.heading:
            where = t.gettext(texts.WHY_SECTION, heading=source.heading)
        else:
            where = ""
        line = t.gettext(texts.WHY_SOURCE, filename=source.filename, where=where)
        if line not in lines:
            lines.append(line)
    gone = len(snapshot.documents) - len(sources)
    return ([t.gettext(texts.WHY_HEADER), *lines] if lines else []), gone


DOCUMENT_COMMANDS = [
    Command("documents", "/documents", N_("The documents you sent me to remember"), documents),
]
