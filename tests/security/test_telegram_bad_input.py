"""Generated bad input through the real python-telegram-bot, the adapter and the engine.

Each example is a handful of updates pushed to `FakeTelegram` and fetched by the
adapter's own polling loop: odd unicode, blank and huge texts, entities that point
outside the text, captions, attachments, unknown message kinds and update types,
missing optional fields. After every example: nothing was logged at ERROR, polling is
still connected, and every update had the outcome its kind calls for (answered and
stored, refused with a clear answer, or ignored without a trace).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import partial
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.telegram import TelegramAdapter
from core.commands.base import parse_command
from core.commands.registry import COMMANDS
from core.engine import Engine
from core.notices import INTERNAL_ERROR
from core.storage.database import Pool
from fakes.telegram_api import BOT_USERNAME, FakeTelegram, message, wait_until
from tests.adapters.telegram.helpers import make_adapter, running
from tests.core.engine_helpers import PERSONA
from tests.security.conftest import ErrorLog, Outcome, PooledServices, assert_not_stored

LIMIT = 5000
"""LIMITS_MAX_MESSAGE_CHARS for these tests: above Telegram's 4096, to test splitting."""

_ids = itertools.count(7_000_000)


@dataclass(frozen=True)
class Case:
    update: dict[str, Any]
    chat_id: int
    message_id: int | None
    outcome: Outcome
    label: str


# Any unicode but lone surrogates (Telegram sends valid UTF-16) and NUL (see
# test_nul_characters_are_refused_cleanly, a known bug).
_ALPHABET = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
_ODD = st.sampled_from(
    [
        "\u200b",  # zero width space
        "\u202e",  # right-to-left override
        "\ufeff",  # byte order mark
        "\U0001f9d1\u200d\U0001f52c",  # ZWJ emoji sequence (UTF-16 surrogate pairs)
        "e\u0301\u0301\u0301",  # stacked combining marks
        "<b>&amp;</i>",  # HTML that must not reach Telegram unescaped
        "**_`[x](javascript:1)`_**",  # Markdown the renderer must survive
        "```py\nprint(1)",  # an unclosed code block
        "\u2028\u2029\x85",  # unicode line breaks
        "'; DROP TABLE messages; --",
    ]
)
_TEXT = st.lists(st.one_of(st.text(_ALPHABET, max_size=30), _ODD), max_size=6).map("".join)


def _new_ids(group: bool) -> tuple[int, int]:
    user = next(_ids)
    return user, (-user if group else user)


def _entity(length: int, *, mentions: bool = True) -> st.SearchStrategy[dict[str, Any]]:
    """An entity that may point anywhere, even outside the text; never at the bot.

    With `mentions` false no `mention` entity is made (one covering the bot's real
    mention a second time would cut the text twice; Telegram never overlaps those).
    """
    other = {"id": 5, "is_bot": False, "first_name": "Someone"}
    names = ["bold", "url", "bot_command", "spoiler", "x_future"] + (
        ["mention"] if mentions else []
    )
    kinds = st.sampled_from(names)
    plain = st.builds(
        lambda kind, offset, size: {"type": kind, "offset": offset, "length": size},
        kinds,
        st.integers(-5, length + 10),
        st.integers(0, length + 10),
    )
    text_mention = st.builds(
        lambda offset, size: {
            "type": "text_mention",
            "offset": offset,
            "length": size,
            "user": other,
        },
        st.integers(0, length + 10),
        st.integers(0, length + 10),
    )
    return st.one_of(plain, text_mention)


def _text_outcome(text: str, *, addressed_by_mention: bool, group: bool) -> Outcome:
    """What the engine must do with a text message (the mention, if any, already cut)."""
    command = parse_command(text)
    if command is not None:
        addressee = command.addressee
        if group and not addressed_by_mention and addressee and addressee.lower() != BOT_USERNAME:
            return Outcome.IGNORED  # /cmd@otherbot in a group is another bot's
        return Outcome.COMMAND
    if group and not addressed_by_mention:
        return Outcome.IGNORED
    if not text.strip():
        return Outcome.IGNORED
    if len(text.strip()) > LIMIT:
        return Outcome.TOO_LONG
    return Outcome.ANSWERED


