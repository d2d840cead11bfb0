"""`/why` for everyone: what the bot's last reply in this chat (or the reply `/why`
answers) was based on, in plain words; in a group never anything from elsewhere."""

from __future__ import annotations

from typing import Any

from core.commands.base import PRIVATE_ONLY
from core.commands.why import ID_FOR_ADMINS, NO_RECORD, NO_REPLY_YET, NOT_YOURS, NOTHING_KEPT
from core.models import Message, NewFact, Platform, User
from core.services import Services
from core.snapshot import ContextSnapshot, RecalledRef
from fakes.archiving import move_to_archive
from tests.core.commands import add_exchange, add_said_in, make_user, run

GROUP = "group-1"  # the chat `run` uses for a group


def snapshot(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "summary_version": 2,
        "fact_ids": (),
        "recalled": (),
        "window_ids": (),
        "shared_chat": False,
        "tokens": {"persona": 100, "recent": 50, "prompt": 160, "budget": 6000},
        "tokens_out": 12,
    }
    values.update(changes)
    return ContextSnapshot(**values).to_json()


async def reply_in(
    services: Services,
    user: User,
    chat: str,
    text: str,
    context: dict[str, Any],
    *,
    shared: bool = False,
    sent_as: str | None = None,
) -> Message:
    """A message of `user` in `chat` and the bot's reply with `context` as its snapshot
    (delivered as the platform's message `sent_as`)."""
    asked = await add_said_in(services, user, text, chat, shared=shared)
    reply = await services.messages.add_assistant_message(
        user.id,
        f"my answer to {text}",
        reply_to_id=asked.id,
        platform=Platform.TELEGRAM,
        chat_id=chat,
        context_snapshot=context,
        tokens_in=160,
        tokens_out=12,
        model="fake-model",
        response_ms=10,
    )
    if sent_as is not None:
        await services.messages.mark_delivered(user.id, reply.id, platform_message_id=sent_as)
    return reply


async def test_why_tells_a_private_reply_in_plain_words(services: Services) -> None:
    user = await make_user(services, "1")
    tea = await services.facts.add(user.id, NewFact("Likes green tea"))
    gone = await services.facts.add(user.id, NewFact("Had a cold"))
    earlier, earlier_reply = await add_exchange(services, user, "I was in Kyoto in May")
    assert earlier_reply is not None
    await move_to_archive(services.db, [earlier.id])
    await services.facts.forget(user.id, gone.id)
    context = snapshot(
        fact_ids=(tea.id, gone.id),
        recalled=(
            RecalledRef("archive", earlier.id, 0.9, 0.8),
            RecalledRef("facts", tea.id, 0.5, None),
        ),
        window_ids=(earlier_reply.id, 7, 8),
        tokens={"persona": 100, "facts": 9, "summary": 30, "recall": 20, "recent": 50},
    )
    reply = await reply_in(services, user, f"c{user.id}", "what should I drink", context)

    text = (await run(services, user, "/why")).text
    assert text.splitlines() == [
        f"About my reply of {reply.created_at:%Y-%m-%d %H:%M} UTC"
        ' ("my answer to what should I drink"):',
        "What I know about you that I used:",
        "- Likes green tea",
        "(and 1 more that I no longer keep)",
        "The summary of our earlier conversation.",
        "What I recalled from earlier:",
        f"- noted {tea.created_at:%Y-%m-%d}: Likes green tea",
        f"- {earlier.created_at:%Y-%m-%d} You: I was in Kyoto in May",
        "Our last 3 messages, yours included.",
        "What I read, in tokens: who I am 100, what I know about you 9, the summary 30,"
        " what I recalled 20, our recent messages 50. My answer: 12 tokens.",
    ]


async def test_why_in_a_group_explains_that_groups_reply_and_nothing_private(
    services: Services,
) -> None:
    user = await make_user(services, "1")
    secret = await services.facts.add(user.id, NewFact("Is seeing a doctor", is_private=True))
    public = await services.facts.add(user.id, NewFact("Plays chess"))
    said, _ = await add_exchange(services, user, "my doctor appointment is on Friday")
    elsewhere = await add_said_in(services, user, "chess in the other group", "group-2")
    # A snapshot naming more than a group reply ever holds: none of it may show here.
    leaky = snapshot(
        fact_ids=(secret.id, public.id),
        recalled=(
            RecalledRef("messages", said.id, 0.9, 0.9),
            RecalledRef("messages", elsewhere.id, 0.8, 0.8),
        ),
        shared_chat=True,
    )
    await reply_in(services, user, GROUP, "who wins", leaky, shared=True)
    await reply_in(services, user, f"c{user.id}", "a private question", snapshot())

    text = (await run(services, user, "/why", private=False)).text
    assert '("my answer to who wins")' in text
    assert "- Plays chess" in text
    for private_thing in ("doctor", "Friday", "other group", "private question", "no longer"):
        assert private_thing not in text
    someone_else = await make_user(services, "2")
    assert (await run(services, someone_else, "/why", private=False)).text == NO_REPLY_YET


async def test_why_in_answer_to_a_reply_asks_about_that_one(services: Services) -> None:
    user = await make_user(services, "1")
    other = await make_user(services, "2")
    chat = f"c{user.id}"
    await reply_in(services, user, chat, "first", snapshot(), sent_as="900")
    await reply_in(services, user, chat, "second", snapshot(tokens_out=99))
    await reply_in(services, other, chat, "theirs", snapshot(), sent_as="901")

    first = (await run(services, user, "/why", reply_to="900")).text
    assert '("my answer to first")' in first and "My answer: 12 tokens." in first
    assert "My answer: 99 tokens." in (await run(services, user, "/why")).text
    assert (await run(services, user, "/why", reply_to="901")).text == NOT_YOURS
    assert (await run(services, user, "/why", reply_to="12345")).text == NOT_YOURS


async def test_why_when_there_is_nothing_to_tell(services: Services) -> None:
    user = await make_user(services, "1")
    assert (await run(services, user, "/why")).text == NO_REPLY_YET
    await reply_in(services, user, f"c{user.id}", "memory was off", snapshot())
    assert NOTHING_KEPT in (await run(services, user, "/why")).text
    await reply_in(services, user, f"c{user.id}", "no record", {})
    assert (await run(services, user, "/why")).text == NO_RECORD


async def test_only_admins_ask_by_id_and_only_in_private(services: Services) -> None:
    user = await make_user(services, "1")
    admin = await make_user(services, "2", admin=True)
    reply = await reply_in(services, user, f"c{user.id}", "tea?", snapshot())

    assert (await run(services, user, f"/why {reply.id}")).text == ID_FOR_ADMINS
    assert (await run(services, user, "/why because")).text == "Usage: /why [reply id]"
    in_group = await run(services, admin, f"/why {reply.id}", private=False)
    assert in_group.text == PRIVATE_ONLY
    assert (await run(services, admin, f"/why {reply.id}")).text.startswith(
        f"Reply {reply.id} to user {user.id}"
    )
    async with services.db.connection() as conn:
        actions = await conn.fetch("SELECT actor_id, action FROM admin_audit")
    assert [(r["actor_id"], r["action"]) for r in actions] == [(admin.id, "why")]
