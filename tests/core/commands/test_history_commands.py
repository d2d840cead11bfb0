"""`/history` (keyset pages of one's own conversation, archive included) and `/search`
(full text over it), both in private chats only."""

from __future__ import annotations

import pytest

from core.commands.base import PRIVATE_ONLY
from core.commands.history import (
    HISTORY_HEADER,
    HISTORY_PAGE,
    LINE_CHARS,
    NO_HISTORY,
    NOTHING_OLDER,
    OLDER,
    OLDER_HEADER,
)
from core.ports import Button
from core.services import Services
from fakes.archiving import move_to_archive
from tests.core.commands import Run, add_exchange, add_said_in, make_user, run


def older_button(result: Run) -> Button | None:
    [buttons] = result.channel.buttons
    if not buttons:
        return None
    [button] = buttons
    assert button.label == OLDER
    return button


async def test_history_pages_back_through_live_and_archived_messages(
    services: Services,
) -> None:
    user = await make_user(services, "1")
    other = await make_user(services, "2")
    said = []
    for n in range(12):  # 24 messages: two full pages and four more
        message, reply = await add_exchange(services, user, f"words number {n}")
        assert reply is not None
        said += [message, reply]
    await add_exchange(services, other, "not yours to read")
    await move_to_archive(services.db, [m.id for m in said[:6]])

    pages: list[list[str]] = []
    command = "/history"
    while True:
        result = await run(services, user, command)
        header, *lines = result.text.splitlines()
        assert header == (HISTORY_HEADER if command == "/history" else OLDER_HEADER)
        pages.append(lines)
        button = older_button(result)
        if button is None:
            break
        command = button.command

    assert [len(page) for page in pages] == [HISTORY_PAGE, HISTORY_PAGE, 4]
    shown = [line.split(" ", 2)[2] for page in pages for line in page]
    expected = [f"{'You' if m.reply_to_id is None else 'Me'}: {m.content}" for m in reversed(said)]
    assert shown == expected  # newest first, nothing repeated or skipped, archive included
    assert pages[0][0].startswith(f"{said[-1].created_at:%Y-%m-%d %H:%M} Me: re: words")
    assert (await run(services, user, f"/history {said[0].id}")).text == NOTHING_OLDER


async def test_history_of_someone_new_and_a_line_too_long_for_a_page(
    services: Services,
) -> None:
    user = await make_user(services, "1")
    assert (await run(services, user, "/history")).text == NO_HISTORY
    await add_exchange(services, user, "a long story\nin lines " + "and more " * 40)
    [_, line] = (await run(services, user, "/history")).text.splitlines()[1:]
    assert len(line) == LINE_CHARS and line.endswith("…") and "\n" not in line
    assert "You: a long story in lines and more" in line


async def test_search_finds_my_messages_with_dates_archive_included(
    services: Services,
) -> None:
    user = await make_user(services, "1")
    other = await make_user(services, "2")
    old, _ = await add_exchange(services, user, "My cat Miso is sleeping")
    await add_exchange(services, user, "I bought apples today")
    await add_exchange(services, other, "my cat is grumpy")
    await move_to_archive(services.db, [old.id])
    group = await add_said_in(services, user, "the cats of the group", "group-1")

    text = (await run(services, user, "/search  cats ")).text
    header, *lines = text.splitlines()
    assert header == 'What I found for "cats", best match first (times in UTC):'
    assert sorted(line.split(" ", 2)[2] for line in lines) == sorted(
        [
            "You: My cat Miso is sleeping",  # stemmed: "cats" finds "cat"
            "Me: re: My cat Miso is sleeping",
            "You (in a group): the cats of the group",
        ]
    )
    assert all(line.startswith(f"{group.created_at:%Y-%m-%d} ") for line in lines)
    assert "grumpy" not in text
    nothing = (await run(services, user, "/search zebra")).text
    assert nothing == 'I found nothing for "zebra" in our conversation.'


async def test_search_shows_the_part_of_a_long_message_that_matched(
    services: Services,
) -> None:
    user = await make_user(services, "1")
    await add_exchange(
        services, user, "filler words " * 30 + "the pineapple was ripe", answer=False
    )
    [line] = (await run(services, user, "/search pineapple")).text.splitlines()[1:]
    assert "You: …" in line and "the pineapple was ripe" in line


@pytest.mark.parametrize("text", ["/search", "/search   ", "/search " + "w" * 201, "/history x1"])
async def test_wrong_arguments_get_the_usage_line(services: Services, text: str) -> None:
    user = await make_user(services, "1")
    [answer] = (await run(services, user, text)).channel.sent
    assert answer.startswith(f"Usage: {text.split()[0]} ")


@pytest.mark.parametrize("text", ["/history", "/search cat"])
async def test_reading_the_conversation_is_refused_in_a_group(
    services: Services, text: str
) -> None:
    user = await make_user(services, "1")
    await add_exchange(services, user, "my cat said something private")
    result = await run(services, user, text, private=False)
    assert result.channel.sent == [PRIVATE_ONLY]
