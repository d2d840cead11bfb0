"""Admin commands: look at the deployment and its users, ban, run jobs (`/broadcast` is
in `core.commands.broadcast`).

Every handler here writes one `admin_audit` row (read-only commands too). `details`
hold counts, job names and message ids, never anyone's message text nor anything that
identifies a person (the target is `target_user_id`, which erasure turns into NULL): a
lookup that found no one keeps only its kind, not the name or id looked for, which
could be someone who arrives, and erases themselves, later. The registry records a
non-admin's attempt itself (`refused`) before any handler runs.
(`stats` and `why` are the admin forms of everyone's `/stats` and `/why`, whose
handlers decide which form runs: `core.commands.stats`, `core.commands.why`.)
Answers here are in English, whatever the admin's language: they are for the
deployment's operators (docs/i18n.md).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from core.charts import daily_activity_png
from core.commands.base import Command, CommandContext, UsageError
from core.models import Message, MessageRole, User, UserStatus
from core.snapshot import ContextSnapshot
from core.storage.audit import AuditRepository
from core.storage.database import Connection
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

    A lookup that finds no one is still audited (as `action`, with the query's kind).
    """
    if not (_USER_ID.match(args) or _USERNAME.match(args) or _IDENTITY.match(args)):
        raise UsageError("name a user as 42, @name or platform:id")
    user = await ctx.services.users.find(args)
    if user is None:
        await audit(ctx, action, query=_lookup_kind(args), found=False)
        await ctx.channel.send(f"No user {args}.")
    return user


def _lookup_kind(args: str) -> str:
    """What `find_target` was asked for, without the value: `id`, `username` or
    `identity` (the value could identify someone)."""
    if _USER_ID.match(args):
        return "id"
    return "username" if _USERNAME.match(args) else "identity"


def describe_snapshot(message: Message) -> list[str]:
    """A reply's context snapshot in a few lines: ids, scores, counts and timings, never
    texts (`ContextSnapshot` holds none)."""
    snapshot = ContextSnapshot.from_json(message.context_snapshot or {})
    recalled = ", ".join(f"{r.source} {r.id} ({r.score:.2f})" for r in snapshot.recalled)
    window = snapshot.window_ids
    return [
        f"Model {snapshot.model or message.model}, {message.response_ms} ms,"
        f" tokens {message.tokens_in} in / {message.tokens_out} out",
        "Tokens by section: " + ", ".join(f"{k} {v}" for k, v in snapshot.tokens.items()),
        "Facts: " + (", ".join(map(str, snapshot.fact_ids)) or "none"),
        f"Recalled: {recalled or 'none'}",
        "Recent window: "
        + (f"{len(window)} messages, ids {window[0]}..{window[-1]}" if window else "none"),
        "Timings (ms): " + ", ".join(f"{k} {v}" for k, v in sorted(snapshot.timings_ms.items())),
        f"summary_version: {snapshot.summary_version}",
        f"shared_chat: {snapshot.shared_chat}",
    ]


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
    valid, invalid = await services.facts.counts(target.id)
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
        await audit(ctx, "runjob", available=False)  # `args` unchecked: not recorded
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
    message = await ctx.services.messages.find_any(int(args))
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
    Command("user", "/user <id|@name|platform:id>", "One user's profile", user_info, admin=True),
    Command("ban", "/ban <id|@name|platform:id>", "Ban a user", ban, admin=True),
    Command("unban", "/unban <id|@name|platform:id>", "Lift a ban", unban, admin=True),
    Command("jobs", "/jobs", "Scheduled jobs and their last runs", jobs, admin=True),
    Command("runjob", "/runjob <name>", "Run a job now", runjob, admin=True),
    Command("audit", "/audit [n]", "The last n admin actions", audit_log, admin=True),
]
