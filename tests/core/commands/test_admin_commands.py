from __future__ import annotations

import dataclasses

import pytest

from core.models import NewFact, Platform, UserStatus
from core.services import Services
from core.storage.job_runs import JobRunRepository, JobStatus
from tests.core.commands import FakeJobs, add_exchange, make_user, run

INJECTIONS = (
    "'; DROP TABLE users; --",
    "1; DROP TABLE users",
    "@x' OR '1'='1",
    "telegram:1' OR '1'='1",
    "telegram:1;DROP",
)


async def test_stats_counts_users_messages_and_facts(services: Services) -> None:
    admin = await make_user(services, "1", admin=True)
    user = await make_user(services, "2")
    await services.users.set_status(user.id, UserStatus.BANNED)
    await add_exchange(services, user, "hi")
    await services.facts.add(user.id, NewFact("likes tea"))
    text = (await run(services, admin, "/stats")).text
    assert "Users: 2 (1 banned, 1 admins)" in text
    assert "Active: 1 today, 1 this week" in text
    assert "Messages: 2 live, 0 archived" in text
    assert "Tokens: 170 in, 12 out" in text
    assert "Facts: 1 valid" in text


async def test_user_by_id_username_and_identity(services: Services) -> None:
    admin = await make_user(services, "1", admin=True)
    user = await make_user(services, "77", platform=Platform.DISCORD, username="Bob")
    await add_exchange(services, user, "hi")
    for query in (str(user.id), "@bob", "discord:77"):
        text = (await run(services, admin, f"/user {query}")).text
        assert text.startswith(f"User {user.id}: Bob, user, active"), text
        assert "discord:77 (@Bob)" in text and "Messages: 2 counted, 2 stored" in text
    assert (await run(services, admin, "/user @nobody")).text == "No user @nobody."
    async with services.db.connection() as conn:
        targets = await conn.fetch("SELECT target_user_id FROM admin_audit WHERE action = 'user'")
    assert [r["target_user_id"] for r in targets] == [user.id, user.id, user.id, None]


@pytest.mark.parametrize("attempt", INJECTIONS)
async def test_injection_strings_are_harmless(services: Services, attempt: str) -> None:
    admin = await make_user(services, "1", admin=True)
    for command in ("user", "ban", "unban", "why", "audit", "runjob", "forget"):
        result = await run(services, admin, f"/{command} {attempt}")
        assert result.text.startswith(("Usage:", "No user", "Jobs are not")), result.text
    assert await services.users.get(admin.id) is not None
    async with services.db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM users") == 1


async def test_ban_and_unban(services: Services) -> None:
    admin = await make_user(services, "1", admin=True)
    user = await make_user(services, "2", username="eve")
    assert (await run(services, admin, "/ban @eve")).text == f"User {user.id} is banned."
    banned = await services.users.get(user.id)
    assert banned is not None and banned.status is UserStatus.BANNED
    assert (await run(services, admin, "/unban telegram:2")).text == f"User {user.id} is unbanned."
    unbanned = await services.users.get(user.id)
    assert unbanned is not None and unbanned.status is UserStatus.ACTIVE
    assert "cannot ban yourself" in (await run(services, admin, f"/ban {admin.id}")).text
    unchanged = await services.users.get(admin.id)
    assert unchanged is not None and unchanged.status is UserStatus.ACTIVE
    async with services.db.connection() as conn:
        rows = await conn.fetch(
            "SELECT action, target_user_id, details FROM admin_audit ORDER BY id"
        )
    assert [(r["action"], r["target_user_id"]) for r in rows] == [
        ("ban", user.id),
        ("unban", user.id),
        ("ban", admin.id),
    ]
    assert rows[2]["details"] == {"refused": "self"}
    assert rows[0]["details"] == {"previous": "active"}


