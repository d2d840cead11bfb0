"""Admin commands: look at the deployment and its users, ban, run jobs (`/broadcast` is
in `core.commands.broadcast`).

Every handler here writes one `admin_audit` row (read-only commands too), with ids,
counts and names in `details` but never anyone's message text. The registry refuses
non-admins before a handler runs, so a refused call writes nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from core.charts import daily_activity_png
from core.commands.base import Command, CommandContext, UsageError
from core.models import Message, MessageRole, User, UserStatus
from core.storage.audit import AuditRepository
from core.storage.database import Connection
from core.storage.directory import Directory
from core.storage.job_runs import JobRunRepository
from core.storage.stats import StatsRepository

logger = logging.getLogger(__name__)

AUDIT_DEFAULT = 20
STATS_CHART_DAYS = 30
AUDIT_MAX = 100

_USER_ID = re.compile(r"^\d{1,18}$")
_USERNAME = re.compile(r"^@[A-Za-z0-9_.]{1,64}$")
_IDENTITY = re.compile(r"^(telegram|discord|console):[A-Za-z0-9_\-.]{1,64}$", re.IGNORECASE)


async def audit(
    ctx: CommandContext,
    action: str,
    *,
    target: int | None = None,
    conn: Connection | None = None,
    **details: Any,
) -> None:
    await AuditRepository(ctx.services.db).record(
        ctx.user.id,
        action,
        target_user_id=target,
        details=details,
        at=ctx.services.clock(),
        conn=conn,
    )


async def find_target(ctx: CommandContext, args: str, action: str) -> User | None:
    """The user `args` names (`42`, `@name`, `platform:id`); a usage error otherwise.

    A lookup that finds no one is still audited (as `action`, with the query).
    """
    if not (_USER_ID.match(args) or _USERNAME.match(args) or _IDENTITY.match(args)):
        raise UsageError("name a user as 42, @name or platform:id")
    user = await ctx.services.users.find(args)
    if user is None:
        await audit(ctx, action, query=args, found=False)
        await ctx.channel.send(f"No user {args}.")
    return user


def _number(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def _pairs(value: Any, key: str = "tokens") -> str:
    """`{"facts": 80}`, `{"facts": {"tokens": 80}}` or `[{"name": "facts", "tokens": 80}]`
    as "facts 80"."""
    if isinstance(value, dict):
        items = [(k, v.get(key) if isinstance(v, dict) else v) for k, v in value.items()]
    elif isinstance(value, list):
        items = [(v.get("name"), v.get(key)) for v in value if isinstance(v, dict)]
    else:
        return _number(value)
    return ", ".join(f"{name} {_number(n)}" for name, n in items)


def _ids(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else _number(value)


def _window(value: Any) -> str:
    if isinstance(value, list) and value:
        return f"{len(value)} messages, ids {value[0]}..{value[-1]}"
    return "none"


def _timings(value: Any) -> str:
    return _pairs(value, "ms")


def _recalled(value: Any) -> str:
    if not isinstance(value, list):
        return _number(value)
    parts = []
    for item in value:
        if isinstance(item, dict):
            kind = item.get("kind") or item.get("source") or item.get("type") or ""
            score = item.get("score", item.get("similarity"))
            parts.append(
                f"{kind} {item.get('id')}".strip()
                + (f" ({_number(score)})" if score is not None else "")
            )
        else:
            parts.append(_number(item))
    return ", ".join(parts) or "none"


def describe_snapshot(message: Message) -> list[str]:
    """A reply's context snapshot in a few lines: ids, scores and counts, never texts.

    Tolerant of the snapshot's shape: known keys get a readable line, other numbers and
    flags are listed as they are; strings and nested values without a known meaning are
    skipped (they might quote the conversation).
    """
    snapshot = dict(message.context_snapshot or {})
    lines = [
        f"Model {snapshot.pop('model', message.model)}, {message.response_ms} ms,"
        f" tokens {message.tokens_in} in / {message.tokens_out} out"
    ]
    for key in ("tokens_in", "tokens_out"):  # already in the first line
        snapshot.pop(key, None)
    labels: dict[str, tuple[str, Callable[[Any], str]]] = {
        "tokens": ("Tokens by section", _pairs),
        "sections": ("Tokens by section", _pairs),
        "fact_ids": ("Facts", _ids),
        "recalled": ("Recalled", _recalled),
        "recall": ("Recalled", _recalled),
        "window_ids": ("Recent window", _window),
        "timings": ("Timings (ms)", _timings),
        "timings_ms": ("Timings (ms)", _timings),
    }
    for key, (label, render) in labels.items():
        if key in snapshot:
            lines.append(f"{label}: {render(snapshot.pop(key))}")
    for key, value in snapshot.items():
        if isinstance(value, int | float | bool):
            lines.append(f"{key}: {_number(value)}")
    return lines


async def stats(ctx: CommandContext, args: str) -> None:
    """The counts as text, then a chart of the last `STATS_CHART_DAYS` days (PNG)."""
    if args:
        raise UsageError("no arguments")
    repository = StatsRepository(ctx.services.db)
    now = ctx.services.clock()
    o = await repository.overview(now=now)
    series = await repository.daily(now=now, days=STATS_CHART_DAYS)
    await audit(ctx, "stats")
    await ctx.channel.send(
        f"Users: {o.users} ({o.banned} banned, {o.admins} admins)\n"
        f"Active: {o.active_1d} today, {o.active_7d} this week\n"
        f"Messages: {o.messages} live, {o.archived_messages} archived\n"
        f"Tokens: {o.tokens_in} in, {o.tokens_out} out\n"
        f"Failed: {o.failed_messages} messages, {o.failed_jobs_7d} job runs this week\n"
        f"Facts: {o.facts} valid, {o.invalidated_facts} invalidated"
    )
    png = await daily_activity_png(series)
    sent = sum(d.messages for d in series)
    caption = (
        f"Messages people sent and active users per day, last {STATS_CHART_DAYS} days (UTC):"
        f" {sent} messages, up to {max((d.active_users for d in series), default=0)} people a day"
    )
    await ctx.channel.send_file("stats.png", png, caption)


async def user_info(ctx: CommandContext, args: str) -> None:
    target = await find_target(ctx, args, "user")
    if target is None:
        return
    services = ctx.services
    identities = await services.users.identities(target.id)
    conversation = await services.users.conversation(target.id)
    stored = await services.messages.count(target.id)
    valid, invalid = await Directory(services.db).fact_counts(target.id)
    await audit(ctx, "user", target=target.id)
    lines = [
        f"User {target.id}: {target.display_name or '(no name)'}, {target.role}, {target.status}",
        f"Since {target.created_at:%Y-%m-%d}, last seen "
        + (f"{target.last_seen_at:%Y-%m-%d %H:%M} UTC" if target.last_seen_at else "never"),
        "Identities: "
        + ", ".join(
            f"{i.platform}:{i.platform_user_id}" + (f" (@{i.username})" if i.username else "")
            for i in identities
        ),
        f"Messages: {conversation.message_count} counted, {stored} stored",
        f"Tokens: {conversation.tokens_in} in, {conversation.tokens_out} out",
        f"Facts: {valid} valid, {invalid} invalidated; summary v{conversation.summary_version}",
    ]
    await ctx.channel.send("\n".join(lines))


async def _set_status(ctx: CommandContext, args: str, status: UserStatus) -> None:
    action = "ban" if status is UserStatus.BANNED else "unban"
    target = await find_target(ctx, args, action)
    if target is None:
        return
    if target.id == ctx.user.id and status is UserStatus.BANNED:
        await audit(ctx, action, target=target.id, refused="self")
        await ctx.channel.send("You cannot ban yourself.")
        return
    async with ctx.services.db.transaction() as conn:
        await ctx.services.users.set_status(target.id, status, conn=conn)
        await audit(ctx, action, target=target.id, conn=conn, previous=target.status.value)
    logger.info("admin %s: %s user %s", ctx.user.id, action, target.id)
    verb = "banned" if status is UserStatus.BANNED else "unbanned"
    await ctx.channel.send(f"User {target.id} is {verb}.")


async def ban(ctx: CommandContext, args: str) -> None:
    await _set_status(ctx, args, UserStatus.BANNED)


async def unban(ctx: CommandContext, args: str) -> None:
    await _set_status(ctx, args, UserStatus.ACTIVE)


async def jobs(ctx: CommandContext, args: str) -> None:
    if args:
        raise UsageError("no arguments")
    runs = await JobRunRepository(ctx.services.db).last_per_job()
    await audit(ctx, "jobs")
    lines = []
    if ctx.services.jobs is not None:
        lines.append("Jobs: " + (", ".join(ctx.services.jobs.names()) or "none"))
    else:
        lines.append("Jobs are not available in this process.")
    for run in runs:
        counts = ", ".join(f"{k} {v}" for k, v in run.counts.items())
        line = f"{run.job}: {run.status} at {run.started_at:%Y-%m-%d %H:%M} UTC"
        line += f" ({counts})" if counts else ""
        line += f", error: {run.error[:200]}" if run.error else ""
        lines.append(line)
    if not runs:
        lines.append("No job has run yet.")
    await ctx.channel.send("\n".join(lines))


async def runjob(ctx: CommandContext, args: str) -> None:
    control = ctx.services.jobs
    if control is None:
        await audit(ctx, "runjob", job=args, available=False)
        await ctx.channel.send("Jobs are not available in this process.")
        return
    names = control.names()
    if args not in names:
        raise UsageError("jobs: " + (", ".join(names) or "none"))
    try:
        summary = await control.run(args)
    except Exception as exc:
        logger.exception("admin %s: job %s failed", ctx.user.id, args)
        await audit(ctx, "runjob", job=args, ok=False, error=type(exc).__name__)
        await ctx.channel.send(f"Job {args} failed ({type(exc).__name__}); see the logs.")
        return
    await audit(ctx, "runjob", job=args, ok=True)
    await ctx.channel.send(f"Job {args}: {summary}")


async def audit_log(ctx: CommandContext, args: str) -> None:
    if args and (not args.isdigit() or len(args) > 6 or int(args) == 0):
        raise UsageError("a number of entries, at most 100")
    limit = min(int(args), AUDIT_MAX) if args else AUDIT_DEFAULT
    entries = await AuditRepository(ctx.services.db).recent(limit)
    await audit(ctx, "audit", limit=limit)
    if not entries:
        await ctx.channel.send("The audit log is empty.")
        return
    lines = []
    for e in entries:
        target = f" user {e.target_user_id}" if e.target_user_id is not None else ""
        details = " ".join(f"{k}={v}" for k, v in e.details.items())
        actor = e.actor_id if e.actor_id is not None else "(erased)"
        lines.append(f"{e.at:%Y-%m-%d %H:%M} {actor} {e.action}{target} {details}".rstrip())
    await ctx.channel.send("\n".join(lines))


async def why(ctx: CommandContext, args: str) -> None:
    if not _USER_ID.match(args):
        raise UsageError("give the id of a reply")
    message = await Directory(ctx.services.db).find_reply(int(args))
    await audit(ctx, "why", target=message.user_id if message else None, message_id=int(args))
    if message is None:
        await ctx.channel.send(f"No message {args}.")
    elif message.role is not MessageRole.ASSISTANT:
        await ctx.channel.send(f"Message {args} is the user's; give the id of a reply.")
    elif not message.context_snapshot:
        await ctx.channel.send(f"Reply {args} has no context snapshot.")
    else:
        header = f"Reply {message.id} to user {message.user_id}" + (
            f" (answering message {message.reply_to_id})" if message.reply_to_id else ""
        )
        await ctx.channel.send("\n".join([header, *describe_snapshot(message)]))


ADMIN_COMMANDS = [
    Command("stats", "/stats", "Usage numbers", stats, admin=True),
    Command("user", "/user <id|@name|platform:id>", "One user's profile", user_info, admin=True),
    Command("ban", "/ban <id|@name|platform:id>", "Ban a user", ban, admin=True),
    Command("unban", "/unban <id|@name|platform:id>", "Lift a ban", unban, admin=True),
    Command("jobs", "/jobs", "Scheduled jobs and their last runs", jobs, admin=True),
    Command("runjob", "/runjob <name>", "Run a job now", runjob, admin=True),
    Command("audit", "/audit [n]", "The last n admin actions", audit_log, admin=True),
    Command("why", "/why <reply id>", "What a reply was based on", why, admin=True),
]