@st.composite
def text_cases(draw: st.DrawFn) -> Case:
    group = draw(st.booleans())
    user, chat = _new_ids(group)
    body = draw(_TEXT)
    if draw(st.booleans()):
        command = draw(st.sampled_from([*COMMANDS, "nope", "Start"]))
        suffix = draw(st.sampled_from(["", f"@{BOT_USERNAME}", "@otherbot"]))
        body = f"/{command}{suffix} {body}"
    mentioned = group and draw(st.booleans())
    text = f"@{BOT_USERNAME}, {body}" if mentioned else body
    entities = draw(st.lists(_entity(len(text), mentions=not mentioned), max_size=3))
    if mentioned:
        entities.append({"type": "mention", "offset": 0, "length": len(BOT_USERNAME) + 1})
    # What the engine sees once the adapter has cut the mention.
    seen = body
    if mentioned:
        seen = " ".join(p for p in f", {body}".split(" ") if p).strip().lstrip(",:").strip()
    outcome = _text_outcome(seen, addressed_by_mention=mentioned, group=group)
    message_id = next(_ids)
    return Case(
        {
            "message": message(
                text,
                user_id=user,
                chat_id=chat,
                message_id=message_id,
                entities=entities,
                username=draw(st.one_of(st.none(), st.just("name"))),
                first_name=draw(_TEXT) or "A",
            )
        },
        chat,
        message_id,
        outcome,
        "text",
    )


@st.composite
def huge_cases(draw: st.DrawFn) -> Case:
    user, chat = _new_ids(False)
    piece = draw(st.one_of(st.text(_ALPHABET, min_size=1, max_size=8), _ODD)).strip() or "x"
    length = draw(st.sampled_from([4097, LIMIT, LIMIT + 1, 3 * LIMIT]))
    text = ("a" + piece * length)[:length]
    message_id = next(_ids)
    outcome = Outcome.TOO_LONG if len(text.strip()) > LIMIT else Outcome.ANSWERED
    update = {"message": message(text, user_id=user, message_id=message_id)}
    return Case(update, chat, message_id, outcome, f"huge {length}")


_MEDIA: dict[str, dict[str, Any]] = {
    "photo": {"photo": [{"file_id": "p", "file_unique_id": "pu", "width": 9, "height": 9}]},
    "voice": {"voice": {"file_id": "v", "file_unique_id": "vu", "duration": 3}},
    "document": {"document": {"file_id": "d", "file_unique_id": "du", "file_name": "a\u202e.txt"}},
    "sticker": {
        "sticker": {
            "file_id": "s",
            "file_unique_id": "su",
            "width": 1,
            "height": 1,
            "is_animated": False,
            "is_video": False,
            "type": "regular",
        }
    },
    "location": {"location": {"latitude": 1.5, "longitude": 2.5}},
    "dice": {"dice": {"emoji": "\U0001f3b2", "value": 6}},
}


@st.composite
def media_cases(draw: st.DrawFn) -> Case:
    user, chat = _new_ids(False)
    kind = draw(st.sampled_from(sorted(_MEDIA)))
    caption = draw(st.one_of(st.none(), _TEXT))
    extra: dict[str, Any] = dict(_MEDIA[kind])
    if caption is not None:
        extra["caption"] = caption
        extra["caption_entities"] = draw(st.lists(_entity(len(caption)), max_size=2))
    message_id = next(_ids)
    if caption is not None and caption.strip():
        outcome = _text_outcome(caption, addressed_by_mention=False, group=False)
    else:
        outcome = Outcome.UNSUPPORTED
    update = {"message": message(None, user_id=user, message_id=message_id, **extra)}
    return Case(update, chat, message_id, outcome, f"{kind} caption={caption is not None}")