async def test_jobs_lists_names_and_last_runs(services: Services) -> None:
    admin = await make_user(services, "1", admin=True)
    runs = JobRunRepository(services.db)
    first = await runs.start("memory")
    await runs.finish(first, JobStatus.OK, {"facts": 3})
    failed = await runs.start("archive")
    await runs.finish(failed, JobStatus.FAILED, {}, "TimeoutError")
    without = (await run(services, admin, "/jobs")).text
    assert "Jobs are not available in this process." in without
    assert "memory: ok at" in without and "(facts 3)" in without
    assert "archive: failed at" in without and "error: TimeoutError" in without
    services = dataclasses.replace(services, jobs=FakeJobs())
    assert "Jobs: archive, memory" in (await run(services, admin, "/jobs")).text


async def test_runjob(services: Services) -> None:
    admin = await make_user(services, "1", admin=True)
    assert "not available" in (await run(services, admin, "/runjob memory")).text
    jobs = FakeJobs()
    services = dataclasses.replace(services, jobs=jobs)
    assert (await run(services, admin, "/runjob memory")).text == "Job memory: memory did 3 things"
    assert (await run(services, admin, "/runjob nope")).text == "Usage: /runjob <name>"
    assert (await run(services, admin, "/runjob")).text == "Usage: /runjob <name>"
    jobs.fail = True
    assert "failed (RuntimeError)" in (await run(services, admin, "/runjob archive")).text
    assert jobs.ran == ["memory", "archive"]
    async with services.db.connection() as conn:
        rows = await conn.fetch("SELECT action, details FROM admin_audit ORDER BY id")
    assert [r["details"] for r in rows if r["action"] == "runjob"] == [
        {"available": False},
        {"job": "memory", "ok": True},
        {"job": "archive", "ok": False, "error": "RuntimeError"},
    ]


async def test_audit_shows_the_latest_entries(services: Services) -> None:
    admin = await make_user(services, "1", admin=True)
    user = await make_user(services, "2")
    await run(services, admin, f"/ban {user.id}")
    await run(services, admin, "/stats")
    lines = (await run(services, admin, "/audit 2")).text.splitlines()
    assert len(lines) == 2
    assert f"{admin.id} stats" in lines[0] and f"{admin.id} ban user {user.id}" in lines[1]
    # stats, ban, and the first /audit itself: the entry of a call is written after it reads.
    assert len((await run(services, admin, "/audit 5000")).text.splitlines()) == 3


async def test_why_describes_a_replys_context(services: Services) -> None:
    admin = await make_user(services, "1", admin=True)
    user = await make_user(services, "2")
    question, reply = await add_exchange(services, user, "what is tea")
    assert reply is not None
    text = (await run(services, admin, f"/why {reply.id}")).text
    assert f"Reply {reply.id} to user {user.id} (answering message {question.id})" in text
    assert "Model fake-model, 130 ms, tokens 170 in / 12 out" in text
    # jsonb keeps no key order.
    sections = next(line for line in text.splitlines() if line.startswith("Tokens by section: "))
    assert set(sections.split(": ")[1].split(", ")) == {
        "persona 100",
        "facts 20",
        "recent 50",
        "budget 6000",
    }
    assert "Facts: 1, 2" in text and "Recalled: message 9 (0.81)" in text
    assert "Timings (ms): llm_ms 120, recall_ms 4" in text
    assert "Recent window: 3 messages, ids 3..5" in text and "summary_version: 0" in text
    assert "shared_chat: False" in text and text.count("170") == 1
    assert "secret text" not in text and "what is tea" not in text
    assert "is the user's" in (await run(services, admin, f"/why {question.id}")).text
    assert (await run(services, admin, "/why 999999999")).text == "No message 999999999."
    async with services.db.connection() as conn:
        rows = await conn.fetch("SELECT target_user_id, details FROM admin_audit ORDER BY id")
    assert rows[0]["target_user_id"] == user.id
    assert rows[0]["details"] == {"message_id": reply.id}
