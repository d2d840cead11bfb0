"""`/broadcast`: queue a text for every user, follow its progress, cancel it.

    /broadcast <text>       queue it; the `broadcast` job sends it (core/jobs/broadcast.py)
    /broadcast status [n]   broadcast n, or the latest ones
    /broadcast cancel <n>   stop it at the next recipient

The command answers at once: the text is queued, and when this process runs jobs the
job starts in the background right away; otherwise (or when it is busy) the next
scheduled run takes it. A text whose first word is `status` or `cancel` (lowercase) is
read as the subcommand, so a mistyped subcommand is never sent to everyone.

Audit rows: `broadcast` when queued (the start; `broadcast_done`, the end, is the
job's), `broadcast_cancel` (the end of a cancelled one), `broadcast_status`. Never the
text itself.
"""

from __future__ import annotations

import re
from datetime import datetime

from core.commands.admin import audit
from core.commands.base import Command, CommandContext, UsageError
from core.jobs.broadcast import BroadcastJob
from core.storage.broadcasts import Broadcast, BroadcastRepository

BROADCAST_MAX_CHARS = 4000
RECENT = 5
PREVIEW_CHARS = 80

_ID = re.compile(r"^\d{1,18}$")
_SUBCOMMAND = re.compile(r"^(status|cancel)(?:\s+(.*))?$", re.DOTALL)


async def broadcast(ctx: CommandContext, args: str) -> None:
    subcommand = _SUBCOMMAND.match(args)
    if subcommand is None:
        await _queue(ctx, args)
        return
    word, rest = subcommand[1], (subcommand[2] or "").strip()
    if word == "status":
        await _status(ctx, _number(rest) if rest else None)
    else:
        await _cancel(ctx, _number(rest))


def _number(text: str) -> int:
    if not _ID.match(text):
        raise UsageError("a broadcast number")
    return int(text)


async def _queue(ctx: CommandContext, text: str) -> None:
    if not text:
        raise UsageError("give the text to send")
    if len(text) > BROADCAST_MAX_CHARS:
        await ctx.channel.send(
            f"A broadcast is at most {BROADCAST_MAX_CHARS} characters; this one has {len(text)}."
        )
        return
    services = ctx.services
    platforms = list(services.messengers)
    if not platforms:
        await audit(ctx, "broadcast", chars=len(text), queued=False)
        await ctx.channel.send("This process reaches no platform, so it cannot broadcast.")
        return
    inbound = ctx.inbound
    source = f"{inbound.platform.value}:{inbound.chat_id}:{inbound.message_id}"
    repository = BroadcastRepository(services.db)
    # The same command delivered again (an outage cut its first run short) queues
    # nothing more.
    queued = await repository.queued_by(source)
    if queued is None:
        async with services.db.transaction() as conn:
            queued = await repository.queue(
                text,
                admin_id=ctx.user.id,
                platforms=platforms,
                at=services.clock(),
                source=source,
                conn=conn,
            )
            await audit(
                ctx,
                "broadcast",
                conn=conn,
                broadcast=queued.id,
                chars=len(text),
                recipients=queued.total,
                platforms=[p.value for p in platforms],
            )
    await ctx.channel.send(
        f"Broadcast #{queued.id} queued for about {_people(queued.total)};"
        f" /broadcast status {queued.id} shows its progress."
    )
    if services.jobs is not None and BroadcastJob.name in services.jobs.names():
        services.jobs.start(BroadcastJob.name)


async def _status(ctx: CommandContext, broadcast_id: int | None) -> None:
    repository = BroadcastRepository(ctx.services.db)
    if broadcast_id is None:
        latest = await repository.recent(RECENT)
        await audit(ctx, "broadcast_status", listed=len(latest))
        lines = [_summary(b) for b in latest] or ["No broadcast yet."]
        await ctx.channel.send("\n".join(lines))
        return
    found = await repository.get(broadcast_id)
    await audit(ctx, "broadcast_status", broadcast=broadcast_id, found=found is not None)
    if found is None:
        await ctx.channel.send(f"No broadcast #{broadcast_id}.")
        return
    text = found.text.replace("\n", " ")
    preview = text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"
    times = [f"Queued by user {found.admin_id}"]
    if found.started_at is not None:
        times.append(f"started {_at(found.started_at)}")
    if found.finished_at is not None:
        times.append(f"ended {_at(found.finished_at)}")
    await ctx.channel.send(f"{_summary(found)}\n{', '.join(times)}\nText: {preview}")


async def _cancel(ctx: CommandContext, broadcast_id: int) -> None:
    services = ctx.services
    repository = BroadcastRepository(services.db)
    async with services.db.transaction() as conn:
        cancelled = await repository.cancel(broadcast_id, at=services.clock(), conn=conn)
        if cancelled is not None:
            await audit(
                ctx,
                "broadcast_cancel",
                conn=conn,
                broadcast=broadcast_id,
                sent=cancelled.sent,
                failed=cancelled.failed,
                total=cancelled.total,
            )
    if cancelled is not None:
        await ctx.channel.send(
            f"Broadcast #{broadcast_id} cancelled: {cancelled.sent} sent,"
            f" {cancelled.failed} failed of about {cancelled.total}."
        )
        return
    found = await repository.get(broadcast_id)
    status = None if found is None else found.status.value
    await audit(ctx, "broadcast_cancel", broadcast=broadcast_id, status=status)
    if found is None:
        await ctx.channel.send(f"No broadcast #{broadcast_id}.")
    else:
        await ctx.channel.send(f"Broadcast #{broadcast_id} is already {found.status}.")


def _summary(b: Broadcast) -> str:
    return (
        f"#{b.id} {b.status}: {b.sent} sent, {b.failed} failed of about {b.total},"
        f" queued {_at(b.created_at)}"
    )


def _at(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def _people(count: int) -> str:
    return "1 person" if count == 1 else f"{count} people"


BROADCAST_COMMANDS = [
    Command(
        "broadcast",
        "/broadcast <text> | status [n] | cancel <n>",
        "Message every user (in the background)",
        broadcast,
        admin=True,
    ),
]