@st.composite
def odd_cases(draw: st.DrawFn) -> Case:
    """Updates and message kinds the adapter does not handle: never answered."""
    user, chat = _new_ids(draw(st.booleans()))
    body = message(None, user_id=user, chat_id=chat, message_id=next(_ids))
    kind = draw(
        st.sampled_from(
            [
                "future_update",
                "edited_message",
                "channel_post",
                "unknown_message_kind",
                "no_sender",
                "bot_sender",
                "service",
                "unknown_chat_type",
            ]
        )
    )
    update: dict[str, Any]
    if kind == "future_update":
        update = {"giveaway_of_the_future": {"id": 1, "text": draw(_TEXT)}}
    elif kind == "edited_message":
        update = {"edited_message": {**body, "text": draw(_TEXT), "edit_date": 1}}
    elif kind == "channel_post":
        update = {"channel_post": {**body, "chat": {"id": -1009, "type": "channel"}, "text": "x"}}
    elif kind == "unknown_message_kind":
        update = {"message": {**body, "hologram": {"id": "h1", "depth": 3}}}
    elif kind == "no_sender":
        update = {"message": {k: v for k, v in body.items() if k != "from"} | {"text": "hi"}}
    elif kind == "bot_sender":
        update = {"message": message("hi there", user_id=user, chat_id=chat, is_bot=True)}
    elif kind == "service":
        update = {"message": {**body, "new_chat_title": draw(_TEXT)}}
    else:
        update = {"message": {**body, "chat": {"id": chat, "type": "sender"}, "text": "hi"}}
    return Case(update, chat, None, Outcome.IGNORED, kind)


CASES = st.one_of(text_cases(), text_cases(), huge_cases(), media_cases(), odd_cases())


async def _rows(pool: Pool, chat_id: int) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT role, status, platform_message_id, delivered_at FROM messages"
        " WHERE platform = 'telegram' AND chat_id = $1 ORDER BY id",
        str(chat_id),
    )
    return [dict(r) for r in rows]


def _sent_to(tg: FakeTelegram, chat_id: int) -> list[str]:
    """Texts and documents the bot sent to a chat (documents as "<document>")."""
    return [
        str(c.params.get("text", "<document>"))
        for c in tg.calls
        if c.method in ("sendMessage", "sendDocument") and c.params.get("chat_id") == chat_id
    ]


async def check(case: Case, pool: Pool, tg: FakeTelegram) -> None:
    rows = await _rows(pool, case.chat_id)
    sent = _sent_to(tg, case.chat_id)
    where = f"{case.label}: {case.update!r:.300}"
    if case.outcome is Outcome.ANSWERED:
        user_rows = [r for r in rows if r["role"] == "user"]
        assert [r["platform_message_id"] for r in user_rows] == [str(case.message_id)], where
        assert user_rows[0]["status"] == "answered", where
        [reply] = [r for r in rows if r["role"] == "assistant"]
        assert reply["delivered_at"] is not None, where
        assert sent, where
        return
    assert_not_stored(case.outcome, rows, sent, where, command_answered=bool(sent))


async def _answered(pool: Pool, chat_id: int) -> bool:
    """Whether the chat's messages are all answered (the reply delivered and recorded)."""
    rows = await _rows(pool, chat_id)
    return all(r["status"] == "answered" for r in rows if r["role"] == "user")


async def deliver_all(
    tg: FakeTelegram, adapter: TelegramAdapter, cases: list[Case], pool: Pool
) -> None:
    """Push the updates and wait until the adapter acknowledged them (stored, or handled
    without storing: refused, ignored, a command that ran) and the stored ones are
    answered."""
    last = 0
    for case in cases:
        last = tg.push_update(case.update)
    await wait_until(lambda: tg.confirmed_below > last, within=30)
    for chat_id in {case.chat_id for case in cases if case.outcome is Outcome.ANSWERED}:
        await wait_until(partial(_answered, pool, chat_id), within=30)
    assert adapter.connected


