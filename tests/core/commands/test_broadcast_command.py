"""`/broadcast`: answered at once and queued, sent in the background, followed and
cancelled by number, audited when it starts and when it ends."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from core.commands.base import CommandContext, parse_command
from core.commands.broadcast import BROADCAST_MAX_CHARS
from core.commands.registry import dispatch
from core.inbound import ChatKind, Inbound
from core.jobs.broadcast import BroadcastJob
from core.jobs.registry import JobOutcome, JobRegistry, JobSpec
from core.models import Message, Platform
from core.services import Services
from core.storage.broadcasts import BroadcastRepository, BroadcastStatus
from core.storage.job_runs import JobRunRepository
from fakes.channel import RecordingChannel
from tests.core.broadcast_helpers import reachable
from tests.core.commands import FakeJobs, FakeMessenger, HeldMessenger, run
from tests.core.engine_helpers import PERSONA

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def with_telegram(services: Services, messenger: FakeMessenger) -> Services:
    return dataclasses.replace(
        services, clock=lambda: T0, messengers={Platform.TELEGRAM: messenger}, jobs=FakeJobs()
    )


async def audit_rows(services: Services) -> list[tuple[int | None, str, dict[str, Any]]]:
    async with services.db.connection() as conn:
        rows = await conn.fetch("SELECT actor_id, action, details FROM admin_audit ORDER BY id")
    return [(r["actor_id"], r["action"], r["details"]) for r in rows]


async def test_the_command_answers_at_once_and_queues(services: Services) -> None:
    telegram = FakeMessenger(Platform.TELEGRAM)
    services = with_telegram(services, telegram)
    admin = await reachable(services, "1", admin=True)
    await reachable(services, "2")
    await reachable(services, "3")

    result = await run(services, admin, "/broadcast Maintenance tonight")

    (queued,) = await BroadcastRepository(services.db).recent(5)
    assert result.text == (
        f"Broadcast #{queued.id} queued for about 3 people;"
        f" /broadcast status {queued.id} shows its progress."
    )
    assert (queued.text, queued.admin_id, queued.status) == (
        "Maintenance tonight",
        admin.id,
        "queued",
    )
    assert queued.platforms == [Platform.TELEGRAM] and queued.created_at == T0
    assert telegram.sent == []  # the job sends it, not the command
    assert await audit_rows(services) == [
        (
            admin.id,
            "broadcast",
            {"broadcast": queued.id, "chars": 19, "recipients": 3, "platforms": ["telegram"]},
        )
    ]


class StartedRegistry(JobRegistry):
    """The registry, keeping the runs it starts so that the test can wait for them."""

    started: list[asyncio.Task[JobOutcome | None]]

    def start(self, name: str) -> asyncio.Task[JobOutcome | None]:
        task = super().start(name)
        self.started.append(task)
        return task


async def test_the_job_starts_in_the_background_and_audits_the_end(pooled: Services) -> None:
    telegram = HeldMessenger(Platform.TELEGRAM)
    entered, gate = telegram.entered, telegram.gate
    services = with_telegram(pooled, telegram)

    async def no_pause(seconds: float) -> None:
        pass

    registry = StartedRegistry(services.db, [JobSpec(BroadcastJob(services, sleep=no_pause), 30)])
    registry.started = []
    services.jobs = registry
    admin = await reachable(services, "1", admin=True)
    await reachable(services, "2")

    result = await run(services, admin, "/broadcast Maintenance tonight")
    assert "queued for about 2 people" in result.text
    await entered.wait()  # sending, while the command has long answered
    (task,) = registry.started
    assert not task.done()
    gate.set()
    outcome = await task

    assert outcome is not None and outcome.counts == {"sent": 2, "broadcasts": 1}
    assert [chat for chat, _ in telegram.sent] == ["1-chat", "2-chat"]
    (done,) = await BroadcastRepository(services.db).recent(1)
    assert (done.status, done.sent, done.failed) == ("done", 2, 0)
    rows = await audit_rows(services)
    assert [(actor, action) for actor, action, _ in rows] == [
        (admin.id, "broadcast"),
        (admin.id, "broadcast_done"),
    ]
    assert rows[1][2] == {"broadcast": done.id, "sent": 2, "failed": 0, "total": 2}
    (job_run,) = await JobRunRepository(services.db).recent()
    assert (job_run.job, job_run.counts) == ("broadcast", {"sent": 2, "broadcasts": 1})


async def test_status_shows_progress_and_lists_recent_ones(services: Services) -> None:
    services = with_telegram(services, FakeMessenger(Platform.TELEGRAM))
    admin = await reachable(services, "1", admin=True)
    assert (await run(services, admin, "/broadcast status")).text == "No broadcast yet."
    await run(services, admin, "/broadcast First\nline two")
    await run(services, admin, "/broadcast " + "x" * 100)
    first, second = reversed(await BroadcastRepository(services.db).recent(5))
    async with services.db.connection() as conn:
        await conn.execute(
            "UPDATE broadcasts SET status = 'running', sent = 1, started_at = $2 WHERE id = $1",
            first.id,
            T0,
        )

    listed = (await run(services, admin, "/broadcast status")).text
    detail = (await run(services, admin, f"/broadcast status {first.id}")).text
    long = (await run(services, admin, f"/broadcast status {second.id}")).text
    missing = (await run(services, admin, f"/broadcast status {second.id + 1}")).text

    assert listed.splitlines() == [
        f"#{second.id} queued: 0 sent, 0 failed of about 1, queued 2025-03-01 12:00 UTC",
        f"#{first.id} running: 1 sent, 0 failed of about 1, queued 2025-03-01 12:00 UTC",
    ]
    assert detail.splitlines() == [
        f"#{first.id} running: 1 sent, 0 failed of about 1, queued 2025-03-01 12:00 UTC",
        f"Queued by user {admin.id}, started 2025-03-01 12:00 UTC",
        "Text: First line two",
    ]
    assert long.splitlines()[-1] == "Text: " + "x" * 79 + "…"
    assert missing == f"No broadcast #{second.id + 1}."
    statuses = [d for _, action, d in await audit_rows(services) if action == "broadcast_status"]
    assert statuses == [
        {"listed": 0},
        {"listed": 2},
        {"broadcast": first.id, "found": True},
        {"broadcast": second.id, "found": True},
        {"broadcast": second.id + 1, "found": False},
    ]


async def test_cancel_stops_an_unfinished_broadcast_once(services: Services) -> None:
    services = with_telegram(services, FakeMessenger(Platform.TELEGRAM))
    admin = await reachable(services, "1", admin=True)
    await run(services, admin, "/broadcast Hello")
    (queued,) = await BroadcastRepository(services.db).recent(1)

    first = (await run(services, admin, f"/broadcast cancel {queued.id}")).text
    again = (await run(services, admin, f"/broadcast cancel {queued.id}")).text
    missing = (await run(services, admin, f"/broadcast cancel {queued.id + 1}")).text

    assert first == f"Broadcast #{queued.id} cancelled: 0 sent, 0 failed of about 1."
    assert again == f"Broadcast #{queued.id} is already cancelled."
    assert missing == f"No broadcast #{queued.id + 1}."
    cancelled = await BroadcastRepository(services.db).get(queued.id)
    assert cancelled is not None and cancelled.status is BroadcastStatus.CANCELLED
    assert cancelled.finished_at == T0
    cancels = [d for _, action, d in await audit_rows(services) if action == "broadcast_cancel"]
    assert cancels == [
        {"broadcast": queued.id, "sent": 0, "failed": 0, "total": 1},
        {"broadcast": queued.id, "status": "cancelled"},
        {"broadcast": queued.id + 1, "status": None},
    ]


USAGE = "Usage: /broadcast <text> | status [n] | cancel <n>"


@pytest.mark.parametrize(
    "text",
    [
        "/broadcast",
        "/broadcast cancel",
        "/broadcast cancel all",
        "/broadcast cancel 1 2",
        "/broadcast status soon",
        "/broadcast status -1",
        "/broadcast status 1'; DROP TABLE broadcasts; --",
        "/broadcast cancel 99999999999999999999999",
    ],
)
async def test_bad_input_gets_the_usage_line_and_changes_nothing(
    services: Services, text: str
) -> None:
    services = with_telegram(services, FakeMessenger(Platform.TELEGRAM))
    admin = await reachable(services, "1", admin=True)
    assert (await run(services, admin, text)).text == USAGE
    assert await BroadcastRepository(services.db).recent(1) == []
    assert await audit_rows(services) == []


async def test_a_text_too_long_is_refused_and_says_why(services: Services) -> None:
    services = with_telegram(services, FakeMessenger(Platform.TELEGRAM))
    admin = await reachable(services, "1", admin=True)
    text = "y" * (BROADCAST_MAX_CHARS + 1)
    answer = (await run(services, admin, f"/broadcast {text}")).text
    assert answer == "A broadcast is at most 4000 characters; this one has 4001."
    assert await BroadcastRepository(services.db).recent(1) == []
    assert await audit_rows(services) == []
    assert "queued" in (await run(services, admin, f"/broadcast {text[:-1]}")).text


async def test_words_like_subcommands_are_sent_when_they_are_not_one(services: Services) -> None:
    services = with_telegram(services, FakeMessenger(Platform.TELEGRAM))
    admin = await reachable(services, "1", admin=True)
    await run(services, admin, "/broadcast Status: all good")
    await run(services, admin, "/broadcast cancelled flights")
    texts = [b.text for b in await BroadcastRepository(services.db).recent(5)]
    assert texts == ["cancelled flights", "Status: all good"]


async def test_a_process_without_platforms_cannot_broadcast(services: Services) -> None:
    admin = await reachable(services, "1", admin=True)
    answer = (await run(services, admin, "/broadcast Hello")).text
    assert answer == "This process reaches no platform, so it cannot broadcast."
    assert await BroadcastRepository(services.db).recent(1) == []
    assert await audit_rows(services) == [(admin.id, "broadcast", {"chars": 5, "queued": False})]


async def test_the_same_command_delivered_again_queues_nothing_more(services: Services) -> None:
    """An outage cut the command's first run short after it queued: the platform brings
    the command again and it runs again, but the broadcast is queued once."""
    services = with_telegram(services, FakeMessenger(Platform.TELEGRAM))
    admin = await reachable(services, "1", admin=True)
    parsed = parse_command("/broadcast Once only")
    assert parsed is not None
    inbound = Inbound(
        platform=Platform.TELEGRAM,
        platform_user_id=f"u{admin.id}",
        chat_id=f"c{admin.id}",
        chat_kind=ChatKind.PRIVATE,
        message_id="broadcast-7",
        text="/broadcast Once only",
        sent_at=T0,
    )
    answers = []
    for _ in range(2):
        channel = RecordingChannel()
        context = CommandContext(
            services=services,
            persona=PERSONA,
            inbound=inbound,
            user=admin,
            is_admin=True,
            channel=channel,
            answer_again=_never,
        )
        assert await dispatch(context, parsed)
        answers.append(channel.sent)
    (queued,) = await BroadcastRepository(services.db).recent(5)
    assert answers[0] == answers[1] and f"#{queued.id} queued" in answers[0][0]
    assert [action for _, action, _ in await audit_rows(services)] == ["broadcast"]


async def _never(message: Message) -> None:
    raise AssertionError("not a retry")
