"""`/stats`: a person's own numbers; admins keep the deployment's (audited)."""

from __future__ import annotations

from core.commands.base import PRIVATE_ONLY
from core.models import NewFact
from core.services import Services
from tests.core.commands import add_exchange, make_user, run


async def audit_actions(services: Services) -> list[str]:
    async with services.db.connection() as conn:
        return [r["action"] for r in await conn.fetch("SELECT action FROM admin_audit")]


async def test_a_person_gets_their_own_numbers_and_nobody_elses(services: Services) -> None:
    user = await make_user(services, "1")
    other = await make_user(services, "2")
    for text in ("hello", "how are you"):
        await add_exchange(services, user, text)
    await add_exchange(services, user, "unanswered", answer=False)
    await add_exchange(services, other, "someone else")
    await services.facts.add(user.id, NewFact("Likes tea"))
    gone = await services.facts.add(user.id, NewFact("Lived in Rome"))
    await services.facts.invalidate(user.id, gone.id)
    await services.facts.add(other.id, NewFact("Not yours"))

    text = (await run(services, user, "/stats")).text
    assert text == (
        "Your numbers:\n"
        f"We first talked on {user.created_at:%Y-%m-%d} (UTC).\n"
        "Messages: 5 so far, yours and mine; kept now: 3 of yours and 2 of mine (/history).\n"
        "What I know about you: 1 fact (/memory).\n"
        "Tokens: 340 read to answer you, 24 written to you."
    )
    assert await audit_actions(services) == []


async def test_forgetting_everything_keeps_the_counters(services: Services) -> None:
    user = await make_user(services, "1")
    await add_exchange(services, user, "hello")
    await run(services, user, "/forget all confirm")
    text = (await run(services, user, "/stats")).text
    assert "Messages: 2 so far, yours and mine; kept now: 0 of yours and 0 of mine" in text
    assert "0 facts" in text and "Tokens: 170 read" in text


async def test_stats_answers_only_in_private_and_admins_get_everyones(
    services: Services,
) -> None:
    user = await make_user(services, "1")
    admin = await make_user(services, "2", admin=True)
    assert (await run(services, user, "/stats", private=False)).text == PRIVATE_ONLY
    assert (await run(services, admin, "/stats", private=False)).text == PRIVATE_ONLY
    assert (await run(services, user, "/stats now")).text == "Usage: /stats"
    everyone = await run(services, admin, "/stats")
    assert everyone.text.startswith("Users: 2 (0 banned, 1 admins)")
    assert [name for name, _, _ in everyone.channel.files] == ["stats.png"]
    assert await audit_actions(services) == ["stats"]
