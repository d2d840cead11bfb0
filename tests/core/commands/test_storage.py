"""The small repositories behind the commands: job runs, codes, audit."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.services import Services
from core.storage.audit import AuditRepository
from core.storage.codes import CodePurpose, CodeRepository, looks_like_code
from core.storage.job_runs import JobRunRepository, JobStatus
from tests.core.commands import FakeClock, make_user


async def test_job_runs_recent_and_last_per_job(services: Services) -> None:
    clock = FakeClock()
    runs = JobRunRepository(services.db)
    old = await runs.start("memory", at=clock.now - timedelta(hours=2))
    await runs.finish(old, JobStatus.FAILED, {"facts": 1}, "boom", at=clock.now)
    new = await runs.start("memory", at=clock.now - timedelta(hours=1))
    await runs.finish(new, JobStatus.OK, {"facts": 4})
    running = await runs.start("archive", at=clock.now)
    assert [r.id for r in await runs.recent(10)] == [running, new, old]
    latest = {r.job: r for r in await runs.last_per_job()}
    assert latest["memory"].id == new and latest["memory"].counts == {"facts": 4}
    assert latest["archive"].status is JobStatus.RUNNING and latest["archive"].finished_at is None
    with pytest.raises(ValueError):
        await runs.finish(running, JobStatus.RUNNING)


async def test_codes_are_single_use_and_expire(services: Services) -> None:
    clock = FakeClock()
    codes = CodeRepository(services.db)
    user = await make_user(services, "1")
    code = await codes.create(user.id, CodePurpose.LINK, now=clock(), ttl=timedelta(minutes=10))
    assert looks_like_code(code) and len(code) == 8
    assert await codes.consume(code, CodePurpose.DELETE, now=clock()) is None
    assert await codes.owner(code.lower(), CodePurpose.LINK, now=clock()) == user.id
    assert await codes.consume(code, CodePurpose.LINK, now=clock()) == user.id
    assert await codes.consume(code, CodePurpose.LINK, now=clock()) is None
    stale = await codes.create(user.id, CodePurpose.DELETE, now=clock(), ttl=timedelta(minutes=5))
    assert await codes.purge_expired(now=clock()) == 0
    assert await codes.purge_expired(now=clock.now + timedelta(minutes=5)) == 1
    assert await codes.owner(stale, CodePurpose.DELETE, now=clock()) is None


async def test_audit_records_newest_first(services: Services) -> None:
    audit = AuditRepository(services.db)
    admin = await make_user(services, "1", admin=True)
    target = await make_user(services, "2")
    first = await audit.record(admin.id, "ban", target_user_id=target.id, details={"x": 1})
    second = await audit.record(admin.id, "stats")
    entries = await audit.recent(10)
    assert [e.id for e in entries] == [second, first]
    assert entries[1].target_user_id == target.id and entries[1].details == {"x": 1}
