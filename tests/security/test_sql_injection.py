"""SQL injection strings in every argument of every command are only data.

Every command runs with every payload, as an admin (so admin commands really run) and
as an ordinary person, in a private chat. Afterwards every table still exists, the
victim's rows (user, identities, conversation, messages, facts) are byte for byte what
they were, and nobody was banned, erased, merged or made admin.
"""

from __future__ import annotations

from typing import Any

from core.commands.registry import COMMANDS
from core.engine import Engine
from core.models import NewFact
from core.storage.database import Pool
from fakes.channel import RecordingChannel
from tests.core.engine_helpers import PERSONA, inbound
from tests.security.conftest import ErrorLog, PooledServices

PAYLOADS = [
    "' OR '1'='1",
    "1 OR 1=1",
    "1; DROP TABLE users; --",
    "'); DELETE FROM messages; --",
    "1 UNION SELECT id, content FROM messages --",
    "all; DROP TABLE facts",
    "all' OR 'x'='x",
    "@victim' OR 1=1 --",
    "telegram:victim' OR '1'='1",
    "telegram:1--",  # passes the identity pattern: reaches the query as a parameter
    "$1",
    "\\'; SELECT pg_sleep(10); --",
    "%' --",
    "1/**/OR/**/1=1",
    "ABCDEFGH'; UPDATE users SET role='admin' --",
    "x\u2019 OR 1=1",  # a typographic apostrophe
    "'" * 50,
]
TABLES = [
    "users",
    "identities",
    "conversations",
    "messages",
    "messages_archive",
    "facts",
    "admin_audit",
    "job_runs",
    "schema_migrations",
]


async def _victim_rows(pool: Pool, user_id: int) -> dict[str, list[tuple[Any, ...]]]:
    queries = {
        "users": "SELECT id, role, status, display_name, settings FROM users WHERE id = $1",
        "identities": "SELECT * FROM identities WHERE user_id = $1 ORDER BY platform",
        "conversations": "SELECT summary, message_count FROM conversations WHERE user_id = $1",
        "messages": "SELECT id, role, content, status FROM messages WHERE user_id = $1 ORDER BY id",
        "facts": "SELECT id, content, invalid_at FROM facts WHERE user_id = $1 ORDER BY id",
    }
    return {
        name: [tuple(r) for r in await pool.fetch(sql, user_id)] for name, sql in queries.items()
    }


async def test_injection_payloads_in_every_command_are_harmless(
    pooled: PooledServices, error_log: ErrorLog
) -> None:
    services = pooled(admin_ids="telegram:root", limits={"rate_burst": 100_000})
    engine = Engine(services, persona=PERSONA)
    channel = RecordingChannel()
    await engine.handle(inbound("I keep my bike in the red shed", user="victim"), channel)
    victim = await services.users.find("telegram:victim")
    assert victim is not None
    await services.facts.add(victim.id, NewFact("Keeps a bike in the red shed"))
    for person in ("root", "mallory"):
        await engine.handle(inbound("hello", user=person), channel)
    before = await _victim_rows(pooled.pool, victim.id)
    users_before = await pooled.pool.fetchval("SELECT count(*) FROM users")

    runs = 0
    for name in COMMANDS:
        for payload in PAYLOADS:
            for person in ("root", "mallory"):
                answers = RecordingChannel()
                await engine.handle(inbound(f"/{name} {payload}", user=person), answers)
                assert answers.sent or answers.files or answers.replies, (name, payload)
                runs += 1
    assert runs == len(COMMANDS) * len(PAYLOADS) * 2

    for table in TABLES:
        assert await pooled.pool.fetchval("SELECT to_regclass($1) IS NOT NULL", table), table
    assert await _victim_rows(pooled.pool, victim.id) == before
    assert await pooled.pool.fetchval("SELECT count(*) FROM users") == users_before
    roles = await pooled.pool.fetch("SELECT role, status FROM users")
    assert {(r["role"], r["status"]) for r in roles} == {("user", "active")}
    # Payloads that reached a query did so as parameters (the lookup found no one); audit
    # details keep only the kind of lookup, never the text.
    details = [r["details"] for r in await pooled.pool.fetch("SELECT details FROM admin_audit")]
    assert {"query": "identity", "found": False} in details
    assert not any(payload in str(details) for payload in PAYLOADS if len(payload) > 3)
    assert error_log.errors() == []
