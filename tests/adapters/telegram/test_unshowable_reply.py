"""A model reply with NULs and other control characters, end to end: real
python-telegram-bot against the fake Bot API, the real engine and openai SDK.

Such a reply (a NUL-numbered placeholder inside a code block) used to send the renderer
into an endless loop that blocked the whole process. The NULs are dropped before the
reply is recorded (PostgreSQL text cannot hold one).
"""

from __future__ import annotations

from core.services import Services
from fakes.openai_server import FakeOpenAI
from fakes.telegram_api import FakeTelegram, wait_until
from tests.adapters.telegram.helpers import make_adapter, running
from tests.adapters.text_cases import unshowable
from tests.core.engine_helpers import engine_with

REPLY = "Here:\r\n```python\nprint('\x000\x00')\n```\nDone\x07."


async def test_a_reply_with_control_characters_is_delivered_cleaned(
    services: Services, tg: FakeTelegram, fake_llm: FakeOpenAI
) -> None:
    fake_llm.push_reply(REPLY)
    async with running(make_adapter(engine_with(services), tg)):
        tg.push_message("show me code", user_id=1101)
        await wait_until(lambda: tg.texts(1101) == ["Here:\nprint('0')\nDone."])
        # The process is free: someone else is answered after it.
        tg.push_message("and me?", user_id=1102)
        await wait_until(lambda: tg.texts(1102) == ["echo: and me?"])

    (answer,) = tg.chat(1101)
    assert answer.parse_mode == "HTML"
    assert answer.source == (
        "Here:\n<pre><code class=\"language-python\">print('0')</code></pre>\nDone."
    )
    sent = [c.params["text"] for c in tg.calls if c.method in ("sendMessage", "editMessageText")]
    assert not [c for text in sent for c in text if unshowable(c)]
    assert await _stored_replies(services, 1101) == [
        "Here:\r\n```python\nprint('0')\n```\nDone\x07."
    ]


async def _stored_replies(services: Services, user_id: int) -> list[str]:
    user = await services.users.find(f"telegram:{user_id}")
    assert user is not None
    history = await services.messages.history(user.id)
    return [m.content for m in reversed(history) if m.role.value == "assistant"]