@settings(
    max_examples=30,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(cases=st.lists(CASES, min_size=1, max_size=4))
async def test_generated_updates_are_answered_refused_or_ignored_never_crash(
    cases: list[Case],
    pooled: PooledServices,
    tg: FakeTelegram,
    error_log: ErrorLog,
) -> None:
    engine = Engine(pooled(limits={"max_message_chars": LIMIT}), persona=PERSONA)
    error_log.clear()
    async with running(make_adapter(engine, tg)) as adapter:
        await deliver_all(tg, adapter, cases, pooled.pool)
        for case in cases:
            await check(case, pooled.pool, tg)
    assert error_log.errors() == []


async def test_every_kind_of_case_at_least_once(
    pooled: PooledServices, tg: FakeTelegram, error_log: ErrorLog
) -> None:
    """A fixed run over one example per outcome, so no outcome goes untested by chance."""
    engine = Engine(pooled(limits={"max_message_chars": LIMIT}), persona=PERSONA)
    user, _ = _new_ids(False)
    group_user, group = _new_ids(True)
    entities = [{"type": "mention", "offset": 0, "length": len(BOT_USERNAME) + 1}]
    fixed = [
        Case({"message": message("hi \u202e", user_id=user, message_id=1)}, user, 1,
             Outcome.ANSWERED, "private"),
        Case({"message": message("x" * (LIMIT + 1), user_id=user + 1, message_id=2)}, user + 1,
             2, Outcome.TOO_LONG, "huge"),
        Case({"message": message(None, user_id=user + 2, message_id=3, **_MEDIA["voice"])},
             user + 2, 3, Outcome.UNSUPPORTED, "voice"),
        Case({"message": message("/memory", user_id=user + 3, message_id=4)}, user + 3, 4,
             Outcome.COMMAND, "command"),
        Case({"message": message("just talking", user_id=group_user, chat_id=group)}, group,
             None, Outcome.IGNORED, "unaddressed"),
        Case({"message": message(f"@{BOT_USERNAME} hey", user_id=group_user + 1,
                                 chat_id=-(group_user + 1), message_id=6, entities=entities)},
             -(group_user + 1), 6, Outcome.ANSWERED, "mention"),
    ]  # fmt: skip
    async with running(make_adapter(engine, tg)) as adapter:
        await deliver_all(tg, adapter, fixed, pooled.pool)
        for case in fixed:
            await check(case, pooled.pool, tg)
    assert error_log.errors() == []


async def test_an_update_python_telegram_bot_cannot_parse_does_not_stop_polling(
    pooled: PooledServices, tg: FakeTelegram, error_log: ErrorLog
) -> None:
    """A message without its required `date` (PTB raises KeyError while parsing the
    getUpdates answer): later updates must still be handled, and no text logged."""
    engine = Engine(pooled(), persona=PERSONA)
    user, _ = _new_ids(False)
    broken = message("poison-pill-text", user_id=user)
    del broken["date"]
    adapter = make_adapter(engine, tg)
    await adapter.start()
    try:
        await wait_until(lambda: adapter.connected)
        tg.push_update({"message": broken})
        tg.push_message("still there?", user_id=user + 1)
        await wait_until(lambda: bool(tg.texts(user + 1)), within=5)
        assert adapter.connected
    finally:
        try:
            await adapter.stop()
        except KeyError:
            # The dead polling task's error surfaces in the first stop(); the second
            # one closes what the first could not reach.
            await adapter.stop()
    assert not [r for r in error_log.records if "poison-pill-text" in r.getMessage()]


async def test_nul_characters_are_refused_cleanly(
    pooled: PooledServices, tg: FakeTelegram, error_log: ErrorLog
) -> None:
    engine = Engine(pooled(), persona=PERSONA)
    user, _ = _new_ids(False)
    async with running(make_adapter(engine, tg)):
        last = tg.push_message("before\x00after", user_id=user, first_name="N\x00ul")
        await wait_until(lambda: tg.confirmed_below > last)
        await wait_until(partial(_answered, pooled.pool, user))
    assert tg.texts(user)
    assert INTERNAL_ERROR not in tg.texts(user)
    assert error_log.errors() == []
