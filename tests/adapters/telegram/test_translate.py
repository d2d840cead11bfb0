"""Telegram messages -> `Inbound`: addressing, mention stripping, attachments."""

from __future__ import annotations

from typing import Any

import pytest
from telegram import Message

from adapters.telegram.translate import BotIdentity, to_inbound
from core.inbound import ChatKind, Inbound
from fakes.telegram_api import BOT_ID, BOT_USERNAME, mention, message

ME = BotIdentity(BOT_ID, BOT_USERNAME)
GROUP = -100


def _inbound(text: str | None = None, **kwargs: Any) -> Inbound | None:
    return to_inbound(Message.de_json(message(text, **kwargs), None), ME)


def _group(text: str, **kwargs: Any) -> Inbound:
    found = _inbound(text, chat_id=GROUP, **kwargs)
    assert found is not None
    return found


def test_a_private_message() -> None:
    found = _inbound("hello", user_id=7, message_id=3, username="ann", first_name="Ann")
    assert found is not None
    assert (found.platform_user_id, found.chat_id, found.message_id) == ("7", "7", "3")
    assert found.chat_kind is ChatKind.PRIVATE
    assert found.addressed
    assert (found.text, found.username, found.display_name) == ("hello", "ann", "Ann")
    assert found.sent_at.tzinfo is not None


@pytest.mark.parametrize(
    ("text", "addressed"),
    [
        ("just talking", False),
        ("/help", True),
        (f"/help@{BOT_USERNAME}", True),
        ("/help@otherbot", False),
        ("/HELP@OneThread_Bot now", True),
    ],
)
def test_group_messages_are_addressed_by_command(text: str, addressed: bool) -> None:
    assert _group(text).addressed is addressed
    assert _group(text).chat_kind is ChatKind.GROUP


def test_a_mention_addresses_the_bot_and_is_stripped() -> None:
    text = f"👋🏽 hey @{BOT_USERNAME}, what now?"
    found = _group(text, entities=[mention(text)])
    assert found.addressed
    assert found.text == "👋🏽 hey , what now?"
    leading = f"@{BOT_USERNAME}, tell me"
    assert _group(leading, entities=[mention(leading)]).text == "tell me"


def test_mentions_of_others_and_text_mentions_of_the_bot() -> None:
    other = "hi @someone_else"
    found = _group(other, entities=[mention(other, "@someone_else")])
    assert not found.addressed
    assert found.text == other
    by_name = "Onethread help me"
    entity = {
        "type": "text_mention",
        "offset": 0,
        "length": 9,
        "user": {"id": BOT_ID, "is_bot": True, "first_name": "Onethread"},
    }
    found = _group(by_name, entities=[entity])
    assert found.addressed
    assert found.text == "help me"


def test_a_reply_to_the_bot_addresses_it() -> None:
    found = _group("and then?", reply_to_bot=55)
    assert found.addressed
    assert found.reply_to_message_id == "55"


def test_ignored_senders_and_chats() -> None:
    assert _inbound("beep", is_bot=True) is None
    assert _inbound("post", chat_id=-1009, chat_type="channel") is None
    assert _inbound(None, new_chat_title="renamed", chat_id=GROUP) is None


def test_attachments_with_and_without_caption() -> None:
    document = {
        "file_id": "d",
        "file_unique_id": "ud",
        "file_name": "a.pdf",
        "mime_type": "application/pdf",
        "file_size": 5,
    }
    found = _inbound(None, document=document)
    assert found is not None
    assert found.text == ""
    assert [(a.kind, a.name, a.mime_type, a.size, a.ref) for a in found.attachments] == [
        ("document", "a.pdf", "application/pdf", 5, "d")
    ]
    photo = [
        {"file_id": "small", "file_unique_id": "us", "width": 90, "height": 60},
        {"file_id": "large", "file_unique_id": "ul", "width": 1280, "height": 853},
    ]
    captioned = _inbound(None, photo=photo, caption="look at this")
    assert captioned is not None
    assert captioned.text == "look at this"
    assert [(a.kind, a.ref) for a in captioned.attachments] == [("photo", "large")]
    voice = {"file_id": "v", "file_unique_id": "uv", "duration": 3, "mime_type": "audio/ogg"}
    spoken = _inbound(None, voice=voice)
    assert spoken is not None
    assert [(a.kind, a.mime_type, a.ref) for a in spoken.attachments] == [
        ("voice", "audio/ogg", "v")
    ]
    sticker = {
        "file_id": "s",
        "file_unique_id": "us",
        "width": 1,
        "height": 1,
        "is_animated": False,
        "is_video": False,
        "type": "regular",
    }
    stuck = _inbound(None, sticker=sticker)
    assert stuck is not None
    assert [a.kind for a in stuck.attachments] == ["sticker"]
